import LDKernels
import LDRecords
import LDData
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// 2-D convolution on channel-major activations: Winograd for 3×3 stride-1 "same" convolutions (most of
/// ResNet-18's and ConvNet's work), batch-folded im2col + one sgemm for everything else.
///
/// x (C,N,H,W) → y (K,N,Ho,Wo), Ho = (H + 2·pad − k)/stride + 1. Weight (K,C,k,k), bias (K).
/// Forward: columns (C·k·k, N·Ho·Wo) = im2col(x) in the shared workspace, then y = W · columns (+ bias).
/// Backward: the columns are rebuilt from the cached input (nothing big is kept between passes),
/// dW += dy · columnsᵀ (one GEMM over the whole batch), dcolumns = Wᵀ · dy, dx = col2im(dcolumns).
/// A 1×1 stride-1 unpadded convolution uses x itself as the columns. The Winograd path (`usesWinograd`,
/// Winograd.swift and Winograd43.swift) does the same three products in the transformed domain.
public final class Conv2d: Layer {
    /// C, K, square kernel size k, stride and zero padding.
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
    /// dx (C,N,H,W) when no `gradientPool` is set.
    public let inputGrad = Tensor(shape: [0])
    /// Where backward takes dx from inside a model (see `GradientPool`); nil: `inputGrad`.
    public var gradientPool: GradientPool?
    /// The input of the last forward, read by backward (not copied).
    private var input: Tensor?

    /// A convolution from C to K channels; `name` prefixes the parameter names (`<name>.weight`).
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, name: String = "", workspace: Workspace = Workspace()) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding
        let prefix = name.isEmpty ? "" : name + "."
        weight = Parameter(name: prefix + "weight", shape: [outChannels, inChannels, kernel, kernel])
        self.bias = bias ? Parameter(name: prefix + "bias", shape: [outChannels], decays: false) : nil
        self.workspace = workspace
    }

    /// How a convolution's weights are drawn.
    public enum Initialization {
        /// Kaiming-normal, fan-out, ReLU gain: std = sqrt(2 / (K·k·k)) (torchvision's ResNet).
        case kaimingNormalFanOut
        /// PyTorch's `nn.Conv2d` default, kaiming-uniform with a = sqrt(5): uniform(±1/sqrt(C·k·k)) (the
        /// DC/DM ConvNet, which keeps the default; a normal fan-out init there trains hard-label students
        /// about two points worse under the DC protocol's SGD).
        case pytorchDefault
    }

    /// Draws the weights by `scheme`; a bias is uniform(±1/sqrt(C·k·k)) as in PyTorch.
    public func initialize<G: RandomNumberGenerator>(_ rng: inout G, _ scheme: Initialization = .kaimingNormalFanOut) {
        let fanOut = Float(outChannels * kernel * kernel), fanIn = Float(inChannels * kernel * kernel)
        switch scheme {
        case .kaimingNormalFanOut: rng.fillNormal(weight.value, std: (2 / fanOut).squareRoot())
        case .pytorchDefault: let r = 1 / fanIn.squareRoot(); rng.fillUniform(weight.value, -r, r)
        }
        if let b = bias { let r = 1 / fanIn.squareRoot(); rng.fillUniform(b.value, -r, r) }
    }

    /// (Ho, Wo) for an (H, W) input.
    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1)
    }

    private var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }

    /// Multiply–accumulates of one forward pass for an input of (N, H, W).
    public func macs(n: Int, h: Int, w: Int) -> Int {
        let (ho, wo) = outputSize(h, w)
        return outChannels * inChannels * kernel * kernel * n * ho * wo
    }

    /// Floats of im2col columns processed at once: the batch is cut into chunks of whole images so the
    /// columns stay near the caches and the workspace stays small (at least one image per chunk).
    nonisolated(unsafe) public static var columnBudget = 1 << 22

    /// Whether 3×3 stride-1 pad-1 convolutions with at least `winogradMinChannels` input and output channels
    /// and planes of at least `winogradMinSize` pixels a side use Winograd F(4×4, 3×3) for the forward
    /// pass, the input gradient and (`winogradWeightGradient`) the weight gradient. Measured with `ld-bench conv`
    /// (one thread, batch 64-128): F(4×4, 3×3) takes 0.35-0.55x im2col's time on 4×4 to 32×32 planes with
    /// 64-512 channels, and about 0.9x on 7×7.
    nonisolated(unsafe) public static var winograd = true
    /// Fewest input and output channels for the Winograd path (small channel counts make its 16 GEMMs too
    /// thin to pay for the transforms).
    nonisolated(unsafe) public static var winogradMinChannels = 16
    /// Whether the weight gradient is computed by Winograd too (else im2col + GEMM).
    nonisolated(unsafe) public static var winogradWeightGradient = true
    /// Smallest plane side for the Winograd path.
    nonisolated(unsafe) public static var winogradMinSize = 4
    /// Floats of transformed input and output tiles per worker at once (~2 MB: near the caches).
    nonisolated(unsafe) public static var winogradBlockFloats = 1 << 19
    /// Fewest tiles per Winograd block (each of a block's GEMMs reads a Co×Ci slice of the weights). 64 and 128
    /// could not be told apart on this shared machine (`ld-bench engine --winograd-min-tiles`, `ld-bench conv
    /// 2 TILES`): 64 keeps 256-channel 8×8 blocks inside L2, 128 makes fewer, fatter GEMMs.
    nonisolated(unsafe) public static var winogradMinTiles = 128

    /// Whether this layer takes the Winograd path for (h, w) planes.
    public func usesWinograd(height h: Int, width w: Int) -> Bool {
        Conv2d.winograd && kernel == 3 && stride == 1 && padding == 1 && min(h, w) >= Conv2d.winogradMinSize
            && inChannels >= Conv2d.winogradMinChannels && outChannels >= Conv2d.winogradMinChannels
    }

    /// Winograd-transformed weights, kept in eval mode or while the layer computes no parameter gradients: a
    /// frozen teacher (relabel, recover) runs thousands of steps with the same weights. Checked against a
    /// copy of the weights on every use, so training, loading or editing the weights never leaves them stale.
    private let winogradForward = TransformedWeights(), winogradFlipped = TransformedWeights()

    /// Transformed weights for the forward (or, `flipped`, the input-gradient) Winograd convolution.
    private func winogradWeights(flipped: Bool) -> UnsafePointer<Float> {
        let count = 36 * outChannels * inChannels
        @inline(__always) func transform(_ w: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>) {
            winograd43Weights(w, co: outChannels, ci: inChannels, flipped: flipped, into: u)
        }
        if flags.training && flags.wantsParamGrads {
            let u = workspace.weightBuffer(count)
            transform(weight.value.data, into: u)
            return UnsafePointer(u)
        }
        let cache = flipped ? winogradFlipped : winogradForward
        let w = UnsafePointer(weight.value.data), wc = weight.value.count
        if let u = cache.u, let src = cache.source, memcmp(src, w, wc * 4) == 0 { return UnsafePointer(u) }
        if cache.source == nil { cache.source = .allocate(capacity: wc) }
        if cache.u == nil { cache.u = .allocate(capacity: count) }
        cache.source!.update(from: w, count: wc)
        transform(w, into: cache.u!)
        return UnsafePointer(cache.u!)
    }

    /// y (outC, n, h, w) = the 3×3 pad-1 convolution of x (inC, n, h, w) with transformed weights u.
    private func winograd(_ x: UnsafePointer<Float>, inC: Int, n: Int, h: Int, w: Int, _ u: UnsafePointer<Float>,
                          outC: Int, bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>,
                          epilogue: ConvEpilogue? = nil) {
        winograd43Conv(x, inC: inC, n: n, h: h, w: w, u, outC: outC, bias: bias, y, workspace: workspace,
                       budget: Conv2d.winogradBlockFloats, minTiles: Conv2d.winogradMinTiles, epilogue: epilogue)
    }

    /// Images per chunk for columns of `perImage` floats.
    private func chunkImages(_ n: Int, perImage: Int) -> Int {
        max(1, min(n, Conv2d.columnBudget / max(1, perImage)))
    }

    public var activationFloats: Int { output.count }
    public func trace(_ x: ImageShape) -> LayerTrace {
        let (h, w) = outputSize(x.h, x.w)
        return LayerTrace(ImageShape(c: outChannels, h: h, w: w), "conv\(kernel)x\(kernel)/\(stride) \(weight.name.dropLast(7))",
                          macs: macs(n: 1, h: x.h, w: x.w))
    }

    public func forward(_ x: Tensor) -> Tensor { convolve(x, epilogue: nil) }

    /// Inference forward with the eval-mode BatchNorm `bn` that follows this layer (and then `residual` added
    /// and ReLU, as a residual block ends) applied to the output while it is near the caches (see
    /// `ConvEpilogue`): the same values as `bn.forward(forward(x))` without BN's pass over the output. The
    /// Winograd path applies it to each output channel of a block of tiles, a 1×1 stride-1 convolution (a
    /// bottleneck's first and last) to each block of output columns (`pointwise`), im2col to each chunk of
    /// images after its GEMM. nil, having done nothing, unless `bn` has a plain affine map (eval mode, no
    /// statistics hook or class statistics, no fused pooling, no fused ReLU before a residual, no activation
    /// other than ReLU); then call the layers one by one. No backward may follow.
    public func forward(_ x: Tensor, then bn: BatchNorm2d, residual: Tensor? = nil, relu: Bool = false) -> Tensor? {
        guard x.shape.count == 4, bn.channels == outChannels, residual == nil || !bn.fusedReLU,
              bn.activation == .none || bn.activation == .relu, let affine = bn.inferenceAffine() else { return nil }
        if let r = residual {
            let (ho, wo) = outputSize(x.shape[2], x.shape[3])
            precondition(r.shape == [outChannels, x.shape[1], ho, wo], "Conv2d: residual \(r.shape), input \(x.shape)")
        }
        return convolve(x, epilogue: ConvEpilogue(scale: affine.scale, shift: affine.shift,
                                                  residual: residual.map { UnsafePointer($0.data) }, relu: relu || bn.fusedReLU))
    }

    /// The convolution of x, with `epilogue` applied to the output as each path writes it.
    private func convolve(_ x: Tensor, epilogue: ConvEpilogue?) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[0] == inChannels, "Conv2d: input \(x.shape), expected (\(inChannels),N,H,W)")
        input = x
        let n = x.shape[1], h = x.shape[2], w = x.shape[3]
        let (ho, wo) = outputSize(h, w)
        output.ensureShape(outChannels, n, ho, wo)
        let howo = ho * wo, p = n * howo, ckk = inChannels * kernel * kernel
        let y = output.data, biasValues = bias.map { UnsafePointer($0.value.data) }
        if usesWinograd(height: h, width: w) {
            winograd(x.data, inC: inChannels, n: n, h: h, w: w, winogradWeights(flipped: false), outC: outChannels,
                     bias: biasValues, y, epilogue: epilogue)
            return output
        }
        if isPointwise {
            pointwise(x.data, columns: p, bias: biasValues, y, epilogue: epilogue)
            return output
        }
        var beta: Float = 0
        if let bp = biasValues {
            Engine.parallelRange(outChannels) { k0, k1 in
                for k in k0..<k1 { (y + k * p).update(repeating: bp[k], count: p) }
            }
            beta = 1
        }
        let step = chunkImages(n, perImage: ckk * howo)
        let ws = workspace.buffer(ckk * step * howo)
        for n0 in Swift.stride(from: 0, to: n, by: step) {
            let n1 = min(n, n0 + step), pc = (n1 - n0) * howo
            im2col(x.data, ws, channels: inChannels, n: n, n0: n0, n1: n1, h: h, w: w, ho: ho, wo: wo)
            // y[:, chunk] (K, Pc) = W (K, C·k·k) · columns (C·k·k, Pc)
            sgemm(outChannels, pc, ckk, weight.value.data, ws, beta: beta, y + n0 * howo, ldc: p)
            if let epilogue {
                Engine.parallelRange(outChannels) { k0, k1 in
                    for k in k0..<k1 { epilogue.apply(channel: k, y, from: k * p + n0 * howo, count: pc) }
                }
            }
        }
        return output
    }

    /// y (K, P) = W (K, C) · x (C, P) (+ bias), then `epilogue` if any, a block of columns at a time: each worker
    /// takes whole blocks, one single-threaded sgemm each, and applies the epilogue while the block is in cache
    /// instead of a BatchNorm pass and an addition pass over all of y. OpenBLAS's sums depend on where the
    /// columns are cut, so training (`forward`) and inference (`forward(_:then:)`) cut them here alike, and
    /// their values agree to the bit (for one thread count). A block is K × 256-1024 columns (about
    /// 1 MB, L2): fewer columns would make OpenBLAS pack the weights more often than it multiplies them
    /// (`ld-bench engine --suite seeds`: 64-column blocks lost what the fusion gained on ResNet-50's last
    /// stage); the count of blocks is a multiple of the threads so that each gets the same share.
    private func pointwise(_ x: UnsafePointer<Float>, columns p: Int, bias: UnsafePointer<Float>?,
                           _ y: UnsafeMutablePointer<Float>, epilogue: ConvEpilogue?) {
        let k = outChannels, c = inChannels, wp = UnsafePointer(weight.value.data), t = max(1, Engine.threads)
        let target = min(1024, max(256, (1 << 18) / k))
        let count = ((p + target - 1) / target + t - 1) / t * t
        let block = ((p + count - 1) / count + 15) / 16 * 16, blocks = (p + block - 1) / block
        Engine.parallelRange(blocks) { b0, b1 in
            for b in b0..<b1 {
                let p0 = b * block, pc = min(p, p0 + block) - p0
                if let bias { for o in 0..<k { (y + o * p + p0).update(repeating: bias[o], count: pc) } }
                sgemm(k, pc, c, wp, x + p0, ldb: p, beta: bias == nil ? 0 : 1, y + p0, ldc: p, split: false)
                if let epilogue { for o in 0..<k { epilogue.apply(channel: o, y, from: o * p + p0, count: pc) } }
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard let x = input else { preconditionFailure("Conv2d.backward before forward") }
        let n = x.shape[1], h = x.shape[2], w = x.shape[3]
        let (ho, wo) = outputSize(h, w)
        precondition(dy.count == outChannels * n * ho * wo, "Conv2d.backward: dy \(dy.shape)")
        let howo = ho * wo, p = n * howo, ckk = inChannels * kernel * kernel
        let g = UnsafePointer(dy.data)
        let wantDp = flags.wantsParamGrads, wantDx = flags.wantsInputGrad
        if wantDp, let b = bias {
            let db = b.grad.data
            Engine.parallelRange(outChannels) { k0, k1 in
                for k in k0..<k1 { db[k] += Float(sumAndSquares(g + k * p, p).0) }
            }
        }
        let dx = wantDx ? gradientPool?.acquire(inChannels * n * h * w) ?? inputGrad : inputGrad
        if wantDx { dx.ensureShape(inChannels, n, h, w) }
        if isPointwise {
            // dW (K, C) += dy (K, P) · xᵀ (P, C);  dx (C, P) = Wᵀ (C, K) · dy (K, P)
            if wantDp { sgemm(transB: true, outChannels, ckk, p, g, x.data, beta: 1, weight.grad.data) }
            if wantDx { sgemm(transA: true, inChannels, p, outChannels, weight.value.data, g, beta: 0, dx.data) }
            return wantDx ? dx : nil
        }
        let winogradDx = usesWinograd(height: h, width: w)
        let winogradDw = wantDp && winogradDx && Conv2d.winogradWeightGradient
        if winogradDw {
            winograd43WeightGradient(x.data, g, inC: inChannels, outC: outChannels, n: n, h: h, w: w,
                                     into: weight.grad.data, workspace: workspace,
                                     budget: Conv2d.winogradBlockFloats, minTiles: Conv2d.winogradMinTiles)
        }
        // A "same" stride-1 convolution's dx is the convolution of dy with the transposed, 180°-rotated
        // weights: im2col(dy) + one GEMM writing dx directly, instead of dcolumns + a scatter-add col2im.
        // Only when K ≤ C: im2col(dy) has K·k·k rows where dcolumns has C·k·k (a 1-channel input's dx would
        // otherwise unfold all K channels of dy for a GEMM with one output row).
        let sameDx = !winogradDx && stride == 1 && ho == h && wo == w && outChannels <= inChannels
        let kkk = outChannels * kernel * kernel
        let rows = sameDx && wantDx ? max(ckk, kkk) : ckk
        let step = chunkImages(n, perImage: rows * howo)
        let ws = workspace.buffer(rows * step * howo)
        // (C, K·k·k): the weights transposed and rotated by 180°, in the workspace's weight buffer
        let wf = workspace.weightBuffer(sameDx && wantDx ? inChannels * kkk : 1)
        if wantDx && sameDx {
            let wsrc = UnsafePointer(weight.value.data)
            let kk = kernel * kernel, cin = inChannels
            for o in 0..<outChannels {
                for c in 0..<cin {
                    for t in 0..<kk { wf[c * kkk + o * kk + t] = wsrc[(o * cin + c) * kk + (kk - 1 - t)] }
                }
            }
        }
        for n0 in Swift.stride(from: 0, to: n, by: step) where (wantDp && !winogradDw) || (wantDx && !winogradDx) {
            let n1 = min(n, n0 + step), pc = (n1 - n0) * howo
            if wantDp && !winogradDw {
                // The columns are rebuilt from the cached input rather than kept from forward (memory).
                im2col(x.data, ws, channels: inChannels, n: n, n0: n0, n1: n1, h: h, w: w, ho: ho, wo: wo)
                // dW (K, C·k·k) += dy[:, chunk] (K, Pc) · columnsᵀ (Pc, C·k·k)
                sgemm(transB: true, outChannels, ckk, pc, g + n0 * howo, lda: p, ws, beta: 1, weight.grad.data)
            }
            if wantDx && sameDx {
                // dx[:, chunk] (C, Pc) = W' (C, K·k·k) · im2col(dy) (K·k·k, Pc)
                im2col(g, ws, channels: outChannels, n: n, n0: n0, n1: n1, h: ho, w: wo, ho: h, wo: w)
                sgemm(inChannels, pc, kkk, wf, ws, beta: 0, dx.data + n0 * howo, ldc: p)
            } else if wantDx && !winogradDx {
                // dcolumns (C·k·k, Pc) = Wᵀ · dy[:, chunk], then scatter-add back into the images of the chunk.
                sgemm(transA: true, ckk, pc, outChannels, weight.value.data, g + n0 * howo, ldb: p, beta: 0, ws)
                col2im(UnsafePointer(ws), dx.data, n: n, n0: n0, n1: n1, h: h, w: w, ho: ho, wo: wo)
            }
        }
        if wantDx && winogradDx {
            // dx is the 3×3 pad-1 convolution of dy with the transposed, 180°-rotated weights.
            let u = winogradWeights(flipped: true)   // (36, C, K)
            winograd(g, inC: outChannels, n: n, h: h, w: w, u, outC: inChannels, bias: nil, dx.data)
        }
        return wantDx ? dx : nil
    }

    // MARK: - im2col / col2im

    /// columns[(c,i,j), (img−n0, oh, ow)] = x[c, img, oh·s − pad + i, ow·s − pad + j] (0 outside), for the
    /// images n0..<n1 of a batch of n. Parallel over rows.
    func im2col(_ x: UnsafePointer<Float>, _ cols: UnsafeMutablePointer<Float>, channels: Int,
                        n: Int, n0: Int, n1: Int, h: Int, w: Int, ho: Int, wo: Int) {
        let k = kernel, s = stride, pad = padding, rows = channels * k * k
        let howo = ho * wo, pc = (n1 - n0) * howo, hw = h * w
        if s == 1 && ho == h && wo == w {
            // "Same" stride-1 convolution: each (row, image) block is the input plane shifted by
            // (i − pad, j − pad): one contiguous copy, then zero the rows and columns that fell off the edge.
            Engine.parallelRange(rows, grain: 2) { r0, r1 in
                for r in r0..<r1 {
                    let c = r / (k * k), di = (r / k) % k - pad, dj = r % k - pad
                    let shift = di * w + dj
                    let qLo = min(hw, max(0, -shift)), qHi = max(qLo, min(hw, hw - shift))
                    for img in n0..<n1 {
                        let src = x + (c * n + img) * hw, dst = cols + r * pc + (img - n0) * hw
                        if qLo < qHi { (dst + qLo).update(from: src + qLo + shift, count: qHi - qLo) }
                        for q in 0..<qLo { dst[q] = 0 }
                        for q in qHi..<hw { dst[q] = 0 }
                        if di < 0 { for q in 0..<min(hw, -di * w) { dst[q] = 0 } }
                        if di > 0 { for q in max(0, hw - di * w)..<hw { dst[q] = 0 } }
                        if dj < 0 { for row in 0..<h { for col in 0..<min(w, -dj) { dst[row * w + col] = 0 } } }
                        if dj > 0 { for row in 0..<h { for col in max(0, w - dj)..<w { dst[row * w + col] = 0 } } }
                    }
                }
            }
            return
        }
        Engine.parallelRange(rows, grain: 2) { r0, r1 in
            for r in r0..<r1 {
                let c = r / (k * k), i = (r / k) % k, j = r % k
                var dst = cols + r * pc
                let (owLo, owHi) = validColumns(tap: j, w: w, wo: wo)
                for img in n0..<n1 {
                    let src = x + (c * n + img) * hw
                    for oh in 0..<ho {
                        let ih = oh * s - pad + i
                        if ih < 0 || ih >= h || owHi <= owLo {
                            for ow in 0..<wo { dst[ow] = 0 }
                        } else {
                            let row = src + ih * w
                            for ow in 0..<owLo { dst[ow] = 0 }
                            if s == 1 {
                                let sp = row + (owLo - pad + j)
                                for t in 0..<(owHi - owLo) { dst[owLo + t] = sp[t] }
                            } else if s == 2 {
                                // every other input column: the even lanes of 16 loaded, 8 at a time, while the
                                // 16 loaded stay before the last column read (2·count − 2)
                                let sp = row + (owLo * 2 - pad + j), dp = dst + owLo, count = owHi - owLo
                                var t = 0
                                while t + 8 < count {
                                    UnsafeMutableRawPointer(dp + t).storeBytes(of: load16(sp + 2 * t).evenHalf, as: SIMD8<Float>.self)
                                    t += 8
                                }
                                while t < count { dp[t] = sp[2 * t]; t += 1 }
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

    /// The output columns owLo..<owHi whose input column iw = ow·stride − padding + tap lies in [0, w)
    /// (empty when owHi <= owLo).
    @inline(__always) private func validColumns(tap j: Int, w: Int, wo: Int) -> (Int, Int) {
        let s = stride, lastJ = w - 1 + padding - j
        return (max(0, (padding - j + s - 1) / s), lastJ < 0 ? 0 : min(wo, lastJ / s + 1))
    }

    /// dx[c, img, ih, iw] = Σ dcolumns[(c,i,j), (img−n0, oh, ow)] over the taps that read it, for the images
    /// n0..<n1 (their planes are overwritten). Parallel over channels unless `parallel` is false (a caller
    /// that is itself one of the workers).
    func col2im(_ cols: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                n: Int, n0: Int, n1: Int, h: Int, w: Int, ho: Int, wo: Int, parallel: Bool = true) {
        let k = kernel, s = stride, pad = padding
        let howo = ho * wo, pc = (n1 - n0) * howo, hw = h * w
        Engine.parallelRange(parallel ? inChannels : 1) { r0, r1 in
            let (c0, c1) = parallel ? (r0, r1) : (0, inChannels)
            for c in c0..<c1 {
                (dx + (c * n + n0) * hw).update(repeating: 0, count: (n1 - n0) * hw)
                for i in 0..<k {
                    for j in 0..<k {
                        var src = cols + ((c * k + i) * k + j) * pc
                        let (owLo, owHi) = validColumns(tap: j, w: w, wo: wo)
                        for img in n0..<n1 {
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

/// A layer's cached Winograd weights and the raw weights they were made from.
private final class TransformedWeights {
    var source: UnsafeMutablePointer<Float>?
    var u: UnsafeMutablePointer<Float>?
    deinit { source?.deallocate(); u?.deallocate() }
}
