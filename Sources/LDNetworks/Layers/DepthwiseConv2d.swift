import LDKernels

/// Depthwise convolution: every channel convolved with its own k×k filter (torchvision's `Conv2d(C, C, k,
/// stride, padding: k/2, groups: C, bias: false)`), on channel-major activations: x (C,N,H,W) → y (C,N,Ho,Wo),
/// Ho = (H + 2·(k/2) − k)/stride + 1. Weight (C,1,k,k); odd k, stride 1 or 2.
///
/// A direct kernel: a depthwise convolution does k² multiply-adds per output against about two memory accesses,
/// so it is bound by memory and an im2col lowering would only add traffic. Each (c, n) plane is first copied
/// into a zero-bordered scratch plane that stays in L1 (a stride-2 plane split into its even and odd columns),
/// so that every tap is one contiguous 8-lane load along W times a broadcast weight, without edge cases.
/// Planes of at most 16 pixels (4×4 and below: the last stages at 32 px) take a small-matrix path instead
/// (`smallPlanes`). Forward runs in parallel over the C·N planes (over channels on the small path); backward
/// over channels, each channel's weight gradient summed by one worker in image order, so results do not
/// depend on the thread count.
public final class DepthwiseConv2d: Layer {
    /// C, odd kernel size k, stride (1 or 2) and padding k/2.
    public let channels: Int, kernel: Int, stride: Int, padding: Int
    /// (C, 1, k, k)
    public let weight: Parameter
    public var parameters: [Parameter] { [weight] }

    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }

    /// y (C,N,Ho,Wo)
    public let output = Tensor(shape: [0])
    /// dx (C,N,H,W) when no `gradientPool` is set.
    public let inputGrad = Tensor(shape: [0])
    /// Where backward takes dx from inside a model (see `GradientPool`); nil: `inputGrad`.
    public var gradientPool: GradientPool?
    /// Per-worker scratch planes (see `Geometry`).
    private let scratch = Tensor(shape: [0])
    private var input: Tensor?

    /// A depthwise convolution of `channels` channels; `name` prefixes the parameter name (`<name>.weight`).
    public init(_ channels: Int, kernel: Int, stride: Int = 1, name: String = "") {
        precondition(kernel % 2 == 1 && (stride == 1 || stride == 2), "DepthwiseConv2d: odd kernel, stride 1 or 2")
        self.channels = channels; self.kernel = kernel; self.stride = stride; self.padding = kernel / 2
        weight = Parameter(name: (name.isEmpty ? "" : name + ".") + "weight", shape: [channels, 1, kernel, kernel])
    }

    /// Kaiming-normal, fan-out, ReLU gain, as torchvision initialises every convolution of MobileNetV2 and
    /// EfficientNet: PyTorch's fan-out of a (C,1,k,k) weight is C·k·k, so std = sqrt(2 / (C·k·k)).
    public func initialize<G: RandomNumberGenerator>(_ rng: inout G) {
        rng.fillNormal(weight.value, std: (2 / Float(channels * kernel * kernel)).squareRoot())
    }

    /// (Ho, Wo) for an (H, W) input.
    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1)
    }

    public var activationFloats: Int { output.count }

    public func trace(_ x: ImageShape) -> LayerTrace {
        let (h, w) = outputSize(x.h, x.w)
        return LayerTrace(ImageShape(c: channels, h: h, w: w), "dwconv\(kernel)x\(kernel)/\(stride) \(weight.name.dropLast(7))",
                          macs: channels * kernel * kernel * h * w)
    }

    // MARK: - Scratch geometry

    /// Where a plane lives in scratch. Stride 1: one plane of `rows` rows of `ls` floats holding x at
    /// (r + p, c + p), zeros around (and up to the end of each row, so 8-lane reads past the last column read
    /// zeros). Stride 2: the padded plane's even columns (E) and odd columns (O), each `rows` × `ls`, padded
    /// column c at index c/2 of E or O, so tap j of output column q reads E or O at q + j/2. `ls` is a multiple
    /// of 8 with room for the last vector's reads.
    struct Geometry {
        let h: Int, w: Int, ho: Int, wo: Int, k: Int, s: Int, p: Int
        let rows: Int, ls: Int
        /// Backward's dy copy: `gRows` rows of `gls` floats holding dy at (r + p, c + p), zeros around (for
        /// stride 1 the same layout as x's copy).
        let gRows: Int, gls: Int
        init(h: Int, w: Int, ho: Int, wo: Int, k: Int, s: Int) {
            self.h = h; self.w = w; self.ho = ho; self.wo = wo; self.k = k; self.s = s; p = k / 2
            rows = h + 2 * p
            let wo8 = (wo + 7) / 8 * 8
            ls = s == 1 ? (w + 2 * p + 7) / 8 * 8 + 8 : max(wo8 + 8, (w + 2 * p + 1) / 2 + 8)
            gRows = s == 1 ? rows : ho + 2 * p + 1
            gls = s == 1 ? ls : (wo + 2 * p + 7) / 8 * 8 + 16
        }
        /// Floats of the padded input copy (both halves for stride 2).
        var inputFloats: Int { s * rows * ls }
        /// Floats of the dy copy.
        var gradFloats: Int { gRows * gls }
    }

    /// Copies plane `src` (h, w) into its scratch form at `dst` (the borders must already be zero).
    @inline(__always)
    private static func pad(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ g: Geometry) {
        let w = g.w, p = g.p, ls = g.ls
        if g.s == 1 {
            for r in 0..<g.h { (dst + (r + p) * ls + p).update(from: src + r * w, count: w) }
            return
        }
        let even = dst, odd = dst + g.rows * ls
        // column iw lands at padded column iw + p: even iw in E when p is even, in O when p is odd
        let (evenTo, oddTo) = p % 2 == 0 ? (even, odd) : (odd, even)
        let evenOff = p / 2, oddOff = (p + 1) / 2
        for r in 0..<g.h {
            let s = src + r * w, e = evenTo + (r + p) * ls + evenOff, o = oddTo + (r + p) * ls + oddOff
            var i = 0
            while i + 16 <= w {
                let v = load16(s + i)
                UnsafeMutableRawPointer(e + i / 2).storeBytes(of: v.evenHalf, as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(o + i / 2).storeBytes(of: v.oddHalf, as: SIMD8<Float>.self)
                i += 16
            }
            while i < w {
                if i % 2 == 0 { e[i / 2] = s[i] } else { o[i / 2] = s[i] }
                i += 1
            }
        }
    }

    /// Stores the 8 lanes of v at `dst`, or the first `n` when n < 8.
    @inline(__always)
    private static func store(_ v: SIMD8<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        if n >= 8 { UnsafeMutableRawPointer(dst).storeBytes(of: v, as: SIMD8<Float>.self); return }
        for t in 0..<n { dst[t] = v[t] }
    }

    /// y (ho, wo) = the convolution of the scratch plane `xs` with the k×k weights `wt` (`flip`: rotated by
    /// 180°, the stride-1 input gradient).
    @inline(__always)
    private static func convolvePlane(_ xs: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                      _ g: Geometry, k: Int, flip: Bool = false) {
        let ls = g.ls, wo = g.wo, kk = k * k
        @inline(__always) func tap(_ t: Int) -> SIMD8<Float> { SIMD8(repeating: wt[flip ? kk - 1 - t : t]) }
        if g.s == 1 {
            for oh in 0..<g.ho {
                var ow = 0
                while ow < wo {
                    var acc = SIMD8<Float>()
                    for i in 0..<k {
                        let row = xs + (oh + i) * ls + ow
                        for j in 0..<k { acc += tap(i * k + j) * load8(row + j) }
                    }
                    store(acc, y + oh * wo + ow, wo - ow)
                    ow += 8
                }
            }
        } else {
            let odd = xs + g.rows * ls
            for oh in 0..<g.ho {
                var ow = 0
                while ow < wo {
                    var acc = SIMD8<Float>()
                    for i in 0..<k {
                        let re = xs + (2 * oh + i) * ls + ow, ro = odd + (2 * oh + i) * ls + ow
                        for j in 0..<k { acc += tap(i * k + j) * load8((j % 2 == 0 ? re : ro) + j / 2) }
                    }
                    store(acc, y + oh * wo + ow, wo - ow)
                    ow += 8
                }
            }
        }
    }

    /// The same with k fixed at 3 or 5 (loops unrolled, weights in registers).
    @inline(__always)
    private static func convolve(_ xs: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                 _ g: Geometry, flip: Bool = false) {
        switch g.k {
        case 3: convolvePlane(xs, wt, y, g, k: 3, flip: flip)
        case 5: convolvePlane(xs, wt, y, g, k: 5, flip: flip)
        default: convolvePlane(xs, wt, y, g, k: g.k, flip: flip)
        }
    }

    /// dw (k×k) += Σ dy·x over one plane: `gs` the scratch dy (zero past each row's end), `xs` the scratch x.
    @inline(__always)
    private static func weightGradientPlane(_ gs: UnsafePointer<Float>, _ xs: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Double>,
                                            _ g: Geometry, k: Int) {
        let ls = g.ls, wo = g.wo
        let odd = xs + g.rows * ls
        for i in 0..<k {
            var acc = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
            for oh in 0..<g.ho {
                let grow = gs + (oh + g.p) * g.gls + g.p
                var ow = 0
                while ow < wo {
                    let gv = load8(grow + ow)
                    if g.s == 1 {
                        let row = xs + (oh + i) * ls + ow
                        acc.0 += gv * load8(row)
                        if k > 1 { acc.1 += gv * load8(row + 1) }
                        if k > 2 { acc.2 += gv * load8(row + 2) }
                        if k > 3 { acc.3 += gv * load8(row + 3) }
                        if k > 4 { acc.4 += gv * load8(row + 4) }
                    } else {
                        let re = xs + (2 * oh + i) * ls + ow, ro = odd + (2 * oh + i) * ls + ow
                        acc.0 += gv * load8(re)
                        if k > 1 { acc.1 += gv * load8(ro) }
                        if k > 2 { acc.2 += gv * load8(re + 1) }
                        if k > 3 { acc.3 += gv * load8(ro + 1) }
                        if k > 4 { acc.4 += gv * load8(re + 2) }
                    }
                    ow += 8
                }
            }
            let d = dw + i * k
            d[0] += Double(acc.0.sum())
            if k > 1 { d[1] += Double(acc.1.sum()) }
            if k > 2 { d[2] += Double(acc.2.sum()) }
            if k > 3 { d[3] += Double(acc.3.sum()) }
            if k > 4 { d[4] += Double(acc.4.sum()) }
        }
    }

    /// Generic-k weight gradient (k > 5): one tap at a time.
    private static func weightGradientPlaneAnyK(_ gs: UnsafePointer<Float>, _ xs: UnsafePointer<Float>,
                                                _ dw: UnsafeMutablePointer<Double>, _ g: Geometry) {
        let ls = g.ls, wo = g.wo, k = g.k
        let odd = xs + g.rows * ls
        for i in 0..<k {
            for j in 0..<k {
                var acc = SIMD8<Float>()
                for oh in 0..<g.ho {
                    let grow = gs + (oh + g.p) * g.gls + g.p
                    let xrow = g.s == 1 ? xs + (oh + i) * ls + j : (j % 2 == 0 ? xs : odd) + (2 * oh + i) * ls + j / 2
                    var ow = 0
                    while ow < wo { acc += load8(grow + ow) * load8(xrow + ow); ow += 8 }
                }
                dw[i * k + j] += Double(acc.sum())
            }
        }
    }

    /// Stride-2 input gradient of one plane, gathered: padded input column c receives the taps b ≡ c (mod 2),
    /// from dy column c/2 − b/2 (rows likewise), so dx's even and odd columns are two stride-1 sums over the
    /// zero-bordered dy copy `gs`, 8 columns each at a time, interleaved on store.
    @inline(__always)
    private static func stride2InputGradientPlane(_ gs: UnsafePointer<Float>, _ wt: UnsafePointer<Float>,
                                                  _ dx: UnsafeMutablePointer<Float>, _ g: Geometry, k: Int) {
        let p = g.p, gls = g.gls, w = g.w
        // dx[2t] is padded column 2t + p, dx[2t + 1] is 2t + 1 + p: their tap parities and q − t
        let evenParity = p % 2, evenOff = p / 2, oddParity = (p + 1) % 2, oddOff = (p + 1) / 2
        let half = (w + 1) / 2
        for ih in 0..<g.h {
            let r = ih + p, rho = r / 2
            let d = dx + ih * w
            var t = 0
            while t < half {
                var ve = SIMD8<Float>(), vo = SIMD8<Float>()
                var a = r % 2
                while a < k {
                    let row = gs + (rho - a / 2 + p) * gls + p + t
                    var b = evenParity
                    while b < k { ve += SIMD8(repeating: wt[a * k + b]) * load8(row + evenOff - b / 2); b += 2 }
                    b = oddParity
                    while b < k { vo += SIMD8(repeating: wt[a * k + b]) * load8(row + oddOff - b / 2); b += 2 }
                    a += 2
                }
                let n = w - 2 * t
                if n >= 16 {
                    store16(V16(ve[0], vo[0], ve[1], vo[1], ve[2], vo[2], ve[3], vo[3],
                                ve[4], vo[4], ve[5], vo[5], ve[6], vo[6], ve[7], vo[7]), d + 2 * t)
                } else {
                    for j in 0..<n { d[2 * t + j] = j % 2 == 0 ? ve[j / 2] : vo[j / 2] }
                }
                t += 8
            }
        }
    }

    // MARK: - Small planes

    /// Whether (h, w) planes take the small-plane path: input and output planes fit one 16-lane vector, so a
    /// channel's convolution is one (Ho·Wo × H·W) matrix M (M[o][i] the weight of the tap joining output o
    /// and input i, or 0) applied to each image's plane: y = M·x, dx = Mᵀ·dy, and the weight gradient is
    /// Σ dy·xᵀ folded back onto the taps. The row kernel would spend most of its lanes and time on padding
    /// and set-up at these sizes.
    static func smallPlanes(h: Int, w: Int, ho: Int, wo: Int) -> Bool { h * w <= 16 && ho * wo <= 16 }

    /// tap[o·16 + i] = the k×k tap joining output o and input i, or −1 (16×16 entries).
    @inline(__always)
    private static func tapTable(_ tap: UnsafeMutablePointer<Int32>, _ g: Geometry) {
        tap.update(repeating: -1, count: 256)
        for o in 0..<(g.ho * g.wo) {
            for i in 0..<(g.h * g.w) {
                let a = i / g.w - (o / g.wo) * g.s + g.p, b = i % g.w - (o % g.wo) * g.s + g.p
                if a >= 0 && a < g.k && b >= 0 && b < g.k { tap[o * 16 + i] = Int32(a * g.k + b) }
            }
        }
    }

    /// The 16 lanes of a plane of n ≤ 16 floats (zeros past n; no read past the plane).
    @inline(__always)
    private static func loadPlane(_ p: UnsafePointer<Float>, _ n: Int) -> V16 {
        if n == 16 { return load16(p) }
        var v = V16()
        for i in 0..<n { v[i] = p[i] }
        return v
    }

    @inline(__always)
    private static func storePlane(_ v: V16, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        if n == 16 { store16(v, p); return }
        for i in 0..<n { p[i] = v[i] }
    }

    private func smallForward(_ x: Tensor, _ g: Geometry, epilogue: (scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, act: Activation)?) {
        let n = x.shape[1], hw = g.h * g.w, howo = g.ho * g.wo, kk = kernel * kernel
        let xp = UnsafePointer(x.data), yp = output.data, wp = UnsafePointer(weight.value.data)
        let parts = min(Engine.threads, channels), channels = channels
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 256) { tapBuffer in
            let tap = tapBuffer.baseAddress!
            DepthwiseConv2d.tapTable(tap, g)
            Engine.parallelRange(parts) { a, b in
                for part in a..<b {
                    withUnsafeTemporaryAllocation(of: V16.self, capacity: 16) { columns in
                        let mc = columns.baseAddress!   // mc[i]: column i of M, lanes over o
                        for c in (channels * part / parts)..<(channels * (part + 1) / parts) {
                            let wc = wp + c * kk
                            for i in 0..<hw {
                                var col = V16()
                                for o in 0..<howo where tap[o * 16 + i] >= 0 { col[o] = wc[Int(tap[o * 16 + i])] }
                                mc[i] = col
                            }
                            for img in 0..<n {
                                let src = xp + (c * n + img) * hw, y = yp + (c * n + img) * howo
                                var acc = V16()
                                for i in 0..<hw { acc += V16(repeating: src[i]) * mc[i] }
                                DepthwiseConv2d.storePlane(acc, y, howo)
                                if let e = epilogue { affineActivate(y, howo, a: e.scale[c], shift: e.shift[c], e.act) }
                            }
                        }
                    }
                }
            }
        }
    }

    private func smallBackward(_ x: Tensor, _ dy: Tensor, _ dx: Tensor, _ g: Geometry, wantDp: Bool, wantDx: Bool) {
        let n = x.shape[1], hw = g.h * g.w, howo = g.ho * g.wo, kk = kernel * kernel
        let xp = UnsafePointer(x.data), gp = UnsafePointer(dy.data), dxp = dx.data
        let wp = UnsafePointer(weight.value.data), dwp = weight.grad.data
        let parts = min(Engine.threads, channels), channels = channels
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 256) { tapBuffer in
            let tap = tapBuffer.baseAddress!
            DepthwiseConv2d.tapTable(tap, g)
            Engine.parallelRange(parts) { a, b in
                for part in a..<b {
                    withUnsafeTemporaryAllocation(of: V16.self, capacity: 32) { rows in
                        let mr = rows.baseAddress!, dm = mr + 16   // mr[o]: row o of M, dm[o]: Σ dy[o]·x, lanes over i
                        for c in (channels * part / parts)..<(channels * (part + 1) / parts) {
                            let wc = wp + c * kk
                            for o in 0..<howo {
                                var row = V16()
                                for i in 0..<hw where tap[o * 16 + i] >= 0 { row[i] = wc[Int(tap[o * 16 + i])] }
                                mr[o] = row
                                dm[o] = V16()
                            }
                            for img in 0..<n {
                                let gy = gp + (c * n + img) * howo
                                if wantDx {
                                    var acc = V16()
                                    for o in 0..<howo { acc += V16(repeating: gy[o]) * mr[o] }
                                    DepthwiseConv2d.storePlane(acc, dxp + (c * n + img) * hw, hw)
                                }
                                if wantDp {
                                    let xv = DepthwiseConv2d.loadPlane(xp + (c * n + img) * hw, hw)
                                    for o in 0..<howo { dm[o] += V16(repeating: gy[o]) * xv }
                                }
                            }
                            guard wantDp else { continue }
                            for o in 0..<howo {
                                for i in 0..<hw where tap[o * 16 + i] >= 0 { dwp[c * kk + Int(tap[o * 16 + i])] += dm[o][i] }
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: - Forward and backward

    public func forward(_ x: Tensor) -> Tensor { forward(x, epilogue: nil) }

    /// Inference forward with the eval-mode BatchNorm `bn` that follows (and its fused activation) applied to
    /// each output plane while it is in cache: the same values as `bn.forward(forward(x))` without BN's pass
    /// over the output. nil, having done nothing, unless `bn` has a plain affine map (eval mode, no statistics
    /// hook, no class statistics); then call the layers one by one. No backward may follow.
    public func forward(_ x: Tensor, then bn: BatchNorm2d) -> Tensor? {
        guard bn.channels == channels, let affine = bn.inferenceAffine() else { return nil }
        return forward(x, epilogue: (affine.scale, affine.shift, bn.activation))
    }

    private func forward(_ x: Tensor, epilogue: (scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, act: Activation)?) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[0] == channels, "DepthwiseConv2d: input \(x.shape), expected (\(channels),N,H,W)")
        input = epilogue == nil ? x : nil
        let n = x.shape[1], h = x.shape[2], w = x.shape[3]
        let (ho, wo) = outputSize(h, w)
        output.ensureShape(channels, n, ho, wo)
        let g = Geometry(h: h, w: w, ho: ho, wo: wo, k: kernel, s: stride)
        if DepthwiseConv2d.smallPlanes(h: h, w: w, ho: ho, wo: wo) {
            smallForward(x, g, epilogue: epilogue)
            return output
        }
        let planes = channels * n, parts = min(Engine.threads, planes)
        let per = g.inputFloats
        scratch.ensureShape(parts * per)
        let xp = UnsafePointer(x.data), yp = output.data, wp = UnsafePointer(weight.value.data), sp = scratch.data
        let kk = kernel * kernel, hw = h * w, howo = ho * wo
        Engine.parallelRange(parts) { a, b in
            for part in a..<b {
                let xs = sp + part * per
                xs.update(repeating: 0, count: per)
                for pl in (planes * part / parts)..<(planes * (part + 1) / parts) {
                    let c = pl / n, y = yp + pl * howo
                    DepthwiseConv2d.pad(xp + pl * hw, xs, g)
                    DepthwiseConv2d.convolve(xs, wp + c * kk, y, g)
                    if let e = epilogue { affineActivate(y, howo, a: e.scale[c], shift: e.shift[c], e.act) }
                }
            }
        }
        return output
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard let x = input else { preconditionFailure("DepthwiseConv2d.backward before forward") }
        let n = x.shape[1], h = x.shape[2], w = x.shape[3]
        let (ho, wo) = outputSize(h, w)
        precondition(dy.count == channels * n * ho * wo, "DepthwiseConv2d.backward: dy \(dy.shape)")
        let wantDp = flags.wantsParamGrads, wantDx = flags.wantsInputGrad
        guard wantDp || wantDx else { return nil }
        let dx = wantDx ? gradientPool?.acquire(channels * n * h * w) ?? inputGrad : inputGrad
        if wantDx { dx.ensureShape(channels, n, h, w) }
        let g = Geometry(h: h, w: w, ho: ho, wo: wo, k: kernel, s: stride)
        if DepthwiseConv2d.smallPlanes(h: h, w: w, ho: ho, wo: wo) {
            smallBackward(x, dy, dx, g, wantDp: wantDp, wantDx: wantDx)
            return wantDx ? dx : nil
        }
        let parts = min(Engine.threads, channels)
        let kk = kernel * kernel
        // per worker: the x copy and the dy copy
        let per = g.inputFloats + g.gradFloats
        scratch.ensureShape(parts * per)
        let xp = UnsafePointer(x.data), gp = UnsafePointer(dy.data), dxp = dx.data
        let wp = UnsafePointer(weight.value.data), dwp = weight.grad.data, sp = scratch.data
        let hw = h * w, howo = ho * wo, s = stride, k = kernel, p = padding
        Engine.parallelRange(parts) { a, b in
            for part in a..<b {
                let xs = sp + part * per, gs = xs + g.inputFloats
                xs.update(repeating: 0, count: g.inputFloats + g.gradFloats)
                withUnsafeTemporaryAllocation(of: Double.self, capacity: kk) { buffer in
                    let dw = buffer.baseAddress!
                    for c in (channels * part / parts)..<(channels * (part + 1) / parts) {
                        for t in 0..<kk { dw[t] = 0 }
                        for img in 0..<n {
                            let pl = c * n + img, gsrc = gp + pl * howo
                            // dy into its zero-bordered scratch copy
                            for r in 0..<ho { (gs + (r + p) * g.gls + p).update(from: gsrc + r * wo, count: wo) }
                            if wantDp {
                                DepthwiseConv2d.pad(xp + pl * hw, xs, g)
                                switch k {
                                case 3: DepthwiseConv2d.weightGradientPlane(gs, xs, dw, g, k: 3)
                                case 5: DepthwiseConv2d.weightGradientPlane(gs, xs, dw, g, k: 5)
                                case 1: DepthwiseConv2d.weightGradientPlane(gs, xs, dw, g, k: 1)
                                default: DepthwiseConv2d.weightGradientPlaneAnyK(gs, xs, dw, g)
                                }
                            }
                            guard wantDx else { continue }
                            if s == 1 {
                                // dx is the "same" convolution of dy with the weights rotated by 180°.
                                DepthwiseConv2d.convolve(gs, wp + c * kk, dxp + pl * hw, g, flip: true)
                            } else {
                                switch k {
                                case 3: DepthwiseConv2d.stride2InputGradientPlane(gs, wp + c * kk, dxp + pl * hw, g, k: 3)
                                case 5: DepthwiseConv2d.stride2InputGradientPlane(gs, wp + c * kk, dxp + pl * hw, g, k: 5)
                                default: DepthwiseConv2d.stride2InputGradientPlane(gs, wp + c * kk, dxp + pl * hw, g, k: k)
                                }
                            }
                        }
                        if wantDp { for t in 0..<kk { dwp[c * kk + t] += Float(dw[t]) } }
                    }
                }
            }
        }
        return wantDx ? dx : nil
    }
}
