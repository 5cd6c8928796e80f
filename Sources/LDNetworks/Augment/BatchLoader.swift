import LDKernels
import LDRecords
import LDData
/// Fills a batch tensor (N, C, H, W) with normalised, augmented images of a data set.
///
/// The augmentations are given (drawn by `BatchDraws`, or replayed from a label record). Images are first
/// normalised at full size into a staging tensor, then cropped/resized into the batch (identity
/// augmentations skip the staging); all buffers are reused from call to call.
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

    /// Loads `indices` with the given augmentations (replay of stored parameters).
    @discardableResult
    public func load(_ indices: [Int], replaying augs: [SampleAugmentation]) -> Tensor {
        precondition(augs.count == indices.count, "BatchLoader: \(augs.count) augmentations for \(indices.count) images")
        augmentations.removeAll(keepingCapacity: true)
        augmentations.append(contentsOf: augs)
        let whole = CropBox.full(height: data.height, width: data.width)
        return apply(indices, augmentations, identity: augs.allSatisfy { $0.box == whole && !$0.flip })
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
