import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

final class StudentTests: XCTestCase {
    func testPoolWithReplacementIsKeyedByEpoch() {
        let a = LabelPool.draws(poolSize: 7, count: 50, epoch: 3, seed: 1, sampling: .withReplacement)
        XCTAssertEqual(a.count, 50)
        XCTAssertTrue(a.allSatisfy { (0..<7).contains($0) })
        XCTAssertEqual(a, LabelPool.draws(poolSize: 7, count: 50, epoch: 3, seed: 1, sampling: .withReplacement))
        XCTAssertNotEqual(a, LabelPool.draws(poolSize: 7, count: 50, epoch: 4, seed: 1, sampling: .withReplacement))
        XCTAssertNotEqual(a, LabelPool.draws(poolSize: 7, count: 50, epoch: 3, seed: 2, sampling: .withReplacement))
        XCTAssertGreaterThan(Set(a).count, 1)
    }

    func testPoolWithoutReplacementUsesEveryRecordBeforeRepeating() {
        // Pool larger than an epoch: distinct records.
        let big = LabelPool.draws(poolSize: 20, count: 8, epoch: 0, seed: 5, sampling: .withoutReplacement)
        XCTAssertEqual(Set(big).count, 8)
        // Pool smaller than an epoch: whole permutations one after the other.
        let small = LabelPool.draws(poolSize: 3, count: 7, epoch: 2, seed: 5, sampling: .withoutReplacement)
        XCTAssertEqual(small.count, 7)
        XCTAssertEqual(Set(small[0..<3]), [0, 1, 2])
        XCTAssertEqual(Set(small[3..<6]), [0, 1, 2])
    }

    func testPresetsAndSchedules() throws {
        let lpld = try StudentRecipe.preset("lpld")
        XCTAssertEqual(lpld.optimizer, .adamw)
        XCTAssertEqual(lpld.learningRate, 1e-3)
        XCTAssertEqual(lpld.weightDecay, 0.01)
        XCTAssertEqual(lpld.temperature, 20)
        XCTAssertFalse(lpld.scaleByTSquared)
        XCTAssertEqual(lpld.lrSchedule.lr(at: 0), 1e-3)
        XCTAssertEqual(lpld.lrSchedule.lr(at: 150), 5e-4, accuracy: 1e-9)

        var dc = try StudentRecipe.preset("dc")
        dc.epochs = 300
        XCTAssertEqual(dc.optimizer, .sgd)
        XCTAssertEqual(dc.batchSize, 256)
        XCTAssertEqual(dc.momentum, 0.9)
        XCTAssertEqual(dc.weightDecay, 5e-4)
        XCTAssertEqual(dc.lrSchedule.lr(at: 149), 0.01)
        XCTAssertEqual(dc.lrSchedule.lr(at: 150), 0.001, accuracy: 1e-9)

        var warm = lpld
        warm.epochs = 100
        warm.warmupEpochs = 5
        XCTAssertEqual(warm.lrSchedule.lr(at: 0), 1e-5, accuracy: 1e-10)
        XCTAssertEqual(warm.lrSchedule.lr(at: 5), 1e-3)
        XCTAssertThrowsError(try StudentRecipe.preset("nope"))
        var bad = lpld
        bad.epochs = 0
        XCTAssertThrowsError(try bad.validate())
    }

    func testOptimizerGroupsFollowTheRecipe() throws {
        var rng = LDRandom(seed: 1, stage: .weightInit)
        let model = try Model(.convnet(width: 4, depth: 1, channels: 1, imageSize: 4, classes: 3), rng: &rng)
        let soft = try StudentRecipe.preset("lpld").makeOptimizer(model.parameters)
        XCTAssertTrue(soft is AdamW)
        XCTAssertEqual((soft as? AdamW)?.weightDecay, 0.01)
        let hard = try StudentRecipe.preset("dc").makeOptimizer(model.parameters)
        XCTAssertEqual((hard as? SGD)?.decayScope, .all)
        XCTAssertEqual((hard as? SGD)?.momentum, 0.9)
    }

    func testCutMixLabelWeightIsTheUnpastedShare() {
        let p = MixParams(perm: [1, 0], lam: 0.3, box: CropBox(rows: 0, 2, columns: 0, 4))
        XCTAssertEqual(p.labelWeight(kind: .cutmix, height: 4, width: 4), 0.5)
        XCTAssertEqual(p.labelWeight(kind: .mixup, height: 4, width: 4), 0.3)
        XCTAssertEqual(p.labelWeight(kind: .none, height: 4, width: 4), 1)
    }

    func testTrainerLearnsAndStopsOnNaN() throws {
        Engine.threads = 1
        var rng = LDRandom(seed: 2, stage: .weightInit)
        let model = try Model(.convnet(width: 4, depth: 1, channels: 1, imageSize: 4, classes: 2), rng: &rng)
        var recipe = try StudentRecipe.preset("lpld")
        recipe.learningRate = 0.01
        let trainer = StudentTrainer(model: model, recipe: recipe)
        trainer.beginEpoch(0)
        var noise = LDRandom(seed: 3, stage: .test)
        let x = Tensor(shape: [8, 1, 4, 4])
        noise.fillNormal(x.data, count: x.count)
        let labels: [Int32] = [0, 1, 0, 1, 0, 1, 0, 1]
        let first = try trainer.step(input: x, target: .labels(labels))
        var last = first
        for _ in 0..<30 { last = try trainer.step(input: x, target: .labels(labels)) }
        XCTAssertLessThan(last, first)
        // Teacher logits of the wrong size are refused; a NaN target stops the step.
        XCTAssertThrowsError(try trainer.step(input: x, target: .logits(Tensor(shape: [3, 2]))))
        let nan = Tensor(shape: [8, 2])
        nan.fill(.nan)
        XCTAssertThrowsError(try trainer.step(input: x, target: .logits(nan))) {
            XCTAssertTrue("\($0)".contains("diverged"), "\($0)")
        }
    }

    func testStreamInfoReadsTheRelabelHeader() {
        let h = StreamHeader(kind: .labels, producer: "ld-prune", version: "0", classes: 10, meta: [
            "epochs": .int(300), "epoch_start": .int(0), "batch_size": .int(50), "batches_per_epoch": .int(2),
            "pruned": .object(["ratio": .int(40)]), "mean": .array([.double(0.286)]), "std": .array([.double(0.353)]),
        ])
        let info = LabelStreamInfo(header: h)
        XCTAssertEqual(info.epochs, 300)
        XCTAssertEqual(info.storedEpochs, 300)
        XCTAssertEqual(info.batchSize, 50)
        XCTAssertEqual(info.batchesPerEpoch, 2)
        XCTAssertTrue(info.pruned)
        XCTAssertEqual(info.mean, [0.286])
        XCTAssertFalse(LabelStreamInfo(header: StreamHeader(kind: .labels, producer: "x", version: "0")).pruned)
    }

    func testTopKRecordsReplayAsASoftmaxOverTheStoredClasses() throws {
        Engine.threads = 1
        let data = Dataset(pixels: (0..<2 * 16).map { UInt8($0 * 7) }, labels: [0, 2], classes: 3, channels: 1,
                           height: 4, width: 4, mean: [0.5], std: [0.25], classNames: ["a", "b", "c"], source: "t")
        let full = CropBox(top: 0, left: 0, height: 4, width: 4)
        let record = LabelBatchRecord(batch: 0, epoch: 0, classes: 3, indices: [1, 0], crops: [full, full],
                                      flips: [true, false],
                                      logits: .topK(k: 2, classes: [2, 0, 0, 1], values: [3, 1, 2, -1]))
        try record.validate(images: data, source: "t")
        let maker = try StudentBatchMaker(images: data, normalization: Normalization(of: data))
        let (x, target) = try maker.replay(record)
        XCTAssertEqual(x.shape, [2, 1, 4, 4])
        guard case .logits(let t) = target else { return XCTFail("not logits") }
        XCTAssertEqual(t.array[0], 1)
        XCTAssertEqual(t.array[1], -.infinity)
        XCTAssertEqual(t.array[2], 3)
        var rng = LDRandom(seed: 1, stage: .weightInit)
        let model = try Model(.convnet(width: 2, depth: 1, channels: 1, imageSize: 4, classes: 3), rng: &rng)
        let loss = try StudentTrainer(model: model, recipe: try StudentRecipe.preset("lpld")).step(input: x, target: target)
        XCTAssertTrue(loss.isFinite && loss >= 0, "\(loss)")
        XCTAssertTrue(model.parameters.allSatisfy { $0.value.array.allSatisfy { $0.isFinite } })
    }
}
