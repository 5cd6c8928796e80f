import LDKernels
import LDRecords
import LDData
import LDNetworks
import Foundation

/// Everything that determines a teacher training run; a checkpoint stores it and `--resume` refuses a
/// checkpoint made with different settings.
public struct TeacherSettings: Codable, Equatable {
    /// The architecture (built from the training set's shape and class count).
    public var model: ModelConfig
    /// Training epochs (full passes over the training set).
    public var epochs: Int
    /// Mini-batch size; the last batch of an epoch may be smaller.
    public var batchSize: Int
    /// Peak learning rate (after warm-up, before the cosine decay).
    public var learningRate: Float
    /// SGD momentum (ignored by Adam and AdamW).
    public var momentum: Float
    /// Weight decay: SGD couples it on every parameter; Adam and AdamW apply it to conv and linear kernels only.
    public var weightDecay: Float
    /// Epochs of linear warm-up (from 1% of the rate) before the per-step cosine decay.
    public var warmupEpochs: Int
    /// SGD (coupled decay on every parameter), AdamW or Adam (decay on conv and linear kernels only).
    public var optimizer: OptimizerKind
    /// `crop` (RandomCrop with `cropPadding` + flip), `rrc` (RandomResizedCrop 0.08–1 + flip) or `none`.
    public var augment: AugmentKind
    /// Zero padding of `augment = crop`.
    public var cropPadding: Int
    /// Seed of the weights, the shuffles and the augmentations.
    public var seed: UInt64
    /// Record training-dynamics scores, with EL2N over the first `el2nEpochs` epochs.
    public var scores: Bool
    /// K: EL2N averages over the first K epochs.
    public var el2nEpochs: Int
    /// `Dataset.contentHash` of the training set (the images the run sees, after any limit).
    public var trainSetHash: String

    /// Collects the settings; `validate()` checks them.
    public init(model: ModelConfig, epochs: Int, batchSize: Int, learningRate: Float, momentum: Float,
                weightDecay: Float, warmupEpochs: Int, optimizer: OptimizerKind, augment: AugmentKind, cropPadding: Int = 4,
                seed: UInt64, scores: Bool, el2nEpochs: Int, trainSetHash: String) {
        self.model = model; self.epochs = epochs; self.batchSize = batchSize; self.learningRate = learningRate
        self.momentum = momentum; self.weightDecay = weightDecay; self.warmupEpochs = warmupEpochs
        self.optimizer = optimizer; self.augment = augment; self.cropPadding = cropPadding; self.seed = seed
        self.scores = scores; self.el2nEpochs = el2nEpochs; self.trainSetHash = trainSetHash
    }

    /// Checks the values; throws a one-line reason naming the flag.
    public func validate() throws {
        try model.validate()
        try Limits.check(epochs, "--epochs", limit: Limits.epochs)
        try Limits.check(batchSize, "--batch-size", limit: Limits.batchSize)
        guard learningRate.isFinite && learningRate > 0 else {
            throw LDError("--lr must be a positive finite number, got \(learningRate)")
        }
        guard momentum.isFinite && momentum >= 0 && momentum < 1 else {
            throw LDError("--momentum must be in [0, 1), got \(momentum)")
        }
        guard weightDecay.isFinite && weightDecay >= 0 else {
            throw LDError("--weight-decay must be a finite number >= 0, got \(weightDecay)")
        }
        guard warmupEpochs >= 0 && warmupEpochs < epochs else {
            throw LDError("--warmup-epochs must be in 0..<\(epochs) (the epochs), got \(warmupEpochs)")
        }
        guard cropPadding >= 0 else { throw LDError("--crop-padding must be >= 0, got \(cropPadding)") }
        guard el2nEpochs > 0 else { throw LDError("--el2n-epochs must be positive, got \(el2nEpochs)") }
    }

    /// The per-image training augmentation.
    public var sampleAugment: SampleAugment {
        (try? augment.sampler(cropPadding: cropPadding, cropScale: (0.08, 1))) ?? .none
    }

    /// The settings as a JSON object (stored in checkpoints and model files).
    public var json: JSONValue {
        (try? JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(self))) ?? .null
    }

    /// The first setting that differs from `other`, as "name: a vs b", or nil when equal.
    public func difference(from other: TeacherSettings) -> String? {
        guard case .object(let a) = json, case .object(let b) = other.json else { return self == other ? nil : "settings" }
        for key in Set(a.keys).union(b.keys).sorted() where a[key] != b[key] {
            let flag = TeacherSettings.flags[key] ?? key
            return "\(flag) \((a[key] ?? .null).serialized) there, \((b[key] ?? .null).serialized) now"
        }
        return nil
    }

    /// The command-line flag of each field, for messages.
    static let flags = [
        "model": "the model (--model, --width, --depth, --stem)", "epochs": "--epochs", "batchSize": "--batch-size",
        "learningRate": "--lr", "momentum": "--momentum", "weightDecay": "--weight-decay", "warmupEpochs": "--warmup-epochs",
        "optimizer": "--optimizer", "augment": "--augment", "cropPadding": "--crop-padding", "seed": "--seed",
        "scores": "--scores", "el2nEpochs": "--el2n-epochs", "trainSetHash": "the image set (--data, --limit)",
    ]
}

/// What one finished epoch measured on the training data (on the augmented views, in train mode).
public struct EpochSummary: Equatable {
    /// The epoch, from 0.
    public var epoch: Int
    /// Mean cross-entropy over the epoch's examples.
    public var loss: Double
    /// Percent of the epoch's examples classified correctly at the step that saw them.
    public var top1: Double
    /// The learning rate of the epoch's last step.
    public var lastLearningRate: Float
}

/// Trains a classifier on a data set with hard labels: shuffled mini-batches, per-image augmentation, cross-
/// entropy, SGD/Adam/AdamW with linear warm-up and per-step cosine decay; optionally records training-dynamics
/// scores; checkpoints and resumes between any two steps.
///
/// Randomness: the weights come from `LDRandom(seed, .weightInit)`, epoch e's order from
/// `LDRandom(seed, .squeeze, major: e)`, and the augmentation of item i of batch b of epoch e from
/// `LDRandom(seed, .augment, major: e, minor: b, item: i)`, so a resumed run is bit-identical to an
/// uninterrupted one (with the same thread count).
public final class TeacherTrainer {
    public let settings: TeacherSettings
    /// The training set (what `scores` indexes).
    public let data: Dataset
    /// The input normalisation (the training set's), stored in the model file.
    public let normalization: Normalization
    /// The model being trained.
    public let model: Model
    /// SGD, Adam or AdamW over `model.parameters`.
    public let optimizer: Optimizer
    /// Learning rate per global step (epoch · stepsPerEpoch + step).
    public let schedule: LRSchedule
    /// Training-dynamics scores, when `settings.scores`.
    public let scores: TrainingDynamics?
    /// Batches per epoch (the last one may be smaller; no example is dropped, so every one is scored).
    public let stepsPerEpoch: Int
    /// The next step to run: epoch (from 0) and step within it.
    public private(set) var epoch = 0, step = 0
    /// Sums over the current epoch so far.
    public private(set) var epochLossSum = 0.0, epochCorrect = 0, epochSeen = 0
    /// The learning rate of the last step run.
    public private(set) var lastLearningRate: Float = 0

    /// The training batches (`loader.waitSeconds`: time the steps waited for a set on disk).
    public let loader: BatchLoader
    /// The keyed draws: epoch order from stage `.squeeze`, augmentations from `.augment`, no mix.
    private let draws: BatchDraws
    /// RandomResizedCrop on a folder of any size kept on disk: boxes drawn on each image's stored size and
    /// cropped from the whole decoded image (torchvision's recipe), not from its evaluation-size view.
    public let cropsFromWholeImages: Bool
    private var order: [Int] = []
    private var orderEpoch = -1
    private let dLogits = Tensor(shape: [0])

    /// Builds the model with fresh weights for `data` (whose shape and classes must match `settings.model`).
    public init(settings: TeacherSettings, data: Dataset, normalization: Normalization) throws {
        try settings.validate()
        let c = settings.model
        guard data.channels == c.channels, data.height == c.imageSize, data.width == c.imageSize else {
            throw LDError("\(data.source) has \(data.channels)x\(data.height)x\(data.width) images, the model takes \(c.channels)x\(c.imageSize)x\(c.imageSize)")
        }
        guard data.classes == c.classes else { throw LDError("\(data.source) has \(data.classes) classes, the model has \(c.classes)") }
        guard data.count > 0 else { throw LDError("\(data.source): no training images") }
        self.settings = settings
        self.data = data
        self.normalization = normalization
        var rng = LDRandom(seed: settings.seed, stage: .weightInit)
        model = try Model(c, rng: &rng)
        model.training = true
        stepsPerEpoch = (data.count + settings.batchSize - 1) / settings.batchSize
        let params = model.parameters, lr = settings.learningRate, wd = settings.weightDecay
        optimizer = settings.optimizer.make(params, learningRate: lr, momentum: settings.momentum, weightDecay: wd,
                                            decayScope: settings.optimizer == .sgd ? .all : .flagged)
        let warm = settings.warmupEpochs * stepsPerEpoch
        let cosine = LRSchedule.cosine(base: lr, total: settings.epochs * stepsPerEpoch - warm)
        schedule = warm > 0 ? .warmup(steps: warm, startFactor: 0.01, then: cosine) : cosine
        scores = settings.scores ? TrainingDynamics(count: data.count, classes: data.classes, el2nEpochs: settings.el2nEpochs) : nil
        loader = try BatchLoader(data: data, normalization: normalization)
        draws = BatchDraws(count: data.count, height: data.height, width: data.width, batchSize: settings.batchSize,
                           augment: settings.sampleAugment, seed: settings.seed, orderStage: .squeeze)
        cropsFromWholeImages = settings.augment == .rrc && (data.files?.transforms ?? false)
        loader.cropsFromWholeImages = cropsFromWholeImages
    }

    /// The augmentations of a batch: drawn on each image's stored size with `cropsFromWholeImages`.
    private func views(epoch: Int, batch: Int, indices: [Int]) -> [SampleAugmentation] {
        guard cropsFromWholeImages, let files = data.files else {
            return draws.augmentations(epoch: epoch, batch: batch, count: indices.count)
        }
        return draws.augmentations(epoch: epoch, batch: batch, sizes: indices.map { files.storedSize($0) })
    }

    /// Whether every epoch has run.
    public var finished: Bool { epoch >= settings.epochs }

    /// Runs the next step of the current epoch and returns its loss. Throws, leaving the weights untouched,
    /// when the loss is not finite.
    @discardableResult
    public func trainStep() throws -> Float {
        precondition(!finished, "TeacherTrainer: all \(settings.epochs) epochs have run")
        if orderEpoch != epoch {
            order = draws.order(epoch: epoch)
            orderEpoch = epoch
        }
        let indices = draws.indices(batch: step, order: order)
        let x = try loader.load(indices, replaying: views(epoch: epoch, batch: step, indices: indices))
        if step + 1 < stepsPerEpoch {   // a set on disk: the next batch decoded while this one trains
            let next = draws.indices(batch: step + 1, order: order)
            loader.prefetch(next, crops: cropsFromWholeImages ? views(epoch: epoch, batch: step + 1, indices: next) : nil)
        }
        let lr = schedule.lr(at: epoch * stepsPerEpoch + step)
        model.training = true
        model.zeroGrad()
        let logits = model.forward(x)
        let loss = try CrossEntropy.loss(logits: logits, labels: loader.labels, dLogits: dLogits)
        guard loss.isFinite else {
            throw LDError("epoch \(epoch + 1) step \(step + 1): the loss is \(loss) at lr \(lr); try a lower --lr")
        }
        scores?.record(logits: logits, indices: indices, labels: loader.labels, epoch: epoch)
        epochCorrect += Predictions.correctCount(logits, labels: loader.labels)
        epochLossSum += Double(loss) * Double(indices.count)
        epochSeen += indices.count
        model.backward(dLogits)
        optimizer.learningRate = lr
        optimizer.step()
        lastLearningRate = lr
        step += 1
        return loss
    }

    /// Whether the current epoch's steps have all run.
    public var epochComplete: Bool { step >= stepsPerEpoch }

    /// Closes the current epoch (all its steps must have run) and moves to the next.
    public func finishEpoch() -> EpochSummary {
        precondition(epochComplete, "TeacherTrainer.finishEpoch: step \(step) of \(stepsPerEpoch)")
        let s = EpochSummary(epoch: epoch, loss: epochLossSum / Double(max(epochSeen, 1)),
                             top1: 100 * Double(epochCorrect) / Double(max(epochSeen, 1)), lastLearningRate: lastLearningRate)
        epoch += 1
        step = 0
        epochLossSum = 0; epochCorrect = 0; epochSeen = 0
        return s
    }

    // MARK: - Checkpoints

    /// The record-stream kind of training checkpoints.
    public static let checkpointKind = StreamKind("checkpoint")

    /// Writes the whole training state atomically to `path`: header kind `checkpoint` with meta `settings`,
    /// `epoch`, `step`, the epoch's partial sums, the optimizer step count and `extra`; records: the model's
    /// parameters and BN buffers by name, `optim.state` (the optimizer's flat state) and `scores.*`.
    public func saveCheckpoint(path: String, producer: String, extra: [String: JSONValue] = [:]) throws {
        var meta = extra
        meta["settings"] = settings.json
        meta["epoch"] = .int(Int64(epoch))
        meta["step"] = .int(Int64(step))
        meta["epoch_loss_sum"] = .double(epochLossSum)
        meta["epoch_correct"] = .int(Int64(epochCorrect))
        meta["epoch_seen"] = .int(Int64(epochSeen))
        meta["optimizer_steps"] = .int(Int64(optimizer.stepCount))
        meta["last_lr"] = .double(Double(lastLearningRate))
        let c = settings.model
        let header = StreamHeader(kind: TeacherTrainer.checkpointKind, producer: producer, version: LD.version,
                                  seed: settings.seed, classes: c.classes, shape: [c.channels, c.imageSize, c.imageSize],
                                  imageSetHash: settings.trainSetHash, meta: meta)
        let writer = try StreamWriter(path: path, header: header)
        do {
            for p in model.parameters { try writer.write(TensorRecord(name: p.name, shape: p.value.shape, data: p.value.array)) }
            for b in model.buffers { try writer.write(TensorRecord(name: b.name, shape: b.tensor.shape, data: b.tensor.array)) }
            let state = optimizer.stateBuffer
            try writer.write(TensorRecord(name: "optim.state", shape: [state.count], data: Array(state)))
            if let s = scores { for t in s.tensors() { try writer.write(t) } }
            try writer.finish()
        } catch {
            writer.abort()
            throw error
        }
    }

    /// Restores the state saved by `saveCheckpoint` and returns the header's meta (for the caller's `extra`).
    /// Refuses a checkpoint made with other settings, naming the first difference.
    @discardableResult
    public func restoreCheckpoint(path: String) throws -> [String: JSONValue] {
        let reader = try StreamReader(path: path)
        try reader.expect(kind: TeacherTrainer.checkpointKind)
        let meta = reader.header.meta
        guard let settingsValue = meta["settings"],
              let stored = try? JSONDecoder().decode(TeacherSettings.self, from: JSONEncoder().encode(settingsValue)) else {
            throw LDError("\(path): checkpoint has no readable 'settings'")
        }
        if let why = stored.difference(from: settings) {
            throw LDError("\(path): checkpoint was made with other settings (\(why)); rerun with the same flags or delete it")
        }
        func int(_ key: String) throws -> Int {
            guard let v = meta[key]?.doubleValue, v >= 0, v == v.rounded() else { throw LDError("\(path): checkpoint meta '\(key)' missing or invalid") }
            return Int(v)
        }
        let e = try int("epoch"), s = try int("step")
        guard e <= settings.epochs, s <= stepsPerEpoch else {
            throw LDError("\(path): checkpoint at epoch \(e) step \(s) is outside \(settings.epochs) epochs of \(stepsPerEpoch) steps")
        }
        var tensors: [String: TensorRecord] = [:]
        while let r = try reader.next() {
            guard r.kind == .tensor else { continue }
            let t = try TensorRecord(r, header: reader.header)
            tensors[t.name] = t
        }
        for (name, target) in model.parameters.map({ ($0.name, $0.value) }) + model.buffers.map({ ($0.name, $0.tensor) }) {
            guard let t = tensors[name] else { throw LDError("\(path): checkpoint lacks tensor '\(name)'") }
            guard t.shape == target.shape else {
                throw LDError("\(path): checkpoint tensor '\(name)' has shape \(t.shape), the model expects \(target.shape)")
            }
            t.data.withUnsafeBufferPointer { target.data.update(from: $0.baseAddress!, count: target.count) }
        }
        let state = optimizer.stateBuffer
        guard let o = tensors["optim.state"], o.data.count == state.count else {
            throw LDError("\(path): checkpoint optimizer state missing or of the wrong size (expected \(state.count) values)")
        }
        for i in 0..<state.count { state[i] = o.data[i] }
        optimizer.stepCount = try int("optimizer_steps")
        try scores?.restore(from: tensors, source: path)
        epoch = e
        step = s
        epochLossSum = meta["epoch_loss_sum"]?.doubleValue ?? 0
        epochCorrect = try int("epoch_correct")
        epochSeen = try int("epoch_seen")
        lastLearningRate = Float(meta["last_lr"]?.doubleValue ?? 0)
        return meta
    }
}
