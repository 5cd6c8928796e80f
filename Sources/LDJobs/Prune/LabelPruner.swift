import LDKernels
import LDRecords
import LDData
import LDNetworks
/// The one-pass label pruner behind `ld-prune --ratio R`: reads label streams record by record and holds only
/// what it may keep.
///
/// Memory per rule (N records read, k = round(N/R) kept):
/// - `random`: about k + 8·sqrt(k) + 16 records (threshold sampling on the keyed priorities, see
///   `RandomPoolSampler`); the output waits for the end of the input.
/// - `prefix` with a declared run (header `epochs`, `batches_per_epoch`): nothing; records stream through.
/// - metric rules: a heap of round(E·Bep/R) records when the header declares the run, else every record.
/// - `prefix` without a declared run: every record (k is unknown until the end).

/// A record kept for the output: its payload exactly as read, its batch id and its byte split.
public struct KeptLabelRecord {
    public var batch: UInt64
    public var payload: [UInt8]
    public var bytes: LabelRecordBytes
}

/// A total order for selection: a primary key, then the batch id (smaller first), so ties are deterministic.
struct RankKey: Comparable {
    var primary: UInt64
    var batch: UInt64
    static func < (a: RankKey, b: RankKey) -> Bool {
        a.primary != b.primary ? a.primary < b.primary : a.batch < b.batch
    }
    /// An order-preserving map of a Double onto UInt64 (NaN sorts above +infinity).
    static func orderBits(_ d: Double) -> UInt64 {
        if d.isNaN { return UInt64.max }
        let bits = (d == 0 ? 0.0 : d).bitPattern
        return bits & (1 << 63) != 0 ? ~bits : bits | (1 << 63)
    }
}

/// Keeps the `capacity` smallest keys offered (every one when `capacity` is nil): a max-heap when bounded.
struct SmallestK {
    let capacity: Int?
    private(set) var items: [(key: RankKey, record: KeptLabelRecord)] = []

    init(capacity: Int?) { self.capacity = capacity }

    mutating func offer(_ key: RankKey, _ record: @autoclosure () -> KeptLabelRecord) {
        guard let cap = capacity else { items.append((key, record())); return }
        if cap == 0 { return }
        if items.count < cap {
            items.append((key, record()))
            var i = items.count - 1
            while i > 0 {
                let p = (i - 1) / 2
                if items[p].key < items[i].key { items.swapAt(p, i); i = p } else { break }
            }
        } else if key < items[0].key {
            items[0] = (key, record())
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && items[m].key < items[l].key { m = l }
                if r < n && items[m].key < items[r].key { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
    }

    /// The `k` smallest, ascending by key (k <= items.count).
    func smallest(_ k: Int) -> [KeptLabelRecord] {
        Array(items.sorted { $0.key < $1.key }.prefix(k).map { $0.record })
    }
}

/// Exact bottom-k sampling on uniform 64-bit priorities when k = round(N/R) is known only at the end.
///
/// After n records it holds every record whose priority is below `threshold(n)` = 2^64 ·
/// (1/R + 8·sqrt(1/(R·n)) + 16/n), a bound that decreases with n. At the end the k smallest held priorities are
/// the k smallest of all N exactly when at least k held priorities lie below `threshold(N)`: every record it
/// dropped lies above that. The number below `threshold(N)` is Binomial(N, 1/R + margin), more than 8 standard
/// deviations plus 16 above k on average, so a shortfall (reported as an error, never a silent approximation)
/// has probability far below 1e-15.
struct RandomPoolSampler {
    let ratio: Double
    private(set) var seen = 0
    private(set) var items: [(key: RankKey, record: KeptLabelRecord)] = []
    private(set) var peak = 0
    private var compactAt = 64

    init(ratio: Double) { self.ratio = ratio }

    static func threshold(seen n: Int, ratio: Double) -> UInt64 {
        let t = 1 / ratio + 8 * (1 / (ratio * Double(max(n, 1)))).squareRoot() + 16 / Double(max(n, 1))
        return t >= 0.999_999 ? UInt64.max : UInt64(t * 18_446_744_073_709_551_616.0)
    }

    mutating func offer(_ key: RankKey, _ record: @autoclosure () -> KeptLabelRecord) {
        seen += 1
        let tau = RandomPoolSampler.threshold(seen: seen, ratio: ratio)
        guard tau == UInt64.max || key.primary < tau else { return }
        items.append((key, record()))
        peak = max(peak, items.count)
        if items.count >= compactAt {
            if tau != UInt64.max { items.removeAll { $0.key.primary >= tau } }
            compactAt = max(64, items.count + items.count / 8 + 16)
        }
    }

    /// The k smallest priorities among all records offered, ascending.
    func smallest(_ k: Int) throws -> [KeptLabelRecord] {
        let tau = RandomPoolSampler.threshold(seen: seen, ratio: ratio)
        let sorted = items.sorted { $0.key < $1.key }
        let below = tau == UInt64.max ? sorted.count : sorted.prefix { $0.key.primary < tau }.count
        guard below >= k else {
            throw LDError("random pruning: only \(below) candidate records for \(k) to keep (sampling margin exceeded; try another --seed)")
        }
        return sorted.prefix(k).map { $0.record }
    }
}

/// What `LabelPruneJob` does.
public struct LabelPruneOptions {
    public var rule: LabelPruneRule
    /// R >= 1.
    public var ratio: Double
    public var seed: UInt64
    /// Which end of a metric rule's ranking to keep (nil for random and prefix).
    public var keep: PruneKeep?
    /// Classes of the images the stream refers to (for `correct`).
    public var imageLabels: [Int32]?
    /// (height, width) of the images (for `cut-ratio` of CutMix batches when the header has no shape).
    public var imageSize: (height: Int, width: Int)?
    /// Identity of the image set given with the labels: a stream recorded for another set is refused.
    public var imageSetHash: String?

    public init(rule: LabelPruneRule = .random, ratio: Double, seed: UInt64 = 0, keep: PruneKeep? = nil,
                imageLabels: [Int32]? = nil, imageSize: (height: Int, width: Int)? = nil, imageSetHash: String? = nil) {
        self.rule = rule
        self.ratio = ratio
        self.seed = seed
        self.keep = keep
        self.imageLabels = imageLabels
        self.imageSize = imageSize
        self.imageSetHash = imageSetHash
    }
}

/// What a pruning run read and wrote.
public struct LabelPruneSummary {
    /// Records read (N) and kept.
    public var total = 0
    public var kept = 0
    /// Bytes read (uncompressed) and written, by component.
    public var input = LabelStorage()
    public var output = LabelStorage()
    /// The output stream's header.
    public var header: StreamHeader?
    /// The most records held in memory at once (the memory bound: about round(N/R) for random, the heap
    /// capacity for metric rules, 0 for a streaming prefix).
    public var peakHeld = 0
}

/// Reads label streams once and writes the kept records as one label stream.
public enum LabelPruneJob {
    /// Prunes the streams from `inputs` (opened one after the other; each may hold concatenated streams, all of
    /// which must match the first one's header) and writes the result through the writer `open` makes from the
    /// output header. `progress` is called with the number of records read.
    public static func run(inputs: [() throws -> StreamReader], options o: LabelPruneOptions,
                           open: (StreamHeader) throws -> StreamWriter,
                           progress: ((Int) -> Void)? = nil) throws -> LabelPruneSummary {
        guard o.ratio >= 1, o.ratio.isFinite else { throw LDError("--ratio must be a number >= 1, got \(o.ratio)") }
        if o.rule == .correct && o.imageLabels == nil {
            throw LDError("rule 'correct' needs the image set (--data) to look up each image's class")
        }
        var summary = LabelPruneSummary()
        var first: StreamHeader?
        var run: Int?
        var writer: StreamWriter?
        var streamedIds = Set<UInt64>()
        var poolSize = 0
        var random = RandomPoolSampler(ratio: o.ratio)
        var ranked = SmallestK(capacity: nil)
        let keep = o.keep ?? .hard

        do {
            for makeReader in inputs {
                let reader = try makeReader()
                try reader.expect(kind: .labels)
                while let event = try reader.nextEvent() {
                    switch event {
                    case .header(let h):
                        summary.input.addStream(headerJSONBytes: reader.headerJSON.count)
                        if let f = first {
                            if let why = f.mismatch(with: h) {
                                throw LDError("\(reader.name): stream \(reader.streamIndex) does not match the first input stream: \(why)")
                            }
                            if let r = run, let r2 = LabelStreamInfo(header: h).declaredRunBatches, r2 != r {
                                throw LDError("\(reader.name): stream \(reader.streamIndex) declares a run of \(r2) batches, the first stream \(r)")
                            }
                            continue
                        }
                        first = h
                        if let want = o.imageSetHash, let have = h.imageSetHash, want != have {
                            throw LDError("\(reader.name): labels are for image set \(have), the images given are \(want)")
                        }
                        run = LabelStreamInfo(header: h).declaredRunBatches
                        if o.rule == .prefix, let r = run {
                            // The pool is known from the header: stream it.
                            poolSize = LabelPruning.keptCount(total: r, ratio: o.ratio)
                            if poolSize == 0 {
                                throw LDError("ratio \(o.ratio) keeps round(\(r)/\(o.ratio)) = 0 of the run's \(r) batches; use a smaller --ratio")
                            }
                            let out = LabelPruning.prunedHeader(h, rule: .prefix, ratio: o.ratio, kept: poolSize,
                                                                total: r, seed: o.seed, keep: nil)
                            writer = try open(out)
                            summary.header = out
                            summary.output.addStream(headerJSONBytes: try out.encoded().count)
                        } else if o.rule.isMetric, let r = run {
                            ranked = SmallestK(capacity: LabelPruning.keptCount(total: r, ratio: o.ratio))
                        }
                    case .end:
                        continue
                    case .record(let rec):
                        guard let header = first else { continue }
                        guard rec.kind == .labels else {
                            throw LDError("\(rec.context): expected a 'labels' record, found '\(rec.kind)'")
                        }
                        let batch = try LabelBatchRecord(rec, header: reader.header)
                        let bytes = LabelRecordBytes(batch, payloadBytes: rec.payload.count)
                        summary.input.add(bytes)
                        summary.total += 1
                        progress?(summary.total)
                        func kept() -> KeptLabelRecord { KeptLabelRecord(batch: batch.batch, payload: rec.payload, bytes: bytes) }
                        switch o.rule {
                        case .random:
                            random.offer(RankKey(primary: LabelPruning.priority(seed: o.seed, batch: batch.batch),
                                                 batch: batch.batch), kept())
                        case .prefix:
                            if let w = writer {
                                guard batch.batch < UInt64(poolSize) else { continue }
                                guard streamedIds.insert(batch.batch).inserted else {
                                    throw LDError("\(rec.context): batch \(batch.batch) appears twice in the input")
                                }
                                try w.write(kind: .labels, payload: rec.payload)
                                summary.output.add(bytes)
                            } else {
                                ranked.offer(RankKey(primary: batch.batch, batch: batch.batch), kept())
                            }
                        default:
                            var size = o.imageSize
                            if header.shape.count == 3, header.shape[1] > 0, header.shape[2] > 0 {
                                size = (header.shape[1], header.shape[2])
                            }
                            let m = try LabelPruning.metric(o.rule, of: batch, imageLabels: o.imageLabels,
                                                            imageSize: size, context: "\(rec.context): ")
                            // Smallest key first: easy keeps high values, hard keeps low ones.
                            let primary = keep == .easy ? RankKey.orderBits(-m) : RankKey.orderBits(m)
                            ranked.offer(RankKey(primary: primary, batch: batch.batch), kept())
                        }
                    }
                }
            }
            guard let header = first else { throw LDError("no input streams") }

            if let w = writer {
                if summary.output.records != poolSize {
                    throw LDError("prefix: the input holds \(summary.output.records) of the pool's \(poolSize) batches (global ids 0..<\(poolSize) of a run of \(run ?? 0)); give the shards that cover them")
                }
                try w.finish()
                summary.kept = poolSize
                return summary
            }

            let k = LabelPruning.keptCount(total: summary.total, ratio: o.ratio)
            if k == 0 && summary.total > 0 {
                throw LDError("ratio \(o.ratio) keeps round(\(summary.total)/\(o.ratio)) = 0 of \(summary.total) records; use a smaller --ratio")
            }
            var out: [KeptLabelRecord]
            summary.peakHeld = o.rule == .random ? random.peak : ranked.items.count
            switch o.rule {
            case .random:
                out = try random.smallest(k)
            default:
                if let cap = ranked.capacity, k > cap {
                    throw LDError("the input has \(summary.total) records, more than the \(run ?? 0) its header declares (epochs x batches_per_epoch)")
                }
                out = ranked.smallest(k)
            }
            out.sort { $0.batch < $1.batch }
            for i in out.indices.dropFirst() where out[i].batch == out[i - 1].batch {
                throw LDError("batch \(out[i].batch) appears twice in the input")
            }
            let outHeader = LabelPruning.prunedHeader(header, rule: o.rule, ratio: o.ratio, kept: k, total: summary.total,
                                                      seed: o.seed, keep: o.rule.isMetric ? keep : nil)
            let w = try open(outHeader)
            writer = w
            summary.header = outHeader
            summary.output.addStream(headerJSONBytes: try outHeader.encoded().count)
            for r in out {
                try w.write(kind: .labels, payload: r.payload)
                summary.output.add(r.bytes)
            }
            try w.finish()
            summary.kept = k
            return summary
        } catch {
            writer?.abort()
            throw error
        }
    }
}
