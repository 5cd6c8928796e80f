import LDKernels

/// ViT-Tiny (DeiT-Tiny's network: embed dim 192, 12 blocks, 3 heads, MLP 768), timm's `VisionTransformer`
/// layout: patch embedding with class token and learned positions, pre-norm blocks, final LayerNorm, linear
/// head on the class token. No BatchNorm (so no SRe2L-style recovery), no dropout, drop-path or
/// distillation token: DeiT's recipe is a training matter, the network is ViT-Ti's.
///
/// The patch size follows the input (`patchSize(for:)`): 16 at 224 px (14×14 patches, as deit_tiny_patch16_224),
/// 8 at 64 px, 4 at 32 and 28 px. Token rows (N·T, D) flow between the blocks, T = 1 + (S/p)².
/// Parameter names are timm's state_dict keys: `cls_token`, `pos_embed`, `patch_embed.proj.weight|bias`,
/// `blocks.B.norm1|attn.qkv|attn.proj|norm2|mlp.fc1|mlp.fc2.weight|bias`, `norm.weight|bias`, `head.weight|bias`.
public enum VisionTransformer: Architecture {
    public static let name = "vit-tiny"
    public static let summary = "ViT-Tiny/DeiT-Tiny (timm's layout; patch 16 at 224 px, 4 at 32 px)"
    public static let options: [ModelOption] = []
    /// Embed dim, blocks, heads and MLP ratio.
    public static let dim = 192, depth = 12, heads = 3, mlpRatio = 4
    /// Most patches a side (1024 tokens): beyond that the T² attention matrices are not what this model is for.
    public static let maxSide = 32

    /// The patch size for S×S images: the largest of 16, 8, 4, 2 that divides S and leaves at least 7
    /// patches a side (224 → 16, 64 → 8, 32 → 4, 28 → 4, 16 → 2), else 1 (small or odd sizes).
    public static func patchSize(for imageSize: Int) -> Int {
        [16, 8, 4, 2].first { imageSize % $0 == 0 && imageSize / $0 >= 7 } ?? 1
    }

    public static func canonical(_ config: ModelConfig) -> ModelConfig {
        var c = config
        c.width = dim
        c.depth = depth
        c.stem = "small"
        return c
    }

    public static func validate(_ c: ModelConfig) throws {
        let p = patchSize(for: c.imageSize), side = c.imageSize / p
        guard c.imageSize % p == 0, side <= maxSide else {
            throw LDError("model config: \(name) splits \(c.imageSize) px images into \(side)x\(side) patches of \(p) px, more than \(maxSide) a side (use a size divisible by 16, 8, 4 or 2)")
        }
    }

    public static func layers<G: RandomNumberGenerator>(_ config: ModelConfig, workspace ws: Workspace,
                                                        rng: inout G) -> (layers: [Layer], batchNorms: [BatchNorm2d]) {
        (layers(channels: config.channels, imageSize: config.imageSize, classes: config.classes, patch: patchSize(for: config.imageSize),
                dim: dim, depth: depth, heads: heads, mlpRatio: mlpRatio, workspace: ws, rng: &rng), [])
    }

    /// The layers of a vision transformer of any size (tests build tiny ones), on channel-major images
    /// (C, N, S, S): patch embedding, `depth` blocks, class token, LayerNorm `norm`, linear `head`; timm's
    /// initialisation (weights drawn in registration order): `cls_token` normal (std 1e-6), `pos_embed` and
    /// every linear weight truncated normal (std 0.02), linear biases zero, LayerNorm 1 and 0, the patch
    /// convolution PyTorch's default (timm leaves `nn.Conv2d` to it).
    public static func layers<G: RandomNumberGenerator>(channels: Int, imageSize: Int, classes: Int, patch: Int, dim: Int,
                                                        depth: Int, heads: Int, mlpRatio: Int, workspace ws: Workspace,
                                                        rng: inout G) -> [Layer] {
        let embed = PatchEmbedding(channels: channels, imageSize: imageSize, patch: patch, dim: dim, workspace: ws)
        rng.fillNormal(embed.classToken.value, std: 1e-6)
        rng.fillTruncatedNormal(embed.positions.value, std: 0.02)
        embed.proj.initialize(&rng, .pytorchDefault)
        var layers: [Layer] = [embed]
        for b in 0..<depth {
            let block = TransformerBlock(dim: dim, heads: heads, tokens: embed.tokens, mlpRatio: mlpRatio, name: "blocks.\(b)", workspace: ws)
            block.initialize(&rng)
            layers.append(block)
        }
        let head = Linear(dim, classes, name: "head")
        rng.fillTruncatedNormal(head.weight.value, std: 0.02)
        head.bias.value.fill(0)
        return layers + [ClassTokenPool(tokens: embed.tokens), LayerNorm(dim, name: "norm"), head]
    }

    /// `vit-tiny`, whatever the image size: the tools describe a student before they know its data (the
    /// patch size shows in the `-v` layer lines, `patch embed 4x4`).
    public static func describe(_ c: ModelConfig) -> String { name }

    public static func size(_ c: ModelConfig) -> (parameters: Double, activationsPerImage: Double) {
        let d = Double(dim), p = Double(patchSize(for: c.imageSize)), side = (Double(c.imageSize) / p).rounded(.down)
        let t = 1 + side * side, hidden = Double(mlpRatio) * d
        let block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (hidden * d + hidden) + (d * hidden + d)
        let params = d * Double(c.channels) * p * p + d + d + t * d + Double(depth) * block + 2 * d + (d + 1) * Double(c.classes)
        // per block: norm1, qkv, context, proj, norm2, fc1, GELU, fc2 outputs (about 12 + 2·ratio rows of D
        // per token) and the attention probabilities and their gradient (2·H·T² floats); the patch
        // embedding's input copy, convolution output and tokens
        let perBlock = t * d * (4 + 2 * Double(mlpRatio) + 4) + 2 * Double(heads) * t * t
        let acts = Double(depth) * perBlock + Double(c.channels) * Double(c.imageSize * c.imageSize) * 2 + 3 * t * d
        return (params, acts)
    }
}
