import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// ld-prune end to end: golden files per rule, pipes, storage report, image-subset selection, bad input.
final class PruneToolTests: ToolTestCase {
    /// Images the label fixture refers to: 5 classes x 4 images of 1x8x8.
    static let images = ToolFixtures.tinyImages(classes: 5, perClass: 4, size: 8, seed: 11)

    /// A label record with deterministic values; every third batch CutMix, every fifth Mixup.
    static func record(_ g: Int, batch b: Int = 4, classes k: Int = 5, logits: Int = 0) -> LabelBatchRecord {
        var rng = LDRandom(seed: 21, stage: .test, major: g)
        let indices = (0..<b).map { _ in UInt32(rng.int(in: 0..<images.count)) }
        let crops = (0..<b).map { _ in CropBox(top: rng.int(in: 0..<3), left: 0, height: 5, width: 6) }
        let flips = (0..<b).map { _ in rng.int(in: 0..<2) == 1 }
        let values = (0..<b * k).map { i -> Float16 in
            // Lean towards the true class so `correct` and the margins vary.
            let cls = Int(images.labels[Int(indices[i / k])])
            return Float16(Float(rng.normal()) + (i % k == cls ? Float(g % 4) : 0))
        }
        var mix = MixKind.none, perm: [UInt32] = [], lambda: Float = 1, box = CropBox.zero
        if g % 3 == 1 {
            mix = .cutmix; perm = (0..<b).reversed().map { UInt32($0) }; lambda = 0.5
            box = CropBox(top: 0, left: 0, height: 1 + g % 7, width: 5)
        } else if g % 5 == 2 {
            mix = .mixup; perm = (0..<b).map { UInt32(($0 + 1) % b) }; lambda = Float(g % 9) / 9
        }
        let l: Logits = logits == 0 ? .half(values) : .single((0..<b * k).map { _ in Float(rng.normal()) })
        return LabelBatchRecord(batch: UInt64(g), epoch: UInt32(g / 10), classes: k, indices: indices, crops: crops,
                                flips: flips, mix: mix, permutation: perm, lambda: lambda, box: box, logits: l)
    }

    static func header(epochStart: Int = 0, epochEnd: Int = 4, classes: Int = 5) -> StreamHeader {
        StreamHeader(kind: .labels, producer: "ld-relabel", version: "test", seed: 2, classes: classes,
                     teacherHash: "0123456789abcdef", imageSetHash: images.contentHash,
                     meta: ["epochs": .int(4), "epoch_start": .int(Int64(epochStart)), "epoch_end": .int(Int64(epochEnd)),
                            "batch_size": .int(4), "batches_per_epoch": .int(10), "images": .int(20),
                            "mix": .string("cutmix"), "logits": .string("fp16"), "top_k": .int(0)])
    }

    /// Writes batches `ids` (epochs given by the header range) to `name`.
    func writeLabels(_ name: String, _ ids: Range<Int> = 0..<40, header h: StreamHeader = header()) throws {
        let w = try StreamWriter(path: path(name), header: h)
        for g in ids { try w.write(PruneToolTests.record(g)) }
        try w.finish()
    }

    func writeImages() throws { try PruneToolTests.images.writeStream(path: path("imgs.ldi"), producer: "test") }

    /// ld-prune's output file, dumped as NDJSON with the source path made stable.
    func dump(_ name: String) throws -> Data {
        let r = try run("ld-prune", ["--dump", name])
        XCTAssertEqual(r.status, 0, r.err)
        return r.out
    }

    func testGoldenPerRule() throws {
        try writeLabels("labels.ldl")
        try writeImages()
        let cases: [(String, [String])] = [
            ("random", ["--rule", "random", "--seed", "0"]),
            ("random-seed1-ratio3.3", ["--rule", "random", "--seed", "1", "--ratio", "3.3"]),
            ("prefix", ["--rule", "prefix"]),
            ("confidence-easy", ["--rule", "confidence", "--keep", "easy"]),
            ("confidence-hard", ["--rule", "confidence", "--keep", "hard"]),
            ("margin-easy", ["--rule", "margin", "--keep", "easy"]),
            ("cut-ratio-hard", ["--rule", "cut-ratio", "--keep", "hard", "--data", "imgs.ldi"]),
            ("correct-easy", ["--rule", "correct", "--keep", "easy", "--data", "imgs.ldi"]),
        ]
        for (name, args) in cases {
            var a = ["--threads", "1", "-q", "labels.ldl", "-o", "out-\(name).ldl"] + args
            if !args.contains("--ratio") { a += ["--ratio", "4"] }
            let r = try run("ld-prune", a)
            XCTAssertEqual(r.status, 0, "\(name): \(r.err)")
            XCTAssertTrue(r.out.isEmpty)
            let d = try dump("out-\(name).ldl")
            let records = String(decoding: d, as: UTF8.self).split(separator: "\n").filter { $0.contains("\"type\":\"record\"") }
            XCTAssertEqual(records.count, name.contains("3.3") ? 12 : 10, name)
            try assertGolden(d, "ld-prune", "\(name).ndjson")
        }
    }

    func testRandomKeepsExactCountAndSeedsDiffer() throws {
        try writeLabels("labels.ldl")
        func ids(_ seed: String, _ ratio: String) throws -> [Int] {
            let r = try shell("ld-prune --ratio \(ratio) --seed \(seed) -q < labels.ldl | ld-prune --dump | grep '\"type\":\"record\"' | sed 's/.*\"batch\":\\([0-9]*\\).*/\\1/'")
            XCTAssertEqual(r.status, 0, r.err)
            return r.stdout.split(separator: "\n").compactMap { Int($0) }
        }
        for ratio in ["1", "3", "4", "7.5", "33.3"] {
            let got = try ids("0", ratio)
            XCTAssertEqual(got.count, LabelPruning.keptCount(total: 40, ratio: Double(ratio)!), ratio)
            XCTAssertEqual(Set(got).count, got.count)
            XCTAssertEqual(got, got.sorted())
        }
        XCTAssertNotEqual(try ids("0", "4"), try ids("1", "4"))
    }

    func testShardsThroughAPipeEqualTheWholeStream() throws {
        try writeLabels("whole.ldl")
        try writeLabels("a.ldl", 0..<20, header: PruneToolTests.header(epochStart: 0, epochEnd: 2))
        try writeLabels("b.ldl", 20..<40, header: PruneToolTests.header(epochStart: 2, epochEnd: 4))
        for rule in ["random", "prefix", "margin"] {
            let r1 = try shell("cat a.ldl b.ldl | ld-prune -q --ratio 4 --rule \(rule) > p1.ldl")
            XCTAssertEqual(r1.status, 0, r1.err)
            let r2 = try run("ld-prune", ["-q", "--ratio", "4", "--rule", rule, "whole.ldl", "-o", "p2.ldl"])
            XCTAssertEqual(r2.status, 0, r2.err)
            let r3 = try run("ld-prune", ["-q", "--ratio", "4", "--rule", rule, "b.ldl", "a.ldl", "-o", "p3.ldl"])
            XCTAssertEqual(r3.status, 0, r3.err)
            // The headers differ only in the shard ranges; the records are the same.
            func records(_ f: String) throws -> [Substring] {
                String(decoding: try dump(f), as: UTF8.self).split(separator: "\n").filter { $0.contains("\"type\":\"record\"") }
                    .map { $0.replacingOccurrences(of: "\"source\":\"\(f)\"", with: "")[...] }
            }
            XCTAssertEqual(try records("p1.ldl").map { $0.replacingOccurrences(of: "\"source\":\"stdin\"", with: "") },
                           try records("p2.ldl").map { String($0) }, rule)
            if rule != "prefix" { XCTAssertEqual(try records("p3.ldl"), try records("p2.ldl"), rule) }
        }
        // A stream for other classes does not concatenate.
        try writeLabels("c.ldl", 40..<41, header: PruneToolTests.header(classes: 6))
        let bad = try shell("cat a.ldl c.ldl | ld-prune -q --ratio 4 > x.ldl")
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("does not match"), bad.err)
    }

    func testCompressedInAndOut() throws {
        try writeLabels("labels.ldl")
        let z = try run("ld-prune", ["-q", "--ratio", "4", "--zstd", "labels.ldl", "-o", "z.ldl"])
        XCTAssertEqual(z.status, 0, z.err)
        let head = try Data(contentsOf: URL(fileURLWithPath: path("z.ldl"))).prefix(4)
        XCTAssertEqual(Array(head), StreamFormat.zstdMagic)
        let plain = try run("ld-prune", ["-q", "--ratio", "4", "labels.ldl", "-o", "p.ldl"])
        XCTAssertEqual(plain.status, 0, plain.err)
        // A compressed input prunes to the same records.
        let again = try shell("ld-prune -q --ratio 1 < z.ldl > zz.ldl")
        XCTAssertEqual(again.status, 0, again.err)
        func records(_ f: String) throws -> [String] {
            String(decoding: try dump(f), as: UTF8.self).split(separator: "\n").filter { $0.contains("\"type\":\"record\"") }
                .map { $0.replacingOccurrences(of: "\"source\":\"\(f)\"", with: "") }
        }
        XCTAssertEqual(try records("z.ldl"), try records("p.ldl"))
        XCTAssertEqual(try records("zz.ldl"), try records("p.ldl"))
    }

    func testStorageReport() throws {
        try writeLabels("labels.ldl")
        try writeImages()
        let r = try run("ld-prune", ["-q", "--ratio", "4", "--report", "--data", "imgs.ldi", "labels.ldl", "-o", "out.ldl"])
        XCTAssertEqual(r.status, 0, r.err)
        let lines = r.err.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(lines.count, 4, r.err)
        let byType = Dictionary(uniqueKeysWithValues: lines.compactMap { $0 }.map { ($0["type"] as! String, $0) })
        let inSize = try FileManager.default.attributesOfItem(atPath: path("labels.ldl"))[.size] as! Int
        let outSize = try FileManager.default.attributesOfItem(atPath: path("out.ldl"))[.size] as! Int
        XCTAssertEqual(byType["labels_in"]?["total"] as? Int, inSize)
        XCTAssertEqual(byType["labels_out"]?["total"] as? Int, outSize)
        XCTAssertEqual(byType["summary"]?["records_out"] as? Int, 10)
        XCTAssertEqual(byType["summary"]?["bytes_out"] as? Int, outSize)
        XCTAssertNotNil(byType["images"]?["png_bytes"] as? Int)
        XCTAssertEqual(byType["images"]?["raw_bytes"] as? Int, 20 * 64)
        let parts = byType["labels_in"]?["bytes"] as! [String: Int]
        XCTAssertEqual(parts.values.reduce(0, +), inSize)
        XCTAssertEqual(parts["logits"], 40 * 4 * 5 * 2)
        // Golden, without the process's memory figure.
        var stable = ""
        for line in r.err.split(separator: "\n") {
            var o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            o.removeValue(forKey: "peak_rss_bytes")
            if o["type"] as? String == "images" { o.removeValue(forKey: "png_bytes"); o.removeValue(forKey: "labels_in_per_png"); o.removeValue(forKey: "labels_out_per_png") }
            stable += String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self) + "\n"
        }
        try assertGolden(Data(stable.utf8), "ld-prune", "report.ndjson")
        // --report-file.
        let f = try run("ld-prune", ["-q", "--ratio", "4", "--report-file", "rep.ndjson", "labels.ldl", "-o", "out2.ldl"])
        XCTAssertEqual(f.status, 0, f.err)
        XCTAssertEqual(f.err, "")
        XCTAssertEqual(try String(contentsOfFile: path("rep.ndjson"), encoding: .utf8).split(separator: "\n").count, 3)
    }

    /// Score stream for the tiny image set: el2n = index, forgetting = index % 3, aum = -index.
    func writeScores(_ name: String, for data: Dataset, columns: [String] = ["el2n", "forgetting", "aum", "correct"]) throws {
        let h = StreamHeader(kind: .scores, producer: "test", version: "test", classes: data.classes,
                             imageSetHash: data.contentHash, meta: ["columns": .array(columns.map { .string($0) })])
        let w = try StreamWriter(path: path(name), header: h)
        for i in 0..<data.count {
            let all: [String: Float] = ["el2n": Float(i), "forgetting": Float(i % 3), "aum": -Float(i), "correct": 1]
            try w.write(ScoreRecord(index: UInt64(i), values: columns.map { all[$0]! }))
        }
        try w.finish()
    }

    func testImageSelection() throws {
        let data = ToolFixtures.tinyImages(classes: 3, perClass: 12, size: 6, seed: 2)
        try data.writeStream(path: path("set.ldi"), producer: "test")
        try writeScores("scores.lds", for: data)
        // el2n easy: the lowest el2n (= lowest indices) per class.
        let r = try run("ld-prune", ["-q", "--data", "set.ldi", "--select", "el2n", "--keep", "easy", "--ipc", "3",
                                     "--scores", "scores.lds", "-o", "easy.ldi"])
        XCTAssertEqual(r.status, 0, r.err)
        let h = try StreamReader(path: path("easy.ldi")).header
        let src = h.meta["source_indices"]?.arrayValue?.compactMap { $0.doubleValue.map { Int($0) } }
        XCTAssertEqual(src, [0, 3, 6, 1, 4, 7, 2, 5, 8])
        let sub = try Dataset.load(path("easy.ldi"))
        XCTAssertEqual(sub.classCounts(), [3, 3, 3])
        XCTAssertEqual(sub.pixels, try data.subset(src!).pixels)
        try assertGolden(try dump("easy.ldi"), "ld-prune", "select-el2n-easy.ndjson")
        // aum hard = lowest AUM = highest indices.
        XCTAssertEqual(try run("ld-prune", ["-q", "--data", "set.ldi", "--select", "aum", "--ipc", "2", "--scores", "scores.lds", "-o", "hard.ldi"]).status, 0)
        let hard = try StreamReader(path: path("hard.ldi")).header.meta["source_indices"]?.arrayValue?.compactMap { $0.doubleValue.map { Int($0) } }
        XCTAssertEqual(hard, [30, 33, 31, 34, 32, 35])
        // ccs and random, also as a PNG folder that loads back to the same images.
        for sel in ["ccs", "random"] {
            var args = ["-q", "--data", "set.ldi", "--select", sel, "--ipc", "4", "--seed", "3", "-o", "\(sel).ldi", "--png", "\(sel)-png"]
            if sel == "ccs" { args += ["--scores", "scores.lds", "--ccs-strata", "4"] }
            let c = try run("ld-prune", args)
            XCTAssertEqual(c.status, 0, c.err)
            let fromStream = try Dataset.load(path("\(sel).ldi"))
            let fromFolder = try Dataset.load(path("\(sel)-png"))
            XCTAssertEqual(fromFolder.pixels, fromStream.pixels)
            XCTAssertEqual(fromFolder.labels, fromStream.labels)
            XCTAssertEqual(fromFolder.mean, data.mean)
            XCTAssertEqual(fromFolder.classNames, data.classNames)
            XCTAssertEqual(fromStream.classCounts(), [4, 4, 4])
            try assertGolden(try dump("\(sel).ldi"), "ld-prune", "select-\(sel).ndjson")
        }
        XCTAssertEqual(try Dataset.load(path("random.ldi")).pixels, try data.classBalancedSubset(ipc: 4, seed: 3).pixels)
        let again = try run("ld-prune", ["-q", "--data", "set.ldi", "--ipc", "4", "--png", "random-png"])
        assertOneLineError(again, mentioning: "already exists")
    }

    func testFashionMNISTRandomSubset() throws {
        guard FileManager.default.fileExists(atPath: DatasetSpec.fashionMNISTDefaultDirectory + "/train-labels-idx1-ubyte.gz") else {
            throw XCTSkip("Fashion-MNIST is not installed")
        }
        let r = try run("ld-prune", ["--data", "fmnist:train", "--select", "random", "--ipc", "10", "--seed", "0", "-o", "subset.ldi"])
        XCTAssertEqual(r.status, 0, r.err)
        let s = try Dataset.load(path("subset.ldi"))
        XCTAssertEqual(s.count, 100)
        XCTAssertEqual(s.classCounts(), [Int](repeating: 10, count: 10))
        XCTAssertEqual(s.classNames.count, 10)
    }

    func testBadInput() throws {
        try writeLabels("labels.ldl")
        try writeImages()
        let data = ToolFixtures.tinyImages(classes: 3, perClass: 12, size: 6, seed: 2)
        try data.writeStream(path: path("set.ldi"), producer: "test")
        try writeScores("scores.lds", for: data)
        try writeScores("other.lds", for: PruneToolTests.images)
        try writeScores("noaum.lds", for: data, columns: ["el2n"])

        assertOneLineError(try run("ld-prune", ["--ratio", "4", "imgs.ldi"]), mentioning: "expected 'labels'")
        assertOneLineError(try run("ld-prune", ["--ratio", "4", "missing.ldl"]), mentioning: "missing.ldl")
        XCTAssertEqual(try run("ld-prune", ["--ratio", "0.5", "labels.ldl"]).status, 64)
        XCTAssertEqual(try run("ld-prune", ["labels.ldl"]).status, 64, "no --ratio")
        XCTAssertEqual(try run("ld-prune", ["--ratio", "4", "--keep", "easy", "labels.ldl"]).status, 64, "--keep with random")
        XCTAssertEqual(try run("ld-prune", ["--ratio", "4", "--rule", "correct", "labels.ldl"]).status, 64, "correct without --data")
        assertOneLineError(try run("ld-prune", ["--ratio", "100", "labels.ldl", "-o", "x.ldl"]), mentioning: "keeps round")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.ldl")), "no output on failure")
        assertOneLineError(try run("ld-prune", ["--ratio", "4", "--data", "set.ldi", "labels.ldl"]), mentioning: "image set")
        // Truncated input.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path("labels.ldl")))
        try bytes.prefix(bytes.count - 30).write(to: URL(fileURLWithPath: path("cut.ldl")))
        assertOneLineError(try run("ld-prune", ["--ratio", "4", "cut.ldl", "-o", "y.ldl"]), mentioning: "cut.ldl")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("y.ldl")))

        assertOneLineError(try run("ld-prune", ["--data", "set.ldi", "--ipc", "13", "-o", "s.ldi"]), mentioning: "fewer than --ipc 13")
        assertOneLineError(try run("ld-prune", ["--data", "set.ldi", "--ipc", "2", "--select", "el2n", "--scores", "other.lds", "-o", "s.ldi"]),
                           mentioning: "scores are for image set")
        assertOneLineError(try run("ld-prune", ["--data", "set.ldi", "--ipc", "2", "--select", "aum", "--scores", "noaum.lds", "-o", "s.ldi"]),
                           mentioning: "no column 'aum'")
        assertOneLineError(try run("ld-prune", ["--data", "set.ldi", "--ipc", "2", "--select", "el2n", "--scores", "labels.ldl", "-o", "s.ldi"]),
                           mentioning: "expected 'scores'")
        XCTAssertEqual(try run("ld-prune", ["--data", "set.ldi", "--ipc", "2", "--select", "el2n"]).status, 64, "missing --scores")
        XCTAssertEqual(try run("ld-prune", ["--data", "set.ldi", "--ipc", "2", "--ratio", "4"]).status, 64)
        XCTAssertEqual(try run("ld-prune", ["--data", "set.ldi"]).status, 64, "no --ipc")
        XCTAssertEqual(try run("ld-prune", ["--data", "set.ldi", "--ipc", "2", "--select", "ccs", "--scores", "scores.lds", "--ccs-cutoff", "1"]).status, 64)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("s.ldi")))
    }

    /// A label stream many times larger than what pruning keeps: the peak RSS grows by far less than the stream.
    func testMemoryStaysNearTheKeptRecords() throws {
        // ~24 MB: 2000 records of 50 images x 100 classes (fp16).
        let h = StreamHeader(kind: .labels, producer: "test", version: "test", classes: 100)
        let w = try StreamWriter(path: path("big.ldl"), header: h)
        let logits = Logits.half([Float16](repeating: 0.5, count: 50 * 100))
        for g in 0..<2000 {
            try w.write(LabelBatchRecord(batch: UInt64(g), epoch: 0, classes: 100,
                                         indices: (0..<50).map { UInt32($0) }, crops: [CropBox](repeating: .zero, count: 50),
                                         flips: [Bool](repeating: false, count: 50), logits: logits))
        }
        try w.finish()
        try writeLabels("small.ldl", 0..<40)
        func peak(_ file: String) throws -> Int {
            let r = try run("ld-prune", ["-q", "--ratio", "40", "--report", file, "-o", "o-\(file)"])
            XCTAssertEqual(r.status, 0, r.err)
            let last = r.err.split(separator: "\n").last!
            return (try JSONSerialization.jsonObject(with: Data(last.utf8)) as! [String: Any])["peak_rss_bytes"] as! Int
        }
        let streamBytes = try FileManager.default.attributesOfItem(atPath: path("big.ldl"))[.size] as! Int
        let big = try peak("big.ldl"), small = try peak("small.ldl")
        XCTAssertLessThan(big - small, streamBytes / 4, "peak RSS \(big) vs \(small) for a \(streamBytes)-byte stream")
    }

    /// The large measurement (not part of `make test`): LD_PRUNE_MEMORY_MB=1000 pipes a generated stream of that
    /// size (records of 50 images x 1000 classes, fp16; header declaring 100 batches per epoch) into
    /// `/usr/bin/time -v ld-prune --ratio 40 --rule $LD_PRUNE_MEMORY_RULE` (default random) and prints the peak RSS.
    func testLargeStreamMemoryBenchmark() throws {
        guard let mbText = ProcessInfo.processInfo.environment["LD_PRUNE_MEMORY_MB"], let mb = Int(mbText) else {
            throw XCTSkip("set LD_PRUNE_MEMORY_MB to run")
        }
        let recordBytes = 50 * 17 + 24 + 50 * 1000 * 2
        let epochs = max(1, (mb * 1_000_000 / recordBytes + 99) / 100)
        let count = epochs * 100
        let rule = ProcessInfo.processInfo.environment["LD_PRUNE_MEMORY_RULE"] ?? "random"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/time")
        p.arguments = ["-v", try binary("ld-prune"), "--ratio", "40", "--rule", rule, "-q", "--report", "-o", path("pruned.ldl")]
        let input = Pipe(), err = Pipe()
        p.standardInput = input
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let h = StreamHeader(kind: .labels, producer: "test", version: "test", classes: 1000,
                             meta: ["epochs": .int(Int64(epochs)), "batches_per_epoch": .int(100)])
        let writer = try StreamWriter(sink: OutputFile(fd: input.fileHandleForWriting.fileDescriptor, name: "pipe", owned: false), header: h)
        var rng = LDRandom(seed: 1, stage: .test)
        var values = [Float16](repeating: 0, count: 50 * 1000)
        for g in 0..<count {
            for i in stride(from: 0, to: values.count, by: 97) { values[i] = Float16(Float(rng.uniformFloat())) }
            try writer.write(LabelBatchRecord(batch: UInt64(g), epoch: UInt32(g / 100), classes: 1000,
                                              indices: (0..<50).map { UInt32($0) }, crops: [CropBox](repeating: .zero, count: 50),
                                              flips: [Bool](repeating: false, count: 50), logits: .half(values)))
        }
        try writer.finish()
        try input.fileHandleForWriting.close()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, e)
        let rss = e.split(separator: "\n").first { $0.contains("Maximum resident set size") } ?? "?"
        print("ld-prune --ratio 40 --rule \(rule) on a \(count)-record, \(count * (recordBytes + 20)) byte stream: \(rss.trimmingCharacters(in: .whitespaces))")
        print(e.split(separator: "\n").filter { $0.hasPrefix("{") }.joined(separator: "\n"))
    }
}
