import LDKernels

/// ResNet-50 and ResNet-101 with torchvision's layout (v1.5: the stride on each stage's first 3x3): a stem
/// (`small`: 3x3 stride 1 without max-pool, the usual CIFAR variant; `imagenet`: 7x7 stride 2 and a 3x3
/// max-pool), four stages of bottleneck blocks (widths 64, 128, 256, 512, outputs 4x; 3-4-6-3 blocks for
/// ResNet-50, 3-4-23-3 for ResNet-101), global average pool, linear from 2048. Parameter names as
/// torchvision's: `conv1`, `bn1`, `layerS.B.conv1..3|bn1..3|downsample.0|1`, `fc`.
public protocol ResNetBottleneck: Architecture {
    /// Blocks per stage.
    static var blocks: [Int] { get }
}

extension ResNetBottleneck {
    public static var options: [ModelOption] { [.stem("small")] }

    public static func canonical(_ config: ModelConfig) -> ModelConfig {
        var c = config
        c.width = 64
        c.depth = blocks.reduce(0, +) * 3 + 2
        return c
    }

    public static func validate(_ c: ModelConfig) throws {
        guard ResNet18.stems.contains(c.stem) else {
            throw LDError("model config: unknown \(name) stem '\(c.stem)' (expected \(ResNet18.stems.joined(separator: " or ")))")
        }
    }

    public static func layers<G: RandomNumberGenerator>(_ config: ModelConfig, workspace ws: Workspace,
                                                        rng: inout G) -> (layers: [Layer], batchNorms: [BatchNorm2d]) {
        var (layers, bns) = ResNet18.stem(config, workspace: ws, rng: &rng)
        var c = 64
        for (stage, width) in [64, 128, 256, 512].enumerated() {
            for b in 0..<blocks[stage] {
                let stride = (stage > 0 && b == 0) ? 2 : 1
                let block = ResidualBlock.bottleneck(c, width: width, stride: stride, name: "layer\(stage + 1).\(b)", workspace: ws)
                block.initialize(&rng)
                layers.append(block)
                bns += block.batchNorms
                c = 4 * width
            }
        }
        let fc = Linear(c, config.classes, name: "fc")
        fc.initialize(&rng)
        return (layers + [GlobalAvgPool2d(), fc], bns)
    }

    public static func describe(_ c: ModelConfig) -> String { "\(name) \(c.stem)" }

    public static func size(_ c: ModelConfig) -> (parameters: Double, activationsPerImage: Double) {
        // Counted from the layout (convolutions without bias, two BN parameters per channel).
        var params = Double(c.channels) * 64 * (c.stem == "imagenet" ? 49 : 9) + 128
        var cin = 64.0
        for (stage, w) in [64.0, 128, 256, 512].enumerated() {
            for b in 0..<blocks[stage] {
                params += cin * w + w * w * 9 + w * 4 * w + 2 * (w + w + 4 * w)
                if b == 0 { params += cin * 4 * w + 8 * w }
                cin = 4 * w
            }
        }
        params += 2049 * Double(c.classes)
        let s = Double(c.imageSize), r = c.stem == "imagenet" ? s / 4 : s
        // per stage about 12 stored tensors per block at 4x the width; each stage a quarter of the pixels
        let acts = (c.stem == "imagenet" ? 2 * 64 * (s / 2) * (s / 2) : 0)
            + zip(blocks, [64.0, 128, 256, 512]).enumerated().reduce(0.0) { sum, e in
                let (stage, (n, w)) = e
                let side = r / Double(1 << stage)
                return sum + Double(n) * 12 * 4 * w * side * side / 4
            }
        return (params, acts)
    }
}

public enum ResNet50: ResNetBottleneck {
    public static let name = "resnet50"
    public static let summary = "ResNet-50 (torchvision's layout, bottleneck blocks)"
    public static let blocks = [3, 4, 6, 3]
}

public enum ResNet101: ResNetBottleneck {
    public static let name = "resnet101"
    public static let summary = "ResNet-101 (torchvision's layout, bottleneck blocks)"
    public static let blocks = [3, 4, 23, 3]
}
