import LDKernels
/// Where a payload came from, for error messages: "labels.ldl: stream 0, record 3 (labels)".
public struct RecordContext: CustomStringConvertible {
    public var source: String
    public var stream: Int
    public var record: Int
    public var kind: RecordKind
    public init(source: String, stream: Int, record: Int, kind: RecordKind) {
        self.source = source
        self.stream = stream
        self.record = record
        self.kind = kind
    }
    public var description: String { "\(source): stream \(stream), record \(record) (\(kind))" }
}

/// Builds a little-endian payload. Reserve the exact size up front; arrays are appended in bulk.
public struct PayloadWriter {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always) mutating func raw<T>(_ v: T) {
        withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) }
    }
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { raw(v.littleEndian) }
    public mutating func u32(_ v: UInt32) { raw(v.littleEndian) }
    public mutating func u64(_ v: UInt64) { raw(v.littleEndian) }
    public mutating func f32(_ v: Float) { raw(v.bitPattern.littleEndian) }
    /// Appends raw bytes.
    public mutating func bytes(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    /// Appends a byte array.
    public mutating func bytes(_ b: [UInt8]) { bytes.append(contentsOf: b) }

    /// Appends an array of fixed-width little-endian scalars (bulk copy on little-endian hosts).
    public mutating func array<T: FixedWidthInteger>(_ a: [T]) {
        #if _endian(little)
        a.withUnsafeBytes { bytes.append(contentsOf: $0) }
        #else
        for v in a { raw(v.littleEndian) }
        #endif
    }
    public mutating func f32Array(_ a: [Float]) {
        #if _endian(little)
        a.withUnsafeBytes { bytes.append(contentsOf: $0) }
        #else
        for v in a { f32(v) }
        #endif
    }
    public mutating func f16Array(_ a: [Float16]) {
        #if _endian(little)
        a.withUnsafeBytes { bytes.append(contentsOf: $0) }
        #else
        for v in a { u16(v.bitPattern) }
        #endif
    }
}

/// Reads a little-endian payload with bounds checks; every failure is an `LDError` naming the record,
/// the field, and the sizes involved. Arrays are checked against the remaining bytes before allocation.
public struct PayloadReader {
    public let buffer: UnsafeRawBufferPointer
    public private(set) var offset = 0
    public let context: RecordContext

    public init(_ buffer: UnsafeRawBufferPointer, context: RecordContext) {
        self.buffer = buffer
        self.context = context
    }

    /// Bytes not read yet.
    public var remaining: Int { buffer.count - offset }

    /// An error naming this record.
    public func error(_ what: String) -> LDError { LDError("\(context): \(what)") }

    @inline(__always) mutating func need(_ n: Int, _ field: String) throws {
        if n < 0 || n > remaining {
            throw error("payload too short for '\(field)': need \(n) bytes at offset \(offset), \(remaining) left")
        }
    }
    /// Byte count of `count` items of `size` bytes, checked against the remaining payload.
    @inline(__always) mutating func needArray(_ count: Int, _ size: Int, _ field: String) throws -> Int {
        let (n, o) = count.multipliedReportingOverflow(by: size)
        if o || count < 0 || n > remaining {
            throw error("payload too short for '\(field)': \(count) items of \(size) bytes at offset \(offset), \(remaining) bytes left")
        }
        return n
    }

    public mutating func u8(_ field: String) throws -> UInt8 {
        try need(1, field)
        defer { offset += 1 }
        return buffer[offset]
    }
    public mutating func u16(_ field: String) throws -> UInt16 {
        try need(2, field)
        defer { offset += 2 }
        return UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    public mutating func u32(_ field: String) throws -> UInt32 {
        try need(4, field)
        defer { offset += 4 }
        return UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    public mutating func u64(_ field: String) throws -> UInt64 {
        try need(8, field)
        defer { offset += 8 }
        return UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
    public mutating func f32(_ field: String) throws -> Float {
        Float(bitPattern: try u32(field))
    }
    /// `count` raw bytes.
    public mutating func bytes(_ count: Int, _ field: String) throws -> [UInt8] {
        let n = try needArray(count, 1, field)
        defer { offset += n }
        return Array(UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)]))
    }
    /// `count` little-endian integers.
    public mutating func array<T: FixedWidthInteger>(_ count: Int, of: T.Type, _ field: String) throws -> [T] {
        let n = try needArray(count, MemoryLayout<T>.size, field)
        let src = buffer.baseAddress! + offset
        offset += n
        return [T](unsafeUninitializedCapacity: count) { dst, made in
            if n > 0 { UnsafeMutableRawPointer(dst.baseAddress!).copyMemory(from: src, byteCount: n) }
            #if _endian(big)
            for i in 0..<count { dst[i] = T(littleEndian: dst[i]) }
            #endif
            made = count
        }
    }
    /// `count` little-endian f32.
    public mutating func f32Array(_ count: Int, _ field: String) throws -> [Float] {
        try array(count, of: UInt32.self, field).map { Float(bitPattern: $0) }
    }
    /// `count` little-endian fp16.
    public mutating func f16Array(_ count: Int, _ field: String) throws -> [Float16] {
        #if _endian(little)
        let n = try needArray(count, 2, field)
        let src = buffer.baseAddress! + offset
        offset += n
        return [Float16](unsafeUninitializedCapacity: count) { dst, made in
            if n > 0 { UnsafeMutableRawPointer(dst.baseAddress!).copyMemory(from: src, byteCount: n) }
            made = count
        }
        #else
        return try array(count, of: UInt16.self, field).map { Float16(bitPattern: $0) }
        #endif
    }

    /// Fails if bytes are left over (a payload must be exactly its fields).
    public func finish() throws {
        if remaining != 0 {
            throw error("\(remaining) unexpected bytes after the last field (payload is \(buffer.count) bytes)")
        }
    }
}

/// A payload codec: a record type that knows its kind and its bytes.
public protocol RecordCodec {
    /// The frame kind of this record type.
    static var recordKind: RecordKind { get }
    /// The payload bytes.
    func encode() -> [UInt8]
    /// Decodes and validates a payload against the stream header.
    init(payload: UnsafeRawBufferPointer, header: StreamHeader, context: RecordContext) throws
    /// Throws unless the record may be written: its fields agree and every number in it is finite (no
    /// stream holds a NaN or an infinity; the decoder refuses them too). `StreamWriter` calls it.
    func checkWritable() throws
}

extension RecordCodec {
    public func checkWritable() throws {}
}

extension RecordCodec {
    /// Decodes a record read by `StreamReader`, checking its kind first.
    public init(_ record: Record, header: StreamHeader) throws {
        if record.kind != Self.recordKind {
            throw LDError("\(record.context): expected a '\(Self.recordKind)' record, found '\(record.kind)'")
        }
        self = try record.payload.withUnsafeBytes {
            try Self(payload: $0, header: header, context: record.context)
        }
    }
}
