import ArgumentParser
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import LDCommand
#if canImport(Glibc)
import Glibc
#endif

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-train",
        abstract: "Train a student on a (distilled) image set with replayed, online or hard labels; evaluate on real data.",
        discussion: """
        The student (any engine model) starts from random weights and learns
        from exactly one label source:

        --labels FILE|-  a label stream from ld-relabel or ld-prune. Each
            record is replayed exactly: its images, crop boxes, flips and
            mix are re-applied and its logits are the KL targets.
            A complete stream (not pruned, at least --epochs epochs stored)
            is read as it arrives: training epoch e replays stored epoch e
            in order, and only the current record is in memory. Otherwise
            (pruned, fewer stored epochs, or --pool-sampling given) the
            records form LPLD's label pool: all are read first, and each
            epoch replays batches_per_epoch of them (the relabel run's
            count, from the header) drawn with or without replacement,
            keyed by (seed, epoch). With no label source named and stdin
            a pipe or a file, the labels are read from stdin.
        --teacher MODEL  online soft labels (RethinkDC's soft protocol): each
            epoch shuffles the images, draws per-image augmentations and a
            per-batch mix, and the teacher (eval mode) labels exactly the
            batch the student sees.
        --hard  the images' own classes with cross-entropy (RethinkDC's hard
            protocol, DC's).

        Normalisation: the teacher's with --teacher; with --labels the
        stream's mean/std if its header has them, else the --val set's
        published constants (for Fashion-MNIST the fmnist constants, which
        the teacher behind ld-relabel also uses); with --hard the --val
        set's.

        Recipes (--recipe) set every knob; flags given override them:
          lpld (default)  AdamW lr 1e-3, wd 0.01 on conv/linear kernels only,
                          cosine per epoch, 300 epochs, KL at T=20 (batchmean,
                          no T^2), batch 128, RandomResizedCrop 0.08-1 + flip,
                          CutMix, evaluation every 10 epochs
          sre2l           the same with batch 1024
          rethinkdc-soft  as lpld, evaluation every 50 epochs
          rethinkdc-hard  as rethinkdc-soft with cross-entropy and no mix
          dc              SGD lr 0.01, momentum 0.9, wd 5e-4 on every
                          parameter, batch 256, lr x0.1 from epoch E/2,
                          RandomResizedCrop 0.5-1 + flip, no mix, evaluation
                          at the end
        --hard without --recipe uses dc. With --labels, epochs and batch
        size default to the relabel run's.

        --grid-aware-crop (RethinkDC's PCA Augment, with --hard or --teacher):
        the images are canvases of F x F cells (ld-prune --combine F records
        meta.grid = F in the stream header or manifest.json; --grid F gives
        or overrides it). Each image's RandomResizedCrop first picks one of
        the F^2 cells uniformly, then draws its window inside that cell
        alone, the --crop-scale range relative to the cell's area; the window
        is resized to the full image, flipped and normalised as usual, from
        the same per-image random keys. A view thus never shows a seam between
        two images. Images without a grid are an error. With --labels it is
        an error too: a label stream replays the crops it stores.

        Output: an NDJSON line per evaluation on stdout (epoch, top1, top5,
        val loss, train loss, lr, wall_s), then a summary line (best and last
        accuracy, epochs, images, label records and bytes read, the resolved
        recipe, wall time, the saved model's hash). Progress on stderr.

        Examples:
          ld-relabel --teacher t.ldm --images syn/ --epochs 300 --batch 50 \\
            | ld-prune --ratio 40 \\
            | ld-train --images syn/ --width 64 --val fmnist:test
          ld-train --images pca.ldi --hard --grid-aware-crop --val fmnist:test
        """,
        version: LD.version
    )

    // MARK: data and labels

    @Option(help: "The training images: a folder (ImageFolder of PNG), an image stream, or a data set name.")
    var images: String

    @Option(help: "Real validation data set (fmnist:test, cifar10:test:DIR, a folder or an image stream).")
    var val: String?

    @Option(help: "Label stream from ld-relabel or ld-prune (`-` is stdin).")
    var labels: String?

    @Option(help: "Teacher model file for online soft labels.")
    var teacher: String?

    @Flag(help: "Train on the images' class labels with cross-entropy.")
    var hard = false

    @Option(help: "How a label pool is sampled per epoch: with-replacement (LPLD) or without-replacement (LPQLD). Giving it forces pool mode.")
    var poolSampling: String?

    // MARK: student

    @Option(help: "Student architecture: convnet or resnet18.")
    var model = "convnet"

    @Option(help: "ConvNet width (channels).")
    var width = 128

    @Option(help: "ConvNet depth (conv blocks).")
    var depth = 3

    @Option(help: "ResNet-18 stem: small (3x3, stride 1) or imagenet (7x7 stride 2 + max-pool).")
    var stem = "small"

    // MARK: recipe

    @Option(help: "Recipe preset: lpld, sre2l, rethinkdc-soft, rethinkdc-hard or dc (default lpld; dc with --hard).")
    var recipe: String?

    @Option(help: "Optimiser: adamw, adam or sgd.")
    var optimizer: String?

    @Option(help: "Base learning rate.")
    var lr: Float?

    @Option(help: "Weight decay.")
    var weightDecay: Float?

    @Option(help: "SGD momentum.")
    var momentum: Float?

    @Option(help: "Weight decay on which parameters: kernels (conv/linear weights only) or all.")
    var decay: String?

    @Option(help: "Training epochs.")
    var epochs: Int?

    @Option(help: "Batch size of the online and hard modes (a label stream fixes its own).")
    var batchSize: Int?

    @Option(help: "KL temperature T.")
    var temperature: Float?

    @Flag(help: "Multiply the KL by T^2.")
    var t2 = false

    @Option(help: "Learning-rate schedule, stepped per epoch: cosine, step (x0.1 at half), linear or constant.")
    var schedule: String?

    @Option(help: "Linear warm-up epochs from 0.01 x lr before the schedule.")
    var warmupEpochs: Int?

    @Option(help: "Per-image augmentation of the online and hard modes: rrc, crop (pad 4) or none.")
    var augment: String?

    @Option(help: "RandomResizedCrop scale range MIN,MAX.")
    var cropScale: String?

    @Option(help: "Batch mix of the online and hard modes: cutmix, mixup or none.")
    var mix: String?

    @Flag(help: "Keep each RandomResizedCrop inside one cell of the images' F x F grid (ld-prune --combine); --hard and --teacher only.")
    var gridAwareCrop = false

    @Option(help: "With --grid-aware-crop: the grid factor F, instead of the image set's meta.grid.")
    var grid: Int?

    @Option(help: "Evaluate on --val every N epochs (0: only at the end; the last epoch always is).")
    var evalEvery: Int?

    @Option(help: "Seed of the student's weights and of every draw (shuffle, augmentation, mix, pool).")
    var seed: UInt64 = 0

    @Option(name: .shortAndLong, help: "Save the trained student as a model file.")
    var output: String?

    @OptionGroup var common: CommonOptions

    /// The label stream to read: --labels, or stdin when no label source is named and stdin is a pipe or a
    /// file (so `ld-relabel ... | ld-prune ... | ld-train --images syn/ ...` needs no `--labels -`).
    var labelSource: String? {
        if let labels { return labels }
        return teacher == nil && !hard && isatty(STDIN_FILENO) == 0 ? "-" : nil
    }

    func validate() throws {
        let sources = [labels != nil, teacher != nil, hard].filter { $0 }.count
        guard sources == 1 || (sources == 0 && labelSource != nil) else {
            throw ValidationError(sources == 0
                ? "give one label source: --labels FILE, --teacher MODEL or --hard (or pipe a label stream into stdin)"
                : "give only one label source of --labels, --teacher and --hard")
        }
        guard val != nil else { throw ValidationError("--val DATASET is required (real data to evaluate the student on)") }
        if poolSampling != nil && labelSource == nil { throw ValidationError("--pool-sampling applies to --labels only") }
        if let p = poolSampling, PoolSampling(rawValue: p) == nil {
            throw ValidationError("--pool-sampling must be with-replacement or without-replacement, got '\(p)'")
        }
        guard ["convnet", "resnet18"].contains(model) else { throw ValidationError("--model must be convnet or resnet18, got '\(model)'") }
        if let r = recipe, !StudentRecipe.presetNames.contains(r) {
            throw ValidationError("--recipe must be one of \(StudentRecipe.presetNames.joined(separator: ", ")), got '\(r)'")
        }
        if let o = optimizer, StudentOptimizerKind(rawValue: o) == nil { throw ValidationError("--optimizer must be adamw, adam or sgd, got '\(o)'") }
        if let s = schedule, StudentScheduleKind(rawValue: s) == nil { throw ValidationError("--schedule must be cosine, step, linear or constant, got '\(s)'") }
        if let a = augment, StudentAugmentKind(rawValue: a) == nil { throw ValidationError("--augment must be rrc, crop or none, got '\(a)'") }
        if let m = mix, !["cutmix", "mixup", "none"].contains(m) { throw ValidationError("--mix must be cutmix, mixup or none, got '\(m)'") }
        if let d = decay, !["kernels", "all"].contains(d) { throw ValidationError("--decay must be kernels or all, got '\(d)'") }
        if let c = cropScale, Train.parseScale(c) == nil { throw ValidationError("--crop-scale must be MIN,MAX with 0 < MIN <= MAX <= 1, got '\(c)'") }
        if labelSource != nil && (augment != nil || mix != nil || cropScale != nil) {
            throw ValidationError("--augment, --mix and --crop-scale apply to --teacher and --hard (a label stream stores its augmentations)")
        }
        if labelSource != nil && gridAwareCrop {
            throw ValidationError("--grid-aware-crop applies to --teacher and --hard (a label stream replays its stored crops)")
        }
        if grid != nil && !gridAwareCrop { throw ValidationError("--grid applies with --grid-aware-crop") }
        if let g = grid, g < 1 { throw ValidationError("--grid must be >= 1, got \(g)") }
        if gridAwareCrop, let a = augment, a != "rrc" {
            throw ValidationError("--grid-aware-crop constrains RandomResizedCrop; --augment \(a) has none to constrain")
        }
        if let e = epochs, e <= 0 { throw ValidationError("--epochs must be positive, got \(e)") }
        if let b = batchSize, b <= 0 { throw ValidationError("--batch-size must be positive, got \(b)") }
    }

    static func parseScale(_ s: String) -> (Float, Float)? {
        let parts = s.split(separator: ",").map { Float(String($0)) }
        guard parts.count == 2, let a = parts[0], let b = parts[1], a > 0, a <= b, b <= 1 else { return nil }
        return (a, b)
    }

    /// The preset with every explicit flag applied.
    func resolvedRecipe(streamEpochs: Int?, streamBatch: Int?) throws -> StudentRecipe {
        var r = try StudentRecipe.preset(recipe ?? (hard ? "dc" : "lpld"))
        if let o = optimizer { r.optimizer = StudentOptimizerKind(rawValue: o)! }
        if let v = lr { r.learningRate = v }
        if let v = weightDecay { r.weightDecay = v }
        if let v = momentum { r.momentum = v }
        if let d = decay { r.decayScope = d == "all" ? .all : .flagged }
        if let e = epochs { r.epochs = e } else if let e = streamEpochs, e > 0 { r.epochs = e }
        if let b = batchSize { r.batchSize = b } else if let b = streamBatch, b > 0 { r.batchSize = b }
        if let t = temperature { r.temperature = t }
        if t2 { r.scaleByTSquared = true }
        if let s = schedule { r.schedule = StudentScheduleKind(rawValue: s)! }
        if let w = warmupEpochs { r.warmupEpochs = w }
        if let a = augment { r.augment = StudentAugmentKind(rawValue: a)! }
        if let c = cropScale, let s = Train.parseScale(c) { r.cropScale = (s.0, s.1) }
        if let m = mix { r.mix = m == "cutmix" ? .cutmix : m == "mixup" ? .mixup : .none }
        if let e = evalEvery { r.evalEvery = e }
        try r.validate()
        return r
    }

    func run() throws {
        common.apply()
        let clockStart = Progress.now()
        let data = try Dataset.load(images)
        var gridFactor: Int? = nil
        if gridAwareCrop {
            guard let f = grid ?? data.grid else {
                throw LDError("--grid-aware-crop: --images \(images) records no grid (meta.grid from ld-prune --combine); give --grid F or drop the flag")
            }
            gridFactor = f
        }
        let valData = try Dataset.load(val!)
        guard data.count > 0 else { throw LDError("--images \(data.source) holds no images") }
        if let f = gridFactor { _ = try ImageGrid(height: data.height, width: data.width, factor: f) }

        // Label source and normalisation.
        var teacherFile: ModelFile? = nil
        var stream: LabelStreamInput? = nil
        let normalization: Normalization
        if let t = teacher {
            let f = try ModelFile.load(path: t)
            try f.check(data, role: "--images")
            try f.check(valData, role: "--val")
            teacherFile = f
            normalization = Normalization(of: f)
        } else if let l = labelSource {
            let s = try LabelStreamInput(path: l, images: data)
            stream = s
            if let m = s.info.mean, let sd = s.info.std, m.count == sd.count {
                normalization = Normalization(mean: m, std: sd)
            } else {
                normalization = Normalization(of: valData)
            }
        } else {
            normalization = Normalization(of: valData)
        }
        guard normalization.mean.count == data.channels else {
            throw LDError("normalisation has \(normalization.mean.count) channels, --images \(data.source) has \(data.channels)")
        }
        let r = try resolvedRecipe(streamEpochs: stream?.info.epochs, streamBatch: stream?.info.batchSize)
        if let s = stream, let b = batchSize, let sb = s.info.batchSize, b != sb {
            throw LDError("--batch-size \(b) differs from the label stream's batch size \(sb) (the records fix the batch)")
        }

        // Student.
        let config = model == "convnet"
            ? ModelConfig.convnet(width: width, depth: depth, channels: data.channels, imageSize: data.height, classes: data.classes)
            : ModelConfig.resnet18(channels: data.channels, imageSize: data.height, classes: data.classes, stem: stem)
        guard data.height == data.width else {
            throw LDError("--images \(data.source) has \(data.height)x\(data.width) images; the models take square images")
        }
        try Train.checkFits(valData, config, role: "--val")
        var initRNG = LDRandom(seed: seed, stage: .weightInit)
        let student = try Model(config, rng: &initRNG)
        let trainer = StudentTrainer(model: student, recipe: r)
        let maker = try StudentBatchMaker(images: data, normalization: normalization)

        let sourceName = stream != nil ? "labels" : teacherFile != nil ? "teacher" : "hard"
        if common.verbose {
            Log.line("ld-train: \(sourceName) on \(data.count) images of \(data.source), val \(valData.source) (\(valData.count)), normalisation mean \(normalization.mean) std \(normalization.std)")
            Log.line("ld-train: recipe " + JSONValue.object(r.json).serialized)
            for line in student.summary { Log.line(line) }
        }

        let metrics = try MetricsLog(path: "-")
        var best: (top1: Double, epoch: Int) = (-1, 0)
        var last: (top1: Double, top5: Double) = (0, 0)
        var replays = 0
        var mode = sourceName

        /// Runs after each epoch: evaluation when due.
        func endEpoch(_ e: Int, lossSum: Double, steps: Int) throws {
            let done = e + 1
            let due = done == r.epochs || (r.evalEvery > 0 && done % r.evalEvery == 0)
            guard due else { return }
            let ev = try student.evaluate(valData, normalization: normalization)
            last = (ev.top1, ev.top5)
            if ev.top1 > best.top1 { best = (ev.top1, done) }
            var line = ev.json
            line["epoch"] = .int(Int64(done))
            line["train_loss"] = .double(Train.round(steps > 0 ? lossSum / Double(steps) : 0, 5))
            line["lr"] = .number(trainer.optimizer.learningRate)
            line["wall_s"] = .double(Train.round(Progress.now() - clockStart, 1))
            try metrics.write(line)
        }

        func step(_ batch: (input: Tensor, target: StudentTarget), epoch: Int, index: Int) throws -> Float {
            do {
                return try trainer.step(input: batch.input, target: batch.target)
            } catch let error as LDError {
                throw LDError("epoch \(epoch + 1), batch \(index): \(error.message)")
            }
        }

        if let s = stream {
            let forcedPool = poolSampling != nil
            let complete = !s.info.pruned && (s.info.storedEpochs ?? 0) >= r.epochs
            if complete && !forcedPool {
                mode = "labels-stream"
                let progress = Progress("train", total: r.epochs * (s.info.batchesPerEpoch ?? 0), unit: "batch", quiet: common.quiet)
                var pending: LabelBatchRecord? = nil
                for e in 0..<r.epochs {
                    trainer.beginEpoch(e)
                    let stored = s.info.epochStart + e
                    var lossSum = 0.0, steps = 0
                    while true {
                        guard let rec = try pending ?? s.next() else { break }
                        pending = nil
                        if Int(rec.epoch) > stored { pending = rec; break }
                        if Int(rec.epoch) < stored {
                            throw LDError("\(s.name): label batch \(rec.batch) of epoch \(rec.epoch) arrives during epoch \(stored) (records out of order)")
                        }
                        lossSum += Double(try step(maker.replay(rec), epoch: e, index: steps))
                        steps += 1
                        replays += 1
                        progress.update(replays, "epoch \(e + 1)/\(r.epochs) loss \(Train.round(lossSum / Double(steps), 4))")
                    }
                    if steps == 0 {
                        throw LDError("\(s.name): the label stream ended before stored epoch \(stored) (training needs \(r.epochs) epochs from epoch \(s.info.epochStart); a shard missing?)")
                    }
                    try endEpoch(e, lossSum: lossSum, steps: steps)
                }
                progress.finish(replays)
            } else {
                mode = "labels-pool"
                var pool: [LabelBatchRecord] = []
                while let rec = try s.next() { pool.append(rec) }
                guard !pool.isEmpty else { throw LDError("\(s.name): the label stream holds no records (empty pool)") }
                let perEpoch: Int
                if let b = s.info.batchesPerEpoch, b > 0 {
                    perEpoch = b
                } else if let bs = s.info.batchSize, bs > 0 {
                    perEpoch = (data.count + bs - 1) / bs
                } else {
                    throw LDError("\(s.name): the header states neither batches_per_epoch nor batch_size; cannot size a pool epoch")
                }
                let sampling = PoolSampling(rawValue: poolSampling ?? "with-replacement")!
                if common.verbose {
                    Log.line("ld-train: label pool of \(pool.count) records, \(perEpoch) per epoch, \(sampling.rawValue)")
                }
                let progress = Progress("train", total: r.epochs * perEpoch, unit: "batch", quiet: common.quiet)
                for e in 0..<r.epochs {
                    trainer.beginEpoch(e)
                    var lossSum = 0.0, steps = 0
                    for j in LabelPool.draws(poolSize: pool.count, count: perEpoch, epoch: e, seed: seed, sampling: sampling) {
                        lossSum += Double(try step(maker.replay(pool[j]), epoch: e, index: steps))
                        steps += 1
                        replays += 1
                        progress.update(replays, "epoch \(e + 1)/\(r.epochs) loss \(Train.round(lossSum / Double(steps), 4))")
                    }
                    try endEpoch(e, lossSum: lossSum, steps: steps)
                }
                progress.finish(replays)
            }
        } else {
            var augment = try r.sampleAugment()
            if let f = gridFactor { augment = try augment.constrained(toGrid: f, height: data.height, width: data.width) }
            let sampler = OnlineBatchSampler(images: data, batchSize: r.batchSize, augment: augment,
                                             mix: r.mix, seed: seed)
            let progress = Progress("train", total: r.epochs * data.count, unit: "img", quiet: common.quiet)
            var seen = 0
            for e in 0..<r.epochs {
                trainer.beginEpoch(e)
                let order = sampler.order(epoch: e)
                var lossSum = 0.0, steps = 0
                for b in 0..<sampler.batchesPerEpoch {
                    let draw = sampler.draw(epoch: e, batch: b, order: order)
                    let batch = teacherFile.map { maker.online(draw, teacher: $0.model) } ?? maker.hard(draw)
                    lossSum += Double(try step(batch, epoch: e, index: b))
                    steps += 1
                    seen += draw.indices.count
                    progress.update(seen, "epoch \(e + 1)/\(r.epochs) loss \(Train.round(lossSum / Double(steps), 4))")
                }
                try endEpoch(e, lossSum: lossSum, steps: steps)
            }
            progress.finish(seen)
        }

        var summary: [String: JSONValue] = [
            "summary": .bool(true), "source": .string(mode),
            "best_top1": .double(Train.round(best.top1, 2)), "best_epoch": .int(Int64(best.epoch)),
            "last_top1": .double(Train.round(last.top1, 2)), "last_top5": .double(Train.round(last.top5, 2)),
            "epochs": .int(Int64(r.epochs)), "images": .int(Int64(data.count)), "val_images": .int(Int64(valData.count)),
            "label_records": .int(Int64(stream?.recordsRead ?? 0)), "label_replays": .int(Int64(replays)),
            "label_bytes": .int(Int64(stream?.bytesRead ?? 0)),
            "recipe": .object(r.json), "seed": .int(Int64(seed)),
            "student": .string(model == "convnet" ? "convnet w\(width) d\(depth)" : "resnet18 \(stem)"),
            "wall_s": .double(Train.round(Progress.now() - clockStart, 1)),
        ]
        if let f = gridFactor { summary["grid_aware_crop"] = .int(Int64(f)) }
        if let o = output {
            var info: [String: JSONValue] = [
                "trained_by": .string("ld-train"), "source": .string(mode),
                "image_set_hash": .string(data.contentHash), "epochs": .int(Int64(r.epochs)),
                "recipe": .string(r.name), "top1": .double(Train.round(last.top1, 2)),
            ]
            if let s = stream, let t = s.header.teacherHash { info["teacher_hash"] = .string(t) }
            if let t = teacherFile { info["teacher_hash"] = .string(t.hash) }
            var file = ModelFile(model: student, mean: normalization.mean, std: normalization.std,
                                 classNames: data.classNames, info: info)
            try file.save(path: o, producer: "ld-train", seed: seed)
            summary["model_hash"] = .string(file.hash)
        }
        try metrics.write(summary)
        try metrics.close()
        common.log("ld-train: \(mode), \(r.epochs) epochs: last top-1 \(Train.round(last.top1, 2))%, best \(Train.round(best.top1, 2))% (epoch \(best.epoch))")
    }

    /// Checks that a data set fits a model configuration (channels, size, classes).
    static func checkFits(_ d: Dataset, _ c: ModelConfig, role: String) throws {
        if d.channels != c.channels || d.height != c.imageSize || d.width != c.imageSize {
            throw LDError("\(role) \(d.source) has \(d.channels)x\(d.height)x\(d.width) images, the student takes \(c.channels)x\(c.imageSize)x\(c.imageSize) (the --images shape)")
        }
        if d.classes != c.classes {
            throw LDError("\(role) \(d.source) has \(d.classes) classes, the student (from --images) has \(c.classes)")
        }
    }

    static func round(_ x: Double, _ digits: Int) -> Double {
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        return (x * p).rounded() / p
    }
}

ToolMain.run(Train.self, name: "ld-train")
