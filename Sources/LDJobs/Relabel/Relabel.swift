import LDKernels
import LDRecords
import LDData
import LDNetworks
/// FKD-style soft-label generation (sre2l_cda.md 6.1, lpld.md 4.1): per epoch a keyed permutation of the
/// images cut into batches; per image a RandomResizedCrop box and a flip; per batch a CutMix or Mixup; the
/// teacher's raw logits (eval mode) on the batch `LabelBatchBuilder` builds from those parameters. The keys of
/// every draw and the header are described in RelabelStream.swift.
///
/// ```swift
/// let r = try Relabeler(teacher: file, images: data, settings: s)
/// let w = try StreamWriter(path: "-", header: r.header, compression: .zstd())
/// try r.run(into: w)
/// try w.finish()
/// ```
/// Memory is one batch (plus one epoch's order of N indices) whatever the number of epochs.
public final class Relabeler {
    public let settings: RelabelSettings
    public let teacherFile: ModelFile
    public let images: Dataset
    /// The teacher's normalisation applied to the images.
    public let normalization: Normalization
    public let builder: LabelBatchBuilder
    /// Batches per epoch (see `RelabelSettings.batchesPerEpoch`).
    public let batchesPerEpoch: Int
    /// The keyed draws (ld-train's online modes draw the same batches from the same seed).
    public let draws: BatchDraws
    private var teacher: Model { teacherFile.model }
    private var order: [Int] = []
    private var orderEpoch = -1

    /// Checks that the images fit the teacher (channels, size, classes) and the settings fit both, and puts
    /// the teacher in eval mode.
    public init(teacher: ModelFile, images: Dataset, settings: RelabelSettings) throws {
        try teacher.checkImages(images, role: "images")   // classes: the job pairs them (ModelFile.pair)
        try settings.validate(images: images.count, classes: teacher.model.config.classes)
        self.settings = settings
        self.teacherFile = teacher
        self.images = images
        normalization = Normalization(of: teacher)
        builder = try LabelBatchBuilder(data: images, normalization: normalization)
        draws = settings.draws(height: images.height, width: images.width, count: images.count)
        batchesPerEpoch = draws.batchesPerEpoch
        teacher.model.training = false
        teacher.model.captureBatchStatistics = false
    }

    /// The stream header (see RelabelStream.swift).
    public var header: StreamHeader { settings.header(teacher: teacherFile, images: images) }

    /// Records in the settings' epoch range.
    public var recordCount: Int { settings.epochRange.count * batchesPerEpoch }

    /// The global batch id of batch `b` of epoch `e`.
    public func globalBatch(epoch e: Int, batch b: Int) -> Int { e * batchesPerEpoch + b }

    /// The image indices of batch `b` of epoch `e`, in batch order.
    public func indices(epoch e: Int, batch b: Int) -> [Int] {
        if orderEpoch != e {
            order = draws.order(epoch: e)
            orderEpoch = e
        }
        return draws.indices(batch: b, order: order)
    }

    /// The crop boxes and flips of the `count` images of batch `b` of epoch `e`.
    public func augmentations(epoch e: Int, batch b: Int, count: Int) -> [SampleAugmentation] {
        draws.augmentations(epoch: e, batch: b, count: count)
    }

    /// The mix of batch `b` of epoch `e` with `count` images (nil for `.none`).
    public func mix(epoch e: Int, batch b: Int, count: Int) -> MixParams? {
        draws.mixParams(epoch: e, batch: b, count: count)
    }

    /// The label record of batch `b` of epoch `e`: draws, builds the batch, runs the teacher.
    public func record(epoch e: Int, batch b: Int) throws -> LabelBatchRecord {
        let idx = indices(epoch: e, batch: b)
        let augs = augmentations(epoch: e, batch: b, count: idx.count)
        let params = mix(epoch: e, batch: b, count: idx.count)
        let x = try builder.build(indices: idx, augmentations: augs, mix: settings.mix, params: params)
        let y = teacher.predict(x)
        let classes = teacher.config.classes
        precondition(y.count == idx.count * classes, "Relabeler: teacher output \(y.shape) for \(idx.count) images of \(classes) classes")
        let (crops, flips) = try LabelBatchRecord.boxes(of: augs)
        let m = LabelBatchRecord.mixFields(settings.mix, params)
        let record = LabelBatchRecord(batch: UInt64(globalBatch(epoch: e, batch: b)), epoch: UInt32(e), classes: classes,
                                      indices: idx.map { UInt32($0) }, crops: crops, flips: flips, mix: settings.mix,
                                      permutation: m.permutation, lambda: m.lambda, box: m.box,
                                      logits: settings.logits.logits(y.data, batch: idx.count, classes: classes))
        try record.validate()
        return record
    }

    /// Writes the records of the settings' epoch range to `writer`, in global batch order, calling
    /// `progress` with the number written after each. Does not finish the writer.
    public func run(into writer: StreamWriter, progress: ((Int) -> Void)? = nil) throws {
        var done = 0
        for e in settings.epochRange {
            for b in 0..<batchesPerEpoch {
                try writer.write(try record(epoch: e, batch: b))
                done += 1
                progress?(done)
            }
        }
    }
}
