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

    public init(arch: String, width: Int = 128, depth: Int = 3, channels: Int, imageSize: Int, classes: Int,
                stem: String = "small") {
        self.arch = arch; self.width = width; self.depth = depth
        self.channels = channels; self.imageSize = imageSize; self.classes = classes; self.stem = stem
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
                             classes: Int) throws -> ModelConfig {
        try Architectures.named(name).canonical(ModelConfig(arch: name, width: width, depth: depth, channels: channels,
                                                             imageSize: imageSize, classes: classes, stem: stem))
    }

    /// Checks the fields before a model is built; throws a one-line reason.
    public func validate() throws {
        let architecture = try Architectures.named(arch).self
        guard channels > 0, imageSize > 0, classes > 0 else {
            throw LDError("model config: channels \(channels), imageSize \(imageSize), classes \(classes) must be positive")
        }
        try architecture.validate(self)
    }

    /// A short description: `convnet w64 d3`, `resnet18 small`.
    public var summary: String { (try? Architectures.named(arch).describe(self)) ?? arch }
}
