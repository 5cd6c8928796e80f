import LDKernels
import LDRecords
import LDData
/// A model description: architecture name plus its configuration, serialisable as JSON (model files store it
/// next to the weights, which are keyed by `Parameter.name` and buffer name).
public struct ModelConfig: Codable, Equatable, Sendable {
    /// The architecture's name in the registry (`Architectures`): `convnet`, `resnet18`.
    public var arch: String
    /// ConvNet width (channels of every conv); ignored by ResNet-18.
    public var width: Int
    /// ConvNet depth (conv blocks); ignored by ResNet-18.
    public var depth: Int
    /// Input channels (1 for Fashion-MNIST, 3 for CIFAR).
    public var channels: Int
    /// Input height and width (square images).
    public var imageSize: Int
    /// Number of classes.
    public var classes: Int
    /// ResNet stem: `small` (3×3 stride 1, no max-pool; CIFAR-style) or `imagenet` (7×7 stride 2 + max-pool).
    public var stem: String
    /// MobileNetV2's width multiplier; nil for 1.0 and for the architectures without one (absent from the
    /// JSON then, so model files written before it existed keep their bytes).
    public var widthMultiplier: Double?

    public init(arch: String, width: Int = 128, depth: Int = 3, channels: Int, imageSize: Int, classes: Int,
                stem: String = "small", widthMultiplier: Double? = nil) {
        self.arch = arch; self.width = width; self.depth = depth
        self.channels = channels; self.imageSize = imageSize; self.classes = classes; self.stem = stem
        self.widthMultiplier = widthMultiplier
    }

    /// ConvNet-BN (DC/DM family): [conv3×3 pad 1 → BN → ReLU → avg-pool 2] × depth, flatten, linear.
    public static func convnet(width: Int = 128, depth: Int = 3, channels: Int = 1, imageSize: Int = 28,
                               classes: Int = 10) -> ModelConfig {
        ModelConfig(arch: "convnet", width: width, depth: depth, channels: channels, imageSize: imageSize, classes: classes)
    }

    /// ResNet-18 with the small-image stem (default) or the ImageNet stem.
    public static func resnet18(channels: Int = 3, imageSize: Int = 32, classes: Int = 10,
                                stem: String = "small") -> ModelConfig {
        ResNet18.canonical(ModelConfig(arch: "resnet18", channels: channels, imageSize: imageSize, classes: classes, stem: stem))
    }

    /// The architecture `name` with the options given (each architecture keeps the ones it reads and fixes the
    /// rest), for inputs of `channels` x `imageSize` x `imageSize` and `classes` classes.
    public static func named(_ name: String, width: Int, depth: Int, stem: String, channels: Int, imageSize: Int,
                             classes: Int, widthMultiplier: Double? = nil) throws -> ModelConfig {
        let a = try Architectures.named(name)
        let reads = a.options.contains { if case .widthMultiplier = $0 { return true }; return false }
        return a.canonical(ModelConfig(arch: name, width: width, depth: depth, channels: channels, imageSize: imageSize,
                                       classes: classes, stem: stem, widthMultiplier: reads ? widthMultiplier : nil))
    }

    /// Bounds on the fields, beyond any model ld is meant for, so that a forged configuration is refused
    /// by name instead of being allocated: image channels, input size, classes (ImageNet-21k has 21,841),
    /// ConvNet width and depth, MobileNetV2's width multiplier.
    public static let limits = (channels: 16, imageSize: 2048, classes: Limits.classes, width: 8192, depth: 16,
                                widthMultiplier: 8.0)

    /// Checks the fields before a model is built; throws a one-line reason. Beyond the ranges, the
    /// weights (with their gradients and two optimiser states) and one image's activations must fit in the
    /// memory this process may use.
    public func validate() throws {
        let architecture = try Architectures.named(arch).self
        let l = ModelConfig.limits
        for (name, value, lower, upper) in [("channels", channels, 1, l.channels), ("image size", imageSize, 1, l.imageSize),
                                            ("classes", classes, 2, l.classes)] where value < lower || value > upper {
            throw LDError("model config: \(name) \(value) is out of range \(lower)...\(upper)")
        }
        if architecture.options.contains(where: { if case .width = $0 { return true }; return false }),
           width < 1 || width > l.width {
            throw LDError("model config: width \(width) is out of range 1...\(l.width)")
        }
        if architecture.options.contains(where: { if case .depth = $0 { return true }; return false }),
           depth < 1 || depth > l.depth {
            throw LDError("model config: depth \(depth) is out of range 1...\(l.depth)")
        }
        if let m = widthMultiplier {
            guard architecture.options.contains(where: { if case .widthMultiplier = $0 { return true }; return false }) else {
                throw LDError("model config: \(arch) has no width multiplier")
            }
            guard m > 0 && m <= l.widthMultiplier else {
                throw LDError("model config: width multiplier \(m) is out of range (0, \(l.widthMultiplier)]")
            }
        }
        try architecture.validate(self)
        let size = architecture.size(self)
        try Memory.require(4 * (4 * size.parameters + size.activationsPerImage),
                           for: "a \(summary) model for \(channels)x\(imageSize)x\(imageSize) images and \(classes) classes (\(Int(size.parameters)) parameters)")
    }

    /// A short description: `convnet w64 d3`, `resnet18 small`.
    public var summary: String { (try? Architectures.named(arch).describe(self)) ?? arch }
}
