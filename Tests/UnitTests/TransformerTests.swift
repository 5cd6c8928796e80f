import XCTest
import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

/// Reference kernels for the transformer layers: plain loops in Double on row-major token matrices.
enum NaiveTransformer {
    /// x (R, F) · wᵀ + b, w (K, F).
    static func linear(_ x: [Double], _ w: Tensor, _ b: Tensor) -> [Double] {
        let k = w.shape[0], f = w.shape[1], rows = x.count / f
        var y = [Double](repeating: 0, count: rows * k)
        for r in 0..<rows { for o in 0..<k {
            var s = Double(b.data[o])
            for i in 0..<f { s += x[r * f + i] * Double(w.data[o * f + i]) }
            y[r * k + o] = s
        } }
        return y
    }

    static func layerNorm(_ x: [Double], _ ln: LayerNorm) -> [Double] {
        let d = ln.features, rows = x.count / d
        var y = x
        for r in 0..<rows {
            let row = x[(r * d)..<(r * d + d)]
            let mean = row.reduce(0, +) / Double(d)
            let v = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
            for j in 0..<d {
                y[r * d + j] = (x[r * d + j] - mean) / (v + Double(ln.eps)).squareRoot() * Double(ln.weight.value.data[j])
                    + Double(ln.bias.value.data[j])
            }
        }
        return y
    }

    static func gelu(_ x: [Double]) -> [Double] { x.map { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) } }

    /// Multi-head self-attention on N sequences of T tokens.
    static func attention(_ x: [Double], _ a: MultiHeadAttention) -> [Double] {
        let d = a.dim, t = a.tokens, h = a.heads, dh = d / h, n = x.count / (t * d)
        let qkv = linear(x, a.qkv.weight.value, a.qkv.bias.value)
        var ctx = [Double](repeating: 0, count: n * t * d)
        let scale = 1 / Double(dh).squareRoot()
        for s in 0..<n { for head in 0..<h { for i in 0..<t {
            var scores = [Double](repeating: 0, count: t)
            for j in 0..<t {
                var dot = 0.0
                for e in 0..<dh { dot += qkv[(s * t + i) * 3 * d + head * dh + e] * qkv[(s * t + j) * 3 * d + d + head * dh + e] }
                scores[j] = dot * scale
            }
            let m = scores.max()!
            let ex = scores.map { Foundation.exp($0 - m) }, z = ex.reduce(0, +)
            for e in 0..<dh {
                var acc = 0.0
                for j in 0..<t { acc += ex[j] / z * qkv[(s * t + j) * 3 * d + 2 * d + head * dh + e] }
                ctx[(s * t + i) * d + head * dh + e] = acc
            }
        } } }
        return linear(ctx, a.proj.weight.value, a.proj.bias.value)
    }

    static func block(_ x: [Double], _ b: TransformerBlock) -> [Double] {
        let a = attention(layerNorm(x, b.norm1), b.attention)
        let h = zip(x, a).map { $0 + $1 }
        let m = linear(gelu(linear(layerNorm(h, b.norm2), b.fc1.weight.value, b.fc1.bias.value)), b.fc2.weight.value, b.fc2.bias.value)
        return zip(h, m).map { $0 + $1 }
    }

    /// Tokens (N·T, D) of channel-major images x (C, N, S, S): patch convolution (by `naiveConv`), class
    /// token first, positions added.
    static func embed(_ x: Tensor, _ e: PatchEmbedding) -> [Double] {
        let conv = naiveConv(x, e.proj.weight.value, e.proj.bias!.value, stride: e.patch, pad: 0)
        let n = x.shape[1], d = e.dim, t = e.tokens, hw = t - 1
        var y = [Double](repeating: 0, count: n * t * d)
        for i in 0..<n { for tok in 0..<t { for k in 0..<d {
            let v = tok == 0 ? Double(e.classToken.value.data[k]) : Double(conv[(k * n + i) * hw + tok - 1])
            y[(i * t + tok) * d + k] = v + Double(e.positions.value.data[tok * d + k])
        } } }
        return y
    }

    /// Logits of the layer list `VisionTransformer.layers` builds.
    static func vit(_ x: Tensor, _ layers: [Layer]) -> [Double] {
        let e = layers[0] as! PatchEmbedding
        var t = embed(x, e)
        for l in layers { if let b = l as? TransformerBlock { t = block(t, b) } }
        let d = e.dim, n = t.count / (e.tokens * d)
        var cls = [Double]()
        for i in 0..<n { cls += t[(i * e.tokens * d)..<(i * e.tokens * d + d)] }
        let head = layers.last as! Linear
        return linear(layerNorm(cls, layers[layers.count - 2] as! LayerNorm), head.weight.value, head.bias.value)
    }
}

/// A list of layers run as one (forward in order, backward in reverse), for gradient checks of compositions.
final class LayerChain: Layer {
    let layers: [Layer]
    init(_ layers: [Layer]) { self.layers = layers }
    var parameters: [Parameter] { layers.flatMap(\.parameters) }
    var training = true { didSet { for l in layers { l.training = training } } }
    var wantsParamGrads = true { didSet { for l in layers { l.wantsParamGrads = wantsParamGrads } } }
    var wantsInputGrad = true { didSet { layers[0].wantsInputGrad = wantsInputGrad } }
    func forward(_ x: Tensor) -> Tensor { layers.reduce(x) { $1.forward($0) } }
    func backward(_ dy: Tensor) -> Tensor? {
        var g: Tensor? = dy
        for l in layers.reversed() { guard let d = g else { return nil }; g = l.backward(d) }
        return g
    }
}

func assertClose(_ a: [Float], _ b: [Double], tolerance: Double, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, message, file: file, line: line)
    var worst = 0.0, at = 0
    for (i, (u, v)) in zip(a, b).enumerated() where abs(Double(u) - v) > worst { worst = abs(Double(u) - v); at = i }
    XCTAssertLessThanOrEqual(worst, tolerance, "\(message): worst difference at \(at): \(a.isEmpty ? 0 : a[at]) vs \(b.isEmpty ? 0 : b[at])",
                             file: file, line: line)
}

final class TransformerLayerTests: XCTestCase {
    override func setUp() { Engine.threads = 2 }

    /// The vector exp and erf against libm over their ranges; GELU's derivative against differences.
    func testVectorMathMatchesLibm() {
        var worstExp = 0.0, worstErf = 0.0, worstDerivative = 0.0
        for i in 0..<4000 {
            let xs = (0..<16).map { Float(-87 + 175 * Double(i * 16 + $0) / 64000) }
            let v = SIMD16<Float>(xs)
            let e = TransformerMath.exp(v)
            for j in 0..<16 {
                let ref = Foundation.exp(Double(xs[j]))
                worstExp = max(worstExp, abs(Double(e[j]) - ref) / ref)
            }
            let z = SIMD16<Float>(xs.map { $0 / 14 })   // ±6.2
            let r = TransformerMath.erf(z), g = TransformerMath.geluDerivative(z)
            for j in 0..<16 {
                let x = Double(z[j])
                worstErf = max(worstErf, abs(Double(r[j]) - Foundation.erf(x)))
                let h = 1e-5
                let f = { (u: Double) in 0.5 * u * (1 + Foundation.erf(u / 2.0.squareRoot())) }
                worstDerivative = max(worstDerivative, abs(Double(g[j]) - (f(x + h) - f(x - h)) / (2 * h)))
            }
        }
        XCTAssertLessThan(worstExp, 3e-7)
        XCTAssertLessThan(worstErf, 5e-7)
        XCTAssertLessThan(worstDerivative, 2e-6)
    }

    func testLayerNormMatchesNaiveAndGradients() {
        var rng = SplitMix64(seed: 101)
        for d in [8, 19, 48] {
            let ln = LayerNorm(d)
            rng.fillUniform(ln.weight.value, 0.5, 1.5); rng.fillUniform(ln.bias.value, -0.5, 0.5)
            let x = randomTensor([7, d], &rng, std: 2)
            for i in 0..<d { x.data[i] += 3 }   // a row off zero mean
            assertClose(ln.forward(x).array, NaiveTransformer.layerNorm(x.array.map(Double.init), ln), tolerance: 2e-5, "layernorm \(d)")
            checkLayer("layernorm \(d)", ln, input: x)
            // γ, β gradients do not depend on the thread count
            let dy = randomTensor([7, d], &rng)
            func grads() -> [Float] {
                ln.weight.zeroGrad(); ln.bias.zeroGrad()
                _ = ln.forward(x); _ = ln.backward(Tensor(shape: dy.shape, values: dy.array))
                return ln.weight.grad.array + ln.bias.grad.array
            }
            Engine.threads = 1
            let one = grads()
            Engine.threads = 2
            XCTAssertTrue(one.elementsEqual(grads(), by: { $0.bitPattern == $1.bitPattern }))
        }
    }

    func testGELUMatchesNaiveAndGradients() {
        var rng = SplitMix64(seed: 102)
        let g = GELU()
        let x = randomTensor([5, 13], &rng, std: 2)
        assertClose(g.forward(x).array, NaiveTransformer.gelu(x.array.map(Double.init)), tolerance: 1e-6, "gelu")
        checkLayer("gelu", g, input: x)
        let big = randomTensor([3, 4096 + 21], &rng, std: 3)   // more than one worker block, a tail
        assertClose(g.forward(big).array, NaiveTransformer.gelu(big.array.map(Double.init)), tolerance: 2e-6, "gelu big")
    }

    /// (D, H, T, N): tails only; full vectors and a softmax tail (T = 17); three heads.
    let attentionCases = [(8, 2, 5, 2), (32, 2, 17, 2), (48, 3, 3, 1)]

    func testAttentionMatchesNaiveAndGradients() {
        var rng = SplitMix64(seed: 103)
        for (d, h, t, n) in attentionCases {
            let a = MultiHeadAttention(dim: d, heads: h, tokens: t)
            for p in a.parameters { rng.fillNormal(p.value, std: 0.3) }
            let x = randomTensor([n * t, d], &rng)
            assertClose(a.forward(x).array, NaiveTransformer.attention(x.array.map(Double.init), a), tolerance: 2e-5, "attention \(d) \(h) \(t)")
            checkLayer("attention \(d) \(h) \(t)", a, input: x)
        }
    }

    func testPatchEmbeddingMatchesNaiveAndGradients() {
        var rng = SplitMix64(seed: 104)
        for (c, s, p, d, n) in [(3, 8, 4, 5, 2), (1, 6, 2, 16, 3), (2, 4, 1, 3, 1)] {
            let e = PatchEmbedding(channels: c, imageSize: s, patch: p, dim: d)
            for q in e.parameters { rng.fillNormal(q.value, std: 0.5) }
            XCTAssertEqual(e.tokens, 1 + (s / p) * (s / p))
            let x = randomTensor([c, n, s, s], &rng)
            assertClose(e.forward(x).array, NaiveTransformer.embed(x, e), tolerance: 1e-5, "patch embed \(c) \(s) \(p)")
            checkLayer("patch embed \(c) \(s) \(p)", e, input: x)
        }
    }

    func testClassTokenPoolGradients() {
        var rng = SplitMix64(seed: 105)
        let pool = ClassTokenPool(tokens: 3)
        let x = randomTensor([6, 4], &rng)
        XCTAssertEqual(pool.forward(x).array, Array(x.array[0..<4] + x.array[12..<16]))
        checkLayer("class token", pool, input: x)
    }

    func testTransformerBlockMatchesNaiveAndGradients() {
        var rng = SplitMix64(seed: 106)
        for (d, h, t, n) in attentionCases {
            let b = TransformerBlock(dim: d, heads: h, tokens: t, name: "blocks.0")
            b.initialize(&rng)
            for p in b.parameters { rng.fillNormal(p.value, std: 0.3); if p.name.contains("norm") && p.name.hasSuffix("weight") { p.value.data[0] += 1 } }
            let x = randomTensor([n * t, d], &rng)
            assertClose(b.forward(x).array, NaiveTransformer.block(x.array.map(Double.init), b), tolerance: 5e-5, "block \(d) \(h) \(t)")
            checkLayer("block \(d) \(h) \(t)", b, input: x)
        }
    }

    /// A whole vision transformer of tiny size: logits match the naive reference and every input and
    /// parameter gradient matches finite differences.
    func testTinyVisionTransformerMatchesNaiveAndGradients() {
        for (c, s, p, d, h, depth, classes) in [(3, 8, 2, 8, 2, 2, 3), (1, 8, 2, 32, 2, 1, 5)] {
            var rng = LDRandom(seed: 7, stage: .weightInit)
            let layers = VisionTransformer.layers(channels: c, imageSize: s, classes: classes, patch: p, dim: d, depth: depth,
                                                  heads: h, mlpRatio: 4, workspace: Workspace(), rng: &rng)
            var test = SplitMix64(seed: 107)
            // timm's init leaves the blocks near the identity; move the weights so every path matters
            for q in layers.flatMap(\.parameters) { for i in 0..<q.value.count { q.value.data[i] += Float(test.normal(mean: 0, std: 0.2)) } }
            let chain = LayerChain(layers)
            let x = randomTensor([c, 2, s, s], &test)
            assertClose(chain.forward(x).array, NaiveTransformer.vit(x, layers), tolerance: 5e-5, "vit \(d)")
            checkLayer("vit \(d)", chain, input: x, samples: 12)
        }
    }
}

final class VisionTransformerModelTests: XCTestCase {
    override func setUp() { Engine.threads = 2 }

    func config(channels: Int = 3, imageSize: Int, classes: Int = 10) throws -> ModelConfig {
        try ModelConfig.named("vit-tiny", width: 64, depth: 3, stem: "small", channels: channels, imageSize: imageSize, classes: classes)
    }

    func count(_ m: Model) -> Int { m.parameters.reduce(0) { $0 + $1.value.count } }

    /// timm's deit_tiny_patch16_224 (= vit_tiny_patch16_224) has 5,717,416 parameters; with patch 4 at
    /// 32 px and 10 classes 5,362,762; at 28 px, one channel, 10 classes 5,353,738 (timm 1.0, counted
    /// with `sum(p.numel() for p in model.parameters())`).
    func testParameterCountsAndNamesAreTimms() throws {
        for (c, s, k, expected) in [(3, 224, 1000, 5_717_416), (3, 32, 10, 5_362_762), (1, 28, 10, 5_353_738)] {
            let cfg = try config(channels: c, imageSize: s, classes: k)
            var rng = LDRandom(seed: 1, stage: .weightInit)
            let m = try Model(cfg, rng: &rng)
            XCTAssertEqual(count(m), expected, "\(s) px")
            XCTAssertEqual(Int(VisionTransformer.size(cfg).parameters), expected, "\(s) px size")
            XCTAssertTrue(m.batchNorms.isEmpty)
            let names = m.parameters.map(\.name)
            XCTAssertEqual(Array(names.prefix(8)), ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                                                    "blocks.0.norm1.weight", "blocks.0.norm1.bias", "blocks.0.attn.qkv.weight",
                                                    "blocks.0.attn.qkv.bias"])
            XCTAssertEqual(Array(names.suffix(6)), ["blocks.11.mlp.fc2.weight", "blocks.11.mlp.fc2.bias", "norm.weight", "norm.bias",
                                                    "head.weight", "head.bias"])
            XCTAssertEqual(names.count, 4 + 12 * 12 + 4)
            let shapes = Dictionary(uniqueKeysWithValues: m.parameters.map { ($0.name, $0.value.shape) })
            let p = VisionTransformer.patchSize(for: s), t = 1 + (s / p) * (s / p)
            XCTAssertEqual(shapes["pos_embed"], [1, t, 192])
            XCTAssertEqual(shapes["cls_token"], [1, 1, 192])
            XCTAssertEqual(shapes["patch_embed.proj.weight"], [192, c, p, p])
            XCTAssertEqual(shapes["blocks.3.attn.qkv.weight"], [576, 192])
            XCTAssertEqual(shapes["blocks.3.mlp.fc1.weight"], [768, 192])
            XCTAssertEqual(shapes["head.weight"], [k, 192])
            // no weight decay on biases, norms, cls_token, pos_embed (DeiT's recipe)
            XCTAssertEqual(m.parameters.filter(\.decays).map(\.name).count, 1 + 12 * 4 + 1)
        }
    }

    /// timm's initialisation: std 0.02 for linear weights and positions, ~0 class token, zero biases,
    /// LayerNorm 1 and 0, the patch convolution uniform(±1/sqrt(C·p·p)).
    func testInitialisationIsTimms() throws {
        var rng = LDRandom(seed: 1, stage: .weightInit)
        let m = try Model(try config(imageSize: 32), rng: &rng)
        func std(_ name: String) -> Double {
            let v = m.parameters.first { $0.name == name }!.value.array.map(Double.init)
            let mean = v.reduce(0, +) / Double(v.count)
            return (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)).squareRoot()
        }
        for name in ["pos_embed", "blocks.0.attn.qkv.weight", "blocks.5.mlp.fc2.weight", "head.weight"] {
            XCTAssertEqual(std(name), 0.02, accuracy: 0.001, name)
        }
        XCTAssertLessThan(std("cls_token"), 1e-5)
        XCTAssertEqual(std("patch_embed.proj.weight"), 1 / 48.0.squareRoot() / 3.0.squareRoot(), accuracy: 0.001)
        for p in m.parameters where p.name.hasSuffix(".bias") && !p.name.hasPrefix("patch_embed") {
            XCTAssertTrue(p.value.array.allSatisfy { $0 == 0 }, p.name)
        }
        for p in m.parameters where p.name.contains("norm") && p.name.hasSuffix(".weight") {
            XCTAssertTrue(p.value.array.allSatisfy { $0 == 1 }, p.name)
        }
    }

    func testPatchRuleAndValidation() throws {
        XCTAssertEqual([224, 64, 32, 28, 16, 96, 8, 30, 31].map(VisionTransformer.patchSize(for:)), [16, 8, 4, 4, 2, 8, 1, 2, 1])
        XCTAssertEqual(try config(imageSize: 32).summary, "vit-tiny")
        XCTAssertEqual(try config(imageSize: 32).width, 192)
        XCTAssertEqual(try config(imageSize: 32).depth, 12)
        var rng = LDRandom(seed: 1, stage: .weightInit)
        XCTAssertThrowsError(try Model(try config(imageSize: 37), rng: &rng)) { error in
            XCTAssertTrue("\(error)".contains("37x37 patches"), "\(error)")
        }
        let m = try Model(try config(imageSize: 32), rng: &rng)
        // 65 tokens: 12 blocks of 65·(12·192²) + 2·65²·192 MACs, the patch convolution, the head
        XCTAssertEqual(m.macsPerImage, 12 * (65 * 12 * 192 * 192 + 2 * 65 * 65 * 192) + 64 * 192 * 48 + 1920)
        XCTAssertTrue(m.summary.contains { $0.contains("block blocks.11") && $0.contains(" 192x 65x1") }, m.summary.joined(separator: "\n"))
        XCTAssertTrue(m.summary.contains { $0.contains("patch embed 4x4") }, m.summary.joined(separator: "\n"))
    }

    /// Eval forward and `predict` agree bit for bit; forward after predict too; two threads agree with one.
    func testEvalForwardEqualsPredict() throws {
        var rng = LDRandom(seed: 3, stage: .weightInit)
        let m = try Model(try config(channels: 1, imageSize: 28), rng: &rng)
        m.training = false
        var test = SplitMix64(seed: 108)
        let x = randomTensor([3, 1, 28, 28], &test)
        let a = m.forward(x).array, b = m.predict(x).array
        XCTAssertTrue(a.elementsEqual(b, by: { $0.bitPattern == $1.bitPattern }))
        XCTAssertTrue(a.elementsEqual(m.forward(x).array, by: { $0.bitPattern == $1.bitPattern }))
        Engine.threads = 1
        let c = m.forward(x).array
        Engine.threads = 2
        for (u, v) in zip(a, c) { XCTAssertEqual(u, v, accuracy: 1e-5) }
    }

    /// A model file keeps every tensor: the loaded model gives the same logits.
    func testModelFileRoundTrip() throws {
        var rng = LDRandom(seed: 5, stage: .weightInit)
        let m = try Model(try config(channels: 1, imageSize: 28), rng: &rng)
        m.training = false
        var test = SplitMix64(seed: 110)
        for p in m.parameters { for i in 0..<p.value.count { p.value.data[i] += Float(test.normal(mean: 0, std: 0.01)) } }
        let x = randomTensor([2, 1, 28, 28], &test)
        let before = m.forward(x).array
        let path = NSTemporaryDirectory() + "vit-\(getpid()).ldm"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var file = ModelFile(model: m, mean: [0.5], std: [0.25], classNames: [])
        try file.save(path: path, producer: "test")
        let loaded = try ModelFile.load(path: path)
        XCTAssertEqual(loaded.model.config, m.config)
        XCTAssertTrue(before.elementsEqual(loaded.model.predict(x).array, by: { $0.bitPattern == $1.bitPattern }))
    }

    /// A few AdamW steps (lr 1e-4: no warm-up here) on a small fixed batch lower the loss; the gradient
    /// pool stops growing.
    func testTrainingStepsReduceTheLoss() throws {
        var rng = LDRandom(seed: 4, stage: .weightInit)
        let m = try Model(try config(imageSize: 16, classes: 4), rng: &rng)
        var test = SplitMix64(seed: 109)
        let x = randomTensor([8, 3, 16, 16], &test)
        let labels: [Int32] = [0, 1, 2, 3, 0, 1, 2, 3]
        let d = Tensor(shape: [0])
        var losses: [Float] = [], held = 0
        let optimizer = AdamW(m.parameters, learningRate: 1e-4, weightDecay: 0.05)
        for step in 0..<8 {
            m.zeroGrad()
            losses.append(try CrossEntropy.loss(logits: m.forward(x), labels: labels, dLogits: d))
            XCTAssertNotNil(m.backward(d, inputGrad: true))
            optimizer.step()
            if step == 1 { held = m.gradients.floatsHeld }
        }
        XCTAssertLessThan(losses.last!, 0.5 * losses[0], "\(losses)")
        XCTAssertEqual(m.gradients.floatsHeld, held)
    }
}
