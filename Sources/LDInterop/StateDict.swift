import LDKernels

/// An element type of a foreign tensor, by its safetensors name (`F32`, `BF16`, ...).
public enum ForeignDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// Whether the type holds real numbers (weights) rather than counts.
    public var isFloatingPoint: Bool { self == .f64 || self == .f32 || self == .f16 || self == .bf16 }

    /// The dtype of a torch storage class (`FloatStorage` -> F32), nil for one ld does not read.
    public init?(torchStorage name: String) {
        switch name {
        case "FloatStorage": self = .f32
        case "DoubleStorage": self = .f64
        case "HalfStorage": self = .f16
        case "BFloat16Storage": self = .bf16
        case "LongStorage": self = .i64
        case "IntStorage": self = .i32
        case "ShortStorage": self = .i16
        case "CharStorage": self = .i8
        case "ByteStorage": self = .u8
        case "BoolStorage": self = .bool
        default: return nil
        }
    }

    /// Element `i` of little-endian `bytes` as a Float (float16 and bfloat16 widened exactly; float64 and
    /// 64-bit integers rounded to nearest).
    @inline(__always)
    func float(_ bytes: UnsafeRawBufferPointer, _ i: Int) -> Float {
        switch self {
        case .f32: return Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        case .f64: return Float(Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
        case .f16: return Float(Float16(bitPattern: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
        case .bf16: return Float(bitPattern: UInt32(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
        case .i64: return Float(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
        case .i32: return Float(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
        case .i16: return Float(Int16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
        case .i8: return Float(Int8(bitPattern: bytes[i]))
        case .u8, .bool: return Float(bytes[i])
        }
    }
}

/// A tensor read from (or for) a PyTorch file: its element type as stored, its shape, and its values as Floats
/// (exact for float32, float16, bfloat16 and small integers such as `num_batches_tracked`).
public struct ForeignTensor: Equatable, Sendable {
    public var dtype: ForeignDType
    public var shape: [Int]
    public var values: [Float]

    public init(dtype: ForeignDType, shape: [Int], values: [Float]) {
        self.dtype = dtype
        self.shape = shape
        self.values = values
    }

    /// The number of elements `shape` holds, or nil when it overflows or is negative.
    public static func count(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard !o, p <= 1 << 40 else { return nil }
            n = p
        }
        return n
    }

    /// The values in `dtype`'s little-endian bytes (float32 and int64 as stored; float16/bfloat16 rounded to
    /// nearest even).
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(values.count * dtype.size)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        for v in values {
            switch dtype {
            case .f32: put(v.bitPattern)
            case .f64: put(Double(v).bitPattern)
            case .f16: put(Float16(v).bitPattern)
            case .bf16:
                let b = v.bitPattern
                let rounded = v.isNaN ? (b >> 16) | 0x40 : (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16
                put(UInt16(truncatingIfNeeded: rounded))
            case .i64: put(Int64(v))
            case .i32: put(Int32(v))
            case .i16: put(Int16(v))
            case .i8: put(Int8(v))
            case .u8, .bool: put(UInt8(v))
            }
        }
        return out
    }
}

/// A PyTorch state dict: tensors by name, in the file's order.
public struct StateDict: Sendable {
    public private(set) var names: [String] = []
    public private(set) var tensors: [String: ForeignTensor] = [:]

    public init() {}

    public init(_ pairs: [(String, ForeignTensor)]) throws {
        for (k, v) in pairs { try insert(k, v) }
    }

    /// Adds `tensor` under `name`; a name seen before is an error.
    public mutating func insert(_ name: String, _ tensor: ForeignTensor) throws {
        guard tensors[name] == nil else { throw LDError("state dict holds '\(name)' twice") }
        names.append(name)
        tensors[name] = tensor
    }

    public subscript(name: String) -> ForeignTensor? { tensors[name] }

    public var count: Int { names.count }

    /// The state dict without DataParallel's `module.` prefix when every key has it.
    public func strippingModulePrefix() -> StateDict {
        guard !names.isEmpty, names.allSatisfy({ $0.hasPrefix("module.") }) else { return self }
        var s = StateDict()
        for n in names { try? s.insert(String(n.dropFirst(7)), tensors[n]!) }
        return s
    }
}
