import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// Replay equivalence: a label record made by the teacher on a batch, replayed from a stream, trains the
/// student exactly as the online teacher does on the identical augmentations.
final class TrainReplayTests: ToolTestCase {
    /// Gradients of a fresh student (seed 1) on one batch, flattened in parameter order.
    func firstStepGradients(input: Tensor, target: StudentTarget, data: Dataset) throws -> [Float] {
        var rng = LDRandom(seed: 1, stage: .weightInit)
        let model = try Model(.convnet(width: 6, depth: 2, channels: data.channels, imageSize: data.height,
                                       classes: data.classes), rng: &rng)
        let trainer = StudentTrainer(model: model, recipe: try StudentRecipe.preset("lpld"))
        trainer.beginEpoch(0)
        try trainer.gradients(input: input, target: target)
        return model.parameters.flatMap { $0.grad.array }
    }

    func testReplayedRecordGivesTheOnlineTeachersFirstStepGradients() throws {
        Engine.threads = 1
        let data = ToolFixtures.tinyImages()
        let teacher = try ToolFixtures.tinyTeacher(for: data, path: path("teacher.ldm"))
        let norm = Normalization(of: teacher)
        let sampler = BatchDraws(count: data.count, height: data.height, width: data.width, batchSize: 8,
                                 augment: try StudentRecipe.preset("lpld").sampleAugment(), mix: BatchMix(.cutmix), seed: 9)
        let draw = sampler.draw(epoch: 0, batch: 0, order: sampler.order(epoch: 0))
        XCTAssertEqual(draw.indices.count, 8)
        XCTAssertNotNil(draw.params?.box)

        // Online: the teacher labels the freshly drawn batch.
        let online = try StudentBatchMaker(images: data, normalization: norm)
        let (xOnline, tOnline) = try online.online(draw, teacher: teacher.model)
        let inputOnline = xOnline.array
        guard case .logits(let logitsOnline) = tOnline else { return XCTFail("online target is not logits") }
        let teacherLogits = logitsOnline.array
        let gOnline = try firstStepGradients(input: xOnline, target: tOnline, data: data)

        // The same draw stored as label records (fp16 and fp32 logits), written and read back as a stream.
        for fp32 in [false, true] {
            let (crops, flips) = try LabelBatchRecord.boxes(of: draw.augmentations)
            let m = LabelBatchRecord.mixFields(.cutmix, draw.params)
            let record = LabelBatchRecord(batch: 0, epoch: 0, classes: data.classes, indices: draw.indices.map { UInt32($0) },
                                          crops: crops, flips: flips, mix: .cutmix, permutation: m.permutation,
                                          lambda: m.lambda, box: m.box,
                                          logits: fp32 ? .single(teacherLogits) : .half(teacherLogits.map { Float16($0) }))
            try data.writeStream(path: path("tiny.ldi"), producer: "test")
            try TrainFixtures.writeStream([record], path: path("one.ldl"), data: data, teacher: teacher, epochs: 1, batch: 8)
            let input = try LabelStreamInput(path: path("one.ldl"), images: data)
            let stored = try XCTUnwrap(try input.next())
            XCTAssertEqual(BatchDraw(record: stored), draw)

            let replay = try StudentBatchMaker(images: data, normalization: norm)
            let (xReplay, tReplay) = try replay.replay(stored)
            XCTAssertEqual(xReplay.array, inputOnline, "replayed pixels differ from the online batch")
            let gReplay = try firstStepGradients(input: xReplay, target: tReplay, data: data)
            XCTAssertEqual(gReplay.count, gOnline.count)
            if fp32 {
                XCTAssertEqual(gReplay, gOnline, "fp32 logits must give bit-identical gradients")
            } else {
                // fp16 keeps 11 significant bits: the logits move by at most 2^-11 relative, the softmax at
                // T = 20 by far less, so the gradients agree to about 1e-3 of their scale.
                let scale = gOnline.map { abs($0) }.max() ?? 0
                XCTAssertGreaterThan(scale, 0)
                let worst = zip(gReplay, gOnline).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-3 * scale, "fp16 replay gradients differ by \(worst) (scale \(scale))")
                XCTAssertNotEqual(gReplay, gOnline, "fp16 rounding should show somewhere")
            }
        }
    }
}

/// One keyed batch draw: ld-relabel, ld-train's online teacher and the teacher trainer draw their batches from
/// the same keys.
final class BatchDrawTests: ToolTestCase {
    /// With the same seed, batch size, crop and mix, the records ld-relabel stores hold exactly the batches
    /// the online student draws (indices, crops, flips, mix), epoch after epoch, the partial last batch too.
    func testRelabelStoresTheOnlineStudentsDraws() throws {
        Engine.threads = 1
        let data = ToolFixtures.tinyImages()   // 20 images: batches of 8, 8 and a partial 4
        let teacher = try ToolFixtures.tinyTeacher(for: data, path: path("teacher.ldm"))
        var recipe = try StudentRecipe.preset("lpld")
        recipe.batchSize = 8
        for mix in [MixKind.cutmix, .mixup, .none] {
            recipe.mix = mix
            let relabeler = try Relabeler(teacher: teacher, images: data, settings: RelabelSettings(
                seed: 5, epochs: 3, batchSize: 8, mix: mix,
                crop: try RandomResizedCrop.validated(scale: recipe.cropScale)))
            let online = BatchDraws(count: data.count, height: data.height, width: data.width, batchSize: recipe.batchSize,
                                    augment: try recipe.sampleAugment(), mix: BatchMix(recipe.mix), seed: 5)
            XCTAssertEqual(online.batchesPerEpoch, 3)
            for e in 0..<3 {
                let order = online.order(epoch: e)
                for b in 0..<3 {
                    let stored = BatchDraw(record: try relabeler.record(epoch: e, batch: b))
                    let drawn = online.draw(epoch: e, batch: b, order: order)
                    XCTAssertEqual(stored, drawn, "mix \(mix.name), epoch \(e), batch \(b)")
                    XCTAssertEqual(drawn.indices.count, b == 2 ? 4 : 8)
                }
            }
        }
    }

    /// The teacher trainer's draws: the epoch order from stage .squeeze, each image's augmentation from
    /// (.augment, epoch, batch, item), no mix; the keys written out by hand.
    func testTeacherDrawKeys() throws {
        let crop = SampleAugment.randomCrop(RandomCrop(padding: 2, flipProbability: 0.5))
        let draws = BatchDraws(count: 10, height: 8, width: 8, batchSize: 4, augment: crop, seed: 3, orderStage: .squeeze)
        var orderRNG = LDRandom(seed: 3, stage: .squeeze, major: 1)
        let order = orderRNG.permutation(10)
        XCTAssertEqual(draws.order(epoch: 1), order)
        let draw = draws.draw(epoch: 1, batch: 2, order: order)
        XCTAssertEqual(draw.indices, Array(order[8..<10]))
        for item in 0..<2 {
            var rng = LDRandom(seed: 3, stage: .augment, major: 1, minor: 2, item: item)
            XCTAssertEqual(draw.augmentations[item], crop.sample(height: 8, width: 8, using: &rng))
        }
        XCTAssertNil(draw.params)
        XCTAssertEqual(draw.mix, .none)
        let dropping = BatchDraws(count: 10, height: 8, width: 8, batchSize: 4, dropLast: true, augment: .none, seed: 3)
        XCTAssertEqual(dropping.batchesPerEpoch, 2)
    }
}
