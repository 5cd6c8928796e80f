import LDKernels
import LDRecords
import LDData
/// Accuracy of a model on a labelled data set.
public struct Evaluation: Equatable {
    public var top1: Double
    public var top5: Double
    /// Mean cross-entropy.
    public var loss: Double
    public var images: Int

    /// `{"top1": .., "top5": .., "loss": .., "images": ..}` (accuracies in percent).
    public var json: [String: JSONValue] {
        ["top1": .rounded(top1, places: 2), "top5": .rounded(top5, places: 2),
         "loss": .rounded(loss, places: 5), "images": .int(Int64(images))]
    }
}

extension Model {
    /// Evaluates in eval mode (running BN statistics) over the whole set in batches; restores the mode.
    /// Top-5 is top-min(5, K).
    /// `batchSize`: by default 500 images, fewer for large inputs (`evaluationBatch`).
    public func evaluate(_ data: Dataset, normalization: Normalization, batchSize: Int? = nil) throws -> Evaluation {
        var correct1 = 0, correct5 = 0, lossSum = 0.0
        let k = config.classes, top = min(5, k)
        try forEachPrediction(data, normalization: normalization, batchSize: batchSize) { _, row, y in
            let better = Predictions.rank(of: y, in: row, classes: k)
            if better == 0 { correct1 += 1 }
            if better < top { correct5 += 1 }
            lossSum += Model.crossEntropy(row, label: y, classes: k)
        }
        let n = Double(data.count)
        return Evaluation(top1: 100 * Double(correct1) / n, top5: 100 * Double(correct5) / n,
                          loss: lossSum / n, images: data.count)
    }

    /// Each image's cross-entropy against its own label (-log p_y, eval mode, no augmentation), indexed like
    /// `data`: how confident the model is of the image's class (low = confident).
    public func losses(_ data: Dataset, normalization: Normalization, batchSize: Int? = nil) throws -> [Float] {
        var out = [Float](repeating: 0, count: data.count)
        let k = config.classes
        try forEachPrediction(data, normalization: normalization, batchSize: batchSize) { i, row, y in
            out[i] = Float(Model.crossEntropy(row, label: y, classes: k))
        }
        return out
    }

    /// Predicts the whole set in eval mode in batches (a set on disk decodes the next batch meanwhile) and
    /// calls `body(index, logits row, label)` per image in index order; restores the mode.
    func forEachPrediction(_ data: Dataset, normalization: Normalization, batchSize: Int?,
                           _ body: (Int, UnsafeMutablePointer<Float>, Int) -> Void) throws {
        let batchSize = batchSize ?? evaluationBatch()
        guard data.count > 0 else { throw LDError("\(data.source): no images to evaluate on") }
        let wasTraining = training
        training = false
        defer { training = wasTraining }
        let loader = try BatchLoader(data: data, normalization: normalization)
        let k = config.classes
        var start = 0
        while start < data.count {
            let end = min(start + batchSize, data.count)
            let x = try loader.load(Array(start..<end))
            if end < data.count { loader.prefetch(Array(end..<min(end + batchSize, data.count))) }   // a set on disk
            let logits = predict(x)
            for i in 0..<(end - start) { body(start + i, logits.data + i * k, Int(loader.labels[i])) }
            start = end
        }
    }

    /// log(sum exp(row)) - row[y], with the maximum subtracted.
    public static func crossEntropy(_ row: UnsafeMutablePointer<Float>, label y: Int, classes k: Int) -> Double {
        var maxv = row[0]
        for j in 0..<k where row[j] > maxv { maxv = row[j] }
        var sum = 0.0
        for j in 0..<k { sum += Double(expf(row[j] - maxv)) }
        return log(sum) - Double(row[y] - maxv)
    }
}

#if canImport(Glibc)
import Glibc
#endif
