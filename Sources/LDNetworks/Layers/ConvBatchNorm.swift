import LDKernels
import LDRecords
import LDData

/// Convolution → BatchNorm → ReLU → 2×2 average pool as one layer that never stores the convolution's
/// output: the ConvNet's first block, whose input has one or three channels.
///
/// There the convolution is an im2col GEMM with only C·k·k = 9 or 27 terms per output, and its output
/// (K·N·H·W floats, 51 MB for ConvNet-128 on 128 Fashion-MNIST images) costs more to write and read back
/// than to compute: run apart, the two layers spent a fifth of a training step streaming it. So every pass
/// recomputes it one image at a time into a tile that stays in the cache. Forward sums the tiles for the
/// batch statistics, then recomputes them to normalise, ReLU and pool; backward recomputes them for the
/// gradient sums, then again to form dx in the tile and fold it straight into dW, db and the input
/// gradient. Only the im2col columns of the batch (C·k·k·N·H·W floats) are kept.
///
/// The arithmetic is `Conv2d`'s and `BatchNorm2d`'s (the same parameter objects, names, running and class
/// statistics, BN-statistics hook), so results equal the two layers run apart up to rounding: a GEMM per
/// image may round differently from one over the batch (with OpenBLAS's SkylakeX kernels the forward pass
/// and the statistics come out bit-identical), and dW, db and dx are summed in another order.
public final class ConvBatchNorm: Layer {
    public let conv: Conv2d, bn: BatchNorm2d
    public var parameters: [Parameter] { conv.parameters + bn.parameters }
    private var flags = LayerFlags()
    public var training: Bool {
        get { flags.training }
        set { flags.training = newValue; conv.training = newValue; bn.training = newValue }
    }
    public var wantsParamGrads: Bool {
        get { flags.wantsParamGrads }
        set { flags.wantsParamGrads = newValue; conv.wantsParamGrads = newValue; bn.wantsParamGrads = newValue }
    }
    public var wantsInputGrad: Bool {
        get { flags.wantsInputGrad }
        set { flags.wantsInputGrad = newValue; conv.wantsInputGrad = newValue }
    }
    /// Where backward takes dx from inside a model (see `GradientPool`); nil: `conv.inputGrad`.
    public var gradientPool: GradientPool?

    /// Whether `Model` builds the ConvNet's first block as this layer (benchmarks switch it off to compare).
    nonisolated(unsafe) public static var enabled = true
    /// Whether `conv` followed by `bn` can run fused: a small im2col (C·k·k ≤ 32) and BN with ReLU and pool.
    public static func suits(_ conv: Conv2d, _ bn: BatchNorm2d) -> Bool {
        enabled && conv.inChannels * conv.kernel * conv.kernel <= 32 && bn.fusedPool && bn.channels == conv.outChannels
    }

    /// The im2col columns of the last forward's batch (C·k·k, N·Ho·Wo), kept for backward.
    public let columns = Tensor(shape: [0])
    /// Per worker: a (K, Ho·Wo) convolution tile, an (Ho, Wo) un-pooling plane, (C·k·k, Ho·Wo) column
    /// gradients and a (K, C·k·k) weight-gradient partial.
    private let scratch = Tensor(shape: [0])
    /// Per channel a and shift of y = a·x + shift from the last forward, then backward's k1, k0 and center.
    private let affine = Tensor(shape: [0])
    /// Per (channel, image) gradient sums (2·K·N), then per worker bias-gradient partials (K each).
    private var sums: UnsafeMutablePointer<Double> = .allocate(capacity: 1)
    private var sumsCapacity = 1
    private var input: Tensor?

    /// Fuses `conv` and `bn` (which must suit, see `suits`); they keep their parameters and statistics.
    public init(_ conv: Conv2d, _ bn: BatchNorm2d) {
        precondition(bn.fusedPool && bn.channels == conv.outChannels, "ConvBatchNorm: BN with the fused pool after the convolution")
        self.conv = conv; self.bn = bn
    }

    deinit { sums.deallocate() }

    private func ensureSums(_ count: Int) {
        if count > sumsCapacity { sums.deallocate(); sums = .allocate(capacity: count); sumsCapacity = count }
    }

    /// Floats of scratch one worker uses for output planes of `t` pixels.
    private func scratchPerWorker(_ t: Int) -> Int {
        let ckk = conv.inChannels * conv.kernel * conv.kernel
        return conv.outChannels * t + t + ckk * t + conv.outChannels * ckk
    }

    /// tile (K, T) = the convolution of image `img`: W (K, C·k·k) · its columns (+ bias), as `Conv2d` does.
    @inline(__always)
    private func convolve(_ img: Int, t: Int, p: Int, into tile: UnsafeMutablePointer<Float>) {
        let k = conv.outChannels, ckk = conv.inChannels * conv.kernel * conv.kernel
        var beta: Float = 0
        if let b = conv.bias {
            let bp = b.value.data
            for c in 0..<k { (tile + c * t).update(repeating: bp[c], count: t) }
            beta = 1
        }
        sgemm(k, t, ckk, conv.weight.value.data, columns.data + img * t, ldb: p, beta: beta, tile, split: false)
    }

    /// The pooled output and the kept im2col columns.
    public var activationFloats: Int { bn.output.count + columns.count }
    public func trace(_ x: ImageShape) -> LayerTrace {
        let t = conv.trace(x)
        return LayerTrace(ImageShape(c: t.output.c, h: t.output.h / 2, w: t.output.w / 2),
                          "conv\(conv.kernel)x\(conv.kernel)/\(conv.stride)+batchnorm+relu+avgpool2 \(bn.name)", macs: t.macs)
    }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[0] == conv.inChannels, "ConvBatchNorm: input \(x.shape), expected (\(conv.inChannels),N,H,W)")
        input = x
        let n = x.shape[1], h = x.shape[2], w = x.shape[3], (ho, wo) = conv.outputSize(h, w), t = ho * wo, p = n * t
        let k = conv.outChannels, ckk = conv.inChannels * conv.kernel * conv.kernel
        columns.ensureShape(ckk, p)
        conv.im2col(x.data, columns.data, channels: conv.inChannels, n: n, n0: 0, n1: n, h: h, w: w, ho: ho, wo: wo)
        let out = bn.output
        out.ensureShape(k, n, ho / 2, wo / 2)
        let workers = max(1, min(Engine.threads, n)), per = scratchPerWorker(t)
        scratch.ensureShape(workers * per)
        let ws = scratch.data, yp = out.data, tq = (ho / 2) * (wo / 2)
        let needBatch = bn.beginForward(n: n)
        let (ps, pq) = bn.planeSums
        if needBatch {
            WorkerPool.shared.run(workers) { wk in
                let tile = ws + wk * per
                for img in Swift.stride(from: wk, to: n, by: workers) {
                    convolve(img, t: t, p: p, into: tile)
                    for c in 0..<k { (ps[c * n + img], pq[c * n + img]) = sumAndSquares(tile + c * t, t) }
                }
            }
        }
        affine.ensureShape(5 * k)   // a, shift here; backward adds k1, k0, center
        let af = affine.data
        for c in 0..<k {
            var s = 0.0, q = 0.0
            if needBatch { for i in 0..<n { s += ps[c * n + i]; q += pq[c * n + i] } }   // BatchNorm2d's order
            (af[c], af[k + c]) = bn.channelAffine(c, sum: s, squares: q, count: p, batch: needBatch)
        }
        WorkerPool.shared.run(workers) { wk in
            let tile = ws + wk * per
            for img in Swift.stride(from: wk, to: n, by: workers) {
                convolve(img, t: t, p: p, into: tile)
                for c in 0..<k { poolPlane(tile + c * t, yp + (c * n + img) * tq, h: ho, w: wo, a: af[c], shift: af[k + c]) }
            }
        }
        bn.accumulateClassStatistics(n: n, hw: t)
        return out
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard let x = input else { preconditionFailure("ConvBatchNorm.backward before forward") }
        let n = x.shape[1], h = x.shape[2], w = x.shape[3], (ho, wo) = conv.outputSize(h, w), t = ho * wo, p = n * t
        let k = conv.outChannels, ckk = conv.inChannels * conv.kernel * conv.kernel, tq = (ho / 2) * (wo / 2)
        precondition(dy.count == k * n * tq, "ConvBatchNorm.backward: dy \(dy.shape), expected (\(k),\(n),\(ho / 2),\(wo / 2))")
        let wantDx = flags.wantsInputGrad, wantDp = flags.wantsParamGrads
        let workers = max(1, min(Engine.threads, n)), per = scratchPerWorker(t)
        scratch.ensureShape(workers * per)   // (the thread count may have changed since forward)
        ensureSums(max(2 * k * n, workers * k))
        let ws = scratch.data, gp = UnsafePointer(dy.data), af = UnsafePointer(affine.data), sg = sums, sgx = sums + k * n
        // pass 1: per (channel, image) Σg and Σg·x of the masked, un-pooled gradient
        WorkerPool.shared.run(workers) { wk in
            let tile = ws + wk * per, up = tile + k * t
            for img in Swift.stride(from: wk, to: n, by: workers) {
                convolve(img, t: t, p: p, into: tile)
                for c in 0..<k {
                    (sg[c * n + img], sgx[c * n + img]) = pooledGradSums(tile + c * t, gp + (c * n + img) * tq, up,
                                                                         h: ho, w: wo, a: af[c], shift: af[k + c])
                }
            }
        }
        // per channel, summed over the images in BatchNorm2d's order: dγ, dβ and dx's affine form
        let kc = affine.data + 2 * k
        for c in 0..<k {
            var s = 0.0, q = 0.0
            for i in 0..<n { s += sg[c * n + i]; q += sgx[c * n + i] }
            let g = bn.channelGradient(c, sumG: s, sumGX: q, count: p)
            kc[c] = g.k1; kc[k + c] = g.k0; kc[2 * k + c] = g.center
        }
        bn.finishBackward()
        guard wantDx || wantDp else { return nil }
        let dx = wantDx ? gradientPool?.acquire(conv.inChannels * n * h * w) ?? conv.inputGrad : conv.inputGrad
        if wantDx { dx.ensureShape(conv.inChannels, n, h, w) }
        let dxp = dx.data, wt = UnsafePointer(conv.weight.value.data), hasBias = conv.bias != nil
        let dbp = sums   // the per-(channel, image) sums are spent: per-worker bias partials from here on
        // pass 2: dx of the BN in the tile, then dW += tile · columnsᵀ, db += Σ tile, dcolumns = Wᵀ · tile
        WorkerPool.shared.run(workers) { wk in
            let tile = ws + wk * per, up = tile + k * t, dcols = up + t, dw = dcols + ckk * t, db = dbp + wk * k
            dw.update(repeating: 0, count: k * ckk)
            db.update(repeating: 0, count: k)
            for img in Swift.stride(from: wk, to: n, by: workers) {
                convolve(img, t: t, p: p, into: tile)
                for c in 0..<k {
                    let pl = tile + c * t
                    pooledPlaneGradient(pl, gp + (c * n + img) * tq, up, pl, h: ho, w: wo, a: af[c], shift: af[k + c],
                                        k1: kc[c], k0: kc[k + c], center: kc[2 * k + c])
                    if wantDp && hasBias { db[c] += sumAndSquares(pl, t).0 }
                }
                if wantDp {
                    sgemm(transB: true, k, ckk, t, tile, columns.data + img * t, ldb: p, beta: 1, dw, split: false)
                }
                if wantDx {
                    sgemm(transA: true, ckk, t, k, wt, tile, dcols, split: false)
                    conv.col2im(dcols, dxp, n: n, n0: img, n1: img + 1, h: h, w: w, ho: ho, wo: wo, parallel: false)
                }
            }
        }
        if wantDp {
            let gw = conv.weight.grad.data
            for wk in 0..<workers {
                let dw = ws + wk * per + k * t + t + ckk * t
                for i in 0..<(k * ckk) { gw[i] += dw[i] }
            }
            if let b = conv.bias {
                let gb = b.grad.data
                for c in 0..<k {
                    var s = 0.0
                    for wk in 0..<workers { s += dbp[wk * k + c] }
                    gb[c] += Float(s)
                }
            }
        }
        return wantDx ? dx : nil
    }
}
