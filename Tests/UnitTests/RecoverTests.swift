import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// Recover's pieces: batch plans per method (fixed chunks, shard boundaries), settings, the pixel save rule,
/// and the synthesis loop on a tiny teacher (deterministic, batch-independent noise, falling BN loss).
final class RecoverTests: XCTestCase {
    func testSRe2LBatchesAreCrossClassChunksPerIPCIndex() throws {
        let plan = try RecoverPlan(method: .sre2l, classes: 5, ipc: 2, batchSize: 2)
        XCTAssertEqual(plan.batches.count, 6)   // 2 IPC indices x chunks [0,2) [2,4) [4,5)
        XCTAssertEqual(plan.batches[0].images, [RecoverImage(classIndex: 0, ipcIndex: 0), RecoverImage(classIndex: 1, ipcIndex: 0)])
        XCTAssertEqual(plan.batches[2].images, [RecoverImage(classIndex: 4, ipcIndex: 0)])
        XCTAssertEqual(plan.batches[3].images.map(\.ipcIndex), [1, 1])
        XCTAssertEqual(plan.batches[3].keyMajor, 1)
        XCTAssertEqual(plan.batches[3].keyMinor, 0)
        XCTAssertEqual(plan.images.count, 10)
        XCTAssertEqual(plan.globalIndex(RecoverImage(classIndex: 3, ipcIndex: 1)), 7)

        // A shard on chunk boundaries holds exactly the whole run's batches for its classes.
        let shard = try RecoverPlan(method: .cda, classes: 5, ipc: 2, classRange: 2..<5, batchSize: 2)
        XCTAssertEqual(shard.batches, plan.batches.filter { $0.images[0].classIndex >= 2 })
        XCTAssertThrowsError(try RecoverPlan(method: .sre2l, classes: 5, ipc: 2, classRange: 1..<5, batchSize: 2))
        XCTAssertThrowsError(try RecoverPlan(method: .sre2l, classes: 5, ipc: 2, classRange: 0..<3, batchSize: 2))
        // Any IPC range is fine for cross-class batches.
        let ipcShard = try RecoverPlan(method: .sre2l, classes: 5, ipc: 3, ipcRange: 1..<2, batchSize: 5)
        XCTAssertEqual(ipcShard.batches.count, 1)
        XCTAssertEqual(ipcShard.batches[0].keyMajor, 1)
    }

    func testLPLDBatchesAreWithinClassChunks() throws {
        let plan = try RecoverPlan(method: .lpld, classes: 3, ipc: 5, batchSize: 2)
        XCTAssertEqual(plan.batches.count, 9)   // 3 classes x chunks [0,2) [2,4) [4,5)
        XCTAssertEqual(plan.batches[1].images, [RecoverImage(classIndex: 0, ipcIndex: 2), RecoverImage(classIndex: 0, ipcIndex: 3)])
        XCTAssertEqual(plan.batches[1].keyMajor, 0)
        XCTAssertEqual(plan.batches[1].keyMinor, 2)
        let shard = try RecoverPlan(method: .lpld, classes: 3, ipc: 5, ipcRange: 2..<5, batchSize: 2)
        XCTAssertEqual(shard.batches, plan.batches.filter { $0.images[0].ipcIndex >= 2 })
        XCTAssertThrowsError(try RecoverPlan(method: .lpld, classes: 3, ipc: 5, ipcRange: 1..<5, batchSize: 2))
        // Any class range is fine for within-class batches.
        XCTAssertEqual(try RecoverPlan(method: .lpld, classes: 3, ipc: 5, classRange: 1..<2, batchSize: 5).batches.count, 1)
    }

    func testImpossibleRangesThrow() {
        XCTAssertThrowsError(try RecoverPlan(method: .sre2l, classes: 2, ipc: 2, classRange: 0..<3, batchSize: 1))
        XCTAssertThrowsError(try RecoverPlan(method: .sre2l, classes: 2, ipc: 2, ipcRange: 1..<3, batchSize: 1))
        XCTAssertThrowsError(try RecoverPlan(method: .sre2l, classes: 2, ipc: 0, batchSize: 1))
        XCTAssertThrowsError(try RecoverPlan(method: .lpld, classes: 2, ipc: 2, batchSize: 0))
    }

    func testSettingsDefaultsAndCurriculum() throws {
        let s = RecoverSettings(method: .sre2l, batchSize: 10)
        XCTAssertEqual(s.iterations, 1000)
        XCTAssertEqual(s.learningRate, 0.25)
        XCTAssertEqual(s.bnWeight, 0.01)
        XCTAssertEqual(s.firstBNMultiplier, 10)
        XCTAssertEqual(s.jitter, 2)
        XCTAssertTrue(s.cropScale(at: 0) == (0.5, 1))
        var c = RecoverSettings(method: .cda, batchSize: 10)
        c.iterations = 100
        XCTAssertEqual(c.cropScale(at: 0).0, 1, accuracy: 1e-6)
        XCTAssertEqual(c.cropScale(at: 50).0, 0.75, accuracy: 1e-5)  // cosine from 1 to the 0.5 floor
        XCTAssertEqual(c.cropScale(at: 99).0, 0.5, accuracy: 1e-3)
        c.cropScaleMin = 0.08                                          // the ImageNet floor
        XCTAssertEqual(c.cropScale(at: 50).0, 0.54, accuracy: 1e-5)
        c.milestone = 0
        XCTAssertEqual(c.cropScale(at: 0).0, 0.08, accuracy: 1e-6)
        c.cropScaleMax = 0.7
        c.milestone = 1
        XCTAssertEqual(c.cropScale(at: 0).0, 0.7, accuracy: 1e-6)   // never above the upper bound
        c.jitter = -1
        XCTAssertThrowsError(try c.validate())
    }

    func testPixelsAreTruncatedAfterClamp() {
        // mean 0.5, std 0.25: x = 1.99 -> 0.9975 -> 254.36 -> 254; x = -3 -> clamp 0; x = 5 -> clamp 1 -> 255.
        let x = Tensor(shape: [1, 1, 1, 4], values: [1.99, -3, 5, 0.0])
        let p = RecoverSynthesizer.toPixels(x, n: 1, channels: 1, plane: 4, mean: [0.5], std: [0.25])
        XCTAssertEqual(p, [254, 0, 255, 127])
    }

    /// A tiny teacher with class statistics, built in-process.
    func tinyTeacher() throws -> ModelFile {
        Engine.threads = 1
        var rng = LDRandom(seed: 3, stage: .weightInit)
        let model = try Model(.convnet(width: 4, depth: 2, channels: 1, imageSize: 8, classes: 3), rng: &rng)
        model.training = true
        let x = Tensor(shape: [30, 1, 8, 8])
        var data = LDRandom(seed: 4, stage: .test)
        data.fillNormal(x.data, count: x.count)
        let labels = (0..<30).map { Int32($0 % 3) }
        _ = model.forward(x)   // running statistics move off their initial values
        model.training = false
        labels.withUnsafeBufferPointer { _ = model.forward(x, classLabels: $0.baseAddress!) }
        return ModelFile(model: model, mean: [0.5], std: [0.3], classNames: ["a", "b", "c"])
    }

    func testSynthesisIsDeterministicAndLowersTheBNLoss() throws {
        let teacher = try tinyTeacher()
        for method in RecoverMethod.allCases where method.optimises {
            var s = RecoverSettings(method: method, batchSize: method == .lpld ? 2 : 3)
            s.iterations = 60
            s.seed = 11
            // BN-dominated and without augmentation, so the BN loss must fall (with r_bn 0.01 the tiny teacher's
            // CE dominates, and the augmentation of the step moves the measured loss around).
            s.bnWeight = 1
            s.cropScaleMin = 1
            s.flip = false
            s.jitter = 0
            let plan = try RecoverPlan(method: method, classes: 3, ipc: 2, batchSize: s.batchSize)
            let synth = try RecoverSynthesizer(teacher: teacher, settings: s)
            var steps = 0
            let a = try synth.run(plan.batches[0]) { _, _, _ in steps += 1 }
            let b = try synth.run(plan.batches[0])
            XCTAssertEqual(steps, 60)
            XCTAssertEqual(a.pixels, b.pixels, "\(method): same batch, same bytes")
            XCTAssertEqual(a.pixels.count, plan.batches[0].images.count * 64)
            XCTAssertLessThan(a.bnLast, a.bnFirst / 2, "\(method): BN loss \(a.bnFirst) -> \(a.bnLast)")
            let other = try synth.run(plan.batches[1])
            XCTAssertNotEqual(a.pixels, other.pixels)
        }
    }

    func testLPLDNeedsClassStatistics() throws {
        var rng = LDRandom(seed: 3, stage: .weightInit)
        let model = try Model(.convnet(width: 4, depth: 2, channels: 1, imageSize: 8, classes: 3), rng: &rng)
        let plain = ModelFile(model: model, mean: [0.5], std: [0.3], classNames: ["a", "b", "c"])
        XCTAssertThrowsError(try RecoverSynthesizer(teacher: plain, settings: RecoverSettings(method: .lpld, batchSize: 2))) {
            XCTAssertTrue("\($0)".contains("--class-stats"), "\($0)")
        }
        XCTAssertNoThrow(try RecoverSynthesizer(teacher: plain, settings: RecoverSettings(method: .sre2l, batchSize: 2)))
    }

    /// An ensemble weighs each teacher 1/K: two copies of one teacher are the one-teacher run, bit for bit
    /// (pixels and reported losses), for every method.
    func testTwoCopiesOfOneTeacherEqualTheTeacher() throws {
        let teacher = try tinyTeacher()
        for method in RecoverMethod.allCases where method.optimises {
            var s = RecoverSettings(method: method, batchSize: method == .lpld ? 2 : 3)
            s.iterations = 15
            s.seed = 5
            let plan = try RecoverPlan(method: method, classes: 3, ipc: 2, batchSize: s.batchSize)
            let one = try RecoverSynthesizer(teacher: teacher, settings: s).run(plan.batches[0])
            let two = try RecoverSynthesizer(teachers: [teacher, teacher], settings: s).run(plan.batches[0])
            XCTAssertEqual(one.pixels, two.pixels, "\(method)")
            XCTAssertEqual([one.ceFirst, one.ceLast, one.bnFirst, one.bnLast, one.bnSaved],
                           [two.ceFirst, two.ceLast, two.bnFirst, two.bnLast, two.bnSaved], "\(method)")
        }
        // Another teacher changes the images; one that takes other images or classes is refused, naming it.
        var rng = LDRandom(seed: 9, stage: .weightInit)
        let other = ModelFile(model: try Model(.convnet(width: 4, depth: 2, channels: 1, imageSize: 8, classes: 3), rng: &rng),
                              mean: [0.5], std: [0.3], classNames: ["a", "b", "c"])
        var s = RecoverSettings(method: .sre2l, batchSize: 3)
        s.iterations = 5
        let plan = try RecoverPlan(method: .sre2l, classes: 3, ipc: 1, batchSize: 3)
        XCTAssertNotEqual(try RecoverSynthesizer(teachers: [teacher, other], settings: s).run(plan.batches[0]).pixels,
                          try RecoverSynthesizer(teacher: teacher, settings: s).run(plan.batches[0]).pixels)
        let wide = ModelFile(model: try Model(.convnet(width: 4, depth: 2, channels: 1, imageSize: 8, classes: 4), rng: &rng),
                             mean: [0.5], std: [0.3], classNames: ["a", "b", "c", "d"])
        XCTAssertThrowsError(try RecoverSynthesizer(teachers: [teacher, wide], settings: s)) {
            XCTAssertTrue("\($0)".contains("teacher 2") && "\($0)".contains("4 classes"), "\($0)")
        }
        let shifted = ModelFile(model: other.model, mean: [0.4], std: [0.3], classNames: ["a", "b", "c"])
        XCTAssertThrowsError(try RecoverSynthesizer(teachers: [teacher, shifted], settings: s)) {
            XCTAssertTrue("\($0)".contains("one input transform"), "\($0)")
        }
        XCTAssertThrowsError(try RecoverSynthesizer(teachers: [teacher, other], settings: RecoverSettings(method: .lpld, batchSize: 2))) {
            XCTAssertTrue("\($0)".contains("teacher 2") && "\($0)".contains("--class-stats"), "\($0)")
        }
    }

    /// A run from real images starts from exactly them: with a learning rate too small to move a pixel, the
    /// saved images are the start images (up to the one grey level the round trip through floats may take).
    func testRealStartIsTheStartingPoint() throws {
        let teacher = try tinyTeacher()
        var s = RecoverSettings(method: .lpld, batchSize: 2)
        s.iterations = 1
        s.learningRate = 1e-9
        let plan = try RecoverPlan(method: .lpld, classes: 3, ipc: 2, batchSize: 2)
        var rng = LDRandom(seed: 2, stage: .test)
        let start = (0..<(2 * 64)).map { _ in UInt8(rng.int(in: 0..<256)) }
        let out = try RecoverSynthesizer(teacher: teacher, settings: s).run(plan.batches[0], start: start)
        XCTAssertEqual(out.pixels.count, start.count)
        for (a, b) in zip(out.pixels, start) { XCTAssertLessThanOrEqual(abs(Int(a) - Int(b)), 1) }
        XCTAssertNotEqual(try RecoverSynthesizer(teacher: teacher, settings: s).run(plan.batches[0]).pixels, out.pixels)
    }
}
