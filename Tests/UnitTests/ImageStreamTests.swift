import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

final class ImageStreamTests: XCTestCase {
    private func tinySet(offset: UInt8 = 0) -> Dataset {
        var pixels: [UInt8] = []
        for i in 0..<6 * 2 * 3 * 4 { pixels.append(UInt8(truncatingIfNeeded: i * 7) &+ offset) }
        return Dataset(pixels: pixels, labels: [0, 1, 2, 0, 1, 2], classes: 3, channels: 2, height: 3, width: 4,
                       mean: [0.25, 0.5], std: [0.125, 0.75], classNames: ["a", "b", "c"], source: "test")
    }

    private func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "ld-imagestream-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testRoundTripKeepsPixelsLabelsAndNormalisation() throws {
        let dir = try tempDir()
        let set = tinySet()
        try set.writeStream(path: dir + "/set.ldi", producer: "test")
        let back = try Dataset.load(dir + "/set.ldi")
        XCTAssertEqual(back.pixels, set.pixels)
        XCTAssertEqual(back.labels, set.labels)
        XCTAssertEqual([back.channels, back.height, back.width, back.classes], [2, 3, 4, 3])
        XCTAssertEqual(back.mean, set.mean)
        XCTAssertEqual(back.std, set.std)
        XCTAssertEqual(back.classNames, set.classNames)
        XCTAssertEqual(back.contentHash, set.contentHash)
        XCTAssertNotEqual(tinySet(offset: 1).contentHash, set.contentHash)
    }

    func testShardsConcatenateInAnyOrder() throws {
        let dir = try tempDir()
        let set = tinySet()
        // Two shards holding indices 3..<6 and 0..<3, concatenated in that order.
        let writer = { (path: String, range: Range<Int>) in
            let w = try StreamWriter(path: path, header: set.streamHeader(producer: "test"))
            for i in range {
                try w.write(ImageRecord(index: UInt64(i), label: UInt32(set.labels[i]),
                                        pixels: Array(set.pixels[i * 24..<(i + 1) * 24])))
            }
            try w.finish()
        }
        try writer(dir + "/b", 3..<6)
        try writer(dir + "/a", 0..<3)
        let joined = try Data(contentsOf: URL(fileURLWithPath: dir + "/b")) + Data(contentsOf: URL(fileURLWithPath: dir + "/a"))
        try joined.write(to: URL(fileURLWithPath: dir + "/all"))
        let back = try Dataset.load(dir + "/all")
        XCTAssertEqual(back.pixels, set.pixels)
        XCTAssertEqual(back.labels, set.labels)
    }

    func testDuplicateIndexIsRefused() throws {
        let dir = try tempDir()
        let set = tinySet()
        let w = try StreamWriter(path: dir + "/dup", header: set.streamHeader(producer: "test"))
        for _ in 0..<2 { try w.write(ImageRecord(index: 0, label: 0, pixels: Array(set.pixels[0..<24]))) }
        try w.finish()
        XCTAssertThrowsError(try Dataset.load(dir + "/dup")) { error in
            XCTAssertTrue("\(error)".contains("appears twice"), "\(error)")
        }
    }

    func testWrongKindIsRefused() throws {
        let dir = try tempDir()
        let w = try StreamWriter(path: dir + "/m", header: StreamHeader(kind: .model, producer: "test", version: "0"))
        try w.finish()
        XCTAssertThrowsError(try Dataset.load(dir + "/m")) { error in
            XCTAssertTrue("\(error)".contains("expected 'images'"), "\(error)")
        }
    }
}
