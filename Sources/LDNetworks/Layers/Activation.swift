import LDKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An element-wise activation a layer applies to its own output (`BatchNorm2d`'s fused activation, the
/// squeeze-and-excitation gate's hidden layer).
///
/// Backward needs act'(z): ReLU and ReLU6 read it off the output y (y > 0, 0 < y < 6: strict, as PyTorch's
/// masks, so the gradient is 0 at the kinks); SiLU recomputes it from z. The scalar SiLU computes exactly
/// what a vector lane does (`exp16`), so a value does not depend on where a loop's vector body ends.
public enum Activation: String, Equatable, Sendable {
    /// y = z.
    case none
    /// y = max(z, 0).
    case relu
    /// y = min(max(z, 0), 6) (MobileNetV2).
    case relu6
    /// y = z·σ(z), σ the logistic sigmoid (EfficientNet's Swish).
    case silu

    /// y = act(z).
    @inline(__always) public func apply(_ z: Float) -> Float {
        switch self {
        case .none: return z
        case .relu: return z > 0 ? z : 0
        case .relu6: return min(max(z, 0), 6)
        case .silu: return silu16(V16(repeating: z))[0]   // the vector lanes' bits
        }
    }

    /// act'(z).
    @inline(__always) public func derivative(_ z: Float) -> Float {
        switch self {
        case .none: return 1
        case .relu: return z > 0 ? 1 : 0
        case .relu6: return z > 0 && z < 6 ? 1 : 0
        case .silu: let s = sigmoid16(V16(repeating: z))[0]; return s * (1 + z * (1 - s))
        }
    }
}

/// σ(z) = 1 / (1 + e^−z).
@inline(__always) public func sigmoid(_ z: Float) -> Float { 1 / (1 + expf(-z)) }

// MARK: - Vector kernels

/// e^x on 16 lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6 polynomial (relative error about
/// 2e-7 over the range), 2^n put into the exponent bits. Inputs are clamped to ±87.3 (e^±87.3 is a normal
/// float), so large inputs saturate instead of overflowing; NaN stays NaN.
@_transparent func exp16(_ v: V16) -> V16 {
    var x = v.replacing(with: 87.3, where: v .> 87.3)
    x.replace(with: -87.3, where: x .< -87.3)
    // n = round(x / ln2) by the 1.5·2^23 trick: the low mantissa bits of t hold n.
    let magic: Float = 12_582_912
    let t = x * 1.442_695_04 + V16(repeating: magic)
    let n = t - V16(repeating: magic)
    var r = x - n * 0.693_359_375       // ln2 split in two for an exact product with the high part
    r = r - n * -2.121_944_4e-4
    var p = V16(repeating: 1.987_569_1e-4)
    p = p * r + 1.398_199_9e-3
    p = p * r + 8.333_452e-3
    p = p * r + 4.166_579_6e-2
    p = p * r + 0.166_666_66
    p = p * r + 0.5
    p = p * (r * r) + r + 1
    let bits = unsafeBitCast(t, to: SIMD16<Int32>.self) &- Int32(bitPattern: 0x4B40_0000) &+ 127
    return p * unsafeBitCast(bits &<< 23, to: V16.self)
}

/// σ(z) on 16 lanes.
@_transparent func sigmoid16(_ z: V16) -> V16 { 1 / (1 + exp16(-z)) }

/// min(max(z, 0), 6) on 16 lanes.
@_transparent func relu6x16(_ z: V16) -> V16 { z.replacing(with: 0, where: z .< 0).replacing(with: 6, where: z .> 6) }

/// z·σ(z) on 16 lanes.
@_transparent func silu16(_ z: V16) -> V16 { z * sigmoid16(z) }

/// SiLU'(z)·g = σ(z)(1 + z(1 − σ(z)))·g on 16 lanes.
@_transparent func siluGradient16(_ z: V16, _ g: V16) -> V16 { let s = sigmoid16(z); return g * s * (1 + z * (1 - s)) }

/// p[i] = act(p[i]·a + shift) over n floats (an eval BatchNorm and its activation applied in place), the
/// same bits as `BatchNorm2d.forward`.
@inline(__always) func affineActivate(_ p: UnsafeMutablePointer<Float>, _ n: Int, a: Float, shift: Float, _ act: Activation) {
    let va = V16(repeating: a), vsh = V16(repeating: shift)
    var i = 0
    switch act {   // one loop per activation, the test outside
    case .none: while i + 16 <= n { store16(load16(p + i) * va + vsh, p + i); i += 16 }
    case .relu: while i + 16 <= n { let z = load16(p + i) * va + vsh; store16(z.replacing(with: 0, where: z .< 0), p + i); i += 16 }
    case .relu6: while i + 16 <= n { store16(relu6x16(load16(p + i) * va + vsh), p + i); i += 16 }
    case .silu: while i + 16 <= n { store16(silu16(load16(p + i) * va + vsh), p + i); i += 16 }
    }
    while i < n { p[i] = act.apply(p[i] * a + shift); i += 1 }
}
