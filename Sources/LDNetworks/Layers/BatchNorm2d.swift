import LDKernels
import LDRecords
import LDData
/// Per-class statistics of a BatchNorm layer's input, for LPLD's class-wise recovery targets.
///
/// For class k and channel c: `count[k]` values were seen per channel (images × H × W), `sum[k·C + c]`
/// and `sumSquares[k·C + c]` are Σx and Σx² over them, all in Double.
public final class ClassStatistics {
    /// Number of classes and channels the statistics were sized for.
    public let classes: Int, channels: Int
    /// Values seen per channel for each class (classes).
    public var count: [Double]
    /// Σx per (class, channel), class-major (classes·C).
    public var sum: [Double]
    /// Σx² per (class, channel), class-major (classes·C).
    public var sumSquares: [Double]

    /// Zeroed statistics for `classes` × `channels`.
    public init(classes: Int, channels: Int) {
        self.classes = classes; self.channels = channels
        count = [Double](repeating: 0, count: classes)
        sum = [Double](repeating: 0, count: classes * channels)
        sumSquares = [Double](repeating: 0, count: classes * channels)
    }

    /// Mean of class `k` per channel (C); zeros for a class never seen.
    public func mean(_ k: Int) -> [Float] {
        (0..<channels).map { c in count[k] > 0 ? Float(sum[k * channels + c] / count[k]) : 0 }
    }

    /// Biased variance of class `k` per channel (C); zeros for a class never seen.
    public func variance(_ k: Int) -> [Float] {
        (0..<channels).map { c in
            guard count[k] > 0 else { return 0 }
            let m = sum[k * channels + c] / count[k]
            return Float(max(0, sumSquares[k * channels + c] / count[k] - m * m))
        }
    }

    /// Clears every count and sum.
    public func reset() {
        for i in count.indices { count[i] = 0 }
        for i in sum.indices { sum[i] = 0; sumSquares[i] = 0 }
    }
}

/// Batch normalisation over (N, H, W) per channel, optionally followed by a fused activation (ReLU, ReLU6,
/// SiLU: `Activation`), on channel-major activations: x (C,N,H,W) → y (C,N,H,W).
///
/// Train mode normalises with the batch mean and biased variance and updates the running statistics
/// (momentum 0.1 by default; the running variance takes the unbiased batch variance, as PyTorch does). Eval
/// mode normalises with the running statistics.
///
/// Hook for the BN-statistics loss: with `captureBatchStatistics` set, forward also writes the batch mean and
/// biased variance of its input to `batchMean` / `batchVariance` (in eval mode too, where the output still
/// uses the running statistics), and backward adds the gradients found in `dBatchMean` / `dBatchVariance`
/// (then clears them) to the input gradient.
public final class BatchNorm2d: Layer {
    /// C.
    public let channels: Int
    /// Added to the variance before the square root (PyTorch's default 1e-5 unless given).
    public let eps: Float
    /// Running-statistics momentum: running = (1 − m)·running + m·batch (PyTorch's default 0.1 unless given).
    public let momentum: Float
    /// The activation applied inside this layer after the normalisation (y = act(bn(x))).
    public let activation: Activation
    /// Whether the fused activation is a ReLU (y = max(bn(x), 0)).
    public var fusedReLU: Bool { activation == .relu }
    /// Whether a 2×2 stride-2 average pool (floor on odd sizes) follows the ReLU inside this layer (the
    /// ConvNet block): y (C,N,H/2,W/2). The un-pooled activation is never stored; backward recomputes the
    /// ReLU mask from the cached input.
    public let fusedPool: Bool
    /// γ (C), β (C)
    public let weight: Parameter, bias: Parameter
    public var parameters: [Parameter] { [weight, bias] }
    /// Running mean and variance (C), updated in train mode.
    public let runningMean: Tensor, runningVar: Tensor
    /// Name prefix for parameters and buffers, e.g. `layer1.0.bn1`.
    public let name: String

    /// Hook switch and its tensors (C each).
    public var captureBatchStatistics = false
    /// Batch mean and biased variance (C) of the last forward's input, when captured.
    public let batchMean = Tensor(shape: [0]), batchVariance = Tensor(shape: [0])
    /// dL/d(batch mean), dL/d(batch variance) (C), set by the loss; backward consumes and clears them.
    public let dBatchMean = Tensor(shape: [0]), dBatchVariance = Tensor(shape: [0])

    /// Per-class statistics of the input, accumulated while `classLabels` is set (one label per image).
    public var classStatistics: ClassStatistics?
    /// Labels of the current batch (N) while accumulating class statistics; nil otherwise.
    public var classLabels: UnsafePointer<Int32>?

    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }

    /// y (C,N,H,W), or (C,N,H/2,W/2) with the fused pool. The input gradient is written over dy (see
    /// `backward`), or into `pooledInputGrad` with the fused pool.
    public let output = Tensor(shape: [0])
    /// dx (C,N,H,W) of the fused-pool variant when no `gradientPool` is set.
    public let pooledInputGrad = Tensor(shape: [0])
    /// Where the fused-pool backward takes dx from inside a model (see `GradientPool`); nil: `pooledInputGrad`.
    public var gradientPool: GradientPool?
    /// One (H,W) plane per channel: the un-pooled gradient of the fused-pool backward.
    private let scratchPlanes = Tensor(shape: [0])
    /// Cached for backward: the mean and 1/sqrt(var + eps) used by the last forward (C each), and its input.
    private let usedMean = Tensor(shape: [0]), usedInvStd = Tensor(shape: [0])
    /// `inferenceAffine`'s scale and shift (C each).
    private let inferenceScale = Tensor(shape: [0]), inferenceShift = Tensor(shape: [0])
    /// Per-(c, n) plane sums of the input (C·N), Double, for batch and class statistics.
    private var planeSum: UnsafeMutablePointer<Double>, planeSq: UnsafeMutablePointer<Double>
    private var planeCapacity = 0
    private var input: Tensor?
    private var usedBatchStats = false

    /// γ = 1, β = 0, running mean 0, running variance 1. `relu` fuses a ReLU, `pool` (needs `relu`) the
    /// 2×2 average pool after it; `name` prefixes parameter and buffer names.
    public convenience init(_ channels: Int, relu: Bool = false, pool: Bool = false, name: String = "") {
        self.init(channels, activation: relu ? .relu : .none, pool: pool, name: name)
    }

    /// γ = 1, β = 0, running mean 0, running variance 1, with `activation` fused after the normalisation,
    /// PyTorch's `eps` and `momentum` unless given; `pool` (needs ReLU) fuses the 2×2 average pool after it.
    public init(_ channels: Int, activation: Activation, eps: Float = 1e-5, momentum: Float = 0.1,
                pool: Bool = false, name: String = "") {
        precondition(!pool || activation == .relu, "BatchNorm2d: the fused average pool follows the fused ReLU")
        self.channels = channels
        self.activation = activation
        self.eps = eps
        self.momentum = momentum
        self.fusedPool = pool
        self.name = name
        let prefix = name.isEmpty ? "" : name + "."
        weight = Parameter(name: prefix + "weight", shape: [channels], decays: false)
        bias = Parameter(name: prefix + "bias", shape: [channels], decays: false)
        weight.value.fill(1)
        runningMean = Tensor(shape: [channels])
        runningVar = Tensor(shape: [channels])
        runningVar.fill(1)
        planeSum = .allocate(capacity: 1); planeSq = .allocate(capacity: 1)
        for t in [batchMean, batchVariance, dBatchMean, dBatchVariance, usedMean, usedInvStd, inferenceScale, inferenceShift] { t.reshape([channels]) }
    }

    deinit { planeSum.deallocate(); planeSq.deallocate() }

    /// Named buffers (running statistics) for model files.
    public var buffers: [(name: String, tensor: Tensor)] {
        let prefix = name.isEmpty ? "" : name + "."
        return [(prefix + "running_mean", runningMean), (prefix + "running_var", runningVar)]
    }

    /// The pooled size when the pool is fused.
    public var activationFloats: Int { output.count }
    public func trace(_ x: ImageShape) -> LayerTrace {
        LayerTrace(fusedPool ? ImageShape(c: x.c, h: x.h / 2, w: x.w / 2) : x,
                   "batchnorm\(activation == .none ? "" : "+" + activation.rawValue)\(fusedPool ? "+avgpool2" : "") \(name)")
    }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[0] == channels, "BatchNorm2d: input \(x.shape), expected (\(channels),N,H,W)")
        input = x
        let n = x.shape[1], hw = x.shape[2] * x.shape[3], m = n * hw
        let h = x.shape[2], w = x.shape[3], ho = h / 2, wo = w / 2, pool = fusedPool
        if pool { output.ensureShape(channels, n, ho, wo) } else { output.ensureShape(channels, n, h, w) }
        let needBatch = beginForward(n: n)
        let xp = UnsafePointer(x.data), yp = output.data
        let ps = planeSum, pq = planeSq
        let relu = fusedReLU, act = activation
        Engine.parallelRange(channels) { c0, c1 in
            for c in c0..<c1 {
                let src = xp + c * m, dst = yp + c * m
                var s = 0.0, q = 0.0
                if needBatch {
                    for i in 0..<n {
                        let (a, b2) = sumAndSquares(src + i * hw, hw)
                        ps[c * n + i] = a; pq[c * n + i] = b2
                        s += a; q += b2
                    }
                }
                let (a, sh) = channelAffine(c, sum: s, squares: q, count: m, batch: needBatch)
                let va = V16(repeating: a), vb = V16(repeating: sh)
                var i = 0
                if pool {
                    // y = avgpool2(relu(a·x + sh)) per plane; only the pooled values are written.
                    let out = yp + c * n * ho * wo
                    for img in 0..<n { poolPlane(src + img * hw, out + img * ho * wo, h: h, w: w, a: a, shift: sh) }
                } else if relu {
                    while i + 16 <= m {
                        let y = load16(src + i) * va + vb
                        store16(y.replacing(with: 0, where: y .< 0), dst + i)
                        i += 16
                    }
                    while i < m { let y = src[i] * a + sh; dst[i] = y > 0 ? y : 0; i += 1 }
                } else if act == .relu6 {
                    while i + 16 <= m { store16(relu6x16(load16(src + i) * va + vb), dst + i); i += 16 }
                    while i < m { dst[i] = act.apply(src[i] * a + sh); i += 1 }
                } else if act == .silu {
                    while i + 16 <= m { store16(silu16(load16(src + i) * va + vb), dst + i); i += 16 }
                    while i < m { dst[i] = act.apply(src[i] * a + sh); i += 1 }
                } else {
                    while i + 16 <= m { store16(load16(src + i) * va + vb, dst + i); i += 16 }
                    while i < m { dst[i] = src[i] * a + sh; i += 1 }
                }
            }
        }
        accumulateClassStatistics(n: n, hw: hw)
        return output
    }

    /// Eval mode's per-channel map y = x·scale + shift (C each, owned by the layer) for a convolution to apply
    /// in place of this layer's forward (`Conv2d.forward(_:then:)`); nil when forward does more than that (train
    /// mode, the statistics hook, class statistics, fused pooling). The activation is left to the caller
    /// (`activation`).
    func inferenceAffine() -> (scale: UnsafePointer<Float>, shift: UnsafePointer<Float>)? {
        guard !flags.training, !captureBatchStatistics, classLabels == nil, !fusedPool else { return nil }
        let a = inferenceScale.data, b = inferenceShift.data
        for c in 0..<channels { (a[c], b[c]) = channelAffine(c, sum: 0, squares: 0, count: 1, batch: false) }
        return (UnsafePointer(a), UnsafePointer(b))
    }

    // MARK: - Pieces shared with ConvBatchNorm, which feeds this layer's math from recomputed tiles

    /// Starts a forward pass over n images: records the mode for backward, makes room for the per-(c, n)
    /// plane sums and returns whether batch statistics are needed (train mode, the hook or class labels).
    func beginForward(n: Int) -> Bool {
        let needBatch = flags.training || captureBatchStatistics || classLabels != nil
        usedBatchStats = flags.training
        if needBatch && planeCapacity < channels * n {
            planeSum.deallocate(); planeSq.deallocate()
            planeCapacity = channels * n
            planeSum = .allocate(capacity: planeCapacity); planeSq = .allocate(capacity: planeCapacity)
        }
        return needBatch
    }

    /// The per-(c, n) plane sums Σx and Σx² (C·N each, channel-major), sized by `beginForward`.
    var planeSums: (sum: UnsafeMutablePointer<Double>, squares: UnsafeMutablePointer<Double>) { (planeSum, planeSq) }

    /// Channel c's normalisation as y = a·x + shift, from Σx and Σx² over its `count` values when `batch`:
    /// records the batch statistics (hook), and in train mode the statistics backward uses and the running
    /// update; eval mode uses the running statistics.
    @inline(__always)
    func channelAffine(_ c: Int, sum s: Double, squares q: Double, count m: Int, batch: Bool) -> (a: Float, shift: Float) {
        let mean = usedMean.data, inv = usedInvStd.data
        if batch {
            let mu = s / Double(m)
            let v = max(0, q / Double(m) - mu * mu)
            batchMean.data[c] = Float(mu); batchVariance.data[c] = Float(v)
            if flags.training {
                mean[c] = Float(mu)
                inv[c] = 1 / (Float(v) + eps).squareRoot()
                // NOTE: running variance takes the unbiased batch variance (PyTorch); the output uses the biased one.
                let unbiased = m > 1 ? v * Double(m) / Double(m - 1) : v
                let rm = runningMean.data, rv = runningVar.data
                rm[c] = (1 - momentum) * rm[c] + momentum * Float(mu)
                rv[c] = (1 - momentum) * rv[c] + momentum * Float(unbiased)
            }
        }
        if !flags.training {
            mean[c] = runningMean.data[c]
            inv[c] = 1 / (runningVar.data[c] + eps).squareRoot()
        }
        let a = weight.value.data[c] * inv[c]
        return (a, bias.value.data[c] - mean[c] * a)
    }

    /// Adds the plane sums of the last forward to `classStatistics` while `classLabels` is set (LPLD).
    func accumulateClassStatistics(n: Int, hw: Int) {
        guard let labels = classLabels else { return }
        let ps = planeSum, pq = planeSq
        let stats: ClassStatistics
        if let s = classStatistics { stats = s } else {
            var k = 0
            for i in 0..<n { k = max(k, Int(labels[i]) + 1) }
            stats = ClassStatistics(classes: k, channels: channels)
            classStatistics = stats
        }
        precondition(stats.channels == channels, "class statistics for \(stats.channels) channels, layer has \(channels)")
        let ch = channels
        stats.count.withUnsafeMutableBufferPointer { cnt in
            stats.sum.withUnsafeMutableBufferPointer { sm in
                stats.sumSquares.withUnsafeMutableBufferPointer { sq in
                    for i in 0..<n {
                        let k = Int(labels[i])
                        precondition(k >= 0 && k < stats.classes, "class label \(k) outside 0..<\(stats.classes)")
                        cnt[k] += Double(hw)
                        for c in 0..<ch { sm[k * ch + c] += ps[c * n + i]; sq[k * ch + c] += pq[c * n + i] }
                    }
                }
            }
        }
    }

    /// Channel c's backward from Σg and Σg·x over its `count` values (g: the gradient at the BN output,
    /// after the ReLU mask): adds dγ and dβ when parameter gradients are wanted and returns dx's affine form
    /// dx = a·g + k1·(x − center) + k0 (every term is affine in g and x; centring first keeps Float
    /// precision when the mean is large against the spread).
    @inline(__always)
    func channelGradient(_ c: Int, sumG sg: Double, sumGX sgx: Double, count m: Int) -> (a: Float, k1: Float, k0: Float, center: Float) {
        let mu = Double(usedMean.data[c]), iv = Double(usedInvStd.data[c])
        let sgxhat = (sgx - mu * sg) * iv            // Σ g·x̂
        if flags.wantsParamGrads { weight.grad.data[c] += Float(sgxhat); bias.grad.data[c] += Float(sg) }
        let a = weight.value.data[c] * usedInvStd.data[c]
        var k1: Double = 0, k0: Double = 0
        let hook = captureBatchStatistics
        let center = hook ? batchMean.data[c] : usedMean.data[c]     // equal in train mode
        if usedBatchStats {
            // dx = γ·inv·(g − Σg/M − x̂·Σg·x̂/M)
            k1 = -Double(a) * sgxhat * iv / Double(m)
            k0 = -Double(a) * sg / Double(m)
        }
        if hook {
            // d/dx of the batch mean: 1/M; of the biased batch variance: 2(x − μ_batch)/M.
            k1 += 2 * Double(dBatchVariance.data[c]) / Double(m)
            k0 += Double(dBatchMean.data[c]) / Double(m)
        }
        return (a, Float(k1), Float(k0), center)
    }

    /// Ends a backward pass: the hook's gradients are consumed.
    func finishBackward() {
        if captureBatchStatistics { dBatchMean.fill(0); dBatchVariance.fill(0) }
    }

    /// Accumulates dγ, dβ and returns dx, computed **in place in `dy`** (the same tensor is returned), or in
    /// `pooledInputGrad` (or a `gradientPool` tensor) for the fused-pool variant.
    public func backward(_ dy: Tensor) -> Tensor? {
        guard let x = input else { preconditionFailure("BatchNorm2d.backward before forward") }
        if fusedPool { return pooledBackward(dy, x) }
        let n = x.shape[1], hw = x.shape[2] * x.shape[3], m = n * hw
        precondition(dy.count == channels * m, "BatchNorm2d.backward: dy \(dy.shape), x \(x.shape)")
        let wantDx = flags.wantsInputGrad
        // NOTE: dx overwrites dy in place: per channel the sums over dy are taken first, then each dx[i]
        // depends only on dy[i] and x[i]. This saves one activation-sized buffer per BatchNorm layer.
        let xp = UnsafePointer(x.data), gp = UnsafePointer(dy.data), dxp = dy.data
        let mask: UnsafePointer<Float>? = fusedReLU ? UnsafePointer(output.data) : nil
        let act = activation, yp = UnsafePointer(output.data)
        let gamma = weight.value.data, beta = bias.value.data, mean = usedMean.data, inv = usedInvStd.data
        Engine.parallelRange(channels) { c0, c1 in
            for c in c0..<c1 {
                let src = xp + c * m, gr = gp + c * m, dst = dxp + c * m
                let mk = mask.map { $0 + c * m }
                let (sg, sgx): (Double, Double)
                if act == .relu6 || act == .silu {
                    // g = act'(z)·dy written over dy first (read off y for ReLU6, from z = a·x + shift
                    // recomputed for SiLU), then the plain path below.
                    let a = gamma[c] * inv[c], sh = beta[c] - mean[c] * a
                    (sg, sgx) = activationGradSums(dst, src, yp + c * m, m, a: a, shift: sh, act)
                } else {
                    (sg, sgx) = gradSums(gr, src, mk, m)
                }
                let (a, k1, k0, center) = channelGradient(c, sumG: sg, sumGX: sgx, count: m)
                guard wantDx else { continue }
                let vc = V16(repeating: center)
                let va = V16(repeating: a), v1 = V16(repeating: k1), v0 = V16(repeating: k0)
                var i = 0
                if let mk = mk {
                    while i + 16 <= m {
                        let gg = load16(gr + i).replacing(with: 0, where: load16(mk + i) .<= 0)
                        store16(v1 * (load16(src + i) - vc) + va * gg + v0, dst + i)
                        i += 16
                    }
                    while i < m {
                        let gg = mk[i] > 0 ? gr[i] : 0
                        dst[i] = a * gg + k1 * (src[i] - center) + k0; i += 1
                    }
                } else {
                    while i + 16 <= m {
                        store16(v1 * (load16(src + i) - vc) + va * load16(gr + i) + v0, dst + i)
                        i += 16
                    }
                    while i < m { dst[i] = a * gr[i] + k1 * (src[i] - center) + k0; i += 1 }
                }
            }
        }
        finishBackward()
        return wantDx ? dy : nil
    }

    /// Backward of BN → ReLU → avg-pool 2: g = (dy_pooled / 4 where a·x + sh > 0, 0 elsewhere and on the
    /// cropped edge), then the BatchNorm backward of g, written to `pooledInputGrad` (or a pool tensor).
    private func pooledBackward(_ dy: Tensor, _ x: Tensor) -> Tensor? {
        let n = x.shape[1], h = x.shape[2], w = x.shape[3], hw = h * w, m = n * hw, ho = h / 2, wo = w / 2
        precondition(dy.count == channels * n * ho * wo, "BatchNorm2d.backward: dy \(dy.shape), x \(x.shape)")
        let wantDx = flags.wantsInputGrad
        let dxT = wantDx ? gradientPool?.acquire(channels * m) ?? pooledInputGrad : pooledInputGrad
        if wantDx { dxT.ensureShape(channels, n, h, w) }
        scratchPlanes.ensureShape(channels * hw)
        let scratch = scratchPlanes.data
        let xp = UnsafePointer(x.data), gp = UnsafePointer(dy.data), dxp = dxT.data
        let mean = usedMean.data, inv = usedInvStd.data, gamma = weight.value.data, beta = bias.value.data
        Engine.parallelRange(channels) { c0, c1 in
            for c in c0..<c1 {
                let src = xp + c * m, gr = gp + c * n * ho * wo, dst = dxp + c * m
                let a = gamma[c] * inv[c], sh = beta[c] - mean[c] * a
                let up = scratch + c * hw   // this channel's un-pooled gradient plane
                var sg = 0.0, sgx = 0.0
                for img in 0..<n {
                    let (ts, tq) = pooledGradSums(src + img * hw, gr + img * ho * wo, up, h: h, w: w, a: a, shift: sh)
                    sg += ts; sgx += tq
                }
                let k = channelGradient(c, sumG: sg, sumGX: sgx, count: m)
                guard wantDx else { continue }
                for img in 0..<n {
                    pooledPlaneGradient(src + img * hw, gr + img * ho * wo, up, dst + img * hw, h: h, w: w,
                                        a: a, shift: sh, k1: k.k1, k0: k.k0, center: k.center)
                }
            }
        }
        finishBackward()
        return wantDx ? dxT : nil
    }
}

// MARK: - Plane kernels of BN → ReLU → avg-pool 2 (BatchNorm2d's fused pool and ConvBatchNorm)

/// y = avgpool2(relu(a·x + shift)) of one (h, w) plane into (h/2, w/2), floor on odd sizes.
@inline(__always)
func poolPlane(_ pl: UnsafePointer<Float>, _ op: UnsafeMutablePointer<Float>, h: Int, w: Int, a: Float, shift sh: Float) {
    let ho = h / 2, wo = w / 2
    let va = V16(repeating: a), vsh = V16(repeating: sh), va8 = SIMD8(repeating: a), vsh8 = SIMD8(repeating: sh)
    for r in 0..<ho {
        let r0 = pl + 2 * r * w, r1 = r0 + w, o = op + r * wo
        var q = 0
        // eight (then four) outputs at a time, in the scalar loop's order: ((v00 + v01) + (v10 + v11)) / 4;
        // `y ≤ 0 → 0` is max(y, 0) for every input, -0 and NaN included
        while 2 * q + 16 <= w {
            var y0 = load16(r0 + 2 * q) * va + vsh, y1 = load16(r1 + 2 * q) * va + vsh
            y0.replace(with: 0, where: y0 .<= 0); y1.replace(with: 0, where: y1 .<= 0)
            let v = 0.25 * ((y0.evenHalf + y0.oddHalf) + (y1.evenHalf + y1.oddHalf))
            UnsafeMutableRawPointer(o + q).storeBytes(of: v, as: SIMD8<Float>.self)
            q += 8
        }
        while 2 * q + 8 <= w {
            var y0 = load8(r0 + 2 * q) * va8 + vsh8, y1 = load8(r1 + 2 * q) * va8 + vsh8
            y0.replace(with: 0, where: y0 .<= 0); y1.replace(with: 0, where: y1 .<= 0)
            store4(0.25 * ((y0.evenHalf + y0.oddHalf) + (y1.evenHalf + y1.oddHalf)), o + q)
            q += 4
        }
        while q < wo {
            let v0 = max(r0[2 * q] * a + sh, 0), v1 = max(r0[2 * q + 1] * a + sh, 0)
            let v2 = max(r1[2 * q] * a + sh, 0), v3 = max(r1[2 * q + 1] * a + sh, 0)
            o[q] = 0.25 * ((v0 + v1) + (v2 + v3))
            q += 1
        }
    }
}

/// up = the pooled gradient gq (h/2, w/2) spread back over its 2×2 blocks, /4 (0 on a cropped edge).
@inline(__always)
private func unpool(_ gq: UnsafePointer<Float>, _ up: UnsafeMutablePointer<Float>, h: Int, w: Int) {
    let ho = h / 2, wo = w / 2
    if h != 2 * ho || w != 2 * wo { up.update(repeating: 0, count: h * w) }
    for r in 0..<ho {
        let u0 = up + 2 * r * w, u1 = u0 + w, gg = gq + r * wo
        var q = 0
        while q + 4 <= wo {   // (g0, g0, g1, g1, ...) is two unpack instructions
            let g = 0.25 * load4(gg + q)
            let v = SIMD8(g[0], g[0], g[1], g[1], g[2], g[2], g[3], g[3])
            UnsafeMutableRawPointer(u0 + 2 * q).storeBytes(of: v, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(u1 + 2 * q).storeBytes(of: v, as: SIMD8<Float>.self)
            q += 4
        }
        while q < wo { let v = 0.25 * gg[q]; u0[2 * q] = v; u0[2 * q + 1] = v; u1[2 * q] = v; u1[2 * q + 1] = v; q += 1 }
    }
}

/// (Σg, Σg·x) over one plane x of BN → ReLU → avg-pool 2, g = the un-pooled gradient of gq where
/// a·x + shift > 0; `up` is an (h, w) scratch plane (left holding the un-pooled gq).
@inline(__always)
func pooledGradSums(_ pl: UnsafePointer<Float>, _ gq: UnsafePointer<Float>, _ up: UnsafeMutablePointer<Float>,
                    h: Int, w: Int, a: Float, shift sh: Float) -> (Double, Double) {
    let hw = h * w
    unpool(gq, up, h: h, w: w)
    let va = V16(repeating: a), vsh = V16(repeating: sh)
    var vs = V16(), vq = V16()
    var i = 0
    while i + 16 <= hw {
        let xv = load16(pl + i)
        let gv = load16(up + i).replacing(with: 0, where: xv * va + vsh .<= 0)
        vs += gv; vq += gv * xv
        i += 16
    }
    var ts = Double(vs.sum()), tq = Double(vq.sum())
    while i < hw { if pl[i] * a + sh > 0 { ts += Double(up[i]); tq += Double(up[i]) * Double(pl[i]) }; i += 1 }
    return (ts, tq)
}

/// dx = a·g + k1·(x − center) + k0 over one plane (g as in `pooledGradSums`); `dl` may be `pl` itself.
@inline(__always)
func pooledPlaneGradient(_ pl: UnsafePointer<Float>, _ gq: UnsafePointer<Float>, _ up: UnsafeMutablePointer<Float>,
                         _ dl: UnsafeMutablePointer<Float>, h: Int, w: Int, a: Float, shift sh: Float,
                         k1 f1: Float, k0 f0: Float, center: Float) {
    let hw = h * w
    unpool(gq, up, h: h, w: w)
    let va = V16(repeating: a), vsh = V16(repeating: sh)
    let v1 = V16(repeating: f1), v0 = V16(repeating: f0), vc = V16(repeating: center)
    var i = 0
    while i + 16 <= hw {
        let xv = load16(pl + i)
        let gv = load16(up + i).replacing(with: 0, where: xv * va + vsh .<= 0)
        store16(va * gv + v1 * (xv - vc) + v0, dl + i)
        i += 16
    }
    while i < hw {
        let gv: Float = pl[i] * a + sh > 0 ? up[i] : 0
        dl[i] = a * gv + f1 * (pl[i] - center) + f0
        i += 1
    }
}

/// (Σg, Σg·x) over n floats of a BatchNorm followed by ReLU6 or SiLU, g = act'(a·x + shift)·dy written over
/// dy: ReLU6's mask from y (0 < y < 6), SiLU's derivative from z recomputed.
@inline(__always)
func activationGradSums(_ dy: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int,
                        a: Float, shift sh: Float, _ act: Activation) -> (Double, Double) {
    var s = 0.0, q = 0.0
    let va = V16(repeating: a), vsh = V16(repeating: sh)
    var i = 0
    while i < n {
        let e = min(n, i + 4096)
        var vs = V16(), vq = V16()
        // one loop per activation, so that neither the test nor a call stays in the loop
        if act == .relu6 {
            while i + 16 <= e {
                let xv = load16(x + i), yv = load16(y + i)
                let g = load16(dy + i).replacing(with: 0, where: (yv .<= 0) .| (yv .>= 6))
                store16(g, dy + i)
                vs += g
                vq += g * xv
                i += 16
            }
        } else {
            while i + 16 <= e {
                let xv = load16(x + i)
                let g = siluGradient16(xv * va + vsh, load16(dy + i))
                store16(g, dy + i)
                vs += g
                vq += g * xv
                i += 16
            }
        }
        var ts = Double(vs.sum()), tq = Double(vq.sum())
        while i < e {
            let g = act == .relu6 ? (y[i] > 0 && y[i] < 6 ? dy[i] : 0) : act.derivative(x[i] * a + sh) * dy[i]
            dy[i] = g
            ts += Double(g); tq += Double(g) * Double(x[i]); i += 1
        }
        s += ts; q += tq
    }
    return (s, q)
}
