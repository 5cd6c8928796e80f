import COpenBLAS
import Dispatch

/// Process-wide engine settings: the thread count used by OpenBLAS and by the engine's own O(N) loops.
///
/// One level of parallelism at a time: big GEMMs run on OpenBLAS threads, element-wise passes run on the
/// engine's own 2-way (or `threads`-way) split, and the two are never nested (anchors.md B.5).
public enum Engine {
    nonisolated(unsafe) private static var _threads: Int = 0

    /// Threads for the engine's GEMM splits and O(N) loops (OpenBLAS itself is kept at 1 thread). Set 1 for
    /// bit-reproducible runs (golden tests); the default is the number of cores, at most 2 (or
    /// `OPENBLAS_NUM_THREADS` if set).
    public static var threads: Int {
        get {
            if _threads == 0 { setThreads(defaultThreads()) }
            return _threads
        }
        set { setThreads(newValue) }
    }

    private static func setThreads(_ n: Int) {
        if _threads == 0 { upgradeUnrecognisedCore() }
        _threads = max(1, n)
        // OpenBLAS runs single-threaded; `sgemm` splits big GEMMs over the engine's own workers.
        openblas_set_num_threads(1)
    }

    /// The OpenBLAS kernel family in use (e.g. `SkylakeX`, `Cooperlake`). `Prescott` means the CPU was not
    /// recognised and the slow SSE3 kernels run (see `upgradeUnrecognisedCore`).
    public static var blasCore: String {
        if _threads == 0 { _ = threads }   // core selection is settled on first use
        return rawCore()
    }

    private static func rawCore() -> String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// OpenBLAS 0.3.21 (Debian 12) does not recognise some newer CPUs (e.g. Intel family 6 model 207) and
    /// falls back to its SSE3 "Prescott" kernels, 4-5x slower than the AVX-512 ones on the same core. When
    /// that happened, the user did not choose a core type, and the CPU has AVX-512F (or AVX2), this
    /// re-runs OpenBLAS's core selection with `OPENBLAS_CORETYPE=SkylakeX` (or `Haswell`) before any GEMM.
    private static func upgradeUnrecognisedCore() {
        guard rawCore().lowercased() == "prescott", getenv("OPENBLAS_CORETYPE") == nil,
              let flags = cpuFlags() else { return }
        let core = flags.contains("avx512f") && flags.contains("avx512bw") ? "SkylakeX"
                 : flags.contains("avx2") && flags.contains("fma") ? "Haswell" : nil
        guard let core else { return }
        selectKernels(core)
    }

    /// Re-runs OpenBLAS's kernel selection as `core` (e.g. `Prescott`, `Haswell`, `SkylakeX`), as if
    /// `OPENBLAS_CORETYPE=core` had been set at start-up; the variable is set too, so child processes agree.
    /// Tests pin the portable SSE3 `Prescott` kernels this way: faster kernels round differently, and which
    /// ones a machine gets depends on its CPU. Call it while no GEMM runs. Returns false when this OpenBLAS
    /// build cannot re-select (not a DYNAMIC_ARCH build).
    @discardableResult
    public static func selectKernels(_ core: String) -> Bool {
        // DYNAMIC_ARCH builds (all of Debian's) export the selection entry points; look them up at run time
        // so a build without them still links and simply keeps its kernels.
        guard let quit = dlsym(nil, "gotoblas_dynamic_quit"), let initialise = dlsym(nil, "gotoblas_dynamic_init") else { return false }
        typealias VoidFunction = @convention(c) () -> Void
        setenv("OPENBLAS_CORETYPE", core, 1)
        unsafeBitCast(quit, to: VoidFunction.self)()
        unsafeBitCast(initialise, to: VoidFunction.self)()
        return true
    }

    /// The `flags` line of /proc/cpuinfo as a set (Linux); nil elsewhere.
    private static func cpuFlags() -> Set<Substring>? {
        guard let line = procLine("/proc/cpuinfo", prefix: "flags") else { return nil }
        return Set(line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }))
    }

    /// The first line of a small system file starting with `prefix`, or nil.
    static func procLine(_ path: String, prefix: String = "") -> String? {
        ((try? Files.lines(path)) ?? nil)?.first { $0.hasPrefix(prefix) }
    }

    private static func defaultThreads() -> Int {
        if let s = getenvString("OPENBLAS_NUM_THREADS"), let n = Int(s), n > 0 { return n }
        return availableCores
    }

    /// The cores this process may use: the CPUs of its affinity mask (what `taskset`, cpusets and Slurm's
    /// `--cpus-per-task` with task affinity leave it), capped by the cgroup's CPU quota (`cpu.max`: Slurm
    /// with cgroups, containers), at least 1. `--threads 0`, the default, uses this many.
    public static let availableCores: Int = {
        var cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #if os(Linux)
        if let inMask = affinityCount(), inMask > 0 { cores = inMask }
        if let quota = cgroupQuota() { cores = min(cores, quota) }
        #endif
        return max(1, cores)
    }()

    /// The number of CPUs in this process's affinity mask (`Cpus_allowed` of /proc/self/status), or nil.
    static func affinityCount() -> Int? {
        guard let line = procLine("/proc/self/status", prefix: "Cpus_allowed:") else { return nil }
        return line.dropFirst("Cpus_allowed:".count).reduce(0) { $0 + ($1.hexDigitValue?.nonzeroBitCount ?? 0) }
    }

    /// ceil(quota / period) of cgroup v2's `cpu.max` ("max 100000" when unlimited), or nil.
    static func cgroupQuota() -> Int? {
        guard let parts = procLine("/sys/fs/cgroup/cpu.max")?.split(separator: " "), parts.count == 2,
              let quota = Double(parts[0]), let period = Double(parts[1]), period > 0 else { return nil }
        return max(1, Int((quota / period).rounded(.up)))
    }

    private static func getenvString(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }

    /// Runs `body(chunk)` for chunks 0..<n of a range split into at most `threads` contiguous parts.
    /// `body` gets (begin, end) of its part. Runs inline when the work is small (`count < grain`) or one
    /// thread is configured. Each element belongs to exactly one part, and the split depends only on
    /// `count` and `threads`, so results never depend on scheduling.
    @inline(__always)
    public static func parallelRange(_ count: Int, grain: Int = 1, _ body: (Int, Int) -> Void) {
        let t = threads
        if t <= 1 || count < max(2, grain) {
            body(0, count)
            return
        }
        let parts = min(t, count)
        WorkerPool.shared.run(parts) { p in
            let b = count * p / parts, e = count * (p + 1) / parts
            if b < e { body(b, e) }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
