import LDKernels
import LDData
import LDNetworks
import ArgumentParser

/// The architecture flags of ld-squeeze (the teacher) and ld-train (the student): the same names and
/// defaults in both, so `ld-squeeze ... | ld-train` with no model flags trains a student shaped like the
/// teacher.
public struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Architecture.", valueName: "name"))
    public var model: ModelName = ModelName(argument: "convnet")!

    @Option(help: "ConvNet width (channels of every conv block).")
    public var width: Int = 64

    @Option(help: "ConvNet depth (conv blocks, each halving the resolution).")
    public var depth: Int = 3

    @Option(help: "Stem: small (for 28-64 px inputs: the first layer at stride 1 and no max-pool; VGG: one linear classifier) or imagenet (torchvision's model as is: ResNet 7x7 stride 2 + max-pool, MobileNetV2 and EfficientNet stride 2, VGG the 7x7 pool and 4096-wide classifier).")
    public var stem: ResNetStem = .small

    @Option(name: .customLong("width-mult"), help: "MobileNetV2 width multiplier (every width scaled and rounded to a multiple of 8, as torchvision).")
    public var widthMultiplier: Double = 1

    public init() {}

    public func validate() throws {
        guard width > 0 else { throw ValidationError("--width must be positive, got \(width)") }
        guard widthMultiplier > 0 && widthMultiplier <= ModelConfig.limits.widthMultiplier else {
            throw ValidationError("--width-mult must be in (0, \(ModelConfig.limits.widthMultiplier)], got \(widthMultiplier)")
        }
        guard depth > 0 else { throw ValidationError("--depth must be positive, got \(depth)") }
    }

    /// The configuration for square images of `channels` x `imageSize` x `imageSize` and `classes` classes:
    /// the registered architecture with the options it reads.
    public func config(channels: Int, imageSize: Int, classes: Int) -> ModelConfig {
        // `model` holds a registered name, so the look-up cannot fail.
        (try? ModelConfig.named(model.name, width: width, depth: depth, stem: stem.rawValue, channels: channels,
                                imageSize: imageSize, classes: classes, widthMultiplier: widthMultiplier))
            ?? ModelConfig(arch: model.name, channels: channels, imageSize: imageSize, classes: classes)
    }

    /// The configuration for the images of `data` (which must be square).
    public func config(for data: Dataset) throws -> ModelConfig {
        guard data.height == data.width else {
            throw LDError("\(data.source): images are \(data.height)x\(data.width), the models take square images")
        }
        return config(channels: data.channels, imageSize: data.height, classes: data.classes)
    }

    /// A short description for summaries: `convnet w64 d3`, `resnet18 small`.
    public var summary: String { config(channels: 1, imageSize: 1, classes: 1).summary }

    /// The models and their options, for the tools' `--help`.
    public static var modelsHelp: String {
        "Models (--model):\n" + Architectures.helpLines.map { "  " + $0 }.joined(separator: "\n")
    }
}

/// A registered architecture's name (`--model`).
public struct ModelName: ExpressibleByArgument, Equatable, Sendable {
    public let name: String

    public init?(argument: String) {
        guard ModelName.allValueStrings.contains(argument) else { return nil }
        name = argument
    }

    public var defaultValueDescription: String { name }
    public static var allValueStrings: [String] { Architectures.names }
}

/// A ResNet's stem, one of the registry's `ResNet18.stems`.
public struct ResNetStem: ExpressibleByArgument, Equatable, Sendable {
    public let rawValue: String

    public init?(argument: String) {
        guard ResNet18.stems.contains(argument) else { return nil }
        rawValue = argument
    }

    public static let small = ResNetStem(argument: "small")!
    public var defaultValueDescription: String { rawValue }
    public static var allValueStrings: [String] { ResNet18.stems }
}

/// `-o` of a run that trains a model: ld writes its own model files, so a PyTorch name (`.safetensors`, `.pt`,
/// `.pth`) is refused with the conversion command (`ld-squeeze --export`) rather than silently given ld's format.
public func checkModelOutputName(_ path: String?) throws {
    guard let path else { return }
    for ext in [".safetensors", ".pt", ".pth"] where path.lowercased().hasSuffix(ext) {
        throw ValidationError("-o \(path): ld writes ld model files; write MODEL.ldm, then ld-squeeze --export MODEL.ldm -o FILE.safetensors")
    }
}
