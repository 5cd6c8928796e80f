import LDKernels

/// MobileNetV2's inverted residual and EfficientNet's MBConv: expand (1×1 convolution → BN+act, left out when
/// the expansion is 1), depthwise k×k/stride → BN+act, optional squeeze-and-excitation, project (1×1
/// convolution → BN, no activation), plus x when the stride is 1 and the width is unchanged (no activation
/// after the sum). x (C,N,H,W) → y (K,N,Ho,Wo).
///
/// No stochastic depth (EfficientNet's residual branch is always kept, as torchvision's eval mode does):
/// ld's training is deterministic and has no per-sample drop.
public final class InvertedResidual: Layer {
    /// Expansion to the hidden width, nil when the expansion ratio is 1.
    public let expand: (conv: Conv2d, bn: BatchNorm2d)?
    /// The depthwise convolution (carries the stride) and its BN (with the activation).
    public let depthwise: DepthwiseConv2d, depthwiseBN: BatchNorm2d
    /// EfficientNet's gate on the hidden activations.
    public let squeezeExcitation: SqueezeExcitation?
    /// Projection to the output width and its BN (no activation).
    public let project: Conv2d, projectBN: BatchNorm2d
    /// Whether x is added to the output (stride 1, C == K).
    public let residual: Bool
    /// The block's name in summaries (`features.3`, `features.2.1`).
    public let name: String

    public var parameters: [Parameter] {
        var p: [Parameter] = []
        if let e = expand { p += e.conv.parameters + e.bn.parameters }
        p += depthwise.parameters + depthwiseBN.parameters
        if let s = squeezeExcitation { p += s.parameters }
        return p + project.parameters + projectBN.parameters
    }
    /// BatchNorm layers in registration order: expand, depthwise, project.
    public var batchNorms: [BatchNorm2d] { (expand.map { [$0.bn] } ?? []) + [depthwiseBN, projectBN] }
    /// Every inner layer in forward order (stored: the flags are set on every backward).
    private let inner: [Layer]

    private var flags = LayerFlags()
    public var training: Bool {
        get { flags.training }
        set { flags.training = newValue; for l in inner { l.training = newValue } }
    }
    public var wantsParamGrads: Bool {
        get { flags.wantsParamGrads }
        set { flags.wantsParamGrads = newValue; for l in inner { l.wantsParamGrads = newValue } }
    }
    public var wantsInputGrad: Bool {
        get { flags.wantsInputGrad }
        set { flags.wantsInputGrad = newValue; inner[0].wantsInputGrad = newValue }
    }
    /// Where backward takes its gradient buffers inside a model (see `GradientPool`), the convolutions'
    /// included; nil: the block's and the layers' own.
    public var gradientPool: GradientPool? {
        didSet { for l in inner { l.gradientPool = gradientPool } }
    }
    /// Backward's copy of dy for the shortcut when no pool is set.
    private let dsum = Tensor(shape: [0])
    private var input: Tensor?

    /// Parameter-name prefixes of the parts: `expand` and `depthwise` name a convolution–BN pair
    /// (`<prefix>.0`, `<prefix>.1`), `squeezeExcitation` the gate, `project` and `projectBN` themselves.
    public struct Names {
        public var expand: String?, depthwise: String, squeezeExcitation: String?, project: String, projectBN: String
        public init(expand: String?, depthwise: String, squeezeExcitation: String? = nil, project: String, projectBN: String) {
            self.expand = expand; self.depthwise = depthwise; self.squeezeExcitation = squeezeExcitation
            self.project = project; self.projectBN = projectBN
        }
    }

    /// A block from C to K channels through `hidden` channels (no expansion when hidden == C), a k×k depthwise
    /// convolution at `stride`, `activation` after the expansion and the depthwise BN, and a gate of
    /// `squeeze` units when given; `name` labels the block in summaries.
    public init(_ inChannels: Int, _ outChannels: Int, hidden: Int, kernel: Int, stride: Int, activation: Activation,
                squeeze: Int? = nil, name: String = "", names: Names, workspace: Workspace) {
        self.name = name
        if hidden != inChannels, let e = names.expand {
            expand = (Conv2d(inChannels, hidden, kernel: 1, bias: false, name: e + ".0", workspace: workspace),
                      BatchNorm2d(hidden, activation: activation, name: e + ".1"))
        } else {
            precondition(hidden == inChannels, "InvertedResidual: an expansion needs a name")
            expand = nil
        }
        depthwise = DepthwiseConv2d(hidden, kernel: kernel, stride: stride, name: names.depthwise + ".0")
        depthwiseBN = BatchNorm2d(hidden, activation: activation, name: names.depthwise + ".1")
        squeezeExcitation = squeeze.map { SqueezeExcitation(hidden, squeeze: $0, activation: .silu, name: names.squeezeExcitation ?? "se") }
        project = Conv2d(hidden, outChannels, kernel: 1, bias: false, name: names.project, workspace: workspace)
        projectBN = BatchNorm2d(outChannels, name: names.projectBN)
        residual = stride == 1 && inChannels == outChannels
        var l: [Layer] = []
        if let e = expand { l += [e.conv, e.bn] }
        l += [depthwise, depthwiseBN]
        if let s = squeezeExcitation { l.append(s) }
        inner = l + [project, projectBN]
    }

    /// Kaiming-normal (fan-out) convolution weights in registration order (expand, depthwise, gate, project).
    public func initialize<G: RandomNumberGenerator>(_ rng: inout G) {
        expand?.conv.initialize(&rng)
        depthwise.initialize(&rng)
        squeezeExcitation?.initialize(&rng)
        project.initialize(&rng)
    }

    public var activationFloats: Int {
        (expand.map { $0.conv.output.count + $0.bn.output.count } ?? 0) + depthwise.output.count + depthwiseBN.output.count
            + (squeezeExcitation?.output.count ?? 0) + project.output.count + projectBN.output.count
    }

    public func trace(_ x: ImageShape) -> LayerTrace {
        var s = x, macs = 0
        for l in inner { let t = l.trace(s); macs += t.macs; s = t.output }
        return LayerTrace(s, "block \(name)\(residual ? " +x" : "")", macs: macs)
    }

    public func forward(_ x: Tensor) -> Tensor { run(x, predicting: false) }

    /// Eval-mode forward for inference (`Model.predict`): the depthwise BatchNorm and its activation are
    /// applied by the depthwise convolution while each plane is in cache, the projection's BatchNorm and the
    /// shortcut by the projection (`Conv2d.forward(_:then:)`). The same values as `forward`; no backward may
    /// follow.
    public func predict(_ x: Tensor) -> Tensor { run(x, predicting: true) }

    private func run(_ x: Tensor, predicting: Bool) -> Tensor {
        input = predicting ? nil : x
        var h = x
        if let e = expand { h = e.bn.forward(e.conv.forward(h)) }
        h = (predicting ? depthwise.forward(h, then: depthwiseBN) : nil) ?? depthwiseBN.forward(depthwise.forward(h))
        if let s = squeezeExcitation { h = s.forward(h) }
        if predicting, let y = project.forward(h, then: projectBN, residual: residual ? x : nil) { return y }
        let y = projectBN.forward(project.forward(h))
        if residual {
            // y += x in projectBN's output: a BN without activation does not read its output in backward.
            precondition(y.count == x.count, "InvertedResidual: output \(y.shape), input \(x.shape)")
            let xp = UnsafePointer(x.data), yp = y.data
            Engine.parallelRange(y.count, grain: 1 << 15) { lo, hi in
                var i = lo
                while i + 16 <= hi { store16(load16(yp + i) + load16(xp + i), yp + i); i += 16 }
                while i < hi { yp[i] += xp[i]; i += 1 }
            }
        }
        return y
    }

    /// Down the main branch (BatchNorms and the gate work in place); with the shortcut, the branch starts
    /// from a copy of dy and dy is added to its input gradient. Each intermediate gradient is released
    /// to the pool once the layer before has read it.
    public func backward(_ dy: Tensor) -> Tensor? {
        guard input != nil else { preconditionFailure("InvertedResidual.backward before forward") }
        let pool = gradientPool
        var g = dy
        if residual {
            let ds = pool?.acquire(dy.count) ?? dsum
            ds.reshapeLike(dy)
            ds.copy(from: dy)
            g = ds
        }
        g = step(projectBN, g, dy)!
        g = step(project, g, dy)!
        if let s = squeezeExcitation { g = step(s, g, dy)! }
        g = step(depthwiseBN, g, dy)!
        var d = step(depthwise, g, dy)
        if let e = expand, let dd = d {
            g = step(e.bn, dd, dy)!
            d = step(e.conv, g, dy)
        }
        guard flags.wantsInputGrad, let dx = d else { if let d, d !== dy { pool?.release(d) }; return nil }
        if residual {
            let xp = dx.data, gp = UnsafePointer(dy.data)
            Engine.parallelRange(dx.count, grain: 1 << 15) { lo, hi in
                var i = lo
                while i + 16 <= hi { store16(load16(xp + i) + load16(gp + i), xp + i); i += 16 }
                while i < hi { xp[i] += gp[i]; i += 1 }
            }
        }
        return dx
    }

    /// l.backward(g), giving g back to the pool when the layer made a new buffer (dy is the caller's).
    @inline(__always)
    private func step(_ l: Layer, _ g: Tensor, _ dy: Tensor) -> Tensor? {
        let next = l.backward(g)
        if next !== g && g !== dy { gradientPool?.release(g) }
        return next
    }
}
