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
        The student starts from random weights and learns from exactly one
        label source:

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
            per-batch mix with ld-relabel's keys, and the teacher (eval
            mode) labels exactly the batch the student sees.
        --hard  the images' own classes with cross-entropy (RethinkDC's hard
            protocol, DC's).

        Normalisation: the teacher's with --teacher; with --labels the
        stream's mean/std if its header has them, else the --val set's
        published constants; with --hard the --val set's.

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
        meta.grid = F; --grid F gives or overrides it). Each image's
        RandomResizedCrop first picks one of the F^2 cells, then draws its
        window inside that cell, the --crop-scale range relative to the
        cell's area, so a view never shows a seam between two images.

        Output: an NDJSON line per evaluation on stdout (epoch, top1, top5,
        val loss, train loss, lr, wall_s), then a summary line (best and last
        accuracy, epochs, images, label records and bytes read, the resolved
        recipe, wall time, the saved model's hash). Progress on stderr.

        """ + ModelOptions.modelsHelp + """


        Examples:
          ld-relabel --teacher t.ldm --data syn/ --epochs 300 --batch-size 50 \\
            | ld-prune --ratio 40 \\
            | ld-train --data syn/ --val fmnist:test
          ld-train --data pca.ldi --hard --grid-aware-crop --val fmnist:test
          ld-train --data syn/ --teacher t.ldm --val fmnist:test -o student.ldm
        """,
        version: LD.version
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

    @Option(name: .shortAndLong, help: "Save the trained student as a model file.")
    var output: String?

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
        if gridAwareCrop, let a = training.augment, a != .rrc {
            throw ValidationError("--grid-aware-crop constrains RandomResizedCrop; --augment \(a.rawValue) has none to constrain")
        }
    }

    func run() throws {
        common.apply()
        var job = TrainJob(data: data, val: val!, source: source!,
                           student: student.config(channels: 0, imageSize: 0, classes: 0), studentName: student.summary)
        job.preset = recipe.recipe
        job.overrides = TrainJob.overrides(training, recipe)
        job.poolSampling = poolSampling
        job.gridAwareCrop = gridAwareCrop
        job.grid = grid
        job.seed = common.seed
        job.output = output
        job.console = common.console
        let metrics = try MetricsLog(path: "-")
        try job.run(metrics: metrics)
        try metrics.close()
    }
}

ToolMain.run(Train.self, name: "ld-train")
