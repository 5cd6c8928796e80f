import LDKernels
import LDRecords
import LDData
// Batch mixing for relabel and train: CutMix and Mixup (sre2l_cda.md 6.1, rethinkdc.md 2.3). One
// permutation and one lambda per batch. Samplers fill a `MixParams` (reusing its storage); `apply` replays
// given parameters, so the student sees exactly the image the teacher labelled.

import Foundation

/// The parameters of one batch's mixing: what relabel stores and train replays.
public struct MixParams: Equatable, Sendable {
    /// image i is mixed with image perm[i].
    public var perm: [Int32]
    /// Mixup weight of the image itself; for CutMix the drawn lambda (which only sized the box: the reference
    /// does not re-adjust it to the clipped area, and the soft-label loss never uses it).
    public var lam: Float
    /// CutMix's pasted region (rows dim 2, columns dim 3; may be empty); nil for Mixup.
    public var box: CropBox?

    public init(perm: [Int32] = [], lam: Float = 1, box: CropBox? = nil) {
        self.perm = perm
        self.lam = lam
        self.box = box
    }
}

/// CutMix (Yun et al. 2019) as in the SRe2L relabel code, alpha 1.0 by default.
public enum CutMix {
    /// The box rule, exactly as the reference (`rand_bbox`): with r = sqrt(1 - lam),
    ///
    ///     cutH = int(H * r); cutW = int(W * r)                    (truncation)
    ///     rows    clip(centerRow - cutH / 2, 0, H) ..< clip(centerRow + cutH / 2, 0, H)
    ///     columns clip(centerCol - cutW / 2, 0, W) ..< clip(centerCol + cutW / 2, 0, W)
    ///
    /// (integer halves floor, cut sizes are non-negative, so the box may be empty but never negative; the
    /// reference's [a1, b1, a2, b2] are top, left, bottom, right). Rows are dim 2, columns dim 3.
    public static func box(lam: Float, height: Int, width: Int, centerRow: Int, centerCol: Int) -> CropBox {
        let r = (1 - Double(lam)).squareRoot()
        let cutH = Int(Double(height) * r), cutW = Int(Double(width) * r)
        func clip(_ v: Int, _ hi: Int) -> Int { min(max(v, 0), hi) }
        return CropBox(rows: clip(centerRow - cutH / 2, height), clip(centerRow + cutH / 2, height),
                       columns: clip(centerCol - cutW / 2, width), clip(centerCol + cutW / 2, width))
    }

    /// Draws, in the reference's order: perm = randperm(batch); lam ~ Beta(alpha, alpha);
    /// centerRow ~ randint[0, H); centerCol ~ randint[0, W); then the box by `box(lam:...)`.
    public static func sample(batch: Int, height: Int, width: Int, alpha: Double = 1.0, into params: inout MixParams,
                              using rng: inout some RandomNumberGenerator) {
        rng.permutation(batch, into: &params.perm)
        let lam = Float(rng.beta(alpha, alpha))
        let cr = rng.int(in: 0..<height)
        let cc = rng.int(in: 0..<width)
        params.lam = lam
        params.box = box(lam: lam, height: height, width: width, centerRow: cr, centerCol: cc)
    }

    /// y = x, except y[i, :, box] = x[perm[i], :, box]. y is reshaped to x's shape and must not be x
    /// (the reference's right-hand side is a copy, so there is no aliasing).
    public static func apply(_ params: MixParams, _ x: Tensor, into y: Tensor) {
        let (n, c, h, w) = augmentDims4(x, "CutMix.apply input")
        precondition(y !== x, "CutMix.apply: output must be a different tensor from the input")
        precondition(params.perm.count == n, "CutMix.apply: permutation of \(params.perm.count) for a batch of \(n)")
        guard let b = params.box else { preconditionFailure("CutMix.apply: parameters have no box") }
        precondition(b.top >= 0 && b.left >= 0 && b.height >= 0 && b.width >= 0 && b.bottom <= h && b.right <= w,
                     "CutMix.apply: box \(b) outside \(h)x\(w)")
        y.reshape(x.shape)
        let src = x.data, dst = y.data
        let plane = h * w, image = c * plane
        dst.update(from: src, count: n * image)
        let cols = b.width
        guard b.height > 0 && cols > 0 else { return }
        params.perm.withUnsafeBufferPointer { perm in
            for i in 0..<n {
                let from = Int(perm[i])
                precondition(from >= 0 && from < n, "CutMix.apply: permutation entry \(from) outside 0..<\(n)")
                for ch in 0..<c {
                    let s = src + from * image + ch * plane, d = dst + i * image + ch * plane
                    for r in b.top..<b.bottom {
                        (d + r * w + b.left).update(from: s + r * w + b.left, count: cols)
                    }
                }
            }
        }
    }
}

/// Mixup (Zhang et al. 2018) as in the SRe2L relabel code, alpha 0.8 by default.
public enum Mixup {
    /// Draws perm = randperm(batch), then lam ~ Beta(alpha, alpha); no box.
    public static func sample(batch: Int, alpha: Double = 0.8, into params: inout MixParams,
                              using rng: inout some RandomNumberGenerator) {
        rng.permutation(batch, into: &params.perm)
        params.lam = Float(rng.beta(alpha, alpha))
        params.box = nil
    }

    /// y[i] = lam * x[i] + (1 - lam) * x[perm[i]]. y is reshaped to x's shape and must not be x.
    public static func apply(_ params: MixParams, _ x: Tensor, into y: Tensor) {
        let (n, c, h, w) = augmentDims4(x, "Mixup.apply input")
        precondition(y !== x, "Mixup.apply: output must be a different tensor from the input")
        precondition(params.perm.count == n, "Mixup.apply: permutation of \(params.perm.count) for a batch of \(n)")
        y.reshape(x.shape)
        let src = x.data, dst = y.data
        let image = c * h * w
        let a = params.lam, b = 1 - params.lam
        params.perm.withUnsafeBufferPointer { perm in
            for i in 0..<n {
                let from = Int(perm[i])
                precondition(from >= 0 && from < n, "Mixup.apply: permutation entry \(from) outside 0..<\(n)")
                let s0 = src + i * image, s1 = src + from * image, d = dst + i * image
                for k in 0..<image { d[k] = a * s0[k] + b * s1[k] }
            }
        }
    }
}
