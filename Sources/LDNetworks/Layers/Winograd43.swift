import LDKernels
import LDRecords
import LDData

// Winograd F(4×4, 3×3) for 3×3 stride-1 pad-1 convolutions on channel-major activations (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016): 6×6 input tiles at a 4-pixel step give 4×4
// output tiles for 36 multiplies per (in, out) channel pair instead of 144, done as 36 independent GEMMs
// over the tiles of a block of images: a quarter of im2col's GEMM work, at the price of heavier transforms
// and larger rounding (the transforms scale by up to 8; errors stay near 1e-6 of the output's magnitude in
// float32, below what training notices).
//
//   U[ξ] (Co, Ci) = (G g Gᵀ)[ξ]        weights; ξ = 6·row + col of the 6×6 transformed tile
//   V[ξ] (Ci, T)  = (Bᵀ d B)[ξ]        input tiles: 6×6 at a 4-pixel step from (−1, −1), zero outside
//   M[ξ] (Co, T)  = U[ξ] · V[ξ]
//   y tile (4×4)  = Aᵀ M A, cropped at the edges.
//
// The input gradient of such a convolution is itself a 3×3 stride-1 pad-1 convolution of dy with the
// weights transposed (Ci ↔ Co) and rotated by 180° (`flipped`), so the same routine computes dx.
//
// Speed comes from locality: the batch is cut into blocks of whole images small enough that a block's V
// and M (36·(Ci + Co) floats per tile) stay in the caches, each worker thread takes whole blocks
// (transform in, 36 single-threaded GEMMs, transform out), and the transforms run along rows of tiles
// over contiguous memory so that the compiler vectorises them.
//
//   Bᵀ = [4  0 −5  0  1  0]     G = [ 1/4     0     0 ]     Aᵀ = [1  1  1  1  1  0]
//        [0 −4 −4  1  1  0]         [−1/6  −1/6  −1/6 ]          [0  1 −1  2 −2  0]
//        [0  4 −4 −1  1  0]         [−1/6   1/6  −1/6 ]          [0  1  1  4  4  0]
//        [0 −2 −1  2  1  0]         [1/24  1/12   1/6 ]          [0  1 −1  8 −8  1]
//        [0  2 −1 −2  1  0]         [1/24 −1/12   1/6 ]
//        [0  4  0 −5  0  1]         [ 0      0     1  ]
//
// A tile's six columns x0 − 1 ... x0 + 4 (x0 = 4·tx) are the four phases of a row, P_k[j] = row[4j + k − 1]:
// P0[tx], P1[tx], P2[tx], P3[tx], P0[tx+1], P1[tx+1], so every pass runs over contiguous memory.

/// u (36, outC, inC) from weights (co, ci, 3, 3). With `flipped`, the result is for the input-gradient
/// convolution: outC = ci, inC = co, g'[c][k] = rot180(g[k][c]).
func winograd43Weights(_ g: UnsafePointer<Float>, co: Int, ci: Int, flipped: Bool, into u: UnsafeMutablePointer<Float>) {
    let outC = flipped ? ci : co, inC = flipped ? co : ci
    let plane = outC * inC
    let rs = inC + planePad   // row stride: runs 2^k floats apart would share two L1 sets
    Engine.parallelRange(outC, grain: 8) { o0, o1 in
        // One output row o at a time: the 9 taps of its inC kernels are gathered into 9 runs, transformed four
        // kernels at a time into 36 runs, and each run is copied to its plane.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 45 * rs) { buffer in
            let taps = buffer.baseAddress!, row = taps + 9 * rs
            for o in o0..<o1 {
                for i in 0..<inC {
                    let s = flipped ? g + (i * ci + o) * 9 : g + (o * ci + i) * 9
                    for t in 0..<9 { taps[t * rs + i] = flipped ? s[8 - t] : s[t] }
                }
                @inline(__always) func transform<T: WinogradLane>(_ i: Int, _ load: (UnsafeMutablePointer<Float>) -> T,
                                                                  _ store: (T, UnsafeMutablePointer<Float>) -> Void) {
                    @inline(__always) func at(_ r: Int, _ c: Int) -> T { load(taps + (3 * r + c) * rs + i) }
                    // G g: each kernel column becomes 6 rows; then each of those rows times Gᵀ
                    let c0 = gColumn(at(0, 0), at(1, 0), at(2, 0)), c1 = gColumn(at(0, 1), at(1, 1), at(2, 1))
                    let c2 = gColumn(at(0, 2), at(1, 2), at(2, 2))
                    @inline(__always) func put(_ r: Int, _ a: T, _ b: T, _ c: T) {
                        let t = gColumn(a, b, c), d = row + 6 * r * rs + i
                        store(t.0, d); store(t.1, d + rs); store(t.2, d + 2 * rs)
                        store(t.3, d + 3 * rs); store(t.4, d + 4 * rs); store(t.5, d + 5 * rs)
                    }
                    put(0, c0.0, c1.0, c2.0); put(1, c0.1, c1.1, c2.1); put(2, c0.2, c1.2, c2.2)
                    put(3, c0.3, c1.3, c2.3); put(4, c0.4, c1.4, c2.4); put(5, c0.5, c1.5, c2.5)
                }
                var i = 0
                while i + 4 <= inC { transform(i, { load4($0) }, { store4($0, $1) }); i += 4 }
                while i < inC { transform(i, { $0[0] }, { $1[0] = $0 }); i += 1 }
                for xi in 0..<36 { (u + xi * plane + o * inC).update(from: row + xi * rs, count: inC) }
            }
        }
    }
}

/// G · (a, b, c) for F(4×4, 3×3): (a/4, −(a+b+c)/6, −(a−b+c)/6, a/24 + b/12 + c/6, a/24 − b/12 + c/6, c),
/// with reciprocals (a division per entry made the weight transform cost more than the convolution).
@inline(__always) private func gColumn<T: WinogradLane>(_ a: T, _ b: T, _ c: T) -> (T, T, T, T, T, T) {
    let quarter: T = .splat(0.25), minusSixth: T = .splat(-1.0 / 6), sixth: T = .splat(1.0 / 6)
    let twelfth: T = .splat(1.0 / 12), twentyFourth: T = .splat(1.0 / 24)
    let ac = a * twentyFourth + c * sixth, b12 = b * twelfth
    return (a * quarter, (a + b + c) * minusSixth, (a - b + c) * minusSixth, ac + b12, ac - b12, c)
}

/// Gᵀ · (z0 ... z5) for F(4×4, 3×3).
@inline(__always) private func gTransposed<T: WinogradLane>(_ z0: T, _ z1: T, _ z2: T, _ z3: T, _ z4: T, _ z5: T) -> (T, T, T) {
    let quarter: T = .splat(0.25), sixth: T = .splat(1.0 / 6), twelfth: T = .splat(1.0 / 12), twentyFourth: T = .splat(1.0 / 24)
    let s12 = z1 + z2, s34 = z3 + z4
    return (z0 * quarter - s12 * sixth + s34 * twentyFourth, (z2 - z1) * sixth + (z3 - z4) * twelfth, (s34 - s12) * sixth + z5)
}

/// y (outC, n, h, w) = conv3×3/1/1(x (inC, n, h, w)) with u (36, outC, inC) from `winograd43Weights`, plus
/// bias when given, then `epilogue` per output channel. Two schedules, with the same arithmetic per tile:
/// - each worker takes whole blocks of images (`WinogradBlocks`) and runs them alone: input tiles, the 36
///   GEMMs, the output, with no waiting between stages;
/// - where the transformed weights are larger than a worker's block (U's 36·outC·inC floats against the
///   block's V and M: the late, wide, small-plane layers), each worker taking its own block would read all of U
///   once per block, so every worker reading U and the workers together streaming it from memory twice or more
///   (ResNet-18's last stage at 32 px: 38 MB per convolution). There all workers take each block together: the
///   input tiles split by input channel, then each worker computes its own rows of every M[ξ] (its slice of
///   U, read once) and turns them into its output channels while they are in its cache.
func winograd43Conv(_ x: UnsafePointer<Float>, inC: Int, n: Int, h: Int, w: Int,
                    _ u: UnsafePointer<Float>, outC: Int, bias: UnsafePointer<Float>?,
                    _ y: UnsafeMutablePointer<Float>, workspace: Workspace, budget: Int, minTiles: Int,
                    epilogue: ConvEpilogue? = nil) {
    let th = (h + 3) / 4, tw = (w + 3) / 4, tilesPerImage = th * tw
    let plan = WinogradBlocks(n: n, tilesPerImage: tilesPerImage, floatsPerTile: 36 * (inC + outC),
                              budget: budget, minTiles: minTiles)
    let tb = plan.imagesPerBlock * tilesPerImage
    let scratchFloats = winograd43ScratchFloats(h: h, w: w)
    if plan.workers > 1 && outC * inC > (inC + outC) * tb {
        winograd43ConvShared(x, inC: inC, n: n, h: h, w: w, u, outC: outC, bias: bias, y, workspace: workspace,
                             budget: budget, minTiles: minTiles, epilogue: epilogue)
        return
    }
    let perWorker = 36 * (inC * tb + planePad) + 36 * (outC * tb + planePad) + scratchFloats
    let ws = workspace.buffer(perWorker * plan.workers)
    WorkerPool.shared.run(plan.workers) { p in
        let v = ws + p * perWorker, m = v + 36 * (inC * tb + planePad)
        let scratch = m + 36 * (outC * tb + planePad)   // the transforms' scratch
        for blk in Swift.stride(from: p, to: plan.blocks, by: plan.workers) {
            let i0 = blk * plan.imagesPerBlock, i1 = min(n, i0 + plan.imagesPerBlock), tc = (i1 - i0) * tilesPerImage
            let vs = inC * tc + planePad, ms = outC * tc + planePad   // plane strides of V and M
            for c in 0..<inC {
                winograd43InputTiles(x, c: c, n: n, h: h, w: w, i0: i0, i1: i1, v + c * tc, vs: vs, scratch: scratch)
            }
            // M[ξ] = U[ξ] · V[ξ]
            for xi in 0..<36 {
                sgemm(outC, tc, inC, u + xi * outC * inC, v + xi * vs, m + xi * ms, split: false)
            }
            for k in 0..<outC {
                winograd43Output(m, ms: ms, k: k, bias: bias?[k] ?? 0, y, n: n, h: h, w: w, i0: i0, i1: i1,
                                 scratch: scratch, epilogue: epilogue)
            }
        }
    }
}

/// `winograd43Conv`'s second schedule: blocks as for one worker, each run by all workers together.
private func winograd43ConvShared(_ x: UnsafePointer<Float>, inC: Int, n: Int, h: Int, w: Int,
                                  _ u: UnsafePointer<Float>, outC: Int, bias: UnsafePointer<Float>?,
                                  _ y: UnsafeMutablePointer<Float>, workspace: Workspace, budget: Int, minTiles: Int,
                                  epilogue: ConvEpilogue?) {
    let tw = (w + 3) / 4
    let shared = SharedWinogradBlocks(inC: inC, outC: outC, n: n, h: h, w: w, workspace: workspace, budget: budget, minTiles: minTiles)
    let parts = shared.parts, v = shared.v, m = shared.m, scratch = shared.scratch, scratchFloats = shared.scratchFloats
    // worker p's output channels: a multiple of 16 rows each (OpenBLAS's row panels) but the last
    @inline(__always) func row(_ p: Int) -> Int { p == parts ? outC : min(outC, (outC * p / parts) & ~15) }
    for blk in 0..<shared.plan.blocks {
        let (i0, i1, tc) = shared.block(blk)
        let vs = inC * tc + planePad, ms = outC * tc + planePad
        WorkerPool.shared.run(parts) { p in shared.inputTiles(x, inC: inC, h: h, w: w, i0: i0, i1: i1, worker: p) }
        // the narrow output's last vector reads up to three floats past a channel's tiles (the next channel's,
        // perhaps another worker's rows): then the products all finish first
        let apart = tw < 4 && tc % 4 != 0
        WorkerPool.shared.run(parts) { p in
            let r0 = row(p), r1 = row(p + 1), sp = scratch + p * scratchFloats
            guard r1 > r0 else { return }
            for xi in 0..<36 {   // rows r0..<r1 of M[ξ] = U[ξ] · V[ξ]
                sgemm(r1 - r0, tc, inC, u + (xi * outC + r0) * inC, v + xi * vs, m + xi * ms + r0 * tc, split: false)
            }
            if apart { return }
            for k in r0..<r1 {
                winograd43Output(m, ms: ms, k: k, bias: bias?[k] ?? 0, y, n: n, h: h, w: w, i0: i0, i1: i1,
                                 scratch: sp, epilogue: epilogue)
            }
        }
        if apart {
            WorkerPool.shared.run(parts) { p in
                for k in row(p)..<row(p + 1) {
                    winograd43Output(m, ms: ms, k: k, bias: bias?[k] ?? 0, y, n: n, h: h, w: w, i0: i0, i1: i1,
                                     scratch: scratch + p * scratchFloats, epilogue: epilogue)
                }
            }
        }
    }
}

/// y's channel k for the images i0..<i1 = Aᵀ M A + bias (M's tiles of this block, plane stride `ms`), then
/// `epilogue`: Aᵀ over the six rows of each column, then over the columns; the four output columns of a tile
/// are four phases of the output row, interleaved at the end. Planes narrower than four tiles take their
/// vector lanes from consecutive tiles instead. `scratch`: a worker's `winograd43ScratchFloats`.
@inline(__always)
private func winograd43Output(_ m: UnsafeMutablePointer<Float>, ms: Int, k: Int, bias bk: Float,
                              _ y: UnsafeMutablePointer<Float>, n: Int, h: Int, w: Int, i0: Int, i1: Int,
                              scratch outPh: UnsafeMutablePointer<Float>, epilogue: ConvEpilogue?) {
    let th = (h + 3) / 4, tw = (w + 3) / 4, tilesPerImage = th * tw, hw = h * w, tc = (i1 - i0) * tilesPerImage
    if tw < 4 {
        winograd43NarrowOutput(m + k * tc, ms: ms, count: tc, bias: bk, y + (k * n + i0) * hw, h: h, w: w)
        epilogue?.apply(channel: k, y, from: (k * n + i0) * hw, count: (i1 - i0) * hw)
        return
    }
    for img in i0..<i1 {
        let dst = y + (k * n + img) * hw
        for ty in 0..<th {
            let q = m + k * tc + (img - i0) * tilesPerImage + ty * tw
            // tiles tx... of this row (4 at a time with SIMD4 lanes, then one at a time)
            @inline(__always) func tiles<T: WinogradLane>(_ tx: Int, _ load: (UnsafeMutablePointer<Float>) -> T,
                                                          _ store: (T, UnsafeMutablePointer<Float>) -> Void) {
                @inline(__always) func col(_ j: Int) -> (T, T, T, T) {
                    at4(load(q + j * ms + tx), load(q + (6 + j) * ms + tx), load(q + (12 + j) * ms + tx),
                        load(q + (18 + j) * ms + tx), load(q + (24 + j) * ms + tx), load(q + (30 + j) * ms + tx))
                }
                let c0 = col(0), c1 = col(1), c2 = col(2), c3 = col(3), c4 = col(4), c5 = col(5)
                let b: T = .splat(bk)
                @inline(__always) func emit(_ r: Int, _ e: (T, T, T, T)) {
                    let o = outPh + r * 4 * tw + tx
                    store(e.0 + b, o); store(e.1 + b, o + tw); store(e.2 + b, o + 2 * tw); store(e.3 + b, o + 3 * tw)
                }
                emit(0, at4(c0.0, c1.0, c2.0, c3.0, c4.0, c5.0)); emit(1, at4(c0.1, c1.1, c2.1, c3.1, c4.1, c5.1))
                emit(2, at4(c0.2, c1.2, c2.2, c3.2, c4.2, c5.2)); emit(3, at4(c0.3, c1.3, c2.3, c3.3, c4.3, c5.3))
            }
            var tx = 0
            while tx + 4 <= tw { tiles(tx, { load4($0) }, { store4($0, $1) }); tx += 4 }
            while tx < tw { tiles(tx, { $0[0] }, { $1[0] = $0 }); tx += 1 }
            for r in 0..<4 where 4 * ty + r < h {
                let o = outPh + r * 4 * tw
                interleave4(o, o + tw, o + 2 * tw, o + 3 * tw, into: dst + (4 * ty + r) * w, count: w)
            }
        }
    }
    epilogue?.apply(channel: k, y, from: (k * n + i0) * hw, count: (i1 - i0) * hw)
}

/// What an inference convolution does to each output channel's planes right after writing them, while they
/// are still in cache, instead of a BatchNorm layer (and a residual block's addition) making a pass of their
/// own over the whole output: y = y·scale[k] + shift[k], plus `residual` (y's layout), then ReLU. The same
/// operations in the same order as those layers, so the values are the same (up to the sign of a zero).
struct ConvEpilogue {
    let scale: UnsafePointer<Float>, shift: UnsafePointer<Float>
    let residual: UnsafePointer<Float>?
    let relu: Bool

    /// Applies channel k's affine map (and the residual, and ReLU) to y[from ..< from + count].
    @inline(__always)
    func apply(channel k: Int, _ y: UnsafeMutablePointer<Float>, from: Int, count: Int) {
        let a = scale[k], b = shift[k], va = V16(repeating: a), vb = V16(repeating: b)
        let p = y + from, r = residual.map { $0 + from }
        var i = 0
        while i + 16 <= count {
            var v = load16(p + i) * va + vb
            if let r { v += load16(r + i) }
            if relu { v = v.replacing(with: 0, where: v .< 0) }
            store16(v, p + i)
            i += 16
        }
        while i < count {
            var v = p[i] * a + b
            if let r { v += r[i] }
            p[i] = relu ? (v > 0 ? v : 0) : v
            i += 1
        }
    }
}

/// y = Aᵀ M A + bias for `count` consecutive tiles of one output channel (tiles numbered from 0 at the image
/// `y` points at, row by row) on planes less than four tiles wide, where a row of tiles would leave most of a
/// vector empty: the four lanes take four consecutive tiles (of one row, the next row or the next image),
/// and each lane's 4×4 block is written where its tile lies, clipped at the plane's edge. `q` points at the
/// channel's tiles in plane ξ = 0 of M, `ms` is the stride between ξ planes; the last vector may read up to
/// three floats past the channel's tiles (M's planes are padded) and drops those lanes.
private func winograd43NarrowOutput(_ q: UnsafePointer<Float>, ms: Int, count: Int, bias: Float,
                                    _ y: UnsafeMutablePointer<Float>, h: Int, w: Int) {
    let tw = (w + 3) / 4, th = (h + 3) / 4, hw = h * w
    let b = SIMD4<Float>(repeating: bias)
    var img = 0, ty = 0, tx = 0   // where the next tile lies
    var t = 0
    while t < count {
        @inline(__always) func col(_ j: Int) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
            at4(load4(q + j * ms + t), load4(q + (6 + j) * ms + t), load4(q + (12 + j) * ms + t),
                load4(q + (18 + j) * ms + t), load4(q + (24 + j) * ms + t), load4(q + (30 + j) * ms + t))
        }
        let c0 = col(0), c1 = col(1), c2 = col(2), c3 = col(3), c4 = col(4), c5 = col(5)
        @inline(__always) func row(_ e: (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>))
            -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) { (e.0 + b, e.1 + b, e.2 + b, e.3 + b) }
        let r0 = row(at4(c0.0, c1.0, c2.0, c3.0, c4.0, c5.0)), r1 = row(at4(c0.1, c1.1, c2.1, c3.1, c4.1, c5.1))
        let r2 = row(at4(c0.2, c1.2, c2.2, c3.2, c4.2, c5.2)), r3 = row(at4(c0.3, c1.3, c2.3, c3.3, c4.3, c5.3))
        for l in 0..<min(4, count - t) {
            let dst = y + img * hw + 4 * ty * w + 4 * tx
            let rows = min(4, h - 4 * ty), cols = min(4, w - 4 * tx)
            @inline(__always) func put(_ r: Int, _ e: (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>)) {
                guard r < rows else { return }
                let o = dst + r * w
                if cols == 4 {
                    store4(SIMD4(e.0[l], e.1[l], e.2[l], e.3[l]), o)
                } else {
                    o[0] = e.0[l]
                    if cols > 1 { o[1] = e.1[l] }
                    if cols > 2 { o[2] = e.2[l] }
                }
            }
            put(0, r0); put(1, r1); put(2, r2); put(3, r3)
            tx += 1
            if tx == tw { tx = 0; ty += 1; if ty == th { ty = 0; img += 1 } }
        }
        t += 4
    }
}

/// Floats of scratch one worker needs for the F(4×4) tile transforms of (h, w) planes.
func winograd43ScratchFloats(h: Int, w: Int) -> Int {
    let tw = (w + 3) / 4, len = tw + 1
    return max(4 * h * len + 4 * len + 24 * len, 16 * tw)   // input tiles (the gradient tiles need less), output rows
}

/// Bᵀ over six rows of `count` floats: o + r·stride = (Bᵀ (d0 ... d5))[r] for r < 6, four floats at a time.
@inline(__always)
private func rowTransform(_ d0: UnsafePointer<Float>, _ d1: UnsafePointer<Float>, _ d2: UnsafePointer<Float>,
                          _ d3: UnsafePointer<Float>, _ d4: UnsafePointer<Float>, _ d5: UnsafePointer<Float>,
                          _ o: UnsafeMutablePointer<Float>, stride: Int, count: Int) {
    let o0 = o, o1 = o + stride, o2 = o + 2 * stride, o3 = o + 3 * stride, o4 = o + 4 * stride, o5 = o + 5 * stride
    var q = 0
    while q + 4 <= count {
        let b = bt6(load4(d0 + q), load4(d1 + q), load4(d2 + q), load4(d3 + q), load4(d4 + q), load4(d5 + q))
        store4(b.0, o0 + q); store4(b.1, o1 + q); store4(b.2, o2 + q); store4(b.3, o3 + q); store4(b.4, o4 + q); store4(b.5, o5 + q)
        q += 4
    }
    while q < count {
        let b = bt6(d0[q], d1[q], d2[q], d3[q], d4[q], d5[q])
        o0[q] = b.0; o1[q] = b.1; o2[q] = b.2; o3[q] = b.3; o4[q] = b.4; o5[q] = b.5
        q += 1
    }
}

/// A over four rows of `count` floats: o + r·stride = (A (d0 ... d3))[r] for r < 6, four floats at a time.
@inline(__always)
private func rowTransform(_ d0: UnsafePointer<Float>, _ d1: UnsafePointer<Float>, _ d2: UnsafePointer<Float>,
                          _ d3: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, stride: Int, count: Int) {
    let o0 = o, o1 = o + stride, o2 = o + 2 * stride, o3 = o + 3 * stride, o4 = o + 4 * stride, o5 = o + 5 * stride
    var q = 0
    while q + 4 <= count {
        let a = a6(load4(d0 + q), load4(d1 + q), load4(d2 + q), load4(d3 + q))
        store4(a.0, o0 + q); store4(a.1, o1 + q); store4(a.2, o2 + q); store4(a.3, o3 + q); store4(a.4, o4 + q); store4(a.5, o5 + q)
        q += 4
    }
    while q < count {
        let a = a6(d0[q], d1[q], d2[q], d3[q])
        o0[q] = a.0; o1[q] = a.1; o2[q] = a.2; o3[q] = a.3; o4[q] = a.4; o5[q] = a.5
        q += 1
    }
}

/// The four phases of one row of w floats, p[k·count + j] = row[4j + k + offset] for j < count (0 outside
/// the row), offset −1 when `shifted` (the input tiles: a tile's six columns start at x0 − 1) or 0 (the
/// gradient tiles). Sixteen pixels at a time, then one tile column at a time.
@inline(__always)
private func splitPhases(_ r: UnsafePointer<Float>, w: Int, count: Int, shifted: Bool, _ p: UnsafeMutablePointer<Float>) {
    let p0 = p, p1 = p + count, p2 = p + 2 * count, p3 = p + 3 * count
    var j = 0
    while 4 * j + 16 <= w {   // x = 4j ... 4j+15; shifted: P1, P2, P3 at j...j+3 and P0 at j+1...j+4
        let d = load16(r + 4 * j)
        let e = d.evenHalf, o = d.oddHalf
        if shifted {
            store4(e.evenHalf, p1 + j); store4(o.evenHalf, p2 + j); store4(e.oddHalf, p3 + j); store4(o.oddHalf, p0 + j + 1)
        } else {
            store4(e.evenHalf, p0 + j); store4(o.evenHalf, p1 + j); store4(e.oddHalf, p2 + j); store4(o.oddHalf, p3 + j)
        }
        j += 4
    }
    let off = shifted ? -1 : 0
    if shifted { p0[0] = 0 }   // x = −1: padding (the vector loop starts P0 at j + 1)
    while j < count {
        @inline(__always) func at(_ x: Int) -> Float { x >= 0 && x < w ? r[x] : 0 }
        p0[j] = at(4 * j + off); p1[j] = at(4 * j + 1 + off); p2[j] = at(4 * j + 2 + off); p3[j] = at(4 * j + 3 + off)
        j += 1
    }
}

/// V = Bᵀ d B for every tile of one channel plane `c` of the images i0..<i1 (tiles numbered from 0 at image
/// i0, row by row): `v` points at this channel's row of plane ξ = 0, `vs` is the stride between ξ planes.
func winograd43InputTiles(_ x: UnsafePointer<Float>, c: Int, n: Int, h: Int, w: Int, i0: Int, i1: Int,
                          _ v: UnsafeMutablePointer<Float>, vs: Int, scratch: UnsafeMutablePointer<Float>) {
    let th = (h + 3) / 4, tw = (w + 3) / 4, tilesPerImage = th * tw, hw = h * w, len = tw + 1
    let run = 4 * len                                    // a row's four phases, one after another
    let phases = scratch                                 // (h, 4, len): the plane split into its 4 phases
    let zeros = phases + h * run, rt = zeros + run       // rt: (6 rows, 4 phases, len) after Bᵀ over rows
    zeros.update(repeating: 0, count: run)
        for img in i0..<i1 {
            let src = x + (c * n + img) * hw
            for yy in 0..<h { splitPhases(src + yy * w, w: w, count: len, shifted: true, phases + yy * run) }
            for ty in 0..<th {
                let y0 = 4 * ty - 1
                @inline(__always) func row(_ r: Int) -> UnsafePointer<Float> {
                    let yy = y0 + r
                    return yy >= 0 && yy < h ? UnsafePointer(phases + yy * run) : UnsafePointer(zeros)
                }
                // Bᵀ over the six rows, all four phases in one run (narrow planes get whole vectors too)
                rowTransform(row(0), row(1), row(2), row(3), row(4), row(5), rt, stride: run, count: run)
                // Bᵀ over the six columns of every tile of the row
                let t = (img - i0) * tilesPerImage + ty * tw
                for i in 0..<6 {
                    let a = rt + i * 4 * len, ph0 = a, ph1 = a + len, ph2 = a + 2 * len, ph3 = a + 3 * len
                    let dst = v + 6 * i * vs + t, ps = vs
                    var tx = 0
                    while tx + 4 <= tw {
                        let b = bt6(load4(ph0 + tx), load4(ph1 + tx), load4(ph2 + tx), load4(ph3 + tx),
                                    load4(ph0 + tx + 1), load4(ph1 + tx + 1))
                        store4(b.0, dst + tx); store4(b.1, dst + ps + tx); store4(b.2, dst + 2 * ps + tx)
                        store4(b.3, dst + 3 * ps + tx); store4(b.4, dst + 4 * ps + tx); store4(b.5, dst + 5 * ps + tx)
                        tx += 4
                    }
                    while tx < tw {
                        let b = bt6(ph0[tx], ph1[tx], ph2[tx], ph3[tx], ph0[tx + 1], ph1[tx + 1])
                        dst[tx] = b.0; dst[ps + tx] = b.1; dst[2 * ps + tx] = b.2
                        dst[3 * ps + tx] = b.3; dst[4 * ps + tx] = b.4; dst[5 * ps + tx] = b.5
                        tx += 1
                    }
                }
            }
        }
}

/// Z = A dy Aᵀ (6×6) for every 4×4 tile of one channel plane `k` of dy (zero beyond the plane), for the
/// images i0..<i1, laid out as `winograd43InputTiles` lays out V. A = (Aᵀ)ᵀ maps a 4-vector to
/// (d0, d0+d1+d2+d3, d0−d1+d2−d3, d0+2d1+4d2+8d3, d0−2d1+4d2−8d3, d3).
func winograd43GradientTiles(_ g: UnsafePointer<Float>, k: Int, n: Int, h: Int, w: Int, i0: Int, i1: Int,
                             _ z: UnsafeMutablePointer<Float>, zs: Int, scratch: UnsafeMutablePointer<Float>) {
    let th = (h + 3) / 4, tw = (w + 3) / 4, tilesPerImage = th * tw, hw = h * w
    let run = 4 * tw                                   // a row's four phases, one after another
    let phases = scratch                               // (h, 4, tw): phase s holds columns 4j + s
    let zeros = phases + h * run, rt = zeros + run     // rt: (6 rows, 4 phases, tw) after A over rows
    zeros.update(repeating: 0, count: run)
    for img in i0..<i1 {
        let src = g + (k * n + img) * hw
        for yy in 0..<h { splitPhases(src + yy * w, w: w, count: tw, shifted: false, phases + yy * run) }
        for ty in 0..<th {
            @inline(__always) func row(_ r: Int) -> UnsafePointer<Float> {
                let yy = 4 * ty + r
                return yy < h ? UnsafePointer(phases + yy * run) : UnsafePointer(zeros)
            }
            // A over the four rows, all four phases in one run
            rowTransform(row(0), row(1), row(2), row(3), rt, stride: run, count: run)
            let t = (img - i0) * tilesPerImage + ty * tw
            for i in 0..<6 {
                let a = rt + i * 4 * tw, c0 = a, c1 = a + tw, c2 = a + 2 * tw, c3 = a + 3 * tw
                let dst = z + 6 * i * zs + t
                var tx = 0
                while tx + 4 <= tw {
                    let b = a6(load4(c0 + tx), load4(c1 + tx), load4(c2 + tx), load4(c3 + tx))
                    store4(b.0, dst + tx); store4(b.1, dst + zs + tx); store4(b.2, dst + 2 * zs + tx)
                    store4(b.3, dst + 3 * zs + tx); store4(b.4, dst + 4 * zs + tx); store4(b.5, dst + 5 * zs + tx)
                    tx += 4
                }
                while tx < tw {
                    let b = a6(c0[tx], c1[tx], c2[tx], c3[tx])
                    dst[tx] = b.0; dst[zs + tx] = b.1; dst[2 * zs + tx] = b.2
                    dst[3 * zs + tx] = b.3; dst[4 * zs + tx] = b.4; dst[5 * zs + tx] = b.5
                    tx += 1
                }
            }
        }
    }
}

/// dW (outC, inC, 3, 3) += the weight gradient of y = conv3×3/1/1(x) given dy, through F(4×4, 3×3):
/// dU[ξ] (outC × inC) = Σ over tiles of (A dy Aᵀ)[ξ] (Bᵀ d B)[ξ]ᵀ, one GEMM per ξ, then dW = Gᵀ dU G per
/// channel pair. Blocks of images run one after another; within a block the workers split the channels
/// (transforms) and then the 36 GEMMs, so dU needs no per-worker copies.
func winograd43WeightGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, inC: Int, outC: Int, n: Int, h: Int, w: Int,
                              into dw: UnsafeMutablePointer<Float>, workspace: Workspace, budget: Int, minTiles: Int) {
    // all workers take each block together, so the blocks are cut as for one: each block reads and writes all
    // of dU once, and more blocks than the batch needs would only add passes over it
    let shared = SharedWinogradBlocks(inC: inC, outC: outC, n: n, h: h, w: w, workspace: workspace, budget: budget, minTiles: minTiles)
    let parts = shared.parts, v = shared.v, z = shared.m, scratch = shared.scratch, scratchFloats = shared.scratchFloats
    let plane = outC * inC
    // The transformed weights of the forward pass are no longer needed here, so dU takes their buffer.
    let du = workspace.weightBuffer(36 * plane)
    du.update(repeating: 0, count: 36 * plane)
    for blk in 0..<shared.plan.blocks {
        let (i0, i1, tc) = shared.block(blk)
        let vs = inC * tc + planePad, zs = outC * tc + planePad
        WorkerPool.shared.run(parts) { p in
            shared.inputTiles(x, inC: inC, h: h, w: w, i0: i0, i1: i1, worker: p)
            for k in (outC * p / parts)..<(outC * (p + 1) / parts) {
                winograd43GradientTiles(dy, k: k, n: n, h: h, w: w, i0: i0, i1: i1, z + k * tc, zs: zs,
                                        scratch: scratch + p * scratchFloats)
            }
        }
        // dU[ξ] (outC, inC) += Z[ξ] (outC, tc) · V[ξ]ᵀ (tc, inC)
        WorkerPool.shared.run(parts) { p in
            for xi in (36 * p / parts)..<(36 * (p + 1) / parts) {
                sgemm(transB: true, outC, inC, tc, z + xi * zs, v + xi * vs, beta: 1, du + xi * plane, split: false)
            }
        }
    }
    // dW[k][c] += Gᵀ dU[·][k][c] G, four input channels at a time
    let rs = inC + planePad
    Engine.parallelRange(outC, grain: 8) { k0, k1 in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 36 * rs + 9 * rs) { buffer in
            let row = buffer.baseAddress!, out = row + 36 * rs   // dU[·][k][·] as 36 runs; dW[k][·] as 9 runs
            for k in k0..<k1 {
                for xi in 0..<36 { (row + xi * rs).update(from: du + xi * plane + k * inC, count: inC) }
                @inline(__always) func transform<T: WinogradLane>(_ c: Int, _ load: (UnsafeMutablePointer<Float>) -> T,
                                                                  _ store: (T, UnsafeMutablePointer<Float>) -> Void) {
                    @inline(__always) func column(_ j: Int) -> (T, T, T) {
                        gTransposed(load(row + j * rs + c), load(row + (6 + j) * rs + c), load(row + (12 + j) * rs + c),
                                    load(row + (18 + j) * rs + c), load(row + (24 + j) * rs + c), load(row + (30 + j) * rs + c))
                    }
                    // Gᵀ over the rows of each column j, then over the columns
                    let t0 = column(0), t1 = column(1), t2 = column(2), t3 = column(3), t4 = column(4), t5 = column(5)
                    let r0 = gTransposed(t0.0, t1.0, t2.0, t3.0, t4.0, t5.0), r1 = gTransposed(t0.1, t1.1, t2.1, t3.1, t4.1, t5.1)
                    let r2 = gTransposed(t0.2, t1.2, t2.2, t3.2, t4.2, t5.2)
                    store(r0.0, out + c); store(r0.1, out + rs + c); store(r0.2, out + 2 * rs + c)
                    store(r1.0, out + 3 * rs + c); store(r1.1, out + 4 * rs + c); store(r1.2, out + 5 * rs + c)
                    store(r2.0, out + 6 * rs + c); store(r2.1, out + 7 * rs + c); store(r2.2, out + 8 * rs + c)
                }
                var c = 0
                while c + 4 <= inC { transform(c, { load4($0) }, { store4($0, $1) }); c += 4 }
                while c < inC { transform(c, { $0[0] }, { $1[0] = $0 }); c += 1 }
                let d = dw + k * inC * 9
                for c in 0..<inC { for t in 0..<9 { d[c * 9 + t] += out[t * rs + c] } }
            }
        }
    }
}

/// A · (d0 ... d3) for F(4×4, 3×3) (the transpose of the output transform Aᵀ).
@inline(__always) private func a6<T: WinogradLane>(_ d0: T, _ d1: T, _ d2: T, _ d3: T) -> (T, T, T, T, T, T) {
    let two: T = .splat(2), four: T = .splat(4), eight: T = .splat(8)
    let e = d0 + d2, o = d1 + d3, e4 = d0 + four * d2, o8 = two * d1 + eight * d3
    return (d0, e + o, e - o, e4 + o8, e4 - o8, d3)
}

/// Bᵀ · (d0 ... d5) for F(4×4, 3×3).
@inline(__always) private func bt6<T: WinogradLane>(_ d0: T, _ d1: T, _ d2: T, _ d3: T, _ d4: T, _ d5: T) -> (T, T, T, T, T, T) {
    let four: T = .splat(4), five: T = .splat(5), two: T = .splat(2)
    let a = d4 - d2, b = d3 - d1
    return (four * d0 - five * d2 + d4,
            d3 + d4 - four * (d1 + d2),
            four * (d1 - d2) + d4 - d3,
            a + two * b,
            a - two * b,
            four * d1 - five * d3 + d5)
}

/// Aᵀ · (m0 ... m5) for F(4×4, 3×3).
@inline(__always) private func at4<T: WinogradLane>(_ m0: T, _ m1: T, _ m2: T, _ m3: T, _ m4: T, _ m5: T) -> (T, T, T, T) {
    let two: T = .splat(2), four: T = .splat(4), eight: T = .splat(8)
    let s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4
    return (m0 + s12 + s34, d12 + two * d34, s12 + four * s34, d12 + eight * d34 + m5)
}

/// A float or a SIMD vector of floats, for transforms written once for both.
protocol WinogradLane {
    static func + (a: Self, b: Self) -> Self
    static func - (a: Self, b: Self) -> Self
    static func * (a: Self, b: Self) -> Self
    static func splat(_ x: Float) -> Self
}
extension Float: WinogradLane { @inline(__always) static func splat(_ x: Float) -> Float { x } }
extension SIMD4: WinogradLane where Scalar == Float {
    @inline(__always) static func splat(_ x: Float) -> SIMD4<Float> { SIMD4(repeating: x) }
}

/// dst[4j + k] = phase k [j], for the first `count` entries of dst.
@inline(__always) private func interleave4(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
                                           _ d: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int) {
    var x = 0
    while x + 16 <= count {
        let j = x / 4
        let p = load4(a + j), q = load4(b + j), r = load4(c + j), s = load4(d + j)
        UnsafeMutableRawPointer(dst + x).storeBytes(of: SIMD16(p[0], q[0], r[0], s[0], p[1], q[1], r[1], s[1],
                                                               p[2], q[2], r[2], s[2], p[3], q[3], r[3], s[3]), as: SIMD16<Float>.self)
        x += 16
    }
    while x < count {
        let j = x / 4
        switch x & 3 { case 0: dst[x] = a[j]; case 1: dst[x] = b[j]; case 2: dst[x] = c[j]; default: dst[x] = d[j] }
        x += 1
    }
}

/// Floats between consecutive ξ planes of V and M beyond their size: the planes are written and read as
/// 16 or 36 parallel streams, and a power-of-two stride would put all of them in the same L1 sets.
let planePad = 16

/// The buffers of a schedule in which all workers take each block of images together (so the blocks are cut
/// as for one worker): V (36 planes of inC × tiles), M or Z (36 planes of outC × tiles), one transform scratch
/// per worker, all in the workspace.
struct SharedWinogradBlocks {
    let plan: WinogradBlocks, parts: Int, tilesPerImage: Int, n: Int, scratchFloats: Int
    let v: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>

    init(inC: Int, outC: Int, n: Int, h: Int, w: Int, workspace: Workspace, budget: Int, minTiles: Int) {
        tilesPerImage = ((h + 3) / 4) * ((w + 3) / 4)
        self.n = n
        plan = WinogradBlocks(n: n, tilesPerImage: tilesPerImage, floatsPerTile: 36 * (inC + outC),
                              budget: budget, minTiles: minTiles, parts: 1)
        parts = max(1, Engine.threads)
        scratchFloats = winograd43ScratchFloats(h: h, w: w)
        let tb = plan.imagesPerBlock * tilesPerImage
        v = workspace.buffer(36 * (inC * tb + planePad) + 36 * (outC * tb + planePad) + parts * scratchFloats)
        m = v + 36 * (inC * tb + planePad)
        scratch = m + 36 * (outC * tb + planePad)
    }

    /// Worker `p`'s share of V for the block of images i0..<i1: the input tiles of its input channels.
    func inputTiles(_ x: UnsafePointer<Float>, inC: Int, h: Int, w: Int, i0: Int, i1: Int, worker p: Int) {
        let tc = (i1 - i0) * tilesPerImage, vs = inC * tc + planePad, sp = scratch + p * scratchFloats
        for c in (inC * p / parts)..<(inC * (p + 1) / parts) {
            winograd43InputTiles(x, c: c, n: n, h: h, w: w, i0: i0, i1: i1, v + c * tc, vs: vs, scratch: sp)
        }
    }

    /// Block `blk`'s images i0..<i1 and their tile count.
    func block(_ blk: Int) -> (i0: Int, i1: Int, tiles: Int) {
        let i0 = blk * plan.imagesPerBlock, i1 = min(n, i0 + plan.imagesPerBlock)
        return (i0, i1, (i1 - i0) * tilesPerImage)
    }
}

/// How a Winograd convolution cuts a batch: blocks of whole images, each small enough that its transformed
/// tiles stay near the caches (`budget` floats) but with at least `minTiles` tiles, their count a multiple
/// of the workers where the batch allows so that the workers get equal shares.
///
/// Measured and left (2 cores, `ld-bench scaling` and the ResNet rows, against this fixed split): workers
/// taking blocks as they free up did not differ from the noise, though the workers' finishing times differ
/// by 5-8% of the Winograd time per call. All workers sharing each block (U read once per block, not once per
/// worker) did not show in whole steps either, but does per convolution where U outweighs a worker's block
/// (`ld-bench conv 2`, 512 channels at 4×4: 11% faster), so that case takes it (`SharedWinogradBlocks`).
struct WinogradBlocks {
    let imagesPerBlock: Int, blocks: Int, workers: Int

    /// `parts`: the workers to plan for (nil: the engine's threads).
    init(n: Int, tilesPerImage: Int, floatsPerTile: Int, budget: Int, minTiles: Int, parts planned: Int? = nil) {
        let parts = max(1, min(planned ?? Engine.threads, n))
        let wanted = max(budget / max(1, floatsPerTile * tilesPerImage), (minTiles + tilesPerImage - 1) / tilesPerImage, 1)
        let count = max(1, ((n + wanted - 1) / wanted + parts - 1) / parts * parts)
        imagesPerBlock = max(1, (n + count - 1) / count)
        blocks = (n + imagesPerBlock - 1) / imagesPerBlock
        workers = min(parts, blocks)
    }
}
