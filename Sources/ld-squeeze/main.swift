import ArgumentParser
import Foundation
import LDKernels
import LDRecords
import LDNetworks
import LDData
import LDJobs
import LDInterop
import LDCommand

struct Squeeze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-squeeze",
        abstract: "Train and evaluate a teacher; store per-class BatchNorm statistics and per-example training-dynamics scores.",
        discussion: Manual.squeeze,
        version: LD.versionLine
    )

    @Option(help: "Training data set: fmnist:train, cifar10:DIR, folder:DIR, list:FILE[:DIR], an image stream, ...")
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

    @Option(name: .customLong("import"), help: ArgumentHelp("Convert a PyTorch state dict (.safetensors, or a torch.save checkpoint) with torchvision's names into the model file -o; the architecture is read off the names and shapes.", valueName: "file"))
    var importPath: String?

    @Option(name: .customLong("export"), help: ArgumentHelp("Convert this ld model file into -o FILE.safetensors with torchvision's names and ld's metadata.", valueName: "model"))
    var exportPath: String?

    @Option(help: "With --import: the inputs' normalisation, size and class names: \(ImportPreset.names.joined(separator: ", ")).")
    var preset: String?

    @Option(help: ArgumentHelp("With --import: per-channel mean of pixel/255, comma-separated (overrides --preset).", valueName: "m,m,m"))
    var mean: String?

    @Option(help: ArgumentHelp("With --import: per-channel standard deviation, comma-separated (overrides --preset).", valueName: "s,s,s"))
    var std: String?

    @Option(help: "The model's input height and width. Training: an image folder of other sizes is brought to it by the evaluation transform (shorter side to S/ratio, center crop S); --import: overrides --preset.")
    var imageSize: Int?

    @Option(help: ArgumentHelp("The evaluation transform's ratio: images of other sizes are resized to S/ratio and center-cropped to S (default 0.875: 224 from 256; timm's crop_pct for an imported model). Stored in the model file; the tools that use the model apply it and refuse images packed with another.", valueName: "ratio"))
    var evalRatio: Double?

    @Option(help: ArgumentHelp("With --import: class names, one a line, in class-index order (overrides --preset).", valueName: "file"))
    var classNames: String?

    @OptionGroup var classMapping: ClassMapOption
    @OptionGroup var common: CommonOptions

    var converting: Bool { importPath != nil || exportPath != nil }

    func validate() throws {
        if classMapping.path != nil && evalOnly == nil && !(importPath != nil && classStats) {
            throw ValidationError("--class-map pairs a model's classes with data: it goes with --eval-only or --import --class-stats")
        }
        if converting {
            guard importPath == nil || exportPath == nil else { throw ValidationError("--import and --export are two runs") }
            guard output != nil else { throw ValidationError("--import and --export need -o/--output") }
            guard evalOnly == nil else { throw ValidationError("--import and --export take no --eval-only") }
            if importPath != nil { try checkModelOutputName(output) }
            if exportPath != nil, let o = output, o != "-", !o.lowercased().hasSuffix(".safetensors") {
                throw ValidationError("--export writes safetensors: name the output FILE.safetensors (or - for stdout)")
            }
            guard data == nil || (importPath != nil && classStats) else {
                throw ValidationError("--data goes with --import only for --class-stats (the class statistics' images)")
            }
            if classStats && data == nil { throw ValidationError("--import with --class-stats needs --data (the images to measure)") }
            if exportPath != nil, preset != nil || mean != nil || std != nil || imageSize != nil || classNames != nil {
                throw ValidationError("--preset, --mean, --std, --image-size and --class-names go with --import")
            }
            if let p = preset, !ImportPreset.names.contains(p) {
                throw ValidationError("unknown --preset '\(p)' (expected \(ImportPreset.names.joined(separator: ", ")))")
            }
            if let n = imageSize, n <= 0 { throw ValidationError("--image-size must be positive, got \(n)") }
            _ = try floats(mean, "--mean")
            _ = try floats(std, "--std")
            return
        }
        if preset != nil || mean != nil || std != nil || classNames != nil {
            throw ValidationError("--preset, --mean, --std and --class-names go with --import")
        }
        if let n = imageSize, n <= 0 || n > 2048 { throw ValidationError("--image-size must be 1...2048, got \(n)") }
        if let r = evalRatio {
            do { try EvalTransform.check(ratio: r) } catch { throw ValidationError("\(error)") }
            if evalOnly != nil || exportPath != nil { throw ValidationError("--eval-ratio goes with training or --import: --eval-only uses the model's") }
        }
        if imageSize != nil && evalOnly != nil { throw ValidationError("--image-size goes with training or --import: --eval-only uses the model's") }
        try checkModelOutputName(output)
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

    func floats(_ text: String?, _ flag: String) throws -> [Float]? {
        guard let text else { return nil }
        let values = text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0?.isFinite == true }) else {
            throw ValidationError("\(flag) takes comma-separated numbers, got '\(text)'")
        }
        return values.map { $0! }
    }

    func run() throws {
        common.apply()
        if let input = importPath {
            let names = try classNames.map { path -> [String] in
                guard let lines = try Files.lines(path) else { throw LDError("\(path): no such file") }
                return lines
            }
            let settings = ImportSettings(preset: preset, mean: try floats(mean, "--mean"), std: try floats(std, "--std"),
                                          imageSize: imageSize, classNames: names)
            var job = ImportJob(input: input, output: output!, settings: settings)
            job.evalRatio = evalRatio
            job.classMap = classMapping.path
            if classStats, let d = data { job.classStats = (d, classStatsMode, training.batchSize ?? 128) }
            job.console = common.console
            for line in try job.run() { common.console.say(line) }
            return
        }
        if let model = exportPath {
            for line in try ExportJob(model: model, output: output!).run() { common.console.say(line) }
            return
        }
        let validation = val.map { ValidationSet(name: $0, limit: valLimit) }
        if let path = evalOnly {
            var job = EvaluateJob(model: path, val: validation!)
            job.classMap = classMapping.path
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
        job.imageSize = imageSize
        job.evalRatio = evalRatio
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
