import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// Prune-Combine-Augment end to end: `ld-prune --combine F` then `ld-train --hard --grid-aware-crop`.
final class CombineToolTests: ToolTestCase {
    /// 3 classes x 12 images of 1x8x8 (F = 2 gives 4x4 cells).
    let data = ToolFixtures.tinyImages(classes: 3, perClass: 12, size: 8, seed: 2)

    /// EL2N of image i: (7 i) mod 36, so the easiest images of a class are not simply its first ones.
    func el2n(_ i: Int) -> Float { Float((7 * i) % 36) }

    func writeInputs() throws {
        try data.writeStream(path: path("set.ldi"), producer: "test")
        let h = StreamHeader(kind: .scores, producer: "test", version: "test", classes: data.classes,
                             imageSetHash: data.contentHash, meta: ["columns": .array([.string("el2n")])])
        let w = try StreamWriter(path: path("scores.lds"), header: h)
        for i in 0..<data.count { try w.write(ScoreRecord(index: UInt64(i), values: [el2n(i)])) }
        try w.finish()
    }

    /// Class c's images, easiest (lowest EL2N) first.
    func easiest(_ c: Int) -> [Int] {
        data.classIndices()[c].sorted { el2n($0) != el2n($1) ? el2n($0) < el2n($1) : $0 < $1 }
    }

    func cellSources(_ meta: [String: JSONValue]) -> [[Int]]? {
        meta["cell_source_indices"]?.arrayValue?.map { $0.arrayValue?.compactMap { $0.doubleValue.map { Int($0) } } ?? [] }
    }

    func testCombineWritesKCanvasesOfTheEasiestImages() throws {
        try writeInputs()
        let r = try run("ld-prune", ["-q", "--threads", "1", "--data", "set.ldi", "--scores", "scores.lds", "--select", "el2n",
                                     "--keep", "easy", "--ipc", "1", "--combine", "2", "-o", "pca.ldi", "--png", "pca-png"])
        XCTAssertEqual(r.status, 0, r.err)
        let header = try StreamReader(path: path("pca.ldi")).header
        XCTAssertEqual(header.meta["grid"], .int(2))
        XCTAssertEqual(try Dataset.load(path("pca.ldi")).grid, 2)
        XCTAssertEqual(try Dataset.load(path("pca-png")).grid, 2)
        XCTAssertNil(try Dataset.load(path("set.ldi")).grid)
        let canvases = try Dataset.load(path("pca.ldi"))
        XCTAssertEqual(canvases.classCounts(), [1, 1, 1])
        XCTAssertEqual([canvases.height, canvases.width], [8, 8])
        let grid = try ImageGrid(height: 8, width: 8, factor: 2)
        // K = 1: the n-th easiest image of class c is cell n of canvas c.
        let sources = cellSources(header.meta)
        XCTAssertEqual(sources, (0..<3).map { Array(easiest($0).prefix(4)) })
        for c in 0..<3 {
            let cells = Combine.cells(of: canvases, image: c, grid: grid)
            for (n, src) in easiest(c).prefix(4).enumerated() {
                let original = Array(data.pixels[src * 64..<(src + 1) * 64])
                XCTAssertEqual(cells[n], AreaResampler(from: (8, 8), to: (4, 4)).resize(original, channels: 1), "class \(c) cell \(n)")
            }
        }
        // The PNG folder holds the same canvases and the same meta.
        let folder = try Dataset.load(path("pca-png"))
        XCTAssertEqual(folder.pixels, canvases.pixels)
        let manifest = try JSONDecoder().decode([String: JSONValue].self, from: Data(contentsOf: URL(fileURLWithPath: path("pca-png/manifest.json"))))
        XCTAssertEqual(manifest["grid"], .int(2))
        XCTAssertEqual(cellSources(manifest), sources)
        try assertGolden(try run("ld-prune", ["--dump", "pca.ldi"]).out, "ld-prune", "combine-el2n-easy.ndjson")

        // K = 2: rank n goes to canvas n mod 2, cell n div 2.
        let k2 = try run("ld-prune", ["-q", "--data", "set.ldi", "--scores", "scores.lds", "--select", "el2n",
                                      "--keep", "easy", "--ipc", "2", "--combine", "2", "-o", "pca2.ldi"])
        XCTAssertEqual(k2.status, 0, k2.err)
        let s2 = cellSources(try StreamReader(path: path("pca2.ldi")).header.meta)!
        XCTAssertEqual(s2.count, 6)
        for c in 0..<3 {
            let e = easiest(c)
            XCTAssertEqual(s2[2 * c], [e[0], e[2], e[4], e[6]])
            XCTAssertEqual(s2[2 * c + 1], [e[1], e[3], e[5], e[7]])
        }

        // Then ld-train with the grid-aware crop, a few epochs, deterministic.
        let train = ["--data", "pca2.ldi", "--val", "set.ldi", "--hard", "--grid-aware-crop", "--epochs", "3",
                     "--batch-size", "4", "--width", "4", "--depth", "2", "--seed", "1", "--threads", "1", "-q"]
        let t1 = try run("ld-train", train)
        XCTAssertEqual(t1.status, 0, t1.err)
        let last = t1.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let summary = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any] ?? [:]
        XCTAssertEqual(summary["grid_aware_crop"] as? Int, 2)
        XCTAssertEqual(summary["epochs"] as? Int, 3)
        XCTAssertEqual(summary["source"] as? String, "hard")
        let t2 = try run("ld-train", train)
        func withoutWall(_ s: String) -> String { s.replacingOccurrences(of: #""wall_s":[0-9.]+"#, with: "", options: .regularExpression) }
        XCTAssertEqual(withoutWall(t2.stdout), withoutWall(t1.stdout))
        var stable = ""
        for line in t1.stdout.split(separator: "\n") {
            var o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            o.removeValue(forKey: "wall_s")
            stable += String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self) + "\n"
        }
        try assertGolden(Data(stable.utf8), "ld-train", "hard-grid-aware-crop.ndjson")
        // The folder form, and --grid forcing a grid on a set without one.
        XCTAssertEqual(try run("ld-train", ["--data", "pca-png", "--val", "set.ldi", "--hard", "--grid-aware-crop", "--epochs", "1",
                                            "--width", "4", "--depth", "2", "-q"]).status, 0)
        let forced = try run("ld-train", ["--data", "set.ldi", "--val", "set.ldi", "--hard", "--grid-aware-crop", "--grid", "2",
                                          "--epochs", "1", "--width", "4", "--depth", "2", "-q"])
        XCTAssertEqual(forced.status, 0, forced.err)
    }

    func testBadInput() throws {
        try writeInputs()
        let base = ["--data", "set.ldi", "--scores", "scores.lds", "--select", "el2n", "--keep", "easy", "-o", "x.ldi"]
        XCTAssertEqual(try run("ld-prune", base + ["--ipc", "1", "--combine", "0"]).status, 64)
        XCTAssertEqual(try run("ld-prune", ["--ratio", "4", "--combine", "2", "-o", "x.ldi", "labels.ldl"]).status, 64)
        // 3 x 2^2 = 12 per class is all there is; 4 x 4 = 16 is too many.
        assertOneLineError(try run("ld-prune", base + ["--ipc", "4", "--combine", "2"]), mentioning: "fewer than the 16")
        assertOneLineError(try run("ld-prune", base + ["--ipc", "1", "--combine", "9"]), mentioning: "too large")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.ldi")), "no output on failure")

        let train = ["--val", "set.ldi", "--width", "4", "--depth", "2", "--epochs", "1", "-q"]
        assertOneLineError(try run("ld-train", ["--data", "set.ldi", "--hard", "--grid-aware-crop", "-o", "m.ldm"] + train),
                           mentioning: "records no grid")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("m.ldm")))
        XCTAssertEqual(try run("ld-train", ["--data", "set.ldi", "--labels", "labels.ldl", "--grid-aware-crop"] + train).status, 64)
        XCTAssertEqual(try run("ld-train", ["--data", "set.ldi", "--hard", "--grid", "2"] + train).status, 64, "--grid alone")
        XCTAssertEqual(try run("ld-train", ["--data", "set.ldi", "--hard", "--grid-aware-crop", "--grid", "2",
                                            "--augment", "crop"] + train).status, 64)
        assertOneLineError(try run("ld-train", ["--data", "set.ldi", "--hard", "--grid-aware-crop", "--grid", "9"] + train),
                           mentioning: "too large")
    }
}
