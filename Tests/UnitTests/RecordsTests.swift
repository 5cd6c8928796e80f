import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// Shared helpers for the record-stream tests.
enum RS {
    static func header(_ kind: StreamKind = .images, classes: Int = 3, shape: [Int] = [1, 2, 3],
                       meta: [String: JSONValue] = [:]) -> StreamHeader {
        StreamHeader(kind: kind, producer: "test", version: "0.0", seed: 7, classes: classes, shape: shape,
                     teacherHash: "0123456789abcdef", meta: meta)
    }

    static func images(_ n: Int, start: Int = 0) -> [ImageRecord] {
        (0..<n).map { i in
            ImageRecord(index: UInt64(start + i), label: UInt32((start + i) % 3),
                        pixels: (0..<6).map { UInt8(truncatingIfNeeded: (start + i) * 31 + $0 * 7) })
        }
    }

    /// A stream of `n` images as bytes.
    static func imageStream(_ n: Int, start: Int = 0, compression: StreamCompression = .none) throws -> [UInt8] {
        let sink = MemorySink()
        let w = try StreamWriter(sink: sink, header: header(), compression: compression)
        for r in images(n, start: start) { try w.write(r) }
        try w.finish()
        XCTAssertTrue(sink.committed)
        return sink.bytes
    }

    /// Every data record of every stream in `bytes`.
    static func readAll(_ bytes: [UInt8], maxRead: Int = .max) throws -> (headers: [StreamHeader], records: [Record]) {
        let r = try StreamReader(source: MemorySource(bytes, name: "mem", maxRead: maxRead))
        var headers: [StreamHeader] = []
        var records: [Record] = []
        while let e = try r.nextEvent() {
            switch e {
            case .header(let h): headers.append(h)
            case .record(let rec): records.append(rec)
            case .end: break
            }
        }
        return (headers, records)
    }

    /// The LDError message of `body`, or nil if it did not throw one.
    static func message(_ body: () throws -> Void) -> String? {
        do { try body() } catch let e as LDError { return e.message } catch { return "non-LDError \(error)" }
        return nil
    }

    /// A raw frame, for forging streams.
    static func frame(_ kind: UInt32, _ payload: [UInt8], length: UInt64? = nil) -> [UInt8] {
        var f: [UInt8] = []
        withUnsafeBytes(of: kind.littleEndian) { f += $0 }
        withUnsafeBytes(of: (length ?? UInt64(payload.count)).littleEndian) { f += $0 }
        withUnsafeBytes(of: CRC32C.checksum(f).littleEndian) { f += $0 }
        f += payload
        withUnsafeBytes(of: CRC32C.checksum(payload).littleEndian) { f += $0 }
        return f
    }

    static let preamble: [UInt8] = StreamFormat.magic + [1, 0, 0, 0]
}

final class RecordsChecksumTests: XCTestCase {
    func testCRC32CCheckValue() {
        XCTAssertEqual(CRC32C.checksum("123456789"), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
    }

    func testCRC32CIncrementalAndUnaligned() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 17) }
        // Bytewise reference.
        func reference(_ d: ArraySlice<UInt8>) -> UInt32 {
            var c: UInt32 = ~0
            for b in d {
                c ^= UInt32(b)
                for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            }
            return ~c
        }
        data.withUnsafeBytes { p in
            for start in [0, 1, 3, 7] {
                for count in [0, 1, 5, 8, 9, 64, 333, 1000 - start] {
                    let one = CRC32C.update(0, p.baseAddress! + start, count)
                    XCTAssertEqual(one, reference(data[start..<(start + count)]))
                    let half = count / 2
                    let two = CRC32C.update(CRC32C.update(0, p.baseAddress! + start, half), p.baseAddress! + start + half, count - half)
                    XCTAssertEqual(one, two)
                }
            }
        }
    }

    func testXXH64KnownValues() {
        XCTAssertEqual(ContentHash.xxh64([UInt8]()), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(ContentHash.xxh64(Array("a".utf8)), 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(ContentHash.xxh64(Array("abc".utf8)), 0x44BC_2CF5_AD77_0999)
        XCTAssertEqual(ContentHash.hex(0xAB), "00000000000000ab")
        XCTAssertEqual(ContentHash.parse(hex: "00000000000000ab"), 0xAB)
    }

    func testXXH64StreamingMatchesOneShot() {
        let data = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 5) }
        for n in [0, 1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 65, 100, 300] {
            let whole = ContentHash.xxh64(Array(data[0..<n]), seed: 42)
            for split in Set([0, 1, n / 3, n / 2, max(0, n - 1), n]) where split <= n {
                var h = ContentHash(seed: 42)
                h.update(Array(data[0..<split]))
                var h2 = h
                h2.update(Array(data[split..<n]))
                h.update(Array(data[split..<n]))
                XCTAssertEqual(h.finalize(), whole, "n \(n) split \(split)")
                XCTAssertEqual(h2.finalize(), whole)
            }
        }
    }
}

final class RecordsRoundTripTests: XCTestCase {
    func labelBatches(classes k: Int) -> [LabelBatchRecord] {
        let b = 4
        let crops = (0..<b).map { CropBox(top: $0, left: 2, height: 20, width: 10 + $0) }
        let flips = [true, false, false, true]
        let idx: [UInt32] = [9, 3, 5, 1]
        let dense = (0..<(b * k)).map { Float($0) * 0.25 - 1 }
        return [
            LabelBatchRecord(batch: 0, epoch: 0, classes: k, indices: idx, crops: crops, flips: flips,
                             logits: .half(dense.map { Float16($0) })),
            LabelBatchRecord(batch: 1, epoch: 2, classes: k, indices: idx, crops: crops, flips: flips,
                             mix: .cutmix, permutation: [2, 3, 0, 1], lambda: 0.625,
                             box: CropBox(top: 1, left: 2, height: 3, width: 4), logits: .single(dense)),
            LabelBatchRecord(batch: 2, epoch: 2, classes: k, indices: idx, crops: crops, flips: flips,
                             mix: .mixup, permutation: [1, 0, 3, 2], lambda: 0.3,
                             logits: .topK(k: 2, classes: [0, 4, 1, 2, 3, 0, 4, 3], values: (0..<8).map { Float16(Float($0) / 2) })),
        ]
    }

    func roundTrip(_ compression: StreamCompression) throws {
        // images
        let imgs = RS.images(5)
        let i2 = try RS.readAll(try RS.imageStream(5, compression: compression))
        XCTAssertEqual(i2.headers, [RS.header()])
        XCTAssertEqual(try i2.records.map { try ImageRecord($0, header: i2.headers[0]) }, imgs)
        XCTAssertEqual(i2.records.map { $0.context.record }, [1, 2, 3, 4, 5])

        // labels
        let lh = RS.header(.labels, classes: 5, shape: [])
        let batches = labelBatches(classes: 5)
        for b in batches { XCTAssertNoThrow(try b.validate()) }
        // tensors and scores
        let th = RS.header(.model, classes: 0, shape: [])
        let tensors = [TensorRecord(name: "conv.weight", shape: [2, 1, 3, 3], data: (0..<18).map { Float($0) / 3 }),
                       TensorRecord(name: "bn.ü", shape: [], data: [2.5]),
                       TensorRecord(name: "empty", shape: [0, 4], data: [])]
        let sh = RS.header(.scores, classes: 0, shape: [], meta: ["columns": .array([.string("el2n"), .string("aum")])])
        let scores = [ScoreRecord(index: 3, values: [0.5, -1]), ScoreRecord(index: 9, values: [.greatestFiniteMagnitude, 0])]

        for (h, write, check) in [
            (lh, { (w: StreamWriter) in for b in batches { try w.write(b) } },
             { (rs: [Record], h: StreamHeader) in XCTAssertEqual(try rs.map { try LabelBatchRecord($0, header: h) }, batches) }),
            (th, { w in for t in tensors { try w.write(t) } },
             { rs, h in XCTAssertEqual(try rs.map { try TensorRecord($0, header: h) }, tensors) }),
            (sh, { w in for s in scores { try w.write(s) } },
             { rs, h in XCTAssertEqual(try rs.map { try ScoreRecord($0, header: h) }, scores) }),
        ] as [(StreamHeader, (StreamWriter) throws -> Void, ([Record], StreamHeader) throws -> Void)] {
            let sink = MemorySink()
            let w = try StreamWriter(sink: sink, header: h, compression: compression)
            try write(w)
            try w.finish()
            let back = try RS.readAll(sink.bytes)
            XCTAssertEqual(back.headers, [h])
            try check(back.records, h)
        }
    }

    func testRoundTripPlain() throws { try roundTrip(.none) }
    func testRoundTripZstd() throws { try roundTrip(.zstd()) }

    func testZstdIsCompressedAndShortReadsWork() throws {
        let plain = try RS.imageStream(200)
        let z = try RS.imageStream(200, compression: .zstd(level: 3))
        XCTAssertEqual(Array(z.prefix(4)), StreamFormat.zstdMagic)
        XCTAssertLessThan(z.count, plain.count)
        for bytes in [plain, z] {
            for step in [1, 5, 4096] {
                let r = try RS.readAll(bytes, maxRead: step)
                XCTAssertEqual(r.records.count, 200)
            }
        }
    }

    func testLargeRecordAcrossBuffers() throws {
        // A payload larger than the reader's 1 MiB buffers, plain and zstd.
        let big = TensorRecord(name: "big", shape: [700_000], data: (0..<700_000).map { Float($0 % 1000) })
        for c in [StreamCompression.none, .zstd(level: 1)] {
            let sink = MemorySink()
            let w = try StreamWriter(sink: sink, header: RS.header(.model, classes: 0, shape: []), compression: c)
            try w.write(big)
            try w.write(big)
            try w.finish()
            let back = try RS.readAll(sink.bytes, maxRead: 100_000)
            XCTAssertEqual(back.records.count, 2)
            XCTAssertEqual(try TensorRecord(back.records[1], header: back.headers[0]), big)
        }
    }

    func testConcatenation() throws {
        let a = try RS.imageStream(2, start: 0)
        let b = try RS.imageStream(3, start: 10)
        let za = try RS.imageStream(4, start: 20, compression: .zstd())
        let zb = try RS.imageStream(1, start: 30, compression: .zstd())
        for (bytes, expected) in [(a + b, [0, 1, 10, 11, 12]),
                                  (za + b, [20, 21, 22, 23, 10, 11, 12]),
                                  (a + za + b, [0, 1, 20, 21, 22, 23, 10, 11, 12]),
                                  (za + zb + a, [20, 21, 22, 23, 30, 0, 1])] {
            let r = try StreamReader(source: MemorySource(bytes, maxRead: 3))
            var seen: [Int] = []
            var streams: [Int] = []
            while let rec = try r.next() {
                seen.append(Int(try ImageRecord(rec, header: r.header).index))
                streams.append(r.streamIndex)
                XCTAssertEqual(rec.context.stream, r.streamIndex)
            }
            XCTAssertEqual(seen, expected)
            XCTAssertEqual(Set(streams).count, Set(streams).max()! + 1)
            XCTAssertNotNil(r.lastEndHash)
        }
    }

    func testEmptyStreamsConcatenate() throws {
        let sink = MemorySink()
        try StreamWriter(sink: sink, header: RS.header()).finish()
        let r = try RS.readAll(sink.bytes + sink.bytes)
        XCTAssertEqual(r.headers.count, 2)
        XCTAssertEqual(r.records.count, 0)
    }

    func testNewStreamCallbackAndExpect() throws {
        let other = MemorySink()
        let w = try StreamWriter(sink: other, header: RS.header(.model, classes: 0, shape: []))
        try w.finish()
        let r = try StreamReader(source: MemorySource(try RS.imageStream(1) + other.bytes, name: "in.ldi"))
        try r.expect(kind: .images)
        var calls = 0
        r.onNewStream = { _ in calls += 1 }
        XCTAssertNotNil(try r.next())
        XCTAssertEqual(RS.message { while try r.next() != nil {} }, "in.ldi: stream 1 is a 'model' stream, expected 'images'")
        XCTAssertEqual(calls, 0) // the kind check comes first
    }

    func testRequireMatchingHeaders() throws {
        func stream(_ h: StreamHeader) throws -> [UInt8] {
            let sink = MemorySink()
            try StreamWriter(sink: sink, header: h).finish()
            return sink.bytes
        }
        var shard = RS.header()
        shard.seed = 99
        shard.producer = "other"
        shard.meta = ["epochs": .string("0:5")]
        var classes = RS.header()
        classes.classes = 10
        var teacher = RS.header()
        teacher.teacherHash = nil
        let base = try stream(RS.header())
        func check(_ next: StreamHeader) throws -> String? {
            let r = try StreamReader(source: MemorySource(base + base + (try stream(next)), name: "s.ldi"))
            r.requireMatchingHeaders()
            return RS.message { while try r.nextEvent() != nil {} }
        }
        XCTAssertNil(try check(shard))
        XCTAssertEqual(try check(classes), "s.ldi: stream 2 does not match stream 0: classes 10 vs 3")
        XCTAssertEqual(try check(teacher), "s.ldi: stream 2 does not match stream 0: teacher_hash none vs 0123456789abcdef")
    }

    func testHeaderIsDeterministicSortedJSON() throws {
        let h = RS.header(meta: ["z": .int(1), "a": .array([.string("x"), .double(0.5), .bool(true), .null])])
        let a = try h.encoded(), b = try h.encoded()
        XCTAssertEqual(a, b)
        let s = String(decoding: a, as: UTF8.self)
        XCTAssertTrue(s.hasPrefix("{\"classes\":3,\"image_set_hash\"") || s.hasPrefix("{\"classes\":3,\"kind\""), s)
        XCTAssertFalse(s.contains(" "))
        XCTAssertTrue(s.contains("\"meta\":{\"a\":[\"x\",0.5,true,null],\"z\":1}"), s)
        XCTAssertEqual(try a.withUnsafeBytes { try StreamHeader.decode($0, context: "t") }, h)
    }

    func testStreamIsDeterministic() throws {
        XCTAssertEqual(try RS.imageStream(7), try RS.imageStream(7))
        XCTAssertEqual(try RS.imageStream(7, compression: .zstd()), try RS.imageStream(7, compression: .zstd()))
    }

    func testLabelBatchValidation() {
        let bad = LabelBatchRecord(batch: 5, epoch: 0, classes: 3, indices: [1, 2], crops: [.zero, .zero], flips: [false, false],
                                   logits: .half([0, 0, 0]))
        XCTAssertEqual(RS.message { try bad.validate() }, "label batch 5: logits have 3 values, expected 2x3")
        let perm = LabelBatchRecord(batch: 6, epoch: 0, classes: 1, indices: [1, 2], crops: [.zero, .zero], flips: [false, false],
                                    mix: .mixup, permutation: [0, 2], logits: .single([0, 0]))
        XCTAssertNotNil(RS.message { try perm.validate() })
        // The decoder rejects the same permutation.
        let payload = perm.encode()
        let msg = RS.message {
            _ = try payload.withUnsafeBytes {
                try LabelBatchRecord(payload: $0, header: RS.header(.labels, classes: 1, shape: []),
                                     context: RecordContext(source: "l.ldl", stream: 0, record: 4, kind: .labels))
            }
        }
        XCTAssertEqual(msg, "l.ldl: stream 0, record 4 (labels): permutation entry 2 out of range for a batch of 2")
    }

    func testCodecsRejectShortAndLongPayloads() {
        let h = RS.header(.labels, classes: 5, shape: [])
        let payload = labelBatches(classes: 5)[1].encode()
        let ctx = RecordContext(source: "x", stream: 0, record: 1, kind: .labels)
        for cut in 0..<payload.count {
            let short = Array(payload[0..<cut])
            XCTAssertNotNil(RS.message { _ = try short.withUnsafeBytes { try LabelBatchRecord(payload: $0, header: h, context: ctx) } }, "cut \(cut)")
        }
        let long = payload + [0]
        XCTAssertEqual(RS.message { _ = try long.withUnsafeBytes { try LabelBatchRecord(payload: $0, header: h, context: ctx) } },
                       "x: stream 0, record 1 (labels): 1 unexpected bytes after the last field (payload is \(long.count) bytes)")
        let img = ImageRecord(index: 0, label: 0, pixels: [1, 2, 3]).encode()
        XCTAssertEqual(RS.message { _ = try img.withUnsafeBytes { try ImageRecord(payload: $0, header: RS.header(), context: ctx) } },
                       "x: stream 0, record 1 (labels): pixels: expected 6 bytes (shape 1x2x3), got 3")
    }
}

final class RecordsDumpTests: XCTestCase {
    func testDumpShape() throws {
        let sink = MemorySink()
        let w = try StreamWriter(sink: sink, header: RS.header(.labels, classes: 2, shape: []))
        try w.write(LabelBatchRecord(batch: 4, epoch: 1, classes: 2, indices: [7], crops: [CropBox(top: 1, left: 2, height: 3, width: 4)],
                                     flips: [true], logits: .half([0.5, -2])))
        try w.write(kind: RecordKind(rawValue: 999), payload: [1, 2, 3])
        try w.finish()
        let images = try RS.imageStream(1, compression: .zstd())
        let out = MemorySink()
        try StreamDump.dump(try StreamReader(source: MemorySource(sink.bytes + images, name: "in")), to: out)
        let text = String(decoding: out.bytes, as: UTF8.self)
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 7)
        let objs = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(objs.map { $0["type"] as! String }, ["header", "record", "record", "end", "header", "record", "end"])
        XCTAssertEqual(objs.map { $0["stream"] as! Int }, [0, 0, 0, 0, 1, 1, 1])
        XCTAssertEqual((objs[0]["header"] as! [String: Any])["kind"] as? String, "labels")
        XCTAssertEqual(lines[1], "{\"batch\":4,\"classes\":2,\"crops\":[[1,2,3,4]],\"epoch\":1,\"flips\":[1],\"indices\":[7],\"kind\":\"labels\",\"logits\":{\"format\":\"fp16\",\"values\":[0.5,-2]},\"mix\":\"none\",\"record\":1,\"source\":\"in\",\"stream\":0,\"type\":\"record\"}")
        XCTAssertEqual(objs[2]["kind"] as? String, "kind-999")
        XCTAssertEqual(objs[2]["bytes"] as? Int, 3)
        XCTAssertEqual(objs[3]["count"] as? Int, 3)
        XCTAssertEqual((objs[3]["hash"] as? String)?.count, 16)
        XCTAssertEqual(objs[5]["pixel_bytes"] as? Int, 6)
        XCTAssertEqual(objs[5]["pixel_hash"] as? String, ContentHash.hex(ContentHash.xxh64(RS.images(1)[0].pixels)))
    }

    func testDumpScoresAndTensors() throws {
        let sink = MemorySink()
        let w = try StreamWriter(sink: sink, header: RS.header(.scores, classes: 0, shape: [], meta: ["columns": .array([.string("el2n")])]))
        try w.write(ScoreRecord(index: 2, values: [0.1]))
        try w.finish()
        let t = MemorySink()
        let tw = try StreamWriter(sink: t, header: RS.header(.model, classes: 0, shape: []))
        try tw.write(TensorRecord(name: "w", shape: [2], data: [1, 0.25]))
        try tw.write(TensorRecord(name: "big", shape: [5000], data: [Float](repeating: 1, count: 5000)))
        try tw.finish()
        let out = MemorySink()
        try StreamDump.dump(try StreamReader(source: MemorySource(sink.bytes + t.bytes, name: "s")), to: out)
        let lines = String(decoding: out.bytes, as: UTF8.self).split(separator: "\n")
        XCTAssertTrue(lines[1].contains("\"values\":{\"el2n\":0.1}"), String(lines[1]))
        XCTAssertTrue(lines[4].contains("\"data\":[1,0.25]"), String(lines[4]))
        XCTAssertTrue(lines[5].contains("\"data_hash\":"), String(lines[5]))
        XCTAssertTrue(lines[5].contains("\"mean\":1"), String(lines[5]))
    }
}
