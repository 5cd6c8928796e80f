import LDKernels
import LDRecords
import LDData
// Bilinear resampling of an integer crop box, shared by the differentiable crop-resize of recover and the
// per-image RandomResizedCrop of relabel and train.
//
// Semantics: PyTorch's `interpolate(mode="bilinear", align_corners=False)` on the cropped tensor, which is
// what torchvision's `resized_crop` does on tensors. For an axis with crop length L (starting at `start` in
// the input) and output length S, scale = L / S and output index o reads
//
//     src = max((o + 0.5) * scale - 0.5, 0)      (half-pixel centres; clamped at 0)
//     i0  = floor(src), i1 = i0 + (i0 < L-1 ? 1 : 0), l1 = src - i0, l0 = 1 - l1
//     out = l0 * in[start + i0] + l1 * in[start + i1]
//
// applied along rows and columns: out[y][x] = ly0*(lx0*in[y0][x0] + lx1*in[y0][x1]) + ly1*(lx0*in[y1][x0] +
// lx1*in[y1][x1]). No antialiasing: in our uses the output size equals the input size and the crop never
// exceeds the image, so the resize always upsamples (or is the identity, exactly: scale 1 gives l1 = 0).
// Relabel and train in the reference use PIL's bilinear filter instead; we use this tensor rule everywhere,
// so stored crop boxes replay bit-identically inside ld.
//
// The index/weight tables are computed once per call per axis (no per-pixel transcendental math) in stack
// memory (`withUnsafeTemporaryAllocation`), so a call allocates nothing on the heap.

/// Interpolation table for one axis: for each output index, two input offsets (already multiplied by the
/// stride and shifted by the box start) and their two weights.
struct AxisTable {
    let i0: UnsafeMutablePointer<Int>
    let i1: UnsafeMutablePointer<Int>
    let w0: UnsafeMutablePointer<Float>
    let w1: UnsafeMutablePointer<Float>

    /// Fills the table for a crop [start, start+length) resized to `outLength`, with input offsets multiplied
    /// by `stride`. `mirror` stores output index o at position outLength-1-o (a horizontal flip after resize).
    func fill(start: Int, length: Int, outLength: Int, stride: Int, mirror: Bool = false) {
        let scale = Float(length) / Float(outLength)
        for o in 0..<outLength {
            var src = (Float(o) + 0.5) * scale - 0.5
            if src < 0 { src = 0 }
            var a = Int(src)                        // floor, src >= 0
            if a > length - 1 { a = length - 1 }
            let b = a + (a < length - 1 ? 1 : 0)
            var l1 = src - Float(a)
            if l1 > 1 { l1 = 1 }
            let k = mirror ? outLength - 1 - o : o
            i0[k] = (start + a) * stride
            i1[k] = (start + b) * stride
            w1[k] = l1
            w0[k] = 1 - l1
        }
    }
}

/// Runs `body` with two tables (rows of `rows` entries, columns of `cols` entries) in stack memory.
@inline(__always)
func withAxisTables<R>(rows: Int, cols: Int, _ body: (AxisTable, AxisTable) -> R) -> R {
    withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * (rows + cols)) { ints in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * (rows + cols)) { floats in
            let ip = ints.baseAddress!, fp = floats.baseAddress!
            let r = AxisTable(i0: ip, i1: ip + rows, w0: fp, w1: fp + rows)
            let c = AxisTable(i0: ip + 2 * rows, i1: ip + 2 * rows + cols, w0: fp + 2 * rows, w1: fp + 2 * rows + cols)
            return body(r, c)
        }
    }
}

/// Bilinear forward for `planes` consecutive planes: src planes of `srcPlane` floats, dst planes of oh x ow.
@inline(__always)
func bilinearPlanes(_ src: UnsafePointer<Float>, srcPlane: Int, _ dst: UnsafeMutablePointer<Float>,
                    oh: Int, ow: Int, planes: Int, rows: AxisTable, cols: AxisTable) {
    let x0 = cols.i0, x1 = cols.i1, wx0 = cols.w0, wx1 = cols.w1
    for p in 0..<planes {
        let s = src + p * srcPlane
        let d = dst + p * oh * ow
        for oy in 0..<oh {
            let r0 = s + rows.i0[oy], r1 = s + rows.i1[oy]
            let wy0 = rows.w0[oy], wy1 = rows.w1[oy]
            let o = d + oy * ow
            for ox in 0..<ow {
                let a = x0[ox], b = x1[ox]
                let top = wx0[ox] * r0[a] + wx1[ox] * r0[b]
                let bottom = wx0[ox] * r1[a] + wx1[ox] * r1[b]
                o[ox] = wy0 * top + wy1 * bottom
            }
        }
    }
}

/// Transposed bilinear (the backward): scatters dst-plane gradients back into src planes, accumulating.
@inline(__always)
func bilinearPlanesBackward(_ dsrc: UnsafeMutablePointer<Float>, srcPlane: Int, _ ddst: UnsafePointer<Float>,
                            oh: Int, ow: Int, planes: Int, rows: AxisTable, cols: AxisTable) {
    let x0 = cols.i0, x1 = cols.i1, wx0 = cols.w0, wx1 = cols.w1
    for p in 0..<planes {
        let s = dsrc + p * srcPlane
        let d = ddst + p * oh * ow
        for oy in 0..<oh {
            let r0 = s + rows.i0[oy], r1 = s + rows.i1[oy]
            let wy0 = rows.w0[oy], wy1 = rows.w1[oy]
            let g = d + oy * ow
            for ox in 0..<ow {
                let a = x0[ox], b = x1[ox]
                let gt = wy0 * g[ox], gb = wy1 * g[ox]
                r0[a] += wx0[ox] * gt
                r0[b] += wx1[ox] * gt
                r1[a] += wx0[ox] * gb
                r1[b] += wx1[ox] * gb
            }
        }
    }
}

/// Reverses `count` floats in place (a horizontal flip of one row).
@inline(__always)
func reverseInPlace(_ row: UnsafeMutablePointer<Float>, count: Int) {
    var a = 0, b = count - 1
    while a < b {
        let t = row[a]
        row[a] = row[b]
        row[b] = t
        a += 1
        b -= 1
    }
}
