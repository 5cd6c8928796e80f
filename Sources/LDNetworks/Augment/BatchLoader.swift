import LDKernels
import LDRecords
import LDData
import Dispatch
/// Fills a batch tensor (N, C, H, W) with normalised, augmented images of a data set.
///
/// The augmentations are given (drawn by `BatchDraws`, or replayed from a label record). Images are first
/// normalised at full size into a staging tensor, then cropped/resized into the batch (identity
/// augmentations skip the staging); all buffers are reused from call to call.
///
/// A set kept on disk (`Dataset.isResident` false) is decoded batch by batch, on all cores; `prefetch`
/// decodes the next batch on a background thread while the model works on this one, so a sequential pass
/// (evaluation, statistics) holds two batches of pixels at most.
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
    /// Decoded uint8 pixels of the batch being loaded and of the one being prefetched (sets on disk).
    private var current = PixelBuffer(), spare = PixelBuffer()
    private var pending: Pending?
    /// Training views cropped from the whole stored images (a folder of any size kept on disk): `load(_:replaying:)`
    /// takes each augmentation's box in the image's stored pixels and resamples it straight to the set's size,
    /// as torchvision's RandomResizedCrop on the decoded image (see `Dataset.crops`).
    public var cropsFromWholeImages = false
    /// A set on disk: images decoded so far, and the seconds `load` waited for pixels (decoding itself when
    /// nothing was prefetched, or the rest of a prefetch), to show whether the model waits on data.
    public private(set) var decodedImages = 0
    public private(set) var waitSeconds = 0.0
    /// Seconds spent decoding batches (in the background or not): `decodedImages / decodeSeconds` is the
    /// decode rate.
    public private(set) var decodeSeconds = 0.0
    private let queue = DispatchQueue(label: "ld.batch-prefetch")

    public init(data: Dataset, normalization: Normalization) throws {
        guard normalization.mean.count == data.channels else {
            throw LDError("\(data.source): \(data.channels)-channel images, normalisation for \(normalization.mean.count) channels")
        }
        self.data = data
        self.normalization = normalization
        (scale, bias) = normalization.coefficients
    }

    /// Loads `indices` with the given augmentations (replay of stored parameters).
    @discardableResult
    public func load(_ indices: [Int], replaying augs: [SampleAugmentation]) throws -> Tensor {
        precondition(augs.count == indices.count, "BatchLoader: \(augs.count) augmentations for \(indices.count) images")
        augmentations.removeAll(keepingCapacity: true)
        augmentations.append(contentsOf: augs)
        if cropsFromWholeImages { return try apply(indices, [], identity: true, crops: augs) }
        let whole = CropBox.full(height: data.height, width: data.width)
        return try apply(indices, augmentations, identity: augs.allSatisfy { $0.box == whole && !$0.flip })
    }

    /// Loads `indices` without augmentation (evaluation).
    @discardableResult
    public func load(_ indices: [Int]) throws -> Tensor {
        augmentations.removeAll(keepingCapacity: true)
        return try apply(indices, [], identity: true)
    }

    /// Starts decoding `indices` in the background (a set on disk; nothing for a set in memory), for the next
    /// `load` of the same indices. At most one batch ahead: a second call before that `load` is ignored.
    /// `crops`: the augmentations the next `load(_:replaying:)` will give (with `cropsFromWholeImages`).
    public func prefetch(_ indices: [Int], crops: [SampleAugmentation]? = nil) {
        guard !data.isResident, pending == nil else { return }
        let buffer = spare, set = data
        buffer.ensure(indices.count * set.imageSize)
        let p = Pending(indices: indices, crops: crops)
        let views = crops.map { $0.map { (box: $0.box, flip: $0.flip) } }
        queue.async(group: p.group) {
            let t0 = Progress.now()
            do {
                if let views { try set.crops(indices, views, into: buffer.pointer) } else { try set.images(indices, into: buffer.pointer) }
            } catch { p.error = error }
            p.seconds = Progress.now() - t0
        }
        pending = p
    }

    /// The uint8 pixels of `indices` (a set on disk): the prefetched batch if it is this one, else decoded now.
    private func decoded(_ indices: [Int], crops: [SampleAugmentation]?) throws -> UnsafePointer<UInt8> {
        let t0 = Progress.now()
        decodedImages += indices.count
        defer { waitSeconds += Progress.now() - t0 }
        if let p = pending {
            pending = nil
            p.group.wait()
            decodeSeconds += p.seconds
            if p.indices == indices && p.crops == crops {
                if let error = p.error { throw error }
                swap(&current, &spare)
                return UnsafePointer(current.pointer)
            }
        }
        current.ensure(indices.count * data.imageSize)
        let t1 = Progress.now()
        defer { decodeSeconds += Progress.now() - t1 }
        if let crops {
            try data.crops(indices, crops.map { (box: $0.box, flip: $0.flip) }, into: current.pointer)
        } else {
            try data.images(indices, into: current.pointer)
        }
        return UnsafePointer(current.pointer)
    }

    private func apply(_ indices: [Int], _ augs: [SampleAugmentation], identity: Bool, crops: [SampleAugmentation]? = nil) throws -> Tensor {
        let n = indices.count, c = data.channels, h = data.height, w = data.width
        let size = c * h * w, plane = h * w
        labels.removeAll(keepingCapacity: true)
        for i in indices { labels.append(data.labels[i]) }
        let target = identity ? batch : staging
        target.ensureShape(n, c, h, w)
        batch.ensureShape(n, c, h, w)
        let out = target.data
        // Resident: image i at pixels[i * size]; on disk: the batch's k-th decoded image at k * size.
        let onDisk = data.isResident ? nil : try decoded(indices, crops: crops)
        scale.withUnsafeBufferPointer { sc in
            bias.withUnsafeBufferPointer { bi in
                data.pixels.withUnsafeBufferPointer { pix in
                    for (k, i) in indices.enumerated() {
                        let src: UnsafePointer<UInt8>
                        if let onDisk { src = onDisk + k * size } else {
                            precondition(i >= 0 && i < data.count, "BatchLoader: image index \(i) out of range 0..<\(data.count)")
                            src = pix.baseAddress! + i * size
                        }
                        for ch in 0..<c {
                            let s = src + ch * plane
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

/// A growable uint8 buffer that is never shrunk (a batch's decoded pixels).
final class PixelBuffer: @unchecked Sendable {
    private(set) var pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
    private var capacity = 1
    func ensure(_ n: Int) {
        guard n > capacity else { return }
        pointer.deallocate()
        pointer = .allocate(capacity: n)
        capacity = n
    }
    deinit { pointer.deallocate() }
}

/// A batch being decoded in the background.
private final class Pending: @unchecked Sendable {
    let indices: [Int]
    let crops: [SampleAugmentation]?
    let group = DispatchGroup()
    var error: Error?
    var seconds = 0.0
    init(indices: [Int], crops: [SampleAugmentation]?) { self.indices = indices; self.crops = crops }
}
