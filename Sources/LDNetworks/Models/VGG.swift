import LDKernels

/// VGG-11 with BatchNorm (configuration "A" of Simonyan and Zisserman, torchvision's `vgg11_bn`): eight
/// conv3x3 (pad 1, bias) -> BN -> ReLU layers of 64, 128, 256, 256, 512, 512, 512, 512 channels with a 2x2
/// max-pool after the 1st, 2nd, 4th, 6th and 8th, then a classifier. Parameter names are torchvision's
/// indices into its `features` and `classifier` sequences (`features.0.weight`, `features.1.running_mean`,
/// `classifier.6.bias`).
///
/// Stems (`--stem`):
/// - `imagenet`: torchvision's model: an adaptive average pool to 7x7, then linear 25088 -> 4096, ReLU,
///   4096 -> 4096, ReLU, 4096 -> classes (132,868,840 parameters for 1000 classes). torchvision's two
///   Dropout(0.5) layers are left out: ld's students train without dropout (it would draw from a random
///   stream that the seeds' recipe has no place for), and inference is the same without them.
/// - `small` (default): the small-image VGG of the dataset-distillation benchmarks: the features, flattened
///   (512 x (S/32)^2), and one linear layer (`classifier.0`). Inputs under 32 px get extra padding on the
///   first convolution to reach 32 (28 px Fashion-MNIST: padding 3, as DC's VGG for MNIST).
///
/// Initialisation as torchvision's: conv weights Kaiming-normal (fan-out) with zero bias, BN 1 and 0,
/// linear weights normal(0, 0.01) with zero bias.
public enum VGG11: Architecture {
    public static let name = "vgg11"
    public static let summary = "VGG-11 with BatchNorm (torchvision's vgg11_bn)"
    public static let options: [ModelOption] = [.stem("small")]
    /// Channels per conv layer; 0 marks a 2x2 max-pool.
    static let layout = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0]

    public static func canonical(_ config: ModelConfig) -> ModelConfig {
        var c = config
        c.width = 64
        c.depth = 11
        return c
    }

    public static func validate(_ c: ModelConfig) throws {
        guard ResNet18.stems.contains(c.stem) else {
            throw LDError("model config: unknown vgg11 stem '\(c.stem)' (expected \(ResNet18.stems.joined(separator: " or ")))")
        }
        guard c.imageSize >= (c.stem == "small" ? 28 : 32) else {
            throw LDError("model config: vgg11's five 2x2 max-pools need at least 32 px (the small stem pads 28-31 px up to 32), got \(c.imageSize)")
        }
    }

    /// Padding of the first convolution: 1, or up to 3 to bring a small-stem input of 28-31 px up to 32.
    static func firstPadding(_ c: ModelConfig) -> Int {
        c.stem == "small" && c.imageSize < 32 ? 1 + (32 - c.imageSize + 1) / 2 : 1
    }

    /// The side of the feature map after the five max-pools.
    public static func featureSize(_ c: ModelConfig) -> Int {
        var s = c.imageSize + 2 * firstPadding(c) - 2
        for _ in 0..<5 { s /= 2 }
        return s
    }

    public static func layers<G: RandomNumberGenerator>(_ config: ModelConfig, workspace ws: Workspace,
                                                        rng: inout G) -> (layers: [Layer], batchNorms: [BatchNorm2d]) {
        var layers: [Layer] = [], bns: [BatchNorm2d] = []
        var c = config.channels, index = 0
        for v in layout {
            if v == 0 {
                layers.append(MaxPool2d(kernel: 2, stride: 2, padding: 0))
                index += 1
                continue
            }
            let conv = Conv2d(c, v, kernel: 3, padding: index == 0 ? firstPadding(config) : 1, bias: true,
                              name: "features.\(index)", workspace: ws)
            conv.initialize(&rng)
            conv.bias?.value.fill(0)
            let bn = BatchNorm2d(v, relu: true, name: "features.\(index + 1)")
            layers += [conv, bn]
            bns.append(bn)
            c = v; index += 3   // conv, BN, ReLU
        }
        func linear(_ f: Int, _ k: Int, _ i: Int) -> Linear {
            let l = Linear(f, k, name: "classifier.\(i)")
            rng.fillNormal(l.weight.value, std: 0.01)
            l.bias.value.fill(0)
            return l
        }
        if config.stem == "imagenet" {
            layers += [AdaptiveAvgPool2d(7, 7), Flatten(), linear(512 * 49, 4096, 0), ReLU(), linear(4096, 4096, 3), ReLU(),
                       linear(4096, config.classes, 6)]
        } else {
            let s = featureSize(config)
            layers += [Flatten(), linear(512 * s * s, config.classes, 0)]
        }
        return (layers, bns)
    }

    public static func describe(_ c: ModelConfig) -> String { "vgg11 \(c.stem)" }

    public static func size(_ c: ModelConfig) -> (parameters: Double, activationsPerImage: Double) {
        var params = 0.0, acts = 0.0, cin = Double(c.channels)
        var s = Double(c.imageSize + 2 * firstPadding(c) - 2)
        for v in layout {
            if v == 0 { s = (s / 2).rounded(.down); acts += cin * s * s; continue }
            let w = Double(v)
            params += cin * 9 * w + w + 2 * w
            acts += 2 * w * s * s   // conv output and BN output
            cin = w
        }
        let k = Double(c.classes)
        if c.stem == "imagenet" {
            params += 25_089 * 4096 + 4097 * 4096 + 4097 * k
            acts += 25_088 + 4 * 4096 + k
        } else {
            params += (512 * s * s + 1) * k
            acts += k
        }
        return (params, acts)
    }
}
