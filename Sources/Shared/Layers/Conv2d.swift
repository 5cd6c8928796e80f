/// 2-D convolution as batch-folded im2col + one sgemm, on channel-major activations.
///
/// x (C,N,H,W) → y (K,N,Ho,Wo), Ho = (H + 2·pad − k)/stride + 1. Weight (K,C,k,k), bias (K).
/// Forward: columns (C·k·k, N·Ho·Wo) = im2col(x) in the shared workspace, then y = W · columns (+ bias).
/// Backward: the columns are rebuilt from the cached input (nothing big is kept between passes),
/// dW += dy · columnsᵀ (one GEMM over the whole batch), dcolumns = Wᵀ · dy, dx = col2im(dcolumns).
/// A 1×1 stride-1 unpadded convolution uses x itself as the columns.
public final class Conv2d: Layer {
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    /// (K, C, k, k)
    public let weight: Parameter
    /// (K), or nil for a convolution without bias.
    public let bias: Parameter?
    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }
    /// Scratch for the columns; models share one among all their convolutions.
    public var workspace: Workspace

    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }

    /// y (K,N,Ho,Wo)
    public let output = Tensor(shape: [0])
    /// dx (C,N,H,W)
    public let inputGrad = Tensor(shape: [0])
    /// The input of the last forward, read by backward (not copied).
    private var input: Tensor?

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, name: String = "", workspace: Workspace = Workspace()) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding
        let prefix = name.isEmpty ? "" : name + "."
        weight = Parameter(name: prefix + "weight", shape: [outChannels, inChannels, kernel, kernel])
        self.bias = bias ? Parameter(name: prefix + "bias", shape: [outChannels], decays: false) : nil
        self.workspace = workspace
    }

    /// Kaiming-normal fan-out weights, std = sqrt(2 / (K·k·k)); bias uniform(±1/sqrt(C·k·k)) as PyTorch.
    public func initialize<G: RandomNumberGenerator>(_ rng: inout G) {
        let fanOut = Float(outChannels * kernel * kernel), fanIn = Float(inChannels * kernel * kernel)
        Sample.normal(weight.value, std: (2 / fanOut).squareRoot(), &rng)
        if let b = bias { let r = 1 / fanIn.squareRoot(); Sample.uniform(b.value, -r, r, &rng) }
    }

    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1)
    }

    private var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }

    /// Multiply–accumulates of one forward pass for an input of (N, H, W).
    public func macs(n: Int, h: Int, w: Int) -> Int {
        let (ho, wo) = outputSize(h, w)
        return outChannels * inChannels * kernel * kernel * n * ho * wo
    }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[0] == inChannels, "Conv2d: input \(x.shape), expected (\(inChannels),N,H,W)")
        input = x
        let n = x.shape[1], h = x.shape[2], w = x.shape[3]
        let (ho, wo) = outputSize(h, w)
        output.ensureShape(outChannels, n, ho, wo)
        let p = n * ho * wo, ckk = inChannels * kernel * kernel
        let cols: UnsafePointer<Float>
        if isPointwise {
            cols = UnsafePointer(x.data)
        } else {
            let ws = workspace.buffer(ckk * p)
            im2col(x.data, ws, n: n, h: h, w: w, ho: ho, wo: wo)
            cols = UnsafePointer(ws)
        }
        let y = output.data
        var beta: Float = 0
        if let b = bias {
            let bp = b.value.data
            for k in 0..<outChannels { (y + k * p).update(repeating: bp[k], count: p) }
            beta = 1
        }
        sgemm(outChannels, p, ckk, weight.value.data, cols, beta: beta, y)
        return output
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard let x = input else { preconditionFailure("Conv2d.backward before forward") }
        let n = x.shape[1], h = x.shape[2], w = x.shape[3]
        let (ho, wo) = outputSize(h, w)
        precondition(dy.count == outChannels * n * ho * wo, "Conv2d.backward: dy \(dy.shape)")
        let p = n * ho * wo, ckk = inChannels * kernel * kernel
        let g = UnsafePointer(dy.data)
        if flags.wantsParamGrads {
            if let b = bias {
                let db = b.grad.data
                for k in 0..<outChannels { db[k] += Float(sumAndSquares(g + k * p, p).0) }
            }
            let cols: UnsafePointer<Float>
            if isPointwise {
                cols = UnsafePointer(x.data)
            } else {
                let ws = workspace.buffer(ckk * p)
                im2col(x.data, ws, n: n, h: h, w: w, ho: ho, wo: wo)
                cols = UnsafePointer(ws)
            }
            // dW (K, C·k·k) += dy (K, P) · columnsᵀ (P, C·k·k)
            sgemm(transB: true, outChannels, ckk, p, g, cols, beta: 1, weight.grad.data)
        }
        guard flags.wantsInputGrad else { return nil }
        inputGrad.ensureShape(inChannels, n, h, w)
        if isPointwise {
            sgemm(transA: true, inChannels, p, outChannels, weight.value.data, g, beta: 0, inputGrad.data)
        } else {
            // dcolumns (C·k·k, P) = Wᵀ · dy, then scatter-add back into the image.
            let ws = workspace.buffer(ckk * p)
            sgemm(transA: true, ckk, p, outChannels, weight.value.data, g, beta: 0, ws)
            col2im(UnsafePointer(ws), inputGrad.data, n: n, h: h, w: w, ho: ho, wo: wo)
        }
        return inputGrad
    }

    // MARK: - im2col / col2im

    /// columns[(c,i,j), (n,oh,ow)] = x[c, n, oh·s − pad + i, ow·s − pad + j] (0 outside). Parallel over rows.
    private func im2col(_ x: UnsafePointer<Float>, _ cols: UnsafeMutablePointer<Float>,
                        n: Int, h: Int, w: Int, ho: Int, wo: Int) {
        let k = kernel, s = stride, pad = padding, rows = inChannels * k * k
        let p = n * ho * wo, hw = h * w
        Engine.parallelRange(rows, grain: 2) { r0, r1 in
            for r in r0..<r1 {
                let c = r / (k * k), i = (r / k) % k, j = r % k
                var dst = cols + r * p
                // Valid output columns for this j: iw = ow·s − pad + j in [0, w).
                let owLo = max(0, (pad - j + s - 1) / s)
                let lastJ = w - 1 + pad - j
                let owHi = lastJ < 0 ? 0 : min(wo, lastJ / s + 1)
                for img in 0..<n {
                    let src = x + (c * n + img) * hw
                    for oh in 0..<ho {
                        let ih = oh * s - pad + i
                        if ih < 0 || ih >= h || owHi <= owLo {
                            dst.update(repeating: 0, count: wo)
                        } else {
                            let row = src + ih * w
                            for ow in 0..<owLo { dst[ow] = 0 }
                            if s == 1 {
                                (dst + owLo).update(from: row + (owLo - pad + j), count: owHi - owLo)
                            } else {
                                for ow in owLo..<owHi { dst[ow] = row[ow * s - pad + j] }
                            }
                            for ow in owHi..<wo { dst[ow] = 0 }
                        }
                        dst += wo
                    }
                }
            }
        }
    }

    /// dx[c, n, ih, iw] = Σ dcolumns[(c,i,j), (n,oh,ow)] over the taps that read it. Parallel over channels.
    private func col2im(_ cols: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                        n: Int, h: Int, w: Int, ho: Int, wo: Int) {
        let k = kernel, s = stride, pad = padding
        let p = n * ho * wo, hw = h * w
        Engine.parallelRange(inChannels) { c0, c1 in
            (dx + c0 * n * hw).update(repeating: 0, count: (c1 - c0) * n * hw)
            for c in c0..<c1 {
                for i in 0..<k {
                    for j in 0..<k {
                        var src = cols + ((c * k + i) * k + j) * p
                        let owLo = max(0, (pad - j + s - 1) / s)
                        let lastJ = w - 1 + pad - j
                        let owHi = lastJ < 0 ? 0 : min(wo, lastJ / s + 1)
                        for img in 0..<n {
                            let dst = dx + (c * n + img) * hw
                            for oh in 0..<ho {
                                let ih = oh * s - pad + i
                                if ih >= 0 && ih < h && owLo < owHi {
                                    let row = dst + ih * w
                                    if s == 1 {
                                        let rp = row + (owLo - pad + j)
                                        let sp = src + owLo
                                        for t in 0..<(owHi - owLo) { rp[t] += sp[t] }
                                    } else {
                                        for ow in owLo..<owHi { row[ow * s - pad + j] += src[ow] }
                                    }
                                }
                                src += wo
                            }
                        }
                    }
                }
            }
        }
    }
}
