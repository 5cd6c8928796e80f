// libFuzzer target for the record-stream reader (built by fuzz/run.sh with swiftc -sanitize=fuzzer, together
// with Sources/LDRecords and the file and error helpers of Sources/LDKernels as one module; nothing else).
//
// Every input must either read cleanly or fail with an LDError; any other error, a trap, a sanitizer report,
// or memory growth beyond -rss_limit_mb is a bug.
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // Vary the read size with the input so buffer-boundary paths are exercised too.
    let step = size > 0 ? [Int.max, 1, 7, 4096][Int(bytes[size - 1]) & 3] : Int.max
    do {
        let reader = try StreamReader(source: MemorySource(bytes, name: "fuzz", maxRead: step))
        let sink = MemorySink()
        try StreamDump.dump(reader, to: sink)
    } catch is LDError {
    } catch {
        fatalError("non-LDError escaped the reader: \(error)")
    }
    return 0
}

/// With LD_FUZZ_SEEDS=DIR, writes a seed corpus of valid streams into DIR and exits.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    guard let d = getenv("LD_FUZZ_SEEDS") else { return 0 }
    let dir = String(cString: d)
    mkdir(dir, 0o755)
    do {
        var n = 0
        func save(_ bytes: [UInt8]) throws {
            let out = try OutputFile(path: "\(dir)/seed-\(n)")
            try out.write(bytes)
            try out.commit()
            n += 1
        }
        for c in [StreamCompression.none, .zstd(level: 1)] {
            let images = try stream(StreamHeader(kind: .images, producer: "fuzz", version: "0", seed: 1, classes: 3, shape: [1, 2, 2])) { w in
                for i in 0..<3 { try w.write(ImageRecord(index: UInt64(i), label: UInt32(i), pixels: [1, 2, 3, UInt8(i)])) }
            }
            let labels = try stream(StreamHeader(kind: .labels, producer: "fuzz", version: "0", classes: 3, meta: ["ipc": .int(1)])) { w in
                let crops = [CropBox(top: 1, left: 2, height: 3, width: 4), .zero]
                try w.write(LabelBatchRecord(batch: 0, epoch: 0, classes: 3, indices: [0, 1], crops: crops, flips: [true, false],
                                             logits: .half([1, 2, 3, 4, 5, 6])))
                try w.write(LabelBatchRecord(batch: 1, epoch: 0, classes: 3, indices: [1, 0], crops: crops, flips: [false, true],
                                             mix: .cutmix, permutation: [1, 0], lambda: 0.5, box: crops[0], logits: .single([1, 2, 3, 4, 5, 6])))
                try w.write(LabelBatchRecord(batch: 2, epoch: 1, classes: 3, indices: [1, 0], crops: crops, flips: [false, true],
                                             mix: .mixup, permutation: [0, 1], lambda: 0.25, logits: .topK(k: 1, classes: [2, 0], values: [9, 8])))
            }
            let model = try stream(StreamHeader(kind: .model, producer: "fuzz", version: "0")) { w in
                try w.write(TensorRecord(name: "w", shape: [2, 2], data: [1, 2, 3, 4]))
                try w.write(TensorRecord(name: "b", shape: [], data: [0.5]))
            }
            let scores = try stream(StreamHeader(kind: .scores, producer: "fuzz", version: "0", meta: ["columns": .array([.string("el2n")])])) { w in
                try w.write(ScoreRecord(index: 4, values: [0.25]))
                try w.write(kind: RecordKind(rawValue: 77), payload: [1, 2, 3])
            }
            for s in [images, labels, model, scores] { try save(try compress(s, c)) }
            try save(try compress(images + labels, c))
        }
    } catch {
        fputs("seed generation failed: \(error)\n", stderr)
        exit(1)
    }
    exit(0)
}

private func stream(_ header: StreamHeader, _ body: (StreamWriter) throws -> Void) throws -> [UInt8] {
    let sink = MemorySink()
    let w = try StreamWriter(sink: sink, header: header)
    try body(w)
    try w.finish()
    return sink.bytes
}

/// Re-reads plain streams and rewrites them compressed (through the public writer API).
private func compress(_ plain: [UInt8], _ c: StreamCompression) throws -> [UInt8] {
    if c == .none { return plain }
    let r = try StreamReader(source: MemorySource(plain))
    let sink = MemorySink()
    var w: StreamWriter? = nil
    while let e = try r.nextEvent() {
        switch e {
        case .header(let h): w = try StreamWriter(sink: sink, header: h, compression: c)
        case .record(let rec): try w!.write(kind: rec.kind, payload: rec.payload)
        case .end: try w!.finish()
        }
    }
    return sink.bytes
}
