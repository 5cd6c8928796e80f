import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

/// Optimiser steps against values computed by hand from PyTorch's update formulas (in double precision):
/// two parameters, a decaying kernel w = [1, -2] and a non-decaying bias b = [0.5], three steps with fixed
/// gradients.
final class OptimTests: XCTestCase {
    private let gradients: [[Float]] = [[0.1, 0.2, -0.3], [0.4, -0.1, 0.2], [-0.2, 0.3, 0.1]]

    private func makeParameters() -> [Parameter] {
        let w = Parameter(name: "fc.weight", shape: [2])
        let b = Parameter(name: "fc.bias", shape: [1], decays: false)
        w.value.data[0] = 1
        w.value.data[1] = -2
        b.value.data[0] = 0.5
        return [w, b]
    }

    /// Runs three steps (setting lr per step) and compares all three values after each step.
    private func check(_ opt: Optimizer, _ ps: [Parameter], lrs: [Float], expected: [[Double]],
                       file: StaticString = #filePath, line: UInt = #line) {
        for t in 0..<3 {
            opt.zeroGrad()
            ps[0].grad.data[0] += gradients[t][0]
            ps[0].grad.data[1] += gradients[t][1]
            ps[1].grad.data[0] += gradients[t][2]
            opt.learningRate = lrs[t]
            opt.step()
            let got = ps[0].value.array + ps[1].value.array
            for i in 0..<3 {
                XCTAssertEqual(Double(got[i]), expected[t][i], accuracy: 2e-6 * max(1, abs(expected[t][i])),
                               "step \(t + 1), element \(i)", file: file, line: line)
            }
        }
        XCTAssertEqual(opt.stepCount, 3, file: file, line: line)
    }

    func testSGDNesterovCoupledDecayOnAll() {
        // Step 1, w[0]: d = 0.1 + 0.01*1 = 0.11; b = 0.11; d = 0.11 + 0.9*0.11 = 0.209; w = 1 - 0.1*0.209.
        let ps = makeParameters()
        let opt = SGD(ps, learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01, decayScope: .all)
        check(opt, ps, lrs: [0.1, 0.1, 0.05], expected: [
            [0.9791, -2.0342, 0.55605],
            [0.89232971, -2.02591502, 0.540888505],
            [0.889875961, -2.05417755, 0.533302211],
        ])
    }

    func testSGDMomentumFlaggedDecay() {
        let ps = makeParameters()
        let opt = SGD(ps, learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, decayScope: .flagged)
        check(opt, ps, lrs: [0.1, 0.1, 0.05], expected: [
            [0.989, -2.018, 0.53],
            [0.938111, -2.022182, 0.537],
            [0.924741894, -2.03805281, 0.53515],
        ])
    }

    func testSGDResetClearsMomentum() {
        let ps = makeParameters()
        let opt = SGD(ps, learningRate: 0.1, momentum: 0.9)
        ps[0].grad.fill(1)
        ps[1].grad.fill(1)
        opt.step()
        XCTAssertEqual(opt.stateBuffer.count, 3)
        XCTAssertEqual(opt.stateBuffer[0], 1)
        opt.resetState()
        XCTAssertEqual(Array(opt.stateBuffer), [0, 0, 0])
        XCTAssertEqual(opt.stepCount, 0)
    }

    func testAdamWithL2OnDecayingGroup() {
        // Step 1, w[1]: g = 0.2 + 0.1*(-2) = 0, so w[1] stays -2; the bias moves by lr (bias-corrected m/sqrt(v) = -1).
        let ps = makeParameters()
        let opt = Adam(ps, learningRate: 0.01, betas: (0.9, 0.999), eps: 1e-8, weightDecay: 0.1)
        check(opt, ps, lrs: [0.01, 0.01, 0.01], expected: [
            [0.990000001, -2, 0.51],
            [0.98060054, -1.99255863, 0.511445205],
            [0.974652874, -1.9891405, 0.510813007],
        ])
    }

    func testAdamWDecoupledDecayWithNoDecayGroup() {
        // Step 1, w[0]: w = 1*(1 - 0.01*0.1) = 0.999, then 0.999 - 0.01*1 = 0.989. The bias is not shrunk.
        let ps = makeParameters()
        let opt = AdamW(ps, learningRate: 0.01, weightDecay: 0.1)
        check(opt, ps, lrs: [0.01, 0.01, 0.01], expected: [
            [0.989000001, -2.008, 0.51],
            [0.979167236, -2.00865537, 0.511445205],
            [0.974827075, -2.01299992, 0.510813007],
        ])
        XCTAssertEqual(opt.stateBuffer.count, 6)
    }

    func testImageAdamRecoverBetas() {
        let x = Tensor(shape: [1, 3], values: [0.2, -0.4, 1.5])
        let g = Tensor(shape: [1, 3])
        let grads: [[Float]] = [[0.3, -0.05, 0], [0.1, 0.2, -1], [-0.5, 0, 0.25]]
        let expected: [[Double]] = [
            [0.100000003, -0.30000002, 1.5],
            [0.023843879, -0.378236662, 1.59189366],
            [0.0850752842, -0.420447114, 1.61586466],
        ]
        let opt = ImageAdam(count: 3, learningRate: 0.1)      // betas (0.5, 0.9), eps 1e-8
        for t in 0..<3 {
            for i in 0..<3 { g.data[i] = grads[t][i] }
            opt.step(x, grad: g)
            for i in 0..<3 {
                XCTAssertEqual(Double(x.data[i]), expected[t][i], accuracy: 2e-6, "step \(t + 1), element \(i)")
            }
        }
        // A reset starts over: the same first step from the same point gives the same result.
        opt.reset(count: 3)
        XCTAssertEqual(opt.stepCount, 0)
        for i in 0..<3 { x.data[i] = [0.2, -0.4, 1.5][i]; g.data[i] = grads[0][i] }
        opt.step(x, grad: g)
        XCTAssertEqual(Double(x.data[1]), expected[0][1], accuracy: 2e-6)
    }

    /// Parameters large enough that the updates are split over the threads: three steps of every optimiser
    /// give the same bits on one thread (one pass over each tensor) and on two.
    func testSplitUpdatesEqualOneThread() {
        defer { Engine.threads = 2 }
        let sizes = [200_003, 70_001, 5]
        func run(threads: Int, _ make: ([Parameter]) -> Optimizer) -> [UInt32] {
            Engine.threads = threads
            let ps = sizes.enumerated().map { k, n in Parameter(name: "p\(k).weight", shape: [n], decays: k != 1) }
            for (k, p) in ps.enumerated() { for i in 0..<p.value.count { p.value.data[i] = Float((i * 7 + k) % 23) / 11 - 1 } }
            let opt = make(ps)
            for t in 1...3 {
                opt.zeroGrad()
                for (k, p) in ps.enumerated() { for i in 0..<p.grad.count { p.grad.data[i] = Float((i * 13 + t * 5 + k) % 31) / 15 - 1 } }
                opt.step()
            }
            return ps.flatMap { $0.value.array.map(\.bitPattern) }
        }
        let optimisers: [(String, ([Parameter]) -> Optimizer)] = [
            ("SGD", { SGD($0, learningRate: 0.1) }),
            ("SGD momentum", { SGD($0, learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, decayScope: .flagged) }),
            ("SGD Nesterov", { SGD($0, learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01) }),
            ("Adam", { Adam($0, learningRate: 0.01, weightDecay: 0.01) }),
            ("AdamW", { AdamW($0, learningRate: 0.01) }),
        ]
        for (name, make) in optimisers {
            let one = run(threads: 1, make), two = run(threads: 2, make)
            XCTAssertEqual(one.count, sizes.reduce(0, +))
            XCTAssertTrue(one == two, "\(name): two threads differ from one")
        }
        // recover's Adam on a batch of images
        func images(threads: Int) -> [UInt32] {
            Engine.threads = threads
            let n = 100_003, x = Tensor(shape: [n]), g = Tensor(shape: [n])
            for i in 0..<n { x.data[i] = Float(i % 17) / 8 - 1; g.data[i] = Float(i % 29) / 14 - 1 }
            let opt = ImageAdam(count: n, learningRate: 0.25)
            for _ in 0..<3 { opt.step(x, grad: g) }
            return x.array.map(\.bitPattern)
        }
        XCTAssertTrue(images(threads: 1) == images(threads: 2), "ImageAdam: two threads differ from one")
    }
}
