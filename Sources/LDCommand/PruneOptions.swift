import LDJobs
import ArgumentParser

// ld-prune's two modes' flags (the tool refuses each one in the other mode).

/// The flags of label mode.
public struct LabelModeOptions: ParsableArguments {
    public init() {}

    @Option(help: "The compression ratio R >= 1 (non-integer allowed, e.g. 33.3); keeps round(N/R) records.")
    public var ratio: Double?

    @Option(help: "Which records to keep.")
    public var rule: LabelPruneRule = .random

    /// Whether each flag of this mode was given, by name.
    public var given: [(Bool, String)] { [(ratio != nil, "--ratio"), (rule != .random, "--rule")] }

    public func check(keep: PruneKeep?, data: String?) throws {
        if let r = ratio, !(r >= 1 && r.isFinite) { throw ValidationError("--ratio must be a number >= 1, got \(r)") }
        if keep != nil && !rule.isMetric {
            throw ValidationError("--keep applies to the metric rules (confidence, margin, cut-ratio, correct), not \(rule.rawValue)")
        }
        if rule == .correct && data == nil {
            throw ValidationError("--rule correct needs the image set (--data) to look up each image's class")
        }
    }
}

/// The flags of image mode.
public struct ImageModeOptions: ParsableArguments {
    public init() {}

    @Option(help: "Images per class to keep.")
    public var ipc: Int?

    @Option(help: "How images are ranked or drawn.")
    public var select: SubsetRule = .random

    @Option(help: "ld-squeeze's score stream for --data (columns el2n, forgetting, aum, ...).")
    public var scores: String?

    @Option(help: "ccs: fraction beta of each class with the lowest AUM dropped before stratifying.")
    public var ccsCutoff: Double = 0.3

    @Option(help: "ccs: number of equal-width score strata.")
    public var ccsStrata: Int = 50

    @Option(help: "ccs: the score column the strata are cut on.")
    public var ccsScore: String = "aum"

    @Option(help: "Also write the subset as a PNG ImageFolder here (000/, 001/, ..., manifest.json).")
    public var png: String?

    @Option(help: "Combine F x F downsampled images of a class per canvas (selects F^2 x --ipc per class; RethinkDC's PCA).")
    public var combine: Int?

    public var given: [(Bool, String)] {
        [(ipc != nil, "--ipc"), (select != .random, "--select"), (scores != nil, "--scores"), (png != nil, "--png"),
         (combine != nil, "--combine")]
    }

    public func check(keep: PruneKeep?) throws {
        guard let k = ipc, k >= 1 else { throw ValidationError("--ipc must be >= 1, got \(ipc ?? 0)") }
        if select != .random && scores == nil {
            throw ValidationError("--select \(select.rawValue) needs ld-squeeze's score stream (--scores FILE)")
        }
        if keep != nil && select.column == nil {
            throw ValidationError("--keep applies to --select el2n, forgetting and aum, not \(select.rawValue)")
        }
        guard ccsCutoff >= 0 && ccsCutoff < 1 else { throw ValidationError("--ccs-cutoff must be in [0, 1), got \(ccsCutoff)") }
        guard ccsStrata >= 1 else { throw ValidationError("--ccs-strata must be >= 1, got \(ccsStrata)") }
        if let f = combine, f < 1 { throw ValidationError("--combine must be a grid factor >= 1, got \(f)") }
    }
}

