import LDKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Vectorised transcendental functions and row kernels of the transformer layers (GELU, softmax,
/// LayerNorm): 16 floats at a time, no calls into libm in the hot loops. Accuracy is float's: exp within
/// 2 ulp, erf within 4e-7 absolute (checked against libm in the tests).
public enum TransformerMath {
    /// e^x for each lane. Range reduction x = k·ln2 + r (|r| <= ln2/2, ln2 split in two parts for an exact
    /// k·ln2), a degree-7 Taylor polynomial for e^r (truncation error below 2e-9), and 2^k built in the
    /// exponent bits. Inputs are clamped to [-87, 88] (results stay normal and finite).
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let x = clamp(x, -87, 88)
        // k = round(x / ln2) by the 1.5·2^23 shift: the sum's low mantissa bits hold k
        let shifted = x * 1.442_695_04 + 12_582_912
        let k = shifted - 12_582_912
        let r = x - k * 0.693_359_375 + k * 2.121_944_4e-4
        var p = SIMD16<Float>(repeating: 1.0 / 5040)
        p = p * r + 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        // 2^k: (bits(shifted) + 127) << 23; the shift drops the 1.5·2^23 bias bits
        let bits = (unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: SIMD16<Float>.self)
    }

    /// erf(x) for each lane: x·P(x²)/Q(x²) on |x| <= 4 (a rational least-squares fit made for ld; beyond 4
    /// erf is ±1 in float), within 4e-7 absolute.
    @inline(__always)
    public static func erf(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let xc = clamp(x, -4, 4)
        let y = xc * xc
        var p = SIMD16<Float>(repeating: 1.966_082_9e-8)
        p = p * y - 1.971_519_4e-6
        p = p * y + 1.471_323_5e-4
        p = p * y + 3.925_004_9e-3
        p = p * y + 5.126_395_2e-2
        p = p * y + 0.205_191_70
        p = p * y + 1.128_378_9
        var q = SIMD16<Float>(repeating: 1.010_191_3e-3)
        q = q * y + 1.480_098_1e-2
        q = q * y + 0.117_171_54
        q = q * y + 0.515_176_11
        q = q * y + 1
        return clamp(xc * p / q, -1, 1)
    }

    /// v limited to [lo, hi] by compare and select (the standard library's `clamped` and `pointwiseMin`
    /// keep NaN semantics lane by lane and compile to scalar code).
    @inline(__always)
    static func clamp(_ v: SIMD16<Float>, _ lo: Float, _ hi: Float) -> SIMD16<Float> {
        v.replacing(with: lo, where: v .< lo).replacing(with: hi, where: v .> hi)
    }

    /// The lane-wise maximum by compare and select.
    @inline(__always)
    static func maximum(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
        a.replacing(with: b, where: b .> a)
    }

    /// GELU(x) = x·Φ(x) = x/2·(1 + erf(x/√2)) (the exact form, PyTorch's `nn.GELU()` default).
    @inline(__always)
    public static func gelu(_ x: SIMD16<Float>) -> SIMD16<Float> {
        0.5 * x * (1 + erf(x * 0.707_106_78))
    }

    /// GELU'(x) = Φ(x) + x·φ(x), φ the standard normal density.
    @inline(__always)
    public static func geluDerivative(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let cdf = 0.5 * (1 + erf(x * 0.707_106_78))
        return cdf + x * 0.398_942_28 * exp(-0.5 * x * x)
    }

    /// `count` (< 16) floats from p in the first lanes, `fill` in the others.
    @inline(__always)
    static func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, fill: Float) -> SIMD16<Float> {
        var v = SIMD16<Float>(repeating: fill)
        for i in 0..<count { v[i] = p[i] }
        return v
    }

    /// Stores the first `count` (< 16) lanes of v at p.
    @inline(__always)
    static func storePartial(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { p[i] = v[i] }
    }

    /// y = f(x) over n floats, 16 at a time (the tail padded with zeros).
    @inline(__always)
    static func map(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                    _ f: (SIMD16<Float>) -> SIMD16<Float>) {
        var i = 0
        while i + 16 <= n { store16(f(load16(x + i)), y + i); i += 16 }
        if i < n { storePartial(f(loadPartial(x + i, n - i, fill: 0)), y + i, n - i) }
    }

    /// Softmax of each of `rows` rows of length n at p (row stride n), in place; stable (the row's maximum
    /// is subtracted before exponentiating).
    static func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, _ n: Int) {
        let full = n & ~15, rest = n - full
        for r in 0..<rows {
            let row = p + r * n
            var vmax = SIMD16<Float>(repeating: -.infinity)
            var i = 0
            while i < full { vmax = maximum(vmax, load16(row + i)); i += 16 }
            var m = vmax.max()
            for j in full..<n { m = Swift.max(m, row[j]) }
            let vm = SIMD16<Float>(repeating: m)
            var vs = SIMD16<Float>()
            i = 0
            while i < full { let e = exp(load16(row + i) - vm); store16(e, row + i); vs += e; i += 16 }
            var tail = SIMD16<Float>(), sum = vs.sum()
            if rest > 0 {
                tail = exp(loadPartial(row + full, rest, fill: 0) - vm)
                for j in 0..<rest { sum += tail[j] }
            }
            let inv = 1 / sum
            i = 0
            while i < full { store16(load16(row + i) * inv, row + i); i += 16 }
            if rest > 0 { storePartial(tail * inv, row + full, rest) }
        }
    }

    /// Softmax backward for rows of probabilities P and their gradients G (both row stride n): G becomes
    /// dS = P ⊙ (G − Σ_j P_j·G_j), row by row.
    static func softmaxBackwardRows(_ probs: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, rows: Int, _ n: Int) {
        let full = n & ~15
        for r in 0..<rows {
            let pr = probs + r * n, gr = g + r * n
            var vd = SIMD16<Float>()
            var i = 0
            while i < full { vd += load16(pr + i) * load16(gr + i); i += 16 }
            var d = vd.sum()
            for j in full..<n { d += pr[j] * gr[j] }
            let vdot = SIMD16<Float>(repeating: d)
            i = 0
            while i < full { store16(load16(pr + i) * (load16(gr + i) - vdot), gr + i); i += 16 }
            for j in full..<n { gr[j] = pr[j] * (gr[j] - d) }
        }
    }
}
