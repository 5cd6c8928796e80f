import LDKernels

/// A pre-norm transformer encoder block, timm's ViT `Block` without dropout, drop-path or layer scale,
/// on token rows (N·T, D):
///
///     h = x + proj(attention(norm1(x)))
///     y = h + fc2(GELU(fc1(norm2(h))))          fc1: D → r·D, fc2: r·D → D
///
/// The residual sums are made in place in the branches' outputs (the attention projection's and fc2's),
/// and backward runs in place in dy: each branch's input gradient is added to it by the LayerNorm that
/// starts the branch, so the block returns dy itself as dx. Parameters `<name>.norm1|attn.qkv|attn.proj|
/// norm2|mlp.fc1|mlp.fc2.*`.
public final class TransformerBlock: Layer {
    public let norm1: LayerNorm, attention: MultiHeadAttention, norm2: LayerNorm
    public let fc1: Linear, activation: GELU, fc2: Linear
    public var parameters: [Parameter] {
        norm1.parameters + attention.parameters + norm2.parameters + fc1.parameters + fc2.parameters
    }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool {
        get { flags.wantsParamGrads }
        set {
            flags.wantsParamGrads = newValue   // set every step by Model.backward: no array built here
            norm1.wantsParamGrads = newValue; attention.wantsParamGrads = newValue; norm2.wantsParamGrads = newValue
            fc1.wantsParamGrads = newValue; fc2.wantsParamGrads = newValue
        }
    }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }

    /// A block on sequences of `tokens` tokens of D features, H heads, MLP width `mlpRatio`·D.
    public init(dim: Int, heads: Int, tokens: Int, mlpRatio: Int = 4, name: String, workspace: Workspace = Workspace()) {
        norm1 = LayerNorm(dim, name: name + ".norm1")
        attention = MultiHeadAttention(dim: dim, heads: heads, tokens: tokens, name: name + ".attn", workspace: workspace)
        norm2 = LayerNorm(dim, name: name + ".norm2")
        fc1 = Linear(dim, mlpRatio * dim, name: name + ".mlp.fc1")
        activation = GELU()
        fc2 = Linear(mlpRatio * dim, dim, name: name + ".mlp.fc2")
    }

    /// D.
    public var dim: Int { norm1.features }

    /// timm's ViT initialisation: linear weights truncated-normal (std 0.02), biases zero, LayerNorm 1 and 0;
    /// weights drawn in registration order.
    public func initialize<G: RandomNumberGenerator>(_ rng: inout G) {
        for l in [attention.qkv, attention.proj, fc1, fc2] {
            rng.fillTruncatedNormal(l.weight.value, std: 0.02)
            l.bias.value.fill(0)
        }
        for n in [norm1, norm2] { n.weight.value.fill(1); n.bias.value.fill(0) }
    }

    /// What backward reads: both norms' outputs, attention's q/k/v, probabilities and context, the MLP's
    /// hidden layer before and after GELU, and the two linear outputs.
    public var activationFloats: Int {
        norm1.output.count + norm2.output.count + attention.qkv.output.count + attention.probabilities.count
            + attention.context.count + attention.proj.output.count + fc1.output.count + activation.output.count + fc2.output.count
    }

    public func trace(_ x: ImageShape) -> LayerTrace {
        let t = attention.tokens, d = dim
        return LayerTrace(x, "block \(norm1.weight.name.dropLast(13))",
                          macs: attention.trace(x).macs + t * 2 * d * fc1.outFeatures)
    }

    public func forward(_ x: Tensor) -> Tensor {
        let h = attention.forward(norm1.forward(x))
        add(x, into: h)
        let y = fc2.forward(activation.forward(fc1.forward(norm2.forward(h))))
        add(h, into: y)
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard flags.wantsInputGrad || flags.wantsParamGrads else { return nil }
        // MLP branch: dy += norm2ᵀ(fc1ᵀ(GELU'(fc2ᵀ dy))), dy is then dL/dh
        guard let dg = fc2.backward(dy), let da = activation.backward(dg), let dn = fc1.backward(da) else {
            preconditionFailure("TransformerBlock: missing MLP gradient")
        }
        norm2.backward(dn, into: dy.data, accumulate: true)
        // attention branch: dy += norm1ᵀ(attentionᵀ dy)
        guard let dq = attention.backward(dy) else { preconditionFailure("TransformerBlock: missing attention gradient") }
        norm1.backward(dq, into: flags.wantsInputGrad ? dy.data : nil, accumulate: true)
        return flags.wantsInputGrad ? dy : nil
    }

    /// y += x, element-wise, split among the workers.
    private func add(_ x: Tensor, into y: Tensor) {
        precondition(x.count == y.count)
        let xp = UnsafePointer(x.data), yp = y.data, n = x.count
        Engine.parallelRange((n + 4095) / 4096) { b0, b1 in
            var i = b0 * 4096
            let e = min(n, b1 * 4096)
            while i + 16 <= e { store16(load16(yp + i) + load16(xp + i), yp + i); i += 16 }
            while i < e { yp[i] += xp[i]; i += 1 }
        }
    }
}

extension RandomNumberGenerator {
    /// Normal values N(0, std²) redrawn while outside [-2, 2], timm's `trunc_normal_(t, std=std)` (whose
    /// default bounds are absolute: at std 0.02 they are 100 standard deviations out, so in effect a plain
    /// normal). A generator that keeps drawing outside the bounds gets clamped values after 100 tries.
    public mutating func fillTruncatedNormal(_ t: Tensor, std: Float, bound: Float = 2) {
        let p = t.data
        for i in 0..<t.count {
            var v = std * Float(normal())
            var tries = 0
            while abs(v) > bound && tries < 100 { v = std * Float(normal()); tries += 1 }
            p[i] = min(max(v, -bound), bound)
        }
    }
}
