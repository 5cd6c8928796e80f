import LDKernels
import LDRecords
import LDData
import LDNetworks
#if canImport(Glibc)
import Glibc
#endif

/// Per-example training-dynamics scores for data pruning (rethinkdc.md 6.2), accumulated during training.
///
/// Every example is observed once per epoch, in train mode, on the augmented view it gets that epoch, from the
/// softmax of the logits of that very step (no separate clean pass). With p = softmax(logits) and y the label:
///
/// - **EL2N**: ‖p − onehot(y)‖₂ summed over the first `el2nEpochs` epochs; the stream stores the **mean**
///   over those epochs (the sum divided by `el2nEpochs`; the CCS code keeps the sum, the ranking is the same).
///   High = hard.
/// - **forgetting**: number of correct → incorrect transitions of argmax p = y between consecutive epochs;
///   the state before the first epoch counts as incorrect, so never-learned examples score 0. High = hard.
/// - **AUM**: Σ over all epochs of p_y − max_{k≠y} p_k, on probabilities, **summed** (not averaged).
///   Low or negative = hard or mislabelled.
/// - **correct**: number of epochs in which the example was classified correctly.
///
/// Accumulators are Float, so a checkpoint (see `tensors` / `restore`) resumes them bit for bit.
public final class TrainingDynamics {
    /// The score stream's columns, in `ScoreRecord.values` order.
    public static let columns = ["el2n", "forgetting", "aum", "correct"]

    /// Number of examples (score records) and classes.
    public let count: Int, classes: Int
    /// Epochs whose EL2N enters the mean (the first ones), K.
    public let el2nEpochs: Int
    /// Σ over the first K epochs of ‖p − onehot(y)‖₂, per example.
    public private(set) var el2nSum: [Float]
    /// Correct → incorrect transitions, per example.
    public private(set) var forgetting: [Float]
    /// Σ over epochs of the probability margin, per example.
    public private(set) var aum: [Float]
    /// Epochs correct, per example.
    public private(set) var correct: [Float]
    /// Whether the example was correct when last seen (1) or not (0).
    public private(set) var lastCorrect: [Float]

    public init(count: Int, classes: Int, el2nEpochs: Int) {
        self.count = count
        self.classes = classes
        self.el2nEpochs = el2nEpochs
        el2nSum = [Float](repeating: 0, count: count)
        forgetting = el2nSum
        aum = el2nSum
        correct = el2nSum
        lastCorrect = el2nSum
    }

    /// Records one batch: `logits` (N, K) from the training forward pass, `indices` the examples' indices in
    /// the training set and `labels` their labels (N each), seen in `epoch` (from 0).
    public func record(logits: Tensor, indices: [Int], labels: [Int32], epoch: Int) {
        let n = indices.count, k = classes
        precondition(logits.shape == [n, k], "TrainingDynamics: logits \(logits.shape) for \(n) examples of \(k) classes")
        let x = UnsafePointer(logits.data)
        let withEL2N = epoch < el2nEpochs
        el2nSum.withUnsafeMutableBufferPointer { el2n in
            forgetting.withUnsafeMutableBufferPointer { forget in
                aum.withUnsafeMutableBufferPointer { margin in
                    correct.withUnsafeMutableBufferPointer { right in
                        lastCorrect.withUnsafeMutableBufferPointer { last in
                            for r in 0..<n {
                                let i = indices[r], y = Int(labels[r])
                                precondition(i >= 0 && i < count && y >= 0 && y < k, "TrainingDynamics: example \(i) label \(y)")
                                let row = x + r * k
                                var maxLogit = row[0]
                                for j in 1..<max(k, 1) where row[j] > maxLogit { maxLogit = row[j] }
                                var z = 0.0
                                for j in 0..<k { z += exp(Double(row[j] - maxLogit)) }
                                var sq = 0.0, pY = 0.0, pOther = -1.0
                                let isCorrect = Predictions.isTop1(y, in: row, classes: k)
                                for j in 0..<k {
                                    let p = exp(Double(row[j] - maxLogit)) / z
                                    if j == y {
                                        pY = p
                                        sq += (p - 1) * (p - 1)
                                    } else {
                                        sq += p * p
                                        if p > pOther { pOther = p }
                                    }
                                }
                                if k == 1 { pOther = 0 }
                                if withEL2N { el2n[i] += Float(sq.squareRoot()) }
                                margin[i] += Float(pY - pOther)
                                if isCorrect {
                                    right[i] += 1
                                    last[i] = 1
                                } else {
                                    if last[i] == 1 { forget[i] += 1 }
                                    last[i] = 0
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The scores of example `i` in `columns` order (EL2N as the mean over the first K epochs).
    public func values(_ i: Int) -> [Float] {
        [el2nSum[i] / Float(max(el2nEpochs, 1)), forgetting[i], aum[i], correct[i]]
    }

    /// Writes the score stream: header kind `scores` (classes, `image_set_hash` = the training set's
    /// `Dataset.contentHash`, meta `columns`, `el2n_epochs` and `extra`), one `ScoreRecord` per example in
    /// index order.
    @discardableResult
    public func write(path: String, producer: String, seed: UInt64, imageSetHash: String,
                      extra: [String: JSONValue] = [:], commit: Bool = true) throws -> ByteSink {
        var meta = extra
        meta["columns"] = .array(TrainingDynamics.columns.map { .string($0) })
        meta["el2n_epochs"] = .int(Int64(el2nEpochs))
        meta["el2n"] = .string("mean over the first el2n_epochs epochs of ||softmax - onehot||_2")
        meta["aum"] = .string("sum over epochs of p_y - max_{k!=y} p_k (probabilities)")
        let header = StreamHeader(kind: .scores, producer: producer, version: LD.version, seed: seed,
                                  classes: classes, imageSetHash: imageSetHash, meta: meta)
        let writer = try StreamWriter(path: path, header: header)
        do {
            for i in 0..<count { try writer.write(ScoreRecord(index: UInt64(i), values: values(i))) }
            try writer.finish(commit: commit)
        } catch {
            writer.abort()
            throw error
        }
        return writer.sink
    }

    // MARK: - Checkpoints

    /// The accumulators as tensor records named `prefix + field` (for training checkpoints).
    public func tensors(prefix: String = "scores.") -> [TensorRecord] {
        [("el2n_sum", el2nSum), ("forgetting", forgetting), ("aum", aum), ("correct", correct), ("last_correct", lastCorrect)]
            .map { TensorRecord(name: prefix + $0.0, shape: [count], data: $0.1) }
    }

    /// Restores the accumulators from `tensors(prefix:)` records (looked up by name); throws if one is
    /// missing or has the wrong length.
    public func restore(from records: [String: TensorRecord], prefix: String = "scores.", source: String) throws {
        func take(_ field: String) throws -> [Float] {
            guard let r = records[prefix + field] else { throw LDError("\(source): checkpoint lacks tensor '\(prefix + field)'") }
            guard r.data.count == count else {
                throw LDError("\(source): checkpoint tensor '\(prefix + field)' has \(r.data.count) values, expected \(count)")
            }
            return r.data
        }
        el2nSum = try take("el2n_sum")
        forgetting = try take("forgetting")
        aum = try take("aum")
        correct = try take("correct")
        lastCorrect = try take("last_correct")
    }
}
