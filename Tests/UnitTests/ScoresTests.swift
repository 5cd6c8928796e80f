import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

final class ScoresTests: XCTestCase {
    override func setUp() {
        Engine.threads = 1
        Interrupt.reset()
    }

    /// The definitions on hand-made logits: EL2N, forgetting (initial state incorrect), AUM, correct.
    func testDefinitionsOnKnownLogits() {
        let s = TrainingDynamics(count: 1, classes: 3, el2nEpochs: 2)
        let logits = Tensor(shape: [1, 3])
        // epoch 0: correct (class 0 largest); epoch 1: wrong; epoch 2: correct; epoch 3: wrong.
        let rows: [[Float]] = [[2, 0, 0], [0, 1, 0], [3, 1, 0], [0, 0, 0.5]]
        var el2n: Float = 0, aum: Float = 0
        for (e, r) in rows.enumerated() {
            for j in 0..<3 { logits.data[j] = r[j] }
            s.record(logits: logits, indices: [0], labels: [0], epoch: e)
            let z = r.map { exp(Double($0)) }.reduce(0, +)
            let p = r.map { Float(exp(Double($0)) / z) }
            if e < 2 { el2n += ((p[0] - 1) * (p[0] - 1) + p[1] * p[1] + p[2] * p[2]).squareRoot() }
            aum += p[0] - max(p[1], p[2])
        }
        let v = s.values(0)
        XCTAssertEqual(v[0], el2n / 2, accuracy: 1e-6)
        XCTAssertEqual(v[1], 2)          // correct → wrong twice
        XCTAssertEqual(v[2], aum, accuracy: 1e-6)
        XCTAssertEqual(v[3], 2)
    }

    /// With some labels deliberately flipped, the flipped examples have the highest EL2N and the lowest AUM;
    /// the stream holds one record per example in index order with the agreed header.
    func testFlippedLabelsScoreHardest() throws {
        var data = TeacherFixtures.stripes(classes: 3, perClass: 16)
        let flipped = [5, 17, 26, 40]
        for i in flipped { data.labels[i] = (data.labels[i] + 1) % 3 }
        var settings = TeacherFixtures.settings(for: data, epochs: 12, batchSize: 8, lr: 0.05, augment: .none, width: 8)
        settings.trainSetHash = data.contentHash
        let trainer = try TeacherTrainer(settings: settings, data: data, normalization: Normalization(of: data))
        while !trainer.finished {
            while !trainer.epochComplete { try trainer.trainStep() }
            _ = trainer.finishEpoch()
        }
        let s = trainer.scores!
        let byEL2N = (0..<data.count).sorted { s.values($0)[0] > s.values($1)[0] }
        let byAUM = (0..<data.count).sorted { s.values($0)[2] < s.values($1)[2] }
        XCTAssertEqual(Set(byEL2N.prefix(flipped.count)), Set(flipped), "EL2N top: \(byEL2N.prefix(8).map { ($0, s.values($0)[0]) })")
        XCTAssertEqual(Set(byAUM.prefix(flipped.count)), Set(flipped), "AUM bottom: \(byAUM.prefix(8).map { ($0, s.values($0)[2]) })")

        let path = NSTemporaryDirectory() + "scores-\(getpid()).lds"
        defer { unlink(path) }
        try s.write(path: path, producer: "ld-squeeze", seed: 7, imageSetHash: data.contentHash,
                    extra: ["data": .string("stripes"), "epochs": .int(12)])
        let reader = try StreamReader(path: path)
        try reader.expect(kind: .scores)
        XCTAssertEqual(ScoreRecord.columns(of: reader.header), ["el2n", "forgetting", "aum", "correct"])
        XCTAssertEqual(reader.header.imageSetHash, data.contentHash)
        XCTAssertNil(reader.header.teacherHash)
        XCTAssertEqual(reader.header.meta["el2n_epochs"], .int(10))
        XCTAssertEqual(reader.header.classes, 3)
        var n = 0
        while let r = try reader.next() {
            let rec = try ScoreRecord(r, header: reader.header)
            XCTAssertEqual(rec.index, UInt64(n))
            XCTAssertEqual(rec.values, s.values(n))
            n += 1
        }
        XCTAssertEqual(n, data.count)
    }
}
