import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

final class RandomTests: XCTestCase {
    /// Known-answer vectors for Philox4x32-10 published with the Random123 paper (counter, key -> block).
    func testPhiloxKnownAnswers() {
        func check(_ c: (UInt32, UInt32, UInt32, UInt32), _ k: (UInt32, UInt32), _ e: [UInt32]) {
            let b = LDRandom.philox(counter: c, key: k)
            XCTAssertEqual([b.0, b.1, b.2, b.3], e)
        }
        check((0, 0, 0, 0), (0, 0), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        check((0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff), (0xffff_ffff, 0xffff_ffff),
              [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        check((0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), (0xa409_3822, 0x299f_31d0),
              [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    /// Fixed seed, fixed output: a change here changes every tool's results, so it must be deliberate.
    /// Values recorded from this implementation when it was first written (and checked against the KATs).
    func testFixedSeedValues() {
        var r = LDRandom(seed: 42, stage: .train, major: 3, minor: 7, item: 11)
        let words = (0..<4).map { _ in r.next() }
        XCTAssertEqual(words, LDRandomGolden.words)
        var s = LDRandom(seed: 42, stage: .train)
        XCTAssertEqual(s.int(in: 0..<1000), LDRandomGolden.int0)
        XCTAssertEqual(s.uniformFloat().bitPattern, LDRandomGolden.float1Bits)
    }

    /// Streams for different keys generated in different orders and partitions give the same draws.
    func testIndependentOfOrderAndSharding() {
        let base = LDRandom(seed: 7, stage: .relabel)
        func draws(epoch: Int, batch: Int) -> [UInt64] {
            var g = base.stream(major: epoch, minor: batch)
            return (0..<5).map { _ in g.next() }
        }
        var whole: [[UInt64]] = []
        for e in 0..<4 { for b in 0..<3 { whole.append(draws(epoch: e, batch: b)) } }
        // Shards over epochs, processed backwards, each from a freshly constructed generator.
        var sharded = [[UInt64]](repeating: [], count: 12)
        for shard in [2..<4, 0..<2] {
            for e in shard.reversed() {
                for b in (0..<3).reversed() {
                    var g = LDRandom(seed: 7, stage: .relabel, major: e, minor: b)
                    sharded[e * 3 + b] = (0..<5).map { _ in g.next() }
                }
            }
        }
        XCTAssertEqual(whole, sharded)
        // Different stages, keys and seeds give different streams.
        var a = LDRandom(seed: 7, stage: .relabel, major: 1)
        var b = LDRandom(seed: 7, stage: .train, major: 1)
        var c = LDRandom(seed: 8, stage: .relabel, major: 1)
        var d = LDRandom(seed: 7, stage: .relabel, major: 0, minor: 1)
        let x = a.next()
        XCTAssertNotEqual(x, b.next())
        XCTAssertNotEqual(x, c.next())
        XCTAssertNotEqual(x, d.next())
    }

    func testSeekMatchesSequentialDraws() {
        var g = LDRandom(seed: 99, stage: .test, major: 5)
        let seq = (0..<11).map { _ in g.next32() }
        XCTAssertEqual(g.position, 11)
        for start in [0, 1, 3, 4, 5, 8, 10] {
            var h = LDRandom(seed: 99, stage: .test, major: 5)
            h.seek(toWord: UInt64(start))
            XCTAssertEqual(h.position, UInt64(start))
            XCTAssertEqual(h.next32(), seq[start], "seek to \(start)")
        }
    }

    func testUniformAndIntegerRanges() {
        var g = LDRandom(seed: 1, stage: .test)
        var sum = 0.0
        let n = 100_000
        for _ in 0..<n {
            let f = g.uniformFloat()
            XCTAssert(f >= 0 && f < 1)
            let d = g.uniformDouble()
            XCTAssert(d >= 0 && d < 1)
            sum += d
        }
        XCTAssertEqual(sum / Double(n), 0.5, accuracy: 0.005)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 {
            let k = g.int(in: 3..<10)
            XCTAssert((3..<10).contains(k))
            counts[k - 3] += 1
            let m = g.int(in: -2...2)
            XCTAssert((-2...2).contains(m))
        }
        for c in counts { XCTAssertEqual(Double(c), 10_000, accuracy: 500) }
        XCTAssertEqual(g.int(in: 5...5), 5)
        _ = g.int(in: Int.min...Int.max)
        _ = g.int(in: Int.min..<Int.max)
        var hits = 0
        for _ in 0..<100_000 where g.bernoulli(0.3) { hits += 1 }
        XCTAssertEqual(Double(hits) / 100_000, 0.3, accuracy: 0.01)
    }

    func testNormalMoments() {
        var g = LDRandom(seed: 2, stage: .test)
        let n = 100_000
        var s = 0.0, s2 = 0.0
        for _ in 0..<n {
            let x = g.normal()
            s += x
            s2 += x * x
        }
        let mean = s / Double(n)
        XCTAssertEqual(mean, 0, accuracy: 0.015)
        XCTAssertEqual(s2 / Double(n) - mean * mean, 1, accuracy: 0.02)
        var buf = [Float](repeating: 0, count: 10_001)
        buf.withUnsafeMutableBufferPointer { g.fillNormal($0.baseAddress!, count: $0.count, mean: 3, std: 2) }
        let m = buf.reduce(0, +) / Float(buf.count)
        XCTAssertEqual(m, 3, accuracy: 0.1)
    }

    func testGammaAndBetaMeans() {
        var g = LDRandom(seed: 3, stage: .test)
        let n = 100_000
        for shape in [0.3, 1.0, 4.5] {
            var s = 0.0
            for _ in 0..<n { s += g.gamma(shape: shape) }
            XCTAssertEqual(s / Double(n), shape, accuracy: 0.03 * max(shape, 1), "Gamma(\(shape)) mean")
        }
        for (a, b) in [(1.0, 1.0), (0.2, 0.2), (2.0, 5.0), (0.5, 3.0)] {
            var s = 0.0
            for _ in 0..<n {
                let x = g.beta(a, b)
                XCTAssert(x >= 0 && x <= 1)
                s += x
            }
            XCTAssertEqual(s / Double(n), a / (a + b), accuracy: 0.005, "Beta(\(a), \(b)) mean")
        }
    }

    func testPermutationAndSample() {
        var g = LDRandom(seed: 4, stage: .test)
        for n in [0, 1, 2, 10, 1000] {
            let p = g.permutation(n)
            XCTAssertEqual(p.sorted(), Array(0..<n))
        }
        XCTAssertNotEqual(g.permutation(50), Array(0..<50))
        let s = g.sample(10, from: 100)
        XCTAssertEqual(s.count, 10)
        XCTAssertEqual(Set(s).count, 10)
        XCTAssert(s.allSatisfy { (0..<100).contains($0) })
        // Positions are uniform: first element of a permutation of 4 over many draws.
        var first = [Int](repeating: 0, count: 4)
        for _ in 0..<40_000 { first[g.permutation(4)[0]] += 1 }
        for c in first { XCTAssertEqual(Double(c), 10_000, accuracy: 400) }
    }
}

/// Golden values for `testFixedSeedValues`, printed by this implementation once the Philox known-answer
/// vectors passed (seed 42; stage train; key (3, 7, 11) for the words, (0, 0, 0) for the int and float).
enum LDRandomGolden {
    static let words: [UInt64] = [6_693_878_841_205_466_702, 8_904_518_389_368_303_036,
                                  12_314_800_182_739_072_174, 5_077_891_114_030_346_625]
    static let int0 = 826
    static let float1Bits: UInt32 = 1_059_806_814  // 0.6694087
}
