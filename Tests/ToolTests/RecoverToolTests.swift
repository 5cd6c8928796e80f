import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// ld-recover end to end on the tiny teacher: golden PNGs per method, shards that add up to the whole run,
/// resume, and bad input.
final class RecoverToolTests: ToolTestCase {
    static let methods = ["sre2l", "cda", "lpld"]

    /// The tiny teacher (2 classes, 1x8x8, with class statistics) at `dir/teacher.ldm`.
    @discardableResult
    func makeTeacher() throws -> ModelFile {
        try ToolFixtures.tinyTeacher(for: ToolFixtures.tinyImages(), path: path("teacher.ldm"))
    }

    /// The golden-run flags: IPC 2, 20 iterations, fixed seed, one thread.
    func args(_ method: String, _ extra: [String]) -> [String] {
        ["--teacher", "teacher.ldm", "--method", method, "--ipc", "2", "--iterations", "20", "--seed", "7",
         "--threads", "1", "-q"] + extra
    }

    /// Every PNG under `folder`, relative path -> bytes.
    func pngs(_ folder: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let root = path(folder)
        for rel in FileManager.default.subpaths(atPath: root) ?? [] where rel.hasSuffix(".png") {
            out[rel] = FileManager.default.contents(atPath: root + "/" + rel)
        }
        return out
    }

    func testGoldenPerMethod() throws {
        try makeTeacher()
        for method in RecoverToolTests.methods {
            let r = try run("ld-recover", args(method, ["--png", "syn-\(method)"]))
            XCTAssertEqual(r.status, 0, r.err)
            let files = try pngs("syn-\(method)")
            XCTAssertEqual(files.keys.sorted(), ["000/ipc0000.png", "000/ipc0001.png", "001/ipc0000.png", "001/ipc0001.png"])
            for name in files.keys.sorted() {
                try assertGoldenFile(path("syn-\(method)/\(name)"), "ld-recover", "\(method)/\(name)")
            }
            // The summary line on stdout, and a manifest the folder loader reads.
            let summary = try JSONSerialization.jsonObject(with: r.out) as? [String: Any]
            XCTAssertEqual(summary?["images"] as? Int, 4)
            XCTAssertNotNil(summary?["bn_first"])
            let data = try Dataset.load(path("syn-\(method)"))
            XCTAssertEqual(data.count, 4)
            XCTAssertEqual(data.classNames, ["c0", "c1"])
            XCTAssertEqual(data.mean, [0.5])
            XCTAssertEqual(data.labels, [0, 0, 1, 1])
        }
    }

    /// Two shards by class (and, for sre2l, by IPC) equal the whole run: the folder byte for byte, the
    /// concatenated streams as the same image set.
    func testShardsEqualWholeRun() throws {
        try makeTeacher()
        let cases: [(String, [String], [[String]])] = [
            ("sre2l", ["--batch-size", "1"], [["--classes", "0:1"], ["--classes", "1:2"]]),
            ("sre2l", [], [["--ipc-start", "0", "--ipc-end", "1"], ["--ipc-start", "1", "--ipc-end", "2"]]),
            ("cda", ["--batch-size", "1"], [["--classes", "0:1"], ["--classes", "1:2"]]),
            ("lpld", [], [["--classes", "0:1"], ["--classes", "1:2"]]),
            ("lpld", ["--batch-size", "1"], [["--ipc-start", "0", "--ipc-end", "1"], ["--ipc-start", "1", "--ipc-end", "2"]]),
        ]
        for (k, (method, common, shards)) in cases.enumerated() {
            let whole = "whole\(k)", merged = "merged\(k)"
            var r = try run("ld-recover", args(method, common + ["--png", whole, "-o", "\(whole).ldi"]))
            XCTAssertEqual(r.status, 0, r.err)
            for (s, shard) in shards.enumerated() {
                r = try run("ld-recover", args(method, common + shard + ["--png", merged, "-o", "\(merged)-\(s).ldi"]))
                XCTAssertEqual(r.status, 0, "\(method) \(shard): \(r.err)")
            }
            let a = try pngs(whole), b = try pngs(merged)
            XCTAssertEqual(a.count, 4)
            XCTAssertEqual(a, b, "case \(k) \(method) \(common): shard folders differ from the whole run")
            r = try shell("cat \(merged)-0.ldi \(merged)-1.ldi > \(merged).ldi")
            XCTAssertEqual(r.status, 0, r.err)
            let w = try Dataset.load(path("\(whole).ldi")), m = try Dataset.load(path("\(merged).ldi"))
            XCTAssertEqual(w.pixels, m.pixels, "case \(k)")
            XCTAssertEqual(w.labels, m.labels)
            XCTAssertEqual(w.labels, [0, 0, 1, 1])
            // The stream holds the same images as the folder.
            let f = try Dataset.load(path(whole))
            XCTAssertEqual(f.pixels, w.pixels)
            XCTAssertEqual(f.contentHash, w.contentHash)
        }
    }

    func testResumeSkipsCompleteClassesAndRedoesTheRest() throws {
        try makeTeacher()
        var r = try run("ld-recover", args("lpld", ["--png", "syn"]))
        XCTAssertEqual(r.status, 0, r.err)
        let before = try pngs("syn")
        // Interrupted in class 1: one image and the manifest missing, a temporary left behind.
        let fm = FileManager.default
        try fm.removeItem(atPath: path("syn/001/ipc0001.png"))
        try fm.removeItem(atPath: path("syn/manifest.json"))
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path("syn/001/.ipc0001.png.tmp.99.0")))
        let inode0 = try fm.attributesOfItem(atPath: path("syn/000/ipc0000.png"))[.systemFileNumber] as? Int
        let inode1 = try fm.attributesOfItem(atPath: path("syn/001/ipc0000.png"))[.systemFileNumber] as? Int
        r = try run("ld-recover", args("lpld", ["--png", "syn"]).filter { $0 != "-q" })
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("1 of 2 batches already complete"), r.err)
        XCTAssertEqual(try pngs("syn"), before)
        XCTAssertTrue(fm.fileExists(atPath: path("syn/manifest.json")))
        XCTAssertFalse(fm.fileExists(atPath: path("syn/001/.ipc0001.png.tmp.99.0")))
        // Class 0 was skipped (its files untouched); class 1 was redone, its existing image kept.
        XCTAssertEqual(try fm.attributesOfItem(atPath: path("syn/000/ipc0000.png"))[.systemFileNumber] as? Int, inode0)
        XCTAssertEqual(try fm.attributesOfItem(atPath: path("syn/001/ipc0000.png"))[.systemFileNumber] as? Int, inode1)
        let summary = try JSONSerialization.jsonObject(with: r.out) as? [String: Any]
        XCTAssertEqual(summary?["synthesised"] as? Int, 2)
        XCTAssertEqual(summary?["images"] as? Int, 4)

        // A complete folder: nothing to do. A different run into it: refused.
        r = try run("ld-recover", args("lpld", ["--png", "syn"]))
        XCTAssertEqual(r.status, 0, r.err)
        r = try run("ld-recover", args("lpld", ["--png", "syn", "--seed", "8"]))
        assertOneLineError(r, mentioning: "different recover run")
        XCTAssertEqual(try pngs("syn"), before)
    }

    /// The manifest's `init_sources`: per class, the data set indices the images started from.
    func initSources(_ folder: String) throws -> [[Int]]? {
        let m = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path(folder + "/manifest.json")))) as? [String: Any]
        return m?["init_sources"] as? [[Int]]
    }

    /// `--init real` starts from the documented images (random: ld-prune's draw for the seed; confident: the
    /// teacher's lowest cross-entropy per class), its shards equal the whole run, and it records its sources.
    func testRealInitPicksTheDocumentedImagesAndShards() throws {
        let teacher = try makeTeacher()
        let data = ToolFixtures.tinyImages()
        try data.writeStream(path: path("images.ldi"), producer: "test")
        let real = ["--init", "real", "--data", "images.ldi"]

        var r = try run("ld-recover", args("lpld", real + ["--png", "random"]))
        XCTAssertEqual(r.status, 0, r.err)
        let draw = try data.classBalancedIndices(ipc: 2, seed: 7)
        XCTAssertEqual(try initSources("random"), [Array(draw[0..<2]), Array(draw[2..<4])])
        XCTAssertNotEqual(try pngs("random"), try { () -> [String: Data] in
            XCTAssertEqual(try run("ld-recover", args("lpld", ["--png", "noise"])).status, 0)
            return try pngs("noise")
        }())

        // confident: the two images of each class with the lowest cross-entropy, computed here from the logits.
        r = try run("ld-recover", args("lpld", real + ["--select", "confident", "--png", "confident"]))
        XCTAssertEqual(r.status, 0, r.err)
        let loader = try BatchLoader(data: data, normalization: Normalization(of: teacher))
        let logits = teacher.model.predict(try loader.load(Array(0..<data.count))).array
        let loss = (0..<data.count).map { i -> Double in
            let row = logits[(i * 2)..<(i * 2 + 2)].map(Double.init)
            return log(row.map { exp($0) }.reduce(0, +)) - row[Int(data.labels[i])]
        }
        var easiest: [[Int]] = []
        for c in 0..<2 {
            let members: [Int] = (0..<data.count).filter { Int(data.labels[$0]) == c }
            let ranked: [Int] = members.sorted { (a: Int, b: Int) -> Bool in loss[a] != loss[b] ? loss[a] < loss[b] : a < b }
            easiest.append(Array(ranked.prefix(2)))
        }
        XCTAssertEqual(try initSources("confident"), easiest)
        r = try run("ld-recover", args("lpld", real + ["--select", "confident", "--keep", "hard", "--png", "hard"]))
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertNotEqual(try initSources("hard"), easiest)

        // Shards (by class for lpld, by IPC index for sre2l) into one folder: the whole run's bytes.
        for (method, shards) in [("lpld", [["--classes", "0:1"], ["--classes", "1:2"]]),
                                 ("sre2l", [["--ipc-start", "0", "--ipc-end", "1"], ["--ipc-start", "1", "--ipc-end", "2"]])] {
            r = try run("ld-recover", args(method, real + ["--select", "confident", "--png", "whole-\(method)"]))
            XCTAssertEqual(r.status, 0, r.err)
            for shard in shards {
                r = try run("ld-recover", args(method, real + ["--select", "confident", "--png", "merged-\(method)"] + shard))
                XCTAssertEqual(r.status, 0, r.err)
            }
            XCTAssertEqual(try pngs("whole-\(method)"), try pngs("merged-\(method)"), method)
            XCTAssertEqual(try initSources("merged-\(method)"), easiest)
        }
        // Resume refuses a folder of another start.
        r = try run("ld-recover", args("lpld", real + ["--png", "confident"]))
        assertOneLineError(r, mentioning: "different recover run")

        // Bad input: usage (64) and a set the teacher cannot take, or too small for the IPC (1).
        for bad in [["--init", "real"], ["--data", "images.ldi"], ["--init", "real", "--data", "images.ldi", "--select", "el2n"],
                    ["--init", "real", "--data", "images.ldi", "--scores", "s.lds"],
                    ["--init", "real", "--data", "images.ldi", "--keep", "hard"]] {
            r = try run("ld-recover", args("lpld", bad + ["--png", "bad"]))
            XCTAssertEqual(r.status, 64, "\(bad): \(r.err)")
        }
        try ToolFixtures.tinyImages(size: 16).writeStream(path: path("big.ldi"), producer: "test")
        r = try run("ld-recover", args("lpld", ["--init", "real", "--data", "big.ldi", "--png", "bad"]))
        assertOneLineError(r, mentioning: "1x16x16")
        r = try run("ld-recover", args("lpld", real + ["--png", "bad"]).map { $0 == "2" ? "11" : $0 })
        assertOneLineError(r, mentioning: "fewer than --ipc 11")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad")))
    }

    /// `--teacher` twice: an ensemble weighted 1/K, so two copies of one teacher make the one-teacher images;
    /// the manifest names both.
    func testEnsembleOfTwoCopiesEqualsOneTeacher() throws {
        try makeTeacher()
        XCTAssertEqual(try shell("cp teacher.ldm copy.ldm").status, 0)
        var r = try run("ld-recover", args("sre2l", ["--png", "one"]))
        XCTAssertEqual(r.status, 0, r.err)
        r = try run("ld-recover", args("sre2l", ["--teacher", "copy.ldm", "--png", "two"]))
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try pngs("one"), try pngs("two"))
        let m = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("two/manifest.json")))) as? [String: Any]
        XCTAssertEqual(m?["teachers"] as? [String], ["teacher.ldm", "copy.ldm"])
        XCTAssertEqual((m?["teacher_hashes"] as? [String])?.count, 2)
        r = try run("ld-recover", args("sre2l", ["--teacher", "missing.ldm", "--png", "three"]))
        assertOneLineError(r, mentioning: "missing.ldm")
    }

    /// `--method rded`: shards by class and by IPC index equal the whole run; the summary names every cell's
    /// source; its bad options are usage errors.
    func testRDEDShardsEqualWholeRunAndRefusesTheOptimisersFlags() throws {
        try makeTeacher()
        try ToolFixtures.tinyImages().writeStream(path: path("images.ldi"), producer: "test")
        let base = ["--teacher", "teacher.ldm", "--method", "rded", "--data", "images.ldi", "--ipc", "2", "--combine", "2",
                    "--candidates", "8", "--seed", "3", "--threads", "1", "-q"]
        var r = try run("ld-recover", base + ["--png", "whole", "-o", "whole.ldi"])
        XCTAssertEqual(r.status, 0, r.err)
        let summary = try JSONSerialization.jsonObject(with: r.out) as? [String: Any]
        let sources = summary?["rded_sources"] as? [String: [[[Int]]]]
        XCTAssertEqual(sources?.keys.sorted(), ["0", "1"])
        XCTAssertEqual(sources?["0"]?.count, 2)          // 2 images
        XCTAssertEqual(sources?["0"]?[0].count, 4)       // 2 x 2 cells of [index, top, left, height, width]
        let data = ToolFixtures.tinyImages()
        for cell in sources?["1"]?.flatMap({ $0 }) ?? [] { XCTAssertEqual(data.labels[cell[0]], 1) }
        for shard in [["--classes", "0:1"], ["--classes", "1:2"]] {
            r = try run("ld-recover", base + shard + ["--png", "by-class"])
            XCTAssertEqual(r.status, 0, r.err)
        }
        for shard in [["--ipc-start", "0", "--ipc-end", "1"], ["--ipc-start", "1", "--ipc-end", "2"]] {
            r = try run("ld-recover", base + shard + ["--batch-size", "1", "--png", "by-ipc"])
            XCTAssertEqual(r.status, 0, r.err)
        }
        XCTAssertEqual(try pngs("whole").count, 4)
        XCTAssertEqual(try pngs("whole"), try pngs("by-class"))
        XCTAssertEqual(try pngs("whole"), try pngs("by-ipc"))
        XCTAssertEqual(try Dataset.load(path("whole.ldi")).pixels, try Dataset.load(path("whole")).pixels)
        // Another seed draws other candidates and crops.
        r = try run("ld-recover", base.map { $0 == "3" ? "4" : $0 } + ["--png", "other"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertNotEqual(try pngs("whole"), try pngs("other"))

        for bad in [["--iterations", "5"], ["--lr", "0.1"], ["--init", "real"], ["--teacher", "teacher.ldm"], ["--select", "confident"],
                    ["--milestone", "0.5"], ["--crops", "0"], ["--ipc-start", "2"], ["--batch-size", "0"]] {
            r = try run("ld-recover", base + bad + ["--png", "bad"])
            XCTAssertEqual(r.status, 64, "\(bad): \(r.err)")
        }
        r = try run("ld-recover", ["--teacher", "teacher.ldm", "--method", "rded", "--png", "bad"])
        XCTAssertEqual(r.status, 64)
        XCTAssertTrue(r.err.contains("--data"), r.err)
        r = try run("ld-recover", args("lpld", ["--combine", "2", "--png", "bad"]))
        XCTAssertEqual(r.status, 64)
        r = try run("ld-recover", base.map { $0 == "8" ? "6" : $0 } + ["--png", "bad"])
        assertOneLineError(r, mentioning: "needs --combine^2 x --ipc = 8")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad")))
    }

    func testBadInput() throws {
        let data = ToolFixtures.tinyImages()
        try ToolFixtures.tinyTeacher(for: data, path: path("teacher.ldm"))
        // A teacher without class statistics.
        var rng = LDRandom(seed: 1, stage: .weightInit)
        let model = try Model(.convnet(width: 4, depth: 2, channels: 1, imageSize: 8, classes: 2), rng: &rng)
        var plain = ModelFile(model: model, mean: [0.5], std: [0.3], classNames: ["a", "b"])
        try plain.save(path: path("plain.ldm"), producer: "test")

        var r = try run("ld-recover", ["--teacher", "missing.ldm", "--png", "out"])
        assertOneLineError(r, mentioning: "missing.ldm")
        r = try run("ld-recover", ["--teacher", "plain.ldm", "--method", "lpld", "--png", "out"])
        assertOneLineError(r, mentioning: "ld-squeeze --class-stats")
        r = try run("ld-recover", args("sre2l", ["--classes", "0:5", "--png", "out"]))
        assertOneLineError(r, mentioning: "--classes 0:5")
        r = try run("ld-recover", args("sre2l", ["--classes", "0:1", "--png", "out"]))
        assertOneLineError(r, mentioning: "cuts a batch")
        r = try run("ld-recover", args("lpld", ["--ipc-start", "1", "--png", "out"]))
        assertOneLineError(r, mentioning: "cuts a batch")
        try Data("x".utf8).write(to: URL(fileURLWithPath: path("file")))
        r = try run("ld-recover", args("sre2l", ["--png", "file/sub"]))
        assertOneLineError(r, mentioning: "file/sub")
        r = try run("ld-recover", args("sre2l", ["-o", "nodir/x.ldi"]))
        assertOneLineError(r, mentioning: "nodir/x.ldi")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out")))

        // Usage errors (exit 64): impossible ranges, ipc 0, options of another method, no output.
        for bad in [["--classes", "5:3"], ["--ipc", "0"], ["--ipc-start", "2", "--ipc-end", "1"], ["--ipc-end", "11"],
                    ["--milestone", "0.5"], ["--crop-scale", "0.5,2"], ["--method", "dc"], ["--batch-size", "0"]] {
            r = try run("ld-recover", ["--teacher", "teacher.ldm", "--png", "out"] + bad)
            XCTAssertEqual(r.status, 64, "\(bad): \(r.err)")
            XCTAssertTrue(r.out.isEmpty)
        }
        r = try run("ld-recover", ["--teacher", "teacher.ldm"])
        XCTAssertEqual(r.status, 64)
        XCTAssertTrue(r.err.contains("nothing to write"), r.err)
    }
}
