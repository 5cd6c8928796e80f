import LDKernels

/// Multi-head self-attention over token rows, timm's ViT `Attention`: x (N·T, D) → y (N·T, D) for N
/// sequences of T tokens (row n·T + t), H heads of Dh = D/H features.
///
/// qkv = x·Wqkvᵀ + b (N·T, 3D), columns [q | k | v], each head's Dh features contiguous inside its third
/// (timm's reshape to (3, H, Dh)); per sequence and head P = softmax(q·kᵀ/√Dh) (T, T) and
/// ctx = P·v written into ctx's columns h·Dh..<(h+1)·Dh; y = ctx·Wprojᵀ + b. The projections are one
/// GEMM each over all N·T rows; the per-(sequence, head) products are small strided sgemm calls, the
/// (sequence, head) pairs split among the workers. P is kept for backward (N·H·T² floats); backward's
/// dP scratch comes from the shared workspace. Parameters `<name>.qkv.weight|bias`, `<name>.proj.weight|bias`.
public final class MultiHeadAttention: Layer {
    /// D, H, T (tokens per sequence).
    public let dim: Int, heads: Int, tokens: Int
    public let qkv: Linear, proj: Linear
    public var parameters: [Parameter] { qkv.parameters + proj.parameters }
    /// Scratch for the attention-probability gradients; models share one.
    public var workspace: Workspace

    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool {
        get { flags.wantsParamGrads }
        set { flags.wantsParamGrads = newValue; qkv.wantsParamGrads = newValue; proj.wantsParamGrads = newValue }
    }
    public var wantsInputGrad: Bool {
        get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue; qkv.wantsInputGrad = newValue }
    }
    /// Softmax probabilities (N·H, T·T) and the heads' output before the projection (N·T, D).
    public let probabilities = Tensor(shape: [0]), context = Tensor(shape: [0])
    /// d qkv (N·T, 3D).
    private let qkvGrad = Tensor(shape: [0])

    public init(dim: Int, heads: Int, tokens: Int, name: String = "", workspace: Workspace = Workspace()) {
        precondition(heads > 0 && dim % heads == 0, "MultiHeadAttention: \(dim) features for \(heads) heads")
        self.dim = dim; self.heads = heads; self.tokens = tokens
        let prefix = name.isEmpty ? "" : name + "."
        qkv = Linear(dim, 3 * dim, name: prefix + "qkv")
        proj = Linear(dim, dim, name: prefix + "proj")
        self.workspace = workspace
    }

    /// 1/√Dh.
    public var scale: Float { 1 / Float(dim / heads).squareRoot() }

    public func trace(_ x: ImageShape) -> LayerTrace {
        LayerTrace(x, "attention \(proj.weight.name.dropLast(12))", macs: tokens * 4 * dim * dim + 2 * tokens * tokens * dim)
    }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 2 && x.shape[1] == dim && x.shape[0] % tokens == 0,
                     "MultiHeadAttention: input \(x.shape), expected (N·\(tokens),\(dim))")
        let n = x.shape[0] / tokens, t = tokens, d = dim, dh = dim / heads, h = heads, scale = self.scale
        let q = qkv.forward(x).data
        probabilities.ensureShape(n * h, t * t)
        context.ensureShape(n * t, d)
        let pp = probabilities.data, cp = context.data
        Engine.parallelRange(n * h) { j0, j1 in
            for j in j0..<j1 {
                let seq = j / h, head = j % h
                let base = q + seq * t * 3 * d + head * dh, p = pp + j * t * t
                // P = softmax(q·kᵀ·scale); ctx = P·v
                sgemm(transB: true, t, t, dh, alpha: scale, base, lda: 3 * d, base + d, ldb: 3 * d, beta: 0, p)
                TransformerMath.softmaxRows(p, rows: t, t)
                sgemm(t, dh, t, p, base + 2 * d, ldb: 3 * d, beta: 0, cp + seq * t * d + head * dh, ldc: d)
            }
        }
        return proj.forward(context)
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard flags.wantsInputGrad || flags.wantsParamGrads else { return nil }
        guard let dctx = proj.backward(dy) else { preconditionFailure("MultiHeadAttention: no context gradient") }
        let rows = context.shape[0], n = rows / tokens, t = tokens, d = dim, dh = dim / heads, h = heads
        let scale = self.scale
        qkvGrad.ensureShape(rows, 3 * d)
        let q = UnsafePointer(qkv.output.data), pp = UnsafePointer(probabilities.data), go = UnsafePointer(dctx.data)
        let gq = qkvGrad.data, scratch = workspace.buffer(n * h * t * t)
        Engine.parallelRange(n * h) { j0, j1 in
            for j in j0..<j1 {
                let seq = j / h, head = j % h
                let base = q + seq * t * 3 * d + head * dh, gbase = gq + seq * t * 3 * d + head * dh
                let p = pp + j * t * t, dctxh = go + seq * t * d + head * dh, ds = scratch + j * t * t
                // dv = Pᵀ·dctx; dP = dctx·vᵀ; dS = softmax backward; dq = dS·k·scale; dk = dSᵀ·q·scale
                sgemm(transA: true, t, dh, t, p, dctxh, ldb: d, beta: 0, gbase + 2 * d, ldc: 3 * d)
                sgemm(transB: true, t, t, dh, dctxh, lda: d, base + 2 * d, ldb: 3 * d, beta: 0, ds)
                TransformerMath.softmaxBackwardRows(p, ds, rows: t, t)
                sgemm(t, dh, t, alpha: scale, ds, base + d, ldb: 3 * d, beta: 0, gbase, ldc: 3 * d)
                sgemm(transA: true, t, dh, t, alpha: scale, ds, base, ldb: 3 * d, beta: 0, gbase + d, ldc: 3 * d)
            }
        }
        return qkv.backward(qkvGrad)
    }
}
