import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

/// The generation loop in the library: logit storage, header meta round trip, keyed draws, shards, replay.
final class RelabelTests: XCTestCase {
    private func tinySet(count: Int = 7, classes: Int = 3) -> Dataset {
        var pixels: [UInt8] = []
        for i in 0..<count * 8 * 8 { pixels.append(UInt8(truncatingIfNeeded: i * 29 + i / 5)) }
        return Dataset(pixels: pixels, labels: (0..<count).map { Int32($0 % classes) }, classes: classes, channels: 1,
                       height: 8, width: 8, mean: [0.5], std: [0.25], classNames: (0..<classes).map { "c\($0)" }, source: "tiny")
    }

    private func teacher(classes: Int = 3) throws -> ModelFile {
        Engine.threads = 1
        var rng = LDRandom(seed: 1, stage: .test)
        let model = try Model(.convnet(width: 4, depth: 1, channels: 1, imageSize: 8, classes: classes), rng: &rng)
        return ModelFile(model: model, mean: [0.4], std: [0.3], classNames: (0..<classes).map { "c\($0)" })
    }

    func testTopKKeepsTheBestClassesBestFirst() {
        let x: [Float] = [0.5, 2, -1, 2, 3,   /* image 1 */ 1, 1, 1, 1, 1]
        guard case .topK(let k, let ids, let vals) = x.withUnsafeBufferPointer({
            LogitStorage.topK(3).logits($0.baseAddress!, batch: 2, classes: 5)
        }) else { return XCTFail("not top-k") }
        XCTAssertEqual(k, 3)
        XCTAssertEqual(ids, [4, 1, 3, 0, 1, 2], "ties keep the lower class id first")
        XCTAssertEqual(vals.map { Float($0) }, [3, 2, 2, 1, 1, 1])
        let all = x.withUnsafeBufferPointer { LogitStorage.topK(5).logits($0.baseAddress!, batch: 2, classes: 5) }
        XCTAssertEqual(all.dense(batch: 2, classes: 5), x, "k = K keeps everything")
        XCTAssertEqual(x.withUnsafeBufferPointer { LogitStorage.fp16.logits($0.baseAddress!, batch: 2, classes: 5) },
                       .half(x.map { Float16($0) }))
    }

    func testHeaderMetaRoundTrips() throws {
        let data = tinySet()
        let file = try teacher()
        let s = RelabelSettings(seed: 9, epochs: 10, epochRange: 4..<7, batchSize: 3, dropLast: true, mix: .mixup,
                                mixupAlpha: 0.4, crop: RandomResizedCrop(scale: (0.25, 0.75)), logits: .topK(2))
        let h = s.header(teacher: file, images: data)
        XCTAssertEqual(h.kind, .labels)
        XCTAssertEqual(h.classes, 3)
        XCTAssertEqual(h.shape, [1, 8, 8])
        XCTAssertEqual(h.imageSetHash, data.contentHash)
        // Through the header's JSON and back.
        let decoded = try h.encoded().withUnsafeBytes { try StreamHeader.decode($0, context: "t") }
        XCTAssertEqual(try LabelStreamInfo.settings(of: decoded, source: "t"), s)
        let info = LabelStreamInfo(header: decoded)
        XCTAssertEqual(info.images, 7)
        XCTAssertEqual(info.batchesPerEpoch, 2, "7 images, batches of 3, drop last")
        XCTAssertEqual(info.declaredRunBatches, 20, "10 epochs of 2 batches")
        var bad = decoded
        bad.meta["batches_per_epoch"] = .int(3)
        XCTAssertThrowsError(try LabelStreamInfo.settings(of: bad, source: "t"))
        bad.meta["mix"] = .string("blend")
        XCTAssertThrowsError(try LabelStreamInfo.settings(of: bad, source: "t")) { XCTAssertTrue("\($0)".contains("mix"), "\($0)") }
        // Forged counts read as absent, never as a trap or a huge allocation.
        var forged = decoded
        for value in [JSONValue.double(4.6e18), .double(1e300), .int(-3), .double(2.5), .string("9")] {
            forged.meta["batches_per_epoch"] = value
            forged.meta["epochs"] = value
            let f = LabelStreamInfo(header: forged)
            XCTAssertNil(f.batchesPerEpoch, "\(value)")
            XCTAssertNil(f.declaredRunBatches, "\(value)")
            XCTAssertThrowsError(try LabelStreamInfo.settings(of: forged, source: "t"))
        }
        forged.meta["batches_per_epoch"] = .int(Int64(Int32.max))
        forged.meta["epochs"] = .int(Int64(Int32.max))
        XCTAssertEqual(LabelStreamInfo(header: forged).declaredRunBatches, Int(Int32.max) * Int(Int32.max))
        // A consumer refuses labels made for other images or another class count.
        XCTAssertNoThrow(try LabelStreamInfo.check(decoded, images: data, classes: 3, source: "t"))
        XCTAssertThrowsError(try LabelStreamInfo.check(decoded, images: tinySet(count: 6), source: "t")) {
            XCTAssertTrue("\($0)".contains("image set"), "\($0)")
        }
        XCTAssertThrowsError(try LabelStreamInfo.check(decoded, images: data, classes: 10, source: "t"))
    }

    func testEpochsArePermutationsCutIntoBatches() throws {
        let data = tinySet()
        let r = try Relabeler(teacher: try teacher(), images: data, settings: RelabelSettings(epochs: 2, batchSize: 3))
        XCTAssertEqual(r.batchesPerEpoch, 3)
        for e in 0..<2 {
            let batches = (0..<3).map { r.indices(epoch: e, batch: $0) }
            XCTAssertEqual(batches.map(\.count), [3, 3, 1], "the last batch is partial")
            XCTAssertEqual(batches.flatMap { $0 }.sorted(), Array(0..<7))
        }
        XCTAssertNotEqual(r.indices(epoch: 0, batch: 0) + r.indices(epoch: 0, batch: 1),
                          r.indices(epoch: 1, batch: 0) + r.indices(epoch: 1, batch: 1))
        let dropping = try Relabeler(teacher: try teacher(), images: data, settings: RelabelSettings(epochs: 2, batchSize: 3, dropLast: true))
        XCTAssertEqual(dropping.batchesPerEpoch, 2)
        XCTAssertThrowsError(try Relabeler(teacher: try teacher(), images: data, settings: RelabelSettings(epochs: 1, batchSize: 8, dropLast: true)))
    }

    func testShardRecordsEqualTheWholeRunsAndReplay() throws {
        let data = tinySet()
        let file = try teacher()
        for mix in [MixKind.cutmix, .mixup, .none] {
            let whole = try Relabeler(teacher: file, images: data, settings: RelabelSettings(epochs: 3, batchSize: 3, mix: mix))
            let shard = try Relabeler(teacher: file, images: data,
                                      settings: RelabelSettings(epochs: 3, epochRange: 2..<3, batchSize: 3, mix: mix))
            // A fresh replayer, as ld-train would build it.
            let builder = try LabelBatchBuilder(data: data, normalization: Normalization(of: file))
            for b in 0..<3 {
                let m = try whole.record(epoch: 2, batch: b)
                XCTAssertEqual(m.encode(), try shard.record(epoch: 2, batch: b).encode(), "\(mix) batch \(b)")
                XCTAssertEqual(m.batch, UInt64(2 * 3 + b))
                XCTAssertEqual(m.mix, mix)
                try m.validate(images: data, source: "t")
                guard case .half(let stored) = m.logits else { return XCTFail("fp16 expected") }
                let y = file.model.forward(try builder.build(m)).array
                XCTAssertEqual(y.map { Float16($0) }, stored, "\(mix) batch \(b): replay gives the stored logits")
            }
        }
    }

    func testDrawsAreKeyedAndWithinTheImage() throws {
        let data = tinySet()
        let r = try Relabeler(teacher: try teacher(), images: data, settings: RelabelSettings(epochs: 2, batchSize: 3))
        let a = r.augmentations(epoch: 1, batch: 2, count: 3)
        XCTAssertEqual(r.augmentations(epoch: 1, batch: 2, count: 1), Array(a.prefix(1)), "per-item keys")
        XCTAssertNotEqual(r.augmentations(epoch: 0, batch: 2, count: 3), a)
        for x in a { XCTAssertTrue(x.box.isInside(height: 8, width: 8)) }
        let m = r.mix(epoch: 1, batch: 0, count: 3)
        XCTAssertEqual(m, r.mix(epoch: 1, batch: 0, count: 3))
        XCTAssertEqual(m?.perm.sorted(), [0, 1, 2])
        XCTAssertNotNil(m?.box)
    }
}
