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
        discussion: Manual.train,
        version: LD.versionLine
    )

    @Option(help: "The training images: a data set name, a PNG folder or an image stream.")
    var data: String

    @Option(help: "Real validation data set (fmnist:test, a folder or an image stream).")
    var val: String?

    @Option(help: "Label stream from ld-relabel or ld-prune (`-` is stdin).")
    var labels: String?

    @Option(help: "Teacher model file for online soft labels.")
    var teacher: String?

    @Flag(help: "Train on the images' class labels with cross-entropy.")
    var hard = false

    @Option(help: "How a label pool is sampled per epoch (LPLD: with-replacement; LPQLD: without). Giving it forces pool mode.")
    var poolSampling: PoolSampling?

    @OptionGroup(title: "Student")
    var student: ModelOptions

    @OptionGroup(title: "Recipe")
    var recipe: RecipeOptions

    @OptionGroup(title: "Training")
    var training: TrainingOptions

    @Flag(help: "Keep each RandomResizedCrop inside one cell of the images' F x F grid (ld-prune --combine); --hard and --teacher only.")
    var gridAwareCrop = false

    @Option(help: "With --grid-aware-crop: the grid factor F, instead of the image set's meta.grid.")
    var grid: Int?

    @Option(help: "Evaluations before the last use this many --val images spread over the set (0: all); the last uses all.")
    var evalSample = 1000

    @Option(name: .shortAndLong, help: "Save the trained student as a model file.")
    var output: String?

    @OptionGroup var classMapping: ClassMapOption
    @OptionGroup var common: CommonOptions

    /// The label source: --labels, --teacher, --hard, or stdin when none is named and stdin is a pipe or a
    /// file (so `ld-relabel ... | ld-prune ... | ld-train --data syn/ ...` needs no `--labels -`).
    var source: LabelSource? {
        if let labels { return .stream(labels) }
        if let teacher { return .teacher(teacher) }
        if hard { return .hard }
        return isatty(STDIN_FILENO) == 0 ? .stream("-") : nil
    }

    func validate() throws {
        try checkModelOutputName(output)
        let named = [labels != nil, teacher != nil, hard].filter { $0 }.count
        guard named <= 1 else { throw ValidationError("give only one label source of --labels, --teacher and --hard") }
        guard let source else {
            throw ValidationError("give one label source: --labels FILE, --teacher MODEL or --hard (or pipe a label stream into stdin)")
        }
        guard val != nil else { throw ValidationError("--val DATASET is required (real data to evaluate the student on)") }
        let stream: Bool
        if case .stream = source { stream = true } else { stream = false }
        if poolSampling != nil && !stream { throw ValidationError("--pool-sampling applies to --labels only") }
        if stream && (recipe.drawsAugmentations || training.augment != nil) {
            throw ValidationError("--augment, --mix and --crop-scale apply to --teacher and --hard (a label stream stores its augmentations)")
        }
        if stream && gridAwareCrop {
            throw ValidationError("--grid-aware-crop applies to --teacher and --hard (a label stream replays its stored crops)")
        }
        if grid != nil && !gridAwareCrop { throw ValidationError("--grid applies with --grid-aware-crop") }
        if let g = grid, g < 1 { throw ValidationError("--grid must be >= 1, got \(g)") }
        if evalSample < 0 { throw ValidationError("--eval-sample must be >= 0, got \(evalSample)") }
        if gridAwareCrop, let a = training.augment, a != .rrc {
            throw ValidationError("--grid-aware-crop constrains RandomResizedCrop; --augment \(a.rawValue) has none to constrain")
        }
    }

    func run() throws {
        common.apply()
        var job = TrainJob(data: data, val: val!, source: source!,
                           student: student.config(channels: 0, imageSize: 0, classes: 0), studentName: student.summary)
        job.preset = recipe.recipe
        job.classMap = classMapping.path
        job.overrides = TrainJob.overrides(training, recipe)
        job.poolSampling = poolSampling
        job.gridAwareCrop = gridAwareCrop
        job.grid = grid
        job.seed = common.seed
        job.evalSample = evalSample
        job.output = output
        job.console = common.console
        let metrics = try MetricsLog(path: "-", secondary: output != nil)
        try job.run(metrics: metrics)
        try metrics.close()
    }
}

ToolMain.run(Train.self, name: "ld-train")
