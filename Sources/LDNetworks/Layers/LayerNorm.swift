import LDKernels

/// Layer normalisation over the last dimension: x (R, D) → y (R, D), y = (x − mean)/sqrt(var + eps)·γ + β
/// per row (biased variance), as PyTorch's `nn.LayerNorm(D)`; eps 1e-6 as timm's ViT. Weight γ and bias β
/// (D), excluded from weight decay. Same in train and eval mode.
///
/// Rows are independent and split among the workers; forward keeps each row's mean and 1/std, and backward
/// recomputes the normalised input from them. The γ, β gradients are summed per fixed block of rows and the
/// blocks added in order, so the result does not depend on the thread count.
public final class LayerNorm: Layer {
    /// D.
    public let features: Int
    public let eps: Float
    /// γ and β (D).
    public let weight: Parameter, bias: Parameter
    public var parameters: [Parameter] { [weight, bias] }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }
    /// y (R, D).
    public let output = Tensor(shape: [0])
    /// Per row: mean and 1/sqrt(var + eps) of the last forward.
    private let mean = Tensor(shape: [0]), rstd = Tensor(shape: [0])
    /// Per block of rows: partial γ and β gradients (2D each).
    private let partials = Tensor(shape: [0])
    private var input: Tensor?

    /// Blocks of rows whose γ, β gradient partials are kept apart (fixed, so sums do not depend on threads).
    static let gradientBlocks = 16

    /// LayerNorm over D features, γ = 1, β = 0; `name` prefixes the parameter names.
    public init(_ features: Int, eps: Float = 1e-6, name: String = "") {
        self.features = features; self.eps = eps
        let prefix = name.isEmpty ? "" : name + "."
        weight = Parameter(name: prefix + "weight", shape: [features], decays: false)
        bias = Parameter(name: prefix + "bias", shape: [features], decays: false)
        weight.value.fill(1)
    }

    public func trace(_ x: ImageShape) -> LayerTrace {
        LayerTrace(x, "layernorm \(weight.name.dropLast(7))")
    }

    public func forward(_ x: Tensor) -> Tensor {
        let d = features
        precondition(x.shape.count == 2 && x.shape[1] == d, "LayerNorm: input \(x.shape), expected (R,\(d))")
        input = x
        let rows = x.shape[0]
        output.ensureShape(rows, d)
        mean.ensureShape(rows); rstd.ensureShape(rows)
        let xp = x.data, yp = output.data, g = weight.value.data, b = bias.value.data
        let mp = mean.data, rp = rstd.data, eps = self.eps, full = d & ~15
        Engine.parallelRange(rows, grain: 8) { r0, r1 in
            for r in r0..<r1 {
                let row = xp + r * d, out = yp + r * d
                var vs = V16()
                var i = 0
                while i < full { vs += load16(row + i); i += 16 }
                var s = vs.sum()
                for j in full..<d { s += row[j] }
                let mu = s / Float(d)
                let vmu = V16(repeating: mu)
                var vq = V16()
                i = 0
                while i < full { let c = load16(row + i) - vmu; vq += c * c; i += 16 }
                var q = vq.sum()
                for j in full..<d { let c = row[j] - mu; q += c * c }
                let inv = 1 / (q / Float(d) + eps).squareRoot()
                mp[r] = mu; rp[r] = inv
                let vinv = V16(repeating: inv)
                i = 0
                while i < full {
                    store16((load16(row + i) - vmu) * vinv * load16(g + i) + load16(b + i), out + i)
                    i += 16
                }
                for j in full..<d { out[j] = (row[j] - mu) * inv * g[j] + b[j] }
            }
        }
        return output
    }

    /// Computes dx in place in dy and returns dy (nil, with dy untouched beyond the parameter
    /// gradients, when `wantsInputGrad` is false).
    public func backward(_ dy: Tensor) -> Tensor? {
        backward(dy, into: flags.wantsInputGrad ? dy.data : nil, accumulate: false)
        return flags.wantsInputGrad ? dy : nil
    }

    /// Accumulates the γ, β gradients (when wanted) and writes dx to `dx` (may be dy itself), or adds it
    /// there with `accumulate` (a residual branch's gradient joining the skip path's); nil: no dx.
    func backward(_ dy: Tensor, into dx: UnsafeMutablePointer<Float>?, accumulate: Bool) {
        guard let x = input else { preconditionFailure("LayerNorm.backward before forward") }
        let d = features, rows = x.shape[0]
        precondition(dy.count == rows * d, "LayerNorm.backward: dy \(dy.shape)")
        let params = flags.wantsParamGrads
        let blocks = min(LayerNorm.gradientBlocks, max(rows, 1))
        if params { partials.ensureShape(blocks, 2 * d); partials.fill(0) }
        let xp = x.data, gp = dy.data, w = weight.value.data, mp = mean.data, rp = rstd.data
        let pp = partials.data, full = d & ~15, invD = 1 / Float(d)
        Engine.parallelRange(blocks) { b0, b1 in
            for blk in b0..<b1 {
                let dgamma = pp + blk * 2 * d, dbeta = dgamma + d
                for r in (rows * blk / blocks)..<(rows * (blk + 1) / blocks) {
                    let row = xp + r * d, g = gp + r * d
                    let vmu = V16(repeating: mp[r]), vinv = V16(repeating: rp[r])
                    // Σ dy·γ and Σ dy·γ·x̂ over the row; γ, β partials
                    var vs = V16(), vt = V16()
                    var i = 0
                    while i < full {
                        let gy = load16(g + i), xh = (load16(row + i) - vmu) * vinv, gw = gy * load16(w + i)
                        vs += gw; vt += gw * xh
                        if params {
                            store16(load16(dgamma + i) + gy * xh, dgamma + i)
                            store16(load16(dbeta + i) + gy, dbeta + i)
                        }
                        i += 16
                    }
                    var s = vs.sum(), t = vt.sum()
                    for j in full..<d {
                        let xh = (row[j] - mp[r]) * rp[r], gw = g[j] * w[j]
                        s += gw; t += gw * xh
                        if params { dgamma[j] += g[j] * xh; dbeta[j] += g[j] }
                    }
                    guard let dx = dx else { continue }
                    // dx = (γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)) / std
                    let out = dx + r * d
                    let vms = V16(repeating: s * invD), vmt = V16(repeating: t * invD)
                    i = 0
                    while i < full {
                        let xh = (load16(row + i) - vmu) * vinv
                        var v = (load16(g + i) * load16(w + i) - vms - xh * vmt) * vinv
                        if accumulate { v += load16(out + i) }
                        store16(v, out + i)
                        i += 16
                    }
                    for j in full..<d {
                        let xh = (row[j] - mp[r]) * rp[r]
                        let v = (g[j] * w[j] - s * invD - xh * t * invD) * rp[r]
                        out[j] = accumulate ? out[j] + v : v
                    }
                }
            }
        }
        if params {
            let dg = weight.grad.data, db = bias.grad.data
            for blk in 0..<blocks {
                let p = pp + blk * 2 * d
                for j in 0..<d { dg[j] += p[j]; db[j] += p[d + j] }
            }
        }
    }
}
