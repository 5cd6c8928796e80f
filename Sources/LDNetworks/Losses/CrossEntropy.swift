import LDKernels
import LDRecords
import LDData
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Softmax cross-entropy on logits (N,K), mean over the batch.
public enum CrossEntropy {
    /// Hard targets: loss = mean_n −log softmax(logits_n)[label_n]; writes dLogits (N,K) = (p − onehot)/N · scale.
    /// Throws when a label is outside 0..<K.
    @discardableResult
    public static func loss(logits: Tensor, labels: UnsafeBufferPointer<Int32>, dLogits: Tensor?, scale: Float = 1) throws -> Float {
        let n = logits.shape[0], k = logits.shape[1]
        guard labels.count == n else { throw LDError("cross-entropy: \(labels.count) labels for \(n) logits rows") }
        dLogits?.ensureShape(n, k)
        let x = logits.data, d = dLogits?.data
        var total = 0.0
        for i in 0..<n {
            let y = Int(labels[i])
            guard y >= 0 && y < k else { throw LDError("cross-entropy: label \(y) at row \(i) outside 0..<\(k)") }
            let row = x + i * k
            let (lse, _) = logSumExp(row, k)
            total += lse - Double(row[y])
            if let d = d {
                let dr = d + i * k
                let s = Double(scale) / Double(n)
                for j in 0..<k { dr[j] = Float(exp(Double(row[j]) - lse) * s) }
                dr[y] -= Float(s)
            }
        }
        return Float(total / Double(n)) * scale
    }

    /// Array convenience for hard targets.
    @discardableResult
    public static func loss(logits: Tensor, labels: [Int32], dLogits: Tensor?, scale: Float = 1) throws -> Float {
        try labels.withUnsafeBufferPointer { try loss(logits: logits, labels: $0, dLogits: dLogits, scale: scale) }
    }

    /// Soft targets (N,K) (rows are probabilities): loss = mean_n −Σ_k t_nk log softmax(logits_n)_k;
    /// writes dLogits = (p·Σt − t)/N · scale.
    @discardableResult
    public static func loss(logits: Tensor, targets: Tensor, dLogits: Tensor?, scale: Float = 1) throws -> Float {
        let n = logits.shape[0], k = logits.shape[1]
        guard targets.count == n * k else { throw LDError("cross-entropy: targets \(targets.shape) for logits \(logits.shape)") }
        dLogits?.ensureShape(n, k)
        let x = logits.data, t = targets.data, d = dLogits?.data
        var total = 0.0
        for i in 0..<n {
            let row = x + i * k, tr = t + i * k
            let (lse, _) = logSumExp(row, k)
            var tsum = 0.0
            for j in 0..<k { total -= Double(tr[j]) * (Double(row[j]) - lse); tsum += Double(tr[j]) }
            if let d = d {
                let s = Double(scale) / Double(n)
                for j in 0..<k { d[i * k + j] = Float((exp(Double(row[j]) - lse) * tsum - Double(tr[j])) * s) }
            }
        }
        return Float(total / Double(n)) * scale
    }
}

/// (log Σ exp(x_j), max x_j) of one row, stable: the max is subtracted first.
@inline(__always)
func logSumExp(_ row: UnsafePointer<Float>, _ k: Int, temperature: Double = 1) -> (Double, Double) {
    var mx = -Double.infinity
    for j in 0..<k { mx = max(mx, Double(row[j]) / temperature) }
    var s = 0.0
    for j in 0..<k { s += exp(Double(row[j]) / temperature - mx) }
    return (mx + log(s), mx)
}
