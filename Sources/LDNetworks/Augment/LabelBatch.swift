import LDKernels
import LDRecords
import LDData
/// The bridge between label-batch records and the pixels they describe: ld-relabel draws a batch's
/// augmentations, builds the batch with `LabelBatchBuilder`, runs the teacher on it and stores the record;
/// ld-train replays the record through the same builder, so the student sees exactly the pixels the teacher
/// saw (nothing is re-simulated).

extension LabelBatchRecord {
    /// The per-image crops and flips as augmentation parameters.
    public var sampleAugmentations: [SampleAugmentation] {
        zip(crops, flips).map { SampleAugmentation(box: $0, flip: $1) }
    }

    /// The batch's mix parameters (nil when not mixed).
    public var mixParams: MixParams? {
        switch mix {
        case .none: return nil
        case .mixup: return MixParams(perm: permutation.map { Int32($0) }, lam: lambda, box: nil)
        case .cutmix:
            return MixParams(perm: permutation.map { Int32($0) }, lam: lambda, box: box)
        }
    }

    /// Stores augmentation and mix parameters in record form. Crop boxes must lie inside the image (they do
    /// for RandomResizedCrop; u16 fields), which `validate(images:)` checks again on replay.
    public static func boxes(of augs: [SampleAugmentation]) throws -> (crops: [CropBox], flips: [Bool]) {
        var crops: [CropBox] = [], flips: [Bool] = []
        for a in augs {
            guard a.box.isInside(height: Int(UInt16.max), width: Int(UInt16.max)) else {
                throw LDError("crop box \(a.box) cannot be stored in a label record (it must lie inside the image)")
            }
            crops.append(a.box)
            flips.append(a.flip)
        }
        return (crops, flips)
    }

    /// The mix fields of a record for `params` of kind `kind`.
    public static func mixFields(_ kind: MixKind, _ params: MixParams?) -> (permutation: [UInt32], lambda: Float, box: CropBox) {
        guard kind != .none, let p = params else { return ([], 1, .zero) }
        let box = kind == .cutmix ? (p.box ?? .zero) : .zero
        return (p.perm.map { UInt32($0) }, p.lam, box)
    }

    /// Checks the record against an image set: indices in range, crop boxes inside the images, the CutMix
    /// box inside the image, and the class count.
    public func validate(images data: Dataset, source: String) throws {
        try validate()
        if classes != data.classes {
            throw LDError("\(source): label batch \(batch) has \(classes) classes, the image set \(data.classes)")
        }
        for (i, index) in indices.enumerated() {
            guard Int(index) < data.count else {
                throw LDError("\(source): label batch \(batch) names image \(index), the image set has \(data.count)")
            }
            let b = crops[i]
            guard b.height > 0, b.width > 0, Int(b.top) + Int(b.height) <= data.height,
                  Int(b.left) + Int(b.width) <= data.width else {
                throw LDError("\(source): label batch \(batch) crop \(b) lies outside the \(data.height)x\(data.width) images")
            }
        }
        if mix == .cutmix {
            guard Int(box.top) + Int(box.height) <= data.height, Int(box.left) + Int(box.width) <= data.width else {
                throw LDError("\(source): label batch \(batch) CutMix box lies outside the \(data.height)x\(data.width) images")
            }
        }
    }
}

/// Builds the (augmented, mixed, normalised) input batch of a label record.
public final class LabelBatchBuilder {
    public let loader: BatchLoader
    /// The mixed batch (when the record is mixed); `build` returns it or the loader's batch.
    private let mixed = Tensor(shape: [0])

    public init(data: Dataset, normalization: Normalization) throws {
        loader = try BatchLoader(data: data, normalization: normalization)
    }

    /// The batch a record describes: its images cropped and flipped as stored, then mixed as stored.
    /// The record must have been validated against the image set (`validate(images:source:)`).
    public func build(_ record: LabelBatchRecord) throws -> Tensor {
        try build(indices: record.indices.map { Int($0) }, augmentations: record.sampleAugmentations,
              mix: record.mix, params: record.mixParams)
    }

    /// The same from parameters (what ld-relabel uses before the record exists).
    public func build(indices: [Int], augmentations: [SampleAugmentation], mix: MixKind, params: MixParams?) throws -> Tensor {
        let x = try loader.load(indices, replaying: augmentations)
        guard let p = params else { return x }
        switch mix {
        case .none: return x
        case .cutmix: CutMix.apply(p, x, into: mixed)
        case .mixup: Mixup.apply(p, x, into: mixed)
        }
        return mixed
    }
}
