import LDKernels

/// ConvNet-BN of the DC/DM family (the seeds' ConvNet with BatchNorm): [conv3x3 pad 1 -> BN -> ReLU ->
/// avg-pool 2] x depth, flatten, linear. Parameters `blocks.D.conv.weight|bias`, `blocks.D.bn.weight|bias`
/// (buffers `running_mean`, `running_var`), `fc.weight|bias`.
public enum ConvNet: Architecture {
    public static let name = "convnet"
    public static let summary = "ConvNet-BN of DC/DM"
    public static let options: [ModelOption] = [.width(64), .depth(3)]

    public static func canonical(_ config: ModelConfig) -> ModelConfig {
        var c = config
        c.stem = "small"
        return c
    }

    public static func validate(_ c: ModelConfig) throws {
        guard c.width > 0, c.depth > 0 else { throw LDError("model config: convnet width \(c.width) and depth \(c.depth) must be positive") }
        guard c.imageSize >> c.depth > 0 else {
            throw LDError("model config: convnet depth \(c.depth) pools image size \(c.imageSize) down to 0")
        }
    }

    public static func layers<G: RandomNumberGenerator>(_ config: ModelConfig, workspace ws: Workspace,
                                                        rng: inout G) -> (layers: [Layer], batchNorms: [BatchNorm2d]) {
        var layers: [Layer] = [], bns: [BatchNorm2d] = []
        var c = config.channels, res = config.imageSize
        for d in 0..<config.depth {
            let conv = Conv2d(c, config.width, kernel: 3, padding: 1, bias: true, name: "blocks.\(d).conv", workspace: ws)
            // BN -> ReLU -> avg-pool 2 as one fused layer (the un-pooled activation is never stored)
            let bn = BatchNorm2d(config.width, relu: true, pool: true, name: "blocks.\(d).bn")
            conv.initialize(&rng, .pytorchDefault)
            // the first block's small-input convolution is recomputed rather than stored (ConvBatchNorm)
            if ConvBatchNorm.suits(conv, bn) { layers.append(ConvBatchNorm(conv, bn)) } else { layers += [conv, bn] }
            bns.append(bn)
            c = config.width; res /= 2
        }
        let fc = Linear(c * res * res, config.classes, name: "fc")
        fc.initialize(&rng)
        return (layers + [Flatten(), fc], bns)
    }

    public static func describe(_ c: ModelConfig) -> String { "convnet w\(c.width) d\(c.depth)" }

    public static func size(_ c: ModelConfig) -> (parameters: Double, activationsPerImage: Double) {
        let w = Double(c.width)
        var params = 0.0, acts = 0.0, cin = Double(c.channels), s = Double(c.imageSize)
        for _ in 0..<c.depth {
            params += cin * 9 * w + 3 * w
            acts += 3 * w * s * s
            cin = w; s = (s / 2).rounded(.down)
        }
        params += (w * s * s + 1) * Double(c.classes)
        return (params, acts)
    }
}
