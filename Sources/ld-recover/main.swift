import ArgumentParser
import LDKernels
import LDRecords
import LDNetworks
import LDJobs
import LDCommand

struct Recover: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-recover",
        abstract: "Synthesise distilled images per class by BatchNorm-statistics matching (SRe2L, CDA, LPLD), or tile the real crops a teacher is surest of (RDED).",
        discussion: Manual.recover,
        version: LD.versionLine
    )

    @Option(help: "Teacher model file (.ldm); lpld needs one with class statistics (ld-squeeze --class-stats). Given several times: an ensemble, each teacher's BN and CE terms weighted 1/K.")
    var teacher: [String] = []

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

    @Option(help: "RandomResizedCrop scale range MIN,MAX (default 0.5,1; for cda MIN is the curriculum's floor; 1,1: no crop; rded: its crops, default 0.08,1).")
    var cropScale: ScaleRange?

    @Flag(help: "No random horizontal flip.")
    var noFlip = false

    @Option(name: .customLong("easy2hard-mode"), help: "cda: shape of the crop-scale curriculum (default cosine).")
    var easy2hardMode: CropCurriculum?

    @Option(help: "cda: fraction of the iterations over which the crop scale's lower bound falls (default 1; 0 disables).")
    var milestone: Double?

    @Option(help: "Start each image from noise (the seeds') or from a real image of its class (EDC), chosen by --select.")
    var `init`: RecoverInit = .noise

    @Option(help: "--init real and --method rded: the real images (a data set the teacher takes; e.g. fmnist:train).")
    var data: String?

    @Option(help: "rded: crops per stitched image along each axis, F (F x F crops per image, as ld-prune --combine; default 2).")
    var combine: Int?

    @Option(help: "rded: random crops scored per candidate image (default 5).")
    var crops: Int?

    @Option(help: "rded: candidate real images drawn per class (default 300).")
    var candidates: Int?

    @Option(help: "--init real: which images per class: random (ld-prune's draw for --seed), confident (lowest teacher cross-entropy), or ld-prune's el2n, forgetting, aum, ccs on --scores.")
    var select: RealInitRule = .random

    @Option(help: "--init real: which end of a ranking (default easy: the most confident, lowest EL2N).")
    var keep: PruneKeep?

    @Option(help: "--init real: ld-squeeze's score stream for --select el2n, forgetting, aum, ccs.")
    var scores: String?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard !teacher.isEmpty else { throw ValidationError("missing --teacher FILE (the model whose BN statistics the images match)") }
        guard png != nil || output != nil else { throw ValidationError("nothing to write: give --png DIR and/or -o FILE") }
        if method == .rded {
            guard data != nil else { throw ValidationError("--method rded crops real images: give them with --data DATASET") }
            let optimising: [(Bool, String)] = [
                (iterations != 1000, "--iterations"), (lr != 0.25, "--lr"), (rBN != 0.01, "--r-bn"),
                (firstBNMultiplier != 10, "--first-bn-multiplier"), (jitter != 2, "--jitter"), (noFlip, "--no-flip"),
                (`init` != .noise, "--init"), (select != .random, "--select"), (keep != nil, "--keep"),
                (scores != nil, "--scores"), (teacher.count > 1, "a second --teacher")]
            for (given, name) in optimising where given {
                throw ValidationError("\(name) is for the optimising methods (sre2l, cda, lpld), not --method rded")
            }
            guard (combine ?? 1) >= 1, (crops ?? 1) >= 1, (candidates ?? 1) >= 1 else {
                throw ValidationError("--combine, --crops and --candidates must be >= 1")
            }
        } else {
            for (given, name) in [(combine != nil, "--combine"), (crops != nil, "--crops"), (candidates != nil, "--candidates")] where given {
                throw ValidationError("\(name) belongs to --method rded")
            }
        }
        if method != .rded && `init` == .noise {
            for (given, name) in [(data != nil, "--data"), (select != .random, "--select"), (keep != nil, "--keep"),
                                  (scores != nil, "--scores")] where given {
                throw ValidationError("\(name) belongs to --init real")
            }
        } else if method != .rded {
            guard data != nil else { throw ValidationError("--init real needs the real images to start from (--data DATASET)") }
            if [.el2n, .forgetting, .aum, .ccs].contains(select) && scores == nil {
                throw ValidationError("--select \(select.rawValue) needs ld-squeeze's score stream (--scores FILE)")
            }
            if [.random, .confident].contains(select) && scores != nil {
                throw ValidationError("--scores is for --select el2n, forgetting, aum or ccs, not \(select.rawValue)")
            }
            if keep != nil && [.random, .ccs].contains(select) {
                throw ValidationError("--keep applies to --select confident, el2n, forgetting and aum, not \(select.rawValue)")
            }
        }
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
        if let c = cropScale { (settings.cropScaleMin, settings.cropScaleMax) = c.pair }
        if let f = combine { settings.factor = f }
        if let n = crops { settings.crops = n }
        if let n = candidates { settings.candidates = n }
        settings.flip = !noFlip
        if let m = easy2hardMode { settings.curriculum = m }
        if let m = milestone { settings.milestone = m }
        settings.seed = common.seed

        var job = RecoverJob(teacher: teacher[0], settings: settings, ipc: ipc)
        job.moreTeachers = Array(teacher.dropFirst())
        if method == .rded { job.rdedData = data }
        if `init` == .real, let data {
            var r = RealInitSettings(data: data)
            r.rule = select
            r.keep = keep ?? .easy
            r.scores = scores
            r.seed = common.seed
            job.realInit = r
        }
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
