import LDKernels
import ArgumentParser

/// Flags every tool shares (`@OptionGroup var common: CommonOptions`): threads, seed, data memory, quiet, verbose.
public struct CommonOptions: ParsableArguments {
    @Option(help: "Seed of every random draw (weights, shuffles, augmentations, noise, pruning).")
    public var seed: UInt64 = 0

    @Option(help: ArgumentHelp(
        "Engine threads; 0 (the default) means every core this process may use (its CPU affinity and cgroup quota: a Slurm task with --cpus-per-task=8 uses 8).",
        discussion: "Results do not depend on it except in the last bits of GEMM sums; 1 is bit-reproducible on any machine.",
        valueName: "n"))
    public var threads: Int = 0

    @Option(name: .customLong("data-memory"), help: ArgumentHelp(
        "Most memory an image folder may take decoded (e.g. 512M, 8G; default: a quarter of this process's memory).",
        discussion: "A larger folder stays on disk and is decoded batch by batch on all cores, the next batch while the model works on this one.",
        valueName: "size"))
    public var dataMemory: String?

    @Flag(name: .shortAndLong, help: "Print only errors on stderr (no progress, no summary).")
    public var quiet = false

    @Flag(name: .shortAndLong, help: "Print more detail on stderr (the model's layers, settings).")
    public var verbose = false

    public init() {}

    public func validate() throws {
        guard threads >= 0 else { throw ValidationError("--threads must be 0 (all cores) or positive, got \(threads)") }
        if let m = dataMemory, Memory.parseSize(m) == nil {
            throw ValidationError("--data-memory: expected a size such as 512M or 8G, got '\(m)'")
        }
    }

    /// Applies `--threads` to the engine.
    public func apply() {
        if threads > 0 { Engine.threads = threads } else { _ = Engine.threads }
        if let m = dataMemory, let bytes = Memory.parseSize(m) { Memory.dataBudget = bytes }
    }

    /// Where a job's lines for people go: stderr, silenced by `--quiet`, detail with `--verbose`.
    public var console: Console { Console(quiet: quiet, verbose: verbose) }
}

/// `--class-map FILE` of the tools that pair a model with data (ld-relabel, ld-train, ld-squeeze): without
/// it the data's class names are compared with the model's, the same names in another order remapped by
/// name (said on stderr) and different names refused naming the first; with it, each data class is paired
/// as the file says.
public struct ClassMapOption: ParsableArguments {
    @Option(name: .customLong("class-map"), help: ArgumentHelp(
        "Pairs the data's classes with the model's: lines 'DATA_CLASS MODEL_CLASS' (a model class name or index; e.g. ImageNet wnids to torchvision's indices: 'n01440764 0').",
        discussion: "Without it, class names are compared: another order is remapped by name, different names are an error.",
        valueName: "file"))
    public var path: String?

    public init() {}
}
