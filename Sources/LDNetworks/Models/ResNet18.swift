import LDKernels

/// ResNet-18 with torchvision's layout: a stem, four stages of two basic blocks (64, 128, 256, 512 channels;
/// stride 2 and a 1x1 downsample at the start of stages 2-4), global average pool, linear. The `small` stem
/// (3x3 stride 1, no max-pool) is the usual CIFAR variant; `imagenet` is 7x7 stride 2 and a 3x3 max-pool.
/// Parameters `conv1`, `bn1`, `layerS.B.conv1|bn1|conv2|bn2|downsample...`, `fc`.
public enum ResNet18: Architecture {
    public static let name = "resnet18"
    public static let summary = "ResNet-18 (torchvision's layout)"
    public static let options: [ModelOption] = [.stem("small")]
    public static let stems = ["small", "imagenet"]

    public static func canonical(_ config: ModelConfig) -> ModelConfig {
        var c = config
        c.width = 64
        c.depth = 18
        return c
    }

    public static func validate(_ c: ModelConfig) throws {
        guard stems.contains(c.stem) else {
            throw LDError("model config: unknown resnet18 stem '\(c.stem)' (expected small or imagenet)")
        }
    }

    public static func layers<G: RandomNumberGenerator>(_ config: ModelConfig, workspace ws: Workspace,
                                                        rng: inout G) -> (layers: [Layer], batchNorms: [BatchNorm2d]) {
        var layers: [Layer] = [], bns: [BatchNorm2d] = []
        let imagenet = config.stem == "imagenet"
        let conv = imagenet
            ? Conv2d(config.channels, 64, kernel: 7, stride: 2, padding: 3, bias: false, name: "conv1", workspace: ws)
            : Conv2d(config.channels, 64, kernel: 3, stride: 1, padding: 1, bias: false, name: "conv1", workspace: ws)
        conv.initialize(&rng)
        let bn = BatchNorm2d(64, relu: true, name: "bn1")
        layers += [conv, bn]
        bns.append(bn)
        if imagenet { layers.append(MaxPool2d(kernel: 3, stride: 2, padding: 1)) }
        var c = 64
        for (stage, width) in [64, 128, 256, 512].enumerated() {
            for b in 0..<2 {
                let stride = (stage > 0 && b == 0) ? 2 : 1
                let block = BasicBlock(c, width, stride: stride, name: "layer\(stage + 1).\(b)", workspace: ws)
                block.initialize(&rng)
                layers.append(block)
                bns += block.batchNorms
                c = width
            }
        }
        let fc = Linear(512, config.classes, name: "fc")
        fc.initialize(&rng)
        return (layers + [GlobalAvgPool2d(), fc], bns)
    }

    public static func describe(_ c: ModelConfig) -> String { "resnet18 \(c.stem)" }

    public static func size(_ c: ModelConfig) -> (parameters: Double, activationsPerImage: Double) {
        // 11,168,832 parameters without the classifier (torchvision's count, ImageNet stem, 3 channels).
        let params = 11_168_832 + Double(c.channels - 3) * 64 * 49 + 513 * Double(c.classes)
        let s = Double(c.imageSize), r = c.stem == "imagenet" ? s / 4 : s
        // about ten stored tensors per stage, each stage half the resolution and twice the channels
        let acts = (c.stem == "imagenet" ? 2 * 64 * (s / 2) * (s / 2) : 0) + 1200 * r * r
        return (params, acts)
    }
}
