/// Named random streams, so that every tool keys the same kind of randomness the same way.
///
/// A stage is the second component of an `LDRandom` key (after the seed). Two tools, or two parts of one
/// tool, that draw for different purposes use different stages, so their streams never overlap even with
/// the same seed and indices. The raw values are part of the on-disk reproducibility contract: never
/// renumber an existing stage, only add new ones.
public struct RandomStage: RawRepresentable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// ld-squeeze: teacher training (shuffles, augmentation).
    public static let squeeze = RandomStage(rawValue: 1)
    /// ld-recover: synthetic image initialisation and jitter.
    public static let recover = RandomStage(rawValue: 2)
    /// ld-relabel: crops, flips, CutMix/Mixup parameters.
    public static let relabel = RandomStage(rawValue: 3)
    /// ld-prune: random label pruning and random image subsets.
    public static let prune = RandomStage(rawValue: 4)
    /// ld-train: student training (shuffles, augmentation).
    public static let train = RandomStage(rawValue: 5)
    /// Weight initialisation of a model (`init` is a Swift keyword, hence the name).
    public static let weightInit = RandomStage(rawValue: 6)
    /// Class-balanced random subsets of a real data set (the evaluation baseline).
    public static let subset = RandomStage(rawValue: 7)
    /// Per-epoch order of the training set.
    public static let shuffle = RandomStage(rawValue: 8)
    /// Per-sample augmentation (RandomResizedCrop, flip).
    public static let augment = RandomStage(rawValue: 9)
    /// Per-batch mixing (CutMix, Mixup: lambda, box, permutation).
    public static let mix = RandomStage(rawValue: 10)
    /// Held-out splits and other evaluation-side draws.
    public static let evaluate = RandomStage(rawValue: 11)
    /// ld-recover --method rded: candidate images and their crops.
    public static let rded = RandomStage(rawValue: 12)
    /// Tests and benchmarks: never used by a tool's output.
    public static let test = RandomStage(rawValue: 0xFFFF_FFFF)

    public var description: String {
        switch self {
        case .squeeze: return "squeeze"
        case .recover: return "recover"
        case .relabel: return "relabel"
        case .prune: return "prune"
        case .train: return "train"
        case .weightInit: return "weightInit"
        case .subset: return "subset"
        case .shuffle: return "shuffle"
        case .augment: return "augment"
        case .mix: return "mix"
        case .evaluate: return "evaluate"
        case .rded: return "rded"
        case .test: return "test"
        default: return "stage\(rawValue)"
        }
    }
}

/// A counter-based random number generator: Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel
/// random numbers: as easy as 1, 2, 3", SC 2011), re-implemented from the paper's description.
///
/// Every draw is a pure function of the key `(seed, stage, major, minor, item)` and of its position in
/// the stream, so results never depend on the thread count, the order in which streams are created or
/// consumed, or how a run is split into shards. By convention `major` is a class or an epoch, `minor` a
/// batch and `item` an image; use 0 for a component that does not apply.
///
/// - The 64-bit Philox key is derived from `(seed, stage)`: one Philox block of the seed's two words on
///   the counter `(stage, "ld", 0, 0)`.
/// - The 128-bit counter is `(position, item, minor, major)`, where `position` counts 4-word blocks, so one
///   stream holds 2^34 32-bit words (2^33 `next()` values) before it would wrap; no caller comes close.
///
/// `next()` (the `RandomNumberGenerator` requirement) returns two 32-bit words. The draws in the
/// `RandomNumberGenerator` extensions of this module (`uniformFloat`, `int(in:)`, `normal`, `beta`,
/// `permutation`, ...) use only `next()` with fixed algorithms, so they too are reproducible across
/// platforms and Swift versions, unlike the standard library's `random(in:using:)`, whose algorithm is
/// not specified.
public struct LDRandom: RandomNumberGenerator {
    @usableFromInline var key: (UInt32, UInt32)
    /// Counter words: block position, item, minor, major.
    @usableFromInline var counter: (UInt32, UInt32, UInt32, UInt32)
    /// The current block of four output words and how many of them were consumed.
    @usableFromInline var block: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    @usableFromInline var used: Int = 4

    /// The stream for one key. Components are taken modulo 2^32 (negative values wrap, distinctly).
    public init(seed: UInt64, stage: RandomStage, major: Int = 0, minor: Int = 0, item: Int = 0) {
        let seedKey = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        // "ld" tag in the second word keeps the derivation block apart from any stream counter.
        let derived = LDRandom.philox(counter: (stage.rawValue, 0x6C64, 0, 0), key: seedKey)
        key = (derived.0, derived.1)
        counter = (0, UInt32(truncatingIfNeeded: item), UInt32(truncatingIfNeeded: minor),
                   UInt32(truncatingIfNeeded: major))
    }

    /// The stream for another `(major, minor, item)` under the same seed and stage, from its start.
    public func stream(major: Int, minor: Int = 0, item: Int = 0) -> LDRandom {
        var r = self
        r.counter = (0, UInt32(truncatingIfNeeded: item), UInt32(truncatingIfNeeded: minor),
                     UInt32(truncatingIfNeeded: major))
        r.used = 4
        return r
    }

    /// Number of 32-bit words consumed so far (a `next()` consumes two).
    public var position: UInt64 { UInt64(counter.0) &* 4 &- UInt64(4 - used) }

    /// Moves to an absolute position in 32-bit words from the start of the stream, as if `position`
    /// words had been drawn (positions are counted modulo 2^34).
    public mutating func seek(toWord position: UInt64) {
        let blockIndex = UInt32(truncatingIfNeeded: position / 4)
        let offset = Int(position % 4)
        if offset == 0 {
            counter.0 = blockIndex
            used = 4
        } else {
            counter.0 = blockIndex
            refill()
            used = offset
        }
    }

    /// The next 32-bit word of the stream.
    @inlinable
    public mutating func next32() -> UInt32 {
        if used == 4 { refill() }
        let w: UInt32
        switch used {
        case 0: w = block.0
        case 1: w = block.1
        case 2: w = block.2
        default: w = block.3
        }
        used += 1
        return w
    }

    /// Two 32-bit words, the first in the low half.
    @inlinable
    public mutating func next() -> UInt64 {
        if used == 4 { refill() }
        // Fast path: an aligned pair of words (always the case unless next32() was called an odd number of times).
        if used == 0 {
            used = 2
            return UInt64(block.0) | UInt64(block.1) << 32
        }
        if used == 2 {
            used = 4
            return UInt64(block.2) | UInt64(block.3) << 32
        }
        let lo = UInt64(next32())
        let hi = UInt64(next32())
        return lo | (hi << 32)
    }

    /// Computes the block at the current counter and advances the counter by one block.
    @usableFromInline
    mutating func refill() {
        block = LDRandom.philox(counter: counter, key: key)
        counter.0 &+= 1
        used = 0
    }

    /// The Philox4x32 bijection with 10 rounds: the block for `counter` under `key`.
    ///
    /// One round multiplies words 0 and 2 by two constants into 64-bit products and recombines the high
    /// halves with the other two words and the round key; the key is bumped by two Weyl constants (the
    /// golden ratio and sqrt(3) - 1, as 32-bit fractions) between rounds.
    @inlinable
    public static func philox(counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32))
        -> (UInt32, UInt32, UInt32, UInt32)
    {
        let m0: UInt64 = 0xD251_1F53, m1: UInt64 = 0xCD9E_8D57
        let w0: UInt32 = 0x9E37_79B9, w1: UInt32 = 0xBB67_AE85
        var (c0, c1, c2, c3) = counter
        var (k0, k1) = key
        for round in 0..<10 {
            if round > 0 { k0 &+= w0; k1 &+= w1 }
            let p0 = m0 &* UInt64(c0)
            let p1 = m1 &* UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            c0 = hi1 ^ c1 ^ k0
            c1 = lo1
            c2 = hi0 ^ c3 ^ k1
            c3 = lo0
        }
        return (c0, c1, c2, c3)
    }
}
