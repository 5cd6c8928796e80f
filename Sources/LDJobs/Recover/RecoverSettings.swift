import LDKernels
import LDRecords
import LDData
import LDNetworks
// What a recover run does: the method and its knobs (sre2l_cda.md 4-5, lpld.md 3), with the defaults of the
// reference PyTorch pipeline on Fashion-MNIST (peer/README.md): 1000 iterations, Adam 0.25 (0.5, 0.9),
// r_bn 0.01, first BN x10, one crop (scale 0.5-1), a flip and a roll of 0..2 pixels per batch and step.

/// The three recover methods. They share the loop (`RecoverSynthesizer`) and differ in batch composition,
/// BN target and crop schedule.
public enum RecoverMethod: String, CaseIterable, Sendable {
    /// SRe2L: cross-class batches (one image of each class in a chunk of classes per IPC index), BN loss
    /// against the teacher's global running statistics.
    case sre2l
    /// CDA: SRe2L plus the easy-to-hard curriculum on the crop scale's lower bound.
    case cda
    /// LPLD: within-class batches (the IPC images of one class), BN loss against that class's statistics.
    case lpld
    /// RDED (CVPR'24), no optimisation: the real crops the teacher finds most confidently of their class,
    /// stitched F x F per image (`RDED`).
    case rded

    /// Whether a batch holds one class (LPLD, RDED) rather than one image per class of a chunk (SRe2L, CDA).
    public var withinClass: Bool { self == .lpld || self == .rded }

    /// Whether the method optimises images against BN statistics (all but RDED).
    public var optimises: Bool { self != .rded }

    /// The default crop scale range. SRe2L and LPLD: (0.5, 1), as the Fashion-MNIST reference pipeline. The
    /// seeds' CIFAR recipe drops the crop for small images, and on 28-pixel images that matches the BN
    /// statistics far better (the BN loss falls ~110-180x instead of ~4x; upsampled crops are smoother than the
    /// image, so crop-trained images carry extra high-frequency energy), but the students trained on those
    /// images lose 1-4 points (IPC 10, 300 epochs of stored labels: sre2l 76.9 vs 80.5, lpld 79.8 vs 80.7),
    /// so the crop stays. CDA exists for its curriculum: the lower bound falls from 1 (the whole image) to the
    /// same 0.5, so CDA differs from SRe2L by the curriculum alone (ImageNet's 0.08 floor would mean 8-pixel
    /// crops here).
    public var defaultCropScale: (Float, Float) { self == .rded ? (0.08, 1) : (0.5, 1) }
}

/// The settings of one recover run that determine the images (everything but which shard runs).
public struct RecoverSettings: Equatable, Sendable {
    public var method: RecoverMethod
    /// Optimisation steps per batch (T).
    public var iterations: Int = 1000
    /// Adam's initial learning rate; cosine decay to 0 over the batch's iterations, no warm-up.
    public var learningRate: Float = 0.25
    /// Weight of the BN-statistics loss (r_bn).
    public var bnWeight: Float = 0.01
    /// Extra weight of the first BN layer's term.
    public var firstBNMultiplier: Float = 10
    /// Roll offsets are drawn from 0...jitter on each axis (non-negative, as the reference pipeline and CDA).
    public var jitter: Int = 2
    /// RandomResizedCrop scale range; for CDA the lower bound is the floor the curriculum falls to.
    public var cropScaleMin: Float
    public var cropScaleMax: Float
    /// Random horizontal flip (p = 0.5, one coin per batch and step).
    public var flip: Bool = true
    /// CDA's curriculum shape and the fraction of the iterations over which the lower bound falls.
    public var curriculum: CropCurriculum = .cosine
    public var milestone: Double = 1
    /// SRe2L/CDA: classes per batch; LPLD: images of one class per batch.
    public var batchSize: Int
    /// Seed of every random draw (initial noise, crop, flip, roll; RDED's candidates and crops).
    public var seed: UInt64 = 0
    /// RDED: cells per axis of a stitched image (F), random crops per candidate image, candidate images per
    /// class (the paper's factor, num_crop and mipc).
    public var factor: Int = 2
    public var crops: Int = 5
    public var candidates: Int = 300

    /// The method's defaults; `batchSize` is the number of classes (SRe2L, CDA) or the IPC (LPLD).
    public init(method: RecoverMethod, batchSize: Int) {
        self.method = method
        (cropScaleMin, cropScaleMax) = method.defaultCropScale
        self.batchSize = batchSize
    }

    /// Checks the knobs, naming the bad one.
    public func validate() throws {
        try Limits.check(iterations, "--iterations", limit: Limits.iterations)
        guard learningRate > 0, learningRate.isFinite else { throw LDError("--lr must be positive, got \(learningRate)") }
        guard bnWeight >= 0, bnWeight.isFinite else { throw LDError("--r-bn must be >= 0, got \(bnWeight)") }
        guard firstBNMultiplier >= 0, firstBNMultiplier.isFinite else {
            throw LDError("--first-bn-multiplier must be >= 0, got \(firstBNMultiplier)")
        }
        guard jitter >= 0 else { throw LDError("--jitter must be >= 0, got \(jitter)") }
        guard cropScaleMin > 0, cropScaleMin <= cropScaleMax, cropScaleMax <= 1 else {
            throw LDError("--crop-scale \(cropScaleMin),\(cropScaleMax): expected 0 < MIN <= MAX <= 1")
        }
        guard milestone >= 0, milestone <= 1 else { throw LDError("--milestone must be in [0, 1], got \(milestone)") }
        try Limits.check(batchSize, "--batch-size", limit: Limits.batchSize)
        if method == .rded {
            guard factor >= 1 else { throw LDError("--combine must be >= 1, got \(factor)") }
            guard crops >= 1 else { throw LDError("--crops must be >= 1, got \(crops)") }
            guard candidates >= 1 else { throw LDError("--candidates must be >= 1, got \(candidates)") }
        }
    }

    /// The crop scale range at iteration t (CDA: the curriculum's lower bound, capped at the upper bound).
    @inline(__always)
    public func cropScale(at t: Int) -> (Float, Float) {
        guard method == .cda else { return (cropScaleMin, cropScaleMax) }
        let low = curriculum.scaleMin(iteration: t, total: iterations, milestone: milestone, minimum: cropScaleMin)
        return (min(low, cropScaleMax), cropScaleMax)
    }

    /// The settings as JSON (manifest, resume check, stream header). Only what shapes the images.
    public var json: [String: JSONValue] {
        if method == .rded {
            return ["method": .string(method.rawValue), "combine": .int(Int64(factor)), "crops": .int(Int64(crops)),
                    "candidates": .int(Int64(candidates)), "crop_scale": .array([.number(cropScaleMin), .number(cropScaleMax)]),
                    "crop_ratio": .array([.number(1), .number(1)]), "seed": .int(Int64(bitPattern: seed))]
        }
        var o: [String: JSONValue] = [
            "method": .string(method.rawValue),
            "iterations": .int(Int64(iterations)),
            "lr": .number(learningRate),
            "r_bn": .number(bnWeight),
            "first_bn_multiplier": .number(firstBNMultiplier),
            "jitter": .int(Int64(jitter)),
            "crop_scale": .array([.number(cropScaleMin), .number(cropScaleMax)]),
            "flip": .bool(flip),
            "batch_size": .int(Int64(batchSize)),
            "seed": .int(Int64(bitPattern: seed)),
        ]
        if method == .cda {
            o["easy2hard_mode"] = .string(curriculum.rawValue)
            o["milestone"] = .double(milestone)
        }
        return o
    }
}
