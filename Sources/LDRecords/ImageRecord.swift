import LDKernels
/// One image of an image-set stream: its index in the set, its label, and uint8 pixels C·H·W
/// (the header's `shape`).
public struct ImageRecord: RecordCodec, Equatable {
    public static let recordKind = RecordKind.image
    /// Position of the image in its set.
    public var index: UInt64
    /// Class id.
    public var label: UInt32
    /// Pixels, channel-major (C, H, W), 0...255.
    public var pixels: [UInt8]

    public init(index: UInt64, label: UInt32, pixels: [UInt8]) {
        self.index = index
        self.label = label
        self.pixels = pixels
    }

    public func encode() -> [UInt8] {
        var w = PayloadWriter(capacity: 12 + pixels.count)
        w.u64(index)
        w.u32(label)
        w.bytes(pixels)
        return w.bytes
    }

    /// Checks the pixel count against `header.shape` (when not empty) and the label against
    /// `header.classes` (when not 0).
    public init(payload: UnsafeRawBufferPointer, header: StreamHeader, context: RecordContext) throws {
        var r = PayloadReader(payload, context: context)
        index = try r.u64("index")
        label = try r.u32("label")
        if !header.shape.isEmpty && r.remaining != header.itemCount {
            throw r.error("pixels: expected \(header.itemCount) bytes (shape \(header.shape.map(String.init).joined(separator: "x"))), got \(r.remaining)")
        }
        if header.classes > 0 && Int(label) >= header.classes {
            throw r.error("label \(label) out of range for \(header.classes) classes")
        }
        pixels = try r.bytes(r.remaining, "pixels")
    }
}

/// One row of a score stream: an example index and its values, named by the header's `meta.columns`.
public struct ScoreRecord: RecordCodec, Equatable {
    public static let recordKind = RecordKind.score
    /// The example's index in its set.
    public var index: UInt64
    /// One value per column.
    public var values: [Float]

    public init(index: UInt64, values: [Float]) {
        self.index = index
        self.values = values
    }

    /// The column names a header declares (`meta.columns`), or nil.
    public static func columns(of header: StreamHeader) -> [String]? {
        guard let a = header.meta["columns"]?.arrayValue else { return nil }
        let names = a.compactMap { $0.stringValue }
        return names.count == a.count ? names : nil
    }

    public func encode() -> [UInt8] {
        var w = PayloadWriter(capacity: 12 + 4 * values.count)
        w.u64(index)
        w.u32(UInt32(values.count))
        w.f32Array(values)
        return w.bytes
    }

    /// Checks the value count against `meta.columns` when the header names them.
    public init(payload: UnsafeRawBufferPointer, header: StreamHeader, context: RecordContext) throws {
        var r = PayloadReader(payload, context: context)
        index = try r.u64("index")
        let n = Int(try r.u32("count"))
        if let cols = ScoreRecord.columns(of: header), cols.count != n {
            throw r.error("expected \(cols.count) values (columns \(cols.joined(separator: ","))), got \(n)")
        }
        values = try r.f32Array(n, "values")
        if let bad = values.first(where: { !$0.isFinite }) { throw r.error("example \(index) has the score \(bad); scores are finite") }
        try r.finish()
    }

    public func checkWritable() throws {
        if let bad = values.first(where: { !$0.isFinite }) { throw LDError("example \(index) has the score \(bad); scores are finite") }
    }
}

/// A named float32 tensor; a model (or a set of class statistics) is a stream of these.
public struct TensorRecord: RecordCodec, Equatable {
    public static let recordKind = RecordKind.tensor
    /// Parameter or buffer name ("conv1.weight").
    public var name: String
    /// Dimensions (at most 8).
    public var shape: [Int]
    /// Row-major values, ∏shape of them.
    public var data: [Float]

    public init(name: String, shape: [Int], data: [Float]) {
        self.name = name
        self.shape = shape
        self.data = data
    }

    public func encode() -> [UInt8] {
        let nameBytes = Array(name.utf8.prefix(Int(UInt16.max)))
        var w = PayloadWriter(capacity: 6 + nameBytes.count + 8 * shape.count + 4 * data.count)
        w.u16(UInt16(nameBytes.count))
        w.bytes(nameBytes)
        w.u32(UInt32(shape.count))
        for d in shape { w.u64(UInt64(d)) }
        w.f32Array(data)
        return w.bytes
    }

    public init(payload: UnsafeRawBufferPointer, header: StreamHeader, context: RecordContext) throws {
        var r = PayloadReader(payload, context: context)
        let nameLength = Int(try r.u16("name length"))
        guard let n = String(validating: try r.bytes(nameLength, "name"), as: UTF8.self) else {
            throw r.error("tensor name is not valid UTF-8")
        }
        name = n
        let rank = Int(try r.u32("rank"))
        if rank > 8 { throw r.error("tensor '\(n)' has rank \(rank), at most 8 allowed") }
        var dims: [Int] = []
        var count: UInt64 = 1
        for i in 0..<rank {
            let d = try r.u64("dims[\(i)]")
            if d > UInt64(Int32.max) {
                throw r.error("tensor '\(n)': dimension \(i) is \(d), more than \(Int32.max)")
            }
            let (m, o) = count.multipliedReportingOverflow(by: d)
            if o || m > UInt64(r.remaining / 4) {
                throw r.error("tensor '\(n)': shape needs more data than the \(r.remaining) bytes left")
            }
            count = m
            dims.append(Int(d))
        }
        shape = dims
        if UInt64(r.remaining) != count * 4 {
            throw r.error("tensor '\(n)': shape \(dims) needs \(count * 4) bytes of data, got \(r.remaining)")
        }
        data = try r.f32Array(Int(count), "data")
        if let i = data.firstIndex(where: { !$0.isFinite }) {
            throw r.error("tensor '\(n)' holds \(data[i]) at element \(i); a model file holds finite numbers only")
        }
    }

    public func checkWritable() throws {
        guard shape.reduce(1, { $0 &* $1 }) == data.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw LDError("tensor '\(name)': shape \(shape) does not match its \(data.count) values")
        }
        if let i = data.firstIndex(where: { !$0.isFinite }) {
            throw LDError("tensor '\(name)' holds \(data[i]) at element \(i): the weights are not finite (training diverged?); nothing written")
        }
    }
}
