import LDKernels

/// An architecture of the registry: its name, what it is, the options it takes, the check of a
/// configuration and the construction of its layers (with their parameter names, which model files key
/// weights by). Adding one is adding a file with a type that conforms, and its name to `Architectures.all`.
public protocol Architecture {
    /// The `--model` name (`ModelConfig.arch`).
    static var name: String { get }
    /// One line for `--help`.
    static var summary: String { get }
    /// Which of the shared model options it reads, with its defaults (`--width`, `--depth`, `--stem`).
    static var options: [ModelOption] { get }
    /// The configuration with the fields this architecture fixes set to their values (ResNet-18: width 64,
    /// depth 18), so that one model has one configuration.
    static func canonical(_ config: ModelConfig) -> ModelConfig
    /// Throws a one-line reason unless the configuration is one this architecture can build.
    static func validate(_ config: ModelConfig) throws
    /// The layers in order, the BatchNorm layers in registration order, weights drawn from `rng` in
    /// registration order.
    static func layers<G: RandomNumberGenerator>(_ config: ModelConfig, workspace: Workspace,
                                                 rng: inout G) -> (layers: [Layer], batchNorms: [BatchNorm2d])
    /// A short description of a configuration: `convnet w64 d3`, `resnet18 small`.
    static func describe(_ config: ModelConfig) -> String
    /// Parameters and activations per image (floats, an upper estimate) of a configuration that passed
    /// `validate`, computed without building it, in floating point so no field can overflow it: what a
    /// model from a forged file would need is known before anything is allocated.
    static func size(_ config: ModelConfig) -> (parameters: Double, activationsPerImage: Double)
}

/// A model option an architecture reads, with its default.
public enum ModelOption: Equatable, Sendable {
    case width(Int)
    case depth(Int)
    case stem(String)
    /// MobileNetV2's width multiplier (`ModelConfig.widthMultiplier`).
    case widthMultiplier(Double)

    /// The flag and its default, for help texts: `--width 64`.
    public var help: String {
        switch self {
        case .width(let w): return "--width \(w)"
        case .depth(let d): return "--depth \(d)"
        case .stem(let s): return "--stem \(s)"
        case .widthMultiplier(let m): return "--width-mult \(m)"
        }
    }
}

/// The registry of architectures.
public enum Architectures {
    /// Every architecture ld can build, in `--help` order.
    public static let all: [any Architecture.Type] = [ConvNet.self, ResNet18.self, ResNet50.self, ResNet101.self,
                                                      MobileNetV2.self, EfficientNetB0.self, VGG11.self, VisionTransformer.self]

    /// The names, in `--help` order.
    public static var names: [String] { all.map { $0.name } }

    /// The architecture called `name`, or an error listing the known ones.
    public static func named(_ name: String) throws -> any Architecture.Type {
        guard let a = all.first(where: { $0.name == name }) else {
            throw LDError("unknown model '\(name)' (expected \(names.joined(separator: " or ")))")
        }
        return a
    }

    /// One line per architecture: its name, what it is, its options and their defaults.
    public static var helpLines: [String] {
        let width = max(9, names.map(\.count).max() ?? 0)   // padding(toLength:) would cut longer names
        return all.map { a in
            let options = a.options.map(\.help).joined(separator: " ")
            return "\(a.name.padding(toLength: width, withPad: " ", startingAt: 0)) \(a.summary)\(options.isEmpty ? "" : " (\(options))")"
        }
    }
}
