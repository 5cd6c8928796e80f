import Foundation
import LDKernels
import LDData
import LDRecords
import LDNetworks
import XCTest

/// Image folders kept on disk (`Memory.dataBudget` below their decoded size): the same images, labels,
/// subsets, batches and evaluations as the same folder in memory; labels files (`list:`).
final class OnDiskDataTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "ld-ondisk-\(UUID().uuidString)"
        var rng = LDRandom(seed: 9, stage: .subset)
        for c in 0..<3 {
            try FileManager.default.createDirectory(atPath: "\(dir)/set/c\(c)", withIntermediateDirectories: true)
            for k in 0..<7 {
                let (h, w) = [(12, 12), (20, 14), (9, 31)][k % 3]
                let px = (0..<(3 * h * w)).map { i in UInt8(truncatingIfNeeded: i * (c + 2) + Int(rng.next() % 11)) }
                try Data(try JPEG.encode(px, channels: 3, height: h, width: w, quality: 90))
                    .write(to: URL(fileURLWithPath: "\(dir)/set/c\(c)/\(k).jpg"))
            }
        }
    }

    override func tearDown() {
        Memory.dataBudget = Memory.available / 4
        try? FileManager.default.removeItem(atPath: dir)
    }

    func load(onDisk: Bool) throws -> Dataset {
        Memory.dataBudget = onDisk ? 1 : Memory.available / 4
        defer { Memory.dataBudget = Memory.available / 4 }
        return try Dataset.load("folder:\(dir)/set", imageSize: 12)
    }

    func testOnDiskSetHoldsTheSameImagesAsInMemory() throws {
        let mem = try load(onDisk: false), disk = try load(onDisk: true)
        XCTAssertTrue(mem.isResident)
        XCTAssertFalse(disk.isResident)
        XCTAssertTrue(disk.pixels.isEmpty, "nothing decoded up front")
        XCTAssertEqual(disk.labels, mem.labels)
        XCTAssertEqual([disk.count, disk.channels, disk.height, disk.width], [21, 3, 12, 12])
        XCTAssertEqual(disk.mean, mem.mean, "fewer than 1,000 images: the estimate uses them all")
        XCTAssertEqual(disk.std, mem.std)
        XCTAssertTrue(try disk.resident().pixels == mem.pixels)
        let pick = [20, 3, 3, 0, 11]
        var got = [UInt8](repeating: 0, count: pick.count * disk.imageSize)
        try got.withUnsafeMutableBufferPointer { try disk.images(pick, into: $0.baseAddress!) }
        XCTAssertTrue(got == (try mem.subset(pick)).pixels)
        let sub = try disk.subset(pick)
        XCTAssertFalse(sub.isResident)
        XCTAssertEqual(sub.labels, pick.map { mem.labels[$0] })
        XCTAssertTrue(try sub.resident().pixels == (try mem.subset(pick)).pixels)
        XCTAssertThrowsError(try disk.subset([21])) { XCTAssertTrue("\($0)".contains("out of range"), "\($0)") }
        // Identity: of the files, stable, and not the in-memory one.
        XCTAssertEqual(disk.contentHash, try load(onDisk: true).contentHash)
        XCTAssertNotEqual(disk.contentHash, mem.contentHash)
    }

    func testBatchesAndEvaluationMatchWithPrefetch() throws {
        let mem = try load(onDisk: false), disk = try load(onDisk: true)
        let norm = Normalization(mean: mem.mean, std: mem.std)
        let a = try BatchLoader(data: mem, normalization: norm), b = try BatchLoader(data: disk, normalization: norm)
        XCTAssertEqual(try b.load([4, 1]).array, try a.load([4, 1]).array)
        b.prefetch([7, 8, 9])
        XCTAssertEqual(try b.load([7, 8, 9]).array, try a.load([7, 8, 9]).array, "the prefetched batch")
        b.prefetch([10, 11])
        XCTAssertEqual(try b.load([2, 5]).array, try a.load([2, 5]).array, "another batch than the prefetched one")
        XCTAssertEqual(b.labels, a.labels)

        var rng = LDRandom(seed: 1, stage: .weightInit)
        let model = try Model(.convnet(width: 4, depth: 2, channels: 3, imageSize: 12, classes: 3), rng: &rng)
        let em = try model.evaluate(mem, normalization: norm, batchSize: 4)
        let ed = try model.evaluate(disk, normalization: norm, batchSize: 4)
        XCTAssertEqual(em, ed)
        XCTAssertEqual(ed.images, 21)
    }

    func testAnUnreadableFileOnDiskFailsTheBatchNamingIt() throws {
        let disk = try load(onDisk: true)
        try Data([0xFF, 0xD8, 0xFF]).write(to: URL(fileURLWithPath: "\(dir)/set/c1/3.jpg"))
        let loader = try BatchLoader(data: disk, normalization: Normalization(mean: disk.mean, std: disk.std))
        loader.prefetch([9, 10, 11])
        XCTAssertThrowsError(try loader.load([9, 10, 11])) { XCTAssertTrue("\($0)".contains("c1/3.jpg"), "\($0)") }
        XCTAssertThrowsError(try loader.load([10])) { XCTAssertTrue("\($0)".contains("c1/3.jpg"), "\($0)") }
        XCTAssertNoThrow(try loader.load([0, 1]))
    }

    func testSizes() {
        XCTAssertEqual(Memory.parseSize("512M"), 512e6)
        XCTAssertEqual(Memory.parseSize("8G"), 8e9)
        XCTAssertEqual(Memory.parseSize("1.5gb"), 1.5e9)
        XCTAssertEqual(Memory.parseSize("1000"), 1000)
        XCTAssertNil(Memory.parseSize("lots"))
        XCTAssertNil(Memory.parseSize("-1G"))
        XCTAssertNil(Memory.parseSize(""))
    }

    func testLabelsFiles() throws {
        let mem = try load(onDisk: false)
        try FileManager.default.createDirectory(atPath: "\(dir)/flat", withIntermediateDirectories: true)
        var lines = "# a comment\n"
        for c in 0..<3 {
            for k in 0..<7 {
                try FileManager.default.copyItem(atPath: "\(dir)/set/c\(c)/\(k).jpg", toPath: "\(dir)/flat/i\(c)\(k).jpg")
                lines += k % 2 == 0 ? "i\(c)\(k).jpg\tc\(c)\t0 0 4 4\n" : "i\(c)\(k) c\(c)\n"   // extension optional
            }
        }
        try Data(lines.utf8).write(to: URL(fileURLWithPath: "\(dir)/flat/labels.txt"))
        let list = try Dataset.load("list:\(dir)/flat/labels.txt", imageSize: 12)
        XCTAssertEqual(list.classNames, ["c0", "c1", "c2"])
        XCTAssertEqual(list.labels, mem.labels)
        XCTAssertTrue(list.pixels == mem.pixels)
        XCTAssertEqual(try DatasetSpec(parsing: "list:a.csv:imgs"), .list(file: "a.csv", directory: "imgs"))
        XCTAssertEqual(try DatasetSpec(parsing: "list:a.csv"), .list(file: "a.csv", directory: nil))
        XCTAssertEqual(try DatasetSpec(parsing: "list:a.csv:imgs").description, "list:a.csv:imgs")
        for bad in ["list:", "list", "list:a.csv:"] { XCTAssertThrowsError(try DatasetSpec(parsing: bad), bad) }
        func refused(_ text: String, _ word: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: "\(dir)/flat/bad.txt"))
            XCTAssertThrowsError(try Dataset.load("list:\(dir)/flat/bad.txt", imageSize: 12)) { XCTAssertTrue("\($0)".contains(word), "\($0)") }
        }
        try refused("i00.jpg c0\nmissing.jpg c1\n", "line 2 names missing.jpg")
        try refused("i00.jpg\n", "names no class")
        try refused("# nothing\n", "names no images")
        XCTAssertThrowsError(try Dataset.load("list:\(dir)/flat/none.txt")) { XCTAssertTrue("\($0)".contains("not found"), "\($0)") }
    }

    /// Training views from whole images: the box is taken in the stored image and resampled straight to the
    /// set's size (PIL's resize with a box, as torchvision's RandomResizedCrop on the decoded image).
    func testCropsFromWholeImages() throws {
        let disk = try load(onDisk: true)
        XCTAssertTrue(disk.files!.transforms)
        let i = 4   // c0/4.jpg, stored 20 x 14
        XCTAssertEqual(disk.files!.storedSize(i).height, 20)
        XCTAssertEqual(disk.files!.storedSize(i).width, 14)
        let box = CropBox(top: 3, left: 1, height: 15, width: 9)
        var got = [UInt8](repeating: 0, count: 2 * disk.imageSize)
        try got.withUnsafeMutableBufferPointer { try disk.crops([i, i], [(box, false), (box, true)], into: $0.baseAddress!) }
        let whole = try JPEG.decode(try Files.readFile(disk.files!.paths[i]), channels: 3)
        var want = [UInt8](repeating: 0, count: 2 * disk.imageSize)
        whole.pixels.withUnsafeBufferPointer { src in
            want.withUnsafeMutableBufferPointer { dst in
                for (k, flip) in [false, true].enumerated() {
                    Resample.resize(src.baseAddress!, channels: 3, height: 20, width: 14, box: (1, 3, 10, 18), outH: 12, outW: 12,
                                    flip: flip, into: dst.baseAddress! + k * disk.imageSize)
                }
            }
        }
        XCTAssertTrue(got == want)
        XCTAssertThrowsError(try got.withUnsafeMutableBufferPointer { try disk.crops([i], [(CropBox(top: 10, left: 0, height: 11, width: 5), false)], into: $0.baseAddress!) }) {
            XCTAssertTrue("\($0)".contains("outside"), "\($0)")
        }
        // A teacher's RandomResizedCrop draws its boxes on the stored sizes of such a set.
        Memory.dataBudget = Memory.available / 4
        let folder = try Dataset.load("folder:\(dir)/set", imageSize: 12, wholeImages: true)
        XCTAssertFalse(folder.isResident, "kept on disk to crop from the whole images")
        let mem = try load(onDisk: false)
        XCTAssertTrue(mem.isResident)
    }
}
