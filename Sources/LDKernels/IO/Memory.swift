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
        if let f = fopen("/sys/fs/cgroup/memory.max", "r") {
            var buf = [CChar](repeating: 0, count: 64)
            if fgets(&buf, 63, f) != nil, let v = Double(String(cString: buf).trimmingWhitespace()), v > 0 {
                limit = min(limit, v)
            }
            fclose(f)
        }
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

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\n" || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\n" || c == "\t" { s.removeLast() }
        return String(s)
    }
}
