#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What memory this process may use, for checks made before a large allocation whose size comes from a
/// file or a flag: a forged header must fail with a message, not make the process ask for terabytes.
public enum Memory {
    /// The smallest of physical memory, the cgroup's limit (`memory.max`, cgroup v2; Slurm and containers
    /// set it) and the address-space limit (`ulimit -v`), in bytes.
    public static let available: Double = {
        var limit = Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE)))
        if limit <= 0 { limit = Double(1 << 40) }
        if let line = Engine.procLine("/sys/fs/cgroup/memory.max"), let v = Double(line), v > 0 { limit = min(limit, v) }
        var rl = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &rl) == 0 && rl.rlim_cur != rlim_t.max {
            limit = min(limit, Double(rl.rlim_cur))
        }
        return limit
    }()

    /// Throws unless `bytes` fit in the memory available; `what` says what needs them ("the model's
    /// weights"), the message gives both sizes.
    public static func require(_ bytes: Double, for what: String) throws {
        guard bytes.isFinite, bytes <= available else {
            throw LDError("\(what) would need \(describe(bytes)) of memory, more than the \(describe(available)) this process may use")
        }
    }

    /// The most memory a data set may take decoded (`--data-memory`): a larger image folder stays on disk
    /// and is decoded batch by batch. Default: a quarter of `available`.
    nonisolated(unsafe) public static var dataBudget: Double = available / 4

    /// Parses a size such as `512M`, `4G`, `1.5G`, `800000000` (bytes; K, M, G, T are powers of 1000,
    /// a trailing B is allowed: `4GB`).
    public static func parseSize(_ text: String) -> Double? {
        var t = text.filter { $0 != " " }.uppercased()
        if t.hasSuffix("B") { t.removeLast() }
        var scale = 1.0
        if let last = t.last, let i = "KMGT".firstIndex(of: last) {
            scale = pow(1000, Double("KMGT".distance(from: "KMGT".startIndex, to: i) + 1))
            t.removeLast()
        }
        guard let v = Double(t), v.isFinite, v >= 0 else { return nil }
        return v * scale
    }

    /// `1.5 GB`, `320 MB`, `12 KB`.
    public static func describe(_ bytes: Double) -> String {
        guard bytes.isFinite else { return "unbounded" }
        let units = ["B", "KB", "MB", "GB", "TB", "PB", "EB"]
        var v = bytes, u = 0
        while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
        if v >= 1000 { return ">1000 EB" }
        return u == 0 ? "\(Int(v)) B" : "\((v * 10).rounded() / 10) \(units[u])"
    }
}


/// Upper limits on counts given as flags or read from headers: far beyond any run ld is meant for (the
/// seeds train at most 1,000 epochs and recover with at most a few thousand iterations), low enough that
/// a typo or a forged header is refused by name instead of running for years or filling the disk.
public enum Limits {
    public static let epochs = 100_000
    public static let iterations = 1_000_000
    public static let batchSize = 1 << 16
    public static let ipc = 100_000
    /// Classes of a data set or model (ImageNet-21k has 21,841).
    public static let classes = 1 << 17

    /// Throws `LDError("--epochs 1000000000 is more than 100000, ...")` unless 1 <= value <= limit.
    public static func check(_ value: Int, _ flag: String, limit: Int) throws {
        guard value >= 1 else { throw LDError("\(flag) must be at least 1, got \(value)") }
        guard value <= limit else { throw LDError("\(flag) \(value) is more than \(limit), the most ld accepts") }
    }
}

/// Free space where a file is about to be written.
public enum Disk {
    /// Bytes available to this user on the file system holding `path`'s folder, or nil if unknown.
    public static func freeBytes(near path: String) -> Double? {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[...$0]) } ?? "."
        var st = statvfs()
        guard statvfs(dir, &st) == 0 else { return nil }
        return Double(st.f_bavail) * Double(st.f_frsize)
    }

    /// Throws when `bytes` (an estimate of what a run will write to `path`) is more than the free space
    /// there. `-` and devices are not checked.
    public static func require(_ bytes: Double, at path: String, flag: String) throws {
        guard path != "-", !Files.isDirectory(path) else { return }
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG { return }
        guard let free = freeBytes(near: path) else { return }
        if bytes > free {
            throw LDError("\(flag) \(path) would take about \(Memory.describe(bytes)), the disk there has \(Memory.describe(free)) free")
        }
    }
}
