import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks

/// ld models under torchvision's parameter names, both ways.
///
/// ResNet-18, -50 and -101: ld already names its tensors as torchvision does (`conv1.weight`, `bn1.running_mean`,
/// `layer2.0.downsample.0.weight`, `fc.bias`); torchvision adds `num_batches_tracked` (int64) to every
/// BatchNorm. The stem is read off `conv1.weight`: 7x7 is torchvision's (`imagenet`: stride 2 and max-pool),
/// 3x3 the CIFAR one (`small`: stride 1, no max-pool; torchvision's model with `conv1` replaced and `maxpool` an
/// `Identity`, which has no parameters).
/// ConvNet: the DC/DSA ConvNet's `features` is a Sequential of [Conv2d, BatchNorm2d, ReLU, AvgPool2d] per
/// block, so block d's convolution is `features.(4d)` and its BatchNorm `features.(4d+1)`; the linear layer
/// is `classifier`.
public enum TorchvisionNames {
    /// The torchvision name of an ld tensor name.
    public static func torchName(_ ldName: String, arch: String) -> String {
        guard arch == ConvNet.name else { return ldName }
        let parts = ldName.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, parts[0] == "blocks", let d = Int(parts[1]) {
            return "features.\(4 * d + (parts[2] == "bn" ? 1 : 0)).\(parts[3])"
        }
        if parts.first == "fc" { return "classifier." + parts.dropFirst().joined(separator: ".") }
        return ldName
    }

    /// The model's tensors under torchvision's names in torchvision's order (a BatchNorm's weight, bias,
    /// running_mean, running_var, num_batches_tracked together), float32 and `num_batches_tracked` int64 0.
    public static func stateDict(of model: Model) -> StateDict {
        let arch = model.config.arch
        var buffers: [String: [(name: String, tensor: Tensor)]] = [:]
        for bn in model.batchNorms { buffers[bn.name] = bn.buffers }
        var pairs: [(String, ForeignTensor)] = []
        for p in model.parameters {
            pairs.append((torchName(p.name, arch: arch), ForeignTensor(dtype: .f32, shape: p.value.shape, values: p.value.array)))
            if p.name.hasSuffix(".bias"), let bnName = Optional(String(p.name.dropLast(5))), let bs = buffers[bnName] {
                for b in bs { pairs.append((torchName(b.name, arch: arch), ForeignTensor(dtype: .f32, shape: b.tensor.shape, values: b.tensor.array))) }
                pairs.append((torchName(bnName + ".num_batches_tracked", arch: arch), ForeignTensor(dtype: .i64, shape: [], values: [0])))
                buffers[bnName] = nil
            }
        }
        return try! StateDict(pairs)
    }

    /// The architecture a state dict holds, read off its names and shapes, with notes on what was assumed
    /// (printed by the import). `imageSize` is the input size when known (preset, flag, metadata).
    public static func infer(_ state: StateDict, name: String, imageSize: Int?) throws -> (config: ModelConfig, notes: [String]) {
        func shape(_ key: String) -> [Int]? { state[key]?.shape }
        if let f0 = shape("features.0.weight"), let cls = shape("classifier.weight") {
            guard f0.count == 4, f0[2] == 3, f0[3] == 3, cls.count == 2 else {
                throw LDError("\(name): features.0.weight \(f0) and classifier.weight \(cls) are not a ConvNet's (conv 3x3, linear)")
            }
            let width = f0[0], channels = f0[1], classes = cls[0], features = cls[1]
            var depth = 0
            while state["features.\(4 * depth).weight"] != nil { depth += 1 }
            if state["features.1.weight"] != nil && state["features.1.running_mean"] == nil {
                throw LDError("\(name): features.1 has no running statistics: an instance-norm ConvNet (the DC code's default net_norm); ld's ConvNet is the BatchNorm one")
            }
            var notes: [String] = []
            let size: Int
            if let s = imageSize {
                let r = s >> depth
                guard width * r * r == features else {
                    let dc28 = channels == 1 && s == 28 && width * (32 >> depth) * (32 >> depth) == features
                    throw LDError("\(name): classifier.weight has shape \(cls): \(features) inputs, a convnet w\(width) d\(depth) on \(s)x\(s) images has \(width * r * r)\(dc28 ? " (this is the DC code's 28-pixel variant, whose first convolution pads by 3 to 32x32; ld's ConvNet pads by 1)" : "")")
                }
                size = s
            } else {
                let r = Int(Double(features / max(width, 1)).squareRoot().rounded())
                guard r > 0, width * r * r == features else {
                    throw LDError("\(name): classifier.weight has shape \(cls), \(features) inputs are not width \(width) x a square")
                }
                size = r << depth
                notes.append("input size \(size) inferred from classifier.weight (\(size)...\(size + (1 << depth) - 1) all fit; --image-size sets it)")
            }
            return (ModelConfig.convnet(width: width, depth: depth, channels: channels, imageSize: size, classes: classes), notes)
        }
        if let f0 = shape("features.0.0.weight"), let cls = shape("classifier.1.weight"),
           state["features.1.conv.0.0.weight"] != nil || state["features.1.0.block.0.0.weight"] != nil {
            return try inferMobile(state, name: name, imageSize: imageSize, first: f0, classifier: cls)
        }
        if let f0 = shape("features.0.weight"), let c0 = shape("classifier.0.weight") {
            return try inferVGG(state, name: name, imageSize: imageSize, first: f0, classifier: c0)
        }
        if let c1 = shape("conv1.weight"), state.names.contains(where: { $0.hasPrefix("layer1.") }) {
            guard c1.count == 4, c1[0] == 64, (c1[2] == 7 && c1[3] == 7) || (c1[2] == 3 && c1[3] == 3) else {
                throw LDError("\(name): conv1.weight has shape \(c1); a ResNet stem is [64, C, 7, 7] (imagenet) or [64, C, 3, 3] (small)")
            }
            guard let fc = shape("fc.weight"), fc.count == 2 else { throw LDError("\(name): ResNet checkpoint without fc.weight") }
            let stem = c1[2] == 7 ? "imagenet" : "small"
            var notes: [String] = []
            let size = imageSize ?? (stem == "imagenet" ? 224 : 32)
            if imageSize == nil { notes.append("input size \(size) assumed for the \(stem) stem (--image-size sets it)") }
            // Basic blocks (ResNet-18) or bottlenecks (conv3 in every block), told apart by the blocks per stage.
            let blocks = (1...4).map { s in (0...).prefix(while: { state["layer\(s).\($0).conv1.weight"] != nil }).count }
            let bottleneck = state["layer1.0.conv3.weight"] != nil
            let arch: String
            switch (bottleneck, blocks) {
            case (false, [2, 2, 2, 2]): arch = ResNet18.name
            case (true, ResNet50.blocks): arch = ResNet50.name
            case (true, ResNet101.blocks): arch = ResNet101.name
            default:
                throw LDError("\(name): a ResNet with \(bottleneck ? "bottleneck" : "basic") blocks \(blocks.map(String.init).joined(separator: "-")) per stage; ld has resnet18 (basic 2-2-2-2), resnet50 (bottleneck 3-4-6-3) and resnet101 (bottleneck 3-4-23-3)")
            }
            return (try ModelConfig.named(arch, width: 64, depth: 3, stem: stem, channels: c1[1], imageSize: size, classes: fc[0]), notes)
        }
        let sample = state.names.prefix(6).map { "'\($0)'" }.joined(separator: ", ")
        throw LDError("\(name): not an architecture ld has (convnet: features.N.* and classifier.*; vgg11: features.N.* and classifier.0-6.*; mobilenetv2, efficientnet-b0: features.N.M.* and classifier.1.*; resnet18, resnet50, resnet101: conv1, layer1-4, fc); keys it does not recognise: \(sample)\(state.count > 6 ? " and \(state.count - 6) more" : "")")
    }

    /// MobileNetV2 (`features.N.conv...`, any of torchvision's width multipliers, told by the tensors' shapes) or EfficientNet-B0 (`features.S.B.block...`). The first
    /// convolution's stride is not in the weights: `small` (stride 1) is assumed for inputs of 64 px or less,
    /// torchvision's `imagenet` otherwise, and said.
    static func inferMobile(_ state: StateDict, name: String, imageSize: Int?, first: [Int], classifier: [Int]) throws -> (config: ModelConfig, notes: [String]) {
        guard first.count == 4, classifier.count == 2 else {
            throw LDError("\(name): features.0.0.weight \(first) and classifier.1.weight \(classifier) are not a MobileNet's")
        }
        let size = imageSize ?? 224
        let stem = size <= 64 ? "small" : "imagenet"
        var notes = imageSize == nil ? ["input size 224 assumed (--image-size sets it)"] : []
        notes.append("first convolution at stride \(stem == "small" ? 1 : 2) assumed for \(size) px inputs (\(stem) stem): the weights do not say")
        let arch = state["features.1.conv.0.0.weight"] != nil ? MobileNetV2.name : EfficientNetB0.name
        let multipliers: [Double?] = arch == MobileNetV2.name ? [nil, 0.35, 0.5, 0.75, 1.3, 1.4] : [nil]
        for m in multipliers {
            let config = try ModelConfig.named(arch, width: 64, depth: 3, stem: stem, channels: first[1], imageSize: size,
                                               classes: classifier[0], widthMultiplier: m)
            var zero = ZeroRandom()
            let model = try Model(config, rng: &zero)
            // every tensor's shape must agree (0.35 and 0.5 share the first and last widths)
            if model.parameters.allSatisfy({ state[$0.name]?.shape == $0.value.shape }) { return (config, notes) }
        }
        throw LDError("\(name): a \(arch) whose first convolution \(first) and classifier \(classifier) fit none of torchvision's width multipliers")
    }

    /// VGG-11 with BatchNorm: convolutions at torchvision's `features` indices 0, 4, 8, 11, 15, 18, 22, 25, each
    /// followed by its BatchNorm; `classifier.6` is torchvision's classifier (`imagenet`), `classifier.0` alone
    /// the small-image one (`small`).
    static func inferVGG(_ state: StateDict, name: String, imageSize: Int?, first: [Int], classifier: [Int]) throws -> (config: ModelConfig, notes: [String]) {
        let convs = state.names.compactMap { key -> Int? in
            let p = key.split(separator: ".")
            guard p.count == 3, p[0] == "features", p[2] == "weight", let i = Int(p[1]), state[key]?.shape.count == 4 else { return nil }
            return i
        }.sorted()
        guard convs == [0, 4, 8, 11, 15, 18, 22, 25], convs.allSatisfy({ state["features.\($0 + 1).running_mean"] != nil }) else {
            let bn = state.names.contains { $0.hasSuffix(".running_mean") }
            throw LDError("\(name): a VGG with convolutions at features \(convs.map(String.init).joined(separator: ", "))\(bn ? "" : " and no BatchNorm"); ld has vgg11 with BatchNorm (features 0, 4, 8, 11, 15, 18, 22, 25)")
        }
        guard first.count == 4, first[0] == 64, classifier.count == 2 else {
            throw LDError("\(name): features.0.weight \(first) and classifier.0.weight \(classifier) are not VGG-11's")
        }
        var notes: [String] = []
        if let last = state["classifier.6.weight"]?.shape, last.count == 2 {
            let size = imageSize ?? 224
            if imageSize == nil { notes.append("input size 224 assumed for torchvision's VGG (--image-size sets it)") }
            return (try ModelConfig.named(VGG11.name, width: 64, depth: 3, stem: "imagenet", channels: first[1], imageSize: size, classes: last[0]), notes)
        }
        let side = Int(Double(classifier[1] / 512).squareRoot().rounded())
        guard side > 0, 512 * side * side == classifier[1] else {
            throw LDError("\(name): classifier.0.weight has shape \(classifier): \(classifier[1]) inputs are not 512 x a square (VGG-11's features)")
        }
        let size = imageSize ?? 32 * side
        if imageSize == nil { notes.append("input size \(size) inferred from classifier.0.weight (--image-size sets it)") }
        let config = try ModelConfig.named(VGG11.name, width: 64, depth: 3, stem: "small", channels: first[1], imageSize: size, classes: classifier[0])
        guard VGG11.featureSize(config) == side else {
            throw LDError("\(name): classifier.0.weight has \(classifier[1]) inputs, a vgg11 small on \(size)x\(size) images has \(512 * VGG11.featureSize(config) * VGG11.featureSize(config))")
        }
        return (config, notes)
    }

    /// A model of `config` holding the state dict's tensors. Every tensor the model has must be there with its
    /// shape and finite values, and no other (`num_batches_tracked` may be absent); the error names the key.
    public static func model(_ config: ModelConfig, from state: StateDict, name: String) throws -> Model {
        var zero = ZeroRandom()
        let model = try Model(config, rng: &zero)
        var expected: [(torch: String, tensor: Tensor)] = model.parameters.map { (torchName($0.name, arch: config.arch), $0.value) }
        expected += model.buffers.map { (torchName($0.name, arch: config.arch), $0.tensor) }
        var counters = Set(model.batchNorms.map { torchName($0.name + ".num_batches_tracked", arch: config.arch) })
        let known = Set(expected.map(\.torch)).union(counters)
        let unknown = state.names.filter { !known.contains($0) }
        let what = config.summary
        if !unknown.isEmpty {
            let list = unknown.prefix(4).map { "'\($0)'" }.joined(separator: ", ")
            throw LDError("\(name): \(unknown.count) key(s) a \(what) does not have: \(list)\(unknown.count > 4 ? ", ..." : "") (not an architecture ld has, or a different variant)")
        }
        for (key, tensor) in expected {
            guard let t = state[key] else { throw LDError("\(name): lacks '\(key)', which a \(what) needs") }
            guard t.shape == tensor.shape else {
                throw LDError("\(name): '\(key)' has shape \(t.shape), a \(what) needs \(tensor.shape)")
            }
            guard t.dtype.isFloatingPoint else { throw LDError("\(name): '\(key)' holds \(t.dtype.rawValue) values, not floating point") }
            if let bad = t.values.firstIndex(where: { !$0.isFinite }) {
                throw LDError("\(name): '\(key)' holds a non-finite value (\(t.values[bad])) at element \(bad)")
            }
            if key.hasSuffix(".running_var"), let bad = t.values.firstIndex(where: { $0 < 0 }) {
                throw LDError("\(name): '\(key)' holds a negative variance (\(t.values[bad])) at element \(bad)")
            }
            t.values.withUnsafeBufferPointer { tensor.data.update(from: $0.baseAddress!, count: tensor.count) }
        }
        for key in counters {
            if let t = state[key], t.values.count != 1 { throw LDError("\(name): '\(key)' has shape \(t.shape), a counter has one value") }
        }
        counters.removeAll()
        model.training = false
        return model
    }
}

/// Zeros for every weight of a model about to be filled from a file.
struct ZeroRandom: RandomNumberGenerator {
    mutating func next() -> UInt64 { 0 }
}
