/// Resampling of planar 8-bit images, as PIL's `Image.resize(..., BILINEAR, box)` (what torchvision's
/// `Resize` and `RandomResizedCrop` call on PIL images): a separable triangle filter whose support grows
/// with the reduction factor (so a large reduction averages every source pixel, no aliasing), weights
/// normalised per output pixel, the horizontal pass rounded to 8 bits before the vertical one. PIL works in
/// fixed point; this works in floating point and may differ from it by one level in rare pixels.
public enum Resample {
    /// For each output index of one axis: the first source index and the normalised weights.
    struct Axis {
        var start: [Int] = [], weights: [[Float]] = []

        /// Output `out` pixels from source coordinates `lo..<hi` of an axis of `size` pixels. `offset` shifts
        /// the output indices (a crop of a larger resize computes only its own pixels).
        init(size: Int, lo: Double, hi: Double, out: Int, outputs: Range<Int>) {
            let scale = (hi - lo) / Double(out)
            let filterScale = max(scale, 1)
            let support = filterScale   // the triangle's support is 1, scaled
            for i in outputs {
                let center = lo + (Double(i) + 0.5) * scale
                let first = max(Int(center - support + 0.5), 0)
                let last = min(Int(center + support + 0.5), size)
                var w: [Float] = []
                var total = 0.0
                for j in first..<max(last, first + 1) {
                    let x = (Double(j) - center + 0.5) / filterScale
                    let v = max(0, 1 - abs(x))
                    w.append(Float(v)); total += v
                }
                if total > 0 { for k in w.indices { w[k] = Float(Double(w[k]) / total) } }
                start.append(first); weights.append(w)
            }
        }
    }

    /// Resamples the source box (x0, y0)..(x1, y1) of `src` (c planes of h x w) to `outH` x `outW`, writing the
    /// output rows `rows` and columns `cols` (a crop of the resized image; all by default) into `dst` as
    /// c planes of rows.count x cols.count.
    public static func resize(_ src: UnsafePointer<UInt8>, channels c: Int, height h: Int, width w: Int,
                              box: (x0: Double, y0: Double, x1: Double, y1: Double), outH: Int, outW: Int,
                              rows: Range<Int>? = nil, cols: Range<Int>? = nil, into dst: UnsafeMutablePointer<UInt8>) {
        let rows = rows ?? 0..<outH, cols = cols ?? 0..<outW
        let ax = Axis(size: w, lo: box.x0, hi: box.x1, out: outW, outputs: cols)
        let ay = Axis(size: h, lo: box.y0, hi: box.y1, out: outH, outputs: rows)
        // The source rows the vertical pass reads.
        let rowLo = ay.start.min() ?? 0
        let rowHi = zip(ay.start, ay.weights).map { $0 + $1.count }.max() ?? 0
        let tw = cols.count, th = rows.count
        let temp = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, (rowHi - rowLo) * tw))
        defer { temp.deallocate() }
        for ch in 0..<c {
            let plane = src + ch * h * w
            for y in rowLo..<rowHi {
                let line = plane + y * w, out = temp + (y - rowLo) * tw
                for i in 0..<tw {
                    var s: Float = 0
                    let p = line + ax.start[i]
                    for (k, wk) in ax.weights[i].enumerated() { s += wk * Float(p[k]) }
                    out[i] = clamp8(s)
                }
            }
            let dplane = dst + ch * th * tw
            for j in 0..<th {
                let wj = ay.weights[j], base = ay.start[j] - rowLo
                let out = dplane + j * tw
                for i in 0..<tw {
                    var s: Float = 0
                    for (k, wk) in wj.enumerated() { s += wk * Float(temp[(base + k) * tw + i]) }
                    out[i] = clamp8(s)
                }
            }
        }
    }

    @inline(__always) static func clamp8(_ v: Float) -> UInt8 {
        let r = (v + 0.5).rounded(.down)
        return r <= 0 ? 0 : r >= 255 ? 255 : UInt8(r)
    }
}

/// torchvision's evaluation transform for ImageNet-style data: `Resize(round_down(size / ratio))` (shorter side
/// to that, the longer scaled and truncated as torchvision does) then `CenterCrop(size)` (offsets rounded
/// half to even, as Python's `round`). ratio 0.875: 224 from 256, 64 from 73, 32 from 36.
public struct EvalTransform: Equatable, Sendable {
    public var size: Int
    public var ratio: Double

    public init(size: Int, ratio: Double = 0.875) {
        self.size = size
        self.ratio = ratio
    }

    /// The size the shorter side is resized to.
    public var resizeTo: Int { Int(Double(size) / ratio) }

    /// The resized image's size for an input of `height` x `width`.
    public func resized(height: Int, width: Int) -> (height: Int, width: Int) {
        let r = resizeTo
        if width <= height { return (Int(Double(r) * Double(height) / Double(width)), r) }
        return (r, Int(Double(r) * Double(width) / Double(height)))
    }

    /// The crop's top-left corner in the resized image.
    public func cropOrigin(height: Int, width: Int) -> (top: Int, left: Int) {
        let (rh, rw) = resized(height: height, width: width)
        return (Int((Double(rh - size) / 2).rounded(.toNearestOrEven)), Int((Double(rw - size) / 2).rounded(.toNearestOrEven)))
    }

    /// Applies the transform to `src` (c planes of height x width), writing c planes of size x size.
    public func apply(_ src: UnsafePointer<UInt8>, channels: Int, height: Int, width: Int, into dst: UnsafeMutablePointer<UInt8>) {
        let (rh, rw) = resized(height: height, width: width)
        let (top, left) = cropOrigin(height: height, width: width)
        Resample.resize(src, channels: channels, height: height, width: width,
                        box: (0, 0, Double(width), Double(height)), outH: rh, outW: rw,
                        rows: top..<(top + size), cols: left..<(left + size), into: dst)
    }
}
