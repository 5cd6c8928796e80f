import LDKernels
/// Prints record streams as NDJSON (one JSON object per line, keys sorted), for jq and diff.
///
/// Lines, in stream order:
/// - `{"header":{...},"source":S,"stream":i,"type":"header"}`: the header as stored;
/// - `{"kind":K,"record":j,"source":S,"stream":i,"type":"record", ...fields}`: one per data record, with the
///   decoded fields. Image pixels are summarised (`pixel_bytes`, `pixel_hash` = XXH64 hex); logits, indices,
///   crops and scores are listed; tensors of more than `tensorListLimit` values are summarised
///   (`count`, `data_hash`, `min`, `max`, `mean`); unknown kinds show `bytes` and `hash`;
/// - `{"count":n,"hash":H,"source":S,"stream":i,"type":"end"}`: the end record.
///
/// A damaged stream stops the dump with an `LDError` (the dump doubles as a validator).
public enum StreamDump {
    /// Tensors with more values than this are summarised rather than listed.
    public static let tensorListLimit = 4096

    /// Dumps every input (`-` is stdin) to stdout and commits it.
    public static func run(paths: [String]) throws {
        var files = RunFiles()
        for p in paths { files.input("stream", p) }
        try files.check()
        let out = try OutputFile(path: "-", binary: false)
        try dump(paths: paths, to: out)
        try out.commit()
    }

    /// Dumps every input (`-` is stdin) to `sink`.
    public static func dump(paths: [String], to sink: ByteSink) throws {
        for p in paths {
            try dump(try StreamReader(path: p), to: sink)
        }
    }

    /// Dumps everything `reader` has left to `sink`.
    public static func dump(_ reader: StreamReader, to sink: ByteSink) throws {
        var line = ""
        while let event = try reader.nextEvent() {
            line.removeAll(keepingCapacity: true)
            switch event {
            case .header:
                line += "{\"header\":"
                line += String(decoding: reader.headerJSON, as: UTF8.self)
                line += ",\"source\":"
                JSONValue.writeString(reader.name, to: &line)
                line += ",\"stream\":\(reader.streamIndex),\"type\":\"header\"}"
            case .record(let r):
                var o = try fields(of: r, header: reader.header)
                o["type"] = .string("record")
                o["source"] = .string(r.context.source)
                o["stream"] = .int(Int64(r.context.stream))
                o["record"] = .int(Int64(r.context.record))
                o["kind"] = .string(r.kind.description)
                JSONValue.object(o).write(to: &line)
            case .end(let count, let hash):
                JSONValue.object([
                    "type": .string("end"), "source": .string(reader.name),
                    "stream": .int(Int64(reader.streamIndex)), "count": u64(count),
                    "hash": .string(ContentHash.hex(hash)),
                ]).write(to: &line)
            }
            line += "\n"
            try sink.write(line)
        }
    }

    /// A u64 as a JSON number (exact up to Int64.max, approximate beyond).
    private static func u64(_ v: UInt64) -> JSONValue { v <= UInt64(Int64.max) ? .int(Int64(v)) : .double(Double(v)) }
    private static func ints<T: BinaryInteger>(_ a: [T]) -> JSONValue { .array(a.map { .int(Int64($0)) }) }
    private static func floats(_ a: [Float]) -> JSONValue { .array(a.map { JSONValue.number($0) }) }
    private static func box(_ b: CropBox) -> JSONValue { ints([b.top, b.left, b.height, b.width]) }

    /// The decoded fields of one record, as JSON members.
    public static func fields(of r: Record, header: StreamHeader) throws -> [String: JSONValue] {
        switch r.kind {
        case .image:
            let m = try ImageRecord(r, header: header)
            return ["index": u64(m.index), "label": .int(Int64(m.label)),
                    "pixel_bytes": .int(Int64(m.pixels.count)), "pixel_hash": .string(ContentHash.hex(ContentHash.xxh64(m.pixels)))]
        case .labels:
            let m = try LabelBatchRecord(r, header: header)
            var o: [String: JSONValue] = [
                "batch": u64(m.batch), "epoch": .int(Int64(m.epoch)), "classes": .int(Int64(m.classes)),
                "indices": ints(m.indices), "crops": .array(m.crops.map(box)),
                "flips": .array(m.flips.map { .int($0 ? 1 : 0) }), "mix": .string(m.mix.name),
            ]
            if m.mix != .none {
                o["permutation"] = ints(m.permutation)
                o["lambda"] = JSONValue.number(m.lambda)
                o["box"] = box(m.box)
            }
            switch m.logits {
            case .half(let v): o["logits"] = .object(["format": .string("fp16"), "values": floats(v.map { Float($0) })])
            case .single(let v): o["logits"] = .object(["format": .string("fp32"), "values": floats(v)])
            case .topK(let k, let ids, let vals):
                o["logits"] = .object(["format": .string("topk"), "k": .int(Int64(k)), "classes": ints(ids),
                                       "values": floats(vals.map { Float($0) })])
            }
            return o
        case .tensor:
            let m = try TensorRecord(r, header: header)
            var o: [String: JSONValue] = ["name": .string(m.name), "shape": ints(m.shape), "count": .int(Int64(m.data.count))]
            if m.data.count <= tensorListLimit {
                o["data"] = floats(m.data)
            } else {
                var lo = Float.infinity, hi = -Float.infinity, sum = 0.0
                for v in m.data { lo = min(lo, v); hi = max(hi, v); sum += Double(v) }
                o["min"] = JSONValue.number(lo)
                o["max"] = JSONValue.number(hi)
                o["mean"] = JSONValue.number(Float(sum / Double(m.data.count)))
                o["data_hash"] = .string(m.data.withUnsafeBytes { ContentHash.hex(ContentHash.xxh64($0)) })
            }
            return o
        case .score:
            let m = try ScoreRecord(r, header: header)
            var o: [String: JSONValue] = ["index": u64(m.index), "values": floats(m.values)]
            if let cols = ScoreRecord.columns(of: header) {
                var named: [String: JSONValue] = [:]
                for (c, v) in zip(cols, m.values) { named[c] = JSONValue.number(v) }
                o["values"] = .object(named)
            }
            return o
        default:
            return ["bytes": .int(Int64(r.payload.count)), "hash": .string(ContentHash.hex(ContentHash.xxh64(r.payload)))]
        }
    }
}
