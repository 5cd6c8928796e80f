import LDKernels

/// MobileNetV2 with torchvision's layout: a 3×3 convolution to 32 channels → BN+ReLU6 (stride 2 with the
/// `imagenet` stem; stride 1 with `small`, the usual 32 px CIFAR variant, which changes nothing else),
/// seventeen inverted residual blocks from the (t, c, n, s) table, a 1×1 convolution to 1280 → BN+ReLU6,
/// global average pool, linear. The width multiplier (`--width-mult`, default 1) scales every width as
/// torchvision does: round to a multiple of 8, at least 8 and not below 90% of the scaled width; the last
/// convolution is scaled only up (1280 below 1). ReLU6 is fused into the BatchNorms. Parameter names are torchvision's
/// state_dict keys: `features.0.0|1`, `features.B.conv.0.0|0.1|1.0|1.1|2|3` (`conv.0.0|0.1|1|2` for the
/// first block, which has no expansion), `features.18.0|1`, `classifier.1`.
///
/// torchvision's classifier has Dropout(0.2) before the linear layer; ld has no dropout (its training is
/// deterministic from the seed), so it is left out: eval-mode outputs are the same, training differs.
public enum MobileNetV2: Architecture {
    public static let name = "mobilenetv2"
    public static let summary = "MobileNetV2 (torchvision's layout)"
    public static let options: [ModelOption] = [.stem("small"), .widthMultiplier(1.0)]

    /// Expansion t, output channels c, blocks n, first stride s per stage (torchvision's table).
    static let settings: [(t: Int, c: Int, n: Int, s: Int)] =
        [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    /// Channels of the first convolution and of the last at width 1.
    static let firstChannels = 32, lastChannels = 1280

    /// torchvision's `_make_divisible(v, 8)`: the nearest multiple of 8 (halves up), at least 8, plus 8 when
    /// that fell below 90% of v.
    static func divisible(_ v: Double) -> Int {
        var n = max(8, Int(v + 4) / 8 * 8)
        if Double(n) < 0.9 * v { n += 8 }
        return n
    }

    /// The layout at width multiplier m: the first and last convolutions' channels and the blocks.
    struct Layout { let first: Int, last: Int, blocks: [Block] }
    /// One block of the layout: channels in and out, hidden width, stride.
    struct Block { let inChannels: Int, outChannels: Int, hidden: Int, stride: Int }

    static func layout(_ config: ModelConfig) -> Layout {
        let m = config.widthMultiplier ?? 1
        let first = divisible(Double(firstChannels) * m)
        var c = first, out: [Block] = []
        for s in settings {
            let cout = divisible(Double(s.c) * m)
            for i in 0..<s.n {
                out.append(Block(inChannels: c, outChannels: cout, hidden: c * s.t, stride: i == 0 ? s.s : 1))
                c = cout
            }
        }
        return Layout(first: first, last: divisible(Double(lastChannels) * max(1, m)), blocks: out)
    }

    /// Width and depth are not read: fixed at 32 (the first convolution at width 1) and 17 blocks; a width
    /// multiplier of 1 is stored as none.
    public static func canonical(_ config: ModelConfig) -> ModelConfig {
        var c = config
        c.width = firstChannels
        c.depth = settings.reduce(0) { $0 + $1.n }
        if c.widthMultiplier == 1 { c.widthMultiplier = nil }
        return c
    }

    /// Any input size builds (every stride-2 layer maps a side of 1 to 1, as torchvision's min_size 1×1).
    public static func validate(_ c: ModelConfig) throws {
        guard ResNet18.stems.contains(c.stem) else {
            throw LDError("model config: unknown \(name) stem '\(c.stem)' (expected \(ResNet18.stems.joined(separator: " or ")))")
        }
    }

    public static func layers<G: RandomNumberGenerator>(_ config: ModelConfig, workspace ws: Workspace,
                                                        rng: inout G) -> (layers: [Layer], batchNorms: [BatchNorm2d]) {
        let plan = layout(config), blocks = plan.blocks, firstChannels = plan.first, lastChannels = plan.last
        let stem = Conv2d(config.channels, firstChannels, kernel: 3, stride: config.stem == "imagenet" ? 2 : 1, padding: 1,
                          bias: false, name: "features.0.0", workspace: ws)
        stem.initialize(&rng)
        let stemBN = BatchNorm2d(firstChannels, activation: .relu6, name: "features.0.1")
        var layers: [Layer] = [stem, stemBN], bns = [stemBN]
        for (i, b) in blocks.enumerated() {
            let p = "features.\(i + 1).conv"
            let expands = b.hidden != b.inChannels
            let names = expands
                ? InvertedResidual.Names(expand: p + ".0", depthwise: p + ".1", project: p + ".2", projectBN: p + ".3")
                : InvertedResidual.Names(expand: nil, depthwise: p + ".0", project: p + ".1", projectBN: p + ".2")
            let block = InvertedResidual(b.inChannels, b.outChannels, hidden: b.hidden, kernel: 3, stride: b.stride,
                                         activation: .relu6, name: "features.\(i + 1)", names: names, workspace: ws)
            block.initialize(&rng)
            layers.append(block)
            bns += block.batchNorms
        }
        let last = blocks.count + 1
        let head = Conv2d(blocks.last!.outChannels, lastChannels, kernel: 1, bias: false, name: "features.\(last).0", workspace: ws)
        head.initialize(&rng)
        let headBN = BatchNorm2d(lastChannels, activation: .relu6, name: "features.\(last).1")
        let fc = Linear(lastChannels, config.classes, name: "classifier.1")
        rng.fillNormal(fc.weight.value, std: 0.01)
        fc.bias.value.fill(0)
        return (layers + [head, headBN, GlobalAvgPool2d(), fc], bns + [headBN])
    }

    public static func describe(_ c: ModelConfig) -> String { "\(name) \(c.stem)" + (c.widthMultiplier.map { " x\($0)" } ?? "") }

    public static func size(_ c: ModelConfig) -> (parameters: Double, activationsPerImage: Double) {
        let plan = layout(c), blocks = plan.blocks, firstChannels = plan.first, lastChannels = plan.last
        let s = Double(c.imageSize)
        var side = c.stem == "imagenet" ? ((s - 1) / 2).rounded(.down) + 1 : s
        var params = Double(c.channels) * Double(firstChannels) * 9 + 2 * Double(firstChannels)
        var acts = 3 * Double(firstChannels) * side * side
        for b in blocks {
            let cin = Double(b.inChannels), cout = Double(b.outChannels), h = Double(b.hidden)
            let a = side * side
            if b.hidden != b.inChannels { params += cin * h + 2 * h; acts += 2 * h * a }
            side = b.stride == 2 ? ((side - 1) / 2).rounded(.down) + 1 : side
            params += 9 * h + 2 * h + h * cout + 2 * cout
            // depthwise and its BN at the output size, the projection and its BN, one gradient copy
            acts += 2 * h * side * side + 3 * cout * side * side
        }
        let last = Double(lastChannels)
        params += Double(blocks.last!.outChannels) * last + 2 * last + (last + 1) * Double(c.classes)
        acts += 2 * last * side * side + last
        return (params, 1.5 * acts)
    }
}
