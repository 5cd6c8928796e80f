import CZlib
import Foundation
import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

/// A fresh temporary folder per test, removed afterwards.
final class TempDir {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("ld-data-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func mkdir(_ name: String) throws -> String {
        let p = "\(path)/\(name)"
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = "\(path)/\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// Writes `bytes` gzip-compressed with zlib's gz* functions.
    @discardableResult
    func writeGz(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = "\(path)/\(name)"
        let f = try XCTUnwrap(gzopen(p, "wb"))
        let n = bytes.withUnsafeBytes { gzwrite(f, $0.baseAddress, UInt32($0.count)) }
        XCTAssertEqual(Int(n), bytes.count)
        XCTAssertEqual(gzclose(f), Z_OK)
        return p
    }

    func read(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(path)/\(name)")))
    }
}

/// An IDX file: big-endian magic and dimensions, then the bytes.
func idx(magic: UInt32, dims: [Int], _ body: [UInt8]) -> [UInt8] {
    func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)] }
    return be(magic) + dims.flatMap { be(UInt32($0)) } + body
}

/// 64-bit FNV-1a of a byte sequence (a checksum for golden values).
func fnv1a<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    return h
}

func assertThrows(_ body: @autoclosure () throws -> Any, contains parts: [String],
                  file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { e in
        let text = "\(e)"
        XCTAssert(e is LDError, "not an LDError: \(text)", file: file, line: line)
        for p in parts { XCTAssert(text.contains(p), "'\(text)' does not mention '\(p)'", file: file, line: line) }
    }
}

final class DataSpecTests: XCTestCase {
    func testParsing() throws {
        let d = DatasetSpec.fashionMNISTDefaultDirectory
        XCTAssertEqual(try DatasetSpec(parsing: "fmnist:train"), .fashionMNIST(split: .train, directory: d))
        XCTAssertEqual(try DatasetSpec(parsing: "fmnist:test"), .fashionMNIST(split: .test, directory: d))
        XCTAssertEqual(try DatasetSpec(parsing: "fmnist:test:/x/y"), .fashionMNIST(split: .test, directory: "/x/y"))
        XCTAssertEqual(try DatasetSpec(parsing: "cifar10:/c"), .cifar10(split: .train, directory: "/c"))
        XCTAssertEqual(try DatasetSpec(parsing: "cifar10:test:/c"), .cifar10(split: .test, directory: "/c"))
        XCTAssertEqual(try DatasetSpec(parsing: "cifar100:train:rel/dir"), .cifar100(split: .train, directory: "rel/dir"))
        XCTAssertEqual(try DatasetSpec(parsing: "folder:syn/"), .folder(directory: "syn/"))
        XCTAssertEqual(try DatasetSpec(parsing: "images.ldi"), .recordStream(path: "images.ldi"))
        XCTAssertEqual(try DatasetSpec(parsing: "-"), .recordStream(path: "-"))
        XCTAssertEqual(try DatasetSpec(parsing: "./odd:name"), .recordStream(path: "./odd:name"))
        XCTAssertEqual(try DatasetSpec(parsing: "fmnist:train").description, "fmnist:train")
        XCTAssertEqual(try DatasetSpec(parsing: "cifar10:/c").description, "cifar10:train:/c")
        assertThrows(try DatasetSpec(parsing: "fmnist"), contains: ["fmnist:train or fmnist:test"])
        assertThrows(try DatasetSpec(parsing: "folder"), contains: ["folder:DIR"])
        assertThrows(try DatasetSpec(parsing: "fmnist:val"), contains: ["fmnist:train or fmnist:test"])
        assertThrows(try DatasetSpec(parsing: "cifar10:test"), contains: ["cifar10:test:DIR"])
        assertThrows(try DatasetSpec(parsing: "cifar10:"), contains: ["needs a folder"])
        assertThrows(try DatasetSpec(parsing: "folder:"), contains: ["needs a folder"])
        assertThrows(try DatasetSpec(parsing: "mnist:train"), contains: ["unknown kind 'mnist'"])
        assertThrows(try DatasetSpec(parsing: ""), contains: ["empty"])
    }

    func testMissingStreamFileAndFolders() throws {
        let t = try TempDir()
        assertThrows(try Dataset.load("\(t.path)/x.ldi"), contains: ["\(t.path)/x.ldi", "No such file"])
        assertThrows(try Dataset.load("fmnist:train:\(t.path)/nope"), contains: ["\(t.path)/nope", "not found"])
        assertThrows(try Dataset.load("cifar10:\(t.path)/nope"), contains: ["\(t.path)/nope", "not found"])
        assertThrows(try Dataset.load("folder:\(t.path)/nope"), contains: ["\(t.path)/nope", "not found"])
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: ["train-images-idx3-ubyte.gz", "not found"])
    }
}

final class DataFashionMNISTTests: XCTestCase {
    func requireFashionMNIST() throws {
        let d = DatasetSpec.fashionMNISTDefaultDirectory
        guard FileManager.default.fileExists(atPath: "\(d)/train-images-idx3-ubyte.gz") else {
            throw XCTSkip("Fashion-MNIST is not installed in \(d) (apt-get install dataset-fashion-mnist)")
        }
    }

    func testTrainSet() throws {
        try requireFashionMNIST()
        let ds = try Dataset.load("fmnist:train")
        XCTAssertEqual(ds.count, 60000)
        XCTAssertEqual(ds.channels, 1)
        XCTAssertEqual(ds.height, 28)
        XCTAssertEqual(ds.width, 28)
        XCTAssertEqual(ds.classes, 10)
        XCTAssertEqual(ds.pixels.count, 60000 * 784)
        XCTAssertEqual(ds.classCounts(), [Int](repeating: 6000, count: 10))
        XCTAssertEqual(ds.classNames[0], "T-shirt/top")
        XCTAssertEqual(ds.classNames[9], "Ankle boot")
        XCTAssertEqual(ds.mean, [0.2860])
        XCTAssertEqual(ds.std, [0.3530])
        XCTAssertEqual(ds.source, "fmnist:train")
        XCTAssertEqual(Array(ds.labels.prefix(10)), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
        // Checksums of the first image (784 bytes): its byte sum and 64-bit FNV-1a, computed once with an
        // independent reader (Python's gzip module on train-images-idx3-ubyte.gz, bytes 16..<800).
        let first = ds.pixels[0..<784]
        XCTAssertEqual(first.reduce(0) { $0 + Int($1) }, 76247)
        XCTAssertEqual(fnv1a(first), 0x01fd_f725_9054_1338)
    }

    func testTestSet() throws {
        try requireFashionMNIST()
        let ds = try Dataset.load("fmnist:test")
        XCTAssertEqual(ds.count, 10000)
        XCTAssert(ds.labels.allSatisfy { (0..<10).contains($0) })
        XCTAssertEqual(ds.classCounts(), [Int](repeating: 1000, count: 10))
        // Same method as above, on t10k-images-idx3-ubyte.gz.
        XCTAssertEqual(fnv1a(ds.pixels[0..<784]), 0xcb45_b758_9f1b_853b)
    }
}

final class DataIDXTests: XCTestCase {
    /// A tiny Fashion-MNIST-shaped set: 3 images of 4x5, labels 2, 0, 9.
    func writeSet(_ t: TempDir, images: [UInt8]? = nil, labels: [UInt8]? = nil) throws {
        let pix = (0..<60).map { UInt8($0 * 4) }
        try t.writeGz("train-images-idx3-ubyte.gz", images ?? idx(magic: 0x803, dims: [3, 4, 5], pix))
        try t.writeGz("train-labels-idx1-ubyte.gz", labels ?? idx(magic: 0x801, dims: [3], [2, 0, 9]))
    }

    func testSmallSet() throws {
        let t = try TempDir()
        try writeSet(t)
        let ds = try Dataset.load("fmnist:train:\(t.path)")
        XCTAssertEqual(ds.count, 3)
        XCTAssertEqual(ds.height, 4)
        XCTAssertEqual(ds.width, 5)
        XCTAssertEqual(ds.labels, [2, 0, 9])
        XCTAssertEqual(ds.pixels, (0..<60).map { UInt8($0 * 4) })
        XCTAssertEqual(ds.source, "fmnist:train:\(t.path)")
        // Uncompressed files are read too.
        let u = try TempDir()
        try u.write("t10k-images-idx3-ubyte", idx(magic: 0x803, dims: [1, 2, 2], [1, 2, 3, 4]))
        try u.write("t10k-labels-idx1-ubyte", idx(magic: 0x801, dims: [1], [7]))
        let v = try Dataset.load("fmnist:test:\(u.path)")
        XCTAssertEqual(v.pixels, [1, 2, 3, 4])
        XCTAssertEqual(v.labels, [7])
    }

    func testTruncatedAndCorruptGzip() throws {
        let t = try TempDir()
        // Incompressible pixels so the gzip stream is long enough to cut in its middle.
        var rng = LDRandom(seed: 1, stage: .test)
        let pix = (0..<(50 * 28 * 28)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let labels = idx(magic: 0x801, dims: [50], [UInt8](repeating: 1, count: 50))
        try writeSet(t, images: idx(magic: 0x803, dims: [50, 28, 28], pix), labels: labels)
        let gz = try t.read("train-images-idx3-ubyte.gz")
        let name = "\(t.path)/train-images-idx3-ubyte.gz"
        try t.write("train-images-idx3-ubyte.gz", Array(gz.prefix(gz.count / 2)))
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: [name])
        // Cut just before the 8-byte trailer: all pixels there, CRC and length missing.
        try t.write("train-images-idx3-ubyte.gz", Array(gz.prefix(gz.count - 8)))
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: [name])
        // A flipped byte in the middle of the deflate data (bad data or a CRC mismatch).
        var bad = gz
        bad[gz.count / 2] ^= 0x55
        try t.write("train-images-idx3-ubyte.gz", bad)
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: [name])
        // A truncated IDX body inside a valid gzip stream.
        try t.writeGz("train-images-idx3-ubyte.gz", idx(magic: 0x803, dims: [50, 28, 28], Array(pix.prefix(1000))))
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: [name, "truncated", "pixels"])
        // Extra bytes after the last image.
        try t.writeGz("train-images-idx3-ubyte.gz", idx(magic: 0x803, dims: [50, 28, 28], pix + [0]))
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: [name, "after the last record"])
    }

    func testHeaderChecks() throws {
        let t = try TempDir()
        try writeSet(t, images: idx(magic: 0x801, dims: [3, 4, 5], [UInt8](repeating: 0, count: 60)))
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: ["train-images", "bad IDX magic 0x00000801",
                                                                            "0x00000803"])
        try writeSet(t, labels: idx(magic: 0x803, dims: [3], [0, 0, 0]))
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: ["train-labels", "bad IDX magic"])
        try writeSet(t, labels: idx(magic: 0x801, dims: [4], [0, 0, 0, 0]))
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: ["train-labels", "4 labels for 3 images"])
        try writeSet(t, labels: idx(magic: 0x801, dims: [3], [0, 10, 0]))
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: ["train-labels", "label 10 of record 1"])
        try writeSet(t, images: idx(magic: 0x803, dims: [3, 0, 5], []))
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: ["train-images", "out of range"])
        try writeSet(t, images: idx(magic: 0x803, dims: [3, 4], []))
        assertThrows(try Dataset.load("fmnist:train:\(t.path)"), contains: ["train-images", "truncated"])
    }
}

final class DataCIFARTests: XCTestCase {
    /// Record r of a file: label byte(s) then 3072 pixel bytes derived from (file, r).
    func record(_ labels: [UInt8], file: Int, r: Int) -> [UInt8] {
        labels + (0..<3072).map { UInt8(truncatingIfNeeded: $0 &+ 7 &* file &+ 13 &* r) }
    }

    func testCIFAR10() throws {
        let t = try TempDir()
        for f in 1...5 {
            try t.write("data_batch_\(f).bin", (0..<2).flatMap { record([UInt8((f + $0) % 10)], file: f, r: $0) })
        }
        try t.write("test_batch.bin", (0..<3).flatMap { record([UInt8($0)], file: 0, r: $0) })
        let train = try Dataset.load("cifar10:\(t.path)")
        XCTAssertEqual(train.count, 10)
        XCTAssertEqual(train.channels, 3)
        XCTAssertEqual(train.height, 32)
        XCTAssertEqual(train.labels, [1, 2, 2, 3, 3, 4, 4, 5, 5, 6])
        XCTAssertEqual(Array(train.pixels[3 * 3072..<4 * 3072]), Array(record([], file: 2, r: 1)))
        XCTAssertEqual(train.classNames, Dataset.cifar10ClassNames)
        XCTAssertEqual(train.mean, [0.4914, 0.4822, 0.4465])
        let test = try Dataset.load("cifar10:test:\(t.path)")
        XCTAssertEqual(test.labels, [0, 1, 2])
        XCTAssertEqual(Array(test.pixels[2 * 3072..<3 * 3072]), record([], file: 0, r: 2))
        // Class names from batches.meta.txt (blank lines ignored).
        try t.write("batches.meta.txt", Array(((0..<10).map { "c\($0)" }.joined(separator: "\n") + "\n\n").utf8))
        XCTAssertEqual(try Dataset.load("cifar10:test:\(t.path)").classNames[3], "c3")
        // Wrong size, bad label, missing batch.
        try t.write("test_batch.bin", record([1], file: 0, r: 0) + [0])
        assertThrows(try Dataset.load("cifar10:test:\(t.path)"), contains: ["test_batch.bin", "3073-byte record"])
        try t.write("test_batch.bin", record([10], file: 0, r: 0))
        assertThrows(try Dataset.load("cifar10:test:\(t.path)"), contains: ["test_batch.bin", "label 10 of record 0"])
        try FileManager.default.removeItem(atPath: "\(t.path)/data_batch_4.bin")
        assertThrows(try Dataset.load("cifar10:train:\(t.path)"), contains: ["data_batch_4.bin", "not found"])
    }

    func testCIFAR100NestedFolder() throws {
        let t = try TempDir()
        let dir = try t.mkdir("cifar-100-binary")
        try t.write("cifar-100-binary/train.bin", (0..<4).flatMap { record([UInt8($0 * 5), UInt8($0 * 33)], file: 1, r: $0) })
        let ds = try Dataset.load("cifar100:\(t.path)")
        XCTAssertEqual(ds.classes, 100)
        XCTAssertEqual(ds.labels, [0, 33, 66, 99], "fine labels")
        XCTAssertEqual(Array(ds.pixels[3072..<6144]), record([], file: 1, r: 1))
        XCTAssertEqual(ds.classNames.count, 100)
        XCTAssertEqual(ds.std, [0.2673, 0.2564, 0.2762])
        try t.write("cifar-100-binary/fine_label_names.txt", Array((0..<100).map { "n\($0)" }.joined(separator: "\n").utf8))
        XCTAssertEqual(try Dataset.load("cifar100:train:\(t.path)").classNames[99], "n99")
        try t.write("cifar-100-binary/fine_label_names.txt", Array("a\nb\n".utf8))
        assertThrows(try Dataset.load("cifar100:train:\(t.path)"), contains: ["fine_label_names.txt", "2 class names"])
        try FileManager.default.removeItem(atPath: "\(dir)/fine_label_names.txt")
        try t.write("cifar-100-binary/train.bin", record([20, 1], file: 0, r: 0))
        assertThrows(try Dataset.load("cifar100:\(t.path)"), contains: ["train.bin", "coarse label 20"])
        try t.write("cifar-100-binary/train.bin", record([1, 100], file: 0, r: 0) + [1, 2, 3])
        assertThrows(try Dataset.load("cifar100:\(t.path)"), contains: ["train.bin", "3074-byte record"])
        assertThrows(try Dataset.load("cifar100:test:\(t.path)"), contains: ["test.bin", "not found"])
    }
}

final class DataFolderTests: XCTestCase {
    /// Classes "a" (2 images) and "b" (1 image) of 3x2x3 RGB, plus noise the loader must ignore.
    func writeFolder(_ t: TempDir) throws -> [[UInt8]] {
        let images = (0..<3).map { k in (0..<18).map { UInt8($0 * 10 + k) } }
        _ = try t.mkdir("b")
        _ = try t.mkdir("a")
        _ = try t.mkdir(".hidden")
        try PNG.write(path: "\(t.path)/a/2.png", pixels: images[1], channels: 3, height: 2, width: 3)
        try PNG.write(path: "\(t.path)/a/1.png", pixels: images[0], channels: 3, height: 2, width: 3)
        try PNG.write(path: "\(t.path)/b/x.PNG", pixels: images[2], channels: 3, height: 2, width: 3)
        try t.write("a/notes.txt", Array("ignored".utf8))
        try t.write("stray.png", [1, 2, 3])
        return images
    }

    func testLoadsSortedWithComputedStatistics() throws {
        let t = try TempDir()
        let images = try writeFolder(t)
        let ds = try Dataset.load("folder:\(t.path)")
        XCTAssertEqual(ds.count, 3)
        XCTAssertEqual(ds.classes, 2)
        XCTAssertEqual(ds.classNames, ["a", "b"])
        XCTAssertEqual(ds.labels, [0, 0, 1])
        XCTAssertEqual(ds.channels, 3)
        XCTAssertEqual(ds.height, 2)
        XCTAssertEqual(ds.width, 3)
        XCTAssertEqual(ds.pixels, images.flatMap { $0 })
        XCTAssertEqual(ds.source, "folder:\(t.path)")
        for c in 0..<3 {
            let xs = images.flatMap { Array($0[c * 6..<c * 6 + 6]) }.map { Double($0) / 255 }
            let m = xs.reduce(0, +) / Double(xs.count)
            let v = xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(xs.count)
            XCTAssertEqual(Double(ds.mean[c]), m, accuracy: 1e-6)
            XCTAssertEqual(Double(ds.std[c]), v.squareRoot(), accuracy: 1e-6)
        }
        // A plain folder path loads the same way.
        XCTAssertEqual(try Dataset.load(t.path).pixels, ds.pixels)
    }

    func testManifest() throws {
        let t = try TempDir()
        _ = try writeFolder(t)
        try t.write("manifest.json", Array(#"{"mean":[0.5,0.25,0.125],"std":[0.5,0.5,1],"class_names":["cat","dog"]}"#.utf8))
        let ds = try Dataset.load("folder:\(t.path)")
        XCTAssertEqual(ds.mean, [0.5, 0.25, 0.125])
        XCTAssertEqual(ds.std, [0.5, 0.5, 1])
        XCTAssertEqual(ds.classNames, ["cat", "dog"])
        try t.write("manifest.json", Array(#"{"mean":[0.5],"std":[0.5]}"#.utf8))
        assertThrows(try Dataset.load("folder:\(t.path)"), contains: ["manifest.json", "1 values for 3-channel"])
        try t.write("manifest.json", Array(#"{"class_names":["x"]}"#.utf8))
        assertThrows(try Dataset.load("folder:\(t.path)"), contains: ["manifest.json", "1 class names for 2"])
        try t.write("manifest.json", Array("{oops".utf8))
        assertThrows(try Dataset.load("folder:\(t.path)"), contains: ["manifest.json", "JSON"])
    }

    func testGrayAndConvertedImages() throws {
        let t = try TempDir()
        _ = try t.mkdir("00")
        _ = try t.mkdir("01")
        try PNG.write(path: "\(t.path)/00/a.png", pixels: [0, 255, 0, 255], channels: 1, height: 2, width: 2)
        try PNG.write(path: "\(t.path)/01/a.png", pixels: [255, 255, 255, 255], channels: 1, height: 2, width: 2)
        let gray = try Dataset.load("folder:\(t.path)")
        XCTAssertEqual(gray.channels, 1)
        XCTAssertEqual(gray.labels, [0, 1])
        XCTAssertEqual(gray.mean[0], 0.75, accuracy: 1e-6)
        XCTAssertEqual(gray.std[0], Float(0.1875.squareRoot()), accuracy: 1e-6)
        // Opaque RGBA and palette files become RGB.
        let u = try TempDir()
        _ = try u.mkdir("a")
        _ = try u.mkdir("b")
        try u.write("a/1.png", PNGFixtures.rgbaOpaque)
        try u.write("b/1.png", PNGFixtures.palette)
        let rgb = try Dataset.load("folder:\(u.path)")
        XCTAssertEqual(rgb.channels, 3)
        XCTAssertEqual(Array(rgb.pixels[12..<24]), [255, 0, 0, 0, 0, 255, 0, 255, 0, 0, 255, 0])
        try u.write("b/2.png", PNGFixtures.rgbaTranslucent)
        assertThrows(try Dataset.load("folder:\(u.path)"), contains: ["\(u.path)/b/2.png", "transparent"])
    }

    func testBadImages() throws {
        let t = try TempDir()
        _ = try writeFolder(t)
        try t.write("b/y.png", Array("this is not a png".utf8))
        assertThrows(try Dataset.load("folder:\(t.path)"), contains: ["\(t.path)/b/y.png"])
        // A gray image in an RGB set is replicated into the three channels (PIL's convert("RGB")).
        try PNG.write(path: "\(t.path)/b/y.png", pixels: [UInt8](repeating: 9, count: 6), channels: 1, height: 2, width: 3)
        let mixed = try Dataset.load("folder:\(t.path)")
        XCTAssertEqual(mixed.channels, 3)
        XCTAssertTrue(mixed.pixels.suffix(18).allSatisfy { $0 == 9 })
        try FileManager.default.removeItem(atPath: "\(t.path)/b/y.png")
        try PNG.write(path: "\(t.path)/b/y.png", pixels: [UInt8](repeating: 9, count: 12), channels: 3, height: 2, width: 2)
        assertThrows(try Dataset.load("folder:\(t.path)"), contains: ["\(t.path)/b/y.png", "2x2", "2x3"])
        let empty = try TempDir()
        assertThrows(try Dataset.load("folder:\(empty.path)"), contains: [empty.path, "no class sub-folders"])
        _ = try empty.mkdir("0")
        assertThrows(try Dataset.load("folder:\(empty.path)"), contains: [empty.path, "no PNG or JPEG files"])
    }
}

final class DataOpsTests: XCTestCase {
    /// 4 classes x 5 images of 2x2x2, image i filled with byte i.
    func small() -> Dataset {
        let n = 20
        return Dataset(pixels: (0..<n).flatMap { [UInt8](repeating: UInt8($0), count: 8) },
                       labels: (0..<n).map { Int32($0 % 4) }, classes: 4, channels: 2, height: 2, width: 2,
                       mean: [0.5, 0.25], std: [0.5, 0.25], classNames: ["a", "b", "c", "d"], source: "test")
    }

    func testSubsetAndClassLists() throws {
        let ds = small()
        XCTAssertEqual(ds.classCounts(), [5, 5, 5, 5])
        XCTAssertEqual(ds.classIndices()[1], [1, 5, 9, 13, 17])
        let s = try ds.subset([7, 2, 7])
        XCTAssertEqual(s.labels, [3, 2, 3])
        XCTAssertEqual(s.pixels, [UInt8](repeating: 7, count: 8) + [UInt8](repeating: 2, count: 8) + [UInt8](repeating: 7, count: 8))
        assertThrows(try ds.subset([20]), contains: ["index 20"])
    }

    func testClassBalancedSubset() throws {
        let ds = small()
        let a = try ds.classBalancedIndices(ipc: 2, seed: 5)
        XCTAssertEqual(a.count, 8)
        XCTAssertEqual(a.map { ds.labels[$0] }, [0, 0, 1, 1, 2, 2, 3, 3])
        XCTAssertEqual(Set(a).count, 8)
        XCTAssertEqual(try ds.classBalancedIndices(ipc: 2, seed: 5), a, "deterministic")
        XCTAssertEqual(try ds.classBalancedSubset(ipc: 2, seed: 5).classCounts(), [2, 2, 2, 2])
        var rng = LDRandom(seed: 5, stage: .test)
        XCTAssertEqual(try ds.classBalancedSubset(ipc: 5, rng: &rng).classCounts(), [5, 5, 5, 5])
        assertThrows(try ds.classBalancedSubset(ipc: 6, seed: 1), contains: ["class 0 has 5 images"])
    }

    func testNormalize() {
        let ds = small()
        var out = [Float](repeating: 0, count: 16)
        out.withUnsafeMutableBufferPointer { ds.normalize(images: [3, 10], into: $0.baseAddress!) }
        for (k, i) in [3, 10].enumerated() {
            for c in 0..<2 {
                let want = (Float(i) / 255 - ds.mean[c]) / ds.std[c]
                for j in 0..<4 { XCTAssertEqual(out[k * 8 + c * 4 + j], want, accuracy: 1e-5) }
            }
        }
        let t = Tensor(shape: [1])
        ds.normalize(images: [3, 10], into: t)
        XCTAssertEqual(t.shape, [2, 2, 2, 2])
        XCTAssertEqual(t.array, out)
        var one = [Float](repeating: 0, count: 8)
        one.withUnsafeMutableBufferPointer { ds.normalize(image: 10, into: $0.baseAddress!) }
        XCTAssertEqual(one, Array(out[8..<16]))
    }
}
