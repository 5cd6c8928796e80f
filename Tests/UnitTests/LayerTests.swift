import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

/// Naive direct convolution, the reference for the im2col path: x (C,N,H,W), w (K,C,k,k) → (K,N,Ho,Wo).
func naiveConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride s: Int, pad: Int) -> [Float] {
    let c = x.shape[0], n = x.shape[1], h = x.shape[2], wd = x.shape[3]
    let k = w.shape[0], kk = w.shape[2]
    let ho = (h + 2 * pad - kk) / s + 1, wo = (wd + 2 * pad - kk) / s + 1
    var y = [Float](repeating: 0, count: k * n * ho * wo)
    for o in 0..<k { for img in 0..<n { for i in 0..<ho { for j in 0..<wo {
        var acc = Double(b?.data[o] ?? 0)
        for ch in 0..<c { for a in 0..<kk { for bb in 0..<kk {
            let ih = i * s - pad + a, iw = j * s - pad + bb
            if ih < 0 || ih >= h || iw < 0 || iw >= wd { continue }
            acc += Double(x.data[((ch * n + img) * h + ih) * wd + iw]) * Double(w.data[((o * c + ch) * kk + a) * kk + bb])
        } } }
        y[((o * n + img) * ho + i) * wo + j] = Float(acc)
    } } } }
    return y
}

final class LayerTests: XCTestCase {
    override func setUp() { Engine.threads = 2 }

    typealias ConvCase = (c: Int, k: Int, kernel: Int, stride: Int, pad: Int, bias: Bool, h: Int)
    let convCases: [ConvCase] = [
        (1, 4, 3, 1, 1, true, 7), (3, 5, 3, 2, 1, false, 9), (4, 6, 1, 1, 0, false, 5),
        (8, 9, 3, 1, 1, true, 7), (9, 8, 3, 1, 1, false, 4), (8, 8, 3, 1, 1, false, 1),
        (4, 6, 1, 2, 0, false, 7), (2, 3, 7, 2, 3, false, 11), (3, 4, 3, 1, 0, true, 6), (2, 3, 5, 1, 2, true, 6), (3, 2, 3, 1, 1, false, 2),
        (8, 9, 3, 1, 1, true, 13), (10, 8, 3, 1, 1, false, 10),   // Winograd's vector paths (rows of 8+)
        (3, 4, 7, 2, 3, false, 37), (4, 5, 3, 2, 1, true, 20),    // im2col's stride-2 vector gather (9+ columns)
    ]

    /// Runs `body` on every conv case in three rounds: Winograd F(4×4, 3×3); again with one-image im2col
    /// chunks and one-tile Winograd blocks; Winograd off. The engine's settings are restored after.
    func forEachConvRound(_ body: (ConvCase) -> Void) {
        let saved = (Conv2d.winograd, Conv2d.columnBudget, Conv2d.winogradBlockFloats,
                     Conv2d.winogradMinTiles, Conv2d.winogradMinSize, Conv2d.winogradMinChannels)
        defer {
            (Conv2d.winograd, Conv2d.columnBudget, Conv2d.winogradBlockFloats,
             Conv2d.winogradMinTiles, Conv2d.winogradMinSize, Conv2d.winogradMinChannels) = saved
        }
        Conv2d.winograd = true
        Conv2d.winogradMinSize = 1; Conv2d.winogradMinChannels = 8
        for (index, cs) in Array(repeating: convCases, count: 3).joined().enumerated() {
            let round = index / convCases.count
            if round == 1 { Conv2d.columnBudget = 1; Conv2d.winogradBlockFloats = 1; Conv2d.winogradMinTiles = 1 }
            if round == 2 { Conv2d.columnBudget = saved.1; Conv2d.winograd = false }
            body(cs)
        }
    }

    func testConvMatchesNaive() {
        var rng = SplitMix64(seed: 1)
        let saved = Conv2d.winograd
        defer { Conv2d.winograd = saved }
        Conv2d.winograd = true
        XCTAssertTrue(Conv2d(16, 16, kernel: 3, padding: 1).usesWinograd(height: 8, width: 9))
        XCTAssertFalse(Conv2d(16, 16, kernel: 3, padding: 1).usesWinograd(height: 3, width: 9))
        XCTAssertFalse(Conv2d(1, 16, kernel: 3, padding: 1).usesWinograd(height: 8, width: 8))
        forEachConvRound { cs in
            let conv = Conv2d(cs.c, cs.k, kernel: cs.kernel, stride: cs.stride, padding: cs.pad, bias: cs.bias)
            conv.initialize(&rng)
            if let b = conv.bias { rng.fillNormal(b.value, std: 1) }
            let x = randomTensor([cs.c, 3, cs.h, cs.h + 1], &rng)
            let y = conv.forward(x).array
            let ref = naiveConv(x, conv.weight.value, conv.bias?.value, stride: cs.stride, pad: cs.pad)
            XCTAssertEqual(y.count, ref.count)
            let err = zip(y, ref).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(err, 1e-4, "conv \(cs)")
        }
    }

    /// At ResNet-like channel counts the Winograd paths stay within float32 rounding of the direct sum.
    func testWinogradAccuracyAtWidth() {
        var rng = SplitMix64(seed: 4)
        let saved = Conv2d.winograd
        defer { Conv2d.winograd = saved }
        Conv2d.winograd = true
        let conv = Conv2d(64, 64, kernel: 3, padding: 1, bias: true)
        conv.initialize(&rng)
        let x = randomTensor([64, 2, 16, 17], &rng)
        let ref = naiveConv(x, conv.weight.value, conv.bias?.value, stride: 1, pad: 1)
        let scale = ref.map { abs($0) }.max()!
        XCTAssertTrue(conv.usesWinograd(height: 16, width: 17))
        let y = conv.forward(x).array
        let err = zip(y, ref).map { abs($0 - $1) }.max()!
        // measured: ~7e-6 of the largest output (the transforms scale by up to 8)
        XCTAssertLessThan(err / scale, 2e-5, "F(4x4, 3x3)")
    }

    /// Where the transformed weights outweigh a worker's block of tiles, the workers run each block together
    /// (input tiles by channel, then their own rows of every product and their output channels): on 1 to 3
    /// threads, on narrow planes (whose last vector reads past a channel's tiles, the products then all finish
    /// first) and wide ones, the output and the input gradient equal the direct sum. The weight gradient, whose
    /// blocks are shared by all workers and cut as for one, has the same bits on any thread count.
    func testWinogradSharedBlocksMatchNaive() {
        var rng = SplitMix64(seed: 12)
        let saved = (Conv2d.winograd, Engine.threads)
        defer { (Conv2d.winograd, Engine.threads) = saved }
        Conv2d.winograd = true
        for (c, k, n, h, w) in [(40, 48, 5, 4, 4), (48, 40, 8, 7, 7), (64, 64, 2, 16, 17)] {
            let conv = Conv2d(c, k, kernel: 3, padding: 1, bias: true)
            conv.initialize(&rng)
            rng.fillNormal(conv.bias!.value, std: 1)
            let x = randomTensor([c, n, h, w], &rng), dy = randomTensor([k, n, h, w], &rng)
            let ref = naiveConv(x, conv.weight.value, conv.bias?.value, stride: 1, pad: 1)
            let scale = ref.map { abs($0) }.max()!
            var dxs: [[Float]] = [], dws: [[Float]] = []
            for threads in [1, 2, 3] {
                Engine.threads = threads
                XCTAssertTrue(conv.usesWinograd(height: h, width: w))
                let y = conv.forward(x).array
                let err = zip(y, ref).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(err / scale, 2e-5, "\(c)->\(k) \(n)x\(h)x\(w) on \(threads) threads")
                conv.weight.zeroGrad()
                dxs.append(conv.backward(dy)!.array)
                dws.append(conv.weight.grad.array)
            }
            // the weight gradient's blocks are cut alike on any thread count: the same bits
            XCTAssertEqual(dws[1], dws[0], "dW \(c)->\(k) on 2 threads"); XCTAssertEqual(dws[2], dws[0], "dW \(c)->\(k) on 3 threads")
            let dscale = dxs[0].map { abs($0) }.max()!
            for t in 1..<dxs.count {
                let err = zip(dxs[t], dxs[0]).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(err / dscale, 2e-5, "dx \(c)->\(k) \(n)x\(h)x\(w) on \(t + 1) threads")
            }
        }
    }

    /// The F(4×4) weight gradient equals im2col's, on odd and even plane sizes and more channels than one
    /// vector, with a block boundary inside the batch.
    func testWinogradWeightGradientMatchesIm2col() {
        var rng = SplitMix64(seed: 5)
        let saved = (Conv2d.winograd, Conv2d.winogradWeightGradient, Conv2d.winogradMinTiles)
        defer { (Conv2d.winograd, Conv2d.winogradWeightGradient, Conv2d.winogradMinTiles) = saved }
        (Conv2d.winograd, Conv2d.winogradMinTiles) = (true, 1)
        for (c, k, h, w) in [(16, 24, 13, 11), (24, 16, 8, 20), (16, 16, 4, 4)] {
            let conv = Conv2d(c, k, kernel: 3, padding: 1, bias: true)
            conv.initialize(&rng)
            let x = randomTensor([c, 3, h, w], &rng), dy = randomTensor([k, 3, h, w], &rng)
            var grads: [[Float]] = []
            for wino in [false, true] {
                Conv2d.winogradWeightGradient = wino
                for p in conv.parameters { p.zeroGrad() }
                _ = conv.forward(x)
                _ = conv.backward(dy)
                grads.append(conv.weight.grad.array)
            }
            let scale = grads[0].map { abs($0) }.max()!
            let err = zip(grads[0], grads[1]).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(err / scale, 2e-5, "dW \(c)->\(k) \(h)x\(w)")
        }
    }

    /// A frozen convolution keeps its Winograd weights between calls; changing the weights must not leave
    /// them stale (forward and input gradient).
    func testFrozenWinogradWeightsFollowTheWeights() {
        var rng = SplitMix64(seed: 3)
        let saved = Conv2d.winograd
        defer { Conv2d.winograd = saved }
        Conv2d.winograd = true
        let conv = Conv2d(16, 16, kernel: 3, padding: 1, bias: false)
        conv.initialize(&rng)
        conv.wantsParamGrads = false
        conv.wantsInputGrad = true
        XCTAssertTrue(conv.usesWinograd(height: 9, width: 10))
        let x = randomTensor([16, 2, 9, 10], &rng), dy = randomTensor([16, 2, 9, 10], &rng)
        for round in 0..<5 {
            if round > 0 { conv.weight.value.data[round * 7] += 0.5 }   // edited weights must not reuse the cache
            let y = conv.forward(x).array
            let ref = naiveConv(x, conv.weight.value, nil, stride: 1, pad: 1)
            XCTAssertLessThan(zip(y, ref).map { abs($0 - $1) }.max() ?? 1, 1e-4, "forward, round \(round)")
            let dx = conv.backward(dy)!.array
            // dx = conv(dy, rot180 of the transposed weights)
            let flipped = Tensor(shape: [16, 16, 3, 3])
            let src = conv.weight.value.data
            for k in 0..<16 { for c in 0..<16 { for t in 0..<9 { flipped.data[(c * 16 + k) * 9 + t] = src[(k * 16 + c) * 9 + 8 - t] } } }
            let dxRef = naiveConv(dy, flipped, nil, stride: 1, pad: 1)
            XCTAssertLessThan(zip(dx, dxRef).map { abs($0 - $1) }.max() ?? 1, 1e-4, "input gradient, round \(round)")
        }
    }

    func testConvGradients() {
        var rng = SplitMix64(seed: 2)
        forEachConvRound { cs in
            let conv = Conv2d(cs.c, cs.k, kernel: cs.kernel, stride: cs.stride, padding: cs.pad, bias: cs.bias, name: "conv")
            conv.initialize(&rng)
            checkLayer("conv \(cs)", conv, input: randomTensor([cs.c, 2, cs.h, cs.h - 1], &rng))
        }
    }

    func testBatchNormGradients() {
        var rng = SplitMix64(seed: 3)
        for relu in [false, true] {
            for training in [true, false] {
                let bn = BatchNorm2d(3, relu: relu, name: "bn")
                rng.fillNormal(bn.weight.value, mean: 1, std: 0.3)
                rng.fillNormal(bn.bias.value, std: 0.3)
                rng.fillUniform(bn.runningMean, -0.5, 0.5)
                rng.fillUniform(bn.runningVar, 0.5, 2)
                bn.training = training
                let x = randomTensor([3, 4, 3, 5], &rng, std: 2)
                for i in 0..<x.count { x.data[i] += 0.5 }
                checkLayer("bn relu=\(relu) train=\(training)", bn, input: x, samples: 30)
            }
        }
    }

    func testFusedPoolBatchNormGradientsAndEquivalence() {
        var rng = SplitMix64(seed: 9)
        for training in [true, false] {
            for (h, w) in [(4, 6), (5, 7)] {
                let fused = BatchNorm2d(3, relu: true, pool: true, name: "bn")
                let plain = BatchNorm2d(3, relu: true, name: "bn")
                let pool = AvgPool2d()
                rng.fillNormal(fused.weight.value, mean: 1, std: 0.3)
                rng.fillNormal(fused.bias.value, std: 0.3)
                rng.fillUniform(fused.runningMean, -0.5, 0.5)
                rng.fillUniform(fused.runningVar, 0.5, 2)
                for (a, b) in [(plain.weight.value, fused.weight.value), (plain.bias.value, fused.bias.value),
                               (plain.runningMean, fused.runningMean), (plain.runningVar, fused.runningVar)] { a.copy(from: b) }
                fused.training = training; plain.training = training
                let x = randomTensor([3, 2, h, w], &rng, std: 2)
                let yf = fused.forward(x).array
                let yp = pool.forward(plain.forward(x)).array
                XCTAssertEqual(yf.count, yp.count)
                for (u, v) in zip(yf, yp) { XCTAssertEqual(u, v, accuracy: 1e-5) }
                let r = randomTensor(fused.output.shape, &rng)
                let dxf = fused.backward(Tensor(shape: r.shape, values: r.array))!.array
                let dxp = plain.backward(pool.backward(Tensor(shape: r.shape, values: r.array))!)!.array
                for (u, v) in zip(dxf, dxp) { XCTAssertEqual(u, v, accuracy: 1e-4) }
                XCTAssertEqual(fused.weight.grad.array[0], plain.weight.grad.array[0], accuracy: 1e-4)
                checkLayer("bn+relu+pool train=\(training) \(h)x\(w)", fused, input: x, samples: 30, eps: 2e-3, atol: 1e-2)
            }
        }
    }

    /// ConvBatchNorm (the recomputing first ConvNet block) against Conv2d then BatchNorm2d(relu, pool) with
    /// the same parameters: train, eval and the BN-statistics hook; outputs, statistics and gradients to
    /// rounding (its per-image GEMMs may round differently from one over the batch, depending on OpenBLAS's
    /// kernels); then finite differences through the fused layer itself.
    func testConvBatchNormMatchesTheTwoLayers() {
        var rng = SplitMix64(seed: 31)
        for (cin, k, bias, h, mode) in [(1, 5, true, 8, "train"), (3, 4, false, 7, "train"), (1, 5, true, 6, "eval"),
                                          (3, 4, true, 6, "hook")] {
            func close(_ a: [Float], _ b: [Float], _ what: String) {
                let scale = b.map { abs($0) }.max() ?? 1
                XCTAssertEqual(a.count, b.count, "\(mode): \(what)")
                for (u, v) in zip(a, b) { XCTAssertEqual(u, v, accuracy: 1e-5 * max(scale, 1), "\(mode): \(what)") }
            }
            let conv = Conv2d(cin, k, kernel: 3, padding: 1, bias: bias), bn = BatchNorm2d(k, relu: true, pool: true)
            let conv2 = Conv2d(cin, k, kernel: 3, padding: 1, bias: bias), bn2 = BatchNorm2d(k, relu: true, pool: true)
            conv.initialize(&rng, .pytorchDefault)
            rng.fillNormal(bn.weight.value, mean: 1, std: 0.3); rng.fillNormal(bn.bias.value, std: 0.3)
            rng.fillUniform(bn.runningMean, -0.5, 0.5); rng.fillUniform(bn.runningVar, 0.5, 2)
            for (a, b) in zip(conv2.parameters + bn2.parameters, conv.parameters + bn.parameters) { a.value.copy(from: b.value) }
            bn2.runningMean.copy(from: bn.runningMean); bn2.runningVar.copy(from: bn.runningVar)
            let fused = ConvBatchNorm(conv2, bn2)
            for l in [conv, bn] as [Layer] + [fused] { l.training = mode == "train" }
            bn.captureBatchStatistics = mode == "hook"; bn2.captureBatchStatistics = mode == "hook"
            let x = randomTensor([cin, 3, h, h], &rng)
            let labels: [Int32] = [1, 0, 1]
            let y = labels.withUnsafeBufferPointer { l -> [Float] in
                bn.classLabels = l.baseAddress; bn2.classLabels = l.baseAddress
                defer { bn.classLabels = nil; bn2.classLabels = nil }
                let yf = fused.forward(x).array
                close(yf, bn.forward(conv.forward(x)).array, "forward")
                return yf
            }
            XCTAssertEqual(y.count, k * 3 * (h / 2) * (h / 2))
            close(bn2.runningMean.array, bn.runningMean.array, "running mean")
            close(bn2.runningVar.array, bn.runningVar.array, "running variance")
            XCTAssertEqual(bn2.classStatistics!.count, bn.classStatistics!.count)
            close(bn2.classStatistics!.sum.map { Float($0) }, bn.classStatistics!.sum.map { Float($0) }, "class sums")
            close(bn2.classStatistics!.sumSquares.map { Float($0) }, bn.classStatistics!.sumSquares.map { Float($0) }, "class squares")
            if mode == "hook" {
                close(bn2.batchMean.array, bn.batchMean.array, "batch mean")
                close(bn2.batchVariance.array, bn.batchVariance.array, "batch variance")
                rng.fillNormal(bn.dBatchMean, std: 1); rng.fillNormal(bn.dBatchVariance, std: 1)
                bn2.dBatchMean.copy(from: bn.dBatchMean); bn2.dBatchVariance.copy(from: bn.dBatchVariance)
            }
            let r = randomTensor(bn.output.shape, &rng)
            let dx = fused.backward(Tensor(shape: r.shape, values: r.array))!.array
            let dx2 = conv.backward(bn.backward(Tensor(shape: r.shape, values: r.array))!)!.array
            close(bn2.weight.grad.array, bn.weight.grad.array, "dγ")
            close(bn2.bias.grad.array, bn.bias.grad.array, "dβ")
            close(dx, dx2, "dx")
            close(conv2.weight.grad.array, conv.weight.grad.array, "dW")
            if bias { close(conv2.bias!.grad.array, conv.bias!.grad.array, "db") }
            XCTAssertTrue(bn2.dBatchMean.array.allSatisfy { $0 == 0 }, "the hook's gradients are consumed")
            if mode != "hook" {
                checkLayer("conv+bn \(mode) \(cin)->\(k) \(h)x\(h)", fused, input: x, samples: 24, eps: 2e-3, atol: 1e-2)
            }
        }
    }

    /// ConvBatchNorm's backward with more worker threads than its forward had: the same gradients.
    func testConvBatchNormThreadCountChangeBetweenPasses() {
        defer { Engine.threads = 2 }
        var grads: [[Float]] = []
        for threads in [(2, 2), (1, 2)] {
            var r = SplitMix64(seed: 33)
            let conv = Conv2d(1, 6, kernel: 3, padding: 1), bn = BatchNorm2d(6, relu: true, pool: true)
            conv.initialize(&r, .pytorchDefault)
            let fused = ConvBatchNorm(conv, bn)
            let x = randomTensor([1, 5, 10, 10], &r)
            Engine.threads = threads.0
            let y = fused.forward(x)
            Engine.threads = threads.1
            let dx = fused.backward(randomTensor(y.shape, &r))!
            grads.append(conv.weight.grad.array + dx.array)
        }
        for (u, v) in zip(grads[0], grads[1]) { XCTAssertEqual(u, v, accuracy: 1e-4) }
    }

    /// The hook path alone: loss = Σ a·μ + Σ b·σ² of the input's batch statistics, in eval mode.
    func testBatchNormHookGradient() {
        var rng = SplitMix64(seed: 4)
        for training in [false, true] {
            let bn = BatchNorm2d(3, name: "bn")
            bn.training = training
            bn.captureBatchStatistics = true
            let x = randomTensor([3, 4, 3, 3], &rng)
            let a = randomTensor([3], &rng), b = randomTensor([3], &rng)
            let zero = Tensor(shape: bn.output.shape.isEmpty ? [0] : [3, 4, 3, 3])
            _ = bn.forward(x)
            zero.reshape([3, 4, 3, 3]); zero.fill(0)
            bn.dBatchMean.copy(from: a); bn.dBatchVariance.copy(from: b)
            let dx = bn.backward(zero)!.array
            let f: () -> Double = {
                _ = bn.forward(x)
                return dotLoss(bn.batchMean, a) + dotLoss(bn.batchVariance, b)
            }
            checkGradient("bn hook train=\(training)", x: x, analytic: dx, rng: &rng, f: f)
            // the hook gradient is consumed
            XCTAssertEqual(bn.dBatchMean.array, [0, 0, 0])
        }
    }

    func testBatchNormTrainAndEvalSemantics() {
        var rng = SplitMix64(seed: 5)
        let bn = BatchNorm2d(2)
        let x = randomTensor([2, 5, 2, 3], &rng, std: 3)
        let m = 5 * 6
        var mean = [Double](repeating: 0, count: 2), v = mean
        for c in 0..<2 {
            for i in 0..<m { mean[c] += Double(x.data[c * m + i]) }
            mean[c] /= Double(m)
            for i in 0..<m { v[c] += pow(Double(x.data[c * m + i]) - mean[c], 2) }
            v[c] /= Double(m)
        }
        let y = bn.forward(x)
        for c in 0..<2 {
            for i in 0..<m {
                let want = (Double(x.data[c * m + i]) - mean[c]) / (v[c] + 1e-5).squareRoot()
                XCTAssertEqual(Double(y.data[c * m + i]), want, accuracy: 1e-4)
            }
            XCTAssertEqual(Double(bn.runningMean.data[c]), 0.1 * mean[c], accuracy: 1e-5)
            XCTAssertEqual(Double(bn.runningVar.data[c]), 0.9 + 0.1 * v[c] * Double(m) / Double(m - 1), accuracy: 1e-5)
        }
        bn.training = false
        let rm = bn.runningMean.array, rv = bn.runningVar.array
        let ye = bn.forward(x)
        for c in 0..<2 {
            for i in 0..<m {
                let want = (Double(x.data[c * m + i]) - Double(rm[c])) / (Double(rv[c]) + 1e-5).squareRoot()
                XCTAssertEqual(Double(ye.data[c * m + i]), want, accuracy: 1e-4)
            }
        }
        XCTAssertEqual(bn.runningMean.array, rm, "eval must not update running statistics")
    }

    func testPoolingAndShapeGradients() {
        var rng = SplitMix64(seed: 6)
        checkLayer("avgpool odd", AvgPool2d(), input: randomTensor([2, 3, 5, 7], &rng))
        checkLayer("maxpool", MaxPool2d(kernel: 3, stride: 2, padding: 1), input: randomTensor([2, 3, 7, 8], &rng))
        checkLayer("gap", GlobalAvgPool2d(), input: randomTensor([3, 2, 3, 4], &rng))
        checkLayer("flatten", Flatten(), input: randomTensor([3, 2, 2, 3], &rng))
        checkLayer("relu", ReLU(), input: randomTensor([2, 3, 4, 4], &rng))
        let fc = Linear(12, 5, name: "fc")
        fc.initialize(&rng)
        checkLayer("linear", fc, input: randomTensor([3, 12], &rng))
    }

    func testPoolingValues() {
        let x = Tensor(shape: [1, 1, 3, 3], values: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        XCTAssertEqual(AvgPool2d().forward(x).array, [3])
        XCTAssertEqual(MaxPool2d().forward(x).array, [5, 6, 8, 9])
    }

    /// MaxPool2d's forward (an unrolled 3×3 interior and a checked edge) against a naive reference: every tap in
    /// row-major order, the first of equal maxima kept; then backward routes each gradient to that tap. Small
    /// integer inputs make ties common; sizes odd and even, windows 2 and 3, strides 1 and 2, pads 0 and 1.
    func testMaxPoolMatchesNaiveReference() {
        var rng = SplitMix64(seed: 61)
        for (k, s, pad) in [(3, 2, 1), (3, 1, 1), (2, 2, 0), (3, 2, 0)] {
            for (h, w) in [(7, 8), (12, 11), (3, 3), (112, 112)] where h + 2 * pad >= k && w + 2 * pad >= k {
                let x = Tensor(shape: [2, 3, h, w])
                for i in 0..<x.count { x.data[i] = Float(Int(rng.next() % 5)) - 2 }
                let pool = MaxPool2d(kernel: k, stride: s, padding: pad)
                pool.wantsInputGrad = true
                let y = pool.forward(x).array
                let ho = (h + 2 * pad - k) / s + 1, wo = (w + 2 * pad - k) / s + 1
                var want = [Float](repeating: 0, count: 6 * ho * wo), wantDx = [Float](repeating: 0, count: x.count)
                let dy = Tensor(shape: [2, 3, ho, wo])
                for i in 0..<dy.count { dy.data[i] = Float(i % 7) + 1 }
                for pl in 0..<6 {
                    for i in 0..<ho {
                        for j in 0..<wo {
                            var best = -Float.infinity, at = -1
                            for a in 0..<k {
                                for b in 0..<k {
                                    let ih = i * s - pad + a, iw = j * s - pad + b
                                    guard ih >= 0, ih < h, iw >= 0, iw < w else { continue }
                                    let v = x.data[pl * h * w + ih * w + iw]
                                    if at < 0 || v > best { best = v; at = ih * w + iw }
                                }
                            }
                            want[pl * ho * wo + i * wo + j] = best
                            wantDx[pl * h * w + at] += dy.data[pl * ho * wo + i * wo + j]
                        }
                    }
                }
                XCTAssertEqual(y, want, "k \(k) s \(s) pad \(pad) \(h)x\(w)")
                XCTAssertEqual(pool.backward(dy)!.array, wantDx, "backward k \(k) s \(s) pad \(pad) \(h)x\(w)")
            }
        }
    }

    func testBasicBlockGradients() {
        var rng = SplitMix64(seed: 8)
        for (cin, cout, stride) in [(3, 3, 1), (2, 4, 2)] {
            let block = BasicBlock(cin, cout, stride: stride, name: "b", workspace: Workspace())
            block.initialize(&rng)
            checkLayer("block \(cin)->\(cout) s\(stride)", block, input: randomTensor([cin, 3, 5, 5], &rng), samples: 16, eps: 2e-3, atol: 1e-2)
            block.gradientPool = GradientPool()   // as inside a model: the buffers come from a shared pool
            checkLayer("block pooled \(cin)->\(cout) s\(stride)", block, input: randomTensor([cin, 3, 5, 5], &rng), samples: 16, eps: 2e-3, atol: 1e-2)
            block.training = false
            checkLayer("block eval \(cin)->\(cout) s\(stride)", block, input: randomTensor([cin, 3, 5, 5], &rng), samples: 16, eps: 2e-3, atol: 1e-2)
        }
    }

    /// ResNet-50's bottleneck block (1x1, 3x3/stride, 1x1 to 4x): identity and projection shortcuts.
    func testBottleneckBlockGradients() {
        var rng = SplitMix64(seed: 9)
        for (cin, width, stride) in [(8, 2, 1), (3, 2, 2)] {
            let block = ResidualBlock.bottleneck(cin, width: width, stride: stride, name: "b", workspace: Workspace())
            block.initialize(&rng)
            XCTAssertEqual(block.downsample == nil, cin == 4 * width && stride == 1)
            XCTAssertEqual(block.parameters.map(\.name).prefix(3), ["b.conv1.weight", "b.bn1.weight", "b.bn1.bias"])
            checkLayer("bottleneck \(cin)->\(4 * width) s\(stride)", block, input: randomTensor([cin, 3, 5, 5], &rng), samples: 16, eps: 2e-3, atol: 1e-2)
            block.gradientPool = GradientPool()
            checkLayer("bottleneck pooled \(cin) s\(stride)", block, input: randomTensor([cin, 3, 5, 5], &rng), samples: 16, eps: 2e-3, atol: 1e-2)
            block.training = false
            checkLayer("bottleneck eval \(cin) s\(stride)", block, input: randomTensor([cin, 3, 5, 5], &rng), samples: 16, eps: 2e-3, atol: 1e-2)
        }
    }
}
