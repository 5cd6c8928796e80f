import LDKernels
import LDRecords
import LDData
import LDNetworks
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

/// Fills a batch tensor (N, C, H, W) with normalised, augmented images of a data set.
///
/// The augmentation of the image at position `item` of batch `batch` in epoch `epoch` is drawn from
/// `LDRandom(seed, stage, major: epoch, minor: batch, item: item)`, so it depends on nothing else (not on
/// threads, shards or the images before it), and the drawn parameters are returned for recording. Images
/// are first normalised at full size into a staging tensor, then cropped/resized into the batch; all buffers
/// are reused from call to call.
public final class BatchLoader {
    public let data: Dataset
    public let normalization: Normalization
    /// The batch of the last `load` (N, C, H, W).
    public let batch = Tensor(shape: [0])
    /// Labels of the last `load`.
    public private(set) var labels: [Int32] = []
    /// Augmentations drawn (or replayed) by the last `load`.
    public private(set) var augmentations: [SampleAugmentation] = []
    private let staging = Tensor(shape: [0])
    private let scale: [Float], bias: [Float]

    public init(data: Dataset, normalization: Normalization) throws {
        guard normalization.mean.count == data.channels else {
            throw LDError("\(data.source): \(data.channels)-channel images, normalisation for \(normalization.mean.count) channels")
        }
        self.data = data
        self.normalization = normalization
        scale = normalization.std.map { 1 / (255 * $0) }
        bias = zip(normalization.mean, normalization.std).map { -$0.0 / $0.1 }
    }

    /// Loads `indices` with freshly drawn augmentations (see the type's comment for the key).
    @discardableResult
    public func load(_ indices: [Int], augment: SampleAugment, seed: UInt64, stage: RandomStage,
                     epoch: Int, batch batchIndex: Int) -> Tensor {
        augmentations.removeAll(keepingCapacity: true)
        for item in 0..<indices.count {
            var rng = LDRandom(seed: seed, stage: stage, major: epoch, minor: batchIndex, item: item)
            augmentations.append(augment.sample(height: data.height, width: data.width, using: &rng))
        }
        return apply(indices, augmentations, identity: augment == .none)
    }

    /// Loads `indices` with the given augmentations (replay of stored parameters).
    @discardableResult
    public func load(_ indices: [Int], replaying augs: [SampleAugmentation]) -> Tensor {
        precondition(augs.count == indices.count, "BatchLoader: \(augs.count) augmentations for \(indices.count) images")
        augmentations.removeAll(keepingCapacity: true)
        augmentations.append(contentsOf: augs)
        return apply(indices, augmentations, identity: false)
    }

    /// Loads `indices` without augmentation (evaluation).
    @discardableResult
    public func load(_ indices: [Int]) -> Tensor {
        augmentations.removeAll(keepingCapacity: true)
        return apply(indices, [], identity: true)
    }

    private func apply(_ indices: [Int], _ augs: [SampleAugmentation], identity: Bool) -> Tensor {
        let n = indices.count, c = data.channels, h = data.height, w = data.width
        let size = c * h * w, plane = h * w
        labels.removeAll(keepingCapacity: true)
        for i in indices { labels.append(data.labels[i]) }
        let target = identity ? batch : staging
        target.ensureShape(n, c, h, w)
        batch.ensureShape(n, c, h, w)
        let out = target.data
        scale.withUnsafeBufferPointer { sc in
            bias.withUnsafeBufferPointer { bi in
                data.pixels.withUnsafeBufferPointer { pix in
                    let src = pix.baseAddress!
                    for (k, i) in indices.enumerated() {
                        precondition(i >= 0 && i < data.count, "BatchLoader: image index \(i) out of range 0..<\(data.count)")
                        for ch in 0..<c {
                            let s = src + i * size + ch * plane
                            let d = out + k * size + ch * plane
                            let a = sc[ch], b = bi[ch]
                            for j in 0..<plane { d[j] = Float(s[j]) * a + b }
                        }
                    }
                }
            }
        }
        if !identity {
            let fill = normalization.zeroPixel
            for k in 0..<n { augs[k].apply(from: staging, image: k, into: batch, image: k, fill: fill) }
        }
        return batch
    }
}
