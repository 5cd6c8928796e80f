import LDKernels
import LDRecords
import LDData
/// 2×2 stride-2 average pooling on channel-major activations, floor on odd sizes (as the ConvNet's
/// `AvgPool2d(2)`): x (C,N,H,W) → y (C,N,H/2,W/2).
public final class AvgPool2d: Layer {
    public var parameters: [Parameter] { [] }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }
    /// y and dx, owned by the layer and reused.
    public let output = Tensor(shape: [0]), inputGrad = Tensor(shape: [0])
    private var inShape = (0, 0, 0, 0)

    /// A layer without parameters.
    public init() {}

    public var activationFloats: Int { output.count }
    public func trace(_ x: ImageShape) -> LayerTrace { LayerTrace(ImageShape(c: x.c, h: x.h / 2, w: x.w / 2), "avgpool2") }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4, "AvgPool2d: input \(x.shape), expected (C,N,H,W)")
        let c = x.shape[0], n = x.shape[1], h = x.shape[2], w = x.shape[3], ho = h / 2, wo = w / 2
        inShape = (c, n, h, w)
        output.ensureShape(c, n, ho, wo)
        let xp = UnsafePointer(x.data), yp = output.data
        Engine.parallelRange(c * n, grain: 64) { p0, p1 in
            for pl in p0..<p1 {
                let src = xp + pl * h * w, dst = yp + pl * ho * wo
                for i in 0..<ho {
                    let r0 = src + 2 * i * w, r1 = r0 + w, d = dst + i * wo
                    for j in 0..<wo { d[j] = 0.25 * ((r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1])) }
                }
            }
        }
        return output
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard flags.wantsInputGrad else { return nil }
        let (c, n, h, w) = inShape, ho = h / 2, wo = w / 2
        precondition(dy.count == c * n * ho * wo, "AvgPool2d.backward: dy \(dy.shape)")
        inputGrad.ensureShape(c, n, h, w)
        let gp = UnsafePointer(dy.data), dxp = inputGrad.data
        Engine.parallelRange(c * n, grain: 64) { p0, p1 in
            for pl in p0..<p1 {
                let src = gp + pl * ho * wo, dst = dxp + pl * h * w
                if h != 2 * ho || w != 2 * wo { dst.update(repeating: 0, count: h * w) }
                for i in 0..<ho {
                    let r0 = dst + 2 * i * w, r1 = r0 + w, g = src + i * wo
                    for j in 0..<wo {
                        let v = 0.25 * g[j]
                        r0[2 * j] = v; r0[2 * j + 1] = v; r1[2 * j] = v; r1[2 * j + 1] = v
                    }
                }
            }
        }
        return inputGrad
    }
}

/// Max pooling with a square window, stride and implicit −∞ padding, as the ImageNet stem's
/// `MaxPool2d(3, 2, 1)`: x (C,N,H,W) → y (C,N,Ho,Wo), Ho = (H + 2·pad − k)/stride + 1.
/// Forward caches the arg-max index within each plane for backward.
public final class MaxPool2d: Layer {
    /// Window size, stride and padding.
    public let kernel: Int, stride: Int, padding: Int
    public var parameters: [Parameter] { [] }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }
    /// y and dx, owned by the layer and reused.
    public let output = Tensor(shape: [0]), inputGrad = Tensor(shape: [0])
    private var argmax = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private var argmaxCapacity = 0
    private var inShape = (0, 0, 0, 0)

    /// Defaults: the ImageNet ResNet stem's 3×3 stride-2 pad-1 pool.
    public init(kernel: Int = 3, stride: Int = 2, padding: Int = 1) {
        self.kernel = kernel; self.stride = stride; self.padding = padding
    }
    deinit { argmax.deallocate() }

    public var activationFloats: Int { output.count }
    public func trace(_ x: ImageShape) -> LayerTrace {
        LayerTrace(ImageShape(c: x.c, h: (x.h + 2 * padding - kernel) / stride + 1, w: (x.w + 2 * padding - kernel) / stride + 1),
                   "maxpool\(kernel)/\(stride)")
    }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4, "MaxPool2d: input \(x.shape), expected (C,N,H,W)")
        let c = x.shape[0], n = x.shape[1], h = x.shape[2], w = x.shape[3]
        let k = kernel, s = stride, pad = padding
        let ho = (h + 2 * pad - k) / s + 1, wo = (w + 2 * pad - k) / s + 1
        inShape = (c, n, h, w)
        output.ensureShape(c, n, ho, wo)
        if argmaxCapacity < output.count {
            argmax.deallocate(); argmaxCapacity = output.count; argmax = .allocate(capacity: argmaxCapacity)
        }
        let xp = UnsafePointer(x.data), yp = output.data, am = argmax
        let plane = MaxPlane(k: k, s: s, pad: pad, h: h, w: w, ho: ho, wo: wo)
        Engine.parallelRange(c * n, grain: 16) { p0, p1 in
            for pl in p0..<p1 { plane.pool(xp + pl * h * w, yp + pl * ho * wo, am + pl * ho * wo) }
        }
        return output
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard flags.wantsInputGrad else { return nil }
        let (c, n, h, w) = inShape
        let per = dy.count / max(1, c * n)
        precondition(dy.count == output.count, "MaxPool2d.backward: dy \(dy.shape)")
        inputGrad.ensureShape(c, n, h, w)
        let gp = UnsafePointer(dy.data), dxp = inputGrad.data, am = UnsafePointer(argmax)
        Engine.parallelRange(c * n, grain: 16) { p0, p1 in
            for pl in p0..<p1 {
                let dst = dxp + pl * h * w, g = gp + pl * per, arg = am + pl * per
                dst.update(repeating: 0, count: h * w)
                for o in 0..<per { dst[Int(arg[o])] += g[o] }
            }
        }
        return inputGrad
    }
}

/// One plane of `MaxPool2d`'s forward. Outputs whose whole window lies inside the plane (rows iLo..<iHi,
/// columns jLo..<jHi) skip the bounds checks, and a 3×3 window is unrolled; both paths visit the taps in the
/// same row-major order with the same strict comparison, so the maximum and its index are the same.
private struct MaxPlane {
    let k: Int, s: Int, pad: Int, h: Int, w: Int, ho: Int, wo: Int
    let iLo: Int, iHi: Int, jLo: Int, jHi: Int

    init(k: Int, s: Int, pad: Int, h: Int, w: Int, ho: Int, wo: Int) {
        (self.k, self.s, self.pad, self.h, self.w, self.ho, self.wo) = (k, s, pad, h, w, ho, wo)
        (iLo, iHi) = MaxPlane.inside(size: h, count: ho, k: k, s: s, pad: pad)
        (jLo, jHi) = MaxPlane.inside(size: w, count: wo, k: k, s: s, pad: pad)
    }

    /// The outputs lo..<hi along one axis whose window lies inside 0..<size.
    private static func inside(size: Int, count: Int, k: Int, s: Int, pad: Int) -> (Int, Int) {
        let lo = min(count, (pad + s - 1) / s), last = size - k + pad
        return (lo, last < 0 ? lo : max(lo, min(count, last / s + 1)))
    }

    func pool(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ arg: UnsafeMutablePointer<Int32>) {
        for i in 0..<ho {
            if i < iLo || i >= iHi || jLo >= jHi {
                for j in 0..<wo { edge(src, dst, arg, i, j) }
                continue
            }
            for j in 0..<jLo { edge(src, dst, arg, i, j) }
            interior(src, dst + i * wo, arg + i * wo, row: i)
            for j in jHi..<wo { edge(src, dst, arg, i, j) }
        }
    }

    /// Output (i, j) with its window clipped at the plane's edge.
    private func edge(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ arg: UnsafeMutablePointer<Int32>,
                      _ i: Int, _ j: Int) {
        var best = -Float.infinity, bi: Int32 = -1
        for a in 0..<k {
            let ih = i * s - pad + a
            if ih < 0 || ih >= h { continue }
            for b in 0..<k {
                let iw = j * s - pad + b
                if iw < 0 || iw >= w { continue }
                let v = src[ih * w + iw]
                if v > best || bi < 0 { best = v; bi = Int32(ih * w + iw) }
            }
        }
        dst[i * wo + j] = best; arg[i * wo + j] = bi
    }

    /// Outputs jLo..<jHi of row i (d and ar point at the row).
    private func interior(_ src: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ ar: UnsafeMutablePointer<Int32>, row i: Int) {
        let top = (i * s - pad) * w - pad
        if k == 3 {
            let w1 = w, w2 = 2 * w
            for j in jLo..<jHi {
                let o = top + j * s, q = src + o
                var best = q[0], bi = 0
                if q[1] > best { best = q[1]; bi = 1 }
                if q[2] > best { best = q[2]; bi = 2 }
                if q[w1] > best { best = q[w1]; bi = w1 }
                if q[w1 + 1] > best { best = q[w1 + 1]; bi = w1 + 1 }
                if q[w1 + 2] > best { best = q[w1 + 2]; bi = w1 + 2 }
                if q[w2] > best { best = q[w2]; bi = w2 }
                if q[w2 + 1] > best { best = q[w2 + 1]; bi = w2 + 1 }
                if q[w2 + 2] > best { best = q[w2 + 2]; bi = w2 + 2 }
                d[j] = best; ar[j] = Int32(o + bi)
            }
            return
        }
        for j in jLo..<jHi {
            let o = top + j * s, q = src + o
            var best = q[0], bi = 0
            for a in 0..<k {
                for b in 0..<k where q[a * w + b] > best { best = q[a * w + b]; bi = a * w + b }
            }
            d[j] = best; ar[j] = Int32(o + bi)
        }
    }
}

/// Global average pooling: x (C,N,H,W) → y (N,C), row-major features for `Linear`.
public final class GlobalAvgPool2d: Layer {
    public var parameters: [Parameter] { [] }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }
    /// y and dx, owned by the layer and reused.
    public let output = Tensor(shape: [0]), inputGrad = Tensor(shape: [0])
    private var inShape = (0, 0, 0, 0)

    /// A layer without parameters.
    public init() {}

    public func trace(_ x: ImageShape) -> LayerTrace { LayerTrace(ImageShape(c: x.c, h: 1, w: 1), "global avgpool") }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4, "GlobalAvgPool2d: input \(x.shape), expected (C,N,H,W)")
        let c = x.shape[0], n = x.shape[1], hw = x.shape[2] * x.shape[3]
        inShape = (c, n, x.shape[2], x.shape[3])
        output.ensureShape(n, c)
        let xp = UnsafePointer(x.data), yp = output.data
        let scale = 1 / Double(hw)
        for ch in 0..<c {
            for i in 0..<n { yp[i * c + ch] = Float(sumAndSquares(xp + (ch * n + i) * hw, hw).0 * scale) }
        }
        return output
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard flags.wantsInputGrad else { return nil }
        let (c, n, h, w) = inShape, hw = h * w
        inputGrad.ensureShape(c, n, h, w)
        let gp = UnsafePointer(dy.data), dxp = inputGrad.data
        let scale = 1 / Float(hw)
        for ch in 0..<c {
            for i in 0..<n { (dxp + (ch * n + i) * hw).update(repeating: gp[i * c + ch] * scale, count: hw) }
        }
        return inputGrad
    }
}

/// Flatten: x (C,N,H,W) → y (N, C·H·W) in PyTorch's (c, h, w) feature order.
public final class Flatten: Layer {
    public var parameters: [Parameter] { [] }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }
    /// y and dx, owned by the layer and reused.
    public let output = Tensor(shape: [0]), inputGrad = Tensor(shape: [0])
    private var inShape = (0, 0, 0, 0)

    /// A layer without parameters.
    public init() {}

    public func trace(_ x: ImageShape) -> LayerTrace { LayerTrace(ImageShape(c: x.c * x.h * x.w, h: 1, w: 1), "flatten") }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4, "Flatten: input \(x.shape), expected (C,N,H,W)")
        let c = x.shape[0], n = x.shape[1], hw = x.shape[2] * x.shape[3]
        inShape = (c, n, x.shape[2], x.shape[3])
        output.ensureShape(n, c * hw)
        let xp = UnsafePointer(x.data), yp = output.data
        for ch in 0..<c {
            for i in 0..<n { (yp + i * c * hw + ch * hw).update(from: xp + (ch * n + i) * hw, count: hw) }
        }
        return output
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard flags.wantsInputGrad else { return nil }
        let (c, n, h, w) = inShape, hw = h * w
        inputGrad.ensureShape(c, n, h, w)
        let gp = UnsafePointer(dy.data), dxp = inputGrad.data
        for ch in 0..<c {
            for i in 0..<n { (dxp + (ch * n + i) * hw).update(from: gp + i * c * hw + ch * hw, count: hw) }
        }
        return inputGrad
    }
}

/// ReLU on any shape: y = max(x, 0). Backward passes the gradient where y > 0 (0 at x = 0, as PyTorch).
public final class ReLU: Layer {
    public var parameters: [Parameter] { [] }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }
    /// y and dx, owned by the layer and reused.
    public let output = Tensor(shape: [0]), inputGrad = Tensor(shape: [0])

    /// A layer without parameters.
    public init() {}

    public func forward(_ x: Tensor) -> Tensor {
        output.reshapeLike(x)
        let xp = UnsafePointer(x.data), yp = output.data
        Engine.parallelRange(x.count, grain: 1 << 16) { b, e in
            for i in b..<e { yp[i] = xp[i] > 0 ? xp[i] : 0 }
        }
        return output
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard flags.wantsInputGrad else { return nil }
        inputGrad.reshapeLike(output)
        let yp = UnsafePointer(output.data), gp = UnsafePointer(dy.data), dxp = inputGrad.data
        Engine.parallelRange(dy.count, grain: 1 << 16) { b, e in
            for i in b..<e { dxp[i] = yp[i] > 0 ? gp[i] : 0 }
        }
        return inputGrad
    }
}

/// Adaptive average pooling to a fixed output size, as PyTorch's `AdaptiveAvgPool2d((oh, ow))`: output cell
/// (i, j) averages rows floor(i·H/oh) ..< ceil((i+1)·H/oh) and the same for columns, so a smaller input is
/// replicated (VGG's 7x7 pool on a 1x1 map) and an input of the output size passes unchanged.
/// x (C,N,H,W) → y (C,N,oh,ow).
public final class AdaptiveAvgPool2d: Layer {
    /// The output height and width.
    public let outHeight: Int, outWidth: Int
    public var parameters: [Parameter] { [] }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }
    /// y and dx, owned by the layer and reused.
    public let output = Tensor(shape: [0]), inputGrad = Tensor(shape: [0])
    private var inShape = (0, 0, 0, 0)

    /// Pools every plane to `height` x `width`.
    public init(_ height: Int, _ width: Int) { outHeight = height; outWidth = width }

    public var activationFloats: Int { output.count }
    public func trace(_ x: ImageShape) -> LayerTrace {
        LayerTrace(ImageShape(c: x.c, h: outHeight, w: outWidth), "adaptive avgpool \(outHeight)x\(outWidth)")
    }

    /// The input window [lo, hi) of output index `i` of `count` over an input of `size`.
    @inline(__always) private static func window(_ i: Int, _ count: Int, _ size: Int) -> (Int, Int) {
        (i * size / count, ((i + 1) * size + count - 1) / count)
    }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4, "AdaptiveAvgPool2d: input \(x.shape), expected (C,N,H,W)")
        let c = x.shape[0], n = x.shape[1], h = x.shape[2], w = x.shape[3], oh = outHeight, ow = outWidth
        inShape = (c, n, h, w)
        output.ensureShape(c, n, oh, ow)
        let xp = UnsafePointer(x.data), yp = output.data
        Engine.parallelRange(c * n, grain: 16) { p0, p1 in
            for pl in p0..<p1 {
                let src = xp + pl * h * w, dst = yp + pl * oh * ow
                for i in 0..<oh {
                    let (r0, r1) = Self.window(i, oh, h)
                    for j in 0..<ow {
                        let (c0, c1) = Self.window(j, ow, w)
                        var s: Float = 0
                        for r in r0..<r1 { for q in c0..<c1 { s += src[r * w + q] } }
                        dst[i * ow + j] = s / Float((r1 - r0) * (c1 - c0))
                    }
                }
            }
        }
        return output
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard flags.wantsInputGrad else { return nil }
        precondition(dy.count == output.count, "AdaptiveAvgPool2d.backward: dy \(dy.shape)")
        let (c, n, h, w) = inShape, oh = outHeight, ow = outWidth
        inputGrad.ensureShape(c, n, h, w)
        let gp = UnsafePointer(dy.data), dxp = inputGrad.data
        Engine.parallelRange(c * n, grain: 16) { p0, p1 in
            for pl in p0..<p1 {
                let dst = dxp + pl * h * w, g = gp + pl * oh * ow
                dst.update(repeating: 0, count: h * w)
                for i in 0..<oh {
                    let (r0, r1) = Self.window(i, oh, h)
                    for j in 0..<ow {
                        let (c0, c1) = Self.window(j, ow, w)
                        let v = g[i * ow + j] / Float((r1 - r0) * (c1 - c0))
                        for r in r0..<r1 { for q in c0..<c1 { dst[r * w + q] += v } }
                    }
                }
            }
        }
        return inputGrad
    }
}
