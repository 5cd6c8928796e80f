import LDKernels
import LDRecords
import LDData
// Optimisers over `[Parameter]`: SGD (momentum, Nesterov, coupled weight decay), Adam (optional L2) and AdamW
// (decoupled decay), with PyTorch's update formulas, plus `ImageAdam` for the synthetic images of recover.
//
// Memory is planned once: each optimiser allocates one slab for all its per-parameter state (momentum, first
// and second moments) at construction, and `step()` is a flat loop per parameter on local unsafe pointers.
// Nothing is allocated per step.
//
// Notation in the doc comments: w parameter, g gradient, lr learning rate, wd weight decay, t the 1-based step.

// ---------------------------------------------------------------------------------------------------------
// Common protocol and parameter groups

/// Something that updates parameters in place from their gradients.
public protocol Optimizer: AnyObject {
    /// The learning rate used by the next `step()`; set it before each step from an `LRSchedule`.
    var learningRate: Float { get set }
    /// The parameters this optimiser updates, in construction order.
    var parameters: [Parameter] { get }
    /// Applies one update to every parameter from its current `grad`.
    func step()
    /// Clears the optimiser state (momentum, moments, step count), as if it had just been constructed.
    func resetState()
    /// The optimiser state as one flat buffer (for checkpoints): parameter-major, in `parameters` order.
    var stateBuffer: UnsafeMutableBufferPointer<Float> { get }
    /// Number of steps taken (Adam's bias corrections depend on it); settable when resuming a checkpoint.
    var stepCount: Int { get set }
}

extension Optimizer {
    /// Zeroes every parameter's gradient.
    public func zeroGrad() { for p in parameters { p.zeroGrad() } }
}

/// Which parameters receive weight decay (PyTorch parameter groups).
/// The optimisers a run can name (`--optimizer`): one factory for the teacher and the student.
public enum OptimizerKind: String, CaseIterable, Codable, Sendable {
    case adamw, adam, sgd

    /// The optimiser over `parameters`. `momentum` is SGD's (Adam's betas are PyTorch's defaults, 0.9 and
    /// 0.999); `decayScope` says which parameters decay.
    public func make(_ parameters: [Parameter], learningRate: Float, momentum: Float, weightDecay: Float,
                     decayScope: WeightDecayScope) -> Optimizer {
        switch self {
        case .adamw: return AdamW(parameters, learningRate: learningRate, weightDecay: weightDecay, decayScope: decayScope)
        case .adam: return Adam(parameters, learningRate: learningRate, weightDecay: weightDecay, decayScope: decayScope)
        case .sgd: return SGD(parameters, learningRate: learningRate, momentum: momentum, weightDecay: weightDecay,
                              decayScope: decayScope)
        }
    }
}

public enum WeightDecayScope: Sendable {
    /// Every parameter decays (a single PyTorch group, as `SGD(net.parameters(), weight_decay=...)`).
    case all
    /// Only parameters whose `decays` flag is true (conv and linear kernels); BatchNorm weights and biases
    /// and all biases get 0. This is the two-group setup of the SRe2L/LPLD/RethinkDC student recipes.
    case flagged
}

/// One allocation holding `slots` floats per parameter element, zero-filled; parameter k's slot s starts at
/// `base + offsets[k] * slots + s * count_k`.
fileprivate struct StateSlab {
    let base: UnsafeMutablePointer<Float>
    let offsets: [Int]
    let total: Int

    init(parameters: [Parameter], slots: Int) {
        var offsets: [Int] = []
        var n = 0
        for p in parameters {
            offsets.append(n)
            n += p.value.count
        }
        self.offsets = offsets
        self.total = n * slots
        self.base = .allocate(capacity: max(total, 1))
        base.initialize(repeating: 0, count: max(total, 1))
    }

    func clear() { base.update(repeating: 0, count: total) }
    func free() { base.deallocate() }
    var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: total) }
}

fileprivate func decayRates(_ parameters: [Parameter], _ wd: Float, _ scope: WeightDecayScope) -> [Float] {
    parameters.map { scope == .all || $0.decays ? wd : 0 }
}

fileprivate func checkShapes(_ parameters: [Parameter]) {
    for p in parameters {
        precondition(p.grad.count == p.value.count, "parameter \(p.name): grad has \(p.grad.count) elements, value \(p.value.count)")
    }
}

// ---------------------------------------------------------------------------------------------------------
// SGD

/// Stochastic gradient descent with PyTorch's `torch.optim.SGD` semantics (dampening 0).
///
/// Per element, with momentum mu and buffer b (zero before the first step):
///
///     d = g + wd * w                 (coupled weight decay, added before momentum)
///     b = mu * b + d                 (first step: b = d, PyTorch's clone, identical since b starts at 0)
///     d = nesterov ? d + mu * b : b  (with mu = 0 the buffer is skipped and d is used as is)
///     w = w - lr * d
///
/// The DC/DSA/DM evaluation protocol rebuilds its SGD when the learning rate drops, which clears the momentum
/// buffers: call `resetState()` at that epoch to reproduce it.
public final class SGD: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Float
    public let momentum: Float
    public let nesterov: Bool
    public let weightDecay: Float
    public let decayScope: WeightDecayScope
    public var stepCount: Int = 0
    private let wd: [Float]
    private let slab: StateSlab

    /// - Parameters:
    ///   - decayScope: `.all` matches a plain `SGD(net.parameters(), ...)` (the DC protocol and RethinkDC's
    ///     SGD setting); `.flagged` gives BN parameters and biases no decay (LPLD's Tiny-ImageNet recipe).
    public init(_ parameters: [Parameter], learningRate: Float, momentum: Float = 0, nesterov: Bool = false,
                weightDecay: Float = 0, decayScope: WeightDecayScope = .all) {
        precondition(!nesterov || momentum > 0, "Nesterov momentum requires momentum > 0")
        checkShapes(parameters)
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.decayScope = decayScope
        self.wd = decayRates(parameters, weightDecay, decayScope)
        self.slab = StateSlab(parameters: momentum != 0 ? parameters : [], slots: 1)
    }

    deinit { slab.free() }

    public var stateBuffer: UnsafeMutableBufferPointer<Float> { slab.buffer }
    public func resetState() { slab.clear(); stepCount = 0 }

    public func step() {
        let lr = learningRate, mu = momentum
        for k in 0..<parameters.count {
            let p = parameters[k]
            let w = p.value.data, g = p.grad.data
            let decay = wd[k]
            let b = slab.base + (mu == 0 ? 0 : slab.offsets[k])
            // element by element, so any split of the elements over the threads gives the same values
            Engine.parallelRange(p.value.count, grain: optimizerGrain) { lo, hi in
                if mu == 0 {
                    for i in lo..<hi { w[i] -= lr * (g[i] + decay * w[i]) }
                } else if nesterov {
                    for i in lo..<hi {
                        let d = g[i] + decay * w[i]
                        let bi = mu * b[i] + d
                        b[i] = bi
                        w[i] -= lr * (d + mu * bi)
                    }
                } else {
                    for i in lo..<hi {
                        let d = g[i] + decay * w[i]
                        let bi = mu * b[i] + d
                        b[i] = bi
                        w[i] -= lr * bi
                    }
                }
            }
        }
        stepCount += 1
    }
}

// ---------------------------------------------------------------------------------------------------------
// Adam and AdamW

/// The Adam element update shared by `Adam`, `AdamW` and `ImageAdam` (PyTorch's single-tensor path):
///
///     m = lerp(m, g, 1 - b1)                      (= b1*m + (1-b1)*g, evaluated as torch.lerp does)
///     v = b2 * v + (1 - b2) * g * g
///     w = w - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
///
/// `l2` is Adam's coupled decay (g += l2 * w first); `shrink` is AdamW's decoupled factor (w *= 1 - lr*wd first).
/// Element by element, split over the threads (any split gives the same values).
fileprivate func adamUpdate(_ w: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
                _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ n: Int,
                stepSize: Float, bc2Sqrt: Float, beta1: Float, beta2: Float, eps: Float,
                l2: Float, shrink: Float) {
    Engine.parallelRange(n, grain: optimizerGrain) { lo, hi in
        adamElements(w + lo, g + lo, m + lo, v + lo, hi - lo, stepSize: stepSize, bc2Sqrt: bc2Sqrt,
                   beta1: beta1, beta2: beta2, eps: eps, l2: l2, shrink: shrink)
    }
}

/// Elements at or above which an optimiser's update is split over the threads. It streams four or five floats
/// per element; on one thread, ResNet-18's 11M parameters made most of the ~30 ms of a training step (b64,
/// CIFAR, 2 threads: 3%) that ran serially, a share that grows with the core count.
let optimizerGrain = 1 << 15

@inline(__always)
fileprivate func adamElements(_ w: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
                _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ n: Int,
                stepSize: Float, bc2Sqrt: Float, beta1: Float, beta2: Float, eps: Float,
                l2: Float, shrink: Float) {
    let weight = 1 - beta1
    let oneMinusB2 = 1 - beta2
    // torch.lerp(start, end, weight) = weight < 0.5 ? start + weight*(end-start) : end - (end-start)*(1-weight).
    // Both forms are written as m = base + k*(g - m), with (base, k) fixed per call: the loop has no branch
    // and vectorises. l2 = 0 and shrink = 1 leave the values exactly as they were.
    let lowWeight = weight < 0.5
    let k = lowWeight ? weight : -(1 - weight)
    for i in 0..<n {
        let wi = w[i] * shrink
        let gi = g[i] + l2 * w[i]
        let mOld = m[i]
        let mi = (lowWeight ? mOld : gi) + k * (gi - mOld)
        let vi = v[i] * beta2 + oneMinusB2 * gi * gi
        m[i] = mi
        v[i] = vi
        let denom = vi.squareRoot() / bc2Sqrt + eps
        w[i] = wi - stepSize * (mi / denom)
    }
}

/// Bias-corrected scalars for step t (computed in Double, like PyTorch's Python floats).
@inline(__always)
fileprivate func adamScalars(lr: Float, beta1: Float, beta2: Float, step t: Int) -> (stepSize: Float, bc2Sqrt: Float) {
    let bc1 = 1 - powInt(Double(beta1), t)
    let bc2 = 1 - powInt(Double(beta2), t)
    return (Float(Double(lr) / bc1), Float(bc2.squareRoot()))
}

@inline(__always)
fileprivate func powInt(_ x: Double, _ n: Int) -> Double {
    var r = 1.0, b = x, e = n
    while e > 0 {
        if e & 1 == 1 { r *= b }
        b *= b
        e >>= 1
    }
    return r
}

/// Adam with PyTorch's `torch.optim.Adam` semantics (amsgrad off, maximize off).
///
/// With t the step number after increment:
///
///     g = g + wd * w                      (optional L2 decay, coupled: it passes through the moments)
///     m = b1 * m + (1 - b1) * g
///     v = b2 * v + (1 - b2) * g^2
///     w = w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
///
/// Parameters outside `decayScope` get wd = 0. `AdamW` is the same update with the decay decoupled.
public class Adam: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float
    public let weightDecay: Float
    public var stepCount: Int = 0
    /// AdamW: the decay shrinks the weights before the update instead of entering the gradient.
    private let decoupled: Bool
    private let wd: [Float]
    private let slab: StateSlab

    init(_ parameters: [Parameter], learningRate: Float, betas: (Float, Float), eps: Float, weightDecay: Float,
         decayScope: WeightDecayScope, decoupled: Bool) {
        checkShapes(parameters)
        self.parameters = parameters
        self.learningRate = learningRate
        (beta1, beta2) = betas
        self.eps = eps
        self.weightDecay = weightDecay
        self.decoupled = decoupled
        self.wd = decayRates(parameters, weightDecay, decayScope)
        self.slab = StateSlab(parameters: parameters, slots: 2)
    }

    public convenience init(_ parameters: [Parameter], learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                            eps: Float = 1e-8, weightDecay: Float = 0, decayScope: WeightDecayScope = .flagged) {
        self.init(parameters, learningRate: learningRate, betas: betas, eps: eps, weightDecay: weightDecay,
                  decayScope: decayScope, decoupled: false)
    }

    deinit { slab.free() }

    public var stateBuffer: UnsafeMutableBufferPointer<Float> { slab.buffer }
    public func resetState() { slab.clear(); stepCount = 0 }

    public func step() {
        stepCount += 1
        let (stepSize, bc2Sqrt) = adamScalars(lr: learningRate, beta1: beta1, beta2: beta2, step: stepCount)
        for k in 0..<parameters.count {
            let p = parameters[k]
            let n = p.value.count
            let m = slab.base + 2 * slab.offsets[k]
            // AdamW as PyTorch: param.mul_(1 - lr * weight_decay), the factor computed in Python floats.
            let shrink = decoupled ? Float(1 - Double(learningRate) * Double(wd[k])) : 1
            adamUpdate(p.value.data, p.grad.data, m, m + n, n, stepSize: stepSize, bc2Sqrt: bc2Sqrt,
                       beta1: beta1, beta2: beta2, eps: eps, l2: decoupled ? 0 : wd[k], shrink: shrink)
        }
    }
}

/// AdamW with PyTorch's `torch.optim.AdamW` semantics (amsgrad off): decoupled weight decay, then Adam.
///
///     w = w * (1 - lr * wd)               (decoupled; 0 for parameters outside `decayScope`)
///     m = b1 * m + (1 - b1) * g
///     v = b2 * v + (1 - b2) * g^2
///     w = w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
///
/// The default scope `.flagged` is the two-group recipe (lr 1e-3, wd 0.01 on kernels only) of SRe2L/CDA/LPLD
/// and RethinkDC students.
public final class AdamW: Adam {
    public init(_ parameters: [Parameter], learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                eps: Float = 1e-8, weightDecay: Float = 0.01, decayScope: WeightDecayScope = .flagged) {
        super.init(parameters, learningRate: learningRate, betas: betas, eps: eps, weightDecay: weightDecay,
                   decayScope: decayScope, decoupled: true)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Adam on a plain tensor (recover's synthetic images)

/// Adam on one plain tensor, as recover optimises its batch of synthetic images (`torch.optim.Adam([x],
/// lr, betas=(0.5, 0.9), eps=1e-8)`, no weight decay). Same update as `Adam`.
///
/// Cheap to make fresh per batch (two zero-filled buffers); `reset(count:)` reuses the buffers instead.
public final class ImageAdam {
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float
    public private(set) var stepCount: Int = 0
    /// Number of elements the state covers.
    public private(set) var count: Int
    private var capacity: Int
    private var m: UnsafeMutablePointer<Float>

    public init(count: Int, learningRate: Float, betas: (Float, Float) = (0.5, 0.9), eps: Float = 1e-8) {
        self.count = count
        self.capacity = max(count, 1)
        self.learningRate = learningRate
        (beta1, beta2) = betas
        self.eps = eps
        self.m = .allocate(capacity: 2 * capacity)
        m.initialize(repeating: 0, count: 2 * capacity)
    }

    deinit { m.deallocate() }

    /// Starts over for a new tensor of `count` elements: zero moments, step 0 (allocates only when growing).
    public func reset(count: Int) {
        if count > capacity {
            m.deallocate()
            capacity = count
            m = .allocate(capacity: 2 * capacity)
        }
        self.count = count
        m.update(repeating: 0, count: 2 * capacity)
        stepCount = 0
    }

    /// The first and second moments (2 * `count` floats: m then v), for checkpoints.
    public var stateBuffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: m, count: 2 * count)
    }

    /// One Adam step on `x` from `grad` (both with `count` elements).
    public func step(_ x: Tensor, grad: Tensor) {
        precondition(x.count == count && grad.count == count,
                     "ImageAdam over \(count) elements, got x \(x.count) and grad \(grad.count)")
        stepCount += 1
        let (stepSize, bc2Sqrt) = adamScalars(lr: learningRate, beta1: beta1, beta2: beta2, step: stepCount)
        adamUpdate(x.data, grad.data, m, m + count, count, stepSize: stepSize, bc2Sqrt: bc2Sqrt,
                   beta1: beta1, beta2: beta2, eps: eps, l2: 0, shrink: 1)
    }
}
