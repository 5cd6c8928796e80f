import ArgumentParser
import Foundation
import LDKernels
import LDRecords
import LDNetworks
import LDJobs
import LDCommand

struct Squeeze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-squeeze",
        abstract: "Train and evaluate a teacher; store per-class BatchNorm statistics and per-example training-dynamics scores.",
        discussion: Manual.squeeze,
        version: LD.versionLine
    )

    @Option(help: "Training data set: fmnist:train, cifar10:DIR, folder:DIR, an image stream, ...")
    var data: String?

    @Option(help: "Validation data set, evaluated after every epoch (e.g. fmnist:test); optional when training.")
    var val: String?

    @Option(name: .shortAndLong, help: "Model file to write (required unless --eval-only).")
    var output: String?

    @Option(help: "Per-epoch NDJSON metrics file (default: stdout).")
    var metrics: String?

    @OptionGroup(title: "Teacher")
    var teacher: ModelOptions

    @OptionGroup(title: "Training")
    var training: TrainingOptions

    @Option(help: "Zero padding of --augment crop; 0 (default) leaves only the flip, the seeds' CIFAR recipe uses 4.")
    var cropPadding: Int = 0

    @Option(help: "Train on the first N examples of --data only (index order; for tests and quick runs).")
    var limit: Int?

    @Option(help: "Evaluate on the first N examples of --val only.")
    var valLimit: Int?

    @Flag(help: "After training, store per-class BatchNorm statistics in the model file (LPLD).")
    var classStats = false

    @Option(help: "Class statistics estimator: exact (per-class moments over every image) or ema (LPLD's EMA over per-batch class subsets, momentum 0.1).")
    var classStatsMode: ClassStatisticsMode = .exact

    @Option(help: "Write per-example training-dynamics scores (el2n, forgetting, aum, correct) to this record stream.")
    var scores: String?

    @Option(help: "EL2N averages over the first K epochs (default min(10, --epochs)).")
    var el2nEpochs: Int?

    @Flag(help: "Continue from OUTPUT.ckpt when it exists (written after every epoch and on Ctrl-C).")
    var resume = false

    @Option(help: "Evaluate this model file on --val, print top-1/top-5 as NDJSON, and exit.")
    var evalOnly: String?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if evalOnly != nil {
            guard val != nil else { throw ValidationError("--eval-only needs --val") }
            let training = self.training.given + [(data != nil, "--data"), (output != nil, "-o"), (classStats, "--class-stats"),
                (scores != nil, "--scores"), (el2nEpochs != nil, "--el2n-epochs"), (resume, "--resume"), (limit != nil, "--limit")]
            for (given, name) in training where given {
                throw ValidationError("\(name) does not apply to --eval-only (it evaluates a model file on --val and writes nothing else)")
            }
        } else {
            guard data != nil else { throw ValidationError("--data is required (or --eval-only MODEL --val DATA)") }
            guard output != nil else { throw ValidationError("-o/--output is required (the model file to write)") }
        }
        if let n = limit, n <= 0 { throw ValidationError("--limit must be positive, got \(n)") }
        if let n = valLimit, n <= 0 { throw ValidationError("--val-limit must be positive, got \(n)") }
        if cropPadding < 0 { throw ValidationError("--crop-padding must be >= 0, got \(cropPadding)") }
    }

    func run() throws {
        common.apply()
        let validation = val.map { ValidationSet(name: $0, limit: valLimit) }
        if let path = evalOnly {
            var job = EvaluateJob(model: path, val: validation!)
            job.metrics = metrics ?? "-"
            let line = try job.run()
            let log = try MetricsLog(path: job.metrics)
            try log.write(line)
            return try log.close()
        }
        let epochs = training.epochs ?? 12
        let settings = TeacherSettings(
            model: teacher.config(channels: 0, imageSize: 0, classes: 0), epochs: epochs,
            batchSize: training.batchSize ?? 128, learningRate: training.lr ?? 0.05, momentum: training.momentum ?? 0.9,
            weightDecay: training.weightDecay ?? 5e-4, warmupEpochs: training.warmupEpochs ?? (epochs > 1 ? 1 : 0),
            optimizer: training.optimizer ?? .sgd, augment: training.augment ?? .crop,
            cropPadding: cropPadding, seed: common.seed, scores: scores != nil, el2nEpochs: el2nEpochs ?? min(10, epochs),
            trainSetHash: "")
        var job = SqueezeJob(dataName: data!, settings: settings, output: output!)
        job.limit = limit
        job.val = validation
        job.metrics = metrics ?? "-"
        job.scores = scores
        job.classStats = classStats ? classStatsMode : nil
        job.resume = resume
        job.console = common.console
        let (interrupted, message) = try job.run()
        if interrupted {
            Log.line(message)
            Foundation.exit(Interrupt.exitStatus)
        }
        common.console.say(message)
    }
}

ToolMain.run(Squeeze.self, name: "ld-squeeze")
