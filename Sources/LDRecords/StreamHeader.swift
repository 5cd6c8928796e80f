import LDKernels
import Foundation

/// A JSON value, for the free-form `meta` of a header and for NDJSON output.
public enum JSONValue: Codable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int64.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        if let o = try? c.decode([String: JSONValue].self) { self = .object(o); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// A number from a Float, printed with Float's shortest round-trip digits (0.1, not 0.10000000149).
    public static func number(_ f: Float) -> JSONValue {
        if !f.isFinite { return .null }
        if f == f.rounded() && abs(f) < 1e15 { return .int(Int64(f)) }
        return .double(Double(f.description) ?? Double(f))
    }

    /// `x` rounded to `places` decimals; with `wholeAsInt`, a whole result is an integer, so that a value
    /// read back from JSON serialises as itself (metrics kept in a checkpoint and printed again).
    public static func rounded(_ x: Double, places: Int, wholeAsInt: Bool = false) -> JSONValue {
        let v = x.rounded(places: places)
        return wholeAsInt && v == v.rounded() && abs(v) < 1e15 ? .int(Int64(v)) : .double(v)
    }

    /// The string's value, if it is one.
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// The array's elements, if it is one.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    /// The number as a Double, if it is one.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// Compact JSON text with sorted keys (deterministic), non-finite numbers as null.
    public var serialized: String {
        var out = ""
        write(to: &out)
        return out
    }

    /// Appends compact JSON text with sorted keys.
    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if !d.isFinite { out += "null" } else { out += d.description }
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, k) in o.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeString(k, to: &out)
                out += ":"
                o[k]!.write(to: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}

/// The first record of every stream: what it holds and where it came from, so a consumer can refuse a
/// mismatched input with a clear message. Encoded as compact JSON with sorted keys (deterministic bytes).
///
/// JSON keys: `kind`, `producer`, `version`, `seed`, `classes`, `shape`, `teacher_hash`, `image_set_hash`
/// (both optional, 16 hex digits), `meta` (object, tool-specific settings; may be empty).
public struct StreamHeader: Codable, Equatable {
    /// What the stream holds.
    public var kind: StreamKind
    /// The tool that wrote it ("ld-relabel").
    public var producer: String
    /// The producer's version (`LD.version`).
    public var version: String
    /// The seed of the run that produced it.
    public var seed: UInt64
    /// Number of classes (0 when not applicable).
    public var classes: Int
    /// The shape of one item: [C, H, W] for images, [] when not applicable.
    public var shape: [Int]
    /// `ContentHash.hex` identity of the teacher that produced the stream, if any.
    public var teacherHash: String?
    /// `ContentHash.hex` identity of the image set the stream refers to, if any.
    public var imageSetHash: String?
    /// Tool-specific settings (for example `columns` of a score stream, augmentation parameters).
    public var meta: [String: JSONValue]

    public init(kind: StreamKind, producer: String, version: String, seed: UInt64 = 0, classes: Int = 0,
                shape: [Int] = [], teacherHash: String? = nil, imageSetHash: String? = nil,
                meta: [String: JSONValue] = [:]) {
        self.kind = kind
        self.producer = producer
        self.version = version
        self.seed = seed
        self.classes = classes
        self.shape = shape
        self.teacherHash = teacherHash
        self.imageSetHash = imageSetHash
        self.meta = meta
    }

    enum CodingKeys: String, CodingKey {
        case kind, producer, version, seed, classes, shape, meta
        case teacherHash = "teacher_hash"
        case imageSetHash = "image_set_hash"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(StreamKind.self, forKey: .kind)
        producer = try c.decode(String.self, forKey: .producer)
        version = try c.decode(String.self, forKey: .version)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
        classes = try c.decodeIfPresent(Int.self, forKey: .classes) ?? 0
        shape = try c.decodeIfPresent([Int].self, forKey: .shape) ?? []
        teacherHash = try c.decodeIfPresent(String.self, forKey: .teacherHash)
        imageSetHash = try c.decodeIfPresent(String.self, forKey: .imageSetHash)
        meta = try c.decodeIfPresent([String: JSONValue].self, forKey: .meta) ?? [:]
    }

    /// Number of elements of one item (the product of `shape`; 1 for an empty shape).
    public var itemCount: Int { shape.reduce(1, *) }

    /// The JSON bytes written as the header payload.
    public func encoded() throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { return Array(try e.encode(self)) } catch {
            throw LDError("cannot encode stream header: \(error)")
        }
    }

    /// Parses and validates a header payload; `context` starts error messages ("f.ldl: stream 0").
    public static func decode(_ payload: UnsafeRawBufferPointer, context: String) throws -> StreamHeader {
        let data = Data(payload)
        let h: StreamHeader
        do {
            h = try JSONDecoder().decode(StreamHeader.self, from: data)
        } catch let e as DecodingError {
            throw LDError("\(context): bad header: \(describe(e))")
        } catch {
            throw LDError("\(context): bad header: not valid JSON")
        }
        if h.classes < 0 || h.classes > 1 << 24 {
            throw LDError("\(context): bad header: classes \(h.classes) out of range 0...\(1 << 24)")
        }
        if h.shape.count > 8 {
            throw LDError("\(context): bad header: shape has \(h.shape.count) dimensions, at most 8 allowed")
        }
        var n: UInt64 = 1
        for d in h.shape {
            if d < 0 || d > 1 << 30 {
                throw LDError("\(context): bad header: shape dimension \(d) out of range 0...\(1 << 30)")
            }
            let (m, o) = n.multipliedReportingOverflow(by: UInt64(d))
            if o || m > StreamFormat.maxPayload {
                throw LDError("\(context): bad header: shape \(h.shape) is larger than a record may be")
            }
            n = m
        }
        return h
    }

    /// Why a stream with header `other` cannot be read as a continuation of this one, or nil if it can.
    /// Kind, classes, shape, teacher and image-set hashes must agree; producer, version, seed and meta may
    /// differ (shards of one run made by separate processes carry their own ranges in meta).
    public func mismatch(with other: StreamHeader) -> String? {
        if kind != other.kind { return "kind '\(other.kind)' vs '\(kind)'" }
        if classes != other.classes { return "classes \(other.classes) vs \(classes)" }
        if shape != other.shape { return "shape \(other.shape) vs \(shape)" }
        if teacherHash != other.teacherHash {
            return "teacher_hash \(other.teacherHash ?? "none") vs \(teacherHash ?? "none")"
        }
        if imageSetHash != other.imageSetHash {
            return "image_set_hash \(other.imageSetHash ?? "none") vs \(imageSetHash ?? "none")"
        }
        return nil
    }

    /// `meta[key]` as exactly `count` numbers, or nil when absent; a present value of another shape is an
    /// error naming the key (`source` starts it), never replaced by a default.
    public func metaNumbers(_ key: String, count: Int, source: String) throws -> [Float]? {
        guard let given = meta[key], given != .null else { return nil }
        let a = given.arrayValue ?? []
        let v = a.compactMap { $0.doubleValue.map(Float.init) }
        guard v.count == a.count, a.count == count else {
            throw LDError("\(source): header '\(key)' has \(a.count) values, \(count) numbers expected")
        }
        return v
    }

    /// `meta[key]` as exactly `count` strings, or nil when absent (`class_names` for `classes`), as `metaNumbers`.
    public func metaStrings(_ key: String, count: Int, source: String) throws -> [String]? {
        guard let given = meta[key], given != .null else { return nil }
        let a = given.arrayValue ?? []
        let v = a.compactMap { $0.stringValue }
        guard v.count == a.count, a.count == count else {
            throw LDError("\(source): header '\(key)' has \(a.count) entries for \(count) classes")
        }
        return v
    }

    /// The header as a JSON value (for dumps).
    public var jsonValue: JSONValue {
        var o: [String: JSONValue] = [
            "kind": .string(kind.rawValue), "producer": .string(producer), "version": .string(version),
            "seed": seed <= UInt64(Int64.max) ? .int(Int64(seed)) : .double(Double(seed)),
            "classes": .int(Int64(classes)), "shape": .array(shape.map { .int(Int64($0)) }),
            "meta": .object(meta),
        ]
        if let t = teacherHash { o["teacher_hash"] = .string(t) }
        if let i = imageSetHash { o["image_set_hash"] = .string(i) }
        return .object(o)
    }
}

private func describe(_ e: DecodingError) -> String {
    func path(_ p: [CodingKey]) -> String {
        p.isEmpty ? "(top level)" : p.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }
    switch e {
    case .keyNotFound(let k, _): return "missing field '\(k.stringValue)'"
    case .typeMismatch(_, let c): return "field '\(path(c.codingPath))' has the wrong type"
    case .valueNotFound(_, let c): return "field '\(path(c.codingPath))' is null"
    case .dataCorrupted(let c):
        return c.codingPath.isEmpty ? "not valid JSON" : "field '\(path(c.codingPath))' is invalid"
    @unknown default: return "not valid JSON"
    }
}
