import COpenBLAS
import Dispatch

/// The one choke point for OpenBLAS `cblas_sgemm` (row-major): C = alpha * op(A) * op(B) + beta * C,
/// where op(A) is (M,K), op(B) is (K,N) and C is (M,N). Leading dimensions default to the packed ones.
///
/// Parallelism: OpenBLAS itself always runs single-threaded (its idle workers would spin against the engine's
/// own loops on 2 cores); instead a large GEMM is cut into `Engine.threads` column (or row) blocks of C, each
/// one single-threaded sgemm call on its own worker. Every element of C is still one dot product over the
/// full K, so the split does not change which values are summed; OpenBLAS's rounding can depend on where the
/// columns are cut, so results are the same to the bit for the same thread count (and shapes), not across.
/// `split: false` makes one call on the calling thread: for callers that are themselves one of the workers
/// (Winograd's blocks, 1×1 column blocks, ConvBatchNorm's images).
public func sgemm(transA: Bool = false, transB: Bool = false, _ m: Int, _ n: Int, _ k: Int,
           alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int? = nil,
           _ b: UnsafePointer<Float>, ldb: Int? = nil,
           beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int? = nil, split: Bool = true) {
    if m == 0 || n == 0 { return }
    let la = lda ?? (transA ? m : k)
    let lb = ldb ?? (transB ? k : n)
    let lc = ldc ?? n
    let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
    let threads = Engine.threads
    // C = alpha·A·B + beta·C as OpenBLAS computes it, except that for beta = 0 C is zeroed here (glibc's
    // vectorised memset) and then accumulated into (beta = 1): OpenBLAS's own zeroing pass, `sgemm_beta`, took
    // 5-7% of a ResNet-50 inference's `perf` samples (its K = 64 products), the memset takes about 4%, and
    // the inference runs about 5% faster. OpenBLAS's kernels add alpha·(A·B) to C either way, so the results
    // are the same to the bit (`GemmTests`).
    @inline(__always) func call(_ m: Int, _ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>) {
        var beta = beta
        if beta == 0 {
            if lc == n { c.update(repeating: 0, count: m * n) } else { for i in 0..<m { (c + i * lc).update(repeating: 0, count: n) } }
            beta = 1
        }
        cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(k), alpha, a, Int32(la), b, Int32(lb), beta, c, Int32(lc))
    }
    if !split || threads <= 1 || 2 * m * n * k < 8_000_000 || max(m, n) < 64 {
        call(m, n, a, b, c)
        return
    }
    if n >= m {
        // column blocks of C (and of op(B)), multiples of 16 columns
        let blocks = (n + 15) / 16
        WorkerPool.shared.run(threads) { t in
            let j0 = min(n, blocks * t / threads * 16), j1 = min(n, blocks * (t + 1) / threads * 16)
            if j0 >= j1 { return }
            call(m, j1 - j0, a, transB ? b + j0 * lb : b + j0, c + j0)
        }
    } else {
        let blocks = (m + 15) / 16
        WorkerPool.shared.run(threads) { t in
            let i0 = min(m, blocks * t / threads * 16), i1 = min(m, blocks * (t + 1) / threads * 16)
            if i0 >= i1 { return }
            call(i1 - i0, n, transA ? a + i0 : a + i0 * la, b, c + i0 * lc)
        }
    }
}

