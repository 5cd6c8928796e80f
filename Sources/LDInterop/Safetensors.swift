import Foundation
import LDKernels
import LDRecords

/// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
/// `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {string: string}}` (offsets
/// relative to the byte buffer after the header), then the byte buffer of the tensors in row-major order.
public enum Safetensors {
    /// Headers above this size are refused before they are read (the format's own limit is 100 MB).
    static let maxHeader = 100 << 20

    /// Reads the tensors and the metadata of a safetensors file held in `bytes`; `name` starts errors.
    /// Refuses a header longer than the file, offsets outside the buffer, overlapping tensors, a byte count that
    /// does not fit dtype x shape, and an unknown dtype, naming the tensor.
    public static func read(_ bytes: [UInt8], name: String) throws -> (state: StateDict, metadata: [String: String]) {
        guard bytes.count >= 8 else {
            throw LDError("\(name): \(bytes.count) bytes, too short for a safetensors file (truncated?)")
        }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(bytes.count - 8) else {
            throw LDError("\(name): safetensors header of \(n) bytes is longer than the file (\(bytes.count) bytes; truncated?)")
        }
        guard n <= UInt64(maxHeader), n >= 2 else { throw LDError("\(name): safetensors header of \(n) bytes is out of range") }
        let headerEnd = 8 + Int(n)
        guard bytes[8] == UInt8(ascii: "{"),
              let json = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])),
              let header = json as? [String: Any] else {
            throw LDError("\(name): safetensors header is not a JSON object")
        }
        let buffer = bytes.count - headerEnd
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: ForeignDType, shape: [Int], begin: Int, end: Int)] = []
        for (key, value) in header {
            if key == "__metadata__" {
                guard let m = value as? [String: Any] else { throw LDError("\(name): safetensors __metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw LDError("\(name): safetensors __metadata__ '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any], let dtypeName = info["dtype"] as? String,
                  let shapeValues = info["shape"] as? [Any], let offsets = info["data_offsets"] as? [Any], offsets.count == 2 else {
                throw LDError("\(name): safetensors entry '\(key)' lacks dtype, shape or data_offsets")
            }
            guard let dtype = ForeignDType(rawValue: dtypeName) else {
                throw LDError("\(name): tensor '\(key)' has dtype \(dtypeName), which ld does not read")
            }
            let shape = try shapeValues.map { try integer($0, name: name, key: key, what: "shape") }
            let begin = try integer(offsets[0], name: name, key: key, what: "data_offsets")
            let end = try integer(offsets[1], name: name, key: key, what: "data_offsets")
            guard begin <= end, end <= buffer else {
                throw LDError("\(name): tensor '\(key)' has data_offsets [\(begin), \(end)] outside the \(buffer)-byte buffer (truncated?)")
            }
            guard let count = ForeignTensor.count(shape), count * dtype.size == end - begin else {
                throw LDError("\(name): tensor '\(key)' has \(end - begin) bytes, its dtype \(dtypeName) and shape \(shape) need \(ForeignTensor.count(shape).map { String($0 * dtype.size) } ?? "too many")")
            }
            entries.append((key, dtype, shape, begin, end))
        }
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        for (a, b) in zip(entries, entries.dropFirst()) where b.begin < a.end {
            throw LDError("\(name): tensors '\(a.name)' and '\(b.name)' overlap (data_offsets [\(a.begin), \(a.end)] and [\(b.begin), \(b.end)])")
        }
        var state = StateDict()
        try bytes.withUnsafeBytes { all in
            for e in entries {
                let raw = UnsafeRawBufferPointer(rebasing: all[(headerEnd + e.begin)..<(headerEnd + e.end)])
                let count = (e.end - e.begin) / e.dtype.size
                let values = [Float](unsafeUninitializedCapacity: count) { out, initialized in
                    for i in 0..<count { out[i] = e.dtype.float(raw, i) }
                    initialized = count
                }
                try state.insert(e.name, ForeignTensor(dtype: e.dtype, shape: e.shape, values: values))
            }
        }
        return (state, metadata)
    }

    private static func integer(_ v: Any, name: String, key: String, what: String) throws -> Int {
        if let d = (v as? NSNumber)?.doubleValue, d >= 0, d < 1e15, d == d.rounded() { return Int(d) }
        throw LDError("\(name): tensor '\(key)' has a \(what) entry that is not a non-negative integer")
    }

    /// The bytes of a safetensors file holding `state` (in its order) and `metadata`. The header is padded
    /// with spaces to a multiple of 8 bytes, so the buffer starts aligned.
    public static func encode(_ state: StateDict, metadata: [String: String]) -> [UInt8] {
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.keys.sorted().map { "\(quote($0)):\(quote(metadata[$0]!))" }.joined(separator: ",")
            parts.append("\"__metadata__\":{\(m)}")
        }
        var offset = 0
        for n in state.names {
            let t = state[n]!
            let size = t.values.count * t.dtype.size
            parts.append("\(quote(n)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(UInt8(ascii: " ")) }
        var out = [UInt8]()
        out.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out += $0 }
        out += headerBytes
        for n in state.names { out += state[n]!.bytes }
        return out
    }

    /// A JSON string literal (the stream header's escaping).
    static func quote(_ s: String) -> String { JSONValue.string(s).serialized }
}
