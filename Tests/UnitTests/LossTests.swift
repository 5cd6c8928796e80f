import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

final class LossTests: XCTestCase {
    func testCrossEntropyHard() throws {
        var rng = SplitMix64(seed: 11)
        let logits = randomTensor([4, 5], &rng, std: 2)
        let labels: [Int32] = [0, 3, 4, 1]
        let d = Tensor(shape: [4, 5])
        let l = try CrossEntropy.loss(logits: logits, labels: labels, dLogits: d)
        // direct value
        var want = 0.0
        for i in 0..<4 {
            let row = (0..<5).map { Double(logits.data[i * 5 + $0]) }
            let lse = log(row.map { exp($0) }.reduce(0, +))
            want += lse - row[Int(labels[i])]
        }
        XCTAssertEqual(Double(l), want / 4, accuracy: 1e-5)
        checkGradient("ce hard", x: logits, analytic: d.array, rng: &rng) {
            Double(try! CrossEntropy.loss(logits: logits, labels: labels, dLogits: nil))
        }
        XCTAssertThrowsError(try CrossEntropy.loss(logits: logits, labels: [0, 1, 2, 5], dLogits: nil))
    }

    func testCrossEntropySoft() throws {
        var rng = SplitMix64(seed: 12)
        let logits = randomTensor([3, 4], &rng, std: 2)
        let t = Tensor(shape: [3, 4])
        rng.fillUniform(t, 0, 1)
        for i in 0..<3 { let s = (0..<4).map { t.data[i * 4 + $0] }.reduce(0, +); for j in 0..<4 { t.data[i * 4 + j] /= s } }
        let d = Tensor(shape: [3, 4])
        _ = try CrossEntropy.loss(logits: logits, targets: t, dLogits: d)
        checkGradient("ce soft", x: logits, analytic: d.array, rng: &rng) {
            Double(try! CrossEntropy.loss(logits: logits, targets: t, dLogits: nil))
        }
        // one-hot soft targets equal hard targets
        let oh = Tensor(shape: [3, 4]); oh.data[1] = 1; oh.data[4] = 1; oh.data[11] = 1
        let a = try CrossEntropy.loss(logits: logits, targets: oh, dLogits: nil)
        let b = try CrossEntropy.loss(logits: logits, labels: [1, 0, 3], dLogits: nil)
        XCTAssertEqual(a, b, accuracy: 1e-6)
    }

    func testKLDivergence() throws {
        var rng = SplitMix64(seed: 13)
        let s = randomTensor([3, 6], &rng, std: 3), t = randomTensor([3, 6], &rng, std: 3)
        for (temp, t2) in [(Float(1), false), (4, true), (20, true)] {
            let d = Tensor(shape: [3, 6])
            let l = try KLDivergence.loss(student: s, teacher: t, temperature: temp, scaleByTSquared: t2, dStudent: d)
            XCTAssertGreaterThanOrEqual(l, 0)
            let same = try KLDivergence.loss(student: t, teacher: t, temperature: temp, dStudent: nil)
            XCTAssertEqual(same, 0, accuracy: 1e-6)
            checkGradient("kl T=\(temp)", x: s, analytic: d.array, eps: 1e-2, atol: 1e-4, rng: &rng) {
                Double(try! KLDivergence.loss(student: s, teacher: t, temperature: temp, scaleByTSquared: t2, dStudent: nil))
            }
        }
    }

    /// The recover objective through a model in eval mode: CE + 0.01 · BN loss, gradient w.r.t. the input
    /// through every BN hook, weights frozen.
    func testBNLossInputGradientThroughModel() throws {
        Engine.threads = 1
        defer { Engine.threads = 2 }
        var rng = SplitMix64(seed: 14)
        for config in [ModelConfig.convnet(width: 4, depth: 2, channels: 1, imageSize: 8, classes: 3),
                       ModelConfig.resnet18(channels: 3, imageSize: 8, classes: 3)] {
            let model = try Model(config, rng: &rng)
            // teacher-like running statistics: a few train-mode passes over random data
            for _ in 0..<3 { _ = model.forward(randomTensor([4, config.channels, 8, 8], &rng)) }
            model.training = false
            model.captureBatchStatistics = true
            let x = randomTensor([3, config.channels, 8, 8], &rng)
            let labels: [Int32] = [0, 2, 1]
            let dl = Tensor(shape: [0])
            func objective(_ grads: Bool) throws -> Double {
                let out = model.forward(x)
                let ce = try CrossEntropy.loss(logits: out, labels: labels, dLogits: grads ? dl : nil)
                let bn = try BNStatisticsLoss.loss(model.batchNorms, scale: 0.01)
                return Double(ce) + Double(bn)
            }
            _ = try objective(true)
            for p in model.parameters { p.zeroGrad() }
            let dx = model.backward(dl, inputGrad: true, paramGrads: false)!.array
            XCTAssertEqual(model.parameters.map { $0.grad.array.allSatisfy { $0 == 0 } }.allSatisfy { $0 }, true,
                           "recover backward must not touch weight gradients")
            checkGradient("recover \(config.arch)", x: x, analytic: dx, samples: config.arch == "convnet" ? 24 : 8,
                          eps: 1e-2, atol: 2e-3, rng: &rng) { try! objective(false) }
        }
    }

    func testBNLossValueAndClassTarget() throws {
        var rng = SplitMix64(seed: 15)
        let model = try Model(.convnet(width: 3, depth: 1, channels: 1, imageSize: 4, classes: 2), rng: &rng)
        model.training = false
        let x = randomTensor([2, 1, 4, 4], &rng)
        let labels: [Int32] = [1, 1]
        labels.withUnsafeBufferPointer { _ = model.forward(x, classLabels: $0.baseAddress) }
        model.captureBatchStatistics = true
        _ = model.forward(x)
        // the class statistics of class 1 are exactly this batch's: loss 0
        XCTAssertEqual(try BNStatisticsLoss.loss(model.batchNorms, target: .classStatistics(1)), 0, accuracy: 1e-5)
        XCTAssertThrowsError(try BNStatisticsLoss.loss(model.batchNorms, target: .classStatistics(0)))
        // against running stats (0, 1): 10 · (‖μ‖ + ‖σ² − 1‖)
        let bn = model.batchNorms[0]
        var nm = 0.0, nv = 0.0
        for c in 0..<3 { nm += pow(Double(bn.batchMean.data[c]), 2); nv += pow(Double(bn.batchVariance.data[c]) - 1, 2) }
        XCTAssertEqual(Double(try BNStatisticsLoss.loss(model.batchNorms)), 10 * (nm.squareRoot() + nv.squareRoot()), accuracy: 1e-4)
    }
}
