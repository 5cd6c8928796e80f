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
        discussion: Manual.relabel,
        version: LD.versionLine
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

    @Option(help: "CutMix's lambda ~ Beta(alpha, alpha) (default 1; with --mix cutmix only).")
    var cutmixAlpha: Double?

    @Option(help: "Mixup's lambda ~ Beta(alpha, alpha) (default 0.8; with --mix mixup only).")
    var mixupAlpha: Double?

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

    @OptionGroup var classMapping: ClassMapOption
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
        if let a = cutmixAlpha {
            guard a > 0, a.isFinite else { throw ValidationError("--cutmix-alpha \(a): expected > 0") }
            guard mix == .cutmix else { throw ValidationError("--cutmix-alpha applies to --mix cutmix, not --mix \(mix.name)") }
        }
        if let a = mixupAlpha {
            guard a > 0, a.isFinite else { throw ValidationError("--mixup-alpha \(a): expected > 0") }
            guard mix == .mixup else { throw ValidationError("--mixup-alpha applies to --mix mixup, not --mix \(mix.name)") }
        }
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
                                       dropLast: dropLast, mix: mix, cutmixAlpha: cutmixAlpha ?? 1.0, mixupAlpha: mixupAlpha ?? 0.8,
                                       crop: RandomResizedCrop(scale: cropScale.pair),
                                       logits: (logits ?? .fp16).storage(topK: topK))
        var job = RelabelJob(teacher: teacher, data: data, settings: settings)
        job.classMap = classMapping.path
        job.output = output
        job.compression = zstd ? .zstd() : .none
        job.console = common.console
        try job.run()
    }
}

ToolMain.run(Relabel.self, name: "ld-relabel")
