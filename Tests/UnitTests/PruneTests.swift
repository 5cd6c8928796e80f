import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// Label pruning and subset selection in process (Sources/Shared/Prune).
final class PruneTests: XCTestCase {
    /// A label-batch record with deterministic logits; batch `g` of epoch g / perEpoch. Every third batch is
    /// CutMix, every fifth Mixup.
    static func record(_ g: Int, batch b: Int = 4, classes k: Int = 5, images: Int = 20, seed: UInt64 = 1) -> LabelBatchRecord {
        var rng = LDRandom(seed: seed, stage: .test, major: g)
        let indices = (0..<b).map { _ in UInt32(rng.int(in: 0..<images)) }
        let crops = (0..<b).map { _ in CropBox(top: 0, left: 1, height: 6, width: 7) }
        let flips = (0..<b).map { _ in rng.int(in: 0..<2) == 1 }
        let logits = (0..<b * k).map { _ in Float16(Float(rng.normal()) * 2) }
        var mix = MixKind.none, perm: [UInt32] = [], lambda: Float = 1, box = CropBox.zero
        if g % 3 == 1 {
            mix = .cutmix; perm = (0..<b).reversed().map { UInt32($0) }; lambda = 0.6
            box = CropBox(top: 1, left: 1, height: 1 + g % 5, width: 4)
        } else if g % 5 == 2 {
            mix = .mixup; perm = (0..<b).map { UInt32(($0 + 1) % b) }; lambda = Float(g % 7) / 7
        }
        return LabelBatchRecord(batch: UInt64(g), epoch: UInt32(g / 10), classes: k, indices: indices, crops: crops,
                                flips: flips, mix: mix, permutation: perm, lambda: lambda, box: box, logits: .half(logits))
    }

    static func header(epochs: Int? = nil, perEpoch: Int = 10, classes: Int = 5) -> StreamHeader {
        var meta: [String: JSONValue] = ["batch_size": .int(4)]
        if let e = epochs {
            meta["epochs"] = .int(Int64(e))
            meta["epoch_start"] = .int(0)
            meta["epoch_end"] = .int(Int64(e))
            meta["batches_per_epoch"] = .int(Int64(perEpoch))
        }
        return StreamHeader(kind: .labels, producer: "test", version: LD.version, seed: 9, classes: classes,
                            teacherHash: "00000000000000aa", imageSetHash: "00000000000000bb", meta: meta)
    }

    /// The bytes of a label stream holding `ids` in that order.
    static func stream(_ ids: [Int], header h: StreamHeader = header()) throws -> [UInt8] {
        let sink = MemorySink()
        let w = try StreamWriter(sink: sink, header: h)
        for g in ids { try w.write(record(g)) }
        try w.finish()
        return sink.bytes
    }

    /// Prunes in-memory streams; returns the kept batch ids (in output order), the output bytes and the summary.
    func prune(_ inputs: [[UInt8]], _ options: LabelPruneOptions) throws -> (ids: [UInt64], bytes: [UInt8], summary: LabelPruneSummary) {
        let sink = MemorySink()
        let summary = try LabelPruneJob.run(inputs: inputs.map { b in { try StreamReader(source: MemorySource(b)) } },
                                            options: options, open: { try StreamWriter(sink: sink, header: $0) })
        let r = try StreamReader(source: MemorySource(sink.bytes))
        var ids: [UInt64] = []
        while let rec = try r.next() { ids.append(try LabelBatchRecord(rec, header: r.header).batch) }
        return (ids, sink.bytes, summary)
    }

    func testKeptCountRoundsHalfAway() {
        XCTAssertEqual(LabelPruning.keptCount(total: 100, ratio: 40), 3)
        XCTAssertEqual(LabelPruning.keptCount(total: 1000, ratio: 33.3), 30)
        XCTAssertEqual(LabelPruning.keptCount(total: 7, ratio: 1), 7)
        XCTAssertEqual(LabelPruning.keptCount(total: 23400, ratio: 40), 585)
        XCTAssertEqual(LabelPruning.keptCount(total: 5, ratio: 2), 3)
    }

    func testRandomKeepsExactlyRoundNOverREachOnceAndSeedsDiffer() throws {
        let n = 1000
        let input = try PruneTests.stream(Array(0..<n))
        for ratio in [1.0, 3.0, 7.0, 33.3, 40.0] {
            let a = try prune([input], LabelPruneOptions(rule: .random, ratio: ratio, seed: 0))
            let k = LabelPruning.keptCount(total: n, ratio: ratio)
            XCTAssertEqual(a.ids.count, k, "ratio \(ratio)")
            XCTAssertEqual(Set(a.ids).count, k, "each at most once")
            XCTAssertEqual(a.ids, a.ids.sorted(), "global batch order")
            XCTAssertTrue(a.ids.allSatisfy { $0 < UInt64(n) })
            // Exactly the k smallest keyed priorities.
            let expected = (0..<UInt64(n)).sorted {
                (LabelPruning.priority(seed: 0, batch: $0), $0) < (LabelPruning.priority(seed: 0, batch: $1), $1)
            }.prefix(k).sorted()
            XCTAssertEqual(a.ids, Array(expected))
            XCTAssertEqual(a.summary.kept, k)
            XCTAssertEqual(a.summary.total, n)
        }
        let s0 = try prune([input], LabelPruneOptions(rule: .random, ratio: 10, seed: 0)).ids
        let s1 = try prune([input], LabelPruneOptions(rule: .random, ratio: 10, seed: 1)).ids
        XCTAssertNotEqual(s0, s1, "two seeds give different subsets")
        XCTAssertEqual(s0, try prune([input], LabelPruneOptions(rule: .random, ratio: 10, seed: 0)).ids)
    }

    func testRandomDoesNotDependOnOrderOrSharding() throws {
        var order = Array(0..<400)
        var rng = LDRandom(seed: 3, stage: .test)
        rng.shuffle(&order)
        let whole = try prune([PruneTests.stream(Array(0..<400))], LabelPruneOptions(rule: .random, ratio: 9, seed: 5))
        let shuffled = try prune([PruneTests.stream(order)], LabelPruneOptions(rule: .random, ratio: 9, seed: 5))
        let shards = try prune([PruneTests.stream(Array(200..<400)), PruneTests.stream(Array(0..<200))],
                               LabelPruneOptions(rule: .random, ratio: 9, seed: 5))
        XCTAssertEqual(whole.ids, shuffled.ids)
        XCTAssertEqual(whole.bytes, shards.bytes)
    }

    func testRandomHoldsAboutKRecords() throws {
        // The memory bound: the sampler holds about k = N/R records at any time, far fewer than N.
        let n = 8000
        let r = try prune([PruneTests.stream(Array(0..<n))], LabelPruneOptions(rule: .random, ratio: 40, seed: 1))
        let k = Double(LabelPruning.keptCount(total: n, ratio: 40))
        XCTAssertEqual(Double(r.summary.kept), k)
        XCTAssertLessThan(Double(r.summary.peakHeld), 1.15 * (k + 8 * k.squareRoot() + 16) + 64, "held \(r.summary.peakHeld)")
        XCTAssertLessThan(r.summary.peakHeld, n / 4)
        let prefix = try prune([PruneTests.stream(Array(0..<n), header: PruneTests.header(epochs: 800, perEpoch: 10))],
                               LabelPruneOptions(rule: .prefix, ratio: 40))
        XCTAssertEqual(prefix.summary.peakHeld, 0, "prefix streams")
        let metric = try prune([PruneTests.stream(Array(0..<n), header: PruneTests.header(epochs: 800, perEpoch: 10))],
                               LabelPruneOptions(rule: .confidence, ratio: 40, keep: .easy))
        XCTAssertEqual(metric.summary.peakHeld, 200, "a heap of k")
    }

    func testPrefixStreamsThePoolOfTheDeclaredRun() throws {
        let h = PruneTests.header(epochs: 10, perEpoch: 10)
        let input = try PruneTests.stream(Array(0..<100), header: h)
        let r = try prune([input], LabelPruneOptions(rule: .prefix, ratio: 40))
        XCTAssertEqual(r.ids, [0, 1, 2], "round(100/40) = round(2.5) = 3")
    }

    func testPrefixWithoutDeclaredRunKeepsSmallestIds() throws {
        let input = try PruneTests.stream(Array((0..<30).reversed()))
        let r = try prune([input], LabelPruneOptions(rule: .prefix, ratio: 4))
        XCTAssertEqual(r.ids, Array(0..<8).map(UInt64.init))
    }

    func testPrefixMissingPoolBatchesIsAnError() throws {
        let h = PruneTests.header(epochs: 10, perEpoch: 10)
        let input = try PruneTests.stream(Array(50..<100), header: h)
        XCTAssertThrowsError(try prune([input], LabelPruneOptions(rule: .prefix, ratio: 10))) { e in
            XCTAssertTrue("\(e)".contains("pool"), "\(e)")
        }
    }

    func testMetricRulesKeepTheRightEnd() throws {
        let n = 60
        let input = try PruneTests.stream(Array(0..<n), header: PruneTests.header(epochs: 6, perEpoch: 10))
        let labels = (0..<20).map { Int32($0 % 5) }
        for rule in [LabelPruneRule.confidence, .margin, .cutRatio, .correct] {
            let values = try (0..<n).map {
                try LabelPruning.metric(rule, of: PruneTests.record($0), imageLabels: labels, imageSize: (8, 8))
            }
            for keep in [PruneKeep.easy, .hard] {
                let r = try prune([input], LabelPruneOptions(rule: rule, ratio: 6, keep: keep, imageLabels: labels,
                                                             imageSize: (8, 8)))
                XCTAssertEqual(r.ids.count, 10)
                let keptValues = r.ids.map { values[Int($0)] }
                let rest = (0..<n).filter { !r.ids.contains(UInt64($0)) }.map { values[$0] }
                if keep == .easy {
                    XCTAssertGreaterThanOrEqual(keptValues.min()!, rest.max()!, "\(rule) easy")
                } else {
                    XCTAssertLessThanOrEqual(keptValues.max()!, rest.min()!, "\(rule) hard")
                }
            }
        }
    }

    func testMetricValues() throws {
        // Two images, three classes: logits (0, 0, ln 2) -> p = (1/4, 1/4, 1/2); (ln 3, 0, 0) -> (3/5, 1/5, 1/5).
        let l: [Float] = [0, 0, Float(log(2.0)), Float(log(3.0)), 0, 0]
        let r = LabelBatchRecord(batch: 0, epoch: 0, classes: 3, indices: [0, 1],
                                 crops: [.zero, .zero], flips: [false, false], mix: .cutmix, permutation: [1, 0],
                                 lambda: 0.5, box: CropBox(top: 0, left: 0, height: 2, width: 4), logits: .single(l))
        XCTAssertEqual(try LabelPruning.metric(.confidence, of: r), (0.5 + 0.6) / 2, accuracy: 1e-6)
        XCTAssertEqual(try LabelPruning.metric(.margin, of: r), (0.25 + 0.4) / 2, accuracy: 1e-6)
        XCTAssertEqual(try LabelPruning.metric(.cutRatio, of: r, imageSize: (4, 4)), 0.5, accuracy: 1e-9)
        XCTAssertEqual(try LabelPruning.metric(.correct, of: r, imageLabels: [2, 1]), 0.5)
        XCTAssertThrowsError(try LabelPruning.metric(.correct, of: r))
        let top = LabelBatchRecord(batch: 0, epoch: 0, classes: 3, indices: [0], crops: [.zero], flips: [false],
                                   logits: .topK(k: 2, classes: [2, 0], values: [Float16(Float(log(3.0))), 0]))
        XCTAssertEqual(try LabelPruning.metric(.confidence, of: top), 0.75, accuracy: 1e-3)
        XCTAssertEqual(try LabelPruning.metric(.correct, of: top, imageLabels: [2]), 1)
    }

    func testStorageAccountingAddsUpToTheStreamBytes() throws {
        let input = try PruneTests.stream(Array(0..<50))
        let r = try prune([input], LabelPruneOptions(rule: .random, ratio: 5, seed: 2))
        XCTAssertEqual(r.summary.input.total, input.count)
        XCTAssertEqual(r.summary.output.total, r.bytes.count)
        XCTAssertEqual(r.summary.input.bytes.indices, 50 * 4 * 4)
        XCTAssertEqual(r.summary.input.bytes.logits, 50 * 4 * 5 * 2)
        // Two concatenated streams count two headers.
        let two = try prune([PruneTests.stream(Array(0..<25)) + PruneTests.stream(Array(25..<50))],
                            LabelPruneOptions(rule: .random, ratio: 5, seed: 2))
        XCTAssertEqual(two.summary.input.streams, 2)
        XCTAssertEqual(two.bytes, r.bytes)
    }

    func testPrunedHeaderAndBadInput() throws {
        let r = try prune([PruneTests.stream(Array(0..<20))], LabelPruneOptions(rule: .random, ratio: 4, seed: 7))
        let h = try StreamReader(source: MemorySource(r.bytes)).header
        XCTAssertEqual(h.meta["pruned"], .object(["rule": .string("random"), "ratio": .int(4), "kept": .int(5),
                                                  "total": .int(20), "seed": .int(7), "keep": .null]))
        XCTAssertEqual(h.teacherHash, "00000000000000aa")
        XCTAssertThrowsError(try prune([PruneTests.stream([0])], LabelPruneOptions(ratio: 0.5)))
        XCTAssertThrowsError(try prune([PruneTests.stream(Array(0..<4))], LabelPruneOptions(ratio: 10)), "keeps 0")
        XCTAssertThrowsError(try prune([PruneTests.stream([1, 2, 1])], LabelPruneOptions(ratio: 1)), "duplicate")
        var other = PruneTests.header()
        other.classes = 7
        XCTAssertThrowsError(try prune([PruneTests.stream([0]), try PruneTests.stream([], header: other)],
                                       LabelPruneOptions(ratio: 1)))
        let images = try Dataset(pixels: [0], labels: [0], classes: 1, channels: 1, height: 1, width: 1, mean: [0],
                                 std: [1], classNames: ["a"], source: "x").streamBytes()
        XCTAssertThrowsError(try prune([images], LabelPruneOptions(ratio: 1))) { e in
            XCTAssertTrue("\(e)".contains("expected 'labels'"), "\(e)")
        }
        XCTAssertThrowsError(try prune([PruneTests.stream([0])], LabelPruneOptions(ratio: 1, imageSetHash: "00000000000000cc")))
    }

    // MARK: - Subset selection

    /// 3 classes x 100 images (1x1 pixels), scores chosen per index.
    func scoredSet() -> (Dataset, ScoreTable) {
        let n = 300
        let labels = (0..<n).map { Int32($0 % 3) }
        let d = Dataset(pixels: (0..<n).map { UInt8($0 % 256) }, labels: labels, classes: 3, channels: 1, height: 1,
                        width: 1, mean: [0.5], std: [0.25], classNames: ["a", "b", "c"], source: "scored")
        var rng = LDRandom(seed: 4, stage: .test)
        let el2n = (0..<n).map { _ in Float(rng.uniformDouble()) }
        let forgetting = (0..<n).map { _ in Float(rng.int(in: 0..<5)) }
        let aum = (0..<n).map { _ in Float(rng.normal()) }
        return (d, ScoreTable(columns: ["el2n", "forgetting", "aum", "correct"],
                              values: [el2n, forgetting, aum, el2n], imageSetHash: d.contentHash))
    }

    func testMonotonicSelectionTakesTheRightEndPerClass() throws {
        let (d, t) = scoredSet()
        for (rule, col) in [(SubsetRule.el2n, 0), (.forgetting, 1), (.aum, 2)] {
            for keep in [PruneKeep.easy, .hard] {
                let got = try SubsetSelection.select(d, scores: t, options: .init(rule: rule, ipc: 7, keep: keep))
                XCTAssertEqual(got.count, 21)
                let lowFirst = (keep == .easy) == (rule != .aum)
                for c in 0..<3 {
                    let mine = got[(7 * c)..<(7 * c + 7)]
                    XCTAssertTrue(mine.allSatisfy { d.labels[$0] == Int32(c) })
                    XCTAssertEqual(Array(mine), mine.sorted(), "ascending index within a class")
                    let s = t.values[col]
                    let others = (0..<300).filter { d.labels[$0] == Int32(c) && !mine.contains($0) }
                    if lowFirst {
                        XCTAssertLessThanOrEqual(mine.map { s[$0] }.max()!, others.map { s[$0] }.min()!, "\(rule) \(keep)")
                    } else {
                        XCTAssertGreaterThanOrEqual(mine.map { s[$0] }.min()!, others.map { s[$0] }.max()!, "\(rule) \(keep)")
                    }
                }
            }
        }
    }

    func testRandomSelectionIsTheClassBalancedBaseline() throws {
        let (d, _) = scoredSet()
        let got = try SubsetSelection.select(d, scores: nil, options: .init(rule: .random, ipc: 10, seed: 3))
        XCTAssertEqual(got, try d.classBalancedIndices(ipc: 10, seed: 3))
        XCTAssertEqual(try d.subset(got).classCounts(), [10, 10, 10])
    }

    func testWaterFilling() {
        XCTAssertEqual(SubsetSelection.waterFill(populations: [1, 100, 100, 0], budget: 10), [1, 4, 5, 0])
        XCTAssertEqual(SubsetSelection.waterFill(populations: [2, 2, 2], budget: 6), [2, 2, 2])
        XCTAssertEqual(SubsetSelection.waterFill(populations: [50, 3], budget: 20), [17, 3])
        XCTAssertEqual(SubsetSelection.strata(of: [0, 1, 2, 10], strata: 5), [0, 0, 1, 4])
        XCTAssertEqual(SubsetSelection.strata(of: [3, 3], strata: 5), [0, 0])
    }

    func testCCSCoversEveryStratumAndCutsTheLowestAUM() throws {
        // One class of 400 with skewed AUM: strata differ a lot in population.
        let n = 400
        let d = Dataset(pixels: [UInt8](repeating: 0, count: n), labels: [Int32](repeating: 0, count: n), classes: 1,
                        channels: 1, height: 1, width: 1, mean: [0], std: [1], classNames: ["a"], source: "ccs")
        var rng = LDRandom(seed: 8, stage: .test)
        let aum = (0..<n).map { _ in Float(pow(rng.uniformDouble(), 3) * 10 - 2) }
        let t = ScoreTable(columns: ["aum"], values: [aum], imageSetHash: d.contentHash)
        let got = try SubsetSelection.select(d, scores: t, options: .init(rule: .ccs, ipc: 60, seed: 1, ccsCutoff: 0.3, ccsStrata: 50))
        XCTAssertEqual(got.count, 60)
        XCTAssertEqual(Set(got).count, 60)
        let pool = SubsetSelection.cutoff(Array(0..<n), aum: aum, beta: 0.3)
        XCTAssertEqual(pool.count, 280)
        let cut = Set(0..<n).subtracting(pool)
        XCTAssertTrue(Set(got).isDisjoint(with: cut), "nothing below the hard cut-off")
        XCTAssertGreaterThanOrEqual(pool.map { aum[$0] }.min()!, cut.map { aum[$0] }.max()!)
        let strata = SubsetSelection.strata(of: pool.map { aum[$0] }, strata: 50)
        let nonEmpty = Set(strata)
        let covered = Set(got.map { strata[pool.firstIndex(of: $0)!] })
        XCTAssertEqual(covered, nonEmpty, "every non-empty stratum is sampled")
        let again = try SubsetSelection.select(d, scores: t, options: .init(rule: .ccs, ipc: 60, seed: 1))
        XCTAssertEqual(got, again)
        XCTAssertThrowsError(try SubsetSelection.select(d, scores: t, options: .init(rule: .ccs, ipc: 300, seed: 1)))
    }

    func testSelectionBadInput() throws {
        let (d, t) = scoredSet()
        XCTAssertThrowsError(try SubsetSelection.select(d, scores: t, options: .init(rule: .el2n, ipc: 101))) { e in
            XCTAssertTrue("\(e)".contains("fewer than --ipc 101"), "\(e)")
        }
        XCTAssertThrowsError(try SubsetSelection.select(d, scores: nil, options: .init(rule: .aum, ipc: 1)))
        let noAum = ScoreTable(columns: ["el2n"], values: [t.values[0]], imageSetHash: d.contentHash)
        XCTAssertThrowsError(try SubsetSelection.select(d, scores: noAum, options: .init(rule: .aum, ipc: 1))) { e in
            XCTAssertTrue("\(e)".contains("no column 'aum'"), "\(e)")
        }
    }
}

extension Dataset {
    /// This set as image-stream bytes.
    func streamBytes() throws -> [UInt8] {
        let sink = MemorySink()
        let w = try StreamWriter(sink: sink, header: streamHeader(producer: "test"))
        for i in 0..<count {
            try w.write(ImageRecord(index: UInt64(i), label: UInt32(labels[i]), pixels: Array(pixels[i * imageSize..<(i + 1) * imageSize])))
        }
        try w.finish()
        return sink.bytes
    }
}
