#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The files a run reads and writes, checked together before any work starts.
///
/// `check()` refuses, with one line naming the flags:
/// - an output that is also an input: the same file or folder, whether named by the same path, another
///   path, a hard link or a symbolic link (compared by device and inode);
/// - two outputs with the same name (a later one would replace the earlier);
/// - an output that cannot be written (its temporary file is created and removed, as `OutputFile.probe`).
///
/// So a run that would destroy its input, or could only fail at its end, fails before it starts and
/// writes nothing. `-` (stdin/stdout) is not a file and is skipped.
public struct RunFiles {
    public struct Entry {
        /// The flag as the user wrote it (`--teacher`, `-o`).
        public var flag: String
        public var path: String
        /// A folder written file by file (`--png DIR`): checked for identity, not probed as a file.
        public var folder: Bool
    }

    public private(set) var inputs: [Entry] = []
    public private(set) var outputs: [Entry] = []

    public init() {}

    /// Adds an input (nil and `-` are ignored; a data set spec such as `fmnist:train` that names no existing
    /// path is ignored too).
    public mutating func input(_ flag: String, _ path: String?) {
        guard let path, path != "-" else { return }
        inputs.append(Entry(flag: flag, path: path, folder: false))
    }

    /// Adds an output file (nil and `-` are ignored).
    public mutating func output(_ flag: String, _ path: String?) {
        guard let path, path != "-" else { return }
        outputs.append(Entry(flag: flag, path: path, folder: false))
    }

    /// Adds an output folder (nil is ignored).
    public mutating func outputFolder(_ flag: String, _ path: String?) {
        guard let path else { return }
        outputs.append(Entry(flag: flag, path: path, folder: true))
    }

    /// Device and inode of an existing path (following links), or nil.
    static func identity(_ path: String) -> (UInt64, UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// A path made absolute and free of `.`/`..`/duplicate slashes (lexically; links are compared by inode).
    static func normalized(_ path: String) -> String {
        var full = path
        if !path.hasPrefix("/") {
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            if getcwd(&buf, buf.count) != nil { full = String(cString: buf) + "/" + path }
        }
        var parts: [Substring] = []
        for p in full.split(separator: "/") {
            if p == "." { continue }
            if p == ".." { _ = parts.popLast(); continue }
            parts.append(p)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Runs the checks; throws a one-line `LDError` for the first problem. Standard output counts as an
    /// output when it is a regular file (`>> input` would append to what is being read).
    public func check() throws {
        var st = stat()
        if fstat(1, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG {
            let out = (UInt64(st.st_dev), UInt64(st.st_ino))
            for input in inputs where RunFiles.identity(input.path).map({ $0 == out }) == true {
                throw LDError("standard output is the input \(input.flag) \(input.path): writing it would destroy the input; redirect elsewhere")
            }
        }
        for (i, o) in outputs.enumerated() {
            let oid = RunFiles.identity(o.path)
            for input in inputs {
                let same: Bool
                if let oid, let iid = RunFiles.identity(input.path) { same = oid == iid }
                else { same = RunFiles.normalized(o.path) == RunFiles.normalized(input.path) && RunFiles.identity(input.path) != nil }
                if same {
                    let how = o.path == input.path ? "" : " (\(o.path) and \(input.path) are one file)"
                    throw LDError("\(o.flag) \(o.path) is also the input \(input.flag)\(how): writing it would destroy the input; choose another output")
                }
            }
            for other in outputs[..<i] {
                let same: Bool
                if let oid, let pid = RunFiles.identity(other.path) { same = oid == pid }
                else { same = RunFiles.normalized(o.path) == RunFiles.normalized(other.path) }
                if same {
                    throw LDError("\(o.flag) \(o.path) and \(other.flag) \(other.path) name the same output")
                }
            }
        }
        for o in outputs where !o.folder {
            do { try OutputFile.probe(o.path) } catch let e as LDError { throw LDError("\(o.flag): \(e.message)") }
        }
    }
}
