import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// RDED on a tiny set: with whole-image crops it is "the K images the teacher finds most confidently of their
/// class", tiled as ld-prune --combine tiles; with random crops each kept crop is the best of its image's drawn
/// crops by the teacher's cross-entropy, and the kept images are the best candidates.
final class RDEDTests: XCTestCase {
    /// 3 classes x 8 images of 1x8x8 and a tiny teacher (RecoverTests' recipe).
    func fixture() throws -> (Dataset, ModelFile) {
        Engine.threads = 1
        var rng = LDRandom(seed: 21, stage: .test)
        var pixels: [UInt8] = [], labels: [Int32] = []
        for i in 0..<24 {
            labels.append(Int32(i % 3))
            for p in 0..<64 { pixels.append(UInt8(truncatingIfNeeded: (i % 3) * 60 + (p % 8) * 10 + rng.int(in: 0..<60))) }
        }
        let data = Dataset(pixels: pixels, labels: labels, classes: 3, channels: 1, height: 8, width: 8, mean: [0.5],
                           std: [0.3], classNames: ["a", "b", "c"], source: "tiny")
        var w = LDRandom(seed: 3, stage: .weightInit)
        let model = try Model(.convnet(width: 4, depth: 2, channels: 1, imageSize: 8, classes: 3), rng: &w)
        model.training = false
        return (data, ModelFile(model: model, mean: [0.5], std: [0.3], classNames: ["a", "b", "c"]))
    }

    func settings(factor: Int, crops: Int, scale: (Float, Float)) -> RecoverSettings {
        var s = RecoverSettings(method: .rded, batchSize: 2)
        s.factor = factor
        s.crops = crops
        s.cropScaleMin = scale.0
        s.cropScaleMax = scale.1
        s.seed = 4
        return s
    }

    func testWholeImageCropsPickTheTeachersMostConfidentImagesAndTileThemAsCombine() throws {
        let (data, teacher) = try fixture()
        let loss = try teacher.model.losses(data, normalization: Normalization(of: teacher))
        let members = data.classIndices()
        for factor in [1, 2] {
            let rded = try RDED(data: data, teacher: teacher, settings: settings(factor: factor, crops: 1, scale: (1, 1)))
            var groups: [[Int]] = []
            for c in 0..<3 {
                let made = try rded.build(class: c, members: members[c], ipc: 2)
                let want = SubsetSelection.monotonic(members[c], scores: loss, count: factor * factor * 2, highFirst: false)
                groups.append(want)
                // Image k's cells hold ranks k, K + k, 2K + k, ... (Combine.placement).
                XCTAssertEqual(made.sources.map { $0.map(\.index) },
                               (0..<2).map { k in (0..<factor * factor).map { want[$0 * 2 + k] } }, "F \(factor) class \(c)")
                for cells in made.sources { for cell in cells { XCTAssertEqual(cell.box, CropBox(top: 0, left: 0, height: 8, width: 8)) } }
                XCTAssertEqual(made.scores, want.map { loss[$0] })
                let combined = try Combine.combine(data, groups: (0..<3).map { $0 == c ? want : Array(members[$0].prefix(factor * factor * 2)) },
                                                   ipc: 2, factor: factor)
                XCTAssertEqual(made.pixels, Array(combined.images.pixels[(c * 2 * 64)..<((c + 1) * 2 * 64)]), "F \(factor) class \(c)")
            }
        }
    }

    func testEachKeptCropIsTheBestOfItsImagesDrawnCrops() throws {
        let (data, teacher) = try fixture()
        let rded = try RDED(data: data, teacher: teacher, settings: settings(factor: 1, crops: 5, scale: (0.08, 1)))
        let members = data.classIndices()
        let c = 1
        let made = try rded.build(class: c, members: members[c], ipc: 3)
        // The reference: every drawn crop resampled and scored one at a time.
        func score(_ i: Int, _ b: CropBox) throws -> Float {
            var crop = [UInt8](repeating: 0, count: 64)
            let src = Array(data.pixels[(i * 64)..<((i + 1) * 64)])
            src.withUnsafeBufferPointer { s in
                crop.withUnsafeMutableBufferPointer { d in
                    Resample.resize(s.baseAddress!, channels: 1, height: 8, width: 8,
                                    box: (Double(b.left), Double(b.top), Double(b.left + b.width), Double(b.top + b.height)),
                                    outH: 8, outW: 8, into: d.baseAddress!)
                }
            }
            let one = Dataset(pixels: crop, labels: [Int32(c)], classes: 3, channels: 1, height: 8, width: 8, mean: [0.5],
                              std: [0.3], classNames: ["a", "b", "c"], source: "crop")
            return try teacher.model.losses(one, normalization: Normalization(of: teacher))[0]
        }
        var best: [Int: (Float, CropBox)] = [:]
        for i in members[c] {
            let boxes = rded.boxes(ofClass: c, image: i)
            XCTAssertEqual(boxes.count, 5)
            for b in boxes {
                XCTAssertEqual(b.height, b.width, "aspect ratio 1")
                let s = try score(i, b)
                if best[i] == nil || s < best[i]!.0 { best[i] = (s, b) }
            }
        }
        let ranked = members[c].sorted { best[$0]!.0 != best[$1]!.0 ? best[$0]!.0 < best[$1]!.0 : $0 < $1 }
        XCTAssertEqual(made.sources.map { $0[0].index }, Array(ranked.prefix(3)))
        for cells in made.sources { XCTAssertEqual(cells[0].box, best[cells[0].index]!.1) }
        for (a, b) in zip(made.scores, ranked.prefix(3).map { best[$0]!.0 }) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        // Too few candidates for F^2 x K is an error naming the numbers.
        XCTAssertThrowsError(try RDED(data: data, teacher: teacher, settings: settings(factor: 2, crops: 1, scale: (1, 1)))
            .build(class: 0, members: members[0], ipc: 3)) { XCTAssertTrue("\($0)".contains("needs --combine^2 x --ipc = 12"), "\($0)") }
    }
}
