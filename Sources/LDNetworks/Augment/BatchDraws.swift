import LDKernels
import LDRecords
import LDData

// The keyed batch draws every tool shares: ld-relabel, ld-train's online teacher and hard labels, and ld-squeeze's
// teacher all cut an epoch's permutation into batches and draw each image's augmentation and each batch's mix
// from the same keys, so the same seed gives the same batches wherever they are drawn.

/// Per-image training augmentation of a batch: none, torchvision's RandomCrop with zero padding (plus flip),
/// RandomResizedCrop (plus flip), or RandomResizedCrop kept inside one cell of a combined canvas (plus flip).
public enum SampleAugment: Equatable {
    case none
    case randomCrop(RandomCrop)
    case randomResizedCrop(RandomResizedCrop, flipProbability: Float)
    case gridRandomResizedCrop(GridRandomResizedCrop, flipProbability: Float)

    /// Draws the augmentation of one H x W image.
    public func sample(height: Int, width: Int, using rng: inout LDRandom) -> SampleAugmentation {
        switch self {
        case .none: return .identity(height: height, width: width)
        case .randomCrop(let rc): return rc.sample(height: height, width: width, using: &rng)
        case .randomResizedCrop(let rrc, let p): return rrc.sample(height: height, width: width, flipProbability: p, using: &rng)
        case .gridRandomResizedCrop(let g, let p): return g.sample(height: height, width: width, flipProbability: p, using: &rng)
        }
    }

    /// The same augmentation with its RandomResizedCrop kept inside one cell of an F x F grid on H x W
    /// images (`--grid-aware-crop`); throws for the other kinds (nothing to constrain) and for a grid the
    /// images cannot hold.
    public func constrained(toGrid factor: Int, height: Int, width: Int) throws -> SampleAugment {
        _ = try ImageGrid(height: height, width: width, factor: factor)
        switch self {
        case .randomResizedCrop(let rrc, let p):
            return .gridRandomResizedCrop(GridRandomResizedCrop(crop: rrc, factor: factor), flipProbability: p)
        case .gridRandomResizedCrop(let g, let p):
            return .gridRandomResizedCrop(GridRandomResizedCrop(crop: g.crop, factor: factor), flipProbability: p)
        case .none, .randomCrop:
            throw LDError("the grid-aware crop constrains RandomResizedCrop (--augment rrc); the augmentation is \(self.name)")
        }
    }

    /// A short name for messages: none, crop, rrc or grid-rrc.
    public var name: String {
        switch self {
        case .none: return "none"
        case .randomCrop: return "crop"
        case .randomResizedCrop: return "rrc"
        case .gridRandomResizedCrop: return "grid-rrc"
        }
    }
}

/// The per-image augmentations a run can name (`--augment`), for the teacher and the student alike.
public enum AugmentKind: String, CaseIterable, Codable, Sendable {
    /// RandomResizedCrop (scale range given, ratio 3/4..4/3) plus a horizontal flip at p = 0.5.
    case rrc
    /// RandomCrop with zero padding plus a flip at p = 0.5 (the CIFAR recipe pads 4).
    case crop
    /// The image as it is.
    case none

    /// The sampler: `crop` pads `cropPadding` pixels, `rrc` draws its area from `cropScale`.
    public func sampler(cropPadding: Int, cropScale: (Float, Float)) throws -> SampleAugment {
        switch self {
        case .none: return .none
        case .crop: return .randomCrop(RandomCrop(padding: cropPadding, flipProbability: 0.5))
        case .rrc: return .randomResizedCrop(try RandomResizedCrop.validated(scale: cropScale), flipProbability: 0.5)
        }
    }
}

/// One batch's draw: which images, each one's crop and flip, and the batch's mix. A label record stores
/// exactly these; the online modes and the teacher draw them.
public struct BatchDraw: Equatable {
    public var indices: [Int]
    public var augmentations: [SampleAugmentation]
    public var mix: MixKind
    /// nil when `mix` is `.none`.
    public var params: MixParams?

    public init(indices: [Int], augmentations: [SampleAugmentation], mix: MixKind, params: MixParams?) {
        self.indices = indices
        self.augmentations = augmentations
        self.mix = mix
        self.params = params
    }
}

/// A run's batch mixing: the kind and the Beta(alpha, alpha) of each kind's lambda (the seeds': CutMix 1.0,
/// Mixup 0.8).
public struct BatchMix: Equatable, Sendable {
    public var kind: MixKind
    public var cutmixAlpha: Double
    public var mixupAlpha: Double

    public init(_ kind: MixKind, cutmixAlpha: Double = 1.0, mixupAlpha: Double = 0.8) {
        self.kind = kind
        self.cutmixAlpha = cutmixAlpha
        self.mixupAlpha = mixupAlpha
    }

    public static let none = BatchMix(.none)
}

/// The batches of a run over `count` images, drawn by key:
///
/// - the order of epoch e: a permutation of 0..<count from `LDRandom(seed, orderStage, major: e)`
///   (`.relabel` for ld-relabel and ld-train's online modes, `.squeeze` for the teacher), cut into
///   consecutive batches of `batchSize` (the last one partial, or dropped with `dropLast`);
/// - the augmentation of the image at position i of batch b: `augment.sample` from
///   `LDRandom(seed, .augment, major: e, minor: b, item: i)`, with b local to the epoch;
/// - the mix of batch b: `CutMix.sample` / `Mixup.sample` from `LDRandom(seed, .mix, major: e, minor: b)`.
///
/// Nothing depends on the thread count, on shards or on earlier batches.
public struct BatchDraws {
    public let count: Int
    public let height: Int
    public let width: Int
    public let batchSize: Int
    public let dropLast: Bool
    public let augment: SampleAugment
    public let mix: BatchMix
    public let seed: UInt64
    public let orderStage: RandomStage

    public init(count: Int, height: Int, width: Int, batchSize: Int, dropLast: Bool = false, augment: SampleAugment,
                mix: BatchMix = .none, seed: UInt64, orderStage: RandomStage = .relabel) {
        precondition(batchSize > 0, "BatchDraws: batch size \(batchSize)")
        self.count = count
        self.height = height
        self.width = width
        self.batchSize = batchSize
        self.dropLast = dropLast
        self.augment = augment
        self.mix = mix
        self.seed = seed
        self.orderStage = orderStage
    }

    /// Batches per epoch: ceil(count / batchSize), or floor with `dropLast`.
    public var batchesPerEpoch: Int { dropLast ? count / batchSize : (count + batchSize - 1) / batchSize }

    /// The image order of epoch `epoch`.
    public func order(epoch: Int) -> [Int] {
        var rng = LDRandom(seed: seed, stage: orderStage, major: epoch)
        return rng.permutation(count)
    }

    /// The image indices of batch `batch`, cut from its epoch's `order`.
    public func indices(batch: Int, order: [Int]) -> [Int] {
        precondition(batch >= 0 && batch < batchesPerEpoch, "BatchDraws: batch \(batch) of \(batchesPerEpoch)")
        let start = batch * batchSize
        return Array(order[start..<min(start + batchSize, order.count)])
    }

    /// The augmentations of the `count` images of batch `batch` of epoch `epoch`.
    public func augmentations(epoch: Int, batch: Int, count: Int) -> [SampleAugmentation] {
        (0..<count).map { item in
            var rng = LDRandom(seed: seed, stage: .augment, major: epoch, minor: batch, item: item)
            return augment.sample(height: height, width: width, using: &rng)
        }
    }

    /// The same for images of their own sizes (training views cropped from whole images of any size): item i
    /// is drawn for an image of `sizes[i]`, from the same keys.
    public func augmentations(epoch: Int, batch: Int, sizes: [(height: Int, width: Int)]) -> [SampleAugmentation] {
        sizes.enumerated().map { item, size in
            var rng = LDRandom(seed: seed, stage: .augment, major: epoch, minor: batch, item: item)
            return augment.sample(height: size.height, width: size.width, using: &rng)
        }
    }

    /// The mix of batch `batch` of epoch `epoch` over `count` images (nil when the run does not mix).
    public func mixParams(epoch: Int, batch: Int, count: Int) -> MixParams? {
        guard mix.kind != .none else { return nil }
        var rng = LDRandom(seed: seed, stage: .mix, major: epoch, minor: batch)
        var p = MixParams()
        if mix.kind == .cutmix {
            CutMix.sample(batch: count, height: height, width: width, alpha: mix.cutmixAlpha, into: &p, using: &rng)
        } else {
            Mixup.sample(batch: count, alpha: mix.mixupAlpha, into: &p, using: &rng)
        }
        return p
    }

    /// Batch `batch` of epoch `epoch`, given that epoch's `order`.
    public func draw(epoch: Int, batch: Int, order: [Int]) -> BatchDraw {
        let idx = indices(batch: batch, order: order)
        return BatchDraw(indices: idx, augmentations: augmentations(epoch: epoch, batch: batch, count: idx.count),
                         mix: mix.kind, params: mixParams(epoch: epoch, batch: batch, count: idx.count))
    }
}
