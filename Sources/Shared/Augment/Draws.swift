// Random draws used by the augmentations.
//
// TO BE REPLACED BY THE RANDOM MODULE'S DRAWS. These are small stand-ins so that the augmentation code can be
// written and tested against Swift's `RandomNumberGenerator` protocol before the project's counter-based
// generator (with its own uniform, normal and Beta draws) lands. Every call site goes through `AugmentDraws`,
// so the swap is one file. Each helper consumes a fixed, documented number of 64-bit words where it can, so
// results depend only on the generator's stream.

import Foundation

/// Uniform, integer, normal, Gamma and Beta draws on any `RandomNumberGenerator`
/// (to be replaced by the Random module's draws).
enum AugmentDraws {
    /// Uniform Float in [0, 1) from the top 24 bits of one 64-bit word.
    @inline(__always)
    static func uniform(_ rng: inout some RandomNumberGenerator) -> Float {
        Float(rng.next() >> 40) * 0x1p-24
    }

    /// Uniform Double in [0, 1) from the top 53 bits of one 64-bit word.
    @inline(__always)
    static func uniformDouble(_ rng: inout some RandomNumberGenerator) -> Double {
        Double(rng.next() >> 11) * 0x1p-53
    }

    /// Uniform Float in [lo, hi), as `torch.empty(1).uniform_(lo, hi)`.
    @inline(__always)
    static func uniform(_ rng: inout some RandomNumberGenerator, _ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * uniform(&rng)
    }

    /// Uniform integer in [0, n), n > 0, without bias (Lemire's multiply-shift with rejection).
    static func below(_ n: Int, _ rng: inout some RandomNumberGenerator) -> Int {
        precondition(n > 0, "empty range for a uniform integer draw")
        let bound = UInt64(n)
        var m = rng.next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = rng.next().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    /// Uniform integer in [lo, hi], both ends inclusive.
    @inline(__always)
    static func inclusive(_ lo: Int, _ hi: Int, _ rng: inout some RandomNumberGenerator) -> Int {
        lo + below(hi - lo + 1, &rng)
    }

    /// Standard normal by Box-Muller (two words per draw; the second value is discarded for simplicity).
    static func normal(_ rng: inout some RandomNumberGenerator) -> Double {
        let u1 = 1 - uniformDouble(&rng)          // (0, 1]: log is finite
        let u2 = uniformDouble(&rng)
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// Gamma(shape, 1) by Marsaglia and Tsang (2000); shape < 1 is boosted: Gamma(a) = Gamma(a+1) * U^(1/a).
    static func gamma(_ shape: Double, _ rng: inout some RandomNumberGenerator) -> Double {
        precondition(shape > 0, "Gamma shape must be positive")
        if shape < 1 {
            let g = gamma(shape + 1, &rng)
            let u = 1 - uniformDouble(&rng)
            return g * Foundation.pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double
            var v: Double
            repeat {
                x = normal(&rng)
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = 1 - uniformDouble(&rng)
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if Foundation.log(u) < 0.5 * x * x + d * (1 - v + Foundation.log(v)) { return d * v }
        }
    }

    /// Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
    static func beta(_ a: Double, _ b: Double, _ rng: inout some RandomNumberGenerator) -> Double {
        let x = gamma(a, &rng)
        let y = gamma(b, &rng)
        let s = x + y
        return s > 0 ? x / s : 0.5
    }

    /// Fisher-Yates shuffle of 0..<n into `perm` (reusing its storage), as `torch.randperm(n)` in law.
    static func permutation(_ n: Int, into perm: inout [Int32], _ rng: inout some RandomNumberGenerator) {
        perm.removeAll(keepingCapacity: true)
        for i in 0..<n { perm.append(Int32(i)) }
        var i = n - 1
        while i > 0 {
            let j = below(i + 1, &rng)
            perm.swapAt(i, j)
            i -= 1
        }
    }
}
