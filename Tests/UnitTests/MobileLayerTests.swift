import XCTest
import Foundation
import LDKernels
import LDNetworks

/// The layers of MobileNetV2 and EfficientNet-B0: the depthwise convolution's direct kernel against naive
/// loops, BatchNorm's fused ReLU6 and SiLU, squeeze-and-excitation and the inverted residual block, each
/// gradient-checked against finite differences.
final class MobileLayerTests: XCTestCase {
    // MARK: - Naive references (channel-major (C,N,H,W) like the engine)

    /// y = depthwise conv of x (C,N,H,W) with w (C,1,k,k), padding k/2.
    static func naiveDepthwise(_ x: Tensor, _ w: Tensor, k: Int, s: Int) -> Tensor {
        let c = x.shape[0], n = x.shape[1], h = x.shape[2], wd = x.shape[3], p = k / 2
        let ho = (h + 2 * p - k) / s + 1, wo = (wd + 2 * p - k) / s + 1
        let y = Tensor(shape: [c, n, ho, wo])
        for ch in 0..<c { for i in 0..<n { for oh in 0..<ho { for ow in 0..<wo {
            var acc = 0.0
            for a in 0..<k { for b in 0..<k {
                let ih = oh * s - p + a, iw = ow * s - p + b
                if ih < 0 || ih >= h || iw < 0 || iw >= wd { continue }
                acc += Double(w.data[(ch * k + a) * k + b]) * Double(x.data[((ch * n + i) * h + ih) * wd + iw])
            } }
            y.data[((ch * n + i) * ho + oh) * wo + ow] = Float(acc)
        } } } }
        return y
    }

    /// (dx, dw) of the depthwise convolution for dy.
    static func naiveDepthwiseBackward(_ x: Tensor, _ w: Tensor, _ dy: Tensor, k: Int, s: Int) -> ([Double], [Double]) {
        let c = x.shape[0], n = x.shape[1], h = x.shape[2], wd = x.shape[3], p = k / 2
        let ho = dy.shape[2], wo = dy.shape[3]
        var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: w.count)
        for ch in 0..<c { for i in 0..<n { for oh in 0..<ho { for ow in 0..<wo {
            let g = Double(dy.data[((ch * n + i) * ho + oh) * wo + ow])
            for a in 0..<k { for b in 0..<k {
                let ih = oh * s - p + a, iw = ow * s - p + b
                if ih < 0 || ih >= h || iw < 0 || iw >= wd { continue }
                let xi = ((ch * n + i) * h + ih) * wd + iw
                dx[xi] += Double(w.data[(ch * k + a) * k + b]) * g
                dw[(ch * k + a) * k + b] += Double(x.data[xi]) * g
            } }
        } } } }
        return (dx, dw)
    }

    static func act(_ z: Double, _ a: Activation) -> Double {
        switch a {
        case .none: return z
        case .relu: return max(z, 0)
        case .relu6: return min(max(z, 0), 6)
        case .silu: return z / (1 + Foundation.exp(-z))
        }
    }

    /// Largest |a − b| / (1 + |b|).
    static func maxError(_ a: [Float], _ b: [Double]) -> Double {
        precondition(a.count == b.count)
        var e = 0.0
        for (u, v) in zip(a, b) { e = max(e, abs(Double(u) - v) / (1 + abs(v))) }
        return e
    }

    // MARK: - Depthwise convolution

    /// The direct kernel (stride 1 and 2, kernel 3 and 5, planes narrower and wider than a vector, odd and
    /// even sides; planes of at most 16 pixels on the small-matrix path) against naive loops, forward and
    /// backward, with one and two threads.
    func testDepthwiseMatchesNaiveKernel() {
        var rng = SplitMix64(seed: 41)
        defer { Engine.threads = 2 }
        for threads in [1, 2] {
            Engine.threads = threads
            for (k, s) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
                for (h, w) in [(1, 1), (2, 3), (3, 5), (4, 4), (5, 4), (7, 9), (8, 8), (17, 33), (32, 32)] {
                    let c = 3, n = 2
                    let conv = DepthwiseConv2d(c, kernel: k, stride: s, name: "dw")
                    conv.initialize(&rng)
                    let x = randomTensor([c, n, h, w], &rng)
                    let y = conv.forward(x)
                    let ref = MobileLayerTests.naiveDepthwise(x, conv.weight.value, k: k, s: s)
                    XCTAssertEqual(y.shape, ref.shape)
                    let tag = "k\(k) s\(s) \(h)x\(w) threads \(threads)"
                    XCTAssertLessThan(MobileLayerTests.maxError(y.array, ref.array.map(Double.init)), 1e-5, "forward \(tag)")
                    let dy = randomTensor(y.shape, &rng)
                    let (dxRef, dwRef) = MobileLayerTests.naiveDepthwiseBackward(x, conv.weight.value, dy, k: k, s: s)
                    conv.weight.zeroGrad()
                    let dx = conv.backward(dy)!
                    XCTAssertEqual(dx.shape, x.shape)
                    XCTAssertLessThan(MobileLayerTests.maxError(dx.array, dxRef), 1e-5, "dx \(tag)")
                    XCTAssertLessThan(MobileLayerTests.maxError(conv.weight.grad.array, dwRef), 1e-4, "dw \(tag)")
                }
            }
        }
    }

    func testDepthwiseGradientCheck() {
        var rng = SplitMix64(seed: 42)
        for (k, s) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
            let conv = DepthwiseConv2d(2, kernel: k, stride: s, name: "dw")
            conv.initialize(&rng)
            XCTAssertEqual(conv.weight.name, "dw.weight")
            XCTAssertEqual(conv.weight.value.shape, [2, 1, k, k])
            checkLayer("depthwise k\(k) s\(s)", conv, input: randomTensor([2, 2, 6, 7], &rng))
            // planes of at most 16 pixels take the small-matrix path
            checkLayer("depthwise small k\(k) s\(s)", conv, input: randomTensor([2, 3, 4, 4], &rng))
            checkLayer("depthwise small k\(k) s\(s)", conv, input: randomTensor([2, 2, 2, 3], &rng))
            conv.gradientPool = GradientPool()
            checkLayer("depthwise pooled k\(k) s\(s)", conv, input: randomTensor([2, 2, 5, 5], &rng))
        }
    }

    /// Inference with the BatchNorm applied by the depthwise kernel: the same bits as the two layers.
    func testDepthwiseWithBatchNormEqualsTheTwoLayers() {
        var rng = SplitMix64(seed: 43)
        for a in [Activation.none, .relu6, .silu] {
            let conv = DepthwiseConv2d(4, kernel: 3, stride: 2, name: "dw")
            conv.initialize(&rng)
            let bn = BatchNorm2d(4, activation: a, name: "bn")
            rng.fillUniform(bn.runningMean, -0.5, 0.5); rng.fillUniform(bn.runningVar, 0.5, 1.5)
            rng.fillUniform(bn.weight.value, 0.5, 3); rng.fillUniform(bn.bias.value, -0.5, 0.5)
            bn.training = false
            let x = randomTensor([4, 3, 9, 11], &rng, std: 3)
            let two = bn.forward(conv.forward(x)).array
            let fused = conv.forward(x, then: bn)!.array
            XCTAssertTrue(two.elementsEqual(fused, by: { $0.bitPattern == $1.bitPattern }), "\(a)")
        }
    }

    // MARK: - BatchNorm activations

    /// ReLU6 and SiLU fused into BatchNorm: forward against the formula (train and eval), gradients against
    /// finite differences; γ large enough that ReLU6 clips at both ends.
    func testBatchNormReLU6AndSiLU() {
        var rng = SplitMix64(seed: 44)
        for a in [Activation.relu6, .silu] {
            for training in [true, false] {
                let bn = BatchNorm2d(3, activation: a, name: "bn")
                bn.weight.value.fill(4)
                rng.fillUniform(bn.bias.value, -1, 1)
                rng.fillUniform(bn.runningMean, -0.5, 0.5); rng.fillUniform(bn.runningVar, 0.5, 1.5)
                bn.training = training
                let x = randomTensor([3, 2, 5, 7], &rng)   // 70 values per channel: vector body and scalar tail
                let y = bn.forward(x).array
                let m = 70
                var ref = [Double](repeating: 0, count: x.count)
                for c in 0..<3 {
                    var mean = Double(bn.runningMean.data[c]), v = Double(bn.runningVar.data[c])
                    if training {
                        mean = (0..<m).reduce(0.0) { $0 + Double(x.data[c * m + $1]) } / Double(m)
                        v = (0..<m).reduce(0.0) { $0 + pow(Double(x.data[c * m + $1]) - mean, 2) } / Double(m)
                        // the forward above moved the running statistics; eval below reads them afresh
                    }
                    for i in 0..<m {
                        let z = (Double(x.data[c * m + i]) - mean) / (v + 1e-5).squareRoot() * 4 + Double(bn.bias.value.data[c])
                        ref[c * m + i] = MobileLayerTests.act(z, a)
                    }
                }
                XCTAssertLessThan(MobileLayerTests.maxError(y, ref), 2e-5, "\(a) training \(training)")
                if a == .relu6 { XCTAssertTrue(y.contains(6) && y.contains(0), "ReLU6 clips at both ends") }
                checkLayer("bn+\(a) train=\(training)", bn, input: x, samples: 30, eps: 2e-3, atol: 1e-2)
            }
        }
    }

    /// eps and momentum are the layer's: the running statistics move by `momentum`, the output uses `eps`.
    func testBatchNormEpsAndMomentum() {
        let bn = BatchNorm2d(1, activation: .none, eps: 1e-3, momentum: 0.01)
        XCTAssertEqual(bn.eps, 1e-3); XCTAssertEqual(bn.momentum, 0.01)
        let defaults = BatchNorm2d(1, relu: true)
        XCTAssertEqual(defaults.eps, 1e-5); XCTAssertEqual(defaults.momentum, 0.1); XCTAssertEqual(defaults.activation, .relu)
        let x = Tensor(shape: [1, 1, 1, 4], values: [1, 1.02, 0.98, 1])   // biased variance 2e-4
        let y = bn.forward(x)
        XCTAssertEqual(Double(bn.runningMean.data[0]), 0.01, accuracy: 1e-7)
        XCTAssertEqual(Double(y.data[1]), 0.02 / (2e-4 + 1e-3).squareRoot(), accuracy: 1e-4)
    }

    // MARK: - Squeeze-and-excitation

    func testSqueezeExcitation() {
        var rng = SplitMix64(seed: 45)
        let c = 6, sq = 2, n = 3, h = 4, w = 5
        let se = SqueezeExcitation(c, squeeze: sq, activation: .silu, name: "block.2")
        XCTAssertEqual(se.parameters.map(\.name), ["block.2.fc1.weight", "block.2.fc1.bias", "block.2.fc2.weight", "block.2.fc2.bias"])
        XCTAssertEqual(se.fc1Weight.value.shape, [sq, c, 1, 1])
        XCTAssertEqual(se.fc2Weight.value.shape, [c, sq, 1, 1])
        se.initialize(&rng)
        rng.fillUniform(se.fc1Bias.value, -0.5, 0.5); rng.fillUniform(se.fc2Bias.value, -0.5, 0.5)
        let x = randomTensor([c, n, h, w], &rng)
        let y = se.forward(x).array
        // naive: m = mean over (h, w); s = σ(W2 silu(W1 m + b1) + b2); y = s x
        var ref = [Double](repeating: 0, count: x.count)
        for i in 0..<n {
            let m = (0..<c).map { ch in (0..<(h * w)).reduce(0.0) { $0 + Double(x.data[(ch * n + i) * h * w + $1]) } / Double(h * w) }
            let hidden = (0..<sq).map { k in
                MobileLayerTests.act((0..<c).reduce(Double(se.fc1Bias.value.data[k])) { $0 + Double(se.fc1Weight.value.data[k * c + $1]) * m[$1] }, .silu)
            }
            for ch in 0..<c {
                let z = (0..<sq).reduce(Double(se.fc2Bias.value.data[ch])) { $0 + Double(se.fc2Weight.value.data[ch * sq + $1]) * hidden[$1] }
                let s = 1 / (1 + Foundation.exp(-z))
                for t in 0..<(h * w) { ref[(ch * n + i) * h * w + t] = s * Double(x.data[(ch * n + i) * h * w + t]) }
            }
        }
        XCTAssertLessThan(MobileLayerTests.maxError(y, ref), 1e-5)
        checkLayer("squeeze-excitation", se, input: x, samples: 30, eps: 2e-3, atol: 1e-2)
    }

    // MARK: - Inverted residual / MBConv

    /// EfficientNet's MBConv (expansion, kernel 5, gate, shortcut), MobileNetV2's first block (no expansion,
    /// no shortcut) and a stride-2 expanding block: names, shortcut rule, gradients in train and eval mode,
    /// with and without a gradient pool, and predict == forward in eval mode.
    func testInvertedResidualBlocks() {
        var rng = SplitMix64(seed: 46)
        let cases: [(cin: Int, cout: Int, hidden: Int, k: Int, s: Int, act: Activation, squeeze: Int?)] =
            [(4, 4, 8, 5, 1, .silu, 1), (4, 3, 4, 3, 1, .relu6, nil), (3, 5, 6, 3, 2, .relu6, nil), (4, 6, 8, 5, 2, .silu, 2)]
        for t in cases {
            let expands = t.hidden != t.cin
            let names = expands
                ? InvertedResidual.Names(expand: "b.0", depthwise: "b.1", squeezeExcitation: "b.2", project: "b.3.0", projectBN: "b.3.1")
                : InvertedResidual.Names(expand: nil, depthwise: "b.0", squeezeExcitation: "b.1", project: "b.2.0", projectBN: "b.2.1")
            let block = InvertedResidual(t.cin, t.cout, hidden: t.hidden, kernel: t.k, stride: t.s, activation: t.act,
                                         squeeze: t.squeeze, names: names, workspace: Workspace())
            block.initialize(&rng)
            for b in block.batchNorms { rng.fillUniform(b.weight.value, 0.5, 2); rng.fillUniform(b.bias.value, -0.5, 0.5) }
            XCTAssertEqual(block.residual, t.s == 1 && t.cin == t.cout)
            XCTAssertEqual(block.batchNorms.count, expands ? 3 : 2)
            XCTAssertEqual(block.parameters.first?.name, expands ? "b.0.0.weight" : "b.0.0.weight")
            XCTAssertEqual(block.parameters.last?.name, expands ? "b.3.1.bias" : "b.2.1.bias")
            let tag = "\(t.cin)->\(t.cout) hidden \(t.hidden) k\(t.k) s\(t.s) \(t.act)"
            checkLayer("block \(tag)", block, input: randomTensor([t.cin, 3, 5, 5], &rng), samples: 16, eps: 2e-3, atol: 1e-2)
            block.gradientPool = GradientPool()
            checkLayer("block pooled \(tag)", block, input: randomTensor([t.cin, 3, 5, 5], &rng), samples: 16, eps: 2e-3, atol: 1e-2)
            block.training = false
            checkLayer("block eval \(tag)", block, input: randomTensor([t.cin, 3, 5, 5], &rng), samples: 16, eps: 2e-3, atol: 1e-2)
            let x = randomTensor([t.cin, 2, 6, 6], &rng)
            let a = block.forward(x).array, b = block.predict(x).array
            XCTAssertTrue(a.elementsEqual(b, by: { $0.bitPattern == $1.bitPattern }), "predict \(tag)")
        }
    }
}
