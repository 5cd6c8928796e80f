import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import ArgumentParser

// Argument types the tools share: every choice is an enumeration (so `--help` lists its values and a wrong
// one is a usage error, exit 64), and every structured value has one parser.

/// `MIN,MAX` with 0 < MIN <= MAX <= 1: a RandomResizedCrop area-scale range (`--crop-scale`).
public struct ScaleRange: ExpressibleByArgument, Equatable, Sendable, CustomStringConvertible {
    public var min: Float
    public var max: Float

    public init(_ min: Float, _ max: Float) {
        self.min = min
        self.max = max
    }

    public init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Float(parts[0]), let b = Float(parts[1]), a > 0, a <= b, b <= 1 else { return nil }
        self.init(a, b)
    }

    public var pair: (Float, Float) { (min, max) }
    public var description: String { "\(min),\(max)" }
    public var defaultValueDescription: String { description }
    public static var defaultCompletionKind: CompletionKind { .default }
}

/// `A:B` with 0 <= A < B: a half-open range of classes or epochs (`--classes 0:5`, `--epochs 100:200`).
public struct SpanArgument: ExpressibleByArgument, Equatable, Sendable {
    public var range: Range<Int>

    public init?(argument: String) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, a < b else { return nil }
        range = a..<b
    }
}

/// `--epochs E` (all of 0:E) or `--epochs A:B` (a shard of the epochs).
public struct EpochsArgument: ExpressibleByArgument, Equatable, Sendable {
    public var count: Int?
    public var span: Range<Int>?

    public init(_ count: Int) { self.count = count }

    public init?(argument: String) {
        if let e = Int(argument) {
            guard e >= 1 else { return nil }
            count = e
        } else if let s = SpanArgument(argument: argument) {
            span = s.range
        } else {
            return nil
        }
    }

    public var defaultValueDescription: String { count.map(String.init) ?? "\(span!.lowerBound):\(span!.upperBound)" }
}

// MARK: - The choices of the lower layers as arguments

extension RecoverMethod: ExpressibleByArgument {}
extension RecoverInit: ExpressibleByArgument {}
extension RealInitRule: ExpressibleByArgument {}
extension CropCurriculum: ExpressibleByArgument {}
extension ClassStatisticsMode: ExpressibleByArgument {}
extension LabelPruneRule: ExpressibleByArgument {}
extension PruneKeep: ExpressibleByArgument {}
extension SubsetRule: ExpressibleByArgument {}
extension PoolSampling: ExpressibleByArgument {}
extension StudentScheduleKind: ExpressibleByArgument {}
extension AugmentKind: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension RecipePreset: ExpressibleByArgument {}
extension LogitFormat: ExpressibleByArgument {}

extension MixKind: ExpressibleByArgument, CaseIterable {
    public static var allCases: [MixKind] { [.cutmix, .mixup, .none] }

    public init?(argument: String) {
        guard let k = MixKind.allCases.first(where: { $0.name == argument }) else { return nil }
        self = k
    }

    public var defaultValueDescription: String { name }
    public static var allValueStrings: [String] { allCases.map(\.name) }
}

extension WeightDecayScope: ExpressibleByArgument {
    /// `kernels` (conv and linear weights only) or `all`.
    public init?(argument: String) {
        switch argument {
        case "kernels": self = .flagged
        case "all": self = .all
        default: return nil
        }
    }

    public var defaultValueDescription: String { self == .all ? "all" : "kernels" }
    public static var allValueStrings: [String] { ["kernels", "all"] }
}
