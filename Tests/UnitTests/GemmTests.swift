import XCTest
import COpenBLAS
import LDKernels

/// `sgemm`, the engine's one OpenBLAS call site: against a naive double-precision product for every transpose,
/// split (none, column blocks, row blocks), beta and leading dimension of C; and, where it makes one call, bit
/// for bit against a plain `cblas_sgemm` with the same beta, which is what its own zeroing of C for beta = 0
/// (then accumulating with beta = 1) claims.
final class GemmTests: XCTestCase {
    override func tearDown() { Engine.threads = 2 }

    func testSgemmMatchesNaiveProductAndOpenBLAS() {
        var state: UInt64 = 7
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(state >> 40) % 2001 - 1000) / 1000
        }
        // (m, n, k): small (one call), and 2·m·n·k ≥ 8M with n ≥ m (column blocks) and m > n (row blocks)
        let shapes = [(3, 5, 7), (37, 70, 19), (200, 260, 100), (260, 200, 100)]
        let alpha: Float = 0.75, sentinel: Float = 12345
        for threads in [1, 2] {
            Engine.threads = threads
            for (m, n, k) in shapes {
                let a = (0..<(m * k)).map { _ in next() }, b = (0..<(k * n)).map { _ in next() }
                for transA in [false, true] {
                    for transB in [false, true] {
                        for beta: Float in [0, 1, 0.5] {
                            for pad in [0, 3] {
                                let lc = n + pad
                                // C: NaN where beta = 0 says its values are ignored, the sentinel in the padding
                                let c0 = (0..<(m * lc)).map { i in i % lc >= n ? sentinel : beta == 0 ? .nan : next() }
                                var c = c0
                                a.withUnsafeBufferPointer { ap in
                                    b.withUnsafeBufferPointer { bp in
                                        c.withUnsafeMutableBufferPointer { cp in
                                            sgemm(transA: transA, transB: transB, m, n, k, alpha: alpha, ap.baseAddress!,
                                                  bp.baseAddress!, beta: beta, cp.baseAddress!, ldc: lc)
                                        }
                                    }
                                }
                                let what = "\(threads) threads, \(m)x\(n)x\(k), transA \(transA), transB \(transB), beta \(beta), ldc \(lc)"
                                var worst = 0.0
                                for i in 0..<m {
                                    for j in 0..<lc {
                                        let got = c[i * lc + j]
                                        if j >= n { XCTAssertEqual(got, sentinel, "padding written: \(what)"); continue }
                                        var sum = 0.0
                                        for p in 0..<k {
                                            let x = transA ? a[p * m + i] : a[i * k + p], y = transB ? b[j * k + p] : b[p * n + j]
                                            sum += Double(x) * Double(y)
                                        }
                                        let expected = Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * Double(c0[i * lc + j]))
                                        worst = max(worst, abs(Double(got) - expected))
                                    }
                                }
                                XCTAssertLessThan(worst, 1e-4, what)
                                guard threads == 1 else { continue }
                                // one call: the same bits as OpenBLAS's own beta
                                var direct = c0
                                a.withUnsafeBufferPointer { ap in
                                    b.withUnsafeBufferPointer { bp in
                                        direct.withUnsafeMutableBufferPointer { cp in
                                            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                                                        transB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha,
                                                        ap.baseAddress!, Int32(transA ? m : k), bp.baseAddress!, Int32(transB ? k : n),
                                                        beta, cp.baseAddress!, Int32(lc))
                                        }
                                    }
                                }
                                XCTAssertEqual(c.map(\.bitPattern), direct.map(\.bitPattern), "not OpenBLAS's bits: \(what)")
                            }
                        }
                    }
                }
            }
        }
    }
}
