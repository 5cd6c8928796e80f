import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// RethinkDC's Prune-Combine-Augment numerics: grid cells, area downsampling, combine and un-combine,
/// rank-ordered selection, and the grid-aware crop.
final class CombineTests: XCTestCase {
    /// `classes` classes of `perClass` random images, class-major.
    func randomSet(classes: Int, perClass: Int, channels: Int, size: Int, seed: UInt64) -> Dataset {
        var rng = LDRandom(seed: seed, stage: .test)
        let n = classes * perClass
        let pixels = (0..<n * channels * size * size).map { _ in UInt8(rng.int(in: 0..<256)) }
        let labels = (0..<n).map { Int32($0 / perClass) }
        return Dataset(pixels: pixels, labels: labels, classes: classes, channels: channels, height: size, width: size,
                       mean: [Float](repeating: 0.5, count: channels), std: [Float](repeating: 0.25, count: channels),
                       classNames: (0..<classes).map { "c\($0)" }, source: "random")
    }

    func testCellSpansFollowRDEDsRule() throws {
        func spans(_ size: Int, _ f: Int) -> [[Int]] { (0..<f).map { let s = ImageGrid.span($0, size: size, factor: f); return [s.start, s.length] } }
        XCTAssertEqual(spans(28, 2), [[0, 14], [14, 14]])
        XCTAssertEqual(spans(27, 2), [[0, 14], [14, 13]])
        XCTAssertEqual(spans(28, 3), [[0, 10], [10, 9], [19, 9]])
        XCTAssertEqual(spans(27, 3), [[0, 9], [9, 9], [18, 9]])
        XCTAssertEqual(spans(29, 3), [[0, 10], [10, 10], [20, 9]])
        // Cells tile the image exactly and cellIndex agrees with the boxes.
        for (h, w, f) in [(28, 28, 2), (27, 28, 3), (29, 31, 4), (5, 7, 5), (8, 8, 1)] {
            let g = try ImageGrid(height: h, width: w, factor: f)
            var owner = [Int](repeating: -1, count: h * w)
            for k in 0..<g.cellCount {
                let b = g.cell(k)
                XCTAssertTrue(b.isInside(height: h, width: w))
                for y in b.top..<b.top + b.height {
                    for x in b.left..<b.left + b.width {
                        XCTAssertEqual(owner[y * w + x], -1)
                        owner[y * w + x] = k
                        XCTAssertEqual(g.cellIndex(y: y, x: x), k, "\(h)x\(w) F\(f) pixel \(y),\(x)")
                    }
                }
            }
            XCTAssertFalse(owner.contains(-1))
        }
        XCTAssertThrowsError(try ImageGrid(height: 28, width: 28, factor: 0))
        XCTAssertThrowsError(try ImageGrid(height: 4, width: 8, factor: 5))
    }

    func testAreaDownsampling() {
        // Exact 2x: block means, rounded half up.
        let a: [UInt8] = [0, 1, 10, 20,
                          2, 2, 30, 41,
                          255, 255, 7, 7,
                          255, 254, 7, 8]
        XCTAssertEqual(AreaResampler(from: (4, 4), to: (2, 2)).resize(a, channels: 1), [1, 25, 255, 7])
        // 3 -> 2 along a row: weights (2, 1) and (1, 2) in thirds.
        XCTAssertEqual(AreaResampler(from: (1, 3), to: (1, 2)).resize([0, 90, 180], channels: 1), [30, 150])
        // Same size is the identity; a constant image stays constant at any ratio; channels are independent.
        var rng = LDRandom(seed: 3, stage: .test)
        let img = (0..<2 * 27 * 27).map { _ in UInt8(rng.int(in: 0..<256)) }
        XCTAssertEqual(AreaResampler(from: (27, 27), to: (27, 27)).resize(img, channels: 2), img)
        let flat = [UInt8](repeating: 77, count: 3 * 27 * 28)
        XCTAssertEqual(AreaResampler(from: (27, 28), to: (9, 13)).resize(flat, channels: 3), [UInt8](repeating: 77, count: 3 * 9 * 13))
        let two = AreaResampler(from: (27, 27), to: (14, 13)).resize(img, channels: 2)
        XCTAssertEqual(Array(two[0..<14 * 13]), AreaResampler(from: (27, 27), to: (14, 13)).resize(Array(img[0..<27 * 27]), channels: 1))
        // The mean is preserved up to rounding (area weights sum to one).
        let big = (0..<28 * 28).map { _ in UInt8(rng.int(in: 0..<256)) }
        let small = AreaResampler(from: (28, 28), to: (14, 14)).resize(big, channels: 1)
        let m0 = Double(big.map(Int.init).reduce(0, +)) / Double(big.count)
        let m1 = Double(small.map(Int.init).reduce(0, +)) / Double(small.count)
        XCTAssertEqual(m0, m1, accuracy: 0.5)
    }

    /// Combine, then un-combine: each cell is exactly its source image downsampled to the cell's size, placed
    /// by the rank rule (canvas n mod K, cell n div K).
    func testCombineThenUncombineRecoversTheDownsampledImages() throws {
        for (size, f, channels) in [(28, 2, 1), (27, 2, 3), (28, 3, 1), (27, 3, 2)] {
            let k = 2, classes = 2
            let data = randomSet(classes: classes, perClass: f * f * k + 3, channels: channels, size: size, seed: UInt64(size * 10 + f))
            // Rank order: a scrambled order of each class's first F^2 K images.
            let groups = data.classIndices().map { list in Array(list.prefix(f * f * k).reversed()) }
            let c = try Combine.combine(data, groups: groups, ipc: k, factor: f)
            XCTAssertEqual(c.images.count, classes * k)
            XCTAssertEqual(c.images.classCounts(), [k, k])
            XCTAssertEqual([c.images.channels, c.images.height, c.images.width], [channels, size, size])
            XCTAssertEqual(c.grid.factor, f)
            for (cls, group) in groups.enumerated() {
                for (n, src) in group.enumerated() {
                    let (canvas, cell) = Combine.placement(rank: n, ipc: k)
                    XCTAssertEqual(canvas, n % k)
                    XCTAssertEqual(cell, n / k)
                    let slot = cls * k + canvas
                    XCTAssertEqual(c.cellSources[slot][cell], src)
                    XCTAssertEqual(c.images.labels[slot], Int32(cls))
                    let b = c.grid.cell(cell)
                    let original = Array(data.pixels[src * data.imageSize..<(src + 1) * data.imageSize])
                    let expected = AreaResampler(from: (size, size), to: (b.height, b.width)).resize(original, channels: channels)
                    XCTAssertEqual(Combine.cells(of: c.images, image: slot, grid: c.grid)[cell], expected,
                                   "size \(size) F \(f): class \(cls) rank \(n)")
                }
            }
            // The meta names the grid and every cell's source.
            let meta = Combine.meta(c)
            XCTAssertEqual(meta["grid"], .int(Int64(f)))
            XCTAssertEqual(meta["cell_source_indices"]?.arrayValue?.count, classes * k)
        }
    }

    func testCombineRefusesBadGroups() {
        let data = randomSet(classes: 2, perClass: 5, channels: 1, size: 8, seed: 1)
        XCTAssertThrowsError(try Combine.combine(data, groups: [[0, 1, 2, 3], [5, 6, 7]], ipc: 1, factor: 2))
        XCTAssertThrowsError(try Combine.combine(data, groups: [[0, 1, 2, 5], [5, 6, 7, 8]], ipc: 1, factor: 2), "wrong class")
        XCTAssertThrowsError(try Combine.combine(data, groups: [[0], [5]], ipc: 1, factor: 9), "grid too large")
        XCTAssertThrowsError(try Combine.combine(data, groups: [[0], [5]], ipc: 1, factor: 0))
    }

    /// `ranked` lists the same images as `select`, best first.
    func testRankedSelectionOrder() throws {
        let data = randomSet(classes: 3, perClass: 10, channels: 1, size: 4, seed: 2)
        let el2n = (0..<data.count).map { Float(($0 * 7) % 10) }
        let table = ScoreTable(columns: ["el2n", "aum"], values: [el2n, el2n.map { -$0 }], imageSetHash: data.contentHash)
        for rule in [SubsetRule.el2n, .aum, .random, .ccs] {
            for keep in [PruneKeep.easy, .hard] {
                let o = SubsetSelectionOptions(rule: rule, ipc: 4, seed: 5, keep: keep, ccsCutoff: 0.2, ccsStrata: 3)
                let ranked = try SubsetSelection.ranked(data, scores: table, options: o)
                let flat = try SubsetSelection.select(data, scores: table, options: o)
                XCTAssertEqual(rule == .random ? ranked.flatMap { $0 } : ranked.flatMap { $0.sorted() }, flat)
                if rule == .el2n {
                    for group in ranked {
                        let s = group.map { el2n[$0] }
                        XCTAssertEqual(s, keep == .easy ? s.sorted() : s.sorted(by: >), "\(keep)")
                    }
                }
            }
        }
    }

    /// Every grid-aware window lies inside one cell, whatever the size, grid and scale; every cell is used.
    func testGridCropsNeverCrossACell() throws {
        for size in [(8, 8), (27, 27), (28, 28), (32, 30)] {
            for f in 1...4 {
                let grid = try ImageGrid(height: size.0, width: size.1, factor: f)
                for scale in [(Float(0.08), Float(1)), (0.5, 1), (1, 1)] {
                    let crop = GridRandomResizedCrop(crop: RandomResizedCrop(scale: scale), factor: f)
                    var used = Set<Int>()
                    for item in 0..<400 {
                        var rng = LDRandom(seed: 9, stage: .augment, major: f, minor: size.0, item: item)
                        let a = crop.sample(height: size.0, width: size.1, using: &rng)
                        let k = grid.cellIndex(y: a.box.top, x: a.box.left)
                        let cell = grid.cell(k)
                        XCTAssertTrue(a.box.height > 0 && a.box.width > 0)
                        XCTAssertTrue(a.box.top >= cell.top && a.box.left >= cell.left
                                      && a.box.top + a.box.height <= cell.top + cell.height
                                      && a.box.left + a.box.width <= cell.left + cell.width,
                                      "box \(a.box) crosses cell \(k) \(cell) of \(size) F\(f)")
                        used.insert(k)
                    }
                    XCTAssertEqual(used.count, f * f, "\(size) F\(f) scale \(scale)")
                }
            }
        }
        // Grid 1 with scale (1, 1) is the whole image.
        var rng = LDRandom(seed: 1, stage: .augment)
        XCTAssertEqual(GridRandomResizedCrop(crop: RandomResizedCrop(scale: (1, 1), ratio: (1, 1)), factor: 1)
            .sampleBox(height: 28, width: 28, using: &rng), CropBox.full(height: 28, width: 28))
    }

    /// The batch loader draws grid-aware crops from the per-image keys (same key, same crop; replay gives the
    /// same batch), and only RandomResizedCrop can be constrained.
    func testGridAwareLoaderIsKeyedAndReplays() throws {
        let data = randomSet(classes: 2, perClass: 6, channels: 1, size: 12, seed: 4)
        let rrc = SampleAugment.randomResizedCrop(RandomResizedCrop(scale: (0.25, 1)), flipProbability: 0.5)
        let aug = try rrc.constrained(toGrid: 3, height: 12, width: 12)
        XCTAssertEqual(aug.name, "grid-rrc")
        let loader = try BatchLoader(data: data, normalization: Normalization(of: data))
        let indices = [3, 0, 7, 11, 5]
        let draws = BatchDraws(count: data.count, height: 12, width: 12, batchSize: 5, augment: aug, seed: 2)
        let x1 = try loader.load(indices, replaying: draws.augmentations(epoch: 1, batch: 4, count: 5)).array
        let augs = loader.augmentations
        let grid = try ImageGrid(height: 12, width: 12, factor: 3)
        for a in augs {
            let cell = grid.cell(grid.cellIndex(y: a.box.top, x: a.box.left))
            XCTAssertEqual(grid.cellIndex(y: a.box.top + a.box.height - 1, x: a.box.left + a.box.width - 1),
                           grid.cellIndex(y: cell.top, x: cell.left))
        }
        XCTAssertEqual(try loader.load(indices, replaying: draws.augmentations(epoch: 1, batch: 4, count: 5)).array, x1)
        XCTAssertEqual(loader.augmentations, augs)
        XCTAssertEqual(try loader.load(indices, replaying: augs).array, x1)
        // Sampler keys: item j of a batch uses (seed, .augment, epoch, batch, j) whatever else is in the batch.
        var rng = LDRandom(seed: 2, stage: .augment, major: 1, minor: 4, item: 2)
        XCTAssertEqual(aug.sample(height: 12, width: 12, using: &rng), augs[2])
        XCTAssertThrowsError(try SampleAugment.none.constrained(toGrid: 2, height: 12, width: 12))
        XCTAssertThrowsError(try SampleAugment.randomCrop(RandomCrop()).constrained(toGrid: 2, height: 12, width: 12))
        XCTAssertThrowsError(try rrc.constrained(toGrid: 13, height: 12, width: 12))
    }
}
