import ArgumentParser
import LDKernels
import LDRecords
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
        in the meta differs). Memory is one batch, whatever the number of epochs. ld-train --teacher draws \
        its batches with the same keys.

        Bytes per image and epoch: 2K + 13 (fp16), 4K + 13 (fp32) or 4k + 13 \
        (--top-k k), plus 4 with a mix; per batch 44 (56 with a mix). The seeds' \
        files take about 2K + 25 (sre2l_cda.md 6.2). --zstd compresses the stream.

        Examples (Fashion-MNIST, 100 synthetic images, 300 epochs, batches of 50):
          ld-relabel --teacher t.ldm --data syn/ --epochs 300 --batch-size 50 > l.ldl
          ld-relabel --teacher t.ldm --data syn/ --epochs 0:150 --epochs-total 300 \\
            --batch-size 50 -o a.ldl
          ld-relabel --teacher t.ldm --data syn/ --epochs 150:300 --batch-size 50 -o b.ldl
          cat a.ldl b.ldl | ld-prune --dump | head
        """,
        version: LD.version
    )

    @Option(help: "Teacher model file (from ld-squeeze).")
    var teacher: String

    @Option(help: "Images to label: a PNG folder, an image stream, or a data set name (fmnist:train, ...).")
    var data: String

    @Option(help: "Epochs: E (all of 0:E) or a shard A:B of the epochs (A < B); see --epochs-total.")
    var epochs = EpochsArgument(300)

    @Option(help: "E of the whole run when --epochs is a shard A:B (recorded in the header; default B).")
    var epochsTotal: Int?

    @Option(help: "Images per batch.")
    var batchSize: Int

    @Flag(help: "Drop the partial last batch of each epoch (default: keep it).")
    var dropLast = false

    @Option(help: "Batch mixing.")
    var mix: MixKind = .cutmix

    @Option(help: "CutMix's lambda ~ Beta(alpha, alpha).")
    var cutmixAlpha: Double = 1.0

    @Option(help: "Mixup's lambda ~ Beta(alpha, alpha).")
    var mixupAlpha: Double = 0.8

    @Option(help: "RandomResizedCrop's area scale range MIN,MAX.")
    var cropScale = ScaleRange(0.08, 1)

    @Option(help: "Logit storage for all classes (fp16 as the seeds).")
    var logits: LogitFormat?

    @Option(help: "Store only the k best classes per image (class ids and fp16 values).")
    var topK: Int?

    @Flag(help: "Compress the stream with zstd.")
    var zstd = false

    @Option(name: .shortAndLong, help: "Output label stream (`-` is stdout, the default; never a terminal).")
    var output: String = "-"

    @OptionGroup var common: CommonOptions

    /// --epochs as a range and the total E.
    func epochRange() throws -> (range: Range<Int>, total: Int) {
        if let e = epochs.count {
            if let t = epochsTotal, t != e { throw ValidationError("--epochs-total \(t) with --epochs \(e): use --epochs A:B for a shard") }
            return (0..<e, e)
        }
        let span = epochs.span!
        let total = epochsTotal ?? span.upperBound
        guard total >= span.upperBound else {
            throw ValidationError("--epochs \(span.lowerBound):\(span.upperBound) ends after --epochs-total \(total)")
        }
        return (span, total)
    }

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size \(batchSize): expected at least 1") }
        guard cutmixAlpha > 0, cutmixAlpha.isFinite else { throw ValidationError("--cutmix-alpha \(cutmixAlpha): expected > 0") }
        guard mixupAlpha > 0, mixupAlpha.isFinite else { throw ValidationError("--mixup-alpha \(mixupAlpha): expected > 0") }
        if let k = topK {
            guard k >= 1 else { throw ValidationError("--top-k \(k): expected at least 1") }
            if let l = logits, l != .fp16 { throw ValidationError("--top-k stores fp16 values; it cannot be combined with --logits \(l.rawValue)") }
        }
        _ = try epochRange()
    }

    func run() throws {
        common.apply()
        let (range, total) = try epochRange()
        let settings = RelabelSettings(seed: common.seed, epochs: total, epochRange: range, batchSize: batchSize,
                                       dropLast: dropLast, mix: mix, cutmixAlpha: cutmixAlpha, mixupAlpha: mixupAlpha,
                                       crop: RandomResizedCrop(scale: cropScale.pair),
                                       logits: (logits ?? .fp16).storage(topK: topK))
        var job = RelabelJob(teacher: teacher, data: data, settings: settings)
        job.output = output
        job.compression = zstd ? .zstd() : .none
        job.console = common.console
        try job.run()
    }
}

ToolMain.run(Relabel.self, name: "ld-relabel")
