import ArgumentParser
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import LDCommand

struct Relabel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-relabel",
        abstract: "Write FKD-style soft labels: per epoch and batch, the augmentation parameters and the teacher's logits.",
        discussion: """
        Each epoch shuffles the images (a permutation keyed by the seed and the epoch) and cuts them into \
        batches of --batch-size; the last batch of an epoch is partial unless --drop-last. Each image gets a \
        RandomResizedCrop box (torchvision's rule, --crop-scale) and a horizontal flip (p = 0.5); each batch \
        is mixed (--mix: CutMix by default, as the seeds). The teacher, in eval mode and with its own \
        normalisation, labels the augmented batch; its raw logits are stored with everything needed to \
        rebuild that batch exactly: one label-batch record per batch, in global batch order (batch id = \
        epoch * batches_per_epoch + batch), on stdout or -o FILE.

        Every draw is keyed by (seed, epoch, batch, image position), so --epochs A:B produces exactly the \
        records of epochs A..<B of the whole run: shards made anywhere concatenate (cat) into the full stream \
        (same label records byte for byte; each shard keeps its own header and end record, whose epoch range \
        in the meta differs). Memory is one batch, whatever the number of epochs.

        Bytes per image and epoch: 2K + 13 (fp16), 4K + 13 (fp32) or 4k + 13 \
        (--top-k k), plus 4 with a mix; per batch 44 (56 with a mix). The seeds' \
        files take about 2K + 25 (sre2l_cda.md 6.2). --zstd compresses the stream.

        Examples (Fashion-MNIST, 100 synthetic images, 300 epochs, batches of 50):
          ld-relabel --teacher t.ldm --images syn/ --epochs 300 --batch 50 > l.ldl
          ld-relabel --teacher t.ldm --images syn/ --epochs 0:150 --epochs-total 300 \\
            --batch 50 -o a.ldl
          ld-relabel --teacher t.ldm --images syn/ --epochs 150:300 --batch 50 -o b.ldl
          cat a.ldl b.ldl | ld-prune --dump | head
        """,
        version: LD.version
    )

    @Option(help: "Teacher model file (from ld-squeeze).")
    var teacher: String

    @Option(help: "Images to label: a PNG ImageFolder, an image stream, or a data set name (fmnist:train, ...).")
    var images: String

    @Option(help: "Epochs: E (all of 0:E) or a shard A:B of the epochs (A < B); see --epochs-total.")
    var epochs: String = "300"

    @Option(name: .customLong("epochs-total"),
            help: "E of the whole run when --epochs is a shard A:B (recorded in the header; default B).")
    var epochsTotal: Int?

    @Option(name: [.customLong("batch-size"), .customLong("batch")], help: "Images per batch (--batch is the same).")
    var batchSize: Int

    @Flag(name: .customLong("drop-last"), help: "Drop the partial last batch of each epoch (default: keep it).")
    var dropLast = false

    @Option(help: "Seed of the permutations, crops, flips and mixes.")
    var seed: UInt64 = 42

    @Option(help: "Batch mixing: cutmix, mixup or none.")
    var mix: String = "cutmix"

    @Option(name: .customLong("cutmix-alpha"), help: "CutMix's lambda ~ Beta(alpha, alpha).")
    var cutmixAlpha: Double = 1.0

    @Option(name: .customLong("mixup-alpha"), help: "Mixup's lambda ~ Beta(alpha, alpha).")
    var mixupAlpha: Double = 0.8

    @Option(name: .customLong("crop-scale"), help: "RandomResizedCrop's area scale range MIN,MAX.")
    var cropScale: String = "0.08,1"

    @Option(help: "Logit storage for all classes: fp16 (the default, as the seeds) or fp32.")
    var logits: String?

    @Option(name: .customLong("top-k"), help: "Store only the k best classes per image (class ids and fp16 values).")
    var topK: Int?

    @Flag(help: "Compress the stream with zstd.")
    var zstd = false

    @Option(name: .shortAndLong, help: "Output file (`-` is stdout, the default; never a terminal).")
    var output: String = "-"

    @OptionGroup var common: CommonOptions

    /// --epochs as a range and the total E.
    func epochRange() throws -> (range: Range<Int>, total: Int) {
        let parts = epochs.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 1, let e = Int(parts[0]) {
            guard e >= 1 else { throw ValidationError("--epochs \(epochs): expected at least 1") }
            if let t = epochsTotal, t != e { throw ValidationError("--epochs-total \(t) with --epochs \(e): use --epochs A:B for a shard") }
            return (0..<e, e)
        }
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]) else {
            throw ValidationError("--epochs \(epochs): expected E or A:B")
        }
        guard a >= 0, a < b else { throw ValidationError("--epochs \(epochs): expected 0 <= A < B") }
        let total = epochsTotal ?? b
        guard total >= b else { throw ValidationError("--epochs \(epochs) ends after --epochs-total \(total)") }
        return (a..<b, total)
    }

    func mixKind() throws -> MixKind {
        guard let k = [MixKind.cutmix, .mixup, .none].first(where: { $0.name == mix }) else {
            throw ValidationError("--mix \(mix): expected cutmix, mixup or none")
        }
        return k
    }

    func scale() throws -> (Float, Float) {
        let p = cropScale.split(separator: ",").map { Float(String($0)) }
        guard p.count == 2, let lo = p[0], let hi = p[1], lo > 0, lo <= hi, hi <= 1 else {
            throw ValidationError("--crop-scale \(cropScale): expected MIN,MAX with 0 < MIN <= MAX <= 1")
        }
        return (lo, hi)
    }

    func storage() throws -> LogitStorage {
        if let k = topK {
            guard k >= 1 else { throw ValidationError("--top-k \(k): expected at least 1") }
            if let l = logits, l != "fp16" {
                throw ValidationError("--top-k stores fp16 values; it cannot be combined with --logits \(l)")
            }
            return .topK(k)
        }
        switch logits ?? "fp16" {
        case "fp16": return .fp16
        case "fp32": return .fp32
        default: throw ValidationError("--logits \(logits ?? ""): expected fp16 or fp32")
        }
    }

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size \(batchSize): expected at least 1") }
        guard cutmixAlpha > 0, cutmixAlpha.isFinite else { throw ValidationError("--cutmix-alpha \(cutmixAlpha): expected > 0") }
        guard mixupAlpha > 0, mixupAlpha.isFinite else { throw ValidationError("--mixup-alpha \(mixupAlpha): expected > 0") }
        _ = try epochRange()
        _ = try mixKind()
        _ = try scale()
        _ = try storage()
    }

    func run() throws {
        common.apply()
        let (range, total) = try epochRange()
        let settings = RelabelSettings(seed: seed, epochs: total, epochRange: range, batchSize: batchSize,
                                       dropLast: dropLast, mix: try mixKind(), cutmixAlpha: cutmixAlpha,
                                       mixupAlpha: mixupAlpha, crop: RandomResizedCrop(scale: try scale()),
                                       logits: try storage())
        let teacherFile = try ModelFile.load(path: teacher)
        let data = try Dataset.load(images)
        let relabeler = try Relabeler(teacher: teacherFile, images: data, settings: settings)
        let writer = try StreamWriter(path: output, header: relabeler.header, compression: zstd ? .zstd() : .none)
        if common.verbose {
            for line in teacherFile.model.summary { common.log(line) }
            common.log("images \(data.source): \(data.count) of \(data.channels)x\(data.height)x\(data.width), \(data.classes) classes")
            common.log("epochs \(range.lowerBound):\(range.upperBound) of \(total), \(relabeler.batchesPerEpoch) batches of \(batchSize) per epoch, mix \(settings.mix.name), logits \(settings.logits)")
        }
        let records = relabeler.recordCount
        let progress = Progress("relabel epochs \(range.lowerBound):\(range.upperBound)", total: records, unit: "batch",
                                quiet: common.quiet)
        try relabeler.run(into: writer) { progress.update($0) }
        try writer.finish()
        let perEpoch = dropLast ? relabeler.batchesPerEpoch * batchSize : data.count
        progress.finish(records, "\(range.count * perEpoch) images labelled")
    }
}

ToolMain.run(Relabel.self, name: "ld-relabel")
