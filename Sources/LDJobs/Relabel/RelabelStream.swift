import LDKernels
import LDRecords
import LDData
import LDNetworks
// Label streams made by ld-relabel: how logits are stored (`LogitStorage`), the run's settings and the header
// meta they become (`RelabelSettings`, whose doc comment lists every meta key), and the same read back by
// consumers (`LabelStreamInfo`).

/// How a label stream stores the teacher's logits.
public enum LogitStorage: Equatable, CustomStringConvertible {
    /// All K classes as fp16 (the seeds' format).
    case fp16
    /// All K classes as fp32.
    case fp32
    /// The k best classes per image: class ids (u16) and fp16 values, best first.
    case topK(Int)

    /// `fp16`, `fp32` or `topk` (the `logits` meta value).
    public var name: String {
        switch self {
        case .fp16: return "fp16"
        case .fp32: return "fp32"
        case .topK: return "topk"
        }
    }

    /// k for top-k, 0 for the dense formats (the `top_k` meta value).
    public var k: Int { if case .topK(let k) = self { return k }; return 0 }

    public var description: String { k > 0 ? "top-\(k)" : name }

    /// The storage named by `name` and `topK` (the meta values), or nil.
    public init?(name: String, topK: Int) {
        switch (name, topK) {
        case ("fp16", 0): self = .fp16
        case ("fp32", 0): self = .fp32
        case ("topk", let k) where k > 0: self = .topK(k)
        default: return nil
        }
    }

    /// Record form of a batch of logits `x` (B x K, image-major). Top-k keeps the k largest values per image,
    /// largest first; equal values keep the lower class id first.
    public func logits(_ x: UnsafePointer<Float>, batch: Int, classes: Int) -> Logits {
        let n = batch * classes
        switch self {
        case .fp32: return .single(Array(UnsafeBufferPointer(start: x, count: n)))
        case .fp16: return .half((0..<n).map { Float16(x[$0]) })
        case .topK(let k):
            precondition(k >= 1 && k <= classes, "LogitStorage: top-\(k) of \(classes) classes")
            var ids = [UInt16](repeating: 0, count: batch * k)
            var vals = [Float16](repeating: 0, count: batch * k)
            var best = [Int](repeating: 0, count: k)
            for b in 0..<batch {
                let row = x + b * classes
                // Insertion into a sorted list of k: K is small (10 to 1000) and k smaller.
                var filled = 0
                for c in 0..<classes {
                    let v = row[c]
                    if filled == k && !(v > row[best[k - 1]]) { continue }
                    var j = min(filled, k - 1)
                    while j > 0 && v > row[best[j - 1]] {
                        best[j] = best[j - 1]
                        j -= 1
                    }
                    best[j] = c
                    if filled < k { filled += 1 }
                }
                for j in 0..<k {
                    ids[b * k + j] = UInt16(best[j])
                    vals[b * k + j] = Float16(row[best[j]])
                }
            }
            return .topK(k: k, classes: ids, values: vals)
        }
    }
}

/// The settings of one ld-relabel run, and what a label stream written by ld-relabel says about itself.
///
/// ## The header of a label stream
///
/// - `kind` `labels`, `producer` `ld-relabel`, `seed` the run's seed;
/// - `classes`: the teacher's class count K (every record's logits have K classes);
/// - `shape`: the image shape [C, H, W] the crop boxes refer to;
/// - `teacher_hash`: the teacher file's `ModelFile.hash`; `image_set_hash`: the image set's
///   `Dataset.contentHash`. Consumers (ld-train, ld-prune) refuse a stream whose hashes do not match their
///   images or teacher;
/// - `meta`, with these keys (all always present):
///
/// | key | value |
/// |---|---|
/// | `epochs` | E, the epochs of the whole run (not only this shard) |
/// | `epoch_start`, `epoch_end` | the epochs this stream holds: epoch_start ..< epoch_end |
/// | `images` | N, the size of the image set |
/// | `batch_size` | B |
/// | `drop_last` | whether a partial last batch of an epoch was dropped |
/// | `batches_per_epoch` | ceil(N/B), or floor(N/B) with `drop_last` |
/// | `mix` | `cutmix`, `mixup` or `none` |
/// | `cutmix_alpha`, `mixup_alpha` | Beta parameters of the mix draws (only the one of `mix` is used) |
/// | `crop_scale`, `crop_ratio` | RandomResizedCrop's [min, max] area scale and aspect-ratio range |
/// | `flip` | probability of a horizontal flip |
/// | `logits` | `fp16`, `fp32` or `topk` (class ids u16 and fp16 values, best first) |
/// | `top_k` | k for `topk`, 0 for the dense formats |
///
/// Shards of one run (`--epochs 0:150`, `--epochs 150:300`) differ only in `epoch_start` and
/// `epoch_end`, which `StreamHeader.mismatch` ignores (it compares kind, classes, shape and the hashes), so
/// `cat shard-*.ldl` reads as one stream. Concatenated in epoch order, the shards' label records are
/// byte-identical to the records of one run over all epochs; the headers and end records of course are not
/// (each shard has its own), so "the same stream" means the same sequence of label records.
///
/// ## Records
///
/// One `LabelBatchRecord` per batch, in global batch order: batch id `epoch * batches_per_epoch + b` for
/// batch b of an epoch. Every random draw is keyed by what it is about, so neither shards nor the thread
/// count change it:
/// - the order of epoch e: a permutation of 0..<N from `LDRandom(seed, .relabel, major: e)`, cut into
///   consecutive batches of B (the last one partial unless `drop_last`);
/// - the crop box and flip of the image at position i of batch b: `LDRandom(seed, .augment, major: e,
///   minor: b, item: i)` (RandomResizedCrop's box, then the flip), with b local to the epoch;
/// - the mix of batch b: `LDRandom(seed, .mix, major: e, minor: b)` (`CutMix.sample` / `Mixup.sample`).
/// The logits are the teacher's raw outputs (no softmax, no temperature) in eval mode on the batch that
/// `LabelBatchBuilder` builds from these parameters, normalised with the teacher's own normalisation.
public struct RelabelSettings: Equatable {
    /// The run's seed (every draw is keyed by it).
    public var seed: UInt64
    /// E, the epochs of the whole run.
    public var epochs: Int
    /// The epochs this run produces: a sub-range of 0..<epochs.
    public var epochRange: Range<Int>
    /// B.
    public var batchSize: Int
    /// Drop the partial last batch of each epoch.
    public var dropLast: Bool
    /// How batches are mixed.
    public var mix: MixKind
    /// Beta(alpha, alpha) of CutMix's lambda (the seeds': 1.0).
    public var cutmixAlpha: Double
    /// Beta(alpha, alpha) of Mixup's lambda (the seeds': 0.8).
    public var mixupAlpha: Double
    /// Per-image crop rule (the seeds': scale 0.08...1, ratio 3/4...4/3).
    public var crop: RandomResizedCrop
    /// Probability of a horizontal flip after the crop (the seeds': 0.5).
    public var flipProbability: Float
    /// How logits are stored.
    public var logits: LogitStorage

    public init(seed: UInt64 = 42, epochs: Int, epochRange: Range<Int>? = nil, batchSize: Int, dropLast: Bool = false,
                mix: MixKind = .cutmix, cutmixAlpha: Double = 1.0, mixupAlpha: Double = 0.8,
                crop: RandomResizedCrop = RandomResizedCrop(), flipProbability: Float = 0.5,
                logits: LogitStorage = .fp16) {
        self.seed = seed
        self.epochs = epochs
        self.epochRange = epochRange ?? 0..<max(epochs, 0)
        self.batchSize = batchSize
        self.dropLast = dropLast
        self.mix = mix
        self.cutmixAlpha = cutmixAlpha
        self.mixupAlpha = mixupAlpha
        self.crop = crop
        self.flipProbability = flipProbability
        self.logits = logits
    }

    /// Batches per epoch over `images` images: ceil(N/B), or floor(N/B) with `dropLast`.
    public func batchesPerEpoch(images n: Int) -> Int {
        guard batchSize > 0 else { return 0 }
        return dropLast ? n / batchSize : (n + batchSize - 1) / batchSize
    }

    /// The mix's alpha.
    public var mixAlpha: Double { mix == .mixup ? mixupAlpha : cutmixAlpha }

    /// The keyed draws of a run over `count` images of `height` x `width`.
    public func draws(height: Int, width: Int, count: Int) -> BatchDraws {
        BatchDraws(count: count, height: height, width: width, batchSize: batchSize, dropLast: dropLast,
                   augment: .randomResizedCrop(crop, flipProbability: flipProbability),
                   mix: BatchMix(mix, cutmixAlpha: cutmixAlpha, mixupAlpha: mixupAlpha), seed: seed,
                   orderStage: .relabel)
    }

    /// Checks the settings against an image set of `images` images and a teacher of `classes` classes.
    public func validate(images n: Int, classes: Int) throws {
        try Limits.check(epochs, "--epochs", limit: Limits.epochs)
        guard epochRange.lowerBound >= 0, epochRange.upperBound <= epochs, !epochRange.isEmpty else {
            throw LDError("epoch range \(epochRange.lowerBound):\(epochRange.upperBound) is not a non-empty part of 0:\(epochs)")
        }
        try Limits.check(batchSize, "--batch-size", limit: Limits.batchSize)
        guard n >= 1 else { throw LDError("the image set is empty") }
        guard batchesPerEpoch(images: n) >= 1 else {
            throw LDError("batch size \(batchSize) with --drop-last leaves no batch of \(n) images")
        }
        guard n <= Int(UInt32.max) else { throw LDError("\(n) images: at most \(UInt32.max) can be indexed") }
        guard cutmixAlpha > 0, mixupAlpha > 0 else {
            throw LDError("mix alphas must be positive, got cutmix \(cutmixAlpha), mixup \(mixupAlpha)")
        }
        if case .topK(let k) = logits, k < 1 || k > classes {
            throw LDError("--top-k \(k): expected 1...\(classes) (the teacher has \(classes) classes)")
        }
        guard classes <= Int(UInt16.max) + 1 else { throw LDError("\(classes) classes: top-k ids are u16") }
    }

    /// The size of one label record in bytes (a full batch, framed), for the free-space check.
    public func recordBytes(classes k: Int) -> Double {
        let b = Double(batchSize), k = Double(k)
        let logitBytes: Double
        switch logits {
        case .fp16: logitBytes = 2 * b * k
        case .fp32: logitBytes = 4 * b * k
        case .topK(let top): logitBytes = 4 * b * Double(top)
        }
        return 16 + 24 + 13 * b + (mix == .none ? 0 : 12 + 4 * b) + logitBytes
    }

    /// The header meta of a stream over `images` images (keys documented at the top of this file).
    public func meta(images n: Int) -> [String: JSONValue] {
        [
            "epochs": .int(Int64(epochs)),
            "epoch_start": .int(Int64(epochRange.lowerBound)),
            "epoch_end": .int(Int64(epochRange.upperBound)),
            "images": .int(Int64(n)),
            "batch_size": .int(Int64(batchSize)),
            "drop_last": .bool(dropLast),
            "batches_per_epoch": .int(Int64(batchesPerEpoch(images: n))),
            "mix": .string(mix.name),
            "cutmix_alpha": JSONValue.number(Float(cutmixAlpha)),
            "mixup_alpha": JSONValue.number(Float(mixupAlpha)),
            "crop_scale": .array([JSONValue.number(crop.scaleMin), JSONValue.number(crop.scaleMax)]),
            "crop_ratio": .array([JSONValue.number(crop.ratioMin), JSONValue.number(crop.ratioMax)]),
            "flip": JSONValue.number(flipProbability),
            "logits": .string(logits.name),
            "top_k": .int(Int64(logits.k)),
        ]
    }

    /// The header of a label stream made by `producer` with `teacher` over `images`.
    public func header(teacher: ModelFile, images: Dataset, producer: String = "ld-relabel") -> StreamHeader {
        StreamHeader(kind: .labels, producer: producer, version: LD.version, seed: seed, classes: teacher.model.config.classes,
                     shape: [images.channels, images.height, images.width], teacherHash: teacher.hash,
                     imageSetHash: images.contentHash,
                     meta: meta(images: images.count).merging(["class_names": .array(teacher.classNames.map { .string($0) })]) { a, _ in a })
    }
}

/// What a label stream's header says about the run that made it: the one reader of a label header, for
/// every consumer (ld-train, ld-prune, the tests).
///
/// `init(header:)` never throws: a field that is absent (a pruned or hand-made stream may lack some), not a
/// whole number, negative or beyond `LabelStreamInfo.limit` reads as nil, so a forged header cannot make a
/// consumer trap or allocate without bound. `settings(of:source:)` is the strict reading of a header ld-relabel
/// wrote, every field required and consistent.
public struct LabelStreamInfo: Equatable, Sendable {
    /// Total epochs of the relabel run (`epochs`).
    public var epochs: Int?
    /// First and end epoch stored (`epoch_start`, 0 when absent; `epoch_end`).
    public var epochStart: Int
    public var epochEnd: Int?
    /// Batch size of the relabel run (`batch_size`).
    public var batchSize: Int?
    /// Batches per relabel epoch before any pruning (`batches_per_epoch`).
    public var batchesPerEpoch: Int?
    /// N, the number of images the indices refer to (`images`).
    public var images: Int?
    /// Whether ld-prune kept a subset (`pruned` present).
    public var pruned: Bool
    /// The input normalisation the teacher saw, when the stream states it (`mean`, `std`).
    public var mean: [Float]?
    public var std: [Float]?
    /// The teacher's class names, the order of the stored labels.
    public var classNames: [String]?

    /// The largest count a header field may state (2^31 - 1): more epochs, batches or images than any run.
    public static let limit = Int(Int32.max)

    public init(header: StreamHeader) {
        let m = header.meta
        func int(_ key: String) -> Int? { LabelStreamInfo.int(m[key]) }
        func floats(_ key: String) -> [Float]? {
            guard let a = m[key]?.arrayValue, !a.isEmpty, a.count <= 4096 else { return nil }
            let v = a.compactMap { $0.doubleValue.flatMap { $0.isFinite ? Float($0) : nil } }
            return v.count == a.count ? v : nil
        }
        epochs = int("epochs")
        epochStart = int("epoch_start") ?? 0
        epochEnd = int("epoch_end")
        batchSize = int("batch_size")
        batchesPerEpoch = int("batches_per_epoch")
        images = int("images")
        if let p = m["pruned"], p != .null { pruned = true } else { pruned = false }
        mean = floats("mean")
        std = floats("std")
        // The teacher's class names, one per class (streams made before they were recorded have none).
        if let a = m["class_names"]?.arrayValue, a.count == header.classes {
            let names = a.compactMap { $0.stringValue }
            classNames = names.count == a.count ? names : nil
        } else {
            classNames = nil
        }
    }

    /// Epochs the stream holds from `epochStart` on, if the header says (concatenated shards continue it).
    public var storedEpochs: Int? { epochs.map { max($0 - epochStart, 0) } }

    /// The number of label batches of the whole relabel run (`epochs` x `batches_per_epoch`, `epochs` at least
    /// `epoch_end`), or nil when the header does not say or the stream is already pruned.
    public var declaredRunBatches: Int? {
        guard !pruned, let perEpoch = batchesPerEpoch, perEpoch > 0 else { return nil }
        guard let e = [epochs, epochEnd].compactMap({ $0 }).max(), e > 0 else { return nil }
        let (n, overflow) = e.multipliedReportingOverflow(by: perEpoch)
        return overflow ? nil : n
    }

    /// The settings of the relabel run that wrote `header`, read strictly: every field present and
    /// consistent; `source` names the stream in errors.
    public static func settings(of header: StreamHeader, source: String) throws -> RelabelSettings {
        guard header.kind == .labels else { throw LDError("\(source): a '\(header.kind)' stream, expected labels") }
        let m = header.meta
        let info = LabelStreamInfo(header: header)
        func required(_ v: Int?, _ key: String) throws -> Int {
            guard let v else { throw LDError("\(source): header meta '\(key)' is missing or not a count") }
            return v
        }
        func double(_ key: String) throws -> Double {
            guard let d = m[key]?.doubleValue, d.isFinite else { throw LDError("\(source): header meta '\(key)' is missing or not a number") }
            return d
        }
        func pair(_ key: String) throws -> (Float, Float) {
            guard let a = m[key]?.arrayValue, a.count == 2, let x = a[0].doubleValue, let y = a[1].doubleValue else {
                throw LDError("\(source): header meta '\(key)' is missing or not a pair of numbers")
            }
            return (Float(x), Float(y))
        }
        let mixName = m["mix"]?.stringValue ?? ""
        guard let mix = [MixKind.none, .cutmix, .mixup].first(where: { $0.name == mixName }) else {
            throw LDError("\(source): header meta 'mix' is '\(mixName)', expected cutmix, mixup or none")
        }
        let topK = try required(LabelStreamInfo.int(m["top_k"]), "top_k")
        let logitName = m["logits"]?.stringValue ?? ""
        guard let logits = LogitStorage(name: logitName, topK: topK) else {
            throw LDError("\(source): header meta 'logits' '\(logitName)' with top_k \(topK) is not a logit format")
        }
        guard case .bool(let dropLast)? = m["drop_last"] else {
            throw LDError("\(source): header meta 'drop_last' is missing or not a boolean")
        }
        let start = try required(LabelStreamInfo.int(m["epoch_start"]), "epoch_start")
        let end = try required(info.epochEnd, "epoch_end")
        guard start <= end else { throw LDError("\(source): header meta epoch range \(start):\(end) is empty") }
        let scale = try pair("crop_scale"), ratio = try pair("crop_ratio")
        guard scale.0 <= scale.1, ratio.0 > 0, ratio.0 <= ratio.1 else {
            throw LDError("\(source): header meta crop_scale or crop_ratio is not a range")
        }
        let settings = RelabelSettings(seed: header.seed, epochs: try required(info.epochs, "epochs"), epochRange: start..<end,
                                       batchSize: try required(info.batchSize, "batch_size"), dropLast: dropLast, mix: mix,
                                       cutmixAlpha: try double("cutmix_alpha"), mixupAlpha: try double("mixup_alpha"),
                                       crop: RandomResizedCrop(scale: scale, ratio: ratio),
                                       flipProbability: Float(try double("flip")), logits: logits)
        let images = try required(info.images, "images"), perEpoch = try required(info.batchesPerEpoch, "batches_per_epoch")
        guard settings.batchSize >= 1, perEpoch == settings.batchesPerEpoch(images: images) else {
            throw LDError("\(source): header meta batches_per_epoch \(perEpoch) does not match \(images) images in batches of \(settings.batchSize)")
        }
        return settings
    }

    /// A count from a JSON value, bounded as `init(header:)` reads them.
    static func int(_ v: JSONValue?) -> Int? {
        guard let d = v?.doubleValue, d >= 0, d <= Double(limit), d == d.rounded() else { return nil }
        return Int(d)
    }

    /// Throws unless a label stream's header refers to `images`: the same image-set hash (so the same images,
    /// labels and order), the same image shape and, when `classes` is given, that many classes. A header
    /// without a hash or a shape (a hand-made stream) is checked for what it has. `source` names the stream.
    public static func check(_ header: StreamHeader, images: Dataset, classes: Int? = nil, source: String) throws {
        guard header.kind == .labels else { throw LDError("\(source): a '\(header.kind)' stream, expected labels") }
        if let h = header.imageSetHash, h != images.contentHash {
            throw LDError("\(source): labels made for image set \(h), but --data \(images.source) is \(images.contentHash)")
        }
        let shape = [images.channels, images.height, images.width]
        if !header.shape.isEmpty && header.shape != shape {
            throw LDError("\(source): labels for \(header.shape) images, --data \(images.source) has \(shape)")
        }
        let k = classes ?? images.classes
        if header.classes != 0 && header.classes != k {
            throw LDError("\(source): labels have \(header.classes) classes, \(classes == nil ? "--data \(images.source) has" : "expected") \(k)")
        }
        // The counts a consumer sizes its work by, bounded by the images they refer to.
        let info = LabelStreamInfo(header: header), n = images.count
        if let stated = info.images, stated != n {
            throw LDError("\(source): header meta images \(stated), but --data \(images.source) has \(n)")
        }
        if let e = info.epochs, e > Limits.epochs {
            throw LDError("\(source): header meta epochs \(e) is more than \(Limits.epochs), the most ld accepts")
        }
        if let bs = info.batchSize, bs < 1 || bs > Limits.batchSize {
            throw LDError("\(source): header meta batch_size \(bs) is out of range 1...\(Limits.batchSize)")
        }
        if let per = info.batchesPerEpoch {
            let fits = info.batchSize.map { bs in per == n / bs || per == (n + bs - 1) / bs } ?? (per >= 1 && per <= n)
            if !fits {
                throw LDError("\(source): header meta batches_per_epoch \(per) does not fit \(n) images\(info.batchSize.map { " in batches of \($0)" } ?? "")")
            }
        }
    }
}
