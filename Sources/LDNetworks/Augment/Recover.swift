import LDKernels
import LDRecords
import LDData
// Parameter draws specific to recover's batch augmentation (sre2l_cda.md 2.3-2.4, 5): the jitter shifts of
// the circular roll and CDA's curriculum on the RandomResizedCrop scale. One draw per iteration serves the
// whole batch: RandomResizedCrop box, then flip, then roll (bilinearCropResize with flip, then roll).

import Foundation

/// The jitter of recover: `off1, off2 = randint(lower, upper)` twice (both ends inclusive, as Python's
/// `random.randint`), applied as `roll(x, dy: off1, dx: off2)`. SRe2L uses (-jitter, jitter); CDA (0, jitter).
public struct Jitter: Sendable, Equatable {
    public var lower: Int
    public var upper: Int

    public init(lower: Int, upper: Int) {
        precondition(lower <= upper, "Jitter: empty range \(lower)...\(upper)")
        self.lower = lower
        self.upper = upper
    }

    /// Draws (dy, dx) in that order.
    public func sample(using rng: inout some RandomNumberGenerator) -> (dy: Int, dx: Int) {
        let dy = rng.int(in: lower...upper)
        let dx = rng.int(in: lower...upper)
        return (dy, dx)
    }
}

/// CDA's easy-to-hard curriculum on the lower bound of the crop scale.
public enum CropCurriculum: String, Sendable, CaseIterable {
    case step, linear, cosine

    /// The scale lower bound at iteration t of T (sre2l_cda.md 5), with `minimum` = 0.08:
    ///
    ///     t < milestone*T:  step: 1;  linear: min + (1-min)*(1 - t/(milestone*T));
    ///                       cosine: min + (1-min)*(1 + cos(pi*t/(milestone*T)))/2
    ///     otherwise:        min
    ///
    /// Milestone 0 disables the curriculum (SRe2L). The upper bound stays 1.
    public func scaleMin(iteration t: Int, total: Int, milestone: Double, minimum: Float = 0.08) -> Float {
        let end = milestone * Double(total)
        let min = Double(minimum)
        guard Double(t) < end else { return minimum }
        switch self {
        case .step: return 1
        case .linear: return Float(min + (1 - min) * (1 - Double(t) / end))
        case .cosine: return Float(min + (1 - min) * (1 + cos(Double.pi * Double(t) / end)) / 2)
        }
    }
}
