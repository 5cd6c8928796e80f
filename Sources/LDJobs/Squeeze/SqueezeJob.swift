import LDKernels
import LDRecords
import LDData
import LDNetworks
import Foundation

/// ld-squeeze's job: train a teacher on a data set with hard labels, evaluating on a validation set after
/// every epoch, checkpointing after every epoch and on Ctrl-C; then optionally the per-class BatchNorm
/// statistics, and the model file (and the training-dynamics scores).
public struct SqueezeJob {
    /// The training data set as named (recorded in the model file).
    public var dataName: String
    /// The settings without the training set's hash, which the job fills in.
    public var settings: TeacherSettings
    /// Train on the first N examples only.
    public var limit: Int?
    /// `--image-size`: the input size an image folder of other sizes is brought to (nil: the data's own size).
    public var imageSize: Int?
    /// `--eval-ratio`: the evaluation transform's ratio for folders of other sizes (stored in the model file);
    /// nil: the training stream's recorded ratio, else 0.875.
    public var evalRatio: Double?
    public var val: ValidationSet?
    public var output: String
    /// NDJSON metrics (`-` is stdout).
    public var metrics = "-"
    public var scores: String?
    public var classStats: ClassStatisticsMode?
    public var resume = false
    public var console = Console()

    public init(dataName: String, settings: TeacherSettings, output: String) {
        self.dataName = dataName
        self.settings = settings
        self.output = output
    }

    public var checkpoint: String { output + ".ckpt" }

    /// Trains and writes the outputs. Returns normally after an interrupt too (with the checkpoint written);
    /// `interrupted` then says so.
    public func run() throws -> (interrupted: Bool, message: String) {
        // Fail now, not after an hour of training, when an output cannot be written or is an input.
        var files = RunFiles()
        files.data("--data", dataName)
        files.data("--val", val?.name)
        files.output("-o", output)
        files.output("-o's checkpoint", checkpoint)
        files.output("--scores", scores)
        files.output("--metrics", metrics)
        try files.check()
        // RandomResizedCrop on a folder of any size crops from the whole images: such a folder stays on disk.
        var train = try Dataset.load(dataName, imageSize: imageSize, evalRatio: evalRatio ?? EvalTransform.defaultRatio,
                                     wholeImages: settings.augment == .rrc)
        if let r = train.evalRatio, let want = evalRatio, abs(r - want) > 1e-9 {
            throw LDError("--data \(dataName) was brought to \(train.height) px with the evaluation ratio \(r), not the --eval-ratio \(want) given")
        }
        let ratio = train.evalRatio ?? evalRatio ?? EvalTransform.defaultRatio
        if let n = limit, n < train.count { train = try train.subset(Array(0..<n)) }
        guard train.classes >= 2 else {
            throw LDError("\(dataName) has \(train.classes) class; a classifier needs at least 2")
        }
        for (k, n) in train.classCounts().enumerated() where n == 0 {
            let name = k < train.classNames.count ? " (\(train.classNames[k]))" : ""
            throw LDError("\(dataName): class \(k)\(name) has no training images")
        }
        var settings = self.settings
        settings.model = settings.model.fitted(channels: train.channels, imageSize: train.height, classes: train.classes)
        guard train.height == train.width else {
            throw LDError("\(dataName): images are \(train.height)x\(train.width), the models take square images")
        }
        settings.trainSetHash = train.contentHash
        try settings.validate()
        var valData = try val?.load(imageSize: train.height, evalRatio: ratio)
        if let v = valData, let r = v.evalRatio, abs(r - ratio) > 1e-9 {
            throw LDError("--val \(v.source) was brought to \(v.height) px with the evaluation ratio \(r), the training set's is \(ratio)")
        }
        if let v = valData {
            try settings.model.checkFits(v, role: "--val")
            // The teacher learns the training set's classes: --val must mean the same by each index.
            let (aligned, note) = try v.aligned(to: train.classNames, referenceName: "--data \(train.source)", role: "--val \(v.source)")
            valData = aligned
            if let n = note { console.say("ld-squeeze: " + n) }
        }

        Interrupt.install()
        let trainer = try TeacherTrainer(settings: settings, data: train, normalization: Normalization(of: train))
        if classStats != nil && trainer.model.batchNorms.isEmpty {
            throw LDError("--class-stats: \(trainer.model.config.summary) has no BatchNorm layers to collect statistics in")
        }
        if console.verbose { for l in trainer.model.summary { console.detail(l) } }
        console.detail("engine: \(Engine.threads) thread(s), OpenBLAS core \(Engine.blasCore); \(train.count) training images, \(trainer.stepsPerEpoch) steps per epoch")
        var history = try restore(trainer)
        let log = try MetricsLog(path: metrics, secondary: true)
        do {
            if metrics != "-" { for case .object(let o) in history { try log.write(o) } }
            try runEpochs(trainer, valData: valData, log: log, history: &history)
            if Interrupt.requested {
                log.abort()
                let at = trainer.step == 0 ? "after epoch \(trainer.epoch)" : "after step \(trainer.step) of epoch \(trainer.epoch + 1)"
                return (true, "ld-squeeze: interrupted \(at); checkpoint \(checkpoint) written; run the same command with --resume to continue")
            }
            let message = try finish(trainer, history: history)
            try log.close()
            try? FileManager.default.removeItem(atPath: checkpoint)
            return (false, message)
        } catch {
            log.abort()
            throw error
        }
    }

    /// Restores the checkpoint with --resume; returns the metrics of the epochs before it.
    func restore(_ trainer: TeacherTrainer) throws -> [JSONValue] {
        let exists = FileManager.default.fileExists(atPath: checkpoint)
        if resume && exists {
            let meta = try trainer.restoreCheckpoint(path: checkpoint)
            console.say("ld-squeeze: resuming from \(checkpoint) at epoch \(trainer.epoch + 1) step \(trainer.step + 1)")
            return meta["metrics"]?.arrayValue ?? []
        }
        if resume {
            console.say("ld-squeeze: no checkpoint \(checkpoint); starting from scratch")
        } else if exists {
            console.say("ld-squeeze: starting over; \(checkpoint) will be replaced (pass --resume to continue from it)")
        }
        return []
    }

    func runEpochs(_ trainer: TeacherTrainer, valData: Dataset?, log: MetricsLog, history: inout [JSONValue]) throws {
        let n = trainer.data.count, bs = trainer.settings.batchSize, epochs = trainer.settings.epochs
        let runStart = Progress.now()
        var imagesThisRun = 0, stepsThisRun = 0
        // Test hook: behave as if Ctrl-C came right after this many steps of this run (tests cannot time signals).
        let stopAfter = ProcessInfo.processInfo.environment["LD_SQUEEZE_STOP_AFTER_STEPS"].flatMap { Int($0) }
        while !trainer.finished {
            let e = trainer.epoch
            let progress = console.progress("epoch \(e + 1)/\(epochs)", total: n)
            while !trainer.epochComplete {
                let loss = try trainer.trainStep()
                stepsThisRun += 1
                if stepsThisRun == stopAfter { Interrupt.request() }
                let done = min(trainer.step * bs, n)
                imagesThisRun += min(bs, n - (trainer.step - 1) * bs)
                let rate = Double(imagesThisRun) / max(Progress.now() - runStart, 1e-9)
                let left = Double((epochs - e - 1) * n + (n - done)) / max(rate, 1e-9)
                // A set on disk: its decode rate, and the share of the run's time the steps waited for pixels.
                let ld = trainer.loader
                let wait = trainer.data.isResident ? "" : String(format: "  decode %@ img/s, data wait %.1f%%", Progress.formatRate(Double(ld.decodedImages) / max(ld.decodeSeconds, 1e-9)),
                                                          100 * ld.waitSeconds / max(Progress.now() - runStart, 1e-9))
                progress.update(done, "step \(trainer.step)/\(trainer.stepsPerEpoch)  loss \(String(format: "%.4f", loss))\(wait)  run left \(Progress.formatDuration(left))")
                if Interrupt.requested {
                    try saveCheckpoint(trainer, history)
                    return
                }
            }
            let (line, detail) = try endEpoch(trainer, e, valData)
            progress.finish(n, detail)
            try log.write(line)
            history.append(.object(line))
            try saveCheckpoint(trainer, history)
            if Interrupt.requested { return }
        }
    }

    /// The metrics line of a finished epoch (train loss and top-1, validation when there is a set).
    func endEpoch(_ trainer: TeacherTrainer, _ e: Int, _ valData: Dataset?) throws -> ([String: JSONValue], String) {
        let summary = trainer.finishEpoch()
        var line: [String: JSONValue] = [
            "epoch": .int(Int64(e + 1)), "epochs": .int(Int64(trainer.settings.epochs)),
            "lr": .number(summary.lastLearningRate),
            "train_loss": .rounded(summary.loss, places: 5, wholeAsInt: true),
            "train_top1": .rounded(summary.top1, places: 2, wholeAsInt: true),
        ]
        var detail = "train loss \(String(format: "%.4f", summary.loss)) top1 \(String(format: "%.2f", summary.top1))"
        if let v = valData {
            let ev = try trainer.model.evaluate(v, normalization: trainer.normalization)
            line["val_top1"] = .rounded(ev.top1, places: 2, wholeAsInt: true)
            line["val_top5"] = .rounded(ev.top5, places: 2, wholeAsInt: true)
            line["val_loss"] = .rounded(ev.loss, places: 5, wholeAsInt: true)
            detail += "  val top1 \(String(format: "%.2f", ev.top1)) top5 \(String(format: "%.2f", ev.top5))"
        }
        return (line, detail)
    }

    func saveCheckpoint(_ trainer: TeacherTrainer, _ history: [JSONValue]) throws {
        try trainer.saveCheckpoint(path: checkpoint, producer: "ld-squeeze", extra: ["metrics": .array(history)])
    }

    /// Class statistics, the model file and the scores; returns the closing line.
    func finish(_ trainer: TeacherTrainer, history: [JSONValue]) throws -> String {
        let model = trainer.model, train = trainer.data, s = trainer.settings
        if let mode = classStats {
            let progress = console.progress("class statistics (\(mode.rawValue))", total: train.count)
            try ClassStatisticsPass.run(model: model, data: train, normalization: trainer.normalization, mode: mode,
                                        batchSize: s.batchSize, seed: s.seed, shuffleKey: s.epochs) { progress.update($0) }
            progress.finish(train.count)
        }
        model.training = false
        var info: [String: JSONValue] = [
            "data": .string(dataName), "images": .int(Int64(train.count)), "epochs": .int(Int64(s.epochs)),
            "optimizer": .string(s.optimizer.rawValue), "lr": .number(s.learningRate), "batch_size": .int(Int64(s.batchSize)),
            "augment": .string(s.augment.rawValue), "settings": s.json,
        ]
        if let mode = classStats { info["class_stats_mode"] = .string(mode.rawValue) }
        if case .object(let last) = history.last ?? .null {
            for key in ["val_top1", "val_top5", "train_top1"] { if let v = last[key] { info[key] = v } }
            if let v = val { info["val"] = .string(v.name) }
        }
        var file = ModelFile(model: model, mean: train.mean, std: train.std, classNames: train.classNames, info: info)
        file.evalRatio = train.evalRatio ?? evalRatio ?? EvalTransform.defaultRatio
        // Both outputs are written in full before either is renamed into place: a failure leaves neither.
        let modelOutput = try file.write(path: output, producer: "ld-squeeze", seed: s.seed)
        var outputs = [modelOutput]
        if let path = scores, let sc = trainer.scores {
            do {
                outputs.append(try sc.write(path: path, producer: "ld-squeeze", seed: s.seed, imageSetHash: train.contentHash,
                                            extra: ["data": .string(dataName), "epochs": .int(Int64(s.epochs)), "teacher": .string(file.hash)],
                                            commit: false))
            } catch {
                (modelOutput as? OutputFile)?.abort()
                throw error
            }
        }
        for o in outputs { try o.commit() }
        if case .object(let o) = history.last ?? .null, let top1 = o["val_top1"]?.doubleValue {
            return "ld-squeeze: wrote \(output) (val top-1 \(String(format: "%.2f", top1))%)"
        }
        return "ld-squeeze: wrote \(output)"
    }
}

/// A validation set as named on the command line, optionally cut to its first `limit` examples.
public struct ValidationSet: Sendable {
    public var name: String
    public var limit: Int?

    public init(name: String, limit: Int? = nil) {
        self.name = name
        self.limit = limit
    }

    /// The set, an image folder of other sizes brought to `imageSize` (the model's) by the evaluation transform.
    public func load(imageSize: Int? = nil, evalRatio: Double = EvalTransform.defaultRatio) throws -> Dataset {
        var d = try Dataset.load(name, imageSize: imageSize, evalRatio: evalRatio)
        if let n = limit, n < d.count { d = try d.subset(Array(0..<n)) }
        return d
    }
}

/// `ld-squeeze --eval-only`: a model file's accuracy on a validation set, as one NDJSON line.
public struct EvaluateJob {
    public var model: String
    public var val: ValidationSet
    /// Where the line goes (checked against the inputs before the work).
    public var metrics = "-"
    /// `--class-map FILE`: pairs the validation set's class names with the model's (see `ClassMap`).
    public var classMap: String?

    public init(model: String, val: ValidationSet) {
        self.model = model
        self.val = val
    }

    public func run() throws -> [String: JSONValue] {
        var files = RunFiles()
        files.input("--eval-only", model)
        files.data("--val", val.name)
        files.output("--metrics", metrics)
        try files.check()
        let file = try ModelFile.load(path: model)
        let (data, note) = try file.pair(try val.load(imageSize: file.model.config.imageSize, evalRatio: file.evalRatio), role: "--val", map: try classMap.map { try ClassMap(path: $0) })
        if let n = note { Log.line("ld-squeeze: " + n) }
        var line = try file.model.evaluate(data, normalization: Normalization(of: file)).json
        line["model"] = .string(model)
        line["data"] = .string(val.name)
        return line
    }
}
