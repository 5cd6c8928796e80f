import LDKernels
import LDRecords
import LDData
import LDNetworks
/// Byte accounting of label streams per component (LPLD section 5.6), measured on the records themselves.

/// The bytes of one label-batch record, by component. The components add up to the frame's bytes.
public struct LabelRecordBytes: Equatable, Sendable {
    /// Fixed fields: batch id, epoch, batch size, classes, mix kind, logit format, k (24 bytes).
    public var fields = 0
    /// Image indices (4 bytes per image).
    public var indices = 0
    /// Crop boxes (8 bytes per image).
    public var boxes = 0
    /// Flip flags (1 byte per image).
    public var flips = 0
    /// Mix parameters: lambda, box and permutation (16 + 4 bytes per image when mixed, else 0).
    public var mix = 0
    /// Teacher logits (fp16, fp32 or top-k classes and values).
    public var logits = 0
    /// Frame: kind, length, frame CRC and payload CRC (20 bytes).
    public var framing = 0

    public init() {}

    /// The split of `record`'s encoded payload of `payloadBytes` bytes.
    public init(_ record: LabelBatchRecord, payloadBytes: Int) {
        let b = record.count
        fields = 24
        indices = 4 * b
        boxes = 8 * b
        flips = b
        mix = record.mix == .none ? 0 : 4 + 8 + 4 * b
        logits = payloadBytes - fields - indices - boxes - flips - mix
        framing = StreamFormat.frameHeaderSize + 4
    }

    /// All of it.
    public var total: Int { fields + indices + boxes + flips + mix + logits + framing }
}

/// Totals of a set of label records and the stream overhead around them.
public struct LabelStorage: Equatable, Sendable {
    /// Number of label-batch records.
    public var records = 0
    /// Number of streams (each has a preamble, a header and an end record).
    public var streams = 0
    /// Preamble (12 bytes), header record and end record (36 bytes) of each stream.
    public var header = 0
    /// Per component sums.
    public var bytes = LabelRecordBytes()

    public init() {}

    /// Counts one record.
    public mutating func add(_ r: LabelRecordBytes) {
        records += 1
        bytes.fields += r.fields
        bytes.indices += r.indices
        bytes.boxes += r.boxes
        bytes.flips += r.flips
        bytes.mix += r.mix
        bytes.logits += r.logits
        bytes.framing += r.framing
    }

    /// Counts one stream's overhead, given its header JSON size.
    public mutating func addStream(headerJSONBytes: Int) {
        streams += 1
        header += 12 + StreamFormat.frameHeaderSize + headerJSONBytes + 4 + StreamFormat.frameHeaderSize + 16 + 4
    }

    /// Every byte (uncompressed).
    public var total: Int { header + bytes.total }

    /// `{"records":..,"streams":..,"bytes":{"boxes":..,...,"header":..},"total":..}`.
    public var json: JSONValue {
        let b = bytes
        let parts: [String: JSONValue] = [
            "fields": .int(Int64(b.fields)), "indices": .int(Int64(b.indices)), "boxes": .int(Int64(b.boxes)),
            "flips": .int(Int64(b.flips)), "mix": .int(Int64(b.mix)), "logits": .int(Int64(b.logits)),
            "framing": .int(Int64(b.framing)), "header": .int(Int64(header)),
        ]
        return .object(["records": .int(Int64(records)), "streams": .int(Int64(streams)), "bytes": .object(parts),
                        "total": .int(Int64(total))])
    }
}

/// The storage of an image set: raw uint8 pixels and the sum of its images encoded one by one as PNG files
/// (the form ld-recover's folders take).
public struct ImageStorage: Equatable, Sendable {
    public var images: Int
    public var rawBytes: Int
    public var pngBytes: Int

    /// Encodes every image of `data` as PNG (on all cores) and adds up the sizes.
    public static func measure(_ data: Dataset) throws -> ImageStorage {
        let n = data.count, size = data.imageSize
        let sizes = UnsafeMutablePointer<Int>.allocate(capacity: max(n, 1))
        defer { sizes.deallocate() }
        sizes.initialize(repeating: -1, count: max(n, 1))
        let workers = max(1, min(Engine.threads, n))
        // In chunks, so that a set kept on disk is decoded a chunk at a time.
        let chunk = data.isResident ? max(n, 1) : 256
        var buffer = [UInt8](repeating: 0, count: data.isResident ? 0 : min(chunk, n) * size)
        for start in Swift.stride(from: 0, to: n, by: chunk) {
            let end = min(start + chunk, n)
            if !data.isResident { try buffer.withUnsafeMutableBufferPointer { try data.images(Array(start..<end), into: $0.baseAddress!) } }
            let src = data.isResident ? data.pixels : buffer, offset = data.isResident ? 0 : start
            src.withUnsafeBufferPointer { pix in
                let base = pix.baseAddress!
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    var i = start + w
                    while i < end {
                        sizes[i] = (try? PNG.encode(base + (i - offset) * size, channels: data.channels, height: data.height,
                                                    width: data.width).count) ?? -1
                        i += workers
                    }
                }
            }
        }
        var png = 0
        for i in 0..<n {
            guard sizes[i] >= 0 else {
                throw LDError("\(data.source): image \(i) cannot be encoded as PNG (\(data.channels) channels)")
            }
            png += sizes[i]
        }
        return ImageStorage(images: n, rawBytes: n * size, pngBytes: png)
    }

    public init(images: Int, rawBytes: Int, pngBytes: Int) {
        self.images = images
        self.rawBytes = rawBytes
        self.pngBytes = pngBytes
    }

    /// `{"images":..,"raw_bytes":..,"png_bytes":..}`.
    public var json: JSONValue {
        .object(["images": .int(Int64(images)), "raw_bytes": .int(Int64(rawBytes)), "png_bytes": .int(Int64(pngBytes))])
    }
}

extension LabelStorage {
/// Peak resident memory of this process so far, in bytes (getrusage), for the storage report.
public static func peakResidentBytes() -> Int {
    var u = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &u)
    #else
    getrusage(RUSAGE_SELF, &u)
    #endif
    #if os(Linux)
    return Int(u.ru_maxrss) * 1024
    #else
    return Int(u.ru_maxrss)
    #endif
}
}

import Dispatch
import Foundation
