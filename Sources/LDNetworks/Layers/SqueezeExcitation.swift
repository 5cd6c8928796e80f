import LDKernels

/// Squeeze-and-excitation, as torchvision's EfficientNet uses it: per image a gate over the channels,
/// s = σ(fc2(act(fc1(mean over H,W of x)))), and y = s·x channel by channel. x (C,N,H,W) → y (C,N,H,W).
/// fc1 and fc2 are 1×1 convolutions with bias, stored as torchvision's (`<name>.fc1.weight` (S,C,1,1),
/// `.fc1.bias` (S), `.fc2.weight` (C,S,1,1), `.fc2.bias` (C)); S is the squeeze width, act SiLU for
/// EfficientNet. The (N,C) and (N,S) products are small sgemm calls.
public final class SqueezeExcitation: Layer {
    /// C and the squeeze width S.
    public let channels: Int, squeeze: Int
    /// The hidden layer's activation (torchvision's default is ReLU; EfficientNet passes SiLU).
    public let activation: Activation
    /// fc1: (S,C,1,1) and (S); fc2: (C,S,1,1) and (C).
    public let fc1Weight: Parameter, fc1Bias: Parameter, fc2Weight: Parameter, fc2Bias: Parameter
    public var parameters: [Parameter] { [fc1Weight, fc1Bias, fc2Weight, fc2Bias] }

    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }

    /// y (C,N,H,W). The input gradient is written over dy.
    public let output = Tensor(shape: [0])
    /// Row-major (N,C) and (N,S) intermediates of the last forward: the channel means m, fc1's output h,
    /// act(h), and the gate s; then backward's dL/ds (reused for dL/dz), dL/dh and dL/dm.
    private let mean = Tensor(shape: [0]), hidden = Tensor(shape: [0]), hiddenAct = Tensor(shape: [0]), gate = Tensor(shape: [0])
    private let dGate = Tensor(shape: [0]), dHidden = Tensor(shape: [0]), dMean = Tensor(shape: [0])
    private var input: Tensor?

    /// A gate over `channels` channels through `squeeze` hidden units; `name` prefixes `fc1` and `fc2`.
    public init(_ channels: Int, squeeze: Int, activation: Activation = .silu, name: String = "") {
        self.channels = channels; self.squeeze = squeeze; self.activation = activation
        let prefix = name.isEmpty ? "" : name + "."
        fc1Weight = Parameter(name: prefix + "fc1.weight", shape: [squeeze, channels, 1, 1])
        fc1Bias = Parameter(name: prefix + "fc1.bias", shape: [squeeze], decays: false)
        fc2Weight = Parameter(name: prefix + "fc2.weight", shape: [channels, squeeze, 1, 1])
        fc2Bias = Parameter(name: prefix + "fc2.bias", shape: [channels], decays: false)
    }

    /// torchvision's EfficientNet init: both weights kaiming-normal fan-out (std sqrt(2/S) for fc1,
    /// sqrt(2/C) for fc2, fc1 drawn first), biases zero.
    public func initialize<G: RandomNumberGenerator>(_ rng: inout G) {
        rng.fillNormal(fc1Weight.value, std: (2 / Float(squeeze)).squareRoot())
        rng.fillNormal(fc2Weight.value, std: (2 / Float(channels)).squareRoot())
        fc1Bias.value.fill(0); fc2Bias.value.fill(0)
    }

    public var activationFloats: Int { output.count }

    public func trace(_ x: ImageShape) -> LayerTrace {
        LayerTrace(x, "squeeze-excitation \(fc1Weight.name.dropLast(11))", macs: 2 * channels * squeeze + channels * x.h * x.w)
    }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[0] == channels, "SqueezeExcitation: input \(x.shape), expected (\(channels),N,H,W)")
        input = x
        let n = x.shape[1], hw = x.shape[2] * x.shape[3], c = channels, sq = squeeze
        output.reshapeLike(x)
        mean.ensureShape(n, c); hidden.ensureShape(n, sq); hiddenAct.ensureShape(n, sq); gate.ensureShape(n, c)
        let xp = UnsafePointer(x.data), yp = output.data, mp = mean.data, gp = gate.data
        let scale = 1 / Double(hw)
        Engine.parallelRange(c, grain: 16) { c0, c1 in
            for ch in c0..<c1 {
                for i in 0..<n { mp[i * c + ch] = Float(sumAndSquares(xp + (ch * n + i) * hw, hw).0 * scale) }
            }
        }
        // h = m · W1ᵀ + b1 (N,S); z = act(h) · W2ᵀ + b2 (N,C); s = σ(z)
        let hp = hidden.data, ap = hiddenAct.data
        for i in 0..<n { (hp + i * sq).update(from: fc1Bias.value.data, count: sq) }
        sgemm(transB: true, n, sq, c, mp, fc1Weight.value.data, beta: 1, hp)
        for i in 0..<(n * sq) { ap[i] = activation.apply(hp[i]) }
        for i in 0..<n { (gp + i * c).update(from: fc2Bias.value.data, count: c) }
        sgemm(transB: true, n, c, sq, ap, fc2Weight.value.data, beta: 1, gp)
        for i in 0..<(n * c) { gp[i] = sigmoid(gp[i]) }
        Engine.parallelRange(c * n, grain: 16) { p0, p1 in
            for pl in p0..<p1 {
                let s = gp[(pl % n) * c + pl / n], vs = V16(repeating: s)
                let src = xp + pl * hw, dst = yp + pl * hw
                var i = 0
                while i + 16 <= hw { store16(load16(src + i) * vs, dst + i); i += 16 }
                while i < hw { dst[i] = src[i] * s; i += 1 }
            }
        }
        return output
    }

    /// Accumulates the fc gradients and returns dx computed **in place in `dy`**:
    /// dx = s·dy + (dL/dm)/(H·W), dL/ds = Σ_hw dy·x back through σ, fc2, act and fc1.
    public func backward(_ dy: Tensor) -> Tensor? {
        guard let x = input else { preconditionFailure("SqueezeExcitation.backward before forward") }
        precondition(dy.count == x.count, "SqueezeExcitation.backward: dy \(dy.shape), x \(x.shape)")
        let n = x.shape[1], hw = x.shape[2] * x.shape[3], c = channels, sq = squeeze
        let wantDp = flags.wantsParamGrads, wantDx = flags.wantsInputGrad
        guard wantDp || wantDx else { return nil }
        dGate.ensureShape(n, c); dHidden.ensureShape(n, sq); dMean.ensureShape(n, c)
        let xp = UnsafePointer(x.data), gp = dy.data, sp = UnsafePointer(gate.data), dsp = dGate.data
        // dL/dz = (Σ_hw dy·x) · s(1 − s)
        Engine.parallelRange(c * n, grain: 16) { p0, p1 in
            for pl in p0..<p1 {
                let i = pl % n, ch = pl / n
                let (_, d) = gradSums(gp + pl * hw, xp + pl * hw, nil, hw)
                let s = sp[i * c + ch]
                dsp[i * c + ch] = Float(d) * s * (1 - s)
            }
        }
        let dhp = dHidden.data, hp = UnsafePointer(hidden.data), dmp = dMean.data
        if wantDp {
            // dW2 (C,S) += dzᵀ · act(h); db2 += Σ_n dz
            sgemm(transA: true, c, sq, n, dsp, hiddenAct.data, beta: 1, fc2Weight.grad.data)
            let db = fc2Bias.grad.data
            for i in 0..<n { for ch in 0..<c { db[ch] += dsp[i * c + ch] } }
        }
        // dL/dh (N,S) = (dz · W2) ⊙ act'(h)
        sgemm(n, sq, c, dsp, fc2Weight.value.data, beta: 0, dhp)
        for i in 0..<(n * sq) { dhp[i] *= activation.derivative(hp[i]) }
        if wantDp {
            sgemm(transA: true, sq, c, n, dhp, mean.data, beta: 1, fc1Weight.grad.data)
            let db = fc1Bias.grad.data
            for i in 0..<n { for k in 0..<sq { db[k] += dhp[i * sq + k] } }
        }
        guard wantDx else { return nil }
        // dL/dm (N,C) = dh · W1, then dx = s·dy + dm/(H·W) in place
        sgemm(n, c, sq, dhp, fc1Weight.value.data, beta: 0, dmp)
        let inv = 1 / Float(hw)
        Engine.parallelRange(c * n, grain: 16) { p0, p1 in
            for pl in p0..<p1 {
                let i = pl % n, ch = pl / n
                let s = sp[i * c + ch], add = dmp[i * c + ch] * inv
                let vs = V16(repeating: s), va = V16(repeating: add), d = gp + pl * hw
                var t = 0
                while t + 16 <= hw { store16(load16(d + t) * vs + va, d + t); t += 16 }
                while t < hw { d[t] = d[t] * s + add; t += 1 }
            }
        }
        return dy
    }
}
