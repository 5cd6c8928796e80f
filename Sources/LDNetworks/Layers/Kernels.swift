import LDKernels
import LDRecords
import LDData
// O(N) kernels on unsafe pointers shared by the layers: SIMD reductions with Double totals.

typealias V16 = SIMD16<Float>

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> V16 {
    UnsafeRawPointer(p).loadUnaligned(as: V16.self)
}
@inline(__always) func store16(_ v: V16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V16.self)
}
@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
@inline(__always) func load4(_ p: UnsafePointer<Float>) -> SIMD4<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
}
@inline(__always) func load4(_ p: UnsafeMutablePointer<Float>) -> SIMD4<Float> { load4(UnsafePointer(p)) }
@inline(__always) func store4(_ v: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Float>.self)
}

/// (Σx, Σx²) over n floats, accumulated in Float lanes per block of 4096 and totalled in Double.
@inline(__always)
func sumAndSquares(_ x: UnsafePointer<Float>, _ n: Int) -> (Double, Double) {
    var s = 0.0, q = 0.0
    var i = 0
    while i < n {
        let e = min(n, i + 4096)
        var vs = V16(), vq = V16()
        while i + 16 <= e {
            let v = load16(x + i)
            vs += v
            vq += v * v
            i += 16
        }
        var ts = Double(vs.sum()), tq = Double(vq.sum())
        while i < e { let v = Double(x[i]); ts += v; tq += v * v; i += 1 }
        s += ts; q += tq
    }
    return (s, q)
}

/// (Σg, Σg·x) over n floats where g = dy, or g = (y > 0 ? dy : 0) when `mask` is given.
@inline(__always)
func gradSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ mask: UnsafePointer<Float>?, _ n: Int) -> (Double, Double) {
    var s = 0.0, q = 0.0
    var i = 0
    while i < n {
        let e = min(n, i + 4096)
        var vs = V16(), vq = V16()
        if let m = mask {
            while i + 16 <= e {
                let g = load16(dy + i).replacing(with: 0, where: load16(m + i) .<= 0)
                vs += g
                vq += g * load16(x + i)
                i += 16
            }
        } else {
            while i + 16 <= e {
                let g = load16(dy + i)
                vs += g
                vq += g * load16(x + i)
                i += 16
            }
        }
        var ts = Double(vs.sum()), tq = Double(vq.sum())
        while i < e {
            var g = dy[i]
            if let m = mask, m[i] <= 0 { g = 0 }
            ts += Double(g); tq += Double(g) * Double(x[i]); i += 1
        }
        s += ts; q += tq
    }
    return (s, q)
}
