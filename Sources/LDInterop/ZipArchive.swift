import CZlib
import LDKernels

/// A zip archive held in memory, read with every offset and size checked against the bytes there are: what a
/// `torch.save` checkpoint is. Entries stored (method 0, what torch.save writes) or deflated (method 8,
/// through zlib) are read, each checked against its CRC-32; ZIP64 sizes and offsets are understood;
/// encrypted entries, other methods and multi-disk archives are refused.
///
/// ld first used ZIPFoundation here; a mutation test of the reader (InteropTests) crashed it twice within
/// minutes on damaged archives (a trap on an offset past the end of an in-memory archive, and one on a ZIP64
/// offset above Int64.max), so a hostile file could end a tool with a crash instead of a one-line error.
/// The part of the format a checkpoint needs is small enough to read here with its bounds checked.
public struct ZipArchive {
    public struct Entry: Sendable {
        public var path: String
        public var method: Int
        public var flags: Int
        public var crc: UInt32
        public var compressedSize: Int
        public var size: Int
        public var localHeader: Int
    }

    let bytes: [UInt8]
    let name: String
    /// The entries in central-directory order.
    public private(set) var entries: [Entry] = []

    /// The most bytes one entry may unpack to.
    static let maxEntry = 16 << 30

    func fail(_ message: String) -> LDError { LDError("\(name): \(message)") }

    func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
    func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
    func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }

    /// `start + count` when that range lies inside the bytes, else an error naming `what`.
    func range(_ start: Int, _ count: Int, _ what: String) throws -> Range<Int> {
        guard start >= 0, count >= 0, start <= bytes.count, count <= bytes.count - start else {
            throw fail("zip \(what) lies outside the \(bytes.count)-byte file (truncated or damaged)")
        }
        return start..<(start + count)
    }

    /// A 64-bit size or offset as an Int no larger than the file (or, for a size, `maxEntry`).
    func small(_ v: UInt64, limit: Int, _ what: String) throws -> Int {
        guard v <= UInt64(limit) else { throw fail("zip \(what) \(v) is out of range (truncated or damaged)") }
        return Int(v)
    }

    /// Reads the central directory of the archive in `bytes`; `name` starts errors.
    public init(_ bytes: [UInt8], name: String) throws {
        self.bytes = bytes
        self.name = name
        // End of central directory: 22 bytes plus a comment of up to 65535, at the end of the file.
        var eocd = -1
        if bytes.count >= 22 {
            var i = bytes.count - 22
            let lowest = max(0, bytes.count - 22 - 65535)
            while i >= lowest {
                if bytes[i] == 0x50 && bytes[i + 1] == 0x4B && bytes[i + 2] == 5 && bytes[i + 3] == 6 { eocd = i; break }
                i -= 1
            }
        }
        guard eocd >= 0 else { throw fail("not a readable zip archive (truncated or damaged: no end of central directory)") }
        guard u16(eocd + 4) == 0, u16(eocd + 6) == 0 else { throw fail("a multi-disk zip archive; ld reads single files") }
        var count = u16(eocd + 10), cdSize = u32(eocd + 12), cdOffset = u32(eocd + 16)
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // ZIP64: a locator just before the end record points at the ZIP64 end record.
            let locator = try range(eocd - 20, 20, "ZIP64 locator")
            guard u32(locator.lowerBound) == 0x0706_4B50 else { throw fail("zip ZIP64 locator missing (damaged)") }
            let at = try small(u64(locator.lowerBound + 8), limit: bytes.count, "ZIP64 end record offset")
            let record = try range(at, 56, "ZIP64 end record")
            guard u32(record.lowerBound) == 0x0606_4B50 else { throw fail("zip ZIP64 end record missing (damaged)") }
            count = try small(u64(at + 32), limit: bytes.count / 46, "entry count")
            cdSize = try small(u64(at + 40), limit: bytes.count, "central directory size")
            cdOffset = try small(u64(at + 48), limit: bytes.count, "central directory offset")
        }
        let cd = try range(cdOffset, cdSize, "central directory")
        var at = cd.lowerBound
        for _ in 0..<count {
            let fixed = try range(at, 46, "central directory entry")
            guard fixed.upperBound <= cd.upperBound, u32(at) == 0x0201_4B50 else {
                throw fail("zip central directory entry \(entries.count) is damaged")
            }
            let nameLength = u16(at + 28), extraLength = u16(at + 30), commentLength = u16(at + 32)
            let nameRange = try range(at + 46, nameLength, "entry name")
            let extra = try range(nameRange.upperBound, extraLength, "entry extra field")
            let next = extra.upperBound + commentLength
            guard next <= cd.upperBound else { throw fail("zip central directory entry \(entries.count) runs past the directory") }
            var compressed = UInt64(u32(at + 20)), size = UInt64(u32(at + 24)), local = UInt64(u32(at + 42))
            // ZIP64 extra field (id 1): the 8-byte values of the fields that are 0xFFFFFFFF, in this order.
            var e = extra.lowerBound
            while e + 4 <= extra.upperBound {
                let id = u16(e), length = u16(e + 2)
                let body = try range(e + 4, length, "extra field")
                guard body.upperBound <= extra.upperBound else { throw fail("zip extra field runs past its entry") }
                if id == 1 {
                    var p = body.lowerBound
                    func take() throws -> UInt64 {
                        guard p + 8 <= body.upperBound else { throw fail("zip ZIP64 extra field too short") }
                        defer { p += 8 }
                        return u64(p)
                    }
                    if size == 0xFFFF_FFFF { size = try take() }
                    if compressed == 0xFFFF_FFFF { compressed = try take() }
                    if local == 0xFFFF_FFFF { local = try take() }
                }
                e = body.upperBound
            }
            guard let path = String(validating: bytes[nameRange], as: UTF8.self) else { throw fail("zip entry name is not UTF-8") }
            entries.append(Entry(path: path, method: u16(at + 10), flags: u16(at + 8), crc: UInt32(u32(at + 16)),
                                 compressedSize: try small(compressed, limit: bytes.count, "compressed size of \(path)"),
                                 size: try small(size, limit: ZipArchive.maxEntry, "size of \(path)"),
                                 localHeader: try small(local, limit: bytes.count, "offset of \(path)")))
            at = next
        }
    }

    /// The entry called `path`.
    public subscript(path: String) -> Entry? { entries.first { $0.path == path } }

    /// The contents of `entry`, checked against its size and CRC-32.
    public func read(_ entry: Entry) throws -> [UInt8] {
        let header = try range(entry.localHeader, 30, "local header of \(entry.path)")
        guard u32(header.lowerBound) == 0x0403_4B50 else { throw fail("zip local header of \(entry.path) is damaged") }
        let start = header.upperBound + u16(header.lowerBound + 26) + u16(header.lowerBound + 28)
        let data = try range(start, entry.compressedSize, "data of \(entry.path)")
        guard entry.flags & 1 == 0 else { throw fail("zip entry \(entry.path) is encrypted") }
        var out: [UInt8]
        switch entry.method {
        case 0:
            guard entry.compressedSize == entry.size else { throw fail("zip entry \(entry.path) is stored with two sizes") }
            out = Array(bytes[data])
        case 8:
            out = try inflate(data, size: entry.size, path: entry.path)
        default:
            throw fail("zip entry \(entry.path) uses compression method \(entry.method); ld reads stored and deflated entries")
        }
        let crc = out.withUnsafeBufferPointer { p -> UInt32 in
            var c: uLong = crc32(0, nil, 0)
            var done = 0
            while done < p.count {   // zlib takes 32-bit lengths
                let n = min(p.count - done, 1 << 30)
                c = crc32(c, p.baseAddress! + done, uInt(n))
                done += n
            }
            return UInt32(truncatingIfNeeded: c)
        }
        guard crc == entry.crc else { throw fail("zip entry \(entry.path) fails its CRC-32 check (damaged)") }
        return out
    }

    /// Raw deflate data of `range` unpacked to exactly `size` bytes. The output grows with what zlib produces,
    /// so a damaged size field costs no more memory than the data really holds; deflate cannot expand more
    /// than 1032-fold, so a larger claimed size is refused at once.
    func inflate(_ range: Range<Int>, size: Int, path: String) throws -> [UInt8] {
        guard range.count <= Int(UInt32.max), size <= Int(UInt32.max), size <= range.count * 1032 + 64 else {
            throw fail("zip entry \(path) claims \(size) bytes from \(range.count) deflated ones (damaged)")
        }
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw fail("zlib cannot start")
        }
        defer { inflateEnd(&stream) }
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: min(size + 1, 1 << 20))
        var status = Z_OK
        try bytes.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + range.lowerBound)
            stream.avail_in = uInt(range.count)
            while status == Z_OK {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { c in
                    stream.next_out = c.baseAddress
                    stream.avail_out = uInt(c.count)
                    status = zlibInflate(&stream, Z_NO_FLUSH)
                    return c.count - Int(stream.avail_out)
                }
                out += chunk[..<produced]
                guard out.count <= size else { throw fail("zip entry \(path) inflates past its \(size) bytes (damaged)") }
                if status == Z_OK && produced == 0 && stream.avail_in == 0 { break }
            }
        }
        guard status == Z_STREAM_END, out.count == size else {
            throw fail("zip entry \(path) does not inflate to its \(size) bytes (damaged)")
        }
        return out
    }
}

/// zlib's `inflate` (the name is taken by `ZipArchive.inflate` inside the type).
private func zlibInflate(_ stream: UnsafeMutablePointer<z_stream>, _ flush: Int32) -> Int32 { inflate(stream, flush) }
