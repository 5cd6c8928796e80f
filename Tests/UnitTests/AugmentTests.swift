import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

final class AugmentTests: XCTestCase {
    // ------------------------------------------------------------------------------------------------------
    // Differentiable batch augmentations (recover)

    func testCropResizeMatchesHalfPixelRule() {
        // One row [0, 1, 2, 3]; crop columns 1..<3 = [1, 2]; upsample to 4 (scale 0.5):
        // src = 0.5*(o+0.5)-0.5 = -0.25 (clamped 0), 0.25, 0.75, 1.25 -> 1, 1.25, 1.75, 2 (i1 clamped at the edge).
        let x = Tensor(shape: [1, 1, 1, 4], values: [0, 1, 2, 3])
        let y = Tensor(shape: [1, 1, 1, 4])
        bilinearCropResize(x, box: CropBox(top: 0, left: 1, height: 1, width: 2), into: y)
        XCTAssertEqual(y.array, [1, 1.25, 1.75, 2])
        // 2x2 -> 3x3 (scale 2/3): src = 0 (clamped from -1/6), 0.5, 1.1667 (i0 = 1 = L-1).
        let x2 = Tensor(shape: [1, 1, 2, 2], values: [0, 1, 2, 3])
        let y2 = Tensor(shape: [1, 1, 3, 3])
        bilinearCropResize(x2, box: .full(height: 2, width: 2), into: y2)
        let expect: [Float] = [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3]
        for (a, b) in zip(y2.array, expect) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }

    func testCropResizeOfFullBoxIsIdentity() {
        var rng = AugTestRNG(seed: 7)
        let x = augRandomTensor([3, 2, 9, 7], &rng)
        let y = Tensor(shape: [3, 2, 9, 7])
        bilinearCropResize(x, box: .full(height: 9, width: 7), into: y)
        XCTAssertEqual(y.array, x.array)
    }

    func testCropResizeGradient() {
        // Upsampling (the recover case) and downsampling, on a box away from the borders.
        augGradCheck(inputShape: [2, 2, 7, 6], outputShape: [2, 2, 6, 6],
                     forward: { bilinearCropResize($0, box: CropBox(top: 1, left: 2, height: 4, width: 3), into: $1) },
                     backward: { bilinearCropResizeBackward($0, box: CropBox(top: 1, left: 2, height: 4, width: 3), into: $1) })
        augGradCheck(inputShape: [1, 3, 8, 8], outputShape: [1, 3, 3, 5], seed: 2,
                     forward: { bilinearCropResize($0, box: CropBox(top: 2, left: 0, height: 6, width: 7), into: $1) },
                     backward: { bilinearCropResizeBackward($0, box: CropBox(top: 2, left: 0, height: 6, width: 7), into: $1) })
    }

    func testCropResizeWithFusedFlip() {
        var rng = AugTestRNG(seed: 17)
        let x = augRandomTensor([2, 3, 8, 7], &rng)
        let plain = Tensor(shape: [2, 3, 9, 9]), fused = Tensor(shape: [2, 3, 9, 9])
        let box = CropBox(top: 1, left: 1, height: 6, width: 5)
        bilinearCropResize(x, box: box, into: plain)
        bilinearCropResize(x, box: box, flip: true, into: fused)
        horizontalFlip(plain, into: plain)
        XCTAssertEqual(plain.array, fused.array)
        augGradCheck(inputShape: [2, 3, 8, 7], outputShape: [2, 3, 9, 9], seed: 3,
                     forward: { bilinearCropResize($0, box: box, flip: true, into: $1) },
                     backward: { bilinearCropResizeBackward($0, box: box, flip: true, into: $1) })
    }

    func testJitterAndCurriculum() {
        var rng = AugTestRNG(seed: 9)
        var seen = Set<Int>()
        for _ in 0..<500 {
            let (dy, dx) = Jitter(lower: -4, upper: 4).sample(using: &rng)
            XCTAssertTrue((-4...4).contains(dy) && (-4...4).contains(dx))
            seen.insert(dy)
        }
        XCTAssertEqual(seen.count, 9)
        // CDA, cosine, milestone 1, T = 4000: 1 at t = 0, 0.54 at t = 2000, just above 0.08 at the end.
        XCTAssertEqual(CropCurriculum.cosine.scaleMin(iteration: 0, total: 4000, milestone: 1), 1)
        XCTAssertEqual(CropCurriculum.cosine.scaleMin(iteration: 2000, total: 4000, milestone: 1), 0.54, accuracy: 1e-6)
        XCTAssertEqual(CropCurriculum.linear.scaleMin(iteration: 1000, total: 4000, milestone: 0.5), 0.08 + 0.92 * 0.5, accuracy: 1e-6)
        XCTAssertEqual(CropCurriculum.step.scaleMin(iteration: 1999, total: 4000, milestone: 0.5), 1)
        XCTAssertEqual(CropCurriculum.step.scaleMin(iteration: 2000, total: 4000, milestone: 0.5), 0.08)
        XCTAssertEqual(CropCurriculum.cosine.scaleMin(iteration: 0, total: 4000, milestone: 0), 0.08)   // SRe2L
    }

    func testFlipValuesInPlaceAndGradient() {
        let x = Tensor(shape: [1, 1, 2, 3], values: [1, 2, 3, 4, 5, 6])
        let y = Tensor(shape: [1])
        horizontalFlip(x, into: y)
        XCTAssertEqual(y.shape, [1, 1, 2, 3])
        XCTAssertEqual(y.array, [3, 2, 1, 6, 5, 4])
        horizontalFlip(x, into: x)
        XCTAssertEqual(x.array, y.array)
        augGradCheck(inputShape: [2, 3, 4, 5], outputShape: [2, 3, 4, 5],
                     forward: { horizontalFlip($0, into: $1) }, backward: { horizontalFlipBackward($0, into: $1) })
    }

    func testRollValuesAndGradient() {
        // 3x4 plane, shifts (1, -1): out[i][j] = in[(i-1) mod 3][(j+1) mod 4].
        let x = Tensor(shape: [1, 1, 3, 4], values: (0..<12).map(Float.init))
        let y = Tensor(shape: [1, 1, 3, 4])
        roll(x, dy: 1, dx: -1, into: y)
        XCTAssertEqual(y.array, [9, 10, 11, 8, 1, 2, 3, 0, 5, 6, 7, 4])
        // Shifts equal to the size (and multiples) are the identity; shifts wrap.
        roll(x, dy: 3, dx: -8, into: y)
        XCTAssertEqual(y.array, x.array)
        for (dy, dx) in [(1, 2), (-2, 3), (0, 0), (5, -7)] {
            augGradCheck(inputShape: [2, 2, 3, 5], outputShape: [2, 2, 3, 5], seed: UInt64(dy + 10),
                         forward: { roll($0, dy: dy, dx: dx, into: $1) },
                         backward: { rollBackward($0, dy: dy, dx: dx, into: $1) })
        }
    }

    // ------------------------------------------------------------------------------------------------------
    // RandomResizedCrop

    func testRandomResizedCropBoxesStayInsideAndInRange() {
        var rng = AugTestRNG(seed: 42)
        for (h, w, scale) in [(32, 32, (Float(0.08), Float(1))), (28, 40, (0.08, 1)), (64, 48, (0.5, 1)), (7, 5, (0.08, 1))] {
            let rrc = RandomResizedCrop(scale: scale)
            let area = Double(h * w)
            var fallbacks = 0
            for _ in 0..<3000 {
                let b = rrc.sampleBox(height: h, width: w, using: &rng)
                XCTAssertTrue(b.isInside(height: h, width: w), "box \(b) outside \(h)x\(w)")
                if b == rrc.fallbackBox(height: h, width: w) { fallbacks += 1; continue }
                // w = round(sqrt(A*a)), h = round(sqrt(A/a)): within half a pixel of a box with area in
                // [smin, smax]*area and aspect in [3/4, 4/3].
                let bw = Double(b.width), bh = Double(b.height)
                XCTAssertGreaterThanOrEqual((bw + 0.5) * (bh + 0.5), Double(scale.0) * area - 1e-9, "\(b)")
                XCTAssertLessThanOrEqual((bw - 0.5) * (bh - 0.5), Double(scale.1) * area + 1e-9, "\(b)")
                XCTAssertGreaterThanOrEqual((bw + 0.5) / (bh - 0.5), 0.75 - 1e-9, "\(b)")
                XCTAssertLessThanOrEqual((bw - 0.5) / (bh + 0.5), 4.0 / 3.0 + 1e-9, "\(b)")
            }
            XCTAssertLessThan(fallbacks, 300, "\(h)x\(w): too many fallbacks")
        }
        // Stored ImageNet sizes and extreme aspect ratios (training views cropped from whole images): inside,
        // and torchvision's fallback (the centred crop at the nearest allowed ratio) when ten tries fail.
        let rrc = RandomResizedCrop()
        for (h, w) in [(375, 500), (500, 333), (17, 301), (301, 17), (1, 1), (2, 999)] {
            for _ in 0..<500 {
                let b = rrc.sampleBox(height: h, width: w, using: &rng)
                XCTAssertTrue(b.isInside(height: h, width: w) && b.height > 0 && b.width > 0, "box \(b) outside \(h)x\(w)")
            }
        }
        XCTAssertEqual(rrc.fallbackBox(height: 17, width: 301), CropBox(top: 0, left: 139, height: 17, width: 23))
        XCTAssertEqual(rrc.fallbackBox(height: 301, width: 17), CropBox(top: 139, left: 0, height: 23, width: 17))
    }

    func testRandomResizedCropFallback() {
        // scale (1, 1) on a 10x40 image: w = sqrt(400a) <= 23 but h = sqrt(400/a) >= 17 > 10 on every try, so
        // the fallback runs: ratio 4 > 4/3: h = 10, w = round(13.33) = 13, centred.
        var rng = AugTestRNG(seed: 3)
        let rrc = RandomResizedCrop(scale: (1, 1))
        for _ in 0..<20 {
            XCTAssertEqual(rrc.sampleBox(height: 10, width: 40, using: &rng), CropBox(top: 0, left: 13, height: 10, width: 13))
            XCTAssertEqual(rrc.sampleBox(height: 40, width: 10, using: &rng), CropBox(top: 13, left: 0, height: 13, width: 10))
        }
        XCTAssertEqual(rrc.fallbackBox(height: 30, width: 32), .full(height: 30, width: 32))
        XCTAssertThrowsError(try RandomResizedCrop.validated(scale: (0.5, 0.2)))
        XCTAssertNoThrow(try RandomResizedCrop.validated(scale: (0.08, 1)))
        // CDA's first iteration: scale (1, 1) on a square image gives the whole image or a box one pixel off.
        for _ in 0..<50 {
            let b = rrc.sampleBox(height: 32, width: 32, using: &rng)
            XCTAssertTrue(b.height >= 31 && b.width >= 31 && b.isInside(height: 32, width: 32), "\(b)")
        }
    }

    func testSampleAugmentationReplayIsPixelIdentical() {
        var rng = AugTestRNG(seed: 11)
        let src = augRandomTensor([4, 3, 16, 16], &rng)
        let first = Tensor(shape: [4, 3, 16, 16]), second = Tensor(shape: [4, 3, 16, 16])
        let rrc = RandomResizedCrop()
        var stored: [(Int32, Int32, Int32, Int32, UInt8)] = []
        var drawRNG = AugTestRNG(seed: 99)
        for i in 0..<4 {
            let p = rrc.sample(height: 16, width: 16, using: &drawRNG)
            stored.append((Int32(p.box.top), Int32(p.box.left), Int32(p.box.height), Int32(p.box.width), p.flip ? 1 : 0))
            p.apply(from: src, image: i, into: first, image: i)
        }
        // Replay from the stored integers, in a different order of images.
        for i in [2, 0, 3, 1] {
            let s = stored[i]
            let p = SampleAugmentation(box: CropBox(top: Int(s.0), left: Int(s.1), height: Int(s.2), width: Int(s.3)), flip: s.4 != 0)
            p.apply(from: src, image: i, into: second, image: i)
        }
        XCTAssertEqual(first.array.map(\.bitPattern), second.array.map(\.bitPattern))
        // The same seed draws the same parameters.
        var again = AugTestRNG(seed: 99)
        for i in 0..<4 {
            let p = rrc.sample(height: 16, width: 16, using: &again)
            XCTAssertEqual(Int32(p.box.top), stored[i].0)
            XCTAssertEqual(Int32(p.box.width), stored[i].3)
        }
    }

    func testSampleAugmentationFlipAndIdentity() {
        var rng = AugTestRNG(seed: 5)
        let src = augRandomTensor([1, 2, 9, 9], &rng)
        let a = Tensor(shape: [1, 2, 9, 9]), b = Tensor(shape: [1, 2, 9, 9]), c = Tensor(shape: [1, 2, 9, 9])
        SampleAugmentation.identity(height: 9, width: 9).apply(from: src, image: 0, into: a, image: 0)
        XCTAssertEqual(a.array, src.array)
        // A resized crop, flipped, equals the unflipped crop mirrored (both the resize and the copy paths).
        for box in [CropBox(top: 1, left: 2, height: 5, width: 6), CropBox(top: 0, left: 0, height: 9, width: 9)] {
            SampleAugmentation(box: box, flip: false).apply(from: src, image: 0, into: b, image: 0)
            SampleAugmentation(box: box, flip: true).apply(from: src, image: 0, into: c, image: 0)
            horizontalFlip(b, into: b)
            XCTAssertEqual(b.array, c.array)
        }
        // The resize path agrees with the differentiable batch crop-resize.
        let box = CropBox(top: 2, left: 1, height: 6, width: 4)
        SampleAugmentation(box: box, flip: false).apply(from: src, image: 0, into: b, image: 0)
        bilinearCropResize(src, box: box, into: c)
        XCTAssertEqual(b.array, c.array)
    }

    func testRandomCropWithPaddingAndFill() {
        var rng = AugTestRNG(seed: 8)
        let rc = RandomCrop(padding: 4)
        var flips = 0
        var seen = Set<Int>()
        for _ in 0..<2000 {
            let p = rc.sample(height: 28, width: 28, using: &rng)
            XCTAssertTrue((-4...4).contains(p.box.top) && (-4...4).contains(p.box.left), "\(p.box)")
            XCTAssertEqual(p.box.height, 28)
            XCTAssertEqual(p.box.width, 28)
            seen.insert(p.box.top)
            if p.flip { flips += 1 }
        }
        XCTAssertEqual(seen.count, 9)
        XCTAssertTrue((850...1150).contains(flips), "\(flips) flips in 2000")
        // Shift down 1 (top = -1) and left by 2 (left = 2) on a 3x4 two-channel image, fill per channel.
        let x = Tensor(shape: [1, 2, 3, 4], values: (0..<24).map(Float.init))
        let y = Tensor(shape: [1, 2, 3, 4])
        SampleAugmentation(box: CropBox(top: -1, left: 2, height: 3, width: 4), flip: false)
            .apply(from: x, image: 0, into: y, image: 0, fill: [-1, -2])
        XCTAssertEqual(y.array, [-1, -1, -1, -1, 2, 3, -1, -1, 6, 7, -1, -1,
                                 -2, -2, -2, -2, 14, 15, -2, -2, 18, 19, -2, -2])
        SampleAugmentation(box: CropBox(top: -1, left: 2, height: 3, width: 4), flip: true)
            .apply(from: x, image: 0, into: y, image: 0, fill: [-1, -2])
        XCTAssertEqual(Array(y.array[0..<12]), [-1, -1, -1, -1, -1, -1, 3, 2, -1, -1, 7, 6])
    }

    // ------------------------------------------------------------------------------------------------------
    // CutMix and Mixup

    func testCutMixBoxRule() {
        // lam 0.75: r = 0.5, cut = int(32*0.5) = 16, half 8; centre (3, 30): rows 3-8 -> 0, 3+8 = 11;
        // columns 30-8 = 22, 30+8 = 38 -> 32.
        XCTAssertEqual(CutMix.box(lam: 0.75, height: 32, width: 32, centerRow: 3, centerCol: 30),
                       CropBox(rows: 0, 11, columns: 22, 32))
        // lam 0.5 on 28x20: r = 0.7071, cutH = int(19.80) = 19 (half 9), cutW = int(14.14) = 14 (half 7);
        // centre (27, 0): rows 18, 36 -> 28; columns -7 -> 0, 7. The odd cut loses a row (2*9 = 18 < 19).
        XCTAssertEqual(CutMix.box(lam: 0.5, height: 28, width: 20, centerRow: 27, centerCol: 0),
                       CropBox(rows: 18, 28, columns: 0, 7))
        // lam 0: the cut is the whole side; centre (16, 16) covers everything.
        XCTAssertEqual(CutMix.box(lam: 0, height: 32, width: 32, centerRow: 16, centerCol: 16),
                       CropBox(rows: 0, 32, columns: 0, 32))
        // lam 1: empty box at the centre.
        XCTAssertEqual(CutMix.box(lam: 1, height: 32, width: 32, centerRow: 5, centerCol: 7),
                       CropBox(rows: 5, 5, columns: 7, 7))
        // lam 0.9: r = 0.3162, cut = int(10.12) = 10, half 5; centre (10, 20): [5, 15, 15, 25].
        XCTAssertEqual(CutMix.box(lam: 0.9, height: 32, width: 32, centerRow: 10, centerCol: 20),
                       CropBox(rows: 5, 15, columns: 15, 25))
    }

    func testCutMixApplyAndReplay() {
        var rng = AugTestRNG(seed: 21)
        let x = augRandomTensor([5, 2, 8, 8], &rng)
        let y = Tensor(shape: [1]), z = Tensor(shape: [1])
        var params = MixParams()
        var drawRNG = AugTestRNG(seed: 4)
        for _ in 0..<20 {
            CutMix.sample(batch: 5, height: 8, width: 8, into: &params, using: &drawRNG)
            XCTAssertEqual(params.perm.sorted(), [0, 1, 2, 3, 4])
            XCTAssertTrue(params.lam >= 0 && params.lam <= 1)
            guard let b = params.box else { return XCTFail("CutMix without a box") }
            CutMix.apply(params, x, into: y)
            for i in 0..<5 {
                let from = Int(params.perm[i])
                for c in 0..<2 {
                    for r in 0..<8 {
                        for col in 0..<8 {
                            let inBox = r >= b.top && r < b.bottom && col >= b.left && col < b.right
                            let src = (inBox ? from : i) * 128 + c * 64 + r * 8 + col
                            XCTAssertEqual(y.data[i * 128 + c * 64 + r * 8 + col], x.data[src])
                        }
                    }
                }
            }
            // Replay from stored (perm, lam, box): pixel-identical.
            let stored = MixParams(perm: params.perm.map { $0 }, lam: params.lam, box: params.box)
            CutMix.apply(stored, x, into: z)
            XCTAssertEqual(y.array.map(\.bitPattern), z.array.map(\.bitPattern))
        }
    }

    func testMixupApplyReplayAndLambdaLaw() {
        var rng = AugTestRNG(seed: 31)
        let x = augRandomTensor([4, 1, 3, 3], &rng)
        let y = Tensor(shape: [1]), z = Tensor(shape: [1])
        var params = MixParams()
        var drawRNG = AugTestRNG(seed: 6)
        Mixup.sample(batch: 4, into: &params, using: &drawRNG)
        XCTAssertNil(params.box)
        XCTAssertEqual(params.perm.sorted(), [0, 1, 2, 3])
        Mixup.apply(params, x, into: y)
        for i in 0..<4 {
            let j = Int(params.perm[i])
            for k in 0..<9 {
                XCTAssertEqual(y.data[i * 9 + k], params.lam * x.data[i * 9 + k] + (1 - params.lam) * x.data[j * 9 + k],
                               accuracy: 1e-6)
            }
        }
        Mixup.apply(MixParams(perm: params.perm, lam: params.lam), x, into: z)
        XCTAssertEqual(y.array.map(\.bitPattern), z.array.map(\.bitPattern))
        // lam ~ Beta(0.8, 0.8): mean 1/2, variance ab/((a+b)^2 (a+b+1)) = 0.64/(2.56*2.6) = 0.0962.
        // CutMix's Beta(1, 1) is uniform: variance 1/12.
        for (alpha, variance) in [(0.8, 0.0962), (1.0, 1.0 / 12)] {
            var sum = 0.0, sumSq = 0.0
            let n = 4000
            for _ in 0..<n {
                Mixup.sample(batch: 2, alpha: alpha, into: &params, using: &drawRNG)
                XCTAssertTrue(params.lam >= 0 && params.lam <= 1)
                sum += Double(params.lam)
                sumSq += Double(params.lam) * Double(params.lam)
            }
            let mean = sum / Double(n)
            XCTAssertEqual(mean, 0.5, accuracy: 0.02, "alpha \(alpha)")
            XCTAssertEqual(sumSq / Double(n) - mean * mean, variance, accuracy: 0.01, "alpha \(alpha)")
        }
    }
}
