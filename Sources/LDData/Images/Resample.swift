import LDKernels
/// Resampling of planar 8-bit images, as PIL's `Image.resize(..., BILINEAR, box)` (what torchvision's
/// `Resize` and `RandomResizedCrop` call on PIL images): a separable triangle filter whose support grows
/// with the reduction factor (so a large reduction averages every source pixel, no aliasing), weights
/// normalised per output pixel, the horizontal pass rounded to 8 bits before the vertical one. PIL works in
/// fixed point; this works in floating point and may differ from it by one level in rare pixels.
public enum Resample {
    /// One axis's filter: for each output index, the first source index, the tap count and the offset of
    /// its normalised weights in `weights` (flat, so the passes read them without indirection).
    struct Axis {
        var start: [Int32] = [], count: [Int32] = [], offset: [Int32] = [], weights: [Float] = []

        /// Output indices `outputs` of `out` pixels over source coordinates `lo..<hi` of an axis of `size`.
        init(size: Int, lo: Double, hi: Double, out: Int, outputs: Range<Int>) {
            let scale = (hi - lo) / Double(out)
            let filterScale = max(scale, 1)
            let support = filterScale   // the triangle's support is 1, scaled
            for i in outputs {
                let center = lo + (Double(i) + 0.5) * scale
                let first = min(max(Int(center - support + 0.5), 0), size - 1)
                let last = max(min(Int(center + support + 0.5), size), first + 1)
                var total = 0.0
                let at = weights.count
                for j in first..<last {
                    let v = max(0, 1 - abs((Double(j) - center + 0.5) / filterScale))
                    weights.append(Float(v)); total += v
                }
                if total > 0 { for k in at..<weights.count { weights[k] = Float(Double(weights[k]) / total) } }
                start.append(Int32(first)); count.append(Int32(last - first)); offset.append(Int32(at))
            }
        }
    }

    /// Where pixel (channel, row, column) of an image lives: planar (CHW) or interleaved (HWC) bytes.
    public struct Layout: Sendable {
        public var channelStride: Int, rowStride: Int, pixelStride: Int
        /// c planes of h x w.
        public static func planar(height: Int, width: Int) -> Layout { Layout(channelStride: height * width, rowStride: width, pixelStride: 1) }
        /// h rows of w pixels of c bytes (what a decoder writes).
        public static func interleaved(channels: Int, width: Int) -> Layout { Layout(channelStride: 1, rowStride: width * channels, pixelStride: channels) }
    }

    /// Resamples the source box (x0, y0)..(x1, y1) of `src` (c channels of h x w, laid out as `layout`) to
    /// `outH` x `outW`, writing the output rows `rows` and columns `cols` (a crop of the resized image; all by
    /// default) into `dst` as c planes of rows.count x cols.count, mirrored left-right when `flip`.
    public static func resize(_ src: UnsafePointer<UInt8>, channels c: Int, height h: Int, width w: Int,
                              layout: Layout? = nil,
                              box: (x0: Double, y0: Double, x1: Double, y1: Double), outH: Int, outW: Int,
                              rows: Range<Int>? = nil, cols: Range<Int>? = nil, flip: Bool = false,
                              into dst: UnsafeMutablePointer<UInt8>) {
        let layout = layout ?? .planar(height: h, width: w)
        let rows = rows ?? 0..<outH, cols = cols ?? 0..<outW
        let ax = Axis(size: w, lo: box.x0, hi: box.x1, out: outW, outputs: cols)
        let ay = Axis(size: h, lo: box.y0, hi: box.y1, out: outH, outputs: rows)
        // The source rows the vertical pass reads.
        var rowLo = Int.max, rowHi = 0
        for j in 0..<rows.count { rowLo = min(rowLo, Int(ay.start[j])); rowHi = max(rowHi, Int(ay.start[j] + ay.count[j])) }
        let tw = cols.count, th = rows.count, tr = rowHi - rowLo
        // Horizontal pass, rounded to 8 bits as PIL's: tr rows x tw columns per channel.
        let temp = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, c * tr * tw))
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: max(1, tw))
        defer { temp.deallocate(); acc.deallocate() }
        ax.start.withUnsafeBufferPointer { xs in ax.count.withUnsafeBufferPointer { xn in
        ax.offset.withUnsafeBufferPointer { xo in ax.weights.withUnsafeBufferPointer { xw in
            let ps = layout.pixelStride
            if c == 3 && layout.channelStride == 1 && ps == 3 {
                // Interleaved RGB (a decoder's output): the three channels of a pixel in one pass.
                for y in 0..<tr {
                    let line = src + (y + rowLo) * layout.rowStride
                    let o0 = temp + y * tw, o1 = temp + (tr + y) * tw, o2 = temp + (2 * tr + y) * tw
                    for i in 0..<tw {
                        // One 4-byte load per tap (r, g, b and the next pixel's r, weighted and ignored);
                        // the image's last pixel is read byte by byte, so nothing past the buffer is read.
                        var acc = SIMD4<Float>(repeating: 0)
                        let x0 = Int(xs[i]), n = Int(xn[i]), p = line + 3 * x0, wk = xw.baseAddress! + Int(xo[i])
                        let vector = x0 + n < w ? n : n - 1
                        for k in 0..<vector {
                            let px = UnsafeRawPointer(p + 3 * k).loadUnaligned(as: SIMD4<UInt8>.self)
                            acc += wk[k] * SIMD4<Float>(SIMD4<Int32>(truncatingIfNeeded: px))
                        }
                        if vector < n {
                            let q = p + 3 * vector, wt = wk[vector]
                            acc += wt * SIMD4<Float>(Float(q[0]), Float(q[1]), Float(q[2]), 0)
                        }
                        o0[i] = clamp8(acc[0]); o1[i] = clamp8(acc[1]); o2[i] = clamp8(acc[2])
                    }
                }
                return
            }
            for ch in 0..<c {
                for y in 0..<tr {
                    let line = src + ch * layout.channelStride + (y + rowLo) * layout.rowStride
                    let out = temp + (ch * tr + y) * tw
                    for i in 0..<tw {
                        var s: Float = 0
                        let p = line + Int(xs[i]) * ps, wk = xw.baseAddress! + Int(xo[i])
                        for k in 0..<Int(xn[i]) { s += wk[k] * Float(p[k * ps]) }
                        out[i] = clamp8(s)
                    }
                }
            }
        } } } }
        // Vertical pass: each output row a weighted sum of whole temp rows (contiguous, vectorisable).
        for ch in 0..<c {
            let plane = temp + ch * tr * tw, dplane = dst + ch * th * tw
            for j in 0..<th {
                let first = Int(ay.start[j]) - rowLo, n = Int(ay.count[j]), at = Int(ay.offset[j])
                acc.update(repeating: 0, count: tw)
                for k in 0..<n {
                    let wk = ay.weights[at + k], row = plane + (first + k) * tw
                    var i = 0
                    while i + 8 <= tw {
                        let v = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: UnsafeRawPointer(row + i).loadUnaligned(as: SIMD8<UInt8>.self)))
                        let a = UnsafeMutableRawPointer(acc + i)
                        a.storeBytes(of: a.loadUnaligned(as: SIMD8<Float>.self) + wk * v, as: SIMD8<Float>.self)
                        i += 8
                    }
                    while i < tw { acc[i] += wk * Float(row[i]); i += 1 }
                }
                let out = dplane + j * tw
                if flip {
                    for i in 0..<tw { out[tw - 1 - i] = clamp8(acc[i]) }
                } else {
                    var i = 0
                    while i + 8 <= tw {
                        UnsafeMutableRawPointer(out + i).storeBytes(of: clamp8(UnsafeRawPointer(acc + i).loadUnaligned(as: SIMD8<Float>.self)),
                                                                     as: SIMD8<UInt8>.self)
                        i += 8
                    }
                    while i < tw { out[i] = clamp8(acc[i]); i += 1 }
                }
            }
        }
    }

    /// Clamps to 0...255 and rounds to the nearest level (ties to even): adding 2^23 leaves the rounded value
    /// in the low mantissa bits, a conversion without the range checks of `Int32(_: Float)`.
    @inline(__always) static func clamp8(_ v: Float) -> UInt8 {
        UInt8(truncatingIfNeeded: (Swift.max(Swift.min(v, 255), 0) + 8_388_608).bitPattern)
    }

    /// Eight values at once, as `clamp8`.
    @inline(__always) static func clamp8(_ v: SIMD8<Float>) -> SIMD8<UInt8> {
        var c = v.replacing(with: 0, where: v .< 0)
        c.replace(with: 255, where: c .> 255)
        let r = c + SIMD8(repeating: 8_388_608)
        return SIMD8<UInt8>(truncatingIfNeeded: unsafeBitCast(r, to: SIMD8<UInt32>.self))
    }
}

/// torchvision's evaluation transform for ImageNet-style data: `Resize(round_down(size / ratio))` (shorter side
/// to that, the longer scaled and truncated as torchvision does) then `CenterCrop(size)` (offsets rounded
/// half to even, as Python's `round`). ratio 0.875: 224 from 256, 64 from 73, 32 from 36.
public struct EvalTransform: Equatable, Sendable {
    public var size: Int
    public var ratio: Double

    /// ImageNet's protocol: 224 from 256.
    public static let defaultRatio = 0.875

    /// Throws unless 0 < ratio <= 1 (the flag's check).
    public static func check(ratio: Double, flag: String = "--eval-ratio") throws {
        guard ratio.isFinite, ratio > 0, ratio <= 1 else { throw LDError("\(flag) must be in (0, 1] (0.875: 224 from 256), got \(ratio)") }
    }

    public init(size: Int, ratio: Double = EvalTransform.defaultRatio) {
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

    /// Applies the transform to `src` (c channels of height x width, planar unless `layout` says), writing c
    /// planes of size x size.
    public func apply(_ src: UnsafePointer<UInt8>, channels: Int, height: Int, width: Int, layout: Resample.Layout? = nil,
                      into dst: UnsafeMutablePointer<UInt8>) {
        let (rh, rw) = resized(height: height, width: width)
        let (top, left) = cropOrigin(height: height, width: width)
        Resample.resize(src, channels: channels, height: height, width: width, layout: layout,
                        box: (0, 0, Double(width), Double(height)), outH: rh, outW: rw,
                        rows: top..<(top + size), cols: left..<(left + size), into: dst)
    }
}
