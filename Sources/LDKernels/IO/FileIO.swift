#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where bytes come from: a file, stdin, a pipe, or memory. `read` returns 0 only at the end.
public protocol ByteSource: AnyObject {
    /// "stdin", the path, or a label; error messages start with it.
    var name: String { get }
    /// Reads up to `count` bytes into `buffer`; returns how many (0 at end of input). Throws `LDError`.
    func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int
}

/// Where bytes go: a file written atomically, stdout, or memory.
public protocol ByteSink: AnyObject {
    /// "stdout", the path, or a label; error messages start with it.
    var name: String { get }
    /// Writes all `count` bytes (possibly buffered). Throws `LDError`, or `BrokenPipe` on EPIPE.
    func write(_ bytes: UnsafeRawPointer, count: Int) throws
    /// Pushes buffered bytes to the operating system.
    func flush() throws
    /// Flushes and makes the output visible under its final name (rename of the temporary file).
    func commit() throws
}

extension ByteSink {
    /// Writes a buffer.
    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        if let b = buffer.baseAddress, buffer.count > 0 { try write(b, count: buffer.count) }
    }
    /// Writes a byte array.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }
    /// Writes a string's UTF-8 bytes (no newline added).
    public func write(_ string: String) throws {
        var s = string
        try s.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }
}

/// Terminal detection, overridable for tests: `LD_FAKE_TTY=1` (or `all`) makes stdin and stdout count as
/// terminals, `LD_FAKE_TTY=stdin` / `stdout` only that one.
public enum Terminal {
    /// Whether `fd` is (or is made to look like) a terminal.
    public static func isTerminal(_ fd: Int32) -> Bool {
        if let v = getenv("LD_FAKE_TTY") {
            let s = String(cString: v)
            if s == "1" || s == "all" { return true }
            if s == "stdin" && fd == 0 { return true }
            if s == "stdout" && fd == 1 { return true }
        }
        return isatty(fd) == 1
    }
}

@inline(__always) func errnoText(_ e: Int32 = errno) -> String {
    String(cString: strerror(e))
}

/// An input named on the command line: a path, or `-` for stdin. Unbuffered (the stream reader buffers);
/// reads retry on EINTR. Refuses to read a binary stream from a terminal.
public final class InputFile: ByteSource {
    public let name: String
    private let fd: Int32
    private let owned: Bool

    /// Opens `path` (`-` is stdin). With `binary`, a terminal on stdin is refused.
    public init(path: String, binary: Bool = true) throws {
        if path == "-" {
            name = "stdin"
            fd = 0
            owned = false
            if binary && Terminal.isTerminal(0) {
                throw LDError("refusing to read binary from a terminal; redirect from a file or a pipe")
            }
            return
        }
        name = path
        let f = open(path, O_RDONLY | O_CLOEXEC)
        if f < 0 { throw LDError("cannot open \(path): \(errnoText())") }
        var st = stat()
        if fstat(f, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            close(f)
            throw LDError("\(path): is a directory, expected a file")
        }
        fd = f
        owned = true
    }

    /// Wraps an open descriptor (for pipes made in-process); `owned` closes it on deinit.
    public init(fd: Int32, name: String, owned: Bool = true) {
        self.fd = fd
        self.name = name
        self.owned = owned
    }

    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        while true {
            let n = Glibc_read(fd, buffer, count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw LDError("\(name): read failed: \(errnoText())")
        }
    }

    deinit { if owned { close(fd) } }
}

@inline(__always) private func Glibc_read(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ n: Int) -> Int {
    read(fd, p, n)
}

@inline(__always) private func Glibc_open(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
    open(path, flags, mode)
}

@inline(__always) private func Glibc_write(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    write(fd, p, n)
}

/// Writes all bytes to `fd`, retrying on EINTR and short writes. EPIPE throws `BrokenPipe`.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int, name: String) throws {
    var p = bytes
    var n = count
    while n > 0 {
        let w = Glibc_write(fd, p, n)
        if w > 0 { p += w; n -= w; continue }
        if w < 0 && errno == EINTR { continue }
        if w < 0 && errno == EPIPE { throw BrokenPipe() }
        throw LDError("\(name): write failed: \(w < 0 ? errnoText() : "no progress")")
    }
}

/// An output named on the command line: a path, or `-` for stdout.
///
/// A regular file is written to `.NAME.tmp-HOST-PID` in the same folder and renamed to NAME by `commit()`; the
/// temporary file is deleted by `abort()`, on deinit without commit, and on SIGINT/SIGTERM (the process then
/// exits 130/143). Existing non-regular files (`/dev/null`, a FIFO) are written in place. With `binary`,
/// a terminal is refused. Writes are buffered (256 KiB); EPIPE throws `BrokenPipe`.
public final class OutputFile: ByteSink {
    public let name: String
    private var fd: Int32
    private let owned: Bool
    private let finalPath: String?
    private let tempPath: String?
    private let buffer: UnsafeMutableRawPointer
    private let capacity = 256 * 1024
    private var used = 0
    private var done = false
    private var prepared = false

    /// Opens `path` (`-` is stdout) for writing.
    public init(path: String, binary: Bool = true) throws {
        let (f, n, final, temp) = try OutputFile.open(path: path, binary: binary)
        fd = f
        name = n
        owned = path != "-"
        finalPath = final
        tempPath = temp
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        if let t = temp { TempFiles.register(t) }
    }

    /// Checks, before any work, that `path` can be written (creates and removes its temporary; `-` and
    /// devices are checked as they would be opened). A run whose output cannot be written fails at once.
    public static func probe(_ path: String, binary: Bool = true) throws {
        guard path != "-" else { return }
        let f = try OutputFile(path: path, binary: binary)
        f.abort()
    }

    /// Opens the descriptor for `path`: stdout, a device in place, or a new temporary file.
    private static func open(path: String, binary: Bool) throws -> (Int32, String, String?, String?) {
        if path == "-" {
            if binary && Terminal.isTerminal(1) {
                throw LDError("refusing to write binary to a terminal; redirect to a file or a pipe")
            }
            return (1, "stdout", nil, nil)
        }
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG {
            if (st.st_mode & S_IFMT) == S_IFDIR {
                throw LDError("\(path): is a directory, expected a file name")
            }
            // A device or FIFO: write in place, no rename.
            let f = Glibc_open(path, O_WRONLY | O_CLOEXEC, 0)
            if f < 0 { throw LDError("cannot open \(path): \(errnoText())") }
            if binary && Terminal.isTerminal(f) {
                close(f)
                throw LDError("refusing to write binary to a terminal; redirect to a file or a pipe")
            }
            return (f, path, nil, nil)
        }
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        if base.isEmpty { throw LDError("\(path): expected a file name") }
        StaleTemps.remove(dir: dir, base: base)
        let temp = "\(dir).\(base).tmp-\(StaleTemps.owner)"
        var f = Glibc_open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        if f < 0 && errno == EEXIST {
            // Left over by a killed process that had our pid.
            unlink(temp)
            f = Glibc_open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        }
        if f < 0 { throw LDError("cannot create \(path): \(errnoText())") }
        return (f, path, path, temp)
    }

    /// Wraps an open descriptor (for pipes made in-process); `owned` closes it on commit/abort/deinit.
    public init(fd: Int32, name: String, owned: Bool = true) {
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        self.fd = fd
        self.name = name
        self.owned = owned
        finalPath = nil
        tempPath = nil
    }

    public func write(_ bytes: UnsafeRawPointer, count: Int) throws {
        if done || prepared { throw LDError("\(name): write after commit") }
        if used + count <= capacity {
            (buffer + used).copyMemory(from: bytes, byteCount: count)
            used += count
            return
        }
        try flush()
        if count >= capacity / 2 {
            try writeAll(fd, bytes, count, name: name)
        } else {
            buffer.copyMemory(from: bytes, byteCount: count)
            used = count
        }
    }

    public func flush() throws {
        if used > 0 {
            let n = used
            used = 0
            try writeAll(fd, buffer, n, name: name)
        }
    }

    /// Flushes and closes, keeping the temporary file: `commit()` then only renames it. A run with several
    /// outputs prepares them all, then commits them, so that a failure while writing leaves none of them.
    public func prepare() throws {
        if done || prepared { return }
        do { try flush() } catch { abort(); throw error }
        if owned {
            let r = close(fd)
            fd = -1
            if r != 0 {
                let e = errnoText()
                done = true
                discardTemp()
                throw LDError("\(name): close failed: \(e)")
            }
        }
        prepared = true
    }

    /// Flushes, closes and renames the temporary file to its final name. Idempotent.
    public func commit() throws {
        if done { return }
        try prepare()
        done = true
        if let temp = tempPath, let final = finalPath {
            if rename(temp, final) != 0 {
                let e = errnoText()
                discardTemp()
                throw LDError("cannot rename \(temp) to \(final): \(e)")
            }
            TempFiles.unregister(temp)
        }
    }

    /// Drops the output: closes it and deletes the temporary file. Idempotent.
    public func abort() {
        used = 0
        if owned && fd >= 0 { close(fd); fd = -1 }
        if !done { done = true; discardTemp() }
    }

    private func discardTemp() {
        if let temp = tempPath {
            unlink(temp)
            TempFiles.unregister(temp)
        }
    }

    deinit {
        if !done { abort() }
        if owned && fd >= 0 { close(fd) }
        buffer.deallocate()
    }
}

/// Temporary files left by processes that died without cleaning up (`kill -9`, a power cut): opening an
/// output removes the temporaries of the same name whose writer was on this host and is gone (its pid no
/// longer exists). A writer on another host sharing the folder, or one still running here, is left alone.
public enum StaleTemps {
    /// `HOST-PID`: the suffix of this process's temporary files.
    public static let owner: String = {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let host = String(cString: name).filter { $0 != "/" && $0 != "-" }
        return "\(host.isEmpty ? "localhost" : host)-\(getpid())"
    }()

    /// Removes `DIR.BASE.tmp-HOST-PID` (and the older `DIR.BASE.tmp-PID`) files of dead writers on this host.
    public static func remove(dir: String, base: String) {
        for p in find(dir: dir, base: base) { unlink(p) }
    }

    /// The paths `DIR.BASE.tmp-HOST-PID` (and the older `DIR.BASE.tmp-PID`) of dead writers on this host;
    /// `dir` is empty or ends with `/`.
    public static func find(dir: String, base: String) -> [String] {
        let prefix = ".\(base).tmp-"
        guard let d = opendir(dir.isEmpty ? "." : dir) else { return [] }
        defer { closedir(d) }
        let host = owner.split(separator: "-").dropLast().joined(separator: "-")
        var stale: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            guard name.hasPrefix(prefix) else { continue }
            let suffix = name.dropFirst(prefix.count)
            let parts = suffix.split(separator: "-", omittingEmptySubsequences: false)
            guard let last = parts.last, let pid = Int32(last), pid > 0 else { continue }
            if parts.count == 2 && String(parts[0]) != host { continue }
            if parts.count > 2 { continue }
            if kill(pid, 0) == 0 || errno != ESRCH { continue }
            stale.append(dir + name)
        }
        return stale
    }
}

/// Collects written bytes in memory (tests, fuzzing, in-process pipelines).
public final class MemorySink: ByteSink {
    public let name: String
    /// Everything written so far.
    public private(set) var bytes: [UInt8] = []
    /// Whether `commit()` was called.
    public private(set) var committed = false
    public init(name: String = "memory") { self.name = name }
    public func write(_ p: UnsafeRawPointer, count: Int) throws {
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: p, count: count))
    }
    public func flush() throws {}
    public func commit() throws { committed = true }
}

/// Serves bytes from memory. `maxRead` caps each read (to exercise short reads in tests).
public final class MemorySource: ByteSource {
    public let name: String
    private let bytes: [UInt8]
    private var position = 0
    private let maxRead: Int
    public init(_ bytes: [UInt8], name: String = "memory", maxRead: Int = Int.max) {
        self.bytes = bytes
        self.name = name
        self.maxRead = max(1, maxRead)
    }
    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        let n = min(count, bytes.count - position, maxRead)
        if n <= 0 { return 0 }
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + position, byteCount: n) }
        position += n
        return n
    }
}

/// Registry of temporary output files, deleted by a SIGINT/SIGTERM handler installed on first use.
/// The handler only calls unlink(2) and _exit(2) (async-signal-safe) on C strings kept in a fixed table.
public enum TempFiles {
    private static let slots = 256
    private static let table: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
        let t = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: slots)
        t.initialize(repeating: nil, count: slots)
        return t
    }()
    private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    private static var installed = false

    /// Keeps `register` from installing the SIGINT/SIGTERM handlers, because the caller installs its own
    /// (`Interrupt`, which turns a signal into a checkpoint-and-exit). Such a handler must call `unlinkAll()`
    /// before it terminates the process.
    public static func leaveSignalsToCaller() {
        pthread_mutex_lock(lock)
        installed = true
        pthread_mutex_unlock(lock)
    }

    static func register(_ path: String) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        let t = table
        if !installed {
            installed = true
            let handler: @convention(c) (Int32) -> Void = { sig in
                TempFiles.unlinkAll()
                _exit(128 + sig)
            }
            signal(SIGINT, handler)
            signal(SIGTERM, handler)
        }
        for i in 0..<slots where t[i] == nil {
            t[i] = strdup(path)
            return
        }
    }

    static func unregister(_ path: String) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        let t = table
        for i in 0..<slots {
            if let p = t[i], String(cString: p) == path {
                t[i] = nil
                free(p)
                return
            }
        }
    }

    /// Deletes every registered temporary file (signal-handler safe).
    public static func unlinkAll() {
        let t = table
        for i in 0..<slots {
            if let p = t[i] { unlink(p) }
        }
    }

    /// Number of temporary files currently registered (for tests).
    public static var count: Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        var n = 0
        for i in 0..<slots where table[i] != nil { n += 1 }
        return n
    }
}
