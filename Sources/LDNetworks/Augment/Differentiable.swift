import LDKernels
import LDRecords
import LDData
// Differentiable batch augmentations for recover: one set of parameters per call, shared by every image of
// the batch (SRe2L applies its transforms to the whole [B, C, H, W] tensor, sre2l_cda.md 2.3), each with a
// backward to its input.
//
// Conventions (llm.c style): forwards write their output; backwards ACCUMULATE (+=) into the input gradient,
// so the caller zeroes it once per step. Shapes: x is (N, C, H, W); outputs are (N, C, OH, OW).

// ---------------------------------------------------------------------------------------------------------
// Bilinear crop-resize

/// y = bilinear resize of x[:, :, box] to y's spatial size (PyTorch `align_corners=False`, see Bilinear.swift),
/// mirrored along the width when `flip` is set (crop, resize and flip fused in one pass).
///
/// x is (N, C, H, W); y must already have shape (N, C, OH, OW). The box must lie inside the image.
public func bilinearCropResize(_ x: Tensor, box: CropBox, flip: Bool = false, into y: Tensor) {
    let (n, c, h, w) = augmentDims4(x, "bilinearCropResize input")
    let (yn, yc, oh, ow) = augmentDims4(y, "bilinearCropResize output")
    precondition(yn == n && yc == c, "bilinearCropResize: output \(y.shape) does not match input \(x.shape)")
    precondition(box.isInside(height: h, width: w), "bilinearCropResize: box \(box) outside \(h)x\(w)")
    let src = x.data, dst = y.data
    withAxisTables(rows: oh, cols: ow) { rows, cols in
        rows.fill(start: box.top, length: box.height, outLength: oh, stride: w)
        cols.fill(start: box.left, length: box.width, outLength: ow, stride: 1, mirror: flip)
        bilinearPlanes(src, srcPlane: h * w, dst, oh: oh, ow: ow, planes: n * c, rows: rows, cols: cols)
    }
}

/// dx += the transpose of `bilinearCropResize` (same box and flip) applied to dy: the gradient w.r.t. x.
///
/// dy is (N, C, OH, OW); dx must have the input's shape (N, C, H, W).
public func bilinearCropResizeBackward(_ dy: Tensor, box: CropBox, flip: Bool = false, into dx: Tensor) {
    let (n, c, h, w) = augmentDims4(dx, "bilinearCropResizeBackward input gradient")
    let (yn, yc, oh, ow) = augmentDims4(dy, "bilinearCropResizeBackward output gradient")
    precondition(yn == n && yc == c, "bilinearCropResizeBackward: \(dy.shape) does not match \(dx.shape)")
    precondition(box.isInside(height: h, width: w), "bilinearCropResizeBackward: box \(box) outside \(h)x\(w)")
    let dsrc = dx.data, ddst = dy.data
    withAxisTables(rows: oh, cols: ow) { rows, cols in
        rows.fill(start: box.top, length: box.height, outLength: oh, stride: w)
        cols.fill(start: box.left, length: box.width, outLength: ow, stride: 1, mirror: flip)
        bilinearPlanesBackward(dsrc, srcPlane: h * w, ddst, oh: oh, ow: ow, planes: n * c, rows: rows, cols: cols)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Horizontal flip

/// y[n][c][i][j] = x[n][c][i][W-1-j]. y is reshaped to x's shape; y may be x itself (flips in place).
public func horizontalFlip(_ x: Tensor, into y: Tensor) {
    let (n, c, h, w) = augmentDims4(x, "horizontalFlip input")
    if y !== x { y.reshape(x.shape) }
    let src = x.data, dst = y.data
    let rowsTotal = n * c * h
    if src == dst {
        for r in 0..<rowsTotal {
            let row = dst + r * w
            reverseInPlace(row, count: w)
        }
    } else {
        for r in 0..<rowsTotal {
            let s = src + r * w, d = dst + r * w
            for j in 0..<w { d[j] = s[w - 1 - j] }
        }
    }
}

/// dx += flip(dy): the flip is its own transpose. dx must have dy's shape and be a different tensor.
public func horizontalFlipBackward(_ dy: Tensor, into dx: Tensor) {
    let (n, c, h, w) = augmentDims4(dy, "horizontalFlipBackward output gradient")
    precondition(dx.shape == dy.shape && dx !== dy, "horizontalFlipBackward: dx \(dx.shape) vs dy \(dy.shape)")
    let g = dy.data, d = dx.data
    for r in 0..<(n * c * h) {
        let s = g + r * w, o = d + r * w
        for j in 0..<w { o[j] += s[w - 1 - j] }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Circular roll (jitter)

/// Non-negative remainder of a modulo m.
@inline(__always)
fileprivate func positiveMod(_ a: Int, _ m: Int) -> Int {
    let r = a % m
    return r < 0 ? r + m : r
}

/// y[n][c][i][j] = x[n][c][(i - dy) mod H][(j - dx) mod W]: `torch.roll(x, shifts=(dy, dx), dims=(2, 3))`,
/// content moves down by dy and right by dx with wrap-around. y is reshaped to x's shape; y must not be x.
public func roll(_ x: Tensor, dy: Int, dx: Int, into y: Tensor) {
    let (n, c, h, w) = augmentDims4(x, "roll input")
    precondition(y !== x, "roll: output must be a different tensor from the input")
    y.reshape(x.shape)
    let sy = positiveMod(dy, h), sx = positiveMod(dx, w)
    let src = x.data, dst = y.data
    for p in 0..<(n * c) {
        let s = src + p * h * w, d = dst + p * h * w
        for i in 0..<h {
            let from = s + positiveMod(i - sy, h) * w, to = d + i * w
            // to[j] = from[j - sx] for j >= sx, from[W - sx + j] for j < sx
            (to + sx).update(from: from, count: w - sx)
            to.update(from: from + (w - sx), count: sx)
        }
    }
}

/// dx += roll(dy, -dy, -dx): the transpose of `roll`. dxGrad must have the shape of dyGrad.
public func rollBackward(_ dyGrad: Tensor, dy: Int, dx: Int, into dxGrad: Tensor) {
    let (n, c, h, w) = augmentDims4(dyGrad, "rollBackward output gradient")
    precondition(dxGrad.shape == dyGrad.shape && dxGrad !== dyGrad, "rollBackward: \(dxGrad.shape) vs \(dyGrad.shape)")
    let sy = positiveMod(dy, h), sx = positiveMod(dx, w)
    let g = dyGrad.data, d = dxGrad.data
    for p in 0..<(n * c) {
        let gs = g + p * h * w, ds = d + p * h * w
        for i in 0..<h {
            // input row (i - sy) mod H received output row i
            let to = ds + positiveMod(i - sy, h) * w, from = gs + i * w
            for j in 0..<(w - sx) { to[j] += from[j + sx] }
            for j in 0..<sx { to[w - sx + j] += from[j] }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------

/// The four dimensions of an NCHW tensor (a precondition names the caller when the rank is wrong).
@inline(__always)
func augmentDims4(_ t: Tensor, _ what: String) -> (Int, Int, Int, Int) {
    let s = t.shape
    precondition(s.count == 4, "\(what): expected an NCHW tensor, got shape \(s)")
    return (s[0], s[1], s[2], s[3])
}
