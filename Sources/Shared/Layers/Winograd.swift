import COpenBLAS

// Winograd F(2×2, 3×3) for 3×3 stride-1 pad-1 convolutions on channel-major activations (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016): each 2×2 output tile costs 16 multiplies per
// (in, out) channel pair instead of 36, done as 16 independent GEMMs over all tiles of a chunk of images.
//
//   U[ξ] (Co, Ci) = (G g Gᵀ)[ξ]        weights; ξ = 4·row + col of the 4×4 transformed tile
//   V[ξ] (Ci, T)  = (Bᵀ d B)[ξ]        input tiles: 4×4 at a 2-pixel step from (−1, −1), zero outside
//   M[ξ] (Co, T)  = U[ξ] · V[ξ]
//   y tile (2×2)  = Aᵀ M A, cropped at odd edges.
//
// The input gradient of such a convolution is itself a 3×3 stride-1 pad-1 convolution of dy with the
// weights transposed (Ci ↔ Co) and rotated by 180°, so the same routine computes dx.

/// Transforms weights (co, ci, 3, 3) into u (16, outC, inC). With `flipped`, the result is for the
/// input-gradient convolution: outC = ci, inC = co, g'[c][k] = rot180(g[k][c]).
func winogradWeights(_ g: UnsafePointer<Float>, co: Int, ci: Int, flipped: Bool, into u: UnsafeMutablePointer<Float>) {
    let outC = flipped ? ci : co, inC = flipped ? co : ci
    let plane = outC * inC
    Engine.parallelRange(co, grain: 8) { k0, k1 in
        for k in k0..<k1 {
            for c in 0..<ci {
                let s = g + (k * ci + c) * 9
                @inline(__always) func at(_ i: Int) -> Float { flipped ? s[8 - i] : s[i] }
                let dst = u + (flipped ? c * inC + k : k * inC + c)
                // (G g) rows r = 0..3, each a 3-vector (t0, t1, t2); then (G g) Gᵀ row r = (t0, ½(t0+t1+t2), ½(t0−t1+t2), t2).
                for r in 0..<4 {
                    var t0: Float, t1: Float, t2: Float
                    switch r {
                    case 0: t0 = at(0); t1 = at(1); t2 = at(2)
                    case 1: t0 = 0.5 * (at(0) + at(3) + at(6)); t1 = 0.5 * (at(1) + at(4) + at(7)); t2 = 0.5 * (at(2) + at(5) + at(8))
                    case 2: t0 = 0.5 * (at(0) - at(3) + at(6)); t1 = 0.5 * (at(1) - at(4) + at(7)); t2 = 0.5 * (at(2) - at(5) + at(8))
                    default: t0 = at(6); t1 = at(7); t2 = at(8)
                    }
                    dst[(4 * r + 0) * plane] = t0
                    dst[(4 * r + 1) * plane] = 0.5 * (t0 + t1 + t2)
                    dst[(4 * r + 2) * plane] = 0.5 * (t0 - t1 + t2)
                    dst[(4 * r + 3) * plane] = t2
                }
            }
        }
    }
}

/// y (outC, n, h, w) = conv3×3/1/1(x (inC, n, h, w)) with transformed weights u (16, outC, inC), plus bias
/// (outC) when given. Works in chunks of images through `workspace`; `budget` bounds the floats of V and M.
func winogradConv(_ x: UnsafePointer<Float>, inC: Int, n: Int, h: Int, w: Int,
                  _ u: UnsafePointer<Float>, outC: Int, bias: UnsafePointer<Float>?,
                  _ y: UnsafeMutablePointer<Float>, workspace: Workspace, budget: Int) {
    let th = (h + 1) / 2, tw = (w + 1) / 2, tilesPerImage = th * tw, hw = h * w
    let step = max(1, min(n, budget / max(1, 16 * (inC + outC) * tilesPerImage)))
    let ws = workspace.buffer(16 * (inC + outC) * step * tilesPerImage)
    let threads = Engine.threads
    for n0 in Swift.stride(from: 0, to: n, by: step) {
        let n1 = min(n, n0 + step), tc = (n1 - n0) * tilesPerImage
        let v = ws, m = ws + 16 * inC * tc
        // V = Bᵀ d B per input channel and tile (scalar locals: the 16 values stay in registers)
        Engine.parallelRange(inC, grain: 2) { c0, c1 in
            let ps = inC * tc
            for c in c0..<c1 {
                for img in n0..<n1 {
                    let src = x + (c * n + img) * hw
                    var t = (img - n0) * tilesPerImage
                    let vb = v + c * tc
                    for ty in 0..<th {
                        let y0 = 2 * ty - 1
                        for tx in 0..<tw {
                            let x0 = 2 * tx - 1
                            @inline(__always) func ld(_ i: Int, _ j: Int) -> Float {
                                let yy = y0 + i, xx = x0 + j
                                return (yy >= 0 && yy < h && xx >= 0 && xx < w) ? src[yy * w + xx] : 0
                            }
                            var d00, d01, d02, d03, d10, d11, d12, d13, d20, d21, d22, d23, d30, d31, d32, d33: Float
                            if y0 >= 0 && x0 >= 0 && y0 + 3 < h && x0 + 3 < w {
                                let a = src + y0 * w + x0, b = a + w, c2 = b + w, e = c2 + w
                                d00 = a[0]; d01 = a[1]; d02 = a[2]; d03 = a[3]
                                d10 = b[0]; d11 = b[1]; d12 = b[2]; d13 = b[3]
                                d20 = c2[0]; d21 = c2[1]; d22 = c2[2]; d23 = c2[3]
                                d30 = e[0]; d31 = e[1]; d32 = e[2]; d33 = e[3]
                            } else {
                                d00 = ld(0, 0); d01 = ld(0, 1); d02 = ld(0, 2); d03 = ld(0, 3)
                                d10 = ld(1, 0); d11 = ld(1, 1); d12 = ld(1, 2); d13 = ld(1, 3)
                                d20 = ld(2, 0); d21 = ld(2, 1); d22 = ld(2, 2); d23 = ld(2, 3)
                                d30 = ld(3, 0); d31 = ld(3, 1); d32 = ld(3, 2); d33 = ld(3, 3)
                            }
                            // rows: Bᵀ d
                            let s00 = d00 - d20, s01 = d01 - d21, s02 = d02 - d22, s03 = d03 - d23
                            let s10 = d10 + d20, s11 = d11 + d21, s12 = d12 + d22, s13 = d13 + d23
                            let s20 = d20 - d10, s21 = d21 - d11, s22 = d22 - d12, s23 = d23 - d13
                            let s30 = d10 - d30, s31 = d11 - d31, s32 = d12 - d32, s33 = d13 - d33
                            // columns: (Bᵀ d) B
                            let o = vb + t
                            o[0 * ps] = s00 - s02; o[1 * ps] = s01 + s02; o[2 * ps] = s02 - s01; o[3 * ps] = s01 - s03
                            o[4 * ps] = s10 - s12; o[5 * ps] = s11 + s12; o[6 * ps] = s12 - s11; o[7 * ps] = s11 - s13
                            o[8 * ps] = s20 - s22; o[9 * ps] = s21 + s22; o[10 * ps] = s22 - s21; o[11 * ps] = s21 - s23
                            o[12 * ps] = s30 - s32; o[13 * ps] = s31 + s32; o[14 * ps] = s32 - s31; o[15 * ps] = s31 - s33
                            t += 1
                        }
                    }
                }
            }
        }
        // M[ξ] = U[ξ] · V[ξ]: 16 single-threaded GEMMs shared among the workers
        let parts = min(threads, 16)
        if parts <= 1 {
            for xi in 0..<16 {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outC), Int32(tc), Int32(inC), 1,
                            u + xi * outC * inC, Int32(inC), v + xi * inC * tc, Int32(tc), 0, m + xi * outC * tc, Int32(tc))
            }
        } else {
            WorkerPool.shared.run(parts) { p in
                for xi in (16 * p / parts)..<(16 * (p + 1) / parts) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outC), Int32(tc), Int32(inC), 1,
                                u + xi * outC * inC, Int32(inC), v + xi * inC * tc, Int32(tc), 0, m + xi * outC * tc, Int32(tc))
                }
            }
        }
        // y tile = Aᵀ M A (+ bias), cropped
        Engine.parallelRange(outC, grain: 2) { k0, k1 in
            let xs = outC * tc
            for k in k0..<k1 {
                let b = bias?[k] ?? 0
                let mb = m + k * tc
                for img in n0..<n1 {
                    let dst = y + (k * n + img) * hw
                    var t = (img - n0) * tilesPerImage
                    for ty in 0..<th {
                        for tx in 0..<tw {
                            let q = mb + t
                            let m00 = q[0], m01 = q[xs], m02 = q[2 * xs], m03 = q[3 * xs]
                            let m10 = q[4 * xs], m11 = q[5 * xs], m12 = q[6 * xs], m13 = q[7 * xs]
                            let m20 = q[8 * xs], m21 = q[9 * xs], m22 = q[10 * xs], m23 = q[11 * xs]
                            let m30 = q[12 * xs], m31 = q[13 * xs], m32 = q[14 * xs], m33 = q[15 * xs]
                            // Aᵀ M: two rows of 4
                            let a0 = m00 + m10 + m20, a1 = m01 + m11 + m21, a2 = m02 + m12 + m22, a3 = m03 + m13 + m23
                            let b0 = m10 - m20 - m30, b1 = m11 - m21 - m31, b2 = m12 - m22 - m32, b3 = m13 - m23 - m33
                            let yy = 2 * ty, xx = 2 * tx
                            let row0 = dst + yy * w + xx
                            row0[0] = a0 + a1 + a2 + b
                            if xx + 1 < w { row0[1] = a1 - a2 - a3 + b }
                            if yy + 1 < h {
                                let row1 = row0 + w
                                row1[0] = b0 + b1 + b2 + b
                                if xx + 1 < w { row1[1] = b1 - b2 - b3 + b }
                            }
                            t += 1
                        }
                    }
                }
            }
        }
    }
}
