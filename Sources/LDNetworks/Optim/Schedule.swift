import LDKernels
import LDRecords
import LDData
// Learning-rate schedules. A schedule maps a step index to a learning rate; the index is whatever the caller
// steps it by: the iteration (recover's cosine, per-step schedules) or the epoch (the student recipes, which
// step PyTorch's LambdaLR once per epoch, after the epoch, so epoch e runs at lr(e)).
//
// Usage: `opt.learningRate = schedule.lr(at: t)` before the step (or epoch) t, counting from 0.

import Foundation

/// A learning-rate schedule, evaluated by `lr(at:)` for step (or epoch) t = 0, 1, 2, ...
public indirect enum LRSchedule: Sendable, Equatable {
    /// lr(t) = base.
    case constant(Float)
    /// lr(t) = 0.5 * (1 + cos(pi * t / total)) * base for t < total, and 0 from t = total on.
    /// The first step runs at base and the last (t = total-1) at a small positive value: SRe2L's
    /// `lr_cosine_policy` with no warm-up (sre2l_cda.md 2.5), the per-epoch LambdaLR cosine of the student
    /// recipes, and PyTorch's CosineAnnealingLR(T_max = total, eta_min = 0).
    case cosine(base: Float, total: Int)
    /// lr(t) = base * (1 - t / total), clamped at 0 (RethinkDC's schedule without `--cos`).
    case linear(base: Float, total: Int)
    /// lr(t) = base * gamma^k, where k is the number of milestones m with t >= m (PyTorch's MultiStepLR:
    /// a milestone is the first step that runs at the lower rate).
    case stepDecay(base: Float, milestones: [Int], gamma: Float)
    /// Linear warm-up, then `then` restarted at 0: for t < steps,
    /// lr(t) = then.lr(at: 0) * (startFactor + (1 - startFactor) * t / steps) (PyTorch's LinearLR with
    /// end factor 1), and lr(t) = then.lr(at: t - steps) afterwards (SequentialLR with milestone `steps`).
    /// LPLD's Tiny-ImageNet student: `.warmup(steps: 5, startFactor: 0.01, then: .cosine(base: 0.2, total: 95))`.
    case warmup(steps: Int, startFactor: Float, then: LRSchedule)

    /// The learning rate for step (or epoch) `t`, counting from 0.
    public func lr(at t: Int) -> Float {
        switch self {
        case .constant(let base):
            return base
        case .cosine(let base, let total):
            if t >= total { return 0 }
            let s = 0.5 * (1 + cos(Double.pi * Double(max(t, 0)) / Double(total)))
            return Float(s * Double(base))
        case .linear(let base, let total):
            if t >= total { return 0 }
            return Float(Double(base) * (1 - Double(max(t, 0)) / Double(total)))
        case .stepDecay(let base, let milestones, let gamma):
            var lr = Double(base)
            for m in milestones where t >= m { lr *= Double(gamma) }
            return Float(lr)
        case .warmup(let steps, let startFactor, let then):
            if t >= steps { return then.lr(at: t - steps) }
            let f = Double(startFactor) + (1 - Double(startFactor)) * Double(max(t, 0)) / Double(steps)
            return Float(Double(then.lr(at: 0)) * f)
        }
    }

}
