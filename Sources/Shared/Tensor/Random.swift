/// Deterministic samplers on top of any `RandomNumberGenerator` (the project's counter-based generator or a
/// test's SplitMix64). Only `next()` is used, so a given generator state always gives the same draws.
public enum Sample {
    /// A uniform Float in [0, 1) from the top 24 bits of one 64-bit draw.
    @inline(__always)
    public static func unit<G: RandomNumberGenerator>(_ rng: inout G) -> Float {
        Float(rng.next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// A uniform Double in [0, 1) from the top 53 bits of one 64-bit draw.
    @inline(__always)
    public static func unitDouble<G: RandomNumberGenerator>(_ rng: inout G) -> Double {
        Double(rng.next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Fills `t` with uniform values in [lo, hi).
    public static func uniform<G: RandomNumberGenerator>(_ t: Tensor, _ lo: Float, _ hi: Float, _ rng: inout G) {
        let p = t.data
        for i in 0..<t.count { p[i] = lo + (hi - lo) * unit(&rng) }
    }

    /// Fills `t` with normal values N(mean, std^2) by Box–Muller: each pair of 64-bit draws gives two values
    /// (cos and sin branch), in order; an odd count drops the last sine value.
    // NOTE: u1 is taken in (0, 1] so log(u1) is finite.
    public static func normal<G: RandomNumberGenerator>(_ t: Tensor, mean: Float = 0, std: Float, _ rng: inout G) {
        let p = t.data
        var i = 0
        while i < t.count {
            let u1 = 1.0 - unitDouble(&rng)
            let u2 = unitDouble(&rng)
            let r = (-2.0 * _log(u1)).squareRoot()
            let a = 2.0 * Double.pi * u2
            p[i] = mean + std * Float(r * _cos(a))
            if i + 1 < t.count { p[i + 1] = mean + std * Float(r * _sin(a)) }
            i += 2
        }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) private func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Glibc.cos(x) }
@inline(__always) private func _sin(_ x: Double) -> Double { Glibc.sin(x) }
#else
import Darwin
@inline(__always) private func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Darwin.cos(x) }
@inline(__always) private func _sin(_ x: Double) -> Double { Darwin.sin(x) }
#endif
