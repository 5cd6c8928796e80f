import XCTest
import LDKernels
import LDNetworks

/// VGG-11-BN and the adaptive average pool its ImageNet classifier starts with.
final class VGGTests: XCTestCase {
    func testAdaptiveAvgPoolGradientAndWindows() {
        var rng = SplitMix64(seed: 3)
        checkLayer("adaptive avgpool 5x7->3x2", AdaptiveAvgPool2d(3, 2), input: randomTensor([2, 3, 5, 7], &rng))
        checkLayer("adaptive avgpool 2x2->7x7", AdaptiveAvgPool2d(7, 7), input: randomTensor([2, 2, 2, 2], &rng))
        // PyTorch's windows: output i of n over size s averages floor(i s/n) ..< ceil((i+1) s/n).
        let x = Tensor(shape: [1, 1, 1, 5], values: [1, 2, 3, 4, 5])
        XCTAssertEqual(AdaptiveAvgPool2d(1, 3).forward(x).array, [1.5, 3, 4.5])
        let one = Tensor(shape: [1, 1, 1, 1], values: [4])
        XCTAssertEqual(AdaptiveAvgPool2d(2, 2).forward(one).array, [4, 4, 4, 4], "a smaller input is replicated")
        let same = randomTensor([2, 2, 7, 7], &rng)
        XCTAssertEqual(AdaptiveAvgPool2d(7, 7).forward(same).array, same.array, "an input of the output size passes unchanged")
    }

    /// torchvision's vgg11_bn(num_classes=1000) has 132,868,840 parameters at any input size (its classifier
    /// follows an adaptive 7x7 pool); the size estimate counts the same before anything is built.
    func testImageNetStemHasTorchvisionsParameterCountAndNames() throws {
        let config = try ModelConfig.named("vgg11", width: 0, depth: 0, stem: "imagenet", channels: 3, imageSize: 32, classes: 1000)
        XCTAssertEqual(Int(try Architectures.named("vgg11").size(config).parameters), 132_868_840)
        var rng = LDRandom(seed: 1, stage: .weightInit)
        let m = try Model(config, rng: &rng)
        XCTAssertEqual(m.parameters.reduce(0) { $0 + $1.value.count }, 132_868_840)
        XCTAssertEqual(m.batchNorms.count, 8)
        let names = m.parameters.map(\.name)
        for n in ["features.0.weight", "features.0.bias", "features.1.weight", "features.25.weight", "features.26.bias",
                  "classifier.0.weight", "classifier.3.bias", "classifier.6.weight"] {
            XCTAssertTrue(names.contains(n), n)
        }
        XCTAssertEqual(m.buffers.first?.name, "features.1.running_mean")
        XCTAssertEqual(m.parameters.first(where: { $0.name == "classifier.6.weight" })?.value.shape, [1000, 4096])
        m.training = false
        XCTAssertEqual(m.forward(Tensor(shape: [1, 3, 32, 32])).shape, [1, 1000])
    }

    /// The small stem: features, then one linear layer; 28 px inputs are padded to 32 by the first convolution.
    func testSmallStemPadsSmallInputsAndHasOneLinearLayer() throws {
        let config = try ModelConfig.named("vgg11", width: 0, depth: 0, stem: "small", channels: 1, imageSize: 28, classes: 10)
        var rng = LDRandom(seed: 1, stage: .weightInit)
        let m = try Model(config, rng: &rng)
        let convs = 1 * 9 * 64 + 64 * 9 * 128 + 128 * 9 * 256 + 256 * 9 * 256 + 256 * 9 * 512 + 3 * 512 * 9 * 512
        let perChannel = 3 * (64 + 128 + 256 + 256 + 512 * 4)   // conv bias, BN weight and bias
        XCTAssertEqual(m.parameters.reduce(0) { $0 + $1.value.count }, convs + perChannel + 513 * 10)
        XCTAssertEqual(Int(VGG11.size(config).parameters), convs + perChannel + 513 * 10)
        XCTAssertEqual(m.parameters.last?.name, "classifier.0.bias")
        XCTAssertEqual((m.layers.first as? Conv2d)?.padding, 3)
        XCTAssertThrowsError(try Model(try ModelConfig.named("vgg11", width: 0, depth: 0, stem: "small", channels: 3,
                                                             imageSize: 8, classes: 10), rng: &rng)) {
            XCTAssertTrue("\($0)".contains("at least 32 px"), "\($0)")
        }
        // Conv biases and the linear layer start at zero, linear weights at std 0.01 (torchvision's init).
        let fc = m.parameters.first(where: { $0.name == "classifier.0.weight" })!.value.array
        let std = (fc.map { Double($0 * $0) }.reduce(0, +) / Double(fc.count)).squareRoot()
        XCTAssertEqual(std, 0.01, accuracy: 0.002)
        XCTAssertEqual(m.parameters.first(where: { $0.name == "features.0.bias" })!.value.array, [Float](repeating: 0, count: 64))
    }

    /// Eval-mode predict (convolution with its BatchNorm fused) equals forward.
    func testPredictMatchesForward() throws {
        let config = try ModelConfig.named("vgg11", width: 0, depth: 0, stem: "small", channels: 3, imageSize: 32, classes: 10)
        var rng = LDRandom(seed: 2, stage: .weightInit)
        let m = try Model(config, rng: &rng)
        var r = SplitMix64(seed: 5)
        let x = randomTensor([3, 3, 32, 32], &r)
        m.training = false
        let a = m.forward(x).array, b = m.predict(x).array
        for (u, v) in zip(a, b) { XCTAssertEqual(u, v, accuracy: 1e-3 * max(1, abs(u))) }
    }
}
