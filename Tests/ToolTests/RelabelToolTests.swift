import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// ld-relabel end to end: golden stream and dump, replay of the stored parameters, shards, pipes, bad input.
final class RelabelToolTests: ToolTestCase {
    /// 8 images of 4 classes (1x8x8) as an image stream, and the tiny teacher for them.
    @discardableResult
    func fixtures() throws -> (data: Dataset, teacher: ModelFile) {
        let data = ToolFixtures.tinyImages(classes: 4, perClass: 2)
        try data.writeStream(path: path("images.ldi"), producer: "test")
        let teacher = try ToolFixtures.tinyTeacher(for: data, path: path("teacher.ldm"))
        return (data, teacher)
    }

    /// The golden run's arguments (3 epochs, batch 4, fixed seed, one thread) plus `extra`.
    func relabelArgs(_ extra: [String]) -> [String] {
        ["--teacher", "teacher.ldm", "--data", "images.ldi", "--epochs", "3", "--batch-size", "4", "--seed", "7",
         "--threads", "1", "-q"] + extra
    }

    /// The label records of a (possibly concatenated) stream file: kinds and payload bytes.
    func labelRecords(_ file: String) throws -> [[UInt8]] {
        let r = try StreamReader(path: file)
        try r.expect(kind: .labels)
        r.requireMatchingHeaders()
        var out: [[UInt8]] = []
        while let rec = try r.next() {
            XCTAssertEqual(rec.kind, .labels)
            out.append(rec.payload)
        }
        return out
    }

    func testGoldenStreamAndDump() throws {
        try fixtures()
        for (name, extra) in [("tiny-cutmix", [String]()), ("tiny-mixup-top2", ["--mix", "mixup", "--top-k", "2"])] {
            let r = try run("ld-relabel", relabelArgs(extra + ["-o", "\(name).ldl"]))
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertEqual(r.err, "", "-q prints nothing")
            try assertGoldenFile(path("\(name).ldl"), "ld-relabel", "\(name).ldl")
            let dump = try run("ld-prune", ["--dump", "\(name).ldl"])
            XCTAssertEqual(dump.status, 0, dump.err)
            try assertGolden(dump.out, "ld-relabel", "\(name).ndjson")
            let lines = dump.stdout.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.count, 1 + 3 * 2 + 1, "header, 3 epochs of 2 batches, end")
            for key in ["\"epochs\":3", "\"epoch_start\":0", "\"epoch_end\":3", "\"batch_size\":4", "\"batches_per_epoch\":2",
                        "\"images\":8", "\"teacher_hash\"", "\"image_set_hash\"", "\"logits\":"] {
                XCTAssertTrue(lines[0].contains(key), "header lacks \(key): \(lines[0])")
            }
            for key in ["\"batch\":5", "\"epoch\":2", "\"indices\":", "\"crops\":", "\"flips\":", "\"mix\":", "\"permutation\":",
                        "\"lambda\":", "\"box\":", "\"logits\":"] {
                XCTAssertTrue(lines[6].contains(key), "last record lacks \(key): \(lines[6])")
            }
        }
    }

    func testReplayGivesTheStoredLogits() throws {
        let (data, _) = try fixtures()
        for extra in [["--mix", "cutmix"], ["--mix", "mixup", "--logits", "fp32"], ["--mix", "none", "--top-k", "3"]] {
            let r = try run("ld-relabel", relabelArgs(extra + ["-o", "labels.ldl", "--batch-size", "3"]))
            XCTAssertEqual(r.status, 0, r.err)
            // A fresh teacher from the file, as a consumer would load it.
            let teacher = try ModelFile.load(path: path("teacher.ldm"))
            teacher.model.training = false
            let builder = try LabelBatchBuilder(data: data, normalization: Normalization(of: teacher))
            let reader = try StreamReader(path: path("labels.ldl"))
            try reader.expect(kind: .labels)
            XCTAssertEqual(reader.header.teacherHash, teacher.hash)
            XCTAssertEqual(reader.header.imageSetHash, data.contentHash)
            var count = 0
            while let rec = try reader.next() {
                let m = try LabelBatchRecord(rec, header: reader.header)
                try m.validate(images: data, source: "labels.ldl")
                let y = teacher.model.forward(try builder.build(m)).array
                let k = data.classes
                switch m.logits {
                case .half(let v):
                    for (a, b) in zip(y, v) { XCTAssertEqual(Float(Float16(a)), Float(b), "\(extra) batch \(m.batch)") }
                case .single(let v):
                    for (a, b) in zip(y, v) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(a)), "\(extra) batch \(m.batch)") }
                case .topK(let kk, let ids, let vals):
                    for i in 0..<m.count {
                        let row = Array(y[i * k..<(i + 1) * k])
                        let order = (0..<k).sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
                        for j in 0..<kk {
                            XCTAssertEqual(Int(ids[i * kk + j]), order[j], "\(extra) batch \(m.batch) image \(i)")
                            XCTAssertEqual(Float(Float16(row[order[j]])), Float(vals[i * kk + j]))
                        }
                    }
                }
                count += 1
            }
            XCTAssertEqual(count, 3 * 3, "8 images in batches of 3: 3 per epoch")
        }
    }

    func testShardsConcatenateIntoTheWholeRun() throws {
        try fixtures()
        XCTAssertEqual(try run("ld-relabel", relabelArgs(["--epochs", "0:3", "-o", "all.ldl"])).status, 0)
        XCTAssertEqual(try run("ld-relabel", relabelArgs(["--epochs", "0:2", "--epochs-total", "3", "-o", "a.ldl"])).status, 0)
        // The second shard through stdout and with zstd: neither changes a record.
        let r = try shell("ld-relabel \(relabelArgs(["--epochs", "2:3", "--epochs-total", "3", "--zstd"]).joined(separator: " ")) > b.ldl && cat a.ldl b.ldl > ab.ldl")
        XCTAssertEqual(r.status, 0, r.err)
        let whole = try labelRecords(path("all.ldl")), shards = try labelRecords(path("ab.ldl"))
        XCTAssertEqual(whole.count, 6)
        XCTAssertEqual(shards, whole, "the shards' label records equal the whole run's byte for byte")
        // The headers differ only in the epoch range.
        let ha = try StreamReader(path: path("a.ldl")).header, hb = try StreamReader(path: path("b.ldl")).header
        var hw = try StreamReader(path: path("all.ldl")).header
        XCTAssertEqual(ha.meta["epoch_end"], .int(2))
        XCTAssertEqual(hb.meta["epoch_start"], .int(2))
        for h in [ha, hb] {
            hw.meta["epoch_start"] = h.meta["epoch_start"]
            hw.meta["epoch_end"] = h.meta["epoch_end"]
            XCTAssertEqual(h, hw)
        }
        // Plain --epochs 3 is 0:3.
        XCTAssertEqual(try run("ld-relabel", relabelArgs(["-o", "plain.ldl"])).status, 0)
        XCTAssertEqual(FileManager.default.contents(atPath: path("plain.ldl")), FileManager.default.contents(atPath: path("all.ldl")))
    }

    func testThreadCountDoesNotChangeTheDraws() throws {
        try fixtures()
        XCTAssertEqual(try run("ld-relabel", relabelArgs(["-o", "one.ldl"])).status, 0)
        XCTAssertEqual(try run("ld-relabel", relabelArgs(["--threads", "2", "-o", "two.ldl"])).status, 0)
        let header = try StreamReader(path: path("one.ldl")).header
        let a = try labelRecords(path("one.ldl")), b = try labelRecords(path("two.ldl"))
        XCTAssertEqual(a.count, b.count)
        for (x, y) in zip(a, b) {
            var p = try x.withUnsafeBytes { try LabelBatchRecord(payload: $0, header: header, context: RecordContext(source: "a", stream: 0, record: 0, kind: .labels)) }
            let q = try y.withUnsafeBytes { try LabelBatchRecord(payload: $0, header: header, context: RecordContext(source: "b", stream: 0, record: 0, kind: .labels)) }
            p.logits = q.logits   // logits may differ in the last bits of GEMM sums; the draws may not
            XCTAssertEqual(p, q)
        }
    }

    func testStoppedDownstreamEndsQuietly() throws {
        try fixtures()
        // About 2 MB of records: far more than the pipe and the writer's buffer hold.
        let r = try shell("ld-relabel \(relabelArgs(["--epochs", "4000", "--logits", "fp32"]).joined(separator: " ")) | head -c 100 > /dev/null")
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.err, "")
    }

    func testProgressGoesToStderr() throws {
        try fixtures()
        let r = try run("ld-relabel", Array(relabelArgs(["-o", "p.ldl"]).filter { $0 != "-q" }))
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.isEmpty)
        XCTAssertTrue(r.err.contains("relabel epochs 0:3"), r.err)
        XCTAssertTrue(r.err.contains("6/6 batch"), r.err)
    }

    func testBadInput() throws {
        let (data, _) = try fixtures()
        // Images that do not fit the teacher: 3 channels, 10x10, 3 classes.
        let rgb = Dataset(pixels: [UInt8](repeating: 9, count: 8 * 3 * 64), labels: data.labels, classes: 4, channels: 3,
                          height: 8, width: 8, mean: [0.5, 0.5, 0.5], std: [0.3, 0.3, 0.3], classNames: data.classNames, source: "rgb")
        try rgb.writeStream(path: path("rgb.ldi"), producer: "test")
        try ToolFixtures.tinyImages(classes: 4, perClass: 2, size: 10).writeStream(path: path("big.ldi"), producer: "test")
        var renamed = ToolFixtures.tinyImages(classes: 4, perClass: 2)
        renamed.classNames[2] = "x2"
        try renamed.writeStream(path: path("renamed.ldi"), producer: "test")
        for (images, mention) in [("rgb.ldi", "3x8x8 images"), ("big.ldi", "1x10x10 images"), ("renamed.ldi", "'x2'"),
                                  ("missing.ldi", "missing.ldi")] {
            let r = try run("ld-relabel", relabelArgs(["--data", images, "-o", "out.ldl"]))
            assertOneLineError(r, mentioning: mention)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.ldl")))
        }
        assertOneLineError(try run("ld-relabel", relabelArgs(["--teacher", "nope.ldm", "-o", "out.ldl"])), mentioning: "nope.ldm")
        assertOneLineError(try run("ld-relabel", relabelArgs(["--top-k", "5", "-o", "out.ldl"])), mentioning: "--top-k 5")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.ldl")))
        // Usage errors: exit 64, nothing on stdout.
        for extra in [["--epochs", "3:2"], ["--epochs", "0"], ["--epochs", "x"], ["--top-k", "0"], ["--batch-size", "0"],
                      ["--mix", "blend"], ["--crop-scale", "0.5,0.1"], ["--logits", "fp8"], ["--top-k", "2", "--logits", "fp32"],
                      ["--epochs", "0:4", "--epochs-total", "3"]] {
            let r = try run("ld-relabel", relabelArgs(extra + ["-o", "out.ldl"]))
            XCTAssertEqual(r.status, 64, "\(extra): \(r.err)")
            XCTAssertTrue(r.out.isEmpty)
            XCTAssertTrue(r.err.contains(extra[0]), "\(extra): \(r.err)")
        }
        // Binary output never goes to a terminal.
        let tty = try run("ld-relabel", relabelArgs([]), env: ["LD_FAKE_TTY": "stdout"])
        assertOneLineError(tty, mentioning: "terminal")
    }
}
