import LDKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CZstd

/// One data record read from a stream (the header and end records are handled by the reader).
public struct Record {
    /// The frame kind.
    public let kind: RecordKind
    /// The payload, CRC-checked.
    public let payload: [UInt8]
    /// Source, stream index and record index, for messages.
    public let context: RecordContext
}

/// What `StreamReader.nextEvent()` returns: a stream starts, a record, a stream ends.
public enum StreamEvent {
    /// A stream begins (its index is `StreamReader.streamIndex`).
    case header(StreamHeader)
    /// A data record.
    case record(Record)
    /// The end record of the current stream: its record count (header included) and chain hash.
    case end(count: UInt64, hash: UInt64)
}

/// Reads record streams, back to back, from a file, stdin or memory, transparently decoding zstd.
///
/// ```swift
/// let r = try StreamReader(path: "-")          // reads the first header
/// try r.expect(kind: .labels)                  // checked for every concatenated stream
/// while let rec = try r.next() {
///     let batch = try LabelBatchRecord(rec, header: r.header)
/// }
/// ```
/// Every failure is an `LDError` naming the input, the stream and the record: bad magic, a newer format
/// version, a CRC mismatch, a length over the limit, truncation (also exactly on a record boundary:
/// "ended after N records without an end record"), a stream of the wrong kind.
public final class StreamReader {
    private let input: StreamInput
    /// The input's name ("stdin" or the path).
    public var name: String { input.name }
    /// The header of the current stream.
    public private(set) var header: StreamHeader
    /// The header's JSON bytes, as stored.
    public private(set) var headerJSON: [UInt8] = []
    /// Index of the current stream among the concatenated ones (0-based).
    public private(set) var streamIndex = 0
    /// The chain hash of the last completed stream (its end record), as used for identities.
    public private(set) var lastEndHash: UInt64?
    /// Called when a stream after the first begins (check that its header agrees with the first).
    public var onNewStream: ((StreamReader) throws -> Void)?

    private enum State { case inStream, between, done }
    private var state = State.inStream
    private var pendingHeader = true
    private var count: UInt64 = 0
    private var chain: UInt64 = 0
    private var expected: StreamKind?

    /// Opens `path` (`-` is stdin; a terminal is refused) and reads the first stream's header.
    public convenience init(path: String) throws {
        try self.init(source: try InputFile(path: path, binary: true))
    }

    /// Reads from any byte source; reads the first stream's header.
    public init(source: ByteSource) throws {
        input = StreamInput(source)
        header = StreamHeader(kind: StreamKind(""), producer: "", version: "")
        if !(try beginStream(index: 0)) {
            throw LDError("\(source.name): empty input, expected an ld record stream")
        }
    }

    /// Requires every stream (the current one and those after it) to be of `kind`.
    public func expect(kind: StreamKind) throws {
        expected = kind
        try checkKind()
    }

    /// Requires every later concatenated stream to match the first one's header (`StreamHeader.mismatch`):
    /// "f.ldl: stream 2 does not match stream 0: classes 10 vs 100".
    public func requireMatchingHeaders() {
        let first = header
        onNewStream = { r in
            if let why = first.mismatch(with: r.header) {
                throw LDError("\(r.name): stream \(r.streamIndex) does not match stream 0: \(why)")
            }
        }
    }

    private func checkKind() throws {
        if let k = expected, header.kind != k {
            throw LDError("\(name): stream \(streamIndex) is a '\(header.kind)' stream, expected '\(k)'")
        }
    }

    /// The next data record across all concatenated streams, or nil at the end of the input.
    public func next() throws -> Record? {
        while let e = try nextEvent() {
            if case .record(let r) = e { return r }
        }
        return nil
    }

    /// The next event: each stream's header (the first one included), its records, its end.
    public func nextEvent() throws -> StreamEvent? {
        if pendingHeader {
            pendingHeader = false
            return .header(header)
        }
        switch state {
        case .done:
            return nil
        case .between:
            if try beginStream(index: streamIndex + 1) {
                state = .inStream
                try onNewStream?(self)
                return .header(header)
            }
            state = .done
            return nil
        case .inStream:
            let index = Int(count)
            let (kind, payload) = try readFrame()
            if kind == .end {
                let stored = payload.withUnsafeBytes { ($0.loadUnaligned(as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
                let n = UInt64(littleEndian: stored.0), h = UInt64(littleEndian: stored.1)
                if n != count {
                    throw LDError("\(name): stream \(streamIndex): end record counts \(n) records, the stream has \(count)")
                }
                if h != chain && verifyChecksums {
                    throw LDError("\(name): stream \(streamIndex): end record hash mismatch (records reordered, dropped or altered)")
                }
                state = .between
                lastEndHash = h
                return .end(count: n, hash: h)
            }
            if kind == .header {
                throw LDError("\(name): stream \(streamIndex), record \(index): a second header inside one stream")
            }
            return .record(Record(kind: kind, payload: payload,
                                  context: RecordContext(source: name, stream: streamIndex, record: index, kind: kind)))
        }
    }

    private func hexPrefix(_ p: UnsafeRawBufferPointer, _ n: Int) -> String {
        p.prefix(n).map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: " ")
    }

    /// Reads a stream preamble and its header; false at a clean end of input.
    private func beginStream(index: Int) throws -> Bool {
        try input.streamStart()
        var pre = (UInt64(0), UInt32(0))
        let got = try withUnsafeMutableBytes(of: &pre) { try input.readExact($0.baseAddress!, 12) }
        if got == 0 { return false }
        try withUnsafeBytes(of: &pre) { p in
            let magicOK = got >= 8 && zip(p.prefix(8), StreamFormat.magic).allSatisfy { $0 == $1 }
            if !magicOK {
                let seen = hexPrefix(p, min(got, 8))
                if index == 0 {
                    throw LDError("\(name): not an ld record stream (starts with \(seen), expected 89 4c 44 53 0d 0a 1a 0a)")
                }
                throw LDError("\(name): unexpected bytes after stream \(index - 1) (\(seen)): expected another stream or the end of input")
            }
            if got < 12 {
                throw LDError("\(name): stream \(index): truncated after the magic")
            }
            let v = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
            if v > StreamFormat.version {
                throw LDError("\(name): stream \(index): format version \(v) is newer than this build reads (\(StreamFormat.version)); upgrade ld")
            }
            if v != StreamFormat.version {
                throw LDError("\(name): stream \(index): unsupported format version \(v)")
            }
            let reserved = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 10, as: UInt16.self))
            if reserved != 0 {
                throw LDError("\(name): stream \(index): reserved preamble field is \(reserved), expected 0")
            }
        }
        streamIndex = index
        count = 0
        chain = 0
        let (kind, payload) = try readFrame()
        if kind != .header {
            throw LDError("\(name): stream \(index): first record is '\(kind)', expected the header")
        }
        header = try payload.withUnsafeBytes { try StreamHeader.decode($0, context: "\(name): stream \(index)") }
        headerJSON = payload
        try checkKind()
        return true
    }

    /// Reads one frame and its payload, checking both CRCs and the length limit; updates count and chain.
    private func readFrame() throws -> (RecordKind, [UInt8]) {
        let index = Int(count)
        let s = streamIndex
        var fh = (UInt64(0), UInt64(0))
        let got = try withUnsafeMutableBytes(of: &fh) { try input.readExact($0.baseAddress!, 16) }
        if got == 0 {
            throw LDError("\(name): stream \(s) ended after \(count) records without an end record (truncated)")
        }
        if got < 16 {
            throw LDError("\(name): stream \(s): truncated inside the frame of record \(index) (\(got) of 16 bytes)")
        }
        let (kind, length, stored) = withUnsafeBytes(of: &fh) { p in
            (RecordKind(rawValue: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))),
             UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt64.self)),
             UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
        }
        let computed = withUnsafeBytes(of: &fh) { CRC32C.update(0, $0.baseAddress!, 12) }
        if computed != stored && verifyChecksums {
            throw LDError("\(name): stream \(s), record \(index): frame checksum mismatch (corrupt data)")
        }
        if kind == .end && length != 16 {
            throw LDError("\(name): stream \(s), record \(index): end record of \(length) bytes, expected 16")
        }
        let limit = index == 0 ? StreamFormat.maxHeader : StreamFormat.maxPayload
        if length > limit {
            throw LDError("\(name): stream \(s), record \(index) (\(kind)): length \(length) exceeds the limit of \(limit) bytes")
        }
        let n = Int(length)
        var payload: [UInt8] = []
        payload.reserveCapacity(min(n, 1 << 16))
        var crc: UInt32 = 0
        while payload.count < n {
            let (p, avail) = try input.available()
            if avail == 0 {
                throw LDError("\(name): stream \(s): truncated inside record \(index) (\(kind)): \(payload.count) of \(n) payload bytes")
            }
            let take = min(avail, n - payload.count)
            if payload.capacity < payload.count + take {
                payload.reserveCapacity(min(n, max(2 * payload.capacity, payload.count + take)))
            }
            payload.append(contentsOf: UnsafeRawBufferPointer(start: p, count: take))
            crc = CRC32C.update(crc, p, take)
            input.consume(take)
        }
        var tail: UInt32 = 0
        let t = try withUnsafeMutableBytes(of: &tail) { try input.readExact($0.baseAddress!, 4) }
        if t < 4 {
            throw LDError("\(name): stream \(s): truncated inside record \(index) (\(kind)): checksum missing")
        }
        let storedPayload = UInt32(littleEndian: tail)
        if storedPayload != crc && verifyChecksums {
            throw LDError("\(name): stream \(s), record \(index) (\(kind)): payload checksum mismatch (stored \(hex32(storedPayload)), computed \(hex32(crc)))")
        }
        if kind != .end {
            count += 1
            chain = StreamWriter.chain(chain, kind: kind, crc: crc, length: length)
        }
        return (kind, payload)
    }
}

#if LD_FUZZING
/// Fuzz builds (`-D LD_FUZZING`, fuzz/run.sh) accept bad checksums so mutations reach the payload decoders;
/// the checksum paths themselves are covered by the unit tests (every flipped byte is caught).
private let verifyChecksums = false
#else
private let verifyChecksums = true
#endif

private func hex32(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}

/// The logical bytes of the input: raw bytes, or, from a stream start that begins with the zstd magic, the
/// decoded contents of the run of consecutive zstd frames.
final class StreamInput {
    let source: ByteSource
    var name: String { source.name }
    private let rawCapacity = 1 << 20
    private let raw: UnsafeMutableRawPointer
    private var rs = 0, re = 0
    private var dctx: OpaquePointer?
    private var inZstd = false
    private var frameDone = false
    private var outFull = false
    private let decCapacity: Int
    private var dec: UnsafeMutableRawPointer?
    private var ds = 0, de = 0

    init(_ source: ByteSource) {
        self.source = source
        raw = UnsafeMutableRawPointer.allocate(byteCount: rawCapacity, alignment: 16)
        decCapacity = ZSTD_DStreamOutSize()
    }

    deinit {
        raw.deallocate()
        dec?.deallocate()
        if let d = dctx { ZSTD_freeDCtx(d) }
    }

    /// Ensures at least `n` raw bytes are buffered (n ≤ capacity); false if the input ends first.
    private func fillRaw(_ n: Int) throws -> Bool {
        if re - rs >= n { return true }
        if rs > 0 {
            if re > rs { memmove(raw, raw + rs, re - rs) }
            re -= rs
            rs = 0
        }
        while re < n {
            let k = try source.read(into: raw + re, count: rawCapacity - re)
            if k == 0 { return false }
            re += k
        }
        return true
    }

    private func isFrameMagic(_ p: UnsafeRawPointer) -> Bool {
        let m = UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))
        return m == 0xFD2F_B528 || (m & 0xFFFF_FFF0) == 0x184D_2A50
    }

    /// Called where a stream may start: enters zstd decoding if a zstd frame begins here.
    func streamStart() throws {
        if inZstd { return }
        _ = try fillRaw(4)
        if re - rs >= 4 && isFrameMagic(raw + rs) {
            if dctx == nil {
                guard let d = ZSTD_createDCtx() else { throw LDError("\(name): zstd: cannot create a decompression context") }
                dctx = d
                dec = UnsafeMutableRawPointer.allocate(byteCount: decCapacity, alignment: 16)
            }
            ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only)
            inZstd = true
            frameDone = false
            outFull = false
            ds = 0; de = 0
        }
    }

    /// Contiguous logical bytes available now; a count of 0 means the end of the input.
    func available() throws -> (UnsafeRawPointer, Int) {
        var idle = 0
        while true {
            if inZstd {
                let d = dec!
                if ds < de { return (UnsafeRawPointer(d + ds), de - ds) }
                if frameDone {
                    _ = try fillRaw(4)
                    if re - rs >= 4 && isFrameMagic(raw + rs) {
                        frameDone = false
                    } else {
                        inZstd = false
                        continue
                    }
                }
                if rs == re && !outFull {
                    if !(try fillRaw(1)) {
                        throw LDError("\(name): truncated zstd data (the input ended inside a compressed frame)")
                    }
                }
                var inb = ZSTD_inBuffer(src: raw + rs, size: re - rs, pos: 0)
                var outb = ZSTD_outBuffer(dst: d, size: decCapacity, pos: 0)
                let r = ZSTD_decompressStream(dctx, &outb, &inb)
                if ZSTD_isError(r) != 0 {
                    throw LDError("\(name): zstd: \(String(cString: ZSTD_getErrorName(r)))")
                }
                rs += inb.pos
                ds = 0
                de = outb.pos
                outFull = outb.pos == decCapacity
                if r == 0 {
                    frameDone = true
                    outFull = false
                }
                if inb.pos == 0 && outb.pos == 0 && r != 0 {
                    idle += 1
                    if idle > 4 && rs < re { throw LDError("\(name): zstd: decoder made no progress") }
                } else {
                    idle = 0
                }
            } else {
                if rs < re { return (UnsafeRawPointer(raw + rs), re - rs) }
                if !(try fillRaw(1)) { return (UnsafeRawPointer(raw), 0) }
            }
        }
    }

    /// Marks `n` of the bytes returned by `available()` as read.
    func consume(_ n: Int) {
        if inZstd { ds += n } else { rs += n }
    }

    /// Reads exactly `n` logical bytes unless the input ends; returns how many were read.
    func readExact(_ p: UnsafeMutableRawPointer, _ n: Int) throws -> Int {
        var got = 0
        while got < n {
            let (src, avail) = try available()
            if avail == 0 { break }
            let take = min(avail, n - got)
            (p + got).copyMemory(from: src, byteCount: take)
            consume(take)
            got += take
        }
        return got
    }
}
