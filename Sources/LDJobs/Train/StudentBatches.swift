import LDKernels
import LDRecords
import LDData
import LDNetworks
// Where a student's batches come from: freshly drawn (online teacher, hard labels), or replayed from label
// records (one by one as a stream arrives, or drawn from a pool of kept records).

extension BatchDraw {
    /// The draw a label record stores.
    public init(record: LabelBatchRecord) {
        self.init(indices: record.indices.map { Int($0) }, augmentations: record.sampleAugmentations,
                  mix: record.mix, params: record.mixParams)
    }
}

/// How each training epoch draws its records from a pool of label records.
public enum PoolSampling: String, CaseIterable, Sendable {
    /// Uniformly with replacement (LPLD's released `batch_to_epoch` + random, and the reference pipeline).
    case withReplacement = "with-replacement"
    /// Without replacement (LPQLD's `random.sample`): an epoch uses distinct records; when the pool is
    /// smaller than an epoch, the epoch runs through whole random orders of the pool one after the other.
    case withoutReplacement = "without-replacement"
}

/// LPLD's label pool: the kept label records, from which each training epoch draws its batches.
public enum LabelPool {
    /// The pool positions epoch `epoch` replays, in order: `count` of them drawn from
    /// `LDRandom(seed, .train, major: epoch)`.
    /// - with replacement: `count` uniform draws from 0..<poolSize;
    /// - without replacement: ceil(count / poolSize) permutations of 0..<poolSize drawn one after the
    ///   other from that generator, concatenated, and cut to the first `count` (no record repeats within
    ///   an epoch until every record has been used).
    public static func draws(poolSize: Int, count: Int, epoch: Int, seed: UInt64, sampling: PoolSampling) -> [Int] {
        precondition(poolSize > 0, "LabelPool.draws: empty pool")
        var rng = LDRandom(seed: seed, stage: .train, major: epoch)
        switch sampling {
        case .withReplacement:
            return (0..<count).map { _ in rng.int(in: 0..<poolSize) }
        case .withoutReplacement:
            var out: [Int] = []
            out.reserveCapacity(count + poolSize)
            while out.count < count { out += rng.permutation(poolSize) }
            return Array(out.prefix(count))
        }
    }
}

/// A label stream opened for training: checks its kind and that it belongs to the image set, then yields
/// its records, each validated against the images, counting records and bytes read.
public final class LabelStreamInput {
    public let name: String
    /// The first stream's header.
    public let header: StreamHeader
    public let info: LabelStreamInfo
    /// Records returned so far.
    public private(set) var recordsRead = 0
    private let reader: StreamReader
    private let counter: CountingSource
    private let images: Dataset

    /// Opens `path` (`-` is stdin). Refuses a stream of another kind, another class count, or one made for
    /// another image set (`image_set_hash` vs the images' `contentHash`).
    public init(path: String, images: Dataset) throws {
        counter = CountingSource(try InputFile(path: path, binary: true))
        reader = try StreamReader(source: counter)
        name = reader.name
        try reader.expect(kind: .labels)
        reader.requireMatchingHeaders()
        header = reader.header
        info = LabelStreamInfo(header: header)
        self.images = images
        try LabelStreamInfo.check(header, images: images, source: name)
    }

    /// Bytes read from the input so far (as stored: compressed if the stream is).
    public var bytesRead: Int { counter.bytes }

    /// The last global batch id read.
    private var lastBatch: UInt64?

    /// The next record, validated against the images and the records before it, or nil at the end of the
    /// input. Global batch ids must increase (a stream, and a `cat` of epoch shards in order, is sorted);
    /// an unpruned stream's must be consecutive from its first epoch, each record in the epoch its id says.
    /// So shards concatenated in the wrong order, or one missing or given twice, are refused by name
    /// instead of being trained on as something else.
    public func next() throws -> LabelBatchRecord? {
        guard let r = try reader.next() else { return nil }
        let record = try LabelBatchRecord(r, header: reader.header)
        try record.validate(images: images, source: "\(r.context)")
        let id = record.batch
        let per = info.batchesPerEpoch.map { UInt64($0) }
        if let last = lastBatch, id <= last {
            throw LDError("\(r.context): label batch \(id) comes after batch \(last) (records \(id == last ? "repeated" : "out of order"): epoch shards concatenated in the wrong order or twice?)")
        }
        if !info.pruned, let per, per > 0 {
            let expected = lastBatch.map { $0 + 1 } ?? UInt64(info.epochStart) * per
            if id != expected {
                throw LDError("\(r.context): label batch \(id) where batch \(expected) belongs (epoch \(expected / per), batch \(expected % per) missing: a shard left out?)")
            }
            if UInt64(record.epoch) != id / per {
                throw LDError("\(r.context): label batch \(id) says epoch \(record.epoch), its id puts it in epoch \(id / per)")
            }
        }
        lastBatch = id
        recordsRead += 1
        return record
    }
}

/// A byte source that counts what passes through.
final class CountingSource: ByteSource {
    let base: ByteSource
    private(set) var bytes = 0
    init(_ base: ByteSource) { self.base = base }
    var name: String { base.name }
    func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        let n = try base.read(into: buffer, count: count)
        bytes += n
        return n
    }
}

/// Builds student batches (input and target) from draws and records: the same `LabelBatchBuilder` that
/// ld-relabel uses, so a replayed record gives the pixels its teacher saw.
public final class StudentBatchMaker {
    public let builder: LabelBatchBuilder
    public let images: Dataset
    private let targetLogits = Tensor(shape: [0])

    public init(images: Dataset, normalization: Normalization) throws {
        builder = try LabelBatchBuilder(data: images, normalization: normalization)
        self.images = images
    }

    /// The input batch of a draw.
    public func input(_ draw: BatchDraw) throws -> Tensor {
        try builder.build(indices: draw.indices, augmentations: draw.augmentations, mix: draw.mix, params: draw.params)
    }

    /// Replay: the record's batch and its stored logits as targets (top-k logits leave the other classes
    /// at -inf, i.e. the target distribution is the softmax over the stored classes).
    public func replay(_ record: LabelBatchRecord) throws -> (input: Tensor, target: StudentTarget) {
        let x = try builder.build(record)
        let n = record.count, k = record.classes
        targetLogits.ensureShape(n, k)
        let dense = record.logits.dense(batch: n, classes: k, fill: -Float.infinity)
        dense.withUnsafeBufferPointer { targetLogits.data.update(from: $0.baseAddress!, count: n * k) }
        return (x, .logits(targetLogits))
    }

    /// Online soft labels: the draw's batch and the teacher's logits on it (eval mode).
    public func online(_ draw: BatchDraw, teacher: Model) throws -> (input: Tensor, target: StudentTarget) {
        let x = try input(draw)
        teacher.training = false
        let t = teacher.predict(x)
        targetLogits.ensureShape(t.shape[0], t.shape[1])
        targetLogits.copy(from: t)
        return (x, .logits(targetLogits))
    }

    /// Hard labels: the draw's batch and its images' classes (mixed as the pixels were).
    public func hard(_ draw: BatchDraw) throws -> (input: Tensor, target: StudentTarget) {
        let x = try input(draw)
        let y = draw.indices.map { images.labels[$0] }
        guard draw.mix != .none, let p = draw.params else { return (x, .labels(y)) }
        let lambda = p.labelWeight(kind: draw.mix, height: images.height, width: images.width)
        return (x, .mixedLabels(y, perm: p.perm, lambda: lambda))
    }
}
