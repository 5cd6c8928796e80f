import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

final class ModelFileTests: XCTestCase {
    private func tempPath(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "ld-modelfile-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir + "/" + name
    }

    private func tinyModel(seed: UInt64 = 1, width: Int = 4) throws -> Model {
        var rng = LDRandom(seed: seed, stage: .weightInit)
        return try Model(.convnet(width: width, depth: 2, channels: 1, imageSize: 8, classes: 3), rng: &rng)
    }

    func testRoundTripRestoresWeightsBuffersAndClassStatistics() throws {
        let path = try tempPath("m.ldm")
        let model = try tinyModel()
        // Make running statistics and class statistics non-trivial with one labelled forward pass.
        let x = Tensor(shape: [6, 1, 8, 8])
        var rng = LDRandom(seed: 9, stage: .test)
        rng.fillNormal(x.data, count: x.count)
        let labels: [Int32] = [0, 1, 2, 0, 1, 2]
        labels.withUnsafeBufferPointer { _ = model.forward(x, classLabels: $0.baseAddress!) }
        var file = ModelFile(model: model, mean: [0.5], std: [0.25], classNames: ["a", "b", "c"],
                             info: ["epochs": .int(2)])
        try file.save(path: path, producer: "test", seed: 1)
        XCTAssertEqual(file.hash.count, 16)

        let back = try ModelFile.load(path: path)
        XCTAssertEqual(back.hash, file.hash)
        XCTAssertEqual(back.mean, [0.5]); XCTAssertEqual(back.std, [0.25]); XCTAssertEqual(back.classNames, ["a", "b", "c"])
        XCTAssertEqual(back.info["epochs"], .int(2))
        XCTAssertTrue(back.hasClassStatistics)
        for (a, b) in zip(model.parameters, back.model.parameters) {
            XCTAssertEqual(a.name, b.name); XCTAssertEqual(a.value.array, b.value.array)
        }
        for (a, b) in zip(model.buffers, back.model.buffers) { XCTAssertEqual(a.tensor.array, b.tensor.array) }
        for (a, b) in zip(model.batchNorms, back.model.batchNorms) {
            for k in 0..<3 {
                XCTAssertEqual(a.classStatistics!.count[k], b.classStatistics!.count[k])
                for (u, v) in zip(a.classStatistics!.mean(k), b.classStatistics!.mean(k)) { XCTAssertEqual(u, v, accuracy: 1e-5) }
                for (u, v) in zip(a.classStatistics!.variance(k), b.classStatistics!.variance(k)) { XCTAssertEqual(u, v, accuracy: 1e-4) }
            }
        }
        // Same weights give the same logits.
        model.training = false
        let y1 = model.forward(x).array
        let y2 = back.model.forward(x).array
        XCTAssertEqual(y1, y2)
    }

    func testDifferentModelsHaveDifferentHashes() throws {
        var a = ModelFile(model: try tinyModel(seed: 1), mean: [0], std: [1], classNames: [])
        var b = ModelFile(model: try tinyModel(seed: 2), mean: [0], std: [1], classNames: [])
        try a.save(path: try tempPath("a"), producer: "test")
        try b.save(path: try tempPath("b"), producer: "test")
        XCTAssertNotEqual(a.hash, b.hash)
    }

    func testMismatchedTensorIsNamed() throws {
        // A file whose config says width 4 but whose tensors come from width 5.
        let path = try tempPath("bad.ldm")
        var good = ModelFile(model: try tinyModel(width: 4), mean: [0], std: [1], classNames: [])
        try good.save(path: path, producer: "test")
        let other = try tinyModel(width: 5)
        let reader = try StreamReader(path: path)
        let writer = try StreamWriter(path: path + ".2", header: reader.header)
        for p in other.parameters { try writer.write(TensorRecord(name: p.name, shape: p.value.shape, data: p.value.array)) }
        try writer.finish()
        XCTAssertThrowsError(try ModelFile.load(path: path + ".2")) { error in
            XCTAssertTrue("\(error)".contains("has shape"), "\(error)")
            XCTAssertTrue("\(error)".contains("blocks.0.conv.weight"), "\(error)")
        }
    }

    func testNotAModelIsRefused() throws {
        let path = try tempPath("x")
        let w = try StreamWriter(path: path, header: StreamHeader(kind: .labels, producer: "t", version: "0"))
        try w.finish()
        XCTAssertThrowsError(try ModelFile.load(path: path)) { XCTAssertTrue("\($0)".contains("expected 'model'"), "\($0)") }
    }
}
