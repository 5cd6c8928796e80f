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
        let batchSize = batchSize ?? evaluationBatch()
        guard data.count > 0 else { throw LDError("\(data.source): no images to evaluate on") }
        let wasTraining = training
        training = false
        defer { training = wasTraining }
        let loader = try BatchLoader(data: data, normalization: normalization)
        var correct1 = 0, correct5 = 0, lossSum = 0.0
        let k = config.classes, top = min(5, k)
        var start = 0
        while start < data.count {
            let end = min(start + batchSize, data.count)
            let x = try loader.load(Array(start..<end))
            if end < data.count { loader.prefetch(Array(end..<min(end + batchSize, data.count))) }   // a set on disk
            let logits = predict(x)
            let n = end - start
            let p = logits.data
            for i in 0..<n {
                let row = p + i * k
                let y = Int(loader.labels[i])
                let target = row[y]
                let better = Predictions.rank(of: y, in: row, classes: k)
                var maxv = row[0]
                for j in 0..<k where row[j] > maxv { maxv = row[j] }
                if better == 0 { correct1 += 1 }
                if better < top { correct5 += 1 }
                var sum = 0.0
                for j in 0..<k { sum += Double(expf(row[j] - maxv)) }
                lossSum += log(sum) - Double(target - maxv)
            }
            start = end
        }
        let n = Double(data.count)
        return Evaluation(top1: 100 * Double(correct1) / n, top5: 100 * Double(correct5) / n,
                          loss: lossSum / n, images: data.count)
    }
}

#if canImport(Glibc)
import Glibc
#endif
