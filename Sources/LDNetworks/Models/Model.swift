import LDKernels
import LDRecords
import LDData
import Foundation

/// A network built from a `ModelConfig`: NCHW images in, (N, classes) logits out.
///
/// Internally activations are channel-major (see `Layer`); `forward` converts the input once and `backward`
/// converts the input gradient back. Every buffer is owned by a layer or by the model and reused, so a
/// steady-state step allocates nothing.
public final class Model {
    public let config: ModelConfig
    /// The layers in order (ResNet blocks are single `BasicBlock` layers).
    public let layers: [Layer]
    /// Trainable parameters in a stable order with stable names (registration order).
    public let parameters: [Parameter]
    /// BatchNorm layers in registration order (stem bn, then per block bn1, bn2, downsample bn).
    public let batchNorms: [BatchNorm2d]
    /// The shared im2col workspace of the convolutions.
    public let workspace: Workspace
    /// The input-gradient buffers the layers share during backward.
    public let gradients = GradientPool()

    /// Input in channel-major layout (C,N,H,W) and the input gradient in NCHW.
    private let inputCNHW = Tensor(shape: [0])
    public let inputGrad = Tensor(shape: [0])
    /// Whether the last pass was `predict` (no backward may follow it).
    private var predicted = false

    /// Builds the model and draws its initial weights from `rng` (parameters in registration order).
    public init<G: RandomNumberGenerator>(_ config: ModelConfig, rng: inout G) throws {
        try config.validate()
        self.config = config
        let ws = Workspace()
        workspace = ws
        let (layers, bns) = try Architectures.named(config.arch).layers(config, workspace: ws, rng: &rng)
        for l in layers { l.gradientPool = gradients }
        self.layers = layers
        self.batchNorms = bns
        self.parameters = layers.flatMap { $0.parameters }
        layers.first?.wantsInputGrad = false
    }

    /// Named buffers (BN running statistics `<bn>.running_mean`, `<bn>.running_var`) in registration order.
    public var buffers: [(name: String, tensor: Tensor)] { batchNorms.flatMap { $0.buffers } }

    /// Per-class statistics of every BatchNorm input, named `<bn>.class_stats`, in registration order; nil
    /// entries for layers that have none yet. Assign `BatchNorm2d.classStatistics` to install loaded ones.
    public var classStatistics: [(name: String, stats: ClassStatistics?)] {
        batchNorms.map { (($0.name.isEmpty ? "" : $0.name + ".") + "class_stats", $0.classStatistics) }
    }

    /// Train mode (batch statistics, running-stat updates) or eval mode.
    public var training: Bool = true {
        didSet { for l in layers { l.training = training } }
    }

    /// Switches the BN-statistics hook on every BatchNorm layer (see `BatchNorm2d`).
    public var captureBatchStatistics: Bool = false {
        didSet { for b in batchNorms { b.captureBatchStatistics = captureBatchStatistics } }
    }

    /// Sets every parameter gradient to zero.
    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// x (N,C,H,W) → logits (N,K). When `classLabels` (N labels) is given, every BatchNorm layer also adds
    /// its input's per-class statistics to `classStatistics` (LPLD), in train or eval mode.
    public func forward(_ x: Tensor, classLabels: UnsafePointer<Int32>? = nil) -> Tensor {
        predicted = false
        var t = toCNHW(x)
        if let labels = classLabels {
            for b in batchNorms {
                if b.classStatistics == nil { b.classStatistics = ClassStatistics(classes: config.classes, channels: b.channels) }
                b.classLabels = labels
            }
        }
        for l in layers { t = l.forward(t) }
        if classLabels != nil { for b in batchNorms { b.classLabels = nil } }
        return t
    }

    /// Eval-mode logits (N,K) of x (N,C,H,W) for inference (relabelling, online soft labels, accuracy): the
    /// same values as `forward` in eval mode, but a convolution followed by a BatchNorm applies it (and a
    /// residual block's addition and ReLU) while its output is still in cache, where the convolution can
    /// (`Conv2d.forward(_:then:)`). No backward may follow.
    public func predict(_ x: Tensor) -> Tensor {
        precondition(!training, "Model.predict in train mode")
        predicted = true
        var t = toCNHW(x)
        var i = 0
        while i < layers.count {
            if let c = layers[i] as? Conv2d, i + 1 < layers.count, let b = layers[i + 1] as? BatchNorm2d,
               let y = c.forward(t, then: b) {
                t = y; i += 2
                continue
            }
            t = (layers[i] as? BasicBlock)?.predict(t) ?? (layers[i] as? InvertedResidual)?.predict(t) ?? layers[i].forward(t)
            i += 1
        }
        return t
    }

    /// The batch x (N,C,H,W) in the engine's channel-major layout (C,N,H,W), in `inputCNHW`.
    private func toCNHW(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[1] == config.channels, "Model: input \(x.shape), expected (N,\(config.channels),H,W)")
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        inputCNHW.ensureShape(c, n, h, w)
        nchwToCNHW(x.data, inputCNHW.data, n: n, c: c, hw: h * w)
        return inputCNHW
    }

    /// Given dL/dlogits (N,K) for the last forward: accumulates parameter gradients when `paramGrads`
    /// (set false with frozen weights, e.g. recover, to skip all weight-gradient GEMMs) and returns dL/dx
    /// (N,C,H,W, owned by the model) when `inputGrad`, else nil.
    @discardableResult
    public func backward(_ dLogits: Tensor, inputGrad wantInput: Bool = false, paramGrads: Bool = true) -> Tensor? {
        precondition(!predicted, "Model.backward after predict (use forward)")
        for l in layers { l.wantsParamGrads = paramGrads }
        layers[0].wantsInputGrad = wantInput
        var g: Tensor? = dLogits
        for l in layers.reversed() {
            guard let d = g else { break }
            g = l.backward(d)
            if g !== d { gradients.release(d) }   // consumed (layers working in place return dy itself)
        }
        guard wantInput, let dx = g else { gradients.release(g); return nil }
        let c = dx.shape[0], n = dx.shape[1], h = dx.shape[2], w = dx.shape[3]
        inputGrad.ensureShape(n, c, h, w)
        cnhwToNCHW(dx.data, inputGrad.data, n: n, c: c, hw: h * w)
        gradients.release(dx)
        return inputGrad
    }

    /// One line per layer for `-v` output (stderr): kind, output shape per image, parameters, MFLOP forward.
    public var summary: [String] {
        var shape = ImageShape(c: config.channels, h: config.imageSize, w: config.imageSize)
        var lines = ["\(config.arch): input \(shape.c)x\(shape.h)x\(shape.w), \(parameters.reduce(0) { $0 + $1.value.count }) parameters, \(String(format: "%.1f", Double(2 * macsPerImage) / 1e6)) MFLOP forward per image"]
        for l in layers {
            let t = l.trace(shape)
            shape = t.output
            lines.append(String(format: "  %-24@ -> %4dx%3dx%-3d %9d params %8.2f MFLOP", t.label, shape.c, shape.h, shape.w,
                                l.parameters.reduce(0) { $0 + $1.value.count }, Double(2 * t.macs) / 1e6))
        }
        return lines
    }

    /// Multiply–accumulates of one image's forward pass (convolutions, linear layers and what else
    /// the layers count in `trace`).
    public var macsPerImage: Int {
        var shape = ImageShape(c: config.channels, h: config.imageSize, w: config.imageSize), total = 0
        for l in layers { let t = l.trace(shape); total += t.macs; shape = t.output }
        return total
    }

    /// The largest output of one image's forward pass over the layers (floats): what an inference batch's
    /// biggest activation takes per image, to size batches by memory.
    public var largestActivationPerImage: Int {
        var shape = ImageShape(c: config.channels, h: config.imageSize, w: config.imageSize), most = shape.c * shape.h * shape.w
        for l in layers { shape = l.trace(shape).output; most = max(most, shape.c * shape.h * shape.w) }
        return most
    }

    /// An inference batch size for evaluating on a whole set: `most` images, fewer when the largest
    /// activation of the batch would pass 64 M floats (256 MB; a few of them are alive at once), at least 8.
    public func evaluationBatch(most: Int = 500) -> Int {
        max(8, min(most, (1 << 26) / max(1, largestActivationPerImage)))
    }
}

private func nchwToCNHW(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, n: Int, c: Int, hw: Int) {
    for i in 0..<n { for ch in 0..<c { (dst + (ch * n + i) * hw).update(from: src + (i * c + ch) * hw, count: hw) } }
}

private func cnhwToNCHW(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, n: Int, c: Int, hw: Int) {
    for i in 0..<n { for ch in 0..<c { (dst + (i * c + ch) * hw).update(from: src + (ch * n + i) * hw, count: hw) } }
}
