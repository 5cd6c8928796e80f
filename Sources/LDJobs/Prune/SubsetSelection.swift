import LDKernels
import LDRecords
import LDData
import LDNetworks
/// Class-balanced image-subset selection (RethinkDC sections 6.3 and 6.4): the data-pruning baselines at a
/// given IPC, run within each class.

/// How the images of each class are chosen.
public enum SubsetRule: String, CaseIterable, Sendable {
    /// Uniform: exactly `Dataset.classBalancedIndices(ipc:seed:)` (the evaluation's random baseline).
    case random
    /// Monotonic by EL2N (hard = high).
    case el2n
    /// Monotonic by forgetting events (hard = high).
    case forgetting
    /// Monotonic by accumulated margin (hard = low).
    case aum
    /// Coverage-centric coreset: drop the class's lowest-AUM fraction beta, split the rest into equal-width
    /// score strata and spread the budget over them by water-filling, random within a stratum.
    case ccs

    /// The score column a monotonic rule ranks by (nil for random and ccs).
    public var column: String? {
        switch self {
        case .el2n: return "el2n"
        case .forgetting: return "forgetting"
        case .aum: return "aum"
        case .random, .ccs: return nil
        }
    }

    /// Whether a high value of `column` means a hard example.
    static func highIsHard(_ column: String) -> Bool { column != "aum" }
}

/// Per-example scores from ld-squeeze (`--scores`): one column of values per name, indexed like the data set.
public struct ScoreTable {
    /// Column names (header `meta.columns`).
    public let columns: [String]
    /// The values, column-major: `values[c][i]` is column c of example i.
    public let values: [[Float]]
    /// The image-set identity the scores were computed on.
    public let imageSetHash: String

    /// Reads a score stream and checks it against `data`: kind `scores`, `image_set_hash` equal to
    /// `data.contentHash`, one record per example index 0..<data.count.
    public init(path: String, for data: Dataset) throws {
        let reader = try StreamReader(path: path)
        try reader.expect(kind: .scores)
        reader.requireMatchingHeaders()
        let h = reader.header
        let want = data.contentHash
        guard let have = h.imageSetHash else {
            throw LDError("\(reader.name): score stream names no image set (image_set_hash); expected \(want) of \(data.source)")
        }
        guard have == want else {
            throw LDError("\(reader.name): scores are for image set \(have), but \(data.source) is \(want)")
        }
        guard let cols = ScoreRecord.columns(of: h), !cols.isEmpty else {
            throw LDError("\(reader.name): score stream header has no meta.columns")
        }
        guard cols.count <= 256, Set(cols).count == cols.count else {
            throw LDError("\(reader.name): score stream header has \(cols.count) columns\(cols.count <= 256 ? ", some named twice" : ", more than 256")")
        }
        let n = data.count
        try Memory.require(4 * Double(n) * Double(cols.count), for: "\(reader.name): \(cols.count) score columns of \(n) examples")
        var table = [[Float]](repeating: [Float](repeating: .nan, count: n), count: cols.count)
        var seen = [Bool](repeating: false, count: n)
        var count = 0
        while let r = try reader.next() {
            let s = try ScoreRecord(r, header: reader.header)
            guard s.index < UInt64(n) else {
                throw LDError("\(r.context): example index \(s.index) out of range for \(n) images of \(data.source)")
            }
            let i = Int(s.index)
            guard !seen[i] else { throw LDError("\(r.context): example \(i) scored twice") }
            seen[i] = true
            count += 1
            for (c, v) in s.values.enumerated() {
                guard v.isFinite else { throw LDError("\(r.context): example \(i): \(cols[c]) is \(v)") }
                table[c][i] = v
            }
        }
        guard count == n else {
            throw LDError("\(reader.name): scores for \(count) examples, \(data.source) has \(n)")
        }
        columns = cols
        values = table
        imageSetHash = have
    }

    /// A table from values (tests).
    public init(columns: [String], values: [[Float]], imageSetHash: String) {
        self.columns = columns
        self.values = values
        self.imageSetHash = imageSetHash
    }

    /// The values of column `name`, or an error naming the columns there are.
    public func column(_ name: String) throws -> [Float] {
        guard let c = columns.firstIndex(of: name) else {
            throw LDError("scores have no column '\(name)' (columns: \(columns.joined(separator: ", ")))")
        }
        return values[c]
    }
}

/// The settings of a selection.
public struct SubsetSelectionOptions {
    public var rule: SubsetRule
    public var ipc: Int
    public var seed: UInt64
    /// Monotonic rules: which end to keep.
    public var keep: PruneKeep
    /// CCS: the fraction of each class with the lowest AUM dropped first (beta).
    public var ccsCutoff: Double
    /// CCS: the number of equal-width strata.
    public var ccsStrata: Int
    /// CCS: the score the strata are cut on.
    public var ccsScore: String

    public init(rule: SubsetRule, ipc: Int, seed: UInt64 = 0, keep: PruneKeep = .hard, ccsCutoff: Double = 0.3,
                ccsStrata: Int = 50, ccsScore: String = "aum") {
        self.rule = rule
        self.ipc = ipc
        self.seed = seed
        self.keep = keep
        self.ccsCutoff = ccsCutoff
        self.ccsStrata = ccsStrata
        self.ccsScore = ccsScore
    }
}

public enum SubsetSelection {
    /// The selected image indices of `data`, class by class (ascending class). Within a class: random keeps
    /// `classBalancedIndices`' draw order; the score rules list the chosen images by ascending index.
    public static func select(_ data: Dataset, scores: ScoreTable?, options o: SubsetSelectionOptions) throws -> [Int] {
        let groups = try ranked(data, scores: scores, options: o)
        return o.rule == .random ? groups.flatMap { $0 } : groups.flatMap { $0.sorted() }
    }

    /// The selected images of each class (`result[c]` for class c), in the rule's rank order: monotonic
    /// rules best first by the kept end (ties: smaller index first), random in its draw order, ccs stratum by
    /// stratum in draw order. `ld-prune --combine` places images on canvases by this rank.
    public static func ranked(_ data: Dataset, scores: ScoreTable?, options o: SubsetSelectionOptions) throws -> [[Int]] {
        try Limits.check(o.ipc, "--ipc", limit: Limits.ipc)
        let classes = data.classIndices()
        for (c, list) in classes.enumerated() where list.count < o.ipc {
            throw LDError("\(data.source): class \(c) has \(list.count) images, fewer than --ipc \(o.ipc)")
        }
        if o.rule == .random {
            let flat = try data.classBalancedIndices(ipc: o.ipc, seed: o.seed)
            return (0..<classes.count).map { c in Array(flat[c * o.ipc..<(c + 1) * o.ipc]) }
        }
        guard let table = scores else { throw LDError("--select \(o.rule.rawValue) needs a score stream (--scores)") }
        var out: [[Int]] = []
        out.reserveCapacity(data.classes)
        if let name = o.rule.column {
            let s = try table.column(name)
            let highFirst = SubsetRule.highIsHard(name) == (o.keep == .hard)
            for list in classes {
                out.append(monotonic(list, scores: s, count: o.ipc, highFirst: highFirst))
            }
        } else {
            guard o.ccsCutoff >= 0 && o.ccsCutoff < 1 else { throw LDError("--ccs-cutoff must be in [0, 1), got \(o.ccsCutoff)") }
            guard o.ccsStrata >= 1 else { throw LDError("--ccs-strata must be >= 1, got \(o.ccsStrata)") }
            let aum = o.ccsCutoff > 0 ? try table.column("aum") : []
            let strat = try table.column(o.ccsScore)
            for (c, list) in classes.enumerated() {
                let pool = o.ccsCutoff > 0 ? cutoff(list, aum: aum, beta: o.ccsCutoff) : list
                guard pool.count >= o.ipc else {
                    throw LDError("\(data.source): class \(c) keeps \(pool.count) images after the CCS cut-off \(o.ccsCutoff), fewer than --ipc \(o.ipc); lower --ccs-cutoff")
                }
                out.append(try stratified(pool, scores: strat, count: o.ipc, strata: o.ccsStrata, seed: o.seed, class: c))
            }
        }
        return out
    }

    /// The `count` members of `list` with the highest (or lowest) score; ties go to the smaller index.
    public static func monotonic(_ list: [Int], scores: [Float], count: Int, highFirst: Bool) -> [Int] {
        let ranked = list.sorted { a, b in
            let sa = scores[a], sb = scores[b]
            if sa != sb { return highFirst ? sa > sb : sa < sb }
            return a < b
        }
        return Array(ranked.prefix(count))
    }

    /// CCS hard cut-off: `list` without its floor(beta · n) lowest-AUM members (ties: the smaller index goes first).
    public static func cutoff(_ list: [Int], aum: [Float], beta: Double) -> [Int] {
        let drop = Int((beta * Double(list.count)).rounded(.down))
        let ascending = monotonic(list, scores: aum, count: list.count, highFirst: false)
        return Array(ascending.dropFirst(drop))
    }

    /// The stratum (0..<strata) of each score: equal-width strata over [min, max], the maximum in the last one
    /// (CCS splits [min, 1.0001·max]; this is the same partition without the sign problem of a negative max).
    public static func strata(of values: [Float], strata: Int) -> [Int] {
        guard let lo = values.min(), let hi = values.max(), hi > lo else { return values.map { _ in 0 } }
        let width = (Double(hi) - Double(lo)) / Double(strata)
        return values.map { v in min(strata - 1, Int(((Double(v) - Double(lo)) / width).rounded(.down))) }
    }

    /// CCS budget allocation: visit the strata by ascending population (ties: lower stratum first) and give each
    /// min(population, floor(budget left / strata left)). Small strata are taken whole; the rest spreads evenly.
    public static func waterFill(populations: [Int], budget: Int) -> [Int] {
        let order = populations.indices.sorted { populations[$0] != populations[$1] ? populations[$0] < populations[$1] : $0 < $1 }
        var left = budget
        var out = [Int](repeating: 0, count: populations.count)
        for (i, s) in order.enumerated() {
            let take = min(populations[s], left / (order.count - i))
            out[s] = take
            left -= take
        }
        return out
    }

    /// CCS within one class: strata over `scores` of `pool`, budgets by water-filling, and within each stratum
    /// a uniform sample without replacement drawn from `LDRandom(seed:, stage: .prune, major: class, minor: stratum,
    /// item: 2)`.
    public static func stratified(_ pool: [Int], scores: [Float], count: Int, strata: Int, seed: UInt64,
                                  class c: Int) throws -> [Int] {
        let ids = SubsetSelection.strata(of: pool.map { scores[$0] }, strata: strata)
        var members = [[Int]](repeating: [], count: strata)
        for (j, s) in ids.enumerated() { members[s].append(pool[j]) }
        let budgets = waterFill(populations: members.map(\.count), budget: count)
        var out: [Int] = []
        for s in 0..<strata where budgets[s] > 0 {
            var r = LDRandom(seed: seed, stage: .prune, major: c, minor: s, item: 2)
            out += r.sample(budgets[s], from: members[s].count).map { members[s][$0] }
        }
        guard out.count == count else {
            throw LDError("CCS: allocated \(out.count) of \(count) images (pool of \(pool.count))")
        }
        return out
    }
}
