import LDKernels
import LDRecords
import LDData
/// SRe2L's BN-statistics matching loss over a model's BatchNorm layers:
/// L = Σ_l w_l · (‖μ_l − μ*_l‖₂ + ‖σ²_l − σ²*_l‖₂) with unsquared L2 norms, where μ_l, σ²_l are the batch
/// mean and biased variance of layer l's input (the BN hook) and μ*, σ²* are the targets.
public enum BNStatisticsLoss {
    /// What the statistics are matched against.
    public enum Target {
        /// The layers' running statistics (SRe2L, CDA).
        case running
        /// One class's statistics from `BatchNorm2d.classStatistics` (LPLD).
        case classStatistics(Int)
    }

    /// Computes L from the hooked statistics of the last forward (the model's `captureBatchStatistics` must
    /// have been on) and writes scale·dL/dμ_l, scale·dL/dσ²_l into each layer's `dBatchMean` /
    /// `dBatchVariance`, which its backward then carries to the input. Returns scale·L.
    /// - Parameters:
    ///   - firstWeight: w for the first BN layer (10 by default, SRe2L's first-BN multiplier).
    ///   - otherWeight: w for the others (1).
    @discardableResult
    public static func loss(_ layers: [BatchNorm2d], target: Target = .running, firstWeight: Float = 10,
                            otherWeight: Float = 1, scale: Float = 1) throws -> Float {
        var total = 0.0
        for (l, bn) in layers.enumerated() {
            guard bn.captureBatchStatistics else {
                throw LDError("bn-loss: layer \(bn.name) did not capture batch statistics (set captureBatchStatistics before forward)")
            }
            let w = Double(l == 0 ? firstWeight : otherWeight) * Double(scale)
            let c = bn.channels
            let m = bn.batchMean.data, v = bn.batchVariance.data
            let dm = bn.dBatchMean.data, dv = bn.dBatchVariance.data
            // Differences to the target go to dm, dv first (no temporary arrays: this runs every step).
            switch target {
            case .running:
                let rm = bn.runningMean.data, rv = bn.runningVar.data
                for i in 0..<c { dm[i] = m[i] - rm[i]; dv[i] = v[i] - rv[i] }
            case .classStatistics(let k):
                guard let cs = bn.classStatistics, k >= 0, k < cs.classes, cs.count[k] > 0 else {
                    throw LDError("bn-loss: layer \(bn.name) has no statistics for class \(k)")
                }
                let count = cs.count[k]
                cs.sum.withUnsafeBufferPointer { sp in
                    cs.sumSquares.withUnsafeBufferPointer { qp in
                        for i in 0..<c {
                            let mean = sp[k * c + i] / count
                            let variance = max(0, qp[k * c + i] / count - mean * mean)
                            dm[i] = Float(Double(m[i]) - mean); dv[i] = Float(Double(v[i]) - variance)
                        }
                    }
                }
            }
            var nm = 0.0, nv = 0.0
            for i in 0..<c { nm += Double(dm[i]) * Double(dm[i]); nv += Double(dv[i]) * Double(dv[i]) }
            nm = nm.squareRoot(); nv = nv.squareRoot()
            total += w * (nm + nv)
            // d‖a‖₂/da = a/‖a‖₂ (0 at a = 0)
            for i in 0..<c {
                dm[i] = nm > 0 ? Float(w * Double(dm[i]) / nm) : 0
                dv[i] = nv > 0 ? Float(w * Double(dv[i]) / nv) : 0
            }
        }
        return Float(total)
    }
}
