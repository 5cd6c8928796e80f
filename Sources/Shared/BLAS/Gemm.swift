import COpenBLAS

/// The one choke point for OpenBLAS `cblas_sgemm` (row-major): C = alpha * op(A) * op(B) + beta * C,
/// where op(A) is (M,K), op(B) is (K,N) and C is (M,N). Leading dimensions default to the packed ones.
@inline(__always)
func sgemm(transA: Bool = false, transB: Bool = false, _ m: Int, _ n: Int, _ k: Int,
           alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int? = nil,
           _ b: UnsafePointer<Float>, ldb: Int? = nil,
           beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
    if m == 0 || n == 0 { return }
    let la = lda ?? (transA ? m : k)
    let lb = ldb ?? (transB ? k : n)
    let lc = ldc ?? n
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(la), b, Int32(lb), beta, c, Int32(lc))
}

/// Public wrapper of the engine's sgemm for benchmarks and tools: row-major
/// C (M,N) = alpha * op(A) * op(B) + beta * C.
public func matmul(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                   a: UnsafePointer<Float>, b: UnsafePointer<Float>, beta: Float = 0,
                   c: UnsafeMutablePointer<Float>) {
    sgemm(transA: transA, transB: transB, m, n, k, alpha: alpha, a, b, beta: beta, c)
}
