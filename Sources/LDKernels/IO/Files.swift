#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small file-system helpers (stat, list, read whole or in part) on top of libc, errors naming the path.
public enum Files {
    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func isFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The size of a regular file, or an error naming it.
    public static func fileSize(_ path: String) throws -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw LDError("\(path): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw LDError("\(path): not a regular file") }
        return Int(st.st_size)
    }

    /// Throws unless `path` is an existing folder.
    public static func requireDirectory(_ path: String, what: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw LDError("\(path): \(what) folder not found (\(String(cString: strerror(errno))))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw LDError("\(path): \(what) path is not a folder") }
    }

    /// Reads exactly `count` bytes of a file from `offset` into `dest`.
    public static func read(_ path: String, into dest: UnsafeMutableRawPointer, count: Int) throws {
        guard let f = fopen(path, "rb") else {
            throw LDError("\(path): cannot open: \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var done = 0
        while done < count {
            let n = fread(dest + done, 1, min(count - done, 1 << 26), f)
            if n == 0 {
                if ferror(f) != 0 { throw LDError("\(path): read error: \(String(cString: strerror(errno)))") }
                throw LDError("\(path): truncated: expected \(count) bytes, got \(done)")
            }
            done += n
        }
    }

    /// Names in a folder (not `.` and `..`), sorted by their UTF-8 bytes.
    public static func list(_ dir: String) throws -> [String] {
        guard let d = opendir(dir) else {
            throw LDError("\(dir): cannot list folder: \(String(cString: strerror(errno)))")
        }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw -> String in
                let b = raw.bindMemory(to: UInt8.self)
                let end = b.firstIndex(of: 0) ?? b.count
                return String(decoding: b[0..<end], as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// At most the first `count` bytes of a file (fewer when it is shorter).
    public static func readPrefix(_ path: String, count: Int) throws -> [UInt8] {
        guard let f = fopen(path, "rb") else {
            throw LDError("\(path): cannot open: \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { fread($0.baseAddress! + done, 1, count - done, f) }
            if n == 0 {
                if ferror(f) != 0 { throw LDError("\(path): read error: \(String(cString: strerror(errno)))") }
                break
            }
            done += n
        }
        out.removeLast(count - done)
        return out
    }

    /// The whole contents of a file.
    public static func readFile(_ path: String) throws -> [UInt8] {
        guard let f = fopen(path, "rb") else {
            throw LDError("\(path): cannot open: \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
            if n > 0 { out.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count {
                if ferror(f) != 0 { throw LDError("\(path): read error: \(String(cString: strerror(errno)))") }
                break
            }
        }
        return out
    }

    /// Non-empty, whitespace-trimmed lines of a small text file, or nil if the file does not exist.
    public static func lines(_ path: String) throws -> [String]? {
        guard isFile(path) else { return nil }
        let bytes = try readFile(path)
        return String(decoding: bytes, as: UTF8.self)
            .split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
            .map(trimmed)
            .filter { !$0.isEmpty }
    }
}

/// Without leading and trailing spaces and tabs.
private func trimmed(_ line: Substring) -> String {
    var s = line
    while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
    return String(s)
}
