import LDKernels

/// A vision transformer's entry, timm's `PatchEmbed` plus class token and learned positions: images
/// (C, N, S, S) → token rows (N·T, D), T = 1 + (S/p)², row n·T + t.
///
/// A convolution with kernel = stride = p (with bias) maps each p×p patch to D features (D, N, S/p, S/p);
/// token 0 of every image is the class token, token 1 + i the patch i in row-major order (timm's
/// `flatten(2).transpose(1, 2)`), and the position embedding (T, D) is added to all of them.
/// Parameters `cls_token` (1, 1, D), `pos_embed` (1, T, D), `<name>.proj.weight|bias`; the first two are
/// excluded from weight decay.
public final class PatchEmbedding: Layer {
    /// C, D, p, and T = 1 + (S/p)².
    public let channels: Int, dim: Int, patch: Int, tokens: Int
    public let proj: Conv2d
    public let classToken: Parameter, positions: Parameter
    public var parameters: [Parameter] { [classToken, positions] + proj.parameters }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue; proj.training = newValue } }
    public var wantsParamGrads: Bool {
        get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue; proj.wantsParamGrads = newValue }
    }
    public var wantsInputGrad: Bool {
        get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue; proj.wantsInputGrad = newValue }
    }
    public var gradientPool: GradientPool? { get { proj.gradientPool } set { proj.gradientPool = newValue } }
    /// Tokens (N·T, D).
    public let output = Tensor(shape: [0])
    /// The convolution's output gradient (D, N, S/p, S/p).
    private let convGrad = Tensor(shape: [0])

    /// Patch embedding of `imageSize`² images with C channels into D features by p×p patches.
    public init(channels: Int, imageSize: Int, patch: Int, dim: Int, name: String = "patch_embed",
                workspace: Workspace = Workspace()) {
        precondition(patch > 0 && imageSize % patch == 0, "PatchEmbedding: image size \(imageSize), patch \(patch)")
        self.channels = channels; self.dim = dim; self.patch = patch
        let side = imageSize / patch
        tokens = 1 + side * side
        proj = Conv2d(channels, dim, kernel: patch, stride: patch, bias: true, name: name + ".proj", workspace: workspace)
        classToken = Parameter(name: "cls_token", shape: [1, 1, dim], decays: false)
        positions = Parameter(name: "pos_embed", shape: [1, tokens, dim], decays: false)
    }

    public var activationFloats: Int { proj.output.count + output.count }

    public func trace(_ x: ImageShape) -> LayerTrace {
        LayerTrace(ImageShape(c: dim, h: tokens, w: 1), "patch embed \(patch)x\(patch)", macs: proj.macs(n: 1, h: x.h, w: x.w))
    }

    public func forward(_ x: Tensor) -> Tensor {
        let y = proj.forward(x)
        let n = y.shape[1], hw = y.shape[2] * y.shape[3], t = tokens, d = dim
        precondition(hw + 1 == t, "PatchEmbedding: input \(x.shape) gives \(hw) patches, expected \(t - 1)")
        output.ensureShape(n * t, d)
        let yp = UnsafePointer(y.data), out = output.data, pos = UnsafePointer(positions.value.data)
        let cls = UnsafePointer(classToken.value.data)
        Engine.parallelRange(n) { n0, n1 in
            for i in n0..<n1 {
                let rows = out + i * t * d
                for k in 0..<d { rows[k] = cls[k] + pos[k] }
                // (D, hw) of image i → (hw, D), plus positions
                for s in 0..<hw {
                    let row = rows + (1 + s) * d, prow = pos + (1 + s) * d, src = yp + i * hw + s
                    for k in 0..<d { row[k] = src[k * n * hw] + prow[k] }
                }
            }
        }
        return output
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        let t = tokens, d = dim, n = dy.count / (t * d)
        precondition(dy.count == n * t * d, "PatchEmbedding.backward: dy \(dy.shape)")
        let g = UnsafePointer(dy.data)
        if flags.wantsParamGrads {
            // d pos[t] += Σ_n dy[n, t]; d cls += Σ_n dy[n, 0]; split by token, images summed in order
            let dpos = positions.grad.data
            Engine.parallelRange(t) { t0, t1 in
                for tok in t0..<t1 {
                    let out = dpos + tok * d
                    for i in 0..<n {
                        let src = g + (i * t + tok) * d
                        for k in 0..<d { out[k] += src[k] }
                    }
                }
            }
            let dcls = classToken.grad.data
            for i in 0..<n { let src = g + i * t * d; for k in 0..<d { dcls[k] += src[k] } }
        }
        guard flags.wantsInputGrad || flags.wantsParamGrads else { return nil }
        let side = Int(Double(t - 1).squareRoot()), hw = t - 1
        convGrad.ensureShape(d, n, side, side)
        let cg = convGrad.data
        Engine.parallelRange(d) { k0, k1 in
            for k in k0..<k1 {
                for i in 0..<n {
                    let dst = cg + (k * n + i) * hw, src = g + (i * t + 1) * d + k
                    for s in 0..<hw { dst[s] = src[s * d] }
                }
            }
        }
        return proj.backward(convGrad)
    }
}

/// The class token of each sequence: token rows (N·T, D) → (N, D), row n·T of each image (timm's
/// `pool='token'`). Backward scatters into zeros.
public final class ClassTokenPool: Layer {
    /// T.
    public let tokens: Int
    public var parameters: [Parameter] { [] }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }
    /// Where backward takes dx from inside a model; nil: `inputGrad`.
    public var gradientPool: GradientPool?
    /// y (N, D); dx (N·T, D) when no pool is set.
    public let output = Tensor(shape: [0]), inputGrad = Tensor(shape: [0])

    public init(tokens: Int) { self.tokens = tokens }

    public func trace(_ x: ImageShape) -> LayerTrace { LayerTrace(ImageShape(c: x.c, h: 1, w: 1), "class token") }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 2 && x.shape[0] % tokens == 0, "ClassTokenPool: input \(x.shape)")
        let n = x.shape[0] / tokens, d = x.shape[1]
        output.ensureShape(n, d)
        for i in 0..<n { (output.data + i * d).update(from: x.data + i * tokens * d, count: d) }
        return output
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard flags.wantsInputGrad else { return nil }
        let n = dy.shape[0], d = dy.shape[1]
        let dx = gradientPool?.acquire(n * tokens * d) ?? inputGrad
        dx.ensureShape(n * tokens, d)
        dx.fill(0)
        for i in 0..<n { (dx.data + i * tokens * d).update(from: dy.data + i * d, count: d) }
        return dx
    }
}
