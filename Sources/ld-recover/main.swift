import ArgumentParser
import LDKernels
import LDRecords
import LDNetworks
import LDJobs
import LDCommand

struct Recover: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-recover",
        abstract: "Synthesise distilled images per class by BatchNorm-statistics matching (SRe2L, CDA, LPLD).",
        discussion: Manual.recover,
        version: LD.versionLine
    )

    @Option(help: "Teacher model file (.ldm); lpld needs one with class statistics (ld-squeeze --class-stats).")
    var teacher: String

    @Option(help: "Recovery method.")
    var method: RecoverMethod = .sre2l

    @Option(help: "PNG ImageFolder to write (created; resumable).")
    var png: String?

    @Option(name: .shortAndLong, help: "Image record stream to write (`-` for stdout); a shard writes its images with their indices in the whole set.")
    var output: String?

    @Option(help: "Images per class of the whole run.")
    var ipc: Int = 10

    @Option(help: "First IPC index this run makes (default 0).")
    var ipcStart: Int?

    @Option(help: "End of the IPC indices this run makes, exclusive (default --ipc).")
    var ipcEnd: Int?

    @Option(help: "Classes this run makes, A:B (half-open; default all).")
    var classes: SpanArgument?

    @Option(help: "sre2l/cda: classes per batch (default all classes); lpld: images per class batch (default --ipc).")
    var batchSize: Int?

    @Option(help: "Optimisation steps per batch.")
    var iterations: Int = 1000

    @Option(help: "Adam's initial learning rate (cosine decay per batch).")
    var lr: Float = 0.25

    @Option(name: .customLong("r-bn"), help: "Weight of the BatchNorm-statistics loss.")
    var rBN: Float = 0.01

    @Option(help: "Extra weight of the first BatchNorm layer's term.")
    var firstBNMultiplier: Float = 10

    @Option(help: "Largest roll offset in pixels (offsets are drawn from 0...jitter on each axis).")
    var jitter: Int = 2

    @Option(help: "RandomResizedCrop scale range MIN,MAX (for cda MIN is the curriculum's floor; 1,1: no crop).")
    var cropScale = ScaleRange(0.5, 1)

    @Flag(help: "No random horizontal flip.")
    var noFlip = false

    @Option(name: .customLong("easy2hard-mode"), help: "cda: shape of the crop-scale curriculum (default cosine).")
    var easy2hardMode: CropCurriculum?

    @Option(help: "cda: fraction of the iterations over which the crop scale's lower bound falls (default 1; 0 disables).")
    var milestone: Double?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard png != nil || output != nil else { throw ValidationError("nothing to write: give --png DIR and/or -o FILE") }
        guard ipc > 0 else { throw ValidationError("--ipc must be positive, got \(ipc)") }
        let start = ipcStart ?? 0, end = ipcEnd ?? ipc
        guard start >= 0, start < end, end <= ipc else {
            throw ValidationError("--ipc-start \(start) --ipc-end \(end): expected 0 <= start < end <= --ipc \(ipc)")
        }
        if let b = batchSize, b <= 0 { throw ValidationError("--batch-size must be positive, got \(b)") }
        guard iterations > 0 else { throw ValidationError("--iterations must be positive, got \(iterations)") }
        if method != .cda && (easy2hardMode != nil || milestone != nil) {
            throw ValidationError("--easy2hard-mode and --milestone belong to --method cda")
        }
        if let m = milestone, !(m >= 0 && m <= 1) { throw ValidationError("--milestone must be in [0, 1], got \(m)") }
    }

    func run() throws {
        common.apply()
        var settings = RecoverSettings(method: method, batchSize: batchSize ?? 0)
        settings.iterations = iterations
        settings.learningRate = lr
        settings.bnWeight = rBN
        settings.firstBNMultiplier = firstBNMultiplier
        settings.jitter = jitter
        (settings.cropScaleMin, settings.cropScaleMax) = cropScale.pair
        settings.flip = !noFlip
        if let m = easy2hardMode { settings.curriculum = m }
        if let m = milestone { settings.milestone = m }
        settings.seed = common.seed

        var job = RecoverJob(teacher: teacher, settings: settings, ipc: ipc)
        job.classRange = classes?.range
        job.ipcRange = (ipcStart ?? 0)..<(ipcEnd ?? ipc)
        job.folder = png
        job.stream = output
        job.console = common.console
        let summary = try job.run()
        if output != "-" { print(JSONValue.object(summary).serialized) }
    }
}

ToolMain.run(Recover.self, name: "ld-recover")
