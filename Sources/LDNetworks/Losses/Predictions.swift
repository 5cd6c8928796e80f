import LDKernels

/// How a row of logits ranks the classes: the one rule for top-1 and top-k everywhere (accuracy, the
/// teacher's train top-1, recover's check that the teacher recognises its images, the training-dynamics
/// scores). Ties go to the lower class index (PyTorch's `argmax`); a NaN logit for the true class ranks it
/// last, so a NaN is never a correct prediction.
public enum Predictions {
    /// How many classes rank above class `y` in `row[0..<k]`: a larger logit, or an equal one at a lower
    /// index; `k` when `row[y]` is NaN. Top-1 is rank 0, top-5 rank < 5.
    @inline(__always)
    public static func rank(of y: Int, in row: UnsafePointer<Float>, classes k: Int) -> Int {
        let target = row[y]
        guard !target.isNaN else { return k }
        var above = 0
        for j in 0..<k where row[j] > target || (row[j] == target && j < y) { above += 1 }
        return above
    }

    /// Whether class `y` is the top-1 prediction of `row[0..<k]`.
    @inline(__always)
    public static func isTop1(_ y: Int, in row: UnsafePointer<Float>, classes k: Int) -> Bool {
        rank(of: y, in: row, classes: k) == 0
    }

    /// The number of rows of a (N, K) logit tensor whose top-1 prediction is their label.
    public static func correctCount(_ logits: Tensor, labels: [Int32]) -> Int {
        let k = logits.shape[1], x = UnsafePointer(logits.data)
        var n = 0
        for (r, y) in labels.enumerated() where isTop1(Int(y), in: x + r * k, classes: k) { n += 1 }
        return n
    }
}
