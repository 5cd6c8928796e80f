import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import ArgumentParser

/// Flags every tool shares (`@OptionGroup var common: CommonOptions`).
public struct CommonOptions: ParsableArguments {
    @Option(help: "Threads for the engine (BLAS splits and element-wise loops); 0 means all cores, at most 2 here. Results do not depend on it except in the last bits of GEMM sums; use 1 for bit-reproducible runs.")
    public var threads: Int = 0

    @Flag(name: .shortAndLong, help: "Print only errors on stderr (no progress, no summary).")
    public var quiet = false

    @Flag(name: .shortAndLong, help: "Print more detail on stderr (the model's layers, settings).")
    public var verbose = false

    public init() {}

    public func validate() throws {
        guard threads >= 0 else { throw ValidationError("--threads must be 0 (all cores) or positive, got \(threads)") }
    }

    /// Applies `--threads` to the engine.
    public func apply() {
        if threads > 0 { Engine.threads = threads } else { _ = Engine.threads }
    }

    /// Writes a line to stderr unless `--quiet`.
    public func log(_ line: String) {
        guard !quiet else { return }
        Log.line(line)
    }
}


#if canImport(Glibc)
import Glibc
#endif
