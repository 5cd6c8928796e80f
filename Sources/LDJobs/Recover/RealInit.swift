import LDKernels
import LDRecords
import LDData
import LDNetworks
// Real-image initialisation (EDC, NeurIPS'24: "real image initialization"; RDED's selection by the teacher's
// loss): each synthetic image starts from a real image of its class instead of N(0, 1) noise, and the
// method's iterations refine it by statistics matching.
//
// Which real images: per class, the IPC images a rule ranks first, over the whole class (never the shard), so
// synthetic image (class c, IPC index i) starts from the i-th image of class c's list whatever shard makes it:
//
// - random: `ld-prune --select random --ipc IPC --seed S`'s draw (`Dataset.classBalancedIndices`), in its
//   order, so `--init real` with `--select random` starts from exactly the random real subset of that seed;
// - confident: the teacher's (first teacher's) cross-entropy on the image's own class, eval mode, no
//   augmentation; `--keep easy` (the default here) takes the lowest, `hard` the highest;
// - el2n, forgetting, aum, ccs: `ld-prune`'s rules on `ld-squeeze --scores` (same flags, same picks).
//
// Ties go to the smaller index; the score rules list a class's images best first by the kept end.

/// Where a recovery starts from.
public enum RecoverInit: String, CaseIterable, Sendable {
    /// N(0, 1) in normalised space, one keyed stream per image (the seeds').
    case noise
    /// A real image of the class (`RealInitSettings`).
    case real
}

/// How `--init real` picks its images.
public enum RealInitRule: String, CaseIterable, Sendable {
    case random, confident, el2n, forgetting, aum, ccs

    /// The `ld-prune --select` rule of the same name (nil for confident, which needs the teacher).
    var subsetRule: SubsetRule? { SubsetRule(rawValue: rawValue) }
}

/// The real images to start from: the data set and the rule.
public struct RealInitSettings: Sendable {
    /// The data set spec (`--data`), loaded at the teacher's size and evaluation ratio.
    public var data: String
    public var rule: RealInitRule = .random
    public var keep: PruneKeep = .easy
    /// A score stream (`ld-squeeze --scores`) for the score rules.
    public var scores: String?
    public var seed: UInt64 = 0

    public init(data: String) { self.data = data }
}

/// The picked real images of a whole run: `sources[c][i]` is the data set index that synthetic image
/// (class c, IPC index i) starts from.
public struct RealInit {
    public let data: Dataset
    public let settings: RealInitSettings
    public let sources: [[Int]]

    /// Loads the data (in the teacher's class order), ranks each class by the rule and keeps its first `ipc`.
    public init(_ settings: RealInitSettings, teacher: ModelFile, ipc: Int) throws {
        let config = teacher.model.config
        let loaded = try Dataset.load(settings.data, imageSize: config.imageSize, evalRatio: teacher.evalRatio)
        let data = try teacher.pair(loaded, role: "--data").data
        let sources: [[Int]]
        if let rule = settings.rule.subsetRule {
            let scores = try settings.scores.map { try ScoreTable(path: $0, for: data) }
            if settings.scores != nil && rule == .random {
                throw LDError("--scores is for --select el2n, forgetting, aum or ccs, not random")
            }
            let options = SubsetSelectionOptions(rule: rule, ipc: ipc, seed: settings.seed, keep: settings.keep)
            sources = try SubsetSelection.ranked(data, scores: scores, options: options)
        } else {
            guard settings.scores == nil else { throw LDError("--select confident ranks by the teacher; --scores is not used") }
            let classes = data.classIndices()
            for (c, list) in classes.enumerated() where list.count < ipc {
                throw LDError("\(data.source): class \(c) has \(list.count) images, fewer than --ipc \(ipc)")
            }
            let loss = try teacher.model.losses(data, normalization: Normalization(of: teacher))
            sources = classes.map { SubsetSelection.monotonic($0, scores: loss, count: ipc, highFirst: settings.keep == .hard) }
        }
        self.data = data
        self.settings = settings
        self.sources = sources
    }

    /// The real images a batch starts from, uint8 planar in batch order.
    public func pixels(for batch: RecoverBatch) throws -> [UInt8] {
        let indices = batch.images.map { sources[$0.classIndex][$0.ipcIndex] }
        var out = [UInt8](repeating: 0, count: indices.count * data.imageSize)
        try out.withUnsafeMutableBufferPointer { try data.images(indices, into: $0.baseAddress!) }
        return out
    }

    /// What shapes the images, for the run's identity (manifest, resume check, stream header): the rule, the
    /// data set's identity and every picked index (class-major).
    public var json: [String: JSONValue] {
        var o: [String: JSONValue] = [
            "init": .string(RecoverInit.real.rawValue),
            "init_data": .string(data.source),
            "init_data_hash": .string(data.contentHash),
            "init_select": .string(settings.rule.rawValue),
            "init_sources": .array(sources.map { .array($0.map { .int(Int64($0)) }) }),
        ]
        if settings.rule != .random { o["init_keep"] = .string(settings.keep.rawValue) }
        return o
    }
}
