import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

final class ScheduleTests: XCTestCase {
    func testConstant() {
        XCTAssertEqual(LRSchedule.constant(0.3).lr(at: 0), 0.3)
        XCTAssertEqual(LRSchedule.constant(0.3).lr(at: 1000), 0.3)
    }

    func testCosineFirstStepIsBaseAndLastIsSmallButPositive() {
        let s = LRSchedule.cosine(base: 0.25, total: 4)
        // 0.5*(1+cos(pi*t/4))*0.25 for t = 0..3: 0.25, 0.2133883, 0.125, 0.0366117
        XCTAssertEqual(s.lr(at: 0), 0.25)
        XCTAssertEqual(s.lr(at: 1), 0.21338835, accuracy: 1e-7)
        XCTAssertEqual(s.lr(at: 2), 0.125, accuracy: 1e-7)
        XCTAssertEqual(s.lr(at: 3), 0.036611652, accuracy: 1e-7)
        XCTAssertEqual(s.lr(at: 4), 0)
        // SRe2L recover (T = 1000, lr0 = 0.25): the last step runs at 0.25*0.5*(1+cos(pi*999/1000)) ~ 6e-7, not 0.
        let r = LRSchedule.cosine(base: 0.25, total: 1000)
        XCTAssertGreaterThan(r.lr(at: 999), 0)
        XCTAssertEqual(r.lr(at: 999), Float(0.25 * 0.5 * (1 + cos(Double.pi * 999 / 1000))), accuracy: 1e-12)
    }

    func testLinear() {
        let s = LRSchedule.linear(base: 1, total: 4)
        XCTAssertEqual((0...5).map { s.lr(at: $0) }, [1, 0.75, 0.5, 0.25, 0, 0])
    }

    func testStepDecayMilestones() {
        let s = LRSchedule.stepDecay(base: 1, milestones: [2, 4], gamma: 0.5)
        XCTAssertEqual((0...5).map { s.lr(at: $0) }, [1, 1, 0.5, 0.5, 0.25, 0.25])
    }

    /// The DC/DSA/DM reference schedule (anchors.md A.1) as a step decay: epochs 0...E run and the rate is
    /// multiplied by 0.1 after epoch E/2 + 1.
    func testDatasetCondensationProtocol() {
        func dc(base: Float, epochs: Int) -> LRSchedule { .stepDecay(base: base, milestones: [epochs / 2 + 2], gamma: 0.1) }
        // E = 300: epochs 0...300 run; the rate drops after epoch 151 has run, so epoch 152 is the first at 0.001.
        let s = dc(base: 0.01, epochs: 300)
        XCTAssertEqual(s.lr(at: 0), 0.01)
        XCTAssertEqual(s.lr(at: 151), 0.01)
        XCTAssertEqual(s.lr(at: 152), 0.001, accuracy: 1e-10)
        XCTAssertEqual(s.lr(at: 300), 0.001, accuracy: 1e-10)
        // E = 5: epochs 0...5; the drop happens after epoch 5/2+1 = 3, so epoch 4 is the first at 0.1.
        let small = dc(base: 1, epochs: 5)
        XCTAssertEqual(small.lr(at: 3), 1)
        XCTAssertEqual(small.lr(at: 4), 0.1, accuracy: 1e-7)
    }

    func testWarmupThenCosine() {
        // LPLD Tiny: 5 warm-up epochs from 0.01*lr, then cosine with T_max 95 restarted at 0.
        let s = LRSchedule.warmup(steps: 5, startFactor: 0.01, then: .cosine(base: 0.2, total: 95))
        XCTAssertEqual(s.lr(at: 0), 0.002, accuracy: 1e-9)
        XCTAssertEqual(s.lr(at: 1), 0.2 * (0.01 + 0.99 * 0.2), accuracy: 1e-8)      // 0.0416
        XCTAssertEqual(s.lr(at: 4), 0.2 * (0.01 + 0.99 * 0.8), accuracy: 1e-8)      // 0.1604
        XCTAssertEqual(s.lr(at: 5), 0.2)
        XCTAssertEqual(s.lr(at: 5 + 95), 0)
        XCTAssertEqual(s.lr(at: 52), Float(0.2 * 0.5 * (1 + cos(Double.pi * 47 / 95))), accuracy: 1e-8)
    }
}
