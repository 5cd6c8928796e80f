import LDKernels
import LDRecords
import LDData
import LDNetworks
/// How `ClassStatisticsPass` estimates each BatchNorm layer's per-class input statistics.
public enum ClassStatisticsMode: String, CaseIterable, Sendable {
    /// Exact per-class moments: every image of class k, in eval mode, contributes to Σx and Σx² of
    /// every BN layer's input (default; lpld.md 2.3 option (b)).
    case exact
    /// LPLD's estimator (lpld.md 2.1, 2.3 option (a)): one shuffled pass in batches; for every class present in
    /// a batch, the mean and biased variance of that class's subset update an exponential moving average with
    /// momentum 0.1 (`stat ← 0.9·stat + 0.1·batch_stat`, from mean 0 and variance 1). With few images of a
    /// class per batch the stored variance misses most of the between-image variance, as in the original.
    case ema
}

/// LPLD's "model with class BN" pass: fills every BatchNorm layer's `classStatistics` from a data set, in eval
/// mode (the running statistics and the weights do not change), without augmentation.
public enum ClassStatisticsPass {
    /// Runs the pass over `data` (normalised with `normalization`) in batches of `batchSize`.
    ///
    /// `.exact` visits the images in index order. `.ema` visits them in the order drawn from
    /// `LDRandom(seed, .squeeze, major: shuffleKey, minor: 1)` and stores the averages in `ClassStatistics`
    /// form, with `count` = the number of EMA updates of the class (so `mean(k)` and `variance(k)` return the
    /// EMA values). `progress` is told the images done.
    public static func run(model: Model, data: Dataset, normalization: Normalization, mode: ClassStatisticsMode,
                           batchSize: Int, seed: UInt64 = 0, shuffleKey: Int = 0,
                           progress: ((Int) -> Void)? = nil) throws {
        guard data.classes == model.config.classes else {
            throw LDError("\(data.source) has \(data.classes) classes, the model has \(model.config.classes)")
        }
        guard batchSize > 0 else { throw LDError("class statistics: batch size must be positive, got \(batchSize)") }
        let wasTraining = model.training
        model.training = false
        defer { model.training = wasTraining }
        let loader = try BatchLoader(data: data, normalization: normalization)
        let k = model.config.classes
        var order = Array(0..<data.count)
        if mode == .ema {
            var rng = LDRandom(seed: seed, stage: .squeeze, major: shuffleKey, minor: 1)
            order = rng.permutation(data.count)
        }
        // Fresh accumulators: exact mode sums into them; EMA mode uses them per batch as scratch.
        for bn in model.batchNorms { bn.classStatistics = ClassStatistics(classes: k, channels: bn.channels) }
        var emaMean = model.batchNorms.map { [Double](repeating: 0, count: k * $0.channels) }
        var emaVar = model.batchNorms.map { [Double](repeating: 1, count: k * $0.channels) }
        var updates = [Double](repeating: 0, count: k)
        var start = 0
        while start < order.count {
            let end = min(start + batchSize, order.count)
            let indices = Array(order[start..<end])
            let x = try loader.load(indices)
            if end < order.count { loader.prefetch(Array(order[end..<min(end + batchSize, order.count)])) }   // a set on disk
            if mode == .ema { for bn in model.batchNorms { bn.classStatistics!.reset() } }
            loader.labels.withUnsafeBufferPointer { _ = model.forward(x, classLabels: $0.baseAddress!) }
            if mode == .ema {
                var present = [Bool](repeating: false, count: k)
                for l in loader.labels { present[Int(l)] = true }
                for (layer, bn) in model.batchNorms.enumerated() {
                    let cs = bn.classStatistics!, c = bn.channels
                    for cls in 0..<k where present[cls] {
                        let m = cs.mean(cls), v = cs.variance(cls)
                        for ch in 0..<c {
                            emaMean[layer][cls * c + ch] = 0.9 * emaMean[layer][cls * c + ch] + 0.1 * Double(m[ch])
                            emaVar[layer][cls * c + ch] = 0.9 * emaVar[layer][cls * c + ch] + 0.1 * Double(v[ch])
                        }
                    }
                }
                for cls in 0..<k where present[cls] { updates[cls] += 1 }
            }
            start = end
            progress?(end)
        }
        if mode == .ema {
            for (layer, bn) in model.batchNorms.enumerated() {
                let c = bn.channels
                let cs = ClassStatistics(classes: k, channels: c)
                for cls in 0..<k {
                    let n = updates[cls]
                    cs.count[cls] = n
                    for ch in 0..<c {
                        let m = emaMean[layer][cls * c + ch], v = emaVar[layer][cls * c + ch]
                        cs.sum[cls * c + ch] = m * n
                        cs.sumSquares[cls * c + ch] = (v + m * m) * n
                    }
                }
                bn.classStatistics = cs
            }
        }
    }
}
