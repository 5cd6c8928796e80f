import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

/// The tests' seeded SplitMix64 (GradCheckSupport.swift), under the name the augmentation tests use.
typealias AugTestRNG = SplitMix64

extension SplitMix64 {
    /// Uniform Float in [-1, 1).
    mutating func symmetric() -> Float { Float(next() >> 40) * 0x1p-23 - 1 }
}

/// A tensor of the given shape with uniform values in [-1, 1).
func augRandomTensor(_ shape: [Int], _ rng: inout AugTestRNG) -> Tensor {
    let t = Tensor(shape: shape)
    for i in 0..<t.count { t.data[i] = rng.symmetric() }
    return t
}

/// Finite-difference check of a backward against its forward.
///
/// With a fixed random upstream gradient g, the scalar L(x) = sum(g * forward(x)) has dL/dx = backward(g).
/// Every input element is perturbed by +-eps and the central difference (in Double) is compared with the
/// analytic gradient, which `backward` must ACCUMULATE into its zeroed argument.
func augGradCheck(inputShape: [Int], outputShape: [Int], seed: UInt64 = 1, eps: Float = 1e-2, tolerance: Double = 2e-3,
                  forward: (Tensor, Tensor) -> Void, backward: (Tensor, Tensor) -> Void,
                  file: StaticString = #filePath, line: UInt = #line) {
    var rng = AugTestRNG(seed: seed)
    let x = augRandomTensor(inputShape, &rng)
    let g = augRandomTensor(outputShape, &rng)
    let y = Tensor(shape: outputShape)
    let dx = Tensor(shape: inputShape)
    backward(g, dx)
    func loss() -> Double {
        forward(x, y)
        XCTAssertEqual(y.shape, outputShape, file: file, line: line)
        var s = 0.0
        for i in 0..<y.count { s += Double(g.data[i]) * Double(y.data[i]) }
        return s
    }
    var worst = 0.0
    for i in 0..<x.count {
        let keep = x.data[i]
        x.data[i] = keep + eps
        let up = loss()
        x.data[i] = keep - eps
        let down = loss()
        x.data[i] = keep
        let numeric = (up - down) / (2 * Double(eps))
        worst = max(worst, abs(numeric - Double(dx.data[i])))
    }
    XCTAssertLessThan(worst, tolerance, "largest |numeric - analytic| gradient difference", file: file, line: line)
    // Accumulation: a second backward doubles the gradient.
    let once = dx.array
    backward(g, dx)
    for i in 0..<dx.count {
        XCTAssertEqual(dx.data[i], 2 * once[i], accuracy: 1e-5, "backward must accumulate", file: file, line: line)
    }
}
