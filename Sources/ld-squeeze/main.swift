import ArgumentParser
import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import LDCommand

struct Squeeze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-squeeze",
        abstract: "Train and evaluate a teacher; store per-class BatchNorm statistics and per-example training-dynamics scores.",
        discussion: """
        Trains a classifier on --data with hard labels (shuffled mini-batches, per-image augmentation, cross-entropy, \
        linear warm-up then per-step cosine decay), evaluates it on --val after every epoch, and writes the model \
        file (-o) with the data set's normalisation and class names. Per-epoch metrics go to stdout (or --metrics) \
        as NDJSON; progress (epoch, step, loss, images/s, time left) goes to stderr.

        Defaults are the Fashion-MNIST teacher: ConvNet-BN width 64, depth 3, 12 epochs, batch 128, SGD lr 0.05 \
        momentum 0.9 weight decay 5e-4 (all parameters), 1 warm-up epoch, horizontal flip only (--augment crop with \
        --crop-padding 0; with padding 2 the same run underfits and stops at 91.9%). Width 64 (not the ConvNet \
        default 128) costs a quarter of the compute and still reaches >= 92% top-1 on fmnist:test; recover and \
        relabel get 4x cheaper with it too. The run is about 13 minutes on two idle cores with OpenBLAS's AVX-512 \
        kernels (longer on a busy machine). Where `-v` shows "OpenBLAS core Prescott" (CPU not recognised, slow \
        SSE3 kernels), export OPENBLAS_CORETYPE=SkylakeX (or Haswell) first: training is 1.6-2.5x faster.

        --class-stats: after training, one pass over the training images (eval mode, no augmentation) stores each \
        BatchNorm layer's per-class input mean and biased variance in the model file (LPLD's "model with class \
        BN"). --class-stats-mode exact (default) stores the exact moments over every image of the class; ema \
        reproduces LPLD's estimator: one shuffled pass, per-batch class subsets, EMA with momentum 0.1.

        --scores FILE: training-dynamics scores recorded during training, in train mode, on the augmented view each \
        example gets in each epoch, from the softmax at that step: a record stream of kind `scores` with one \
        record per training example (by index) and columns el2n (||p - onehot(y)||_2 averaged over the first \
        --el2n-epochs epochs; the CCS code sums them, same ranking), forgetting (correct-to-incorrect transitions; \
        never-learned examples score 0), aum (p_y - max_{k!=y} p_k summed over all epochs, on probabilities) and \
        correct (epochs classified correctly).

        Checkpoints: after every epoch the whole state goes to OUTPUT.ckpt (atomically). Ctrl-C (SIGINT) or SIGTERM \
        finishes the current step, writes the checkpoint and exits 130 (143); the same command with --resume \
        continues bit-identically (same flags required; a different flag is refused; a --metrics file gets the \
        earlier epochs' lines again, stdout only the new ones). A non-finite loss stops the \
        run with the epoch, step and learning rate and keeps the last good checkpoint. The checkpoint is removed \
        after a successful run.

        Examples:
          ld-squeeze --data fmnist:train --val fmnist:test -o teacher.ldm --class-stats --scores scores.lds
          ld-squeeze --eval-only teacher.ldm --val fmnist:test
        """,
        version: LD.version
    )

    @Option(help: "Training data set: fmnist:train, cifar10:DIR, folder:DIR, an image stream, ...")
    var data: String?

    @Option(help: "Validation data set, evaluated after every epoch (e.g. fmnist:test); optional when training.")
    var val: String?

    @Option(name: .shortAndLong, help: "Model file to write (required unless --eval-only).")
    var output: String?

    @Option(help: "Per-epoch NDJSON metrics file (default: stdout).")
    var metrics: String?

    @Option(help: "Architecture: convnet or resnet18.")
    var model: String = "convnet"

    @Option(help: "ConvNet width (channels of every conv).")
    var width: Int = 64

    @Option(help: "ConvNet depth (conv blocks, each halving the resolution).")
    var depth: Int = 3

    @Option(help: "ResNet-18 stem: small (3x3 stride 1, no max-pool) or imagenet (7x7 stride 2 + max-pool).")
    var stem: String = "small"

    @Option(help: "Training epochs.")
    var epochs: Int = 12

    @Option(help: "Mini-batch size (the last batch of an epoch may be smaller; no example is dropped).")
    var batchSize: Int = 128

    @Option(help: "Peak learning rate.")
    var lr: Float = 0.05

    @Option(help: "SGD momentum.")
    var momentum: Float = 0.9

    @Option(help: "Weight decay (SGD: coupled, on every parameter; Adam/AdamW: on conv and linear kernels only).")
    var weightDecay: Float = 5e-4

    @Option(help: "Epochs of linear warm-up (from 1% of --lr) before the per-step cosine decay to 0 (default 1; 0 when --epochs is 1).")
    var warmupEpochs: Int?

    @Option(help: "Optimizer: sgd, adamw or adam.")
    var optimizer: String = "sgd"

    @Option(help: "Training augmentation: crop (random crop with --crop-padding zero padding + flip), rrc (RandomResizedCrop 0.08-1 + flip) or none.")
    var augment: String = "crop"

    @Option(help: "Zero padding of --augment crop; 0 (default) leaves only the flip, the seeds' CIFAR recipe uses 4.")
    var cropPadding: Int = 0

    @Option(help: "Seed of the weights, the shuffles and the augmentations.")
    var seed: UInt64 = 0

    @Option(help: "Train on the first N examples of --data only (index order; for tests and quick runs).")
    var limit: Int?

    @Option(help: "Evaluate on the first N examples of --val only.")
    var valLimit: Int?

    @Flag(help: "After training, store per-class BatchNorm statistics in the model file (LPLD).")
    var classStats = false

    @Option(help: "Class statistics estimator: exact (per-class moments over every image) or ema (LPLD's EMA over per-batch class subsets, momentum 0.1).")
    var classStatsMode: String = "exact"

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
        } else {
            guard data != nil else { throw ValidationError("--data is required (or --eval-only MODEL --val DATA)") }
            guard output != nil else { throw ValidationError("-o/--output is required (the model file to write)") }
        }
        if let n = limit, n <= 0 { throw ValidationError("--limit must be positive, got \(n)") }
        if let n = valLimit, n <= 0 { throw ValidationError("--val-limit must be positive, got \(n)") }
    }

    func run() throws {
        common.apply()
        if let path = evalOnly { return try evaluateOnly(path) }
        try train()
    }

    // MARK: - Evaluation only

    private func evaluateOnly(_ path: String) throws {
        let file = try ModelFile.load(path: path)
        let valData = try loadVal()!
        try file.check(valData, role: "validation set")
        let e = try file.model.evaluate(valData, normalization: Normalization(of: file))
        var line = e.json
        line["model"] = .string(path)
        line["data"] = .string(val!)
        let log = try MetricsLog(path: metrics ?? "-")
        try log.write(line)
        try log.close()
    }

    private func loadVal() throws -> Dataset? {
        guard let name = val else { return nil }
        var d = try Dataset.load(name)
        if let n = valLimit, n < d.count { d = try d.subset(Array(0..<n)) }
        return d
    }

    // MARK: - Training

    private func train() throws {
        guard let dataName = data, let output = output else { return }
        guard ["convnet", "resnet18"].contains(model) else {
            throw LDError("unknown model '\(model)' (expected convnet or resnet18)")
        }
        guard let statsMode = ClassStatisticsMode(rawValue: classStatsMode) else {
            throw LDError("unknown --class-stats-mode '\(classStatsMode)' (expected exact or ema)")
        }
        var train = try Dataset.load(dataName)
        if let n = limit, n < train.count { train = try train.subset(Array(0..<n)) }
        for (k, n) in train.classCounts().enumerated() where n == 0 {
            let name = k < train.classNames.count ? " (\(train.classNames[k]))" : ""
            throw LDError("\(dataName): class \(k)\(name) has no training images")
        }
        let config = model == "convnet"
            ? ModelConfig.convnet(width: width, depth: depth, channels: train.channels, imageSize: train.height, classes: train.classes)
            : ModelConfig.resnet18(channels: train.channels, imageSize: train.height, classes: train.classes, stem: stem)
        guard train.height == train.width else {
            throw LDError("\(dataName): images are \(train.height)x\(train.width), the models take square images")
        }
        let settings = TeacherSettings(
            model: config, epochs: epochs, batchSize: batchSize, learningRate: lr, momentum: momentum,
            weightDecay: weightDecay, warmupEpochs: warmupEpochs ?? (epochs > 1 ? 1 : 0), optimizer: optimizer, augment: augment,
            cropPadding: cropPadding, seed: seed, scores: scores != nil, el2nEpochs: el2nEpochs ?? min(10, epochs),
            trainSetHash: train.contentHash)
        try settings.validate()
        let valData = try loadVal()
        if let v = valData {
            let c = config
            if v.channels != c.channels || v.height != c.imageSize || v.width != c.imageSize {
                throw LDError("validation set \(val!) has \(v.channels)x\(v.height)x\(v.width) images, the model takes \(c.channels)x\(c.imageSize)x\(c.imageSize) (from \(dataName))")
            }
            if v.classes != c.classes {
                throw LDError("validation set \(val!) has \(v.classes) classes, the training set \(dataName) has \(c.classes)")
            }
        }
        let checkpoint = output + ".ckpt"
        // Fail now, not after an hour of training, when an output cannot be written.
        for path in [output, checkpoint] + [scores, metrics].compactMap({ $0 }) where path != "-" {
            let probe = try OutputFile(path: path)
            probe.abort()
        }
        Interrupt.install()
        let normalization = Normalization(of: train)
        let trainer = try TeacherTrainer(settings: settings, data: train, normalization: normalization)
        if common.verbose {
            for l in trainer.model.summary { common.log(l) }
            common.log("engine: \(Engine.threads) thread(s), OpenBLAS core \(Engine.blasCore); \(train.count) training images, \(trainer.stepsPerEpoch) steps per epoch")
        }

        // Metrics of the epochs before a resume are kept in the checkpoint, so a metrics file is complete.
        var history: [JSONValue] = []
        if resume && FileManager.default.fileExists(atPath: checkpoint) {
            let meta = try trainer.restoreCheckpoint(path: checkpoint)
            history = meta["metrics"]?.arrayValue ?? []
            common.log("ld-squeeze: resuming from \(checkpoint) at epoch \(trainer.epoch + 1) step \(trainer.step + 1)")
        } else if resume {
            common.log("ld-squeeze: no checkpoint \(checkpoint); starting from scratch")
        } else if FileManager.default.fileExists(atPath: checkpoint) {
            common.log("ld-squeeze: starting over; \(checkpoint) will be replaced (pass --resume to continue from it)")
        }
        let log = try MetricsLog(path: metrics ?? "-")
        do {
            if metrics != nil { for case .object(let o) in history { try log.write(o) } }
            try runEpochs(trainer, valData: valData, log: log, history: &history, checkpoint: checkpoint)
            if Interrupt.requested {
                log.abort()
                let at = trainer.step == 0 ? "after epoch \(trainer.epoch)" : "after step \(trainer.step) of epoch \(trainer.epoch + 1)"
                Log.line("ld-squeeze: interrupted \(at); checkpoint \(checkpoint) written; run the same command with --resume to continue")
                Foundation.exit(Interrupt.exitStatus)
            }
            try finishRun(trainer, valData: valData, statsMode: statsMode, output: output, history: history)
            try log.close()
        } catch {
            log.abort()
            throw error
        }
        try? FileManager.default.removeItem(atPath: checkpoint)
    }

    private func runEpochs(_ trainer: TeacherTrainer, valData: Dataset?, log: MetricsLog, history: inout [JSONValue],
                           checkpoint: String) throws {
        let n = trainer.data.count, bs = trainer.settings.batchSize
        let runStart = Progress.now()
        var imagesThisRun = 0, stepsThisRun = 0
        // Test hook: behave as if Ctrl-C came right after this many steps of this run (tests cannot time signals).
        let stopAfter = ProcessInfo.processInfo.environment["LD_SQUEEZE_STOP_AFTER_STEPS"].flatMap { Int($0) }
        while !trainer.finished {
            let e = trainer.epoch
            let progress = Progress("epoch \(e + 1)/\(epochs)", total: n, quiet: common.quiet)
            var lastLoss: Float = 0
            while !trainer.epochComplete {
                lastLoss = try trainer.trainStep()
                stepsThisRun += 1
                if stepsThisRun == stopAfter { Interrupt.request() }
                let done = min(trainer.step * bs, n)
                imagesThisRun += min(bs, n - (trainer.step - 1) * bs)
                let rate = Double(imagesThisRun) / max(Progress.now() - runStart, 1e-9)
                let left = Double((epochs - e - 1) * n + (n - done)) / max(rate, 1e-9)
                progress.update(done, "step \(trainer.step)/\(trainer.stepsPerEpoch)  loss \(String(format: "%.4f", lastLoss))  run left \(Progress.formatDuration(left))")
                if Interrupt.requested {
                    try saveCheckpoint(trainer, checkpoint, history)
                    return
                }
            }
            let summary = trainer.finishEpoch()
            var line: [String: JSONValue] = [
                "epoch": .int(Int64(e + 1)), "epochs": .int(Int64(epochs)),
                "lr": .number(summary.lastLearningRate),
                "train_loss": round(summary.loss, 5), "train_top1": round(summary.top1, 2),
            ]
            var detail = "train loss \(String(format: "%.4f", summary.loss)) top1 \(String(format: "%.2f", summary.top1))"
            if let v = valData {
                let ev = try trainer.model.evaluate(v, normalization: trainer.normalization)
                line["val_top1"] = round(ev.top1, 2)
                line["val_top5"] = round(ev.top5, 2)
                line["val_loss"] = round(ev.loss, 5)
                detail += "  val top1 \(String(format: "%.2f", ev.top1)) top5 \(String(format: "%.2f", ev.top5))"
            }
            progress.finish(n, detail)
            try log.write(line)
            history.append(.object(line))
            try saveCheckpoint(trainer, checkpoint, history)
            if Interrupt.requested { return }
        }
    }

    private func saveCheckpoint(_ trainer: TeacherTrainer, _ path: String, _ history: [JSONValue]) throws {
        try trainer.saveCheckpoint(path: path, producer: "ld-squeeze", extra: ["metrics": .array(history)])
    }

    private func finishRun(_ trainer: TeacherTrainer, valData: Dataset?, statsMode: ClassStatisticsMode, output: String,
                           history: [JSONValue]) throws {
        let model = trainer.model
        let train = trainer.data
        if classStats {
            let progress = Progress("class statistics (\(statsMode.rawValue))", total: train.count, quiet: common.quiet)
            try ClassStatisticsPass.run(model: model, data: train, normalization: trainer.normalization, mode: statsMode,
                                        batchSize: batchSize, seed: seed, shuffleKey: epochs) { progress.update($0) }
            progress.finish(train.count)
        }
        model.training = false
        var info: [String: JSONValue] = [
            "data": .string(data!), "images": .int(Int64(train.count)), "epochs": .int(Int64(epochs)),
            "optimizer": .string(optimizer), "lr": .number(lr), "batch_size": .int(Int64(batchSize)),
            "augment": .string(augment), "settings": trainer.settings.json,
        ]
        if classStats { info["class_stats_mode"] = .string(statsMode.rawValue) }
        if case .object(let last) = history.last ?? .null {
            for key in ["val_top1", "val_top5", "train_top1"] { if let v = last[key] { info[key] = v } }
            if val != nil { info["val"] = .string(val!) }
        }
        var file = ModelFile(model: model, mean: train.mean, std: train.std, classNames: train.classNames, info: info)
        try file.save(path: output, producer: "ld-squeeze", seed: seed)
        if let path = scores, let s = trainer.scores {
            try s.write(path: path, producer: "ld-squeeze", seed: seed, imageSetHash: train.contentHash,
                        extra: ["data": .string(data!), "epochs": .int(Int64(epochs)), "teacher": .string(file.hash)])
        }
        if let last = history.last, case .object(let o) = last, let top1 = o["val_top1"]?.doubleValue {
            common.log("ld-squeeze: wrote \(output) (val top-1 \(String(format: "%.2f", top1))%)")
        } else {
            common.log("ld-squeeze: wrote \(output)")
        }
    }

    /// `x` rounded to `digits` decimals, as a JSON number that reads back as itself (whole numbers as
    /// integers), so metrics kept in a checkpoint are re-emitted byte for byte after a resume.
    private func round(_ x: Double, _ digits: Int) -> JSONValue {
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        let v = (x * p).rounded() / p
        return v == v.rounded() && abs(v) < 1e15 ? .int(Int64(v)) : .double(v)
    }
}

ToolMain.run(Squeeze.self, name: "ld-squeeze")
