import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// Small deterministic data for the teacher tests: `classes` classes of `perClass` 1×size×size images with a
/// class-dependent stripe pattern plus noise.
enum TeacherFixtures {
    static func stripes(classes: Int = 3, perClass: Int = 12, size: Int = 8, seed: UInt64 = 11) -> Dataset {
        var rng = LDRandom(seed: seed, stage: .test)
        var pixels: [UInt8] = [], labels: [Int32] = []
        for i in 0..<classes * perClass {
            let k = i % classes
            labels.append(Int32(k))
            for y in 0..<size {
                for x in 0..<size {
                    let on: Bool
                    switch k % 3 {
                    case 0: on = (y / 2) % 2 == 0
                    case 1: on = (x / 2) % 2 == 0
                    default: on = ((x + y) / 2) % 2 == 0
                    }
                    let v = 40 + (on ? 150 : 0) + rng.int(in: 0..<50)
                    pixels.append(UInt8(min(255, v)))
                }
            }
        }
        return Dataset(pixels: pixels, labels: labels, classes: classes, channels: 1, height: size, width: size,
                       mean: [0.45], std: [0.3], classNames: (0..<classes).map { "c\($0)" }, source: "stripes")
    }

    static func settings(for data: Dataset, epochs: Int = 2, batchSize: Int = 8, lr: Float = 0.05,
                         augment: AugmentKind = .crop, scores: Bool = true, width: Int = 4) -> TeacherSettings {
        TeacherSettings(model: .convnet(width: width, depth: 2, channels: data.channels, imageSize: data.height, classes: data.classes),
                        epochs: epochs, batchSize: batchSize, learningRate: lr, momentum: 0.9, weightDecay: 5e-4,
                        warmupEpochs: epochs > 1 ? 1 : 0, optimizer: .sgd, augment: augment, cropPadding: 2, seed: 7,
                        scores: scores, el2nEpochs: min(10, epochs), trainSetHash: data.contentHash)
    }
}

final class TeacherTests: XCTestCase {
    override func setUp() {
        Engine.threads = 1
        Interrupt.reset()
    }

    private func trainAll(_ t: TeacherTrainer) throws {
        while !t.finished {
            while !t.epochComplete { try t.trainStep() }
            _ = t.finishEpoch()
        }
    }

    /// Exact class statistics equal the batch moments of each class's images taken on their own.
    func testExactClassStatisticsMatchDirectComputation() throws {
        let data = TeacherFixtures.stripes()
        let trainer = try TeacherTrainer(settings: TeacherFixtures.settings(for: data), data: data, normalization: Normalization(of: data))
        try trainAll(trainer)
        let model = trainer.model
        // Batch size 5 does not divide the class sizes: batches mix classes and split them.
        try ClassStatisticsPass.run(model: model, data: data, normalization: trainer.normalization, mode: .exact, batchSize: 5)

        // Direct: each class's images as one eval-mode batch, read through the BN-statistics hook.
        let loader = try BatchLoader(data: data, normalization: trainer.normalization)
        let stored = model.batchNorms.map { ($0.classStatistics!) }
        model.training = false
        model.captureBatchStatistics = true
        defer { model.captureBatchStatistics = false }
        for (k, indices) in data.classIndices().enumerated() {
            _ = model.forward(try loader.load(indices))
            for (layer, bn) in model.batchNorms.enumerated() {
                let m = stored[layer].mean(k), v = stored[layer].variance(k)
                for c in 0..<bn.channels {
                    XCTAssertEqual(m[c], bn.batchMean.data[c], accuracy: 1e-5 * max(1, abs(m[c])), "layer \(layer) class \(k) channel \(c) mean")
                    XCTAssertEqual(v[c], bn.batchVariance.data[c], accuracy: 1e-4 * max(1, abs(v[c])), "layer \(layer) class \(k) channel \(c) var")
                }
            }
        }
        // The model file keeps them.
        let path = NSTemporaryDirectory() + "teacher-cs-\(getpid()).ldm"
        defer { unlink(path) }
        var file = ModelFile(model: model, mean: data.mean, std: data.std, classNames: data.classNames)
        try file.save(path: path, producer: "test")
        let back = try ModelFile.load(path: path)
        XCTAssertTrue(back.hasClassStatistics)
        for (a, b) in zip(back.model.batchNorms, model.batchNorms) {
            for k in 0..<data.classes {
                XCTAssertEqual(a.classStatistics!.mean(k), b.classStatistics!.mean(k))
                XCTAssertEqual(a.classStatistics!.variance(k), b.classStatistics!.variance(k))
            }
        }
    }

    /// The EMA estimator follows stat ← 0.9·stat + 0.1·batch-class stat from (0, 1), one update per batch in
    /// which the class appears; with one batch per class it is 0.1·mean and 0.9 + 0.1·var.
    func testEMAClassStatistics() throws {
        let data = TeacherFixtures.stripes(classes: 2, perClass: 6)
        let trainer = try TeacherTrainer(settings: TeacherFixtures.settings(for: data, epochs: 1), data: data, normalization: Normalization(of: data))
        try trainAll(trainer)
        let model = trainer.model
        // Exact moments first, for reference.
        try ClassStatisticsPass.run(model: model, data: data, normalization: trainer.normalization, mode: .exact, batchSize: 100)
        let exact = model.batchNorms.map { bn in (0..<2).map { (bn.classStatistics!.mean($0), bn.classStatistics!.variance($0)) } }
        // One batch holding everything: each class updates once from its exact moments.
        try ClassStatisticsPass.run(model: model, data: data, normalization: trainer.normalization, mode: .ema, batchSize: 100)
        for (layer, bn) in model.batchNorms.enumerated() {
            let cs = bn.classStatistics!
            for k in 0..<2 {
                XCTAssertEqual(cs.count[k], 1)
                let m = cs.mean(k), v = cs.variance(k)
                for c in 0..<bn.channels {
                    XCTAssertEqual(m[c], 0.1 * exact[layer][k].0[c], accuracy: 1e-5)
                    XCTAssertEqual(v[c], 0.9 + 0.1 * exact[layer][k].1[c], accuracy: 1e-4)
                }
            }
        }
        // Batches of 3: 12 images, each class appears in several batches.
        try ClassStatisticsPass.run(model: model, data: data, normalization: trainer.normalization, mode: .ema, batchSize: 3, seed: 1)
        for bn in model.batchNorms {
            XCTAssertGreaterThan(bn.classStatistics!.count[0], 1)
            XCTAssertTrue(bn.classStatistics!.variance(0).allSatisfy { $0.isFinite && $0 > 0 })
        }
    }

    /// Stopping mid-epoch, checkpointing and resuming in a fresh trainer gives the same weights, optimizer
    /// state and scores as an uninterrupted run, bit for bit.
    func testCheckpointResumeIsBitIdentical() throws {
        let data = TeacherFixtures.stripes()
        let settings = TeacherFixtures.settings(for: data, epochs: 3)
        let norm = Normalization(of: data)
        let whole = try TeacherTrainer(settings: settings, data: data, normalization: norm)
        try trainAll(whole)

        let path = NSTemporaryDirectory() + "teacher-ckpt-\(getpid()).ckpt"
        defer { unlink(path) }
        let first = try TeacherTrainer(settings: settings, data: data, normalization: norm)
        while !first.epochComplete { try first.trainStep() }
        _ = first.finishEpoch()
        try first.trainStep()
        try first.trainStep()
        try first.saveCheckpoint(path: path, producer: "test", extra: ["note": .string("x")])

        let second = try TeacherTrainer(settings: settings, data: data, normalization: norm)
        let meta = try second.restoreCheckpoint(path: path)
        XCTAssertEqual(meta["note"], .string("x"))
        XCTAssertEqual(second.epoch, 1)
        XCTAssertEqual(second.step, 2)
        try trainAll(second)
        for (a, b) in zip(whole.model.parameters, second.model.parameters) { XCTAssertEqual(a.value.array, b.value.array, a.name) }
        for (a, b) in zip(whole.model.buffers, second.model.buffers) { XCTAssertEqual(a.tensor.array, b.tensor.array, a.name) }
        XCTAssertEqual(Array(whole.optimizer.stateBuffer), Array(second.optimizer.stateBuffer))
        for i in 0..<data.count { XCTAssertEqual(whole.scores!.values(i), second.scores!.values(i)) }

        // Other settings are refused, naming the difference.
        var other = settings
        other.learningRate = 0.1
        let third = try TeacherTrainer(settings: other, data: data, normalization: norm)
        XCTAssertThrowsError(try third.restoreCheckpoint(path: path)) { error in
            XCTAssertTrue("\(error)".contains("--lr 0.05 there, 0.1 now"), "\(error)")
        }
    }

    /// A learning rate that blows the loss up stops with the epoch, step and rate.
    func testNonFiniteLossStops() throws {
        let data = TeacherFixtures.stripes()
        let trainer = try TeacherTrainer(settings: TeacherFixtures.settings(for: data, epochs: 2, lr: 1e12), data: data,
                                         normalization: Normalization(of: data))
        XCTAssertThrowsError(try trainAll(trainer)) { error in
            let text = (error as? LDError)?.message ?? "\(error)"
            XCTAssertTrue(text.contains("try a lower --lr") && text.contains("epoch"), text)
        }
    }

    func testSettingsValidation() throws {
        let data = TeacherFixtures.stripes()
        var s = TeacherFixtures.settings(for: data)
        s.learningRate = .nan
        XCTAssertThrowsError(try s.validate())
        s = TeacherFixtures.settings(for: data)
        // An unknown optimiser cannot be spelled: the settings decode it from its name or refuse it.
        XCTAssertNil(OptimizerKind(rawValue: "lbfgs"))
        s.warmupEpochs = 5
        XCTAssertThrowsError(try s.validate())
    }
}
