import LDKernels
import LDRecords
import LDData
import LDNetworks
// The recover loop (sre2l_cda.md 4.1-4.2, lpld.md 3.1) for one batch of synthetic images:
//
//     x ~ N(0, 1) per image (normalised space), or a real image (--init real); fresh Adam (betas 0.5, 0.9)
//     for t in 0..<T:
//         lr = cosine(t)
//         draw ONE crop box (RandomResizedCrop, CDA: curriculum lower bound), ONE flip, ONE roll for the batch
//         xa = roll(flip(cropResize(x)))
//         L = CE(teacher(xa), labels) + r_bn * (m_0 R_0 + sum_{l>0} R_l)      (BN hook on every BN input)
//             (K teachers, G-VBSM/EDC: L = (1/K) sum_k L_k, each teacher its own CE and BN terms)
//         backprop to x through roll, flip and crop; Adam step; clamp x to valid pixels per channel
//     save floor(clamp(x * std + mean, 0, 1) * 255)
//
// The teacher stays in eval mode (its BN normalises with running statistics) with frozen weights; the
// BN-statistics hook uses the batch's biased mean and variance. Every tensor is allocated once and reused,
// so a step allocates nothing.
//
// An ensemble weighs every teacher 1/K: the loss, its gradient and the reported CE and BN losses are the
// teachers' means. Two copies of one teacher therefore give the one-teacher run bit for bit (halving is
// exact in floating point).

/// What one batch produced.
public struct RecoverBatchResult {
    /// The saved images, uint8 planar (C, H, W) per image, in batch order.
    public var pixels: [UInt8]
    /// Cross-entropy and BN loss (sum of m_l R_l, before the r_bn weight) at the first and last iteration.
    public var ceFirst: Float
    public var ceLast: Float
    public var bnFirst: Float
    public var bnLast: Float
    /// The BN loss of the saved (uint8) images without augmentation: how well the set itself matches the
    /// target statistics, apart from the random crop of the last step.
    public var bnSaved: Float
}

/// Runs the recover optimisation for batches of one teacher. Not thread-safe (one per process).
public final class RecoverSynthesizer {
    /// The teachers (one, or an ensemble with equal weights); the first one's normalisation is every one's.
    public let models: [Model]
    /// The first teacher: the one that reports the saved images' top-1 and BN loss.
    public var model: Model { models[0] }
    public let settings: RecoverSettings
    public let normalization: Normalization
    public let channels: Int
    public let size: Int

    private let x = Tensor(shape: [0])          // the images being optimised (N, C, H, W)
    private let cropped = Tensor(shape: [0])    // crop-resize + flip of x
    private let input = Tensor(shape: [0])      // rolled: the teacher's input
    private let gradCropped = Tensor(shape: [0])
    private let gradX = Tensor(shape: [0])
    private let dLogits = Tensor(shape: [0])
    private let adam: ImageAdam
    private var labels: [Int32] = []

    /// - Throws: when LPLD is asked of a teacher without class statistics.
    public convenience init(teacher: ModelFile, settings: RecoverSettings) throws {
        try self.init(teachers: [teacher], settings: settings)
    }

    /// An ensemble: every teacher takes the same images (size, channels, normalisation) and classes.
    /// - Throws: naming the teacher that lacks BatchNorm, class statistics or agreement with the first.
    public init(teachers: [ModelFile], settings: RecoverSettings) throws {
        try settings.validate()
        guard let first = teachers.first else { throw LDError("recover: no teacher") }
        for (k, teacher) in teachers.enumerated() {
            let which = teachers.count > 1 ? "teacher \(k + 1) (\(teacher.model.config.summary))" : "the teacher (\(teacher.model.config.summary))"
            guard !teacher.model.batchNorms.isEmpty else {
                throw LDError("\(which) has no BatchNorm layers, whose statistics recovery matches; recover with a BatchNorm teacher (convnet, resnet18/50/101, vgg11, ...) and use this one with ld-relabel or ld-train --teacher")
            }
            if settings.method == .lpld && !teacher.hasClassStatistics {
                throw LDError("\(which) has no per-class BN statistics, which --method lpld matches; make it with `ld-squeeze --class-stats`")
            }
            guard k > 0 else { continue }
            let a = first.model.config, b = teacher.model.config
            if (b.channels, b.imageSize, b.classes) != (a.channels, a.imageSize, a.classes) {
                throw LDError("\(which) takes \(b.channels)x\(b.imageSize)x\(b.imageSize) images of \(b.classes) classes, teacher 1 \(a.channels)x\(a.imageSize)x\(a.imageSize) of \(a.classes): an ensemble needs the same images and classes")
            }
            guard teacher.classNames == first.classNames else {
                throw LDError("\(which) names its classes otherwise than teacher 1 (or orders them otherwise): an ensemble needs the same classes")
            }
            guard teacher.mean == first.mean, teacher.std == first.std, abs(teacher.evalRatio - first.evalRatio) < 1e-9 else {
                throw LDError("\(which) normalises its input with mean \(teacher.mean) std \(teacher.std) (evaluation ratio \(teacher.evalRatio)), teacher 1 with \(first.mean) \(first.std) (\(first.evalRatio)): an ensemble needs one input transform")
            }
        }
        models = teachers.map(\.model)
        self.settings = settings
        normalization = Normalization(of: first)
        channels = first.model.config.channels
        size = first.model.config.imageSize
        adam = ImageAdam(count: 0, learningRate: settings.learningRate)
        for m in models { m.training = false }
    }

    /// Checks that the BN target exists for `classIndex` (LPLD needs that class's statistics in every layer).
    public func checkTarget(classIndex: Int) throws {
        guard settings.method == .lpld else { return }
        for bn in models.flatMap(\.batchNorms) {
            guard let cs = bn.classStatistics, classIndex < cs.classes, cs.count[classIndex] > 0 else {
                throw LDError("the teacher has no BN statistics for class \(classIndex) (layer \(bn.name)); make it with `ld-squeeze --class-stats` on data holding that class")
            }
        }
    }

    /// Optimises one batch from `start` (the batch's real images, uint8 planar in batch order; nil: keyed
    /// noise). `step(t, ce, bn)` is called after every iteration (progress).
    public func run(_ batch: RecoverBatch, start: [UInt8]? = nil,
                    step: (Int, Float, Float) -> Void = { _, _, _ in }) throws -> RecoverBatchResult {
        let s = settings
        let n = batch.images.count
        precondition(n > 0, "RecoverSynthesizer.run: empty batch")
        let (c, h, w) = (channels, size, size)
        let plane = h * w, imageSize = c * plane
        for t in [x, cropped, input, gradCropped, gradX] { t.ensureShape(n, c, h, w) }
        labels = batch.images.map { Int32($0.classIndex) }

        if let start {
            precondition(start.count == n * imageSize, "RecoverSynthesizer.run: \(start.count) start bytes for \(n) images")
            normalize(start, count: n, into: x)
        } else {
            // Initial noise, one keyed stream per image.
            for (b, image) in batch.images.enumerated() {
                var rng = RecoverPlan.noiseRandom(seed: s.seed, image)
                rng.fillNormal(x.data + b * imageSize, count: imageSize)
            }
        }
        let target: BNStatisticsLoss.Target = s.method == .lpld ? .classStatistics(batch.images[0].classIndex) : .running
        if s.method == .lpld { try checkTarget(classIndex: batch.images[0].classIndex) }
        let (low, high) = normalization.bounds
        let schedule = LRSchedule.cosine(base: s.learningRate, total: s.iterations)
        let jitter = Jitter(lower: 0, upper: s.jitter)
        let bnScale = s.bnWeight > 0 ? s.bnWeight : 1
        let weight = 1 / Float(models.count)
        adam.reset(count: n * imageSize)
        for m in models { m.training = false; m.captureBatchStatistics = true }
        defer { for m in models { m.captureBatchStatistics = false } }

        var result = RecoverBatchResult(pixels: [], ceFirst: 0, ceLast: 0, bnFirst: 0, bnLast: 0, bnSaved: 0)
        try labels.withUnsafeBufferPointer { labelBuffer in
            for t in 0..<s.iterations {
                adam.learningRate = schedule.lr(at: t)
                // One crop box, one flip, one roll for the whole batch, in that order.
                var rng = RecoverPlan.stepRandom(seed: s.seed, batch, iteration: t)
                let (scaleLow, scaleHigh) = s.cropScale(at: t)
                let crop = RandomResizedCrop(scale: (scaleLow, scaleHigh))
                let box = crop.sampleBox(height: h, width: w, using: &rng)
                let flip = s.flip ? drawFlip(using: &rng) : false
                let (dy, dx) = jitter.sample(using: &rng)

                bilinearCropResize(x, box: box, flip: flip, into: cropped)
                roll(cropped, dy: dy, dx: dx, into: input)
                gradCropped.fill(0)
                var ce: Float = 0, bn: Float = 0
                for model in models {
                    let logits = model.forward(input)
                    var ceK = try CrossEntropy.loss(logits: logits, labels: labelBuffer, dLogits: dLogits)
                    var bnK = try BNStatisticsLoss.loss(model.batchNorms, target: target, firstWeight: s.firstBNMultiplier,
                                                        otherWeight: 1, scale: bnScale * weight)
                    if s.bnWeight > 0 {
                        bnK /= s.bnWeight
                    } else {
                        for layer in model.batchNorms { layer.dBatchMean.fill(0); layer.dBatchVariance.fill(0) }
                    }
                    if models.count > 1 { ceK *= weight; dLogits.scale(by: weight) }
                    ce += ceK; bn += bnK
                    guard ce.isFinite && bn.isFinite else {
                        throw LDError("recovery diverged at iteration \(t + 1) (cross-entropy \(ce), BN loss \(bn)): lower --lr or --r-bn; nothing of this batch written")
                    }
                    guard let gradInput = model.backward(dLogits, inputGrad: true, paramGrads: false) else {
                        throw LDError("recover: the teacher returned no input gradient")
                    }
                    rollBackward(gradInput, dy: dy, dx: dx, into: gradCropped)
                }
                gradX.fill(0)
                bilinearCropResizeBackward(gradCropped, box: box, flip: flip, into: gradX)
                adam.step(x, grad: gradX)
                RecoverSynthesizer.clamp(x, n: n, channels: c, plane: plane, low: low, high: high)

                if t == 0 { result.ceFirst = ce; result.bnFirst = bn }
                if t == s.iterations - 1 { result.ceLast = ce; result.bnLast = bn }
                step(t, ce, bn)
            }
        }
        result.pixels = RecoverSynthesizer.toPixels(x, n: n, channels: c, plane: plane,
                                                    mean: normalization.mean, std: normalization.std)
        normalize(result.pixels, count: n, into: input)
        for model in models {
            _ = model.forward(input)
            result.bnSaved += try BNStatisticsLoss.loss(model.batchNorms, target: target, firstWeight: s.firstBNMultiplier,
                                                        otherWeight: 1, scale: weight)
            for layer in model.batchNorms { layer.dBatchMean.fill(0); layer.dBatchVariance.fill(0) }
        }
        return result
    }

    /// Clamps every channel plane to [low[c], high[c]] (the normalised image of pixel values 0 and 1).
    static func clamp(_ x: Tensor, n: Int, channels: Int, plane: Int, low: [Float], high: [Float]) {
        let p = x.data
        for b in 0..<n {
            for ch in 0..<channels {
                let lo = low[ch], hi = high[ch]
                let q = p + (b * channels + ch) * plane
                for i in 0..<plane {
                    let v = q[i]
                    q[i] = v < lo ? lo : (v > hi ? hi : v)
                }
            }
        }
    }

    /// floor(clamp(x * std + mean, 0, 1) * 255) per pixel: the reference's truncating save (sre2l_cda.md 4.5).
    public static func toPixels(_ x: Tensor, n: Int, channels: Int, plane: Int, mean: [Float], std: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n * channels * plane)
        let p = UnsafePointer(x.data)
        out.withUnsafeMutableBufferPointer { buf in
            let o = buf.baseAddress!
            for b in 0..<n {
                for ch in 0..<channels {
                    let m = mean[ch], sd = std[ch]
                    let base = (b * channels + ch) * plane
                    for i in 0..<plane {
                        var v = p[base + i] * sd + m
                        v = v > 0 ? (v > 1 ? 1 : v) : 0   // NaN (never reached: a diverged batch throws) as 0
                        o[base + i] = UInt8(v * 255)   // truncation toward zero = floor for v >= 0
                    }
                }
            }
        }
        return out
    }

    /// Writes `count` uint8 images as the teacher's normalised input (as BatchLoader: p / (255 std) - mean / std).
    private func normalize(_ pixels: ArraySlice<UInt8>, count: Int, into t: Tensor) {
        t.ensureShape(count, channels, size, size)
        pixels.withUnsafeBufferPointer { px in
            normalization.apply(px.baseAddress!, count: count, plane: size * size, into: t.data)
        }
    }

    private func normalize(_ pixels: [UInt8], count: Int, into t: Tensor) {
        normalize(pixels[...], count: count, into: t)
    }
}
