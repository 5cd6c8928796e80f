import LDKernels
import CZstd

/// Whether a stream is compressed.
public enum StreamCompression: Equatable {
    /// Plain records.
    case none
    /// The whole stream as one zstd frame (content checksum on), flushed every ~1 MiB of input.
    case zstd(level: Int32 = 3)
}

/// Writes one record stream: magic, header, records, end record; optionally zstd-compressed.
///
/// ```swift
/// let w = try StreamWriter(path: "-", header: h, compression: .zstd())
/// for r in records { try w.write(r) }
/// try w.finish()          // end record, flush, and rename the temporary file into place
/// ```
/// A writer dropped without `finish()` (an error was thrown) deletes its temporary output file.
public final class StreamWriter {
    /// The header written first.
    public let header: StreamHeader
    /// Where the bytes go.
    public let sink: ByteSink
    /// Records written so far, the header included.
    public private(set) var count = 0
    /// The end-record chain hash so far.
    public private(set) var chain: UInt64 = 0
    private var finished = false
    private var zstd: ZstdEncoder?

    /// Starts a stream on `sink` and writes the magic and the header.
    public init(sink: ByteSink, header: StreamHeader, compression: StreamCompression = .none) throws {
        self.header = header
        self.sink = sink
        if case .zstd(let level) = compression {
            zstd = try ZstdEncoder(sink: sink, level: level)
        }
        var prefix = StreamFormat.magic
        prefix += [UInt8(StreamFormat.version & 0xFF), UInt8(StreamFormat.version >> 8), 0, 0]
        try put(prefix)
        try write(kind: .header, payload: try header.encoded())
    }

    /// Starts a stream on a path (`-` is stdout; a terminal is refused; a file is written atomically).
    public convenience init(path: String, header: StreamHeader, compression: StreamCompression = .none) throws {
        try self.init(sink: try OutputFile(path: path, binary: true), header: header, compression: compression)
    }

    private func put(_ p: UnsafeRawPointer, _ n: Int) throws {
        if n == 0 { return }
        if let z = zstd { try z.write(p, n) } else { try sink.write(p, count: n) }
    }
    private func put(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try put($0.baseAddress!, $0.count) }
    }

    /// Writes one record with a raw payload.
    public func write(kind: RecordKind, payload: UnsafeRawBufferPointer) throws {
        if finished { throw LDError("\(sink.name): record written after the end of the stream") }
        let length = UInt64(payload.count)
        if length > StreamFormat.maxPayload {
            throw LDError("\(sink.name): record \(count) (\(kind)) is \(length) bytes, more than the 1 GiB limit")
        }
        var frame = (UInt32(0), UInt64(0), UInt32(0))
        let payloadCRC = CRC32C.checksum(payload)
        try withUnsafeMutableBytes(of: &frame) { f in
            f.storeBytes(of: kind.rawValue.littleEndian, toByteOffset: 0, as: UInt32.self)
            f.storeBytes(of: length.littleEndian, toByteOffset: 4, as: UInt64.self)
            let crc = CRC32C.update(0, f.baseAddress!, 12)
            f.storeBytes(of: crc.littleEndian, toByteOffset: 12, as: UInt32.self)
            try put(f.baseAddress!, 16)
        }
        if let b = payload.baseAddress { try put(b, payload.count) }
        var tail = payloadCRC.littleEndian
        try withUnsafeBytes(of: &tail) { try put($0.baseAddress!, 4) }
        chain = StreamWriter.chain(chain, kind: kind, crc: payloadCRC, length: length)
        count += 1
    }

    /// Writes one record with a payload array.
    public func write(kind: RecordKind, payload: [UInt8]) throws {
        try payload.withUnsafeBytes { try write(kind: kind, payload: $0) }
    }

    /// Encodes and writes one record.
    public func write<R: RecordCodec>(_ record: R) throws {
        try record.checkWritable()
        try write(kind: R.recordKind, payload: record.encode())
    }

    /// Pushes everything written so far downstream (a compressed stream ends its current zstd block).
    public func flush() throws {
        if let z = zstd { try z.flush(end: false) }
        try sink.flush()
    }

    /// Writes the end record, ends the zstd frame, and commits the output (rename into place); with
    /// `commit: false` a file is only prepared (`OutputFile.prepare`): the caller commits it with the run's
    /// other outputs. Idempotent.
    public func finish(commit: Bool = true) throws {
        if finished { return }
        var end = PayloadWriter(capacity: 16)
        end.u64(UInt64(count))
        end.u64(chain)
        let endBytes = end.bytes
        try endBytes.withUnsafeBytes { p in
            var frame = (UInt32(0), UInt64(0), UInt32(0))
            try withUnsafeMutableBytes(of: &frame) { f in
                f.storeBytes(of: RecordKind.end.rawValue.littleEndian, toByteOffset: 0, as: UInt32.self)
                f.storeBytes(of: UInt64(16).littleEndian, toByteOffset: 4, as: UInt64.self)
                let crc = CRC32C.update(0, f.baseAddress!, 12)
                f.storeBytes(of: crc.littleEndian, toByteOffset: 12, as: UInt32.self)
                try put(f.baseAddress!, 16)
            }
            try put(p.baseAddress!, 16)
            var tail = CRC32C.checksum(p).littleEndian
            try withUnsafeBytes(of: &tail) { try put($0.baseAddress!, 4) }
        }
        finished = true
        if let z = zstd { try z.flush(end: true) }
        if commit { try sink.commit() } else if let f = sink as? OutputFile { try f.prepare() } else { try sink.flush() }
    }

    /// Drops the stream: a file output's temporary file is deleted.
    public func abort() {
        finished = true
        (sink as? OutputFile)?.abort()
    }

    deinit {
        if !finished { (sink as? OutputFile)?.abort() }
    }

    /// One step of the end-record chain: XXH64(seed: chain) of kind ‖ payload CRC ‖ length.
    public static func chain(_ chain: UInt64, kind: RecordKind, crc: UInt32, length: UInt64) -> UInt64 {
        var t = (kind.rawValue.littleEndian, crc.littleEndian, length.littleEndian)
        return withUnsafeBytes(of: &t) { ContentHash.xxh64($0, seed: chain) }
    }
}

/// Streaming zstd compression of one frame onto a sink, flushed every `chunk` bytes of input.
final class ZstdEncoder {
    let sink: ByteSink
    let ctx: OpaquePointer
    let chunk = 1 << 20
    let input: UnsafeMutableRawPointer
    var used = 0
    let outCapacity: Int
    let output: UnsafeMutableRawPointer

    init(sink: ByteSink, level: Int32) throws {
        self.sink = sink
        guard let c = ZSTD_createCCtx() else { throw LDError("\(sink.name): zstd: cannot create a compression context") }
        ctx = c
        ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)
        input = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        outCapacity = ZSTD_CStreamOutSize()
        output = UnsafeMutableRawPointer.allocate(byteCount: outCapacity, alignment: 16)
    }

    func write(_ p: UnsafeRawPointer, _ n: Int) throws {
        var src = p
        var left = n
        while left > 0 {
            let take = min(left, chunk - used)
            (input + used).copyMemory(from: src, byteCount: take)
            used += take; src += take; left -= take
            if used == chunk { try flush(end: false) }
        }
    }

    /// Compresses the staged input and flushes (ZSTD_e_flush), or ends the frame (ZSTD_e_end).
    func flush(end: Bool) throws {
        var inBuf = ZSTD_inBuffer(src: input, size: used, pos: 0)
        let mode = end ? ZSTD_e_end : ZSTD_e_flush
        while true {
            var outBuf = ZSTD_outBuffer(dst: output, size: outCapacity, pos: 0)
            let r = ZSTD_compressStream2(ctx, &outBuf, &inBuf, mode)
            if ZSTD_isError(r) != 0 {
                throw LDError("\(sink.name): zstd: \(String(cString: ZSTD_getErrorName(r)))")
            }
            if outBuf.pos > 0 { try sink.write(output, count: outBuf.pos) }
            if r == 0 && inBuf.pos == inBuf.size { break }
        }
        used = 0
    }

    deinit {
        ZSTD_freeCCtx(ctx)
        input.deallocate()
        output.deallocate()
    }
}
