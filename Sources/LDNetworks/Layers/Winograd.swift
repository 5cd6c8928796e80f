import LDKernels
import LDRecords
import LDData
import COpenBLAS

// Winograd F(2×2, 3×3) for 3×3 stride-1 pad-1 convolutions on channel-major activations (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016): each 2×2 output tile costs 16 multiplies per
// (in, out) channel pair instead of 36, done as 16 independent GEMMs over the tiles of a block of images.
//
//   U[ξ] (Co, Ci) = (G g Gᵀ)[ξ]        weights; ξ = 4·row + col of the 4×4 transformed tile
//   V[ξ] (Ci, T)  = (Bᵀ d B)[ξ]        input tiles: 4×4 at a 2-pixel step from (−1, −1), zero outside
//   M[ξ] (Co, T)  = U[ξ] · V[ξ]
//   y tile (2×2)  = Aᵀ M A, cropped at odd edges.
//
// The input gradient of such a convolution is itself a 3×3 stride-1 pad-1 convolution of dy with the
// weights transposed (Ci ↔ Co) and rotated by 180°, so the same routine computes dx.
//
// Speed comes from locality: the batch is cut into blocks of whole images small enough that a block's V
// and M (16·(Ci + Co) floats per tile) stay in the caches, each worker thread takes whole blocks
// (transform in, 16 single-threaded GEMMs, transform out), and the transforms run along rows of tiles
// over contiguous memory so that the compiler vectorises them.

/// Transforms weights (co, ci, 3, 3) into u (16, outC, inC). With `flipped`, the result is for the
/// input-gradient convolution: outC = ci, inC = co, g'[c][k] = rot180(g[k][c]).
func winogradWeights(_ g: UnsafePointer<Float>, co: Int, ci: Int, flipped: Bool, into u: UnsafeMutablePointer<Float>) {
    let outC = flipped ? ci : co, inC = flipped ? co : ci
    let plane = outC * inC
    Engine.parallelRange(outC, grain: 8) { o0, o1 in
        // One output row o at a time, made in a local row and written out as 16 contiguous runs.
        let rs = inC + planePad   // row stride off powers of two (16 store streams)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16 * rs) { rowBuffer in
            let row = rowBuffer.baseAddress!
            for o in o0..<o1 {
                for i in 0..<inC {
                    let s = flipped ? g + (i * ci + o) * 9 : g + (o * ci + i) * 9
                    @inline(__always) func at(_ t: Int) -> Float { flipped ? s[8 - t] : s[t] }
                    let dst = row + i
                    // (G g) rows r = 0..3, each a 3-vector (t0, t1, t2); then (G g) Gᵀ row r = (t0, ½(t0+t1+t2), ½(t0−t1+t2), t2).
                    for r in 0..<4 {
                        var t0: Float, t1: Float, t2: Float
                        switch r {
                        case 0: t0 = at(0); t1 = at(1); t2 = at(2)
                        case 1: t0 = 0.5 * (at(0) + at(3) + at(6)); t1 = 0.5 * (at(1) + at(4) + at(7)); t2 = 0.5 * (at(2) + at(5) + at(8))
                        case 2: t0 = 0.5 * (at(0) - at(3) + at(6)); t1 = 0.5 * (at(1) - at(4) + at(7)); t2 = 0.5 * (at(2) - at(5) + at(8))
                        default: t0 = at(6); t1 = at(7); t2 = at(8)
                        }
                        dst[(4 * r + 0) * rs] = t0
                        dst[(4 * r + 1) * rs] = 0.5 * (t0 + t1 + t2)
                        dst[(4 * r + 2) * rs] = 0.5 * (t0 - t1 + t2)
                        dst[(4 * r + 3) * rs] = t2
                    }
                }
                for xi in 0..<16 { (u + xi * plane + o * inC).update(from: row + xi * rs, count: inC) }
            }
        }
    }
}

/// y (outC, n, h, w) = conv3×3/1/1(x (inC, n, h, w)) with transformed weights u (16, outC, inC), plus bias
/// (outC) when given. A block's V and M (per worker) take about `budget` floats, but a block holds at
/// least `minTiles` tiles (fewer make the 16 GEMMs re-read U, 16·Co·Ci floats, for too little work) and
/// at least one image.
func winogradConv(_ x: UnsafePointer<Float>, inC: Int, n: Int, h: Int, w: Int,
                  _ u: UnsafePointer<Float>, outC: Int, bias: UnsafePointer<Float>?,
                  _ y: UnsafeMutablePointer<Float>, workspace: Workspace, budget: Int, minTiles: Int) {
    let th = (h + 1) / 2, tw = (w + 1) / 2, tilesPerImage = th * tw, hw = h * w
    let plan = WinogradBlocks(n: n, tilesPerImage: tilesPerImage, floatsPerTile: 16 * (inC + outC),
                              budget: budget, minTiles: minTiles)
    let imagesPerBlock = plan.imagesPerBlock, blocks = plan.blocks
    let tb = imagesPerBlock * tilesPerImage
    let half = tw + 1                       // deinterleaved columns: odd x = 2j − 1 and even x = 2j, j = 0...tw
    let perWorker = 16 * (inC * tb + planePad) + 16 * (outC * tb + planePad) + 2 * h * half + half + 4 * tw
    let ws = workspace.buffer(perWorker * plan.workers)
    WorkerPool.shared.run(plan.workers) { p in
        let v = ws + p * perWorker, m = v + 16 * (inC * tb + planePad)
        let odd = m + 16 * (outC * tb + planePad), even = odd + h * half, zeros = even + h * half
        let ev0 = zeros + half, od0 = ev0 + tw, ev1 = od0 + tw, od1 = ev1 + tw
        zeros.update(repeating: 0, count: half)
        for blk in Swift.stride(from: p, to: blocks, by: plan.workers) {
            let i0 = blk * imagesPerBlock, i1 = min(n, i0 + imagesPerBlock), tc = (i1 - i0) * tilesPerImage
            let vs = inC * tc + planePad, ms = outC * tc + planePad   // plane strides of V and M
            // V = Bᵀ d B. Each image plane is first split into its odd and even columns (a tile's four columns
            // are odd[j], even[j], odd[j+1], even[j+1]), so that both passes run over contiguous memory.
            for c in 0..<inC {
                for img in i0..<i1 {
                    let src = x + (c * n + img) * hw
                    for yy in 0..<h {
                        let r = src + yy * w, o = odd + yy * half, e = even + yy * half
                        o[0] = 0
                        var j = 0
                        while 2 * j + 8 <= w {   // x = 2j ... 2j+7: even lanes → e[j...], odd lanes → o[j+1...]
                            let d = load8(r + 2 * j)
                            store4(d.evenHalf, e + j); store4(d.oddHalf, o + j + 1)
                            j += 4
                        }
                        while j < half {
                            e[j] = 2 * j < w ? r[2 * j] : 0
                            if j + 1 < half { o[j + 1] = 2 * j + 1 < w ? r[2 * j + 1] : 0 }
                            j += 1
                        }
                    }
                    for ty in 0..<th {
                        let y0 = 2 * ty - 1
                        @inline(__always) func rows(_ r: Int) -> (UnsafePointer<Float>, UnsafePointer<Float>) {
                            let yy = y0 + r
                            return yy >= 0 && yy < h ? (UnsafePointer(odd + yy * half), UnsafePointer(even + yy * half))
                                                     : (UnsafePointer(zeros), UnsafePointer(zeros))
                        }
                        let (o0, e0) = rows(0), (o1, e1) = rows(1), (o2, e2) = rows(2), (o3, e3) = rows(3)
                        let t = (img - i0) * tilesPerImage + ty * tw
                        // Row r of Bᵀ d is a + sign·b over two input rows; then its four columns.
                        @inline(__always) func tileRow(_ r: Int, _ oa: UnsafePointer<Float>, _ ea: UnsafePointer<Float>,
                                                       _ ob: UnsafePointer<Float>, _ eb: UnsafePointer<Float>, _ sign: Float) {
                            let c0 = v + (4 * r + 0) * vs + c * tc + t, c1 = v + (4 * r + 1) * vs + c * tc + t
                            let c2 = v + (4 * r + 2) * vs + c * tc + t, c3 = v + (4 * r + 3) * vs + c * tc + t
                            var tx = 0
                            while tx + 4 <= tw {
                                let s0 = load4(oa + tx) + sign * load4(ob + tx), s1 = load4(ea + tx) + sign * load4(eb + tx)
                                let s2 = load4(oa + tx + 1) + sign * load4(ob + tx + 1)
                                let s3 = load4(ea + tx + 1) + sign * load4(eb + tx + 1)
                                store4(s0 - s2, c0 + tx); store4(s1 + s2, c1 + tx); store4(s2 - s1, c2 + tx); store4(s1 - s3, c3 + tx)
                                tx += 4
                            }
                            while tx < tw {
                                let s0 = oa[tx] + sign * ob[tx], s1 = ea[tx] + sign * eb[tx]
                                let s2 = oa[tx + 1] + sign * ob[tx + 1], s3 = ea[tx + 1] + sign * eb[tx + 1]
                                c0[tx] = s0 - s2; c1[tx] = s1 + s2; c2[tx] = s2 - s1; c3[tx] = s1 - s3
                                tx += 1
                            }
                        }
                        tileRow(0, o0, e0, o2, e2, -1)   // d0 − d2
                        tileRow(1, o1, e1, o2, e2, 1)    // d1 + d2
                        tileRow(2, o2, e2, o1, e1, -1)   // d2 − d1
                        tileRow(3, o1, e1, o3, e3, -1)   // d1 − d3
                    }
                }
            }
            // M[ξ] = U[ξ] · V[ξ]
            for xi in 0..<16 {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outC), Int32(tc), Int32(inC), 1,
                            u + xi * outC * inC, Int32(inC), v + xi * vs, Int32(tc), 0, m + xi * ms, Int32(tc))
            }
            // y tile = Aᵀ M A (+ bias), per output channel and row of tiles, cropped at odd edges.
            for k in 0..<outC {
                let b = bias?[k] ?? 0
                let mk = m + k * tc, xs = ms
                for img in i0..<i1 {
                    let dst = y + (k * n + img) * hw
                    for ty in 0..<th {
                        let q = mk + (img - i0) * tilesPerImage + ty * tw
                        let q0 = q, q1 = q + xs, q2 = q + 2 * xs, q3 = q + 3 * xs
                        let q4 = q + 4 * xs, q5 = q + 5 * xs, q6 = q + 6 * xs, q7 = q + 7 * xs
                        let q8 = q + 8 * xs, q9 = q + 9 * xs, q10 = q + 10 * xs, q11 = q + 11 * xs
                        let q12 = q + 12 * xs, q13 = q + 13 * xs, q14 = q + 14 * xs, q15 = q + 15 * xs
                        // Aᵀ M: two rows of 4, then · A: even and odd output columns of the two rows
                        var tx = 0
                        while tx + 4 <= tw {
                            let m4 = load4(q4 + tx), m5 = load4(q5 + tx), m6 = load4(q6 + tx), m7 = load4(q7 + tx)
                            let m8 = load4(q8 + tx), m9 = load4(q9 + tx), m10 = load4(q10 + tx), m11 = load4(q11 + tx)
                            let a0 = load4(q0 + tx) + m4 + m8, a1 = load4(q1 + tx) + m5 + m9
                            let a2 = load4(q2 + tx) + m6 + m10, a3 = load4(q3 + tx) + m7 + m11
                            let b0 = m4 - m8 - load4(q12 + tx), b1 = m5 - m9 - load4(q13 + tx)
                            let b2 = m6 - m10 - load4(q14 + tx), b3 = m7 - m11 - load4(q15 + tx)
                            store4(a0 + a1 + a2 + b, ev0 + tx); store4(a1 - a2 - a3 + b, od0 + tx)
                            store4(b0 + b1 + b2 + b, ev1 + tx); store4(b1 - b2 - b3 + b, od1 + tx)
                            tx += 4
                        }
                        while tx < tw {
                            let a0 = q0[tx] + q4[tx] + q8[tx], a1 = q1[tx] + q5[tx] + q9[tx]
                            let a2 = q2[tx] + q6[tx] + q10[tx], a3 = q3[tx] + q7[tx] + q11[tx]
                            let b0 = q4[tx] - q8[tx] - q12[tx], b1 = q5[tx] - q9[tx] - q13[tx]
                            let b2 = q6[tx] - q10[tx] - q14[tx], b3 = q7[tx] - q11[tx] - q15[tx]
                            ev0[tx] = a0 + a1 + a2 + b; od0[tx] = a1 - a2 - a3 + b
                            ev1[tx] = b0 + b1 + b2 + b; od1[tx] = b1 - b2 - b3 + b
                            tx += 1
                        }
                        let row0 = dst + 2 * ty * w
                        interleave(ev0, od0, into: row0, count: w)
                        if 2 * ty + 1 < h { interleave(ev1, od1, into: row0 + w, count: w) }
                    }
                }
            }
        }
    }
}

/// dst[2j] = even[j], dst[2j+1] = odd[j], for the first `count` entries of dst.
@inline(__always) private func interleave(_ even: UnsafePointer<Float>, _ odd: UnsafePointer<Float>,
                                          into dst: UnsafeMutablePointer<Float>, count: Int) {
    var x = 0
    while x + 8 <= count {
        let e = load4(even + x / 2), o = load4(odd + x / 2)
        UnsafeMutableRawPointer(dst + x).storeBytes(of: SIMD8(e[0], o[0], e[1], o[1], e[2], o[2], e[3], o[3]), as: SIMD8<Float>.self)
        x += 8
    }
    while x < count { dst[x] = x & 1 == 0 ? even[x >> 1] : odd[x >> 1]; x += 1 }
}
