import LDKernels
import LDRecords
import LDData
import LDNetworks
// Student recipes of the seeds (sre2l_cda.md 7, lpld.md 6, rethinkdc.md 2, anchors.md A.1/A.5) as named presets.
// ld-train resolves a preset, then applies every knob the user gave on top of it.

/// How the learning rate moves over the epochs (stepped once per epoch, before it: epoch e runs at lr(e)).
public enum StudentScheduleKind: String, CaseIterable, Sendable {
    /// 0.5 (1 + cos(pi e / E)) x base (the soft-label recipes).
    case cosine
    /// x0.1 from epoch E/2 on (the DC hard-label protocol as the reference pipeline runs it).
    case step
    /// (1 - e/E) x base (RethinkDC without `--cos`).
    case linear
    /// base throughout.
    case constant
}

/// A student training recipe: optimiser, schedule, loss and augmentation. Presets reproduce the seeds'
/// recipes; every field can be overridden afterwards.
public struct StudentRecipe: Equatable {
    /// Preset name the recipe started from.
    public var name: String
    public var optimizer: OptimizerKind
    public var learningRate: Float
    public var weightDecay: Float
    /// SGD momentum (ignored by Adam/AdamW, whose betas are PyTorch's defaults 0.9, 0.999).
    public var momentum: Float
    /// `.flagged`: decay on conv/linear kernels only (the soft-label recipes); `.all`: every parameter (DC).
    public var decayScope: WeightDecayScope
    public var epochs: Int
    /// Batch size of the online and hard modes (a label stream fixes its own).
    public var batchSize: Int
    /// KL temperature T.
    public var temperature: Float
    /// Multiply the KL by T^2 (LPLD's Tiny-ImageNet recipe); the ImageNet recipes do not.
    public var scaleByTSquared: Bool
    public var schedule: StudentScheduleKind
    /// Linear warm-up epochs from 0.01 x lr before the schedule (which then spans the remaining epochs).
    public var warmupEpochs: Int
    public var augment: AugmentKind
    /// RandomResizedCrop scale range.
    public var cropScale: (min: Float, max: Float)
    /// Batch mixing of the online and hard modes.
    public var mix: MixKind
    /// Evaluate every this many epochs (0: only at the end); the last epoch is always evaluated.
    public var evalEvery: Int

    public static func == (a: StudentRecipe, b: StudentRecipe) -> Bool {
        a.name == b.name && a.optimizer == b.optimizer && a.learningRate == b.learningRate
            && a.weightDecay == b.weightDecay && a.momentum == b.momentum && a.decayScope == b.decayScope
            && a.epochs == b.epochs && a.batchSize == b.batchSize && a.temperature == b.temperature
            && a.scaleByTSquared == b.scaleByTSquared && a.schedule == b.schedule && a.warmupEpochs == b.warmupEpochs
            && a.augment == b.augment && a.cropScale == b.cropScale && a.mix == b.mix && a.evalEvery == b.evalEvery
    }

    /// Preset names, in `--help` order.
    public static let presetNames = ["lpld", "sre2l", "rethinkdc-soft", "rethinkdc-hard", "dc"]

    /// A named preset:
    /// - `lpld` (default): LPLD/SRe2L ImageNet student: AdamW lr 1e-3, wd 0.01 on kernels only, cosine per
    ///   epoch, 300 epochs, KL at T = 20 without T^2, batch 128, RandomResizedCrop 0.08-1 + flip, CutMix,
    ///   evaluation every 10 epochs.
    /// - `sre2l`: the same with SRe2L's batch of 1024 (train_FKD.py).
    /// - `rethinkdc-soft`: RethinkDC's soft config: as lpld, batch 128, evaluation every 50 epochs.
    /// - `rethinkdc-hard`: RethinkDC's hard config: the same optimiser and schedule, cross-entropy, no mix.
    /// - `dc`: the DC/DSA/DM hard-label protocol as the reference pipeline runs it: SGD lr 0.01, momentum
    ///   0.9, wd 5e-4 on every parameter, batch 256, x0.1 at epoch E/2, 300 epochs, RandomResizedCrop
    ///   0.5-1 + flip (standing in for DSA), no mix, evaluation at the end.
    public static func preset(_ name: String) throws -> StudentRecipe {
        var r = StudentRecipe(name: "lpld", optimizer: .adamw, learningRate: 1e-3, weightDecay: 0.01, momentum: 0.9,
                              decayScope: .flagged, epochs: 300, batchSize: 128, temperature: 20,
                              scaleByTSquared: false, schedule: .cosine, warmupEpochs: 0, augment: .rrc,
                              cropScale: (0.08, 1), mix: .cutmix, evalEvery: 10)
        switch name {
        case "lpld": break
        case "sre2l": r.name = name; r.batchSize = 1024
        case "rethinkdc-soft": r.name = name; r.evalEvery = 50
        case "rethinkdc-hard": r.name = name; r.evalEvery = 50; r.mix = .none
        case "dc":
            r.name = name
            r.optimizer = .sgd; r.learningRate = 0.01; r.weightDecay = 5e-4; r.momentum = 0.9; r.decayScope = .all
            r.batchSize = 256; r.schedule = .step; r.cropScale = (0.5, 1); r.mix = .none; r.evalEvery = 0
        default:
            throw LDError("unknown recipe '\(name)' (expected \(presetNames.joined(separator: ", ")))")
        }
        return r
    }

    /// The learning-rate schedule over epochs.
    public var lrSchedule: LRSchedule {
        let main = max(epochs - warmupEpochs, 1)
        let body: LRSchedule
        switch schedule {
        case .cosine: body = .cosine(base: learningRate, total: main)
        case .step: body = .stepDecay(base: learningRate, milestones: [main / 2], gamma: 0.1)
        case .linear: body = .linear(base: learningRate, total: main)
        case .constant: body = .constant(learningRate)
        }
        return warmupEpochs > 0 ? .warmup(steps: warmupEpochs, startFactor: 0.01, then: body) : body
    }

    /// The optimiser over `parameters`.
    public func makeOptimizer(_ parameters: [Parameter]) -> Optimizer {
        optimizer.make(parameters, learningRate: learningRate, momentum: momentum, weightDecay: weightDecay,
                       decayScope: decayScope)
    }

    /// The per-image augmentation sampler.
    public func sampleAugment() throws -> SampleAugment {
        try augment.sampler(cropPadding: 4, cropScale: (cropScale.min, cropScale.max))
    }

    /// Checks the numbers; throws a one-line reason.
    public func validate() throws {
        try Limits.check(epochs, "--epochs", limit: Limits.epochs)
        try Limits.check(batchSize, "--batch-size", limit: Limits.batchSize)
        guard learningRate > 0, learningRate.isFinite else { throw LDError("recipe: learning rate must be positive, got \(learningRate)") }
        guard weightDecay >= 0 else { throw LDError("recipe: weight decay must be >= 0, got \(weightDecay)") }
        guard momentum >= 0 && momentum < 1 else { throw LDError("recipe: momentum must be in [0, 1), got \(momentum)") }
        guard temperature > 0 else { throw LDError("recipe: temperature must be positive, got \(temperature)") }
        guard warmupEpochs >= 0 && warmupEpochs < epochs else {
            throw LDError("recipe: warm-up epochs \(warmupEpochs) must be in 0..<\(epochs)")
        }
        guard evalEvery >= 0 else { throw LDError("recipe: eval-every must be >= 0, got \(evalEvery)") }
        _ = try sampleAugment()
    }

    /// The resolved recipe as JSON (the summary line's `recipe`).
    public var json: [String: JSONValue] {
        [
            "name": .string(name), "optimizer": .string(optimizer.rawValue), "lr": .number(learningRate),
            "weight_decay": .number(weightDecay), "decay": .string(decayScope == .all ? "all" : "kernels"),
            "momentum": optimizer == .sgd ? .number(momentum) : .null,
            "epochs": .int(Int64(epochs)), "batch_size": .int(Int64(batchSize)),
            "temperature": .number(temperature), "t2": .bool(scaleByTSquared),
            "schedule": .string(schedule.rawValue), "warmup_epochs": .int(Int64(warmupEpochs)),
            "augment": .string(augment.rawValue),
            "crop_scale": .array([.number(cropScale.min), .number(cropScale.max)]),
            "mix": .string(mix.name), "eval_every": .int(Int64(evalEvery)),
        ]
    }
}
