import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

/// SplitMix64: a tiny seeded generator for tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomTensor(_ shape: [Int], _ rng: inout SplitMix64, std: Float = 1) -> Tensor {
    let t = Tensor(shape: shape)
    rng.fillNormal(t, std: std)
    return t
}

/// Σ y·r in Double.
func dotLoss(_ y: Tensor, _ r: Tensor) -> Double {
    var s = 0.0
    for i in 0..<y.count { s += Double(y.data[i]) * Double(r.data[i]) }
    return s
}

/// Compares an analytic gradient with central differences of `f` at up to `samples` indices of `x`.
/// A mismatch is retried with a quarter of the step (ReLU kinks, max ties) before it counts.
func checkGradient(_ name: String, x: Tensor, analytic: [Float], samples: Int = 24, eps: Float = 1e-2,
                   atol: Double = 3e-3, rtol: Double = 3e-2, rng: inout SplitMix64, f: () -> Double,
                   file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(analytic.count, x.count, "\(name): gradient size", file: file, line: line)
    var indices = Array(0..<x.count)
    if x.count > samples {
        indices = (0..<samples).map { _ in Int(rng.next() % UInt64(x.count)) }
    }
    var worst = 0.0, worstIndex = -1
    for i in indices {
        let old = x.data[i]
        func fd(_ e: Float) -> Double {
            x.data[i] = old + e; let a = f()
            x.data[i] = old - e; let b = f()
            x.data[i] = old
            return (a - b) / Double(2 * e)
        }
        let g = Double(analytic[i])
        var num = fd(eps)
        var err = abs(num - g) / (atol + rtol * abs(num))
        if err > 1 { num = fd(eps / 10); err = min(err, abs(num - g) / (atol + rtol * abs(num))) }
        if err > 1 {
            // A kink (ReLU, max) inside the step: the analytic value must match one one-sided difference.
            let e = eps / 10
            let f0 = f()
            x.data[i] = old + e; let fp = f()
            x.data[i] = old - e; let fm = f()
            x.data[i] = old
            for side in [(fp - f0) / Double(e), (f0 - fm) / Double(e)] {
                err = min(err, abs(side - g) / (atol + rtol * abs(side)))
            }
        }
        if err > worst { worst = err; worstIndex = i }
        if err > 1 {
            XCTFail("\(name)[\(i)]: analytic \(g), numeric \(num)", file: file, line: line)
            return
        }
    }
    _ = worstIndex
}

/// Gradient check of a layer: loss = Σ layer(x)·r for fixed random r; checks dx and every parameter.
func checkLayer(_ name: String, _ layer: Layer, input x: Tensor, seed: UInt64 = 7, samples: Int = 24,
                eps: Float = 1e-2, atol: Double = 3e-3, rtol: Double = 3e-2,
                file: StaticString = #filePath, line: UInt = #line) {
    var rng = SplitMix64(seed: seed)
    let y0 = layer.forward(x)
    let r = randomTensor(y0.shape, &rng)
    for p in layer.parameters { p.zeroGrad() }
    layer.wantsInputGrad = true
    layer.wantsParamGrads = true
    _ = layer.forward(x)
    let dy = Tensor(shape: r.shape, values: r.array)   // backward may consume dy
    let dx = layer.backward(dy)!.array
    let grads = layer.parameters.map { ($0.name, $0.value, $0.grad.array) }
    let f = { dotLoss(layer.forward(x), r) }
    checkGradient("\(name) dx", x: x, analytic: dx, samples: samples, eps: eps, atol: atol, rtol: rtol, rng: &rng, f: f, file: file, line: line)
    for (pname, value, g) in grads {
        checkGradient("\(name) d\(pname)", x: value, analytic: g, samples: samples, eps: eps, atol: atol, rtol: rtol, rng: &rng, f: f, file: file, line: line)
    }
}
