import LDKernels
import LDRecords
import LDNetworks
import LDJobs
import ArgumentParser

/// The optimisation flags of ld-squeeze (a teacher) and ld-train (a student): one name for one knob. Each is
/// optional; ld-squeeze fills in the teacher's defaults, ld-train its recipe's.
public struct TrainingOptions: ParsableArguments {
    @Option(help: "Training epochs (ld-squeeze: 12; ld-train: the recipe's, or the label stream's).")
    public var epochs: Int?

    @Option(help: "Mini-batch size (ld-squeeze: 128; ld-train: the recipe's; a label stream fixes its own).")
    public var batchSize: Int?

    @Option(help: "Optimiser (ld-squeeze: sgd; ld-train: the recipe's).")
    public var optimizer: OptimizerKind?

    @Option(help: "Peak learning rate (ld-squeeze: 0.05; ld-train: the recipe's).")
    public var lr: Float?

    @Option(help: "SGD momentum (default 0.9; Adam and AdamW use betas 0.9, 0.999).")
    public var momentum: Float?

    @Option(help: "Weight decay (ld-squeeze: 5e-4; ld-train: the recipe's).")
    public var weightDecay: Float?

    @Option(help: "Epochs of linear warm-up from 1% of --lr (ld-squeeze: 1, 0 for one epoch; ld-train: 0).")
    public var warmupEpochs: Int?

    @Option(help: "Per-image augmentation: crop (random crop + flip; ld-squeeze's default), rrc (RandomResizedCrop + flip; the recipes') or none.")
    public var augment: AugmentKind?

    public init() {}

    /// Which of these flags were given, by name (for modes that take none of them).
    public var given: [(Bool, String)] {
        [(epochs != nil, "--epochs"), (batchSize != nil, "--batch-size"), (optimizer != nil, "--optimizer"), (lr != nil, "--lr"),
         (momentum != nil, "--momentum"), (weightDecay != nil, "--weight-decay"), (warmupEpochs != nil, "--warmup-epochs"),
         (augment != nil, "--augment")]
    }

    public func validate() throws {
        if let e = epochs, e <= 0 { throw ValidationError("--epochs must be positive, got \(e)") }
        if let b = batchSize, b <= 0 { throw ValidationError("--batch-size must be positive, got \(b)") }
        if let v = lr, !(v > 0 && v.isFinite) { throw ValidationError("--lr must be a positive number, got \(v)") }
        if let v = momentum, !(v >= 0 && v < 1) { throw ValidationError("--momentum must be in [0, 1), got \(v)") }
        if let v = weightDecay, !(v >= 0 && v.isFinite) { throw ValidationError("--weight-decay must be >= 0, got \(v)") }
        if let w = warmupEpochs, w < 0 { throw ValidationError("--warmup-epochs must be >= 0, got \(w)") }
    }
}

/// ld-train's recipe: a preset and the student-only knobs on top of `TrainingOptions`.
public struct RecipeOptions: ParsableArguments {
    @Option(help: "Recipe preset (default lpld; dc with --hard).")
    public var recipe: RecipePreset?

    @Option(help: "Which parameters decay: kernels (conv/linear weights only) or all.")
    public var decay: WeightDecayScope?

    @Option(help: "KL temperature T.")
    public var temperature: Float?

    @Flag(help: "Multiply the KL by T^2.")
    public var t2 = false

    @Option(help: "Learning-rate schedule, stepped per epoch (step: x0.1 at half).")
    public var schedule: StudentScheduleKind?

    @Option(help: "RandomResizedCrop scale range MIN,MAX (--teacher and --hard).")
    public var cropScale: ScaleRange?

    @Option(help: "Batch mix of the --teacher and --hard modes.")
    public var mix: MixKind?

    @Option(help: "Evaluate on --val every N epochs (0: only at the end; the last epoch always is).")
    public var evalEvery: Int?

    public init() {}

    public func validate() throws {
        if let t = temperature, !(t > 0 && t.isFinite) { throw ValidationError("--temperature must be positive, got \(t)") }
        if let e = evalEvery, e < 0 { throw ValidationError("--eval-every must be >= 0, got \(e)") }
    }

    /// Whether a flag given here draws augmentations (which a label stream fixes).
    public var drawsAugmentations: Bool { cropScale != nil || mix != nil }
}

extension TrainJob {
    /// The recipe knobs of `training` and `recipe` as overrides of the preset.
    public static func overrides(_ training: TrainingOptions, _ recipe: RecipeOptions) -> RecipeOverrides {
        var o = RecipeOverrides()
        o.optimizer = training.optimizer
        o.learningRate = training.lr
        o.weightDecay = training.weightDecay
        o.momentum = training.momentum
        o.epochs = training.epochs
        o.batchSize = training.batchSize
        o.warmupEpochs = training.warmupEpochs
        o.augment = training.augment
        o.decayScope = recipe.decay
        o.temperature = recipe.temperature
        o.scaleByTSquared = recipe.t2
        o.schedule = recipe.schedule
        o.cropScale = recipe.cropScale?.pair
        o.mix = recipe.mix
        o.evalEvery = recipe.evalEvery
        return o
    }
}
