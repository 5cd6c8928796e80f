import LDKernels

/// EfficientNet-B0 with torchvision's layout: a 3×3 convolution to 32 channels → BN+SiLU (stride 2 with the
/// `imagenet` stem, stride 1 with `small` for 32 px inputs), seven stages of MBConv blocks (expansion, kernel 3
/// or 5, stride, channels from torchvision's table; squeeze-and-excitation to a quarter of each block's input
/// channels), a 1×1 convolution to 1280 → BN+SiLU, global average pool, linear. SiLU is fused into the
/// BatchNorms. BatchNorm eps 1e-5 and momentum 0.1: torchvision sets 1e-3 and 0.01 only from B5 up (and for
/// V2); B0 keeps PyTorch's defaults. Parameter names are torchvision's state_dict keys: `features.0.0|1`,
/// `features.S.B.block.0.0|0.1|1.0|1.1|2.fc1|2.fc2|3.0|3.1` (`block.0.0|0.1|1.fc1|1.fc2|2.0|2.1` without
/// expansion), `features.8.0|1`, `classifier.1`.
///
/// Left out, both for ld's deterministic training: torchvision's Dropout(0.2) before the classifier and its
/// stochastic depth (blocks dropped with a probability rising to 0.2); eval-mode outputs are the same.
public enum EfficientNetB0: Architecture {
    public static let name = "efficientnet-b0"
    public static let summary = "EfficientNet-B0 (torchvision's layout)"
    public static let options: [ModelOption] = [.stem("small")]

    /// Expansion, kernel, first stride, input and output channels, blocks per stage (torchvision's table).
    static let settings: [(e: Int, k: Int, s: Int, cin: Int, cout: Int, n: Int)] =
        [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
         (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
    static let firstChannels = 32, lastChannels = 1280

    /// One block: stage and index in it, channels, hidden width, kernel, stride, squeeze width.
    struct Block { let stage: Int, index: Int, inChannels: Int, outChannels: Int, hidden: Int, kernel: Int, stride: Int, squeeze: Int }

    /// The sixteen blocks in order.
    static var blocks: [Block] {
        var out: [Block] = []
        for (stage, s) in settings.enumerated() {
            for i in 0..<s.n {
                let cin = i == 0 ? s.cin : s.cout
                out.append(Block(stage: stage, index: i, inChannels: cin, outChannels: s.cout, hidden: cin * s.e,
                                 kernel: s.k, stride: i == 0 ? s.s : 1, squeeze: max(1, cin / 4)))
            }
        }
        return out
    }

    /// Width and depth are not read: fixed at the first convolution's 32 channels and 16 blocks.
    public static func canonical(_ config: ModelConfig) -> ModelConfig {
        var c = config
        c.width = firstChannels
        c.depth = blocks.count
        return c
    }

    /// Any input size builds (every stride-2 layer maps a side of 1 to 1).
    public static func validate(_ c: ModelConfig) throws {
        guard ResNet18.stems.contains(c.stem) else {
            throw LDError("model config: unknown \(name) stem '\(c.stem)' (expected \(ResNet18.stems.joined(separator: " or ")))")
        }
    }

    public static func layers<G: RandomNumberGenerator>(_ config: ModelConfig, workspace ws: Workspace,
                                                        rng: inout G) -> (layers: [Layer], batchNorms: [BatchNorm2d]) {
        let stem = Conv2d(config.channels, firstChannels, kernel: 3, stride: config.stem == "imagenet" ? 2 : 1, padding: 1,
                          bias: false, name: "features.0.0", workspace: ws)
        stem.initialize(&rng)
        let stemBN = BatchNorm2d(firstChannels, activation: .silu, name: "features.0.1")
        var layers: [Layer] = [stem, stemBN], bns = [stemBN]
        for b in blocks {
            let p = "features.\(b.stage + 1).\(b.index).block"
            let expands = b.hidden != b.inChannels
            let names = expands
                ? InvertedResidual.Names(expand: p + ".0", depthwise: p + ".1", squeezeExcitation: p + ".2",
                                         project: p + ".3.0", projectBN: p + ".3.1")
                : InvertedResidual.Names(expand: nil, depthwise: p + ".0", squeezeExcitation: p + ".1",
                                         project: p + ".2.0", projectBN: p + ".2.1")
            let block = InvertedResidual(b.inChannels, b.outChannels, hidden: b.hidden, kernel: b.kernel, stride: b.stride,
                                         activation: .silu, squeeze: b.squeeze, name: "features.\(b.stage + 1).\(b.index)",
                                         names: names, workspace: ws)
            block.initialize(&rng)
            layers.append(block)
            bns += block.batchNorms
        }
        let last = settings.count + 1
        let head = Conv2d(settings.last!.cout, lastChannels, kernel: 1, bias: false, name: "features.\(last).0", workspace: ws)
        head.initialize(&rng)
        let headBN = BatchNorm2d(lastChannels, activation: .silu, name: "features.\(last).1")
        // torchvision: weight uniform(±1/sqrt(classes)), bias zero
        let fc = Linear(lastChannels, config.classes, name: "classifier.1")
        let r = 1 / Float(config.classes).squareRoot()
        rng.fillUniform(fc.weight.value, -r, r)
        fc.bias.value.fill(0)
        return (layers + [head, headBN, GlobalAvgPool2d(), fc], bns + [headBN])
    }

    public static func describe(_ c: ModelConfig) -> String { "\(name) \(c.stem)" }

    public static func size(_ c: ModelConfig) -> (parameters: Double, activationsPerImage: Double) {
        let s = Double(c.imageSize)
        var side = c.stem == "imagenet" ? ((s - 1) / 2).rounded(.down) + 1 : s
        var params = Double(c.channels) * Double(firstChannels) * 9 + 2 * Double(firstChannels)
        var acts = 3 * Double(firstChannels) * side * side
        for b in blocks {
            let cin = Double(b.inChannels), cout = Double(b.outChannels), h = Double(b.hidden), q = Double(b.squeeze)
            if b.hidden != b.inChannels { params += cin * h + 2 * h; acts += 2 * h * side * side }
            side = b.stride == 2 ? ((side - 1) / 2).rounded(.down) + 1 : side
            params += Double(b.kernel * b.kernel) * h + 2 * h + (h * q + q) + (q * h + h) + h * cout + 2 * cout
            // depthwise, its BN and the gate at the output size, the projection and its BN, one gradient copy
            acts += 3 * h * side * side + 3 * cout * side * side
        }
        let last = Double(lastChannels)
        params += Double(settings.last!.cout) * last + 2 * last + (last + 1) * Double(c.classes)
        acts += 2 * last * side * side + last
        return (params, 1.5 * acts)
    }
}
