import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

final class LabelBatchTests: XCTestCase {
    private func tinySet() -> Dataset {
        var pixels: [UInt8] = []
        for i in 0..<6 * 2 * 8 * 8 { pixels.append(UInt8(truncatingIfNeeded: i * 13 + i / 7)) }
        return Dataset(pixels: pixels, labels: [0, 1, 2, 0, 1, 2], classes: 3, channels: 2, height: 8, width: 8,
                       mean: [0.5, 0.4], std: [0.25, 0.2], classNames: ["a", "b", "c"], source: "tiny")
    }

    func testRecordReplaysTheBatchItWasMadeFrom() throws {
        let data = tinySet()
        let norm = Normalization(of: data)
        for kind in [MixKind.none, .cutmix, .mixup] {
            var rng = LDRandom(seed: 4, stage: .relabel, major: 1, minor: 2)
            let indices = [5, 0, 3, 3]
            let rrc = RandomResizedCrop()
            let augs = indices.map { _ in rrc.sample(height: 8, width: 8, using: &rng) }
            var params = MixParams()
            switch kind {
            case .none: break
            case .cutmix: CutMix.sample(batch: 4, height: 8, width: 8, into: &params, using: &rng)
            case .mixup: Mixup.sample(batch: 4, into: &params, using: &rng)
            }
            let producer = try LabelBatchBuilder(data: data, normalization: norm)
            let made = try producer.build(indices: indices, augmentations: augs, mix: kind, params: kind == .none ? nil : params).array
            let (crops, flips) = try LabelBatchRecord.boxes(of: augs)
            let m = LabelBatchRecord.mixFields(kind, kind == .none ? nil : params)
            let record = LabelBatchRecord(batch: 7, epoch: 1, classes: 3, indices: indices.map { UInt32($0) },
                                          crops: crops, flips: flips, mix: kind, permutation: m.permutation,
                                          lambda: m.lambda, box: m.box, logits: .single([Float](repeating: 0, count: 12)))
            try record.validate(images: data, source: "test")
            // Through the codec and back.
            let header = StreamHeader(kind: .labels, producer: "t", version: "0", classes: 3)
            let decoded = try record.encode().withUnsafeBytes {
                try LabelBatchRecord(payload: $0, header: header,
                                     context: RecordContext(source: "t", stream: 0, record: 1, kind: .labels))
            }
            XCTAssertEqual(decoded, record)
            XCTAssertEqual(decoded.sampleAugmentations, augs)
            let replayer = try LabelBatchBuilder(data: data, normalization: norm)
            XCTAssertEqual(try replayer.build(decoded).array, made, "\(kind)")
        }
    }

    func testRecordNamingAMissingImageIsRefused() throws {
        let data = tinySet()
        let record = LabelBatchRecord(batch: 0, epoch: 0, classes: 3, indices: [9], crops: [CropBox(top: 0, left: 0, height: 8, width: 8)],
                                      flips: [false], logits: .single([0, 0, 0]))
        XCTAssertThrowsError(try record.validate(images: data, source: "s")) { XCTAssertTrue("\($0)".contains("image 9"), "\($0)") }
    }
}
