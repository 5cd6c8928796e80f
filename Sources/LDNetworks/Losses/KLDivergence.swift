import LDKernels
import LDRecords
import LDData
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Knowledge-distillation loss: KL(softmax(t/T) ‖ softmax(s/T)) with batchmean reduction, as PyTorch's
/// `kl_div(log_softmax(s/T), softmax(t/T), reduction: "batchmean")`, optionally × T².
public enum KLDivergence {
    /// student, teacher (N,K). Returns the loss and writes dStudent (N,K) =
    /// (softmax(s/T) − softmax(t/T)) / (T·N) · (T² if `scaleByTSquared`) · scale.
    @discardableResult
    public static func loss(student: Tensor, teacher: Tensor, temperature: Float, scaleByTSquared: Bool = false,
                            dStudent: Tensor?, scale: Float = 1) throws -> Float {
        let n = student.shape[0], k = student.shape[1]
        guard teacher.count == n * k else { throw LDError("kl-div: teacher \(teacher.shape) for student \(student.shape)") }
        guard temperature > 0 else { throw LDError("kl-div: temperature \(temperature) must be positive") }
        dStudent?.ensureShape(n, k)
        let T = Double(temperature)
        let factor = (scaleByTSquared ? T * T : 1) * Double(scale)
        let s = student.data, t = teacher.data, d = dStudent?.data
        var total = 0.0
        for i in 0..<n {
            let sr = s + i * k, tr = t + i * k
            let (ls, _) = logSumExp(sr, k, temperature: T)
            let (lt, _) = logSumExp(tr, k, temperature: T)
            for j in 0..<k {
                let logq = Double(tr[j]) / T - lt       // teacher log-prob
                let logp = Double(sr[j]) / T - ls       // student log-prob
                let q = exp(logq)
                if q > 0 { total += q * (logq - logp) }
                if let d = d { d[i * k + j] = Float((exp(logp) - q) / (T * Double(n)) * factor) }
            }
        }
        return Float(total / Double(n) * factor)
    }
}
