#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Random draws with fixed, documented algorithms on top of `next()`, so that with `LDRandom` every value
/// is reproducible from its key and position (the standard library's `random(in:using:)` does not promise
/// an algorithm). They work with any `RandomNumberGenerator`.
extension RandomNumberGenerator {
    /// Uniform in [0, 1) with 24 random bits (the top bits of one `next()`).
    @inlinable
    public mutating func uniformFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform in [0, 1) with 53 random bits (the top bits of one `next()`).
    @inlinable
    public mutating func uniformDouble() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform in [low, high) as a Float: `low + (high - low) * uniformFloat()`.
    @inlinable
    public mutating func uniformFloat(in range: Range<Float>) -> Float {
        range.lowerBound + (range.upperBound - range.lowerBound) * uniformFloat()
    }

    /// An unbiased integer in `0..<bound` for `bound >= 1` (Lemire's multiply-and-reject method: the high
    /// half of a 128-bit product, redrawing only when the low half falls in the biased sliver).
    @inlinable
    public mutating func uniformUInt64(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "uniformUInt64(below: 0)")
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold {
                product = next().multipliedFullWidth(by: bound)
            }
        }
        return product.high
    }

    /// An unbiased integer in the half-open range; the range must not be empty.
    @inlinable
    public mutating func int(in range: Range<Int>) -> Int {
        precondition(!range.isEmpty, "int(in:) on an empty range")
        let size = UInt64(bitPattern: Int64(range.upperBound &- range.lowerBound))
        return range.lowerBound &+ Int(truncatingIfNeeded: uniformUInt64(below: size))
    }

    /// An unbiased integer in the closed range.
    @inlinable
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        let size = UInt64(bitPattern: Int64(range.upperBound &- range.lowerBound)) &+ 1
        if size == 0 { return Int(truncatingIfNeeded: next()) }  // the whole Int range
        return range.lowerBound &+ Int(truncatingIfNeeded: uniformUInt64(below: size))
    }

    /// True with probability `p` (`uniformDouble() < p`; p <= 0 is never, p >= 1 always).
    @inlinable
    public mutating func bernoulli(_ p: Double) -> Bool {
        uniformDouble() < p
    }

    /// Two independent standard normal values from one Box–Muller transform of two uniforms.
    @inlinable
    public mutating func normalPair() -> (Double, Double) {
        let u1 = 1.0 - uniformDouble()  // (0, 1]: log stays finite
        let u2 = uniformDouble()
        let r = (-2.0 * log(u1)).squareRoot()
        let theta = 2.0 * Double.pi * u2
        return (r * cos(theta), r * sin(theta))
    }

    /// A standard normal value (the first half of `normalPair()`; each call uses two fresh uniforms).
    @inlinable
    public mutating func normal() -> Double {
        normalPair().0
    }

    /// A normal value with the given mean and standard deviation.
    @inlinable
    public mutating func normal(mean: Double, std: Double) -> Double {
        mean + std * normal()
    }

    /// Fills `count` floats with normal values (both halves of each Box–Muller pair are used), for weight
    /// initialisation and noise images.
    @inlinable
    public mutating func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int, mean: Float = 0, std: Float = 1) {
        var i = 0
        while i + 1 < count {
            let (a, b) = normalPair()
            out[i] = mean + std * Float(a)
            out[i + 1] = mean + std * Float(b)
            i += 2
        }
        if i < count { out[i] = mean + std * Float(normalPair().0) }
    }

    /// The logarithm of a Gamma(shape, 1) variate (Marsaglia and Tsang's squeeze method for shape >= 1;
    /// for shape < 1, Gamma(shape + 1) * U^(1/shape), kept in log space so tiny shapes do not underflow).
    @inlinable
    public mutating func logGamma(shape: Double) -> Double {
        precondition(shape > 0 && shape.isFinite, "gamma shape must be positive and finite, got \(shape)")
        if shape < 1 {
            let u = 1.0 - uniformDouble()  // (0, 1]
            return logGamma(shape: shape + 1) + log(u) / shape
        }
        let d = shape - 1.0 / 3.0
        let c = 1.0 / (9.0 * d).squareRoot()
        while true {
            var x: Double
            var v: Double
            repeat {
                x = normal()
                v = 1.0 + c * x
            } while v <= 0
            v = v * v * v
            let u = uniformDouble()
            let x2 = x * x
            if u < 1.0 - 0.0331 * x2 * x2 { return log(d * v) }
            if u > 0, log(u) < 0.5 * x2 + d * (1.0 - v + log(v)) { return log(d * v) }
        }
    }

    /// A Gamma(shape, 1) variate, shape > 0.
    @inlinable
    public mutating func gamma(shape: Double) -> Double {
        exp(logGamma(shape: shape))
    }

    /// A Beta(alpha, beta) variate in [0, 1], as X / (X + Y) with X ~ Gamma(alpha), Y ~ Gamma(beta),
    /// computed from the logarithms so that small shapes (Mixup's alpha < 1) stay exact.
    @inlinable
    public mutating func beta(_ alpha: Double, _ beta: Double) -> Double {
        let lx = logGamma(shape: alpha)
        let ly = logGamma(shape: beta)
        return 1.0 / (1.0 + exp(ly - lx))
    }

    /// Shuffles in place (Fisher–Yates from the back: position i swaps with a uniform j in 0...i).
    @inlinable
    public mutating func shuffle<C: MutableCollection & RandomAccessCollection>(_ c: inout C) where C.Index == Int {
        var i = c.count - 1
        while i > 0 {
            let j = int(in: 0...i)
            c.swapAt(c.startIndex + i, c.startIndex + j)
            i -= 1
        }
    }

    /// A uniformly random permutation of `0..<n`.
    @inlinable
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        shuffle(&p)
        return p
    }

    /// A uniformly random permutation of `0..<n` written into `perm`, reusing its storage (same draws as
    /// `permutation(_:)`).
    @inlinable
    public mutating func permutation(_ n: Int, into perm: inout [Int32]) {
        perm.removeAll(keepingCapacity: true)
        for i in 0..<n { perm.append(Int32(i)) }
        shuffle(&perm)
    }

    /// `k` distinct values of `0..<n` in random order (a partial Fisher–Yates from the front), k <= n.
    @inlinable
    public mutating func sample(_ k: Int, from n: Int) -> [Int] {
        precondition(k >= 0 && k <= n, "sample(\(k), from: \(n))")
        var p = Array(0..<n)
        for i in 0..<k {
            let j = int(in: i..<n)
            p.swapAt(i, j)
        }
        return Array(p[0..<k])
    }
}

extension RandomNumberGenerator {
    /// Fills a tensor with uniform values in [low, high) (`low + (high - low) * uniformFloat()` each).
    @inlinable
    public mutating func fillUniform(_ t: Tensor, _ low: Float, _ high: Float) {
        let p = t.data
        for i in 0..<t.count { p[i] = low + (high - low) * uniformFloat() }
    }

    /// Fills a tensor with normal values N(mean, std²) (`fillNormal` on its elements).
    @inlinable
    public mutating func fillNormal(_ t: Tensor, mean: Float = 0, std: Float = 1) {
        fillNormal(t.data, count: t.count, mean: mean, std: std)
    }
}
