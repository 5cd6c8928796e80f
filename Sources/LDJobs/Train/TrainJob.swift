import LDKernels
import LDRecords
import LDData
import LDNetworks

/// Where a student's targets come from (exactly one per run).
public enum LabelSource: Equatable, Sendable {
    /// A label stream from ld-relabel or ld-prune (`-` is stdin), replayed exactly.
    case stream(String)
    /// A teacher model file: online soft labels on the batch the student sees.
    case teacher(String)
    /// The images' own classes with cross-entropy.
    case hard
}

/// The student recipe presets of `StudentRecipe.preset`, as a closed set for the command line.
public enum RecipePreset: String, CaseIterable, Sendable {
    case lpld, sre2l
    case rethinkdcSoft = "rethinkdc-soft"
    case rethinkdcHard = "rethinkdc-hard"
    case dc
}

/// Recipe knobs given explicitly; each one that is set replaces the preset's value.
public struct RecipeOverrides: Equatable, Sendable {
    public var optimizer: OptimizerKind?
    public var learningRate: Float?
    public var weightDecay: Float?
    public var momentum: Float?
    public var decayScope: WeightDecayScope?
    public var epochs: Int?
    public var batchSize: Int?
    public var temperature: Float?
    public var scaleByTSquared = false
    public var schedule: StudentScheduleKind?
    public var warmupEpochs: Int?
    public var augment: AugmentKind?
    public var cropScale: (Float, Float)?
    public var mix: MixKind?
    public var evalEvery: Int?

    public init() {}

    public static func == (a: RecipeOverrides, b: RecipeOverrides) -> Bool {
        a.optimizer == b.optimizer && a.learningRate == b.learningRate && a.weightDecay == b.weightDecay
            && a.momentum == b.momentum && a.decayScope == b.decayScope && a.epochs == b.epochs
            && a.batchSize == b.batchSize && a.temperature == b.temperature && a.scaleByTSquared == b.scaleByTSquared
            && a.schedule == b.schedule && a.warmupEpochs == b.warmupEpochs && a.augment == b.augment
            && a.cropScale?.0 == b.cropScale?.0 && a.cropScale?.1 == b.cropScale?.1 && a.mix == b.mix
            && a.evalEvery == b.evalEvery
    }

    /// The preset with every knob given applied; a label stream's epochs and batch size fill in the ones not
    /// given.
    public func apply(to preset: StudentRecipe, streamEpochs: Int? = nil, streamBatch: Int? = nil) throws -> StudentRecipe {
        var r = preset
        if let v = optimizer { r.optimizer = v }
        if let v = learningRate { r.learningRate = v }
        if let v = weightDecay { r.weightDecay = v }
        if let v = momentum { r.momentum = v }
        if let v = decayScope { r.decayScope = v }
        if let e = epochs { r.epochs = e } else if let e = streamEpochs, e > 0 { r.epochs = e }
        if let b = batchSize { r.batchSize = b } else if let b = streamBatch, b > 0 { r.batchSize = b }
        if let v = temperature { r.temperature = v }
        if scaleByTSquared { r.scaleByTSquared = true }
        if let v = schedule { r.schedule = v }
        if let v = warmupEpochs { r.warmupEpochs = v }
        if let v = augment { r.augment = v }
        if let v = cropScale { r.cropScale = (v.0, v.1) }
        if let v = mix { r.mix = v }
        if let v = evalEvery { r.evalEvery = v }
        try r.validate()
        return r
    }
}

/// ld-train's job: a student from random weights trained on an image set from one label source, evaluated on
/// real data; NDJSON metrics (one line per evaluation, then a summary) and optionally the model file.
public struct TrainJob {
    /// The training images (a data set name, folder or image stream).
    public var data: String
    /// The real validation set.
    public var val: String
    /// `--class-map FILE`: pairs the sets' class names with the teacher's (see `ClassMap`).
    public var classMap: String?
    public var source: LabelSource
    /// The student's architecture; channels, image size and classes are taken from the data.
    public var student: ModelConfig
    /// A short description of the student for the summary line.
    public var studentName: String
    /// The preset (nil: `dc` with hard labels, else `lpld`) and the knobs given on top of it.
    public var preset: RecipePreset?
    public var overrides = RecipeOverrides()
    /// Forces LPLD's label-pool mode with this sampling (stream only).
    public var poolSampling: PoolSampling?
    /// RethinkDC's grid-aware crop, with the grid from the images' meta or `grid`.
    public var gridAwareCrop = false
    public var grid: Int?
    public var seed: UInt64 = 0
    /// Evaluations before the last one use `evalSample` images of --val spread evenly over it (0: all); the
    /// last evaluation always uses the whole set.
    public var evalSample = 1000
    /// The model file to write, if any.
    public var output: String?
    public var console = Console()

    public init(data: String, val: String, source: LabelSource, student: ModelConfig, studentName: String) {
        self.data = data
        self.val = val
        self.source = source
        self.student = student
        self.studentName = studentName
    }

    /// Trains, writing NDJSON lines to `metrics`; returns the summary line (also written).
    @discardableResult
    public func run(metrics: MetricsLog) throws -> [String: JSONValue] {
        let clockStart = Progress.now()
        var run = try prepare()
        var loop = TrainLoop(run: run, metrics: metrics, console: console, clockStart: clockStart)
        switch (run.stream, run.poolMode) {
        case (let s?, false): try loop.replayStream(s)
        case (let s?, true): try loop.replayPool(s, sampling: poolSampling ?? .withReplacement, seed: seed)
        default: try loop.drawOnline(seed: seed, grid: run.gridFactor)
        }
        run.mode = loop.mode
        var summary = self.summary(run, loop, wall: Progress.now() - clockStart)
        if let o = output { summary["model_hash"] = .string(try save(run, loop, to: o)) }
        try metrics.write(summary)
        console.say("ld-train: \(loop.mode), \(run.recipe.epochs) epochs: last top-1 \(loop.last.top1.rounded(places: 2))%, best \(loop.best.top1.rounded(places: 2))% (epoch \(loop.best.epoch))")
        return summary
    }

    /// Everything a run needs, loaded and checked before the first step.
    struct Prepared {
        var data: Dataset
        var val: Dataset
        /// What the evaluations before the last one use: `val`, or `evalSample` of its images.
        var valSample: Dataset
        var teacher: ModelFile?
        var stream: LabelStreamInput?
        var normalization: Normalization
        var recipe: StudentRecipe
        var model: Model
        var trainer: StudentTrainer
        var maker: StudentBatchMaker
        var gridFactor: Int?
        var poolMode: Bool
        var mode: String
        /// The evaluation transform's ratio (the teacher's, or --data's recorded one), stored in the student.
        var evalRatio = EvalTransform.defaultRatio
    }

    func prepare() throws -> Prepared {
        var files = RunFiles()
        files.data("--data", self.data)
        files.data("--val", self.val)
        switch source {
        case .teacher(let t): files.input("--teacher", t)
        case .stream(let l): files.input("--labels", l)
        case .hard: break
        }
        files.output("-o", output)
        try files.check()
        // With a teacher, a folder of other sizes is brought to its input size (Dataset.load).
        var teacherFile: ModelFile? = nil
        if case .teacher(let t) = source { teacherFile = try ModelFile.load(path: t) }
        var data = try Dataset.load(self.data, imageSize: teacherFile?.model.config.imageSize,
                                    evalRatio: teacherFile?.evalRatio ?? EvalTransform.defaultRatio)
        let evalRatio = teacherFile?.evalRatio ?? data.evalRatio ?? EvalTransform.defaultRatio
        guard data.count > 0 else { throw LDError("--data \(data.source) holds no images") }
        guard data.classes >= 2 else { throw LDError("--data \(data.source) has \(data.classes) class; a classifier needs at least 2") }
        let gridFactor = try self.gridFactor(data)
        var val = try Dataset.load(self.val, imageSize: data.height, evalRatio: evalRatio)
        if teacherFile == nil, let r = val.evalRatio, abs(r - evalRatio) > 1e-9 {
            throw LDError("--val \(val.source) was brought to \(val.height) px with the evaluation ratio \(r), --data \(data.source)'s is \(evalRatio)")
        }
        let map = try classMap.map { try ClassMap(path: $0) }

        var teacher: ModelFile? = nil, stream: LabelStreamInput? = nil
        let normalization: Normalization
        switch source {
        case .teacher:
            let f = teacherFile!
            // Both sets in the teacher's class order (remapped by name, or an error naming the first mismatch).
            var note: String?
            (data, note) = try f.pair(data, role: "--data", map: map)
            if let n = note { console.say("ld-train: " + n) }
            (val, note) = try f.pair(val, role: "--val", map: map)
            if let n = note { console.say("ld-train: " + n) }
            teacher = f
            normalization = Normalization(of: f)
        case .stream(let l):
            let s = try LabelStreamInput(path: l, images: data)
            stream = s
            // The stored labels are in the teacher's class order, which the stream's header names: both
            // sets follow it (after the stream has checked that it labels these very images).
            if let names = s.info.classNames {
                var note: String?
                (data, note) = try data.aligned(to: names, referenceName: "the label stream's teacher", role: "--data \(data.source)", map: map)
                if let n = note { console.say("ld-train: " + n) }
            }
            if let m = s.info.mean, let sd = s.info.std, m.count == sd.count {
                normalization = Normalization(mean: m, std: sd)
            } else {
                normalization = Normalization(of: val)
            }
        case .hard:
            normalization = Normalization(of: val)
        }
        if teacher == nil {
            // The student learns --data's classes (or the stream's): --val must mean the same by each index.
            let (v, note) = try val.aligned(to: data.classNames, referenceName: "--data \(data.source)", role: "--val \(val.source)", map: map)
            val = v
            if let n = note { console.say("ld-train: " + n) }
        }
        guard normalization.mean.count == data.channels else {
            throw LDError("normalisation has \(normalization.mean.count) channels, --data \(data.source) has \(data.channels)")
        }
        let recipe = try overrides.apply(to: try StudentRecipe.preset((preset ?? (source == .hard ? .dc : .lpld)).rawValue),
                                         streamEpochs: stream?.info.epochs, streamBatch: stream?.info.batchSize)
        if let s = stream, let b = overrides.batchSize, let sb = s.info.batchSize, b != sb {
            throw LDError("--batch-size \(b) differs from the label stream's batch size \(sb) (the records fix the batch)")
        }
        guard data.height == data.width else {
            throw LDError("--data \(data.source) has \(data.height)x\(data.width) images; the models take square images")
        }
        let config = student.fitted(channels: data.channels, imageSize: data.height, classes: data.classes)
        try config.checkFits(val, role: "--val")
        var initRNG = LDRandom(seed: seed, stage: .weightInit)
        let model = try Model(config, rng: &initRNG)
        let complete = stream.map { !$0.info.pruned && ($0.info.storedEpochs ?? 0) >= recipe.epochs } ?? false
        let mode = stream == nil ? (teacher != nil ? "teacher" : "hard") : "labels"
        let prepared = Prepared(data: data, val: val, valSample: try sample(val), teacher: teacher, stream: stream, normalization: normalization,
                                recipe: recipe, model: model, trainer: StudentTrainer(model: model, recipe: recipe),
                                maker: try StudentBatchMaker(images: data, normalization: normalization),
                                gridFactor: gridFactor, poolMode: !complete || poolSampling != nil, mode: mode, evalRatio: evalRatio)
        console.detail("ld-train: \(mode) on \(data.count) images of \(data.source), val \(val.source) (\(val.count)), normalisation mean \(normalization.mean) std \(normalization.std)")
        console.detail("ld-train: recipe " + JSONValue.object(recipe.json).serialized)
        if console.verbose { for line in model.summary { console.detail(line) } }
        return prepared
    }

    /// `evalSample` images of `val` at an even stride (all of them when it has no more, or with 0).
    func sample(_ val: Dataset) throws -> Dataset {
        guard evalSample > 0, val.count > evalSample else { return val }
        return try val.subset((0..<evalSample).map { $0 * val.count / evalSample })
    }

    func gridFactor(_ data: Dataset) throws -> Int? {
        guard gridAwareCrop else { return nil }
        guard let f = grid ?? data.grid else {
            throw LDError("--grid-aware-crop: --data \(self.data) records no grid (meta.grid from ld-prune --combine); give --grid F or drop the flag")
        }
        _ = try ImageGrid(height: data.height, width: data.width, factor: f)
        return f
    }

    func summary(_ run: Prepared, _ loop: TrainLoop, wall: Double) -> [String: JSONValue] {
        var s: [String: JSONValue] = [
            "summary": .bool(true), "source": .string(loop.mode),
            "best_top1": .rounded(loop.best.top1, places: 2), "best_epoch": .int(Int64(loop.best.epoch)),
            "last_top1": .rounded(loop.last.top1, places: 2), "last_top5": .rounded(loop.last.top5, places: 2),
            "epochs": .int(Int64(run.recipe.epochs)), "images": .int(Int64(run.data.count)),
            "val_images": .int(Int64(run.val.count)),
            "label_records": .int(Int64(run.stream?.recordsRead ?? 0)), "label_replays": .int(Int64(loop.replays)),
            "label_bytes": .int(Int64(run.stream?.bytesRead ?? 0)),
            "recipe": .object(run.recipe.json), "seed": .int(Int64(seed)),
            "student": .string(studentName), "wall_s": .rounded(wall, places: 1),
        ]
        if let f = run.gridFactor { s["grid_aware_crop"] = .int(Int64(f)) }
        return s
    }

    /// Writes the student's model file; returns its hash.
    func save(_ run: Prepared, _ loop: TrainLoop, to path: String) throws -> String {
        var info: [String: JSONValue] = [
            "trained_by": .string("ld-train"), "source": .string(loop.mode),
            "image_set_hash": .string(run.data.contentHash), "epochs": .int(Int64(run.recipe.epochs)),
            "recipe": .string(run.recipe.name), "top1": .rounded(loop.last.top1, places: 2),
        ]
        if let s = run.stream, let t = s.header.teacherHash { info["teacher_hash"] = .string(t) }
        if let t = run.teacher { info["teacher_hash"] = .string(t.hash) }
        var file = ModelFile(model: run.model, mean: run.normalization.mean, std: run.normalization.std,
                             classNames: run.data.classNames, info: info)
        file.evalRatio = run.evalRatio
        try file.save(path: path, producer: "ld-train", seed: seed)
        return file.hash
    }
}

/// The epoch loops of a student run: replay of a complete stream, LPLD's pool, or fresh online/hard draws;
/// evaluation when due after each epoch.
struct TrainLoop {
    let run: TrainJob.Prepared
    let metrics: MetricsLog
    let console: Console
    let clockStart: Double
    var best: (top1: Double, epoch: Int) = (-1, 0)
    var last: (top1: Double, top5: Double) = (0, 0)
    var replays = 0
    var mode: String

    init(run: TrainJob.Prepared, metrics: MetricsLog, console: Console, clockStart: Double) {
        self.run = run
        self.metrics = metrics
        self.console = console
        self.clockStart = clockStart
        mode = run.mode
    }

    var epochs: Int { run.recipe.epochs }

    /// A complete stream read as it arrives: training epoch e replays stored epoch `epoch_start + e`.
    mutating func replayStream(_ s: LabelStreamInput) throws {
        mode = "labels-stream"
        let progress = console.progress("train", total: epochs * (s.info.batchesPerEpoch ?? 0), unit: "batch")
        var pending: LabelBatchRecord? = nil
        for e in 0..<epochs {
            run.trainer.beginEpoch(e)
            let stored = s.info.epochStart + e
            var loss = LossMean()
            while true {
                guard let rec = try pending ?? s.next() else { break }
                pending = nil
                if Int(rec.epoch) > stored { pending = rec; break }
                if Int(rec.epoch) < stored {
                    throw LDError("\(s.name): label batch \(rec.batch) of epoch \(rec.epoch) arrives during epoch \(stored) (records out of order)")
                }
                loss.add(try step(run.maker.replay(rec), epoch: e, index: loss.steps))
                replays += 1
                progress.update(replays, "epoch \(e + 1)/\(epochs) loss \(loss.mean.rounded(places: 4))")
            }
            if loss.steps == 0 {
                throw LDError("\(s.name): the label stream ended before stored epoch \(stored) (training needs \(epochs) epochs from epoch \(s.info.epochStart); a shard missing?)")
            }
            try endEpoch(e, loss)
        }
        progress.finish(replays)
    }

    /// LPLD's label pool: every record read first, each epoch replays `batches_per_epoch` drawn from it.
    mutating func replayPool(_ s: LabelStreamInput, sampling: PoolSampling, seed: UInt64) throws {
        mode = "labels-pool"
        var pool: [LabelBatchRecord] = []
        while let rec = try s.next() { pool.append(rec) }
        guard !pool.isEmpty else { throw LDError("\(s.name): the label stream holds no records (empty pool)") }
        let perEpoch: Int
        if let b = s.info.batchesPerEpoch, b > 0 {
            perEpoch = b
        } else if let bs = s.info.batchSize, bs > 0 {
            perEpoch = (run.data.count + bs - 1) / bs
        } else {
            throw LDError("\(s.name): the header states neither batches_per_epoch nor batch_size; cannot size a pool epoch")
        }
        let why = s.info.pruned ? "a pruned stream" : "the stream holds \(s.info.storedEpochs.map(String.init) ?? "an unstated number of") epochs, training runs \(epochs)"
        console.say("ld-train: \(why): each epoch draws \(perEpoch) of its \(pool.count) records (label pool, \(sampling.rawValue))")
        let progress = console.progress("train", total: epochs * perEpoch, unit: "batch")
        for e in 0..<epochs {
            run.trainer.beginEpoch(e)
            var loss = LossMean()
            for j in LabelPool.draws(poolSize: pool.count, count: perEpoch, epoch: e, seed: seed, sampling: sampling) {
                loss.add(try step(run.maker.replay(pool[j]), epoch: e, index: loss.steps))
                replays += 1
                progress.update(replays, "epoch \(e + 1)/\(epochs) loss \(loss.mean.rounded(places: 4))")
            }
            try endEpoch(e, loss)
        }
        progress.finish(replays)
    }

    /// The online-teacher and hard-label modes: each epoch's batches drawn afresh (ld-relabel's keys).
    mutating func drawOnline(seed: UInt64, grid: Int?) throws {
        let data = run.data
        var augment = try run.recipe.sampleAugment()
        if let f = grid { augment = try augment.constrained(toGrid: f, height: data.height, width: data.width) }
        // ld-relabel's keys: with the same seed, batch size, crop and mix, the teacher labels the batches
        // ld-relabel would store.
        let sampler = BatchDraws(count: data.count, height: data.height, width: data.width,
                                 batchSize: run.recipe.batchSize, augment: augment, mix: BatchMix(run.recipe.mix),
                                 seed: seed, orderStage: .relabel)
        let progress = console.progress("train", total: epochs * data.count, unit: "img")
        var seen = 0
        for e in 0..<epochs {
            run.trainer.beginEpoch(e)
            let order = sampler.order(epoch: e)
            var loss = LossMean()
            for b in 0..<sampler.batchesPerEpoch {
                let draw = sampler.draw(epoch: e, batch: b, order: order)
                let batch = try run.teacher.map { try run.maker.online(draw, teacher: $0.model) } ?? run.maker.hard(draw)
                loss.add(try step(batch, epoch: e, index: b))
                seen += draw.indices.count
                progress.update(seen, "epoch \(e + 1)/\(epochs) loss \(loss.mean.rounded(places: 4))")
            }
            try endEpoch(e, loss)
        }
        progress.finish(seen)
    }

    func step(_ batch: (input: Tensor, target: StudentTarget), epoch: Int, index: Int) throws -> Float {
        do {
            return try run.trainer.step(input: batch.input, target: batch.target)
        } catch let error as LDError {
            throw LDError("epoch \(epoch + 1), batch \(index): \(error.message)")
        }
    }

    /// After epoch `e`: evaluation on --val when due (every `evalEvery` epochs and at the end).
    mutating func endEpoch(_ e: Int, _ loss: LossMean) throws {
        let done = e + 1
        let every = run.recipe.evalEvery
        guard done == epochs || (every > 0 && done % every == 0) else { return }
        let whole = done == epochs || run.valSample.count == run.val.count
        let ev = try run.model.evaluate(whole ? run.val : run.valSample, normalization: run.normalization)
        last = (ev.top1, ev.top5)
        // The best accuracy is over evaluations on the whole set only (a sample's is not comparable).
        if whole && ev.top1 > best.top1 { best = (ev.top1, done) }
        var line = ev.json
        line["epoch"] = .int(Int64(done))
        line["train_loss"] = .rounded(loss.mean, places: 5)
        line["lr"] = .number(run.trainer.optimizer.learningRate)
        line["wall_s"] = .rounded(Progress.now() - clockStart, places: 1)
        try metrics.write(line)
    }
}

/// The running mean of an epoch's step losses.
struct LossMean {
    private(set) var sum = 0.0
    private(set) var steps = 0
    mutating func add(_ loss: Float) { sum += Double(loss); steps += 1 }
    var mean: Double { steps > 0 ? sum / Double(steps) : 0 }
}

extension ModelConfig {
    /// The same architecture for `channels` x `imageSize` x `imageSize` inputs and `classes` classes.
    public func fitted(channels: Int, imageSize: Int, classes: Int) -> ModelConfig {
        var c = self
        c.channels = channels
        c.imageSize = imageSize
        c.classes = classes
        return c
    }

    /// Throws unless a data set fits the configuration (channels, size, classes); `role` names it.
    public func checkFits(_ d: Dataset, role: String) throws {
        if d.channels != channels || d.height != imageSize || d.width != imageSize {
            throw LDError("\(role) \(d.source) has \(d.channels)x\(d.height)x\(d.width) images, the model takes \(channels)x\(imageSize)x\(imageSize)")
        }
        if d.classes != classes {
            throw LDError("\(role) \(d.source) has \(d.classes) classes, the model has \(classes)")
        }
    }
}
