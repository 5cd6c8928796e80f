import LDKernels
import LDRecords
import LDData
// Per-image sample augmentations for teacher training, relabel and student training: RandomResizedCrop
// (torchvision's sampling rule), RandomCrop with padding, horizontal flip. Each sampler returns the
// parameters it drew (`SampleAugmentation`), and `SampleAugmentation.apply` replays given parameters, so a
// relabel record stores (box, flip) and train reproduces the teacher's input exactly.
//
// Images are normalised float NCHW batches (`Tensor`); `apply` reads one image of a source batch and writes
// one image of a destination batch, allocating nothing.

import Foundation

/// The parameters of one image's crop-and-flip: what is stored and replayed.
public struct SampleAugmentation: Equatable, Hashable, Sendable {
    /// Crop box in the source image's pixels; resized to the destination size (bilinear, or a plain copy
    /// with fill outside the image when the box already has the destination size).
    public var box: CropBox
    /// Mirror the width axis after the crop.
    public var flip: Bool

    public init(box: CropBox, flip: Bool) {
        self.box = box
        self.flip = flip
    }

    /// No crop, no flip on an H x W image.
    public static func identity(height: Int, width: Int) -> SampleAugmentation {
        SampleAugmentation(box: .full(height: height, width: width), flip: false)
    }

    /// Writes image `j` of `dst` (shape (M, C, OH, OW)) from image `i` of `src` (shape (N, C, H, W)).
    ///
    /// - If the box is OH x OW it is copied (RandomCrop): pixels outside the source image get `fill[c]`
    ///   (0 when `fill` is empty). To match torchvision, which pads the uint8 image with 0 before
    ///   normalising, pass fill[c] = -mean[c] / std[c].
    /// - Otherwise the box must lie inside the image and is resized bilinearly (tensor semantics,
    ///   align_corners=False; see Bilinear.swift).
    /// Then the row is mirrored when `flip` is set.
    public func apply(from src: Tensor, image i: Int, into dst: Tensor, image j: Int, fill: [Float] = []) {
        let (n, c, h, w) = augmentDims4(src, "SampleAugmentation.apply source")
        let (m, dc, oh, ow) = augmentDims4(dst, "SampleAugmentation.apply destination")
        precondition(dc == c && i >= 0 && i < n && j >= 0 && j < m,
                     "SampleAugmentation.apply: image \(i) of \(src.shape) into image \(j) of \(dst.shape)")
        precondition(fill.isEmpty || fill.count == c, "SampleAugmentation.apply: \(fill.count) fill values for \(c) channels")
        let s = UnsafePointer(src.data + i * c * h * w)
        let d = dst.data + j * c * oh * ow
        if box.height == oh && box.width == ow {
            for ch in 0..<c {
                let f: Float = fill.isEmpty ? 0 : fill[ch]
                copyCrop(s + ch * h * w, h: h, w: w, d + ch * oh * ow, oh: oh, ow: ow, fill: f)
            }
        } else {
            precondition(box.isInside(height: h, width: w), "SampleAugmentation.apply: box \(box) outside \(h)x\(w)")
            withAxisTables(rows: oh, cols: ow) { rows, cols in
                rows.fill(start: box.top, length: box.height, outLength: oh, stride: w)
                cols.fill(start: box.left, length: box.width, outLength: ow, stride: 1, mirror: flip)
                bilinearPlanes(s, srcPlane: h * w, d, oh: oh, ow: ow, planes: c, rows: rows, cols: cols)
            }
        }
    }

    /// One plane of the copy path: dst[y][x] = src[top+y][left+x] or `fill` outside, then mirrored if `flip`.
    @inline(__always)
    private func copyCrop(_ s: UnsafePointer<Float>, h: Int, w: Int, _ d: UnsafeMutablePointer<Float>,
                          oh: Int, ow: Int, fill: Float) {
        let x0 = max(0, -box.left), x1 = min(ow, w - box.left)   // valid output columns [x0, x1)
        for y in 0..<oh {
            let row = d + y * ow
            let sy = box.top + y
            if sy < 0 || sy >= h || x0 >= x1 {
                row.update(repeating: fill, count: ow)
                continue
            }
            if x0 > 0 { row.update(repeating: fill, count: x0) }
            row.advanced(by: x0).update(from: s + sy * w + box.left + x0, count: x1 - x0)
            if x1 < ow { row.advanced(by: x1).update(repeating: fill, count: ow - x1) }
            if flip {
                reverseInPlace(row, count: ow)
            }
        }
    }
}

/// `RandomHorizontalFlip(p)`: one uniform draw, flip when it is below p.
public func drawFlip(probability p: Float = 0.5, using rng: inout some RandomNumberGenerator) -> Bool {
    rng.uniformFloat() < p
}

/// torchvision's `RandomResizedCrop` sampling rule (sre2l_cda.md 2.3), returning an integer box.
///
///     area = H * W
///     10 times: target = area * U(smin, smax); aspect = exp(U(ln rmin, ln rmax))
///               w = round(sqrt(target * aspect)); h = round(sqrt(target / aspect))   (round half to even,
///               as Python's round)
///               if 0 < w <= W and 0 < h <= H: top = randint[0, H-h], left = randint[0, W-w]; done
///     fallback (centre crop with the aspect clamped to [rmin, rmax]):
///               W/H < rmin: w = W, h = round(W / rmin); W/H > rmax: h = H, w = round(H * rmax);
///               else the whole image; top = (H-h) / 2, left = (W-w) / 2
///
/// Then the box is resized to the output size (`SampleAugmentation.apply`). CDA's curriculum changes only
/// `scaleMin` per iteration.
public struct RandomResizedCrop: Sendable, Equatable {
    public var scaleMin: Float
    public var scaleMax: Float
    public var ratioMin: Float
    public var ratioMax: Float

    public init(scale: (Float, Float) = (0.08, 1), ratio: (Float, Float) = (3.0 / 4.0, 4.0 / 3.0)) {
        precondition(scale.0 <= scale.1 && ratio.0 <= ratio.1 && ratio.0 > 0, "RandomResizedCrop: bad scale or ratio range")
        (scaleMin, scaleMax) = scale
        (ratioMin, ratioMax) = ratio
    }

    /// The same, for ranges that come from user input: throws instead of trapping on a bad range.
    public static func validated(scale: (Float, Float), ratio: (Float, Float) = (3.0 / 4.0, 4.0 / 3.0)) throws -> RandomResizedCrop {
        guard scale.0 > 0 && scale.0 <= scale.1 && scale.1 <= 1 else {
            throw LDError("RandomResizedCrop: scale range \(scale.0),\(scale.1): expected 0 < min <= max <= 1")
        }
        guard ratio.0 > 0 && ratio.0 <= ratio.1 else {
            throw LDError("RandomResizedCrop: ratio range \(ratio.0),\(ratio.1): expected 0 < min <= max")
        }
        return RandomResizedCrop(scale: scale, ratio: ratio)
    }

    /// Draws a crop box for an H x W image (always inside it).
    public func sampleBox(height: Int, width: Int, using rng: inout some RandomNumberGenerator) -> CropBox {
        let area = Double(height * width)
        let logMin = Float(log(Double(ratioMin))), logMax = Float(log(Double(ratioMax)))
        for _ in 0..<10 {
            let target = area * Double(rng.uniformFloat(in: scaleMin..<scaleMax))
            let aspect = Double(Float(exp(Double(rng.uniformFloat(in: logMin..<logMax)))))
            let w = Int((target * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
            if w > 0 && w <= width && h > 0 && h <= height {
                let top = rng.int(in: 0...height - h)
                let left = rng.int(in: 0...width - w)
                return CropBox(top: top, left: left, height: h, width: w)
            }
        }
        return fallbackBox(height: height, width: width)
    }

    /// The centre crop used when 10 attempts fail.
    public func fallbackBox(height: Int, width: Int) -> CropBox {
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < Double(ratioMin) {
            h = Int((Double(w) / Double(ratioMin)).rounded(.toNearestOrEven))
        } else if inRatio > Double(ratioMax) {
            w = Int((Double(h) * Double(ratioMax)).rounded(.toNearestOrEven))
        }
        h = min(h, height)
        w = min(w, width)
        return CropBox(top: (height - h) / 2, left: (width - w) / 2, height: h, width: w)
    }

    /// Box, then a flip with probability `flipProbability` (RandomResizedCrop followed by
    /// RandomHorizontalFlip, in that draw order).
    public func sample(height: Int, width: Int, flipProbability: Float = 0.5,
                       using rng: inout some RandomNumberGenerator) -> SampleAugmentation {
        let box = sampleBox(height: height, width: width, using: &rng)
        let flip = flipProbability > 0 && drawFlip(probability: flipProbability, using: &rng)
        return SampleAugmentation(box: box, flip: flip)
    }
}

/// torchvision's `RandomCrop(size = image size, padding)` followed by `RandomHorizontalFlip(0.5)`: the CIFAR
/// teacher recipe (padding 4 on 32x32; we use the same on 28x28 Fashion-MNIST).
///
/// The padded image is (H + 2p) x (W + 2p); top and left are drawn uniformly in [0, 2p] (inclusive) on it,
/// so the returned box, in unpadded coordinates, is (top - p, left - p, H, W) and may reach p pixels outside
/// the image (filled by `SampleAugmentation.apply`).
public struct RandomCrop: Sendable, Equatable {
    public var padding: Int
    /// Probability of the horizontal flip after the crop (0 disables it, as for digit data sets).
    public var flipProbability: Float

    public init(padding: Int = 4, flipProbability: Float = 0.5) {
        precondition(padding >= 0, "RandomCrop: negative padding")
        self.padding = padding
        self.flipProbability = flipProbability
    }

    public func sample(height: Int, width: Int, using rng: inout some RandomNumberGenerator) -> SampleAugmentation {
        let top = rng.int(in: 0...2 * padding) - padding
        let left = rng.int(in: 0...2 * padding) - padding
        let flip = flipProbability > 0 && drawFlip(probability: flipProbability, using: &rng)
        return SampleAugmentation(box: CropBox(top: top, left: left, height: height, width: width), flip: flip)
    }
}

/// RethinkDC's patch-constrained crop (rethinkdc.md 7.2, Augment): on a canvas of F x F cells
/// (`ImageGrid`, `ld-prune --combine`), pick one of the F^2 cells uniformly, then draw a
/// `RandomResizedCrop` box on that cell alone (its scale range relative to the cell's area), so the window
/// never crosses into another image. The box is in canvas pixels and is resized to the full output size by
/// `SampleAugmentation.apply` like any other crop.
///
/// Draw order from the generator: the cell (`int(in: 0..<F^2)`), then the crop's draws, then the flip.
public struct GridRandomResizedCrop: Sendable, Equatable {
    public var crop: RandomResizedCrop
    /// Cells per axis (F >= 1; 1 is a plain RandomResizedCrop after one extra draw).
    public var factor: Int

    public init(crop: RandomResizedCrop, factor: Int) {
        precondition(factor >= 1, "GridRandomResizedCrop: grid factor \(factor) < 1")
        self.crop = crop
        self.factor = factor
    }

    /// Draws a box inside one cell of an H x W image (H, W >= F).
    public func sampleBox(height: Int, width: Int, using rng: inout some RandomNumberGenerator) -> CropBox {
        precondition(height >= factor && width >= factor, "GridRandomResizedCrop: \(height)x\(width) image for grid \(factor)")
        let k = rng.int(in: 0..<factor * factor)
        let r = ImageGrid.span(k / factor, size: height, factor: factor)
        let c = ImageGrid.span(k % factor, size: width, factor: factor)
        let b = crop.sampleBox(height: r.length, width: c.length, using: &rng)
        return CropBox(top: r.start + b.top, left: c.start + b.left, height: b.height, width: b.width)
    }

    /// Box, then a flip with probability `flipProbability`.
    public func sample(height: Int, width: Int, flipProbability: Float = 0.5,
                       using rng: inout some RandomNumberGenerator) -> SampleAugmentation {
        let box = sampleBox(height: height, width: width, using: &rng)
        let flip = flipProbability > 0 && drawFlip(probability: flipProbability, using: &rng)
        return SampleAugmentation(box: box, flip: flip)
    }
}
