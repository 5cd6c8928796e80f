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
        let sampler = OnlineBatchSampler(images: data, batchSize: 8, augment: try StudentRecipe.preset("lpld").sampleAugment(),
                                         mix: .cutmix, seed: 9)
        let draw = sampler.draw(epoch: 0, batch: 0, order: sampler.order(epoch: 0))
        XCTAssertEqual(draw.indices.count, 8)
        XCTAssertNotNil(draw.params?.box)

        // Online: the teacher labels the freshly drawn batch.
        let online = try StudentBatchMaker(images: data, normalization: norm)
        let (xOnline, tOnline) = online.online(draw, teacher: teacher.model)
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
            XCTAssertEqual(StudentBatchDraw(record: stored), draw)

            let replay = try StudentBatchMaker(images: data, normalization: norm)
            let (xReplay, tReplay) = replay.replay(stored)
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
