// Batch mixing for relabel and train: CutMix and Mixup (sre2l_cda.md 6.1, rethinkdc.md 2.3). One
// permutation and one lambda per batch. Samplers fill a `MixParams` (reusing its storage); `apply` replays
// given parameters, so the student sees exactly the image the teacher labelled.

import Foundation

/// CutMix's pasted region: rows rowStart..<rowEnd (dim 2) and columns colStart..<colEnd (dim 3). Stored in
/// the reference's order [a1, b1, a2, b2] = [rowStart, colStart, rowEnd, colEnd]. May be empty.
public struct MixBox: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var rowStart: Int
    public var colStart: Int
    public var rowEnd: Int
    public var colEnd: Int

    public init(rowStart: Int, colStart: Int, rowEnd: Int, colEnd: Int) {
        self.rowStart = rowStart
        self.colStart = colStart
        self.rowEnd = rowEnd
        self.colEnd = colEnd
    }

    public var description: String { "[\(rowStart), \(colStart), \(rowEnd), \(colEnd)]" }
}

/// The parameters of one batch's mixing: what relabel stores and train replays.
public struct MixParams: Equatable, Sendable {
    /// image i is mixed with image perm[i].
    public var perm: [Int32]
    /// Mixup weight of the image itself; for CutMix the drawn lambda (which only sized the box: the reference
    /// does not re-adjust it to the clipped area, and the soft-label loss never uses it).
    public var lam: Float
    /// CutMix's box; nil for Mixup.
    public var box: MixBox?

    public init(perm: [Int32] = [], lam: Float = 1, box: MixBox? = nil) {
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
    ///     rowStart = clip(centerRow - cutH / 2, 0, H); rowEnd = clip(centerRow + cutH / 2, 0, H)
    ///     colStart = clip(centerCol - cutW / 2, 0, W); colEnd = clip(centerCol + cutW / 2, 0, W)
    ///
    /// (integer halves floor, cut sizes are non-negative). Rows are dim 2, columns dim 3.
    public static func box(lam: Float, height: Int, width: Int, centerRow: Int, centerCol: Int) -> MixBox {
        let r = (1 - Double(lam)).squareRoot()
        let cutH = Int(Double(height) * r), cutW = Int(Double(width) * r)
        func clip(_ v: Int, _ hi: Int) -> Int { min(max(v, 0), hi) }
        return MixBox(rowStart: clip(centerRow - cutH / 2, height), colStart: clip(centerCol - cutW / 2, width),
                      rowEnd: clip(centerRow + cutH / 2, height), colEnd: clip(centerCol + cutW / 2, width))
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
        precondition(b.rowStart >= 0 && b.colStart >= 0 && b.rowEnd <= h && b.colEnd <= w,
                     "CutMix.apply: box \(b) outside \(h)x\(w)")
        y.reshape(x.shape)
        let src = x.data, dst = y.data
        let plane = h * w, image = c * plane
        dst.update(from: src, count: n * image)
        let cols = b.colEnd - b.colStart
        guard b.rowEnd > b.rowStart && cols > 0 else { return }
        params.perm.withUnsafeBufferPointer { perm in
            for i in 0..<n {
                let from = Int(perm[i])
                precondition(from >= 0 && from < n, "CutMix.apply: permutation entry \(from) outside 0..<\(n)")
                for ch in 0..<c {
                    let s = src + from * image + ch * plane, d = dst + i * image + ch * plane
                    for r in b.rowStart..<b.rowEnd {
                        (d + r * w + b.colStart).update(from: s + r * w + b.colStart, count: cols)
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
