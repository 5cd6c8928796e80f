import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

final class TrainUtilTests: XCTestCase {
    private func tinySet() -> Dataset {
        var pixels: [UInt8] = []
        for i in 0..<8 * 64 { pixels.append(UInt8(truncatingIfNeeded: i * 37)) }
        return Dataset(pixels: pixels, labels: [0, 1, 2, 0, 1, 2, 0, 1], classes: 3, channels: 1, height: 8, width: 8,
                       mean: [0.5], std: [0.25], classNames: ["a", "b", "c"], source: "tiny")
    }

    func testLoaderNormalisesWithTheGivenStatistics() throws {
        let data = tinySet()
        let loader = try BatchLoader(data: data, normalization: Normalization(mean: [0.25], std: [0.5]))
        let x = try loader.load([2, 0])
        XCTAssertEqual(x.shape, [2, 1, 8, 8])
        XCTAssertEqual(x.data[0], (Float(data.pixels[2 * 64]) / 255 - 0.25) / 0.5, accuracy: 1e-6)
        XCTAssertEqual(x.data[64 + 5], (Float(data.pixels[5]) / 255 - 0.25) / 0.5, accuracy: 1e-6)
        XCTAssertEqual(loader.labels, [2, 0])
    }

    func testAugmentationsDependOnlyOnTheirKeyAndReplayExactly() throws {
        let data = tinySet()
        let norm = Normalization(of: data)
        let aug = SampleAugment.randomResizedCrop(RandomResizedCrop(), flipProbability: 0.5)
        let draws = BatchDraws(count: data.count, height: data.height, width: data.width, batchSize: 4, augment: aug, seed: 7)
        let a = try BatchLoader(data: data, normalization: norm)
        let b = try BatchLoader(data: data, normalization: norm)
        let xa = try a.load([0, 1, 2, 3], replaying: draws.augmentations(epoch: 3, batch: 1, count: 4)).array
        // A different batch first must not change the draws of (epoch 3, batch 1).
        _ = try b.load([4, 5], replaying: draws.augmentations(epoch: 0, batch: 0, count: 2))
        let xb = try b.load([0, 1, 2, 3], replaying: draws.augmentations(epoch: 3, batch: 1, count: 4)).array
        XCTAssertEqual(xa, xb)
        XCTAssertEqual(a.augmentations, b.augmentations)
        let c = try BatchLoader(data: data, normalization: norm)
        XCTAssertEqual(try c.load([0, 1, 2, 3], replaying: a.augmentations).array, xa)
    }

    func testEvaluateCountsTopOneAndTopFive() throws {
        var rng = LDRandom(seed: 1, stage: .weightInit)
        let model = try Model(.convnet(width: 4, depth: 1, channels: 1, imageSize: 8, classes: 3), rng: &rng)
        let data = tinySet()
        let e = try model.evaluate(data, normalization: Normalization(of: data), batchSize: 3)
        XCTAssertEqual(e.images, 8)
        XCTAssertEqual(e.top5, 100)   // 3 classes: the true class is always in the top 5
        XCTAssertTrue(e.top1 >= 0 && e.top1 <= 100)
        XCTAssertTrue(e.loss.isFinite && e.loss > 0)
        // Same answer in one batch.
        let e1 = try model.evaluate(data, normalization: Normalization(of: data), batchSize: 100)
        XCTAssertEqual(e.top1, e1.top1)
        XCTAssertEqual(e.loss, e1.loss, accuracy: 1e-5)
    }
}
