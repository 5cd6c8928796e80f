import XCTest
import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

final class ModelTests: XCTestCase {
    func testResNet18Structure() throws {
        var rng = SplitMix64(seed: 21)
        let m = try Model(.resnet18(classes: 10), rng: &rng)
        XCTAssertEqual(m.parameters.reduce(0) { $0 + $1.value.count }, 11_173_962)   // torchvision, 3×3 stem
        XCTAssertEqual(m.batchNorms.count, 20)
        XCTAssertEqual(m.batchNorms[0].name, "bn1")
        XCTAssertEqual(m.batchNorms[1].name, "layer1.0.bn1")
        XCTAssertEqual(m.batchNorms[2].name, "layer1.0.bn2")
        XCTAssertEqual(m.batchNorms[7].name, "layer2.0.downsample.1")
        XCTAssertEqual(Set(m.parameters.map { $0.name }).count, m.parameters.count, "unique names")
        XCTAssertEqual(m.parameters.first?.name, "conv1.weight")
        XCTAssertEqual(m.parameters.last?.name, "fc.bias")
        XCTAssertEqual(m.buffers.count, 40)
        XCTAssertEqual(m.macsPerImage, 555_422_720)   // 0.56 GMAC
        // Kaiming-normal fan-out: std sqrt(2/(64·9)) for layer1 convs
        let w = m.parameters.first { $0.name == "layer1.0.conv1.weight" }!.value
        var s = 0.0; for i in 0..<w.count { s += Double(w.data[i] * w.data[i]) }
        XCTAssertEqual((s / Double(w.count)).squareRoot(), (2.0 / 576).squareRoot(), accuracy: 0.003)

        let big = try Model(.resnet18(channels: 3, imageSize: 64, classes: 5, stem: "imagenet"), rng: &rng)
        let y = big.forward(randomTensor([2, 3, 64, 64], &rng))
        XCTAssertEqual(y.shape, [2, 5])
    }

    func testConvNetStructureAndConfigJSON() throws {
        var rng = SplitMix64(seed: 22)
        let cfg = ModelConfig.convnet()
        let m = try Model(cfg, rng: &rng)
        // 3 convs (w·c·9 + w), 3 BN (2w), fc 1152·10 + 10
        XCTAssertEqual(m.parameters.reduce(0) { $0 + $1.value.count }, (128 * 9 + 128) + 2 * (128 * 128 * 9 + 128) + 3 * 256 + 11530)
        XCTAssertEqual(m.parameters.map { $0.name }.prefix(4), ["blocks.0.conv.weight", "blocks.0.conv.bias", "blocks.0.bn.weight", "blocks.0.bn.bias"])
        XCTAssertEqual(m.forward(randomTensor([2, 1, 28, 28], &rng)).shape, [2, 10])
        let data = try JSONEncoder().encode(cfg)
        XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: data), cfg)
        XCTAssertThrowsError(try Model(ModelConfig(arch: "vgg", channels: 1, imageSize: 28, classes: 10), rng: &rng))
        XCTAssertThrowsError(try Model(.convnet(depth: 6, imageSize: 28), rng: &rng))
    }

    func testClassStatisticsMatchDirectComputation() throws {
        var rng = SplitMix64(seed: 23)
        let m = try Model(.convnet(width: 3, depth: 2, channels: 1, imageSize: 6, classes: 3), rng: &rng)
        m.training = false
        let x = randomTensor([5, 1, 6, 6], &rng)
        let labels: [Int32] = [2, 0, 2, 1, 2]
        labels.withUnsafeBufferPointer { _ = m.forward(x, classLabels: $0.baseAddress) }
        // direct: BN input of layer 0 is conv0's output (C,N,H,W), which the fused first block does not keep:
        // run its convolution alone (a one-channel NCHW batch is already channel-major)
        let conv = (m.layers[0] as! ConvBatchNorm).conv
        let y = conv.forward(Tensor(shape: [1, 5, 6, 6], values: x.array)), c = 3, hw = 36
        let stats = m.batchNorms[0].classStatistics!
        for k in 0..<3 {
            let imgs = labels.indices.filter { Int(labels[$0]) == k }
            XCTAssertEqual(stats.count[k], Double(imgs.count * hw))
            for ch in 0..<c {
                var s = 0.0, q = 0.0
                for i in imgs { for p in 0..<hw { let v = Double(y.data[(ch * 5 + i) * hw + p]); s += v; q += v * v } }
                XCTAssertEqual(stats.sum[k * c + ch], s, accuracy: 1e-4)
                XCTAssertEqual(stats.sumSquares[k * c + ch], q, accuracy: 1e-4)
            }
        }
        XCTAssertNotNil(m.batchNorms[1].classStatistics)
        XCTAssertEqual(m.classStatistics.map { $0.name }, ["blocks.0.bn.class_stats", "blocks.1.bn.class_stats"])
    }

    /// A tiny ConvNet fits a small fixed batch (bench-local SGD; the engine's optimisers replace this).
    func testTinyConvNetFitsBatch() throws {
        var rng = SplitMix64(seed: 24)
        let m = try Model(.convnet(width: 8, depth: 2, channels: 1, imageSize: 8, classes: 4), rng: &rng)
        let x = randomTensor([8, 1, 8, 8], &rng)
        let labels: [Int32] = [0, 1, 2, 3, 0, 1, 2, 3]
        let d = Tensor(shape: [0])
        var loss: Float = 0
        var velocity = m.parameters.map { [Float](repeating: 0, count: $0.value.count) }
        for _ in 0..<150 {
            m.zeroGrad()
            loss = try CrossEntropy.loss(logits: m.forward(x), labels: labels, dLogits: d)
            m.backward(d)
            for (k, p) in m.parameters.enumerated() {
                for i in 0..<p.value.count {
                    velocity[k][i] = 0.9 * velocity[k][i] + p.grad.data[i]
                    p.value.data[i] -= 0.05 * velocity[k][i]
                }
            }
        }
        XCTAssertLessThan(loss, 0.02)
    }

    /// Fixed seed and single-threaded BLAS: bit-identical weights run after run.
    func testDeterministicTraining() throws {
        Engine.threads = 1
        defer { Engine.threads = 2 }
        func run() throws -> [Float] {
            var rng = SplitMix64(seed: 25)
            let m = try Model(.resnet18(channels: 3, imageSize: 8, classes: 3), rng: &rng)
            let x = randomTensor([4, 3, 8, 8], &rng)
            let d = Tensor(shape: [0])
            for _ in 0..<2 {
                m.zeroGrad()
                try CrossEntropy.loss(logits: m.forward(x), labels: [0, 1, 2, 0], dLogits: d)
                m.backward(d)
                for p in m.parameters { for i in 0..<p.value.count { p.value.data[i] -= 0.1 * p.grad.data[i] } }
            }
            return m.parameters.flatMap { $0.value.array } + m.buffers.flatMap { $0.tensor.array }
        }
        let a = try run(), b = try run()
        XCTAssertEqual(a.count, b.count)
        XCTAssertTrue(a.elementsEqual(b, by: { $0.bitPattern == $1.bitPattern }))
        // The engine's 2-way splits are static (no dynamic scheduling, no atomics): 2 threads repeat too.
        Engine.threads = 2
        let c = try run(), d = try run()
        XCTAssertTrue(c.elementsEqual(d, by: { $0.bitPattern == $1.bitPattern }))
    }

    /// Backward through the model's shared gradient buffers gives bit-identical gradients to per-layer
    /// buffers, with a handful of buffers that stop growing after the first steps (a buffer may grow once
    /// more on the second step, when the ping-pong meets buffers sized by the first).
    func testSharedGradientBuffers() throws {
        for config in [ModelConfig.resnet18(channels: 3, imageSize: 8, classes: 3),
                       ModelConfig.convnet(width: 8, depth: 3, channels: 1, imageSize: 16, classes: 3)] {
            func grads(shared: Bool) throws -> (grads: [Float], dx: [Float], model: Model) {
                var rng = SplitMix64(seed: 27)
                let m = try Model(config, rng: &rng)
                if !shared {
                    for l in m.layers {
                        (l as? Conv2d)?.gradientPool = nil; (l as? BatchNorm2d)?.gradientPool = nil
                        (l as? BasicBlock)?.gradientPool = nil; (l as? ConvBatchNorm)?.gradientPool = nil
                    }
                }
                let x = randomTensor([4, config.channels, config.imageSize, config.imageSize], &rng)
                let d = Tensor(shape: [0])
                var dx: [Float] = []
                for step in 0..<4 {
                    m.zeroGrad()
                    try CrossEntropy.loss(logits: m.forward(x), labels: [0, 1, 2, 0], dLogits: d)
                    dx = m.backward(d, inputGrad: true)!.array
                    if step == 1 { held = m.gradients.floatsHeld }
                }
                return (m.parameters.flatMap { $0.grad.array }, dx, m)
            }
            var held = 0
            let own = try grads(shared: false)
            XCTAssertEqual(own.model.gradients.tensorCount, 0)
            let pooled = try grads(shared: true)
            XCTAssertTrue(own.grads.elementsEqual(pooled.grads, by: { $0.bitPattern == $1.bitPattern }), config.arch)
            XCTAssertTrue(own.dx.elementsEqual(pooled.dx, by: { $0.bitPattern == $1.bitPattern }), config.arch)
            XCTAssertLessThanOrEqual(pooled.model.gradients.tensorCount, 5, config.arch)
            XCTAssertEqual(pooled.model.gradients.floatsHeld, held, "\(config.arch): the pool grew after the second step")
        }
    }

    /// `predict` (BatchNorm, residual addition and ReLU applied inside the Winograd convolutions) gives the same
    /// logits as eval-mode `forward`, bit for bit, with BN statistics and affine parameters away from the
    /// identity; on 16×16 inputs ResNet-18's last stage (2×2 planes) takes the unfused path, so both run.
    /// ResNet-50's 1×1 convolutions apply BatchNorm (and the shortcut) per block of columns: at 16 px and batch
    /// 4 its first stage has 1,024 columns, two blocks of its last convolution (one per thread).
    func testPredictMatchesEvalForward() throws {
        for (config, n) in [(ModelConfig.resnet18(channels: 3, imageSize: 16, classes: 5), 3),
                            (try ModelConfig.named("resnet50", width: 64, depth: 3, stem: "small", channels: 3, imageSize: 8, classes: 5), 3),
                            (try ModelConfig.named("resnet50", width: 64, depth: 3, stem: "small", channels: 3, imageSize: 16, classes: 5), 4),
                            (ModelConfig.convnet(width: 32, depth: 3, channels: 1, imageSize: 28, classes: 4), 3)] {
            var rng = SplitMix64(seed: 31)
            let m = try Model(config, rng: &rng)
            for b in m.batchNorms {
                rng.fillUniform(b.runningMean, -0.5, 0.5); rng.fillUniform(b.runningVar, 0.5, 1.5)
                rng.fillUniform(b.weight.value, 0.5, 1.5); rng.fillUniform(b.bias.value, -0.5, 0.5)
            }
            m.training = false
            let x = randomTensor([n, config.channels, config.imageSize, config.imageSize], &rng)
            let a = m.forward(x).array
            let b = m.predict(x).array
            XCTAssertEqual(a.count, b.count)
            XCTAssertTrue(a.elementsEqual(b, by: { $0.bitPattern == $1.bitPattern }), config.arch)
            XCTAssertTrue(a.elementsEqual(m.forward(x).array, by: { $0.bitPattern == $1.bitPattern }), "forward after predict")
        }
    }

    /// Two threads give the same results as one (up to GEMM summation order).
    func testThreadCountAgreement() throws {
        var rng = SplitMix64(seed: 26)
        let m = try Model(.convnet(width: 16, depth: 3, channels: 1, imageSize: 28, classes: 10), rng: &rng)
        let x = randomTensor([6, 1, 28, 28], &rng)
        Engine.threads = 1
        let a = m.forward(x).array
        Engine.threads = 2
        let b = m.forward(x).array
        for (u, v) in zip(a, b) { XCTAssertEqual(u, v, accuracy: 1e-4) }
    }
}

final class ModelSummaryTests: XCTestCase {
    func testSummaryLines() throws {
        var rng = SplitMix64(seed: 27)
        let m = try Model(.convnet(), rng: &rng)
        let s = m.summary
        XCTAssertEqual(s.count, 1 + m.layers.count)
        XCTAssertTrue(s[0].hasPrefix("convnet: input 1x28x28"), s[0])
        XCTAssertTrue(s.last!.contains("linear fc"), s.last!)
        XCTAssertTrue(s[s.count - 3].contains(" 128x  3x3"), s[s.count - 3])
        let r = try Model(.resnet18(), rng: &rng).summary
        XCTAssertTrue(r.contains { $0.contains("block layer4.1") && $0.contains(" 512x  4x4") }, r.joined(separator: "\n"))
    }
}

final class EngineTests: XCTestCase {
    func testBLASCoreIsNotTheSSE3Fallback() {
        let core = Engine.blasCore
        XCTAssertFalse(core.isEmpty)
        // On an AVX2/AVX-512 machine the engine must not be left on OpenBLAS's SSE3 fallback kernels.
        // (Unless kernels were chosen on purpose: the tool tests pin the portable ones.)
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
           let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8), info.contains(" avx2 ") {
            XCTAssertNotEqual(core.lowercased(), "prescott")
        }
    }
}

/// The architecture registry: each model is one file; the tools list and build them by name.
final class ArchitectureRegistryTests: XCTestCase {
    func testEveryArchitectureBuildsWithItsDefaultsAndRunsAForward() throws {
        XCTAssertEqual(Set(Architectures.names).count, Architectures.names.count, "names are unique")
        for arch in Architectures.all {
            var width = 64, depth = 3, stem = "small"
            for o in arch.options {
                switch o {
                case .width(let w): width = w
                case .depth(let d): depth = d
                case .stem(let s): stem = s
                case .widthMultiplier: break
                }
            }
            for (channels, size) in [(1, 28), (3, 32)] {
                let config = try ModelConfig.named(arch.name, width: width, depth: depth, stem: stem, channels: channels,
                                                   imageSize: size, classes: 10)
                var rng = LDRandom(seed: 1, stage: .weightInit)
                let model = try Model(config, rng: &rng)
                model.training = false
                let y = model.forward(Tensor(shape: [2, channels, size, size]))
                XCTAssertEqual(y.shape, [2, 10], "\(arch.name) \(channels)x\(size)")
                XCTAssertFalse(model.summary.isEmpty)
            }
        }
    }

    func testUnknownNameListsTheKnownOnes() {
        XCTAssertThrowsError(try Architectures.named("vgg")) { error in
            for name in Architectures.names { XCTAssertTrue("\(error)".contains(name), "\(error)") }
        }
    }

    /// Model files key weights by parameter name: the registry must keep today's names and counts.
    func testParameterNamesAndCountsAreUnchanged() throws {
        var rng = LDRandom(seed: 1, stage: .weightInit)
        let convnet = try Model(.convnet(width: 64, depth: 3, channels: 1, imageSize: 28, classes: 10), rng: &rng)
        XCTAssertEqual(convnet.parameters.map(\.name).prefix(4),
                       ["blocks.0.conv.weight", "blocks.0.conv.bias", "blocks.0.bn.weight", "blocks.0.bn.bias"])
        XCTAssertEqual(convnet.parameters.last?.name, "fc.bias")
        XCTAssertEqual(convnet.parameters.reduce(0) { $0 + $1.value.count }, 640 + 2 * (36_864 + 64) + 3 * 128 + 5_770)
        let resnet = try Model(.resnet18(channels: 3, imageSize: 32, classes: 10), rng: &rng)
        let names = resnet.parameters.map(\.name)
        for n in ["conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.bias", "fc.weight"] {
            XCTAssertTrue(names.contains(n), n)
        }
        // torchvision's resnet18(num_classes=10) has 11,181,642 parameters; the 3x3 stem has 1,728 instead of 9,408.
        XCTAssertEqual(resnet.parameters.reduce(0) { $0 + $1.value.count }, 11_181_642 - 9_408 + 1_728)
        XCTAssertEqual(resnet.config, ModelConfig(arch: "resnet18", width: 64, depth: 18, channels: 3, imageSize: 32,
                                                  classes: 10, stem: "small"))
    }

    /// torchvision's resnet50() and resnet101() (1000 classes, ImageNet stem) have 25,557,032 and 44,549,160
    /// parameters; the size estimate used before building (`Architecture.size`) counts the same.
    func testBottleneckResNetsHaveTorchvisionsParameterCounts() throws {
        for (name, count, bns) in [("resnet50", 25_557_032, 53), ("resnet101", 44_549_160, 104)] {
            let config = try ModelConfig.named(name, width: 64, depth: 3, stem: "imagenet", channels: 3, imageSize: 32, classes: 1000)
            var rng = LDRandom(seed: 1, stage: .weightInit)
            let m = try Model(config, rng: &rng)
            XCTAssertEqual(m.parameters.reduce(0) { $0 + $1.value.count }, count, name)
            XCTAssertEqual(Int(try Architectures.named(name).size(config).parameters), count, name)
            XCTAssertEqual(m.batchNorms.count, bns, name)
            let names = m.parameters.map(\.name)
            for n in ["conv1.weight", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight", "layer3.5.bn3.bias", "fc.weight"] {
                XCTAssertTrue(names.contains(n), "\(name) \(n)")
            }
            let small = try ModelConfig.named(name, width: 64, depth: 3, stem: "small", channels: 3, imageSize: 32, classes: 10)
            XCTAssertEqual(Int(try Architectures.named(name).size(small).parameters), count - 9_408 + 1_728 - 2049 * 990, name)
        }
    }
}
