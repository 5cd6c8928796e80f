import LDKernels
import LDRecords
import LDData
import LDNetworks
/// Label pruning (LPLD section 5): which label-batch records of a stream to keep at a compression ratio R.
///
/// The kept count is exact: `round(N / R)` of the N records read, rounded half away from zero
/// (`LabelPruning.keptCount`), for every rule except `prefix`, whose N is the whole relabel run (see
/// `LabelPruneRule.prefix`).

/// How ld-prune chooses the label-batch records it keeps.
public enum LabelPruneRule: String, CaseIterable, Sendable {
    /// A uniform random subset keyed by the seed (LPLD's pool): each record gets the priority
    /// `LabelPruning.priority(seed:batch:)` and the `round(N/R)` smallest priorities are kept. The choice depends
    /// only on the seed and the set of batch ids, not on their order or on how the input was sharded.
    case random
    /// LPLD's less-label generation: the batches with global id < `round(E * Bep / R)`, where E (`epochs`) and Bep
    /// (`batches_per_epoch`) come from the label stream's header, so the pool is the same whichever shards are
    /// pruned. The records stream through in input order (global order when shards are concatenated in order),
    /// and the run must end with every pool batch present. Without those header fields (or on an already pruned
    /// stream) N is the number of records read, the `round(N/R)` smallest ids are kept, and the whole input is
    /// held until its end.
    case prefix
    /// Mean over the batch of the teacher's largest softmax probability (easy = high).
    case confidence
    /// Mean over the batch of the gap between the two largest teacher probabilities (easy = high).
    case margin
    /// The share of each mixed image that is the original: `1 - box area / image area` for CutMix, lambda for
    /// Mixup, 1 without mixing (easy = high, the least mixed).
    case cutRatio = "cut-ratio"
    /// Fraction of the batch whose teacher argmax is the class of the image at that position, looked up in the
    /// image set (`--data`); for mixed batches, the position's own image (weight lambda) (easy = high).
    case correct

    /// Whether the rule ranks records by a teacher-side statistic (and so takes `--keep`).
    public var isMetric: Bool { self != .random && self != .prefix }
}

/// Which end of a ranking to keep.
public enum PruneKeep: String, CaseIterable, Sendable {
    /// High confidence, margin, cut ratio, correctness; low EL2N, low forgetting, high AUM.
    case easy
    /// The opposite end (the data-pruning literature's default).
    case hard
}

public enum LabelPruning {
    /// `round(total / ratio)`, rounded half away from zero (100 records at 40x keep 3, at 33.3x keep 3).
    public static func keptCount(total: Int, ratio: Double) -> Int {
        precondition(ratio >= 1 && ratio.isFinite, "ratio must be >= 1")
        return Int((Double(total) / ratio).rounded(.toNearestOrAwayFromZero))
    }

    /// The random rule's priority of batch `batch` under `seed`: the first draw of
    /// `LDRandom(seed:, stage: .prune, major: batch >> 32, minor: batch & 0xFFFF_FFFF, item: 1)`, uniform on UInt64.
    public static func priority(seed: UInt64, batch: UInt64) -> UInt64 {
        var rng = LDRandom(seed: seed, stage: .prune, major: Int(truncatingIfNeeded: batch >> 32),
                           minor: Int(truncatingIfNeeded: batch & 0xFFFF_FFFF), item: 1)
        return rng.next()
    }

    /// The header of the pruned stream: the input's, with `meta.pruned` = {rule, ratio, kept, total, seed, keep}
    /// (and `of`: the input's own `pruned`, when it was already pruned), so a consumer knows the records form a pool.
    public static func prunedHeader(_ input: StreamHeader, rule: LabelPruneRule, ratio: Double, kept: Int, total: Int,
                                    seed: UInt64, keep: PruneKeep?) -> StreamHeader {
        var h = input
        var p: [String: JSONValue] = [
            "rule": .string(rule.rawValue), "ratio": ratio == ratio.rounded() ? .int(Int64(ratio)) : .double(ratio),
            "kept": .int(Int64(kept)), "total": .int(Int64(total)),
            "seed": seed <= UInt64(Int64.max) ? .int(Int64(seed)) : .double(Double(seed)),
            "keep": keep.map { .string($0.rawValue) } ?? .null,
        ]
        if let previous = input.meta["pruned"] { p["of"] = previous }
        h.meta["pruned"] = .object(p)
        return h
    }

    /// The teacher-side statistic of `record` for a metric rule (higher is easier).
    /// - Parameters:
    ///   - imageLabels: the class of each image of the set (needed by `correct`).
    ///   - imageSize: (height, width) of the mixed images, for `cut-ratio` of CutMix (else lambda is used).
    public static func metric(_ rule: LabelPruneRule, of record: LabelBatchRecord, imageLabels: [Int32]? = nil,
                              imageSize: (height: Int, width: Int)? = nil, context: String = "") throws -> Double {
        let b = record.count
        guard b > 0 else { return 0 }
        switch rule {
        case .random, .prefix:
            throw LDError("\(context)rule '\(rule.rawValue)' has no per-record statistic")
        case .cutRatio:
            switch record.mix {
            case .none: return 1
            case .mixup: return Double(min(max(record.lambda, 0), 1))
            case .cutmix:
                guard let s = imageSize, s.height > 0, s.width > 0 else { return Double(min(max(record.lambda, 0), 1)) }
                let area = Double(record.box.height) * Double(record.box.width)
                return min(max(1 - area / Double(s.height * s.width), 0), 1)
            }
        case .confidence, .margin, .correct:
            var sumMax = 0.0, sumMargin = 0.0, hits = 0
            var labels: [Int32] = []
            if rule == .correct {
                guard let l = imageLabels else {
                    throw LDError("\(context)rule 'correct' needs the images' classes (--data)")
                }
                labels = l
            }
            try forEachImage(record) { i, top1, top2, argmax in
                sumMax += top1
                sumMargin += top1 - top2
                if rule == .correct {
                    let index = Int(record.indices[i])
                    guard index < labels.count else {
                        throw LDError("\(context)batch \(record.batch): image index \(index) out of range for \(labels.count) images")
                    }
                    if Int(labels[index]) == argmax { hits += 1 }
                }
            }
            switch rule {
            case .confidence: return sumMax / Double(b)
            case .margin: return sumMargin / Double(b)
            default: return Double(hits) / Double(b)
            }
        }
    }

    /// For each image of the batch: the two largest softmax probabilities and the argmax class. Top-k logits
    /// are normalised over the stored k classes (the others are unknown and taken as -infinity).
    static func forEachImage(_ record: LabelBatchRecord,
                             _ body: (Int, Double, Double, Int) throws -> Void) throws {
        let b = record.count, kk = record.classes
        func row(_ values: (Int) -> Float, count: Int, classOf: (Int) -> Int, image: Int) throws {
            var best = -Float.infinity, second = -Float.infinity, arg = 0
            for j in 0..<count {
                let v = values(j)
                if v > best || (best == -.infinity && j == 0) {
                    second = best; best = v; arg = j
                } else if v > second {
                    second = v
                }
            }
            var sum = 0.0
            for j in 0..<count { sum += Foundation.exp(Double(values(j) - best)) }
            let p1 = sum > 0 && best.isFinite ? 1 / sum : 0
            let p2 = second.isFinite && best.isFinite && sum > 0 ? Foundation.exp(Double(second - best)) / sum : 0
            try body(image, p1, p2, classOf(arg))
        }
        switch record.logits {
        case .half(let v):
            for i in 0..<b { try row({ Float(v[i * kk + $0]) }, count: kk, classOf: { $0 }, image: i) }
        case .single(let v):
            for i in 0..<b { try row({ v[i * kk + $0] }, count: kk, classOf: { $0 }, image: i) }
        case .topK(let k, let ids, let vals):
            for i in 0..<b {
                try row({ Float(vals[i * k + $0]) }, count: k, classOf: { Int(ids[i * k + $0]) }, image: i)
            }
        }
    }
}

import Foundation
