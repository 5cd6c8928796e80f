import LDKernels
import LDRecords
import LDData
/// Scratch memory shared by the convolutions of one model (im2col columns and their gradient), grown to
/// the largest layer's need on first use and then reused; darknet's `workspace` idea.
public final class Workspace {
    /// Floats currently allocated.
    public private(set) var capacity = 0
    private var storage: UnsafeMutablePointer<Float>?
    private var weightCapacity = 0
    private var weightStorage: UnsafeMutablePointer<Float>?

    public init() {}
    deinit { storage?.deallocate(); weightStorage?.deallocate() }

    /// A second buffer of at least `count` floats for transient re-arranged weights (rotated or Winograd-
    /// transformed) or a Winograd weight gradient, used alongside `buffer`. Contents unspecified; valid until
    /// the next call.
    func weightBuffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > weightCapacity || weightStorage == nil {
            weightStorage?.deallocate()
            weightCapacity = max(count, 1)
            weightStorage = .allocate(capacity: weightCapacity)
        }
        return weightStorage!
    }

    /// A buffer of at least `count` floats; contents are unspecified. Valid until the next call.
    func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity || storage == nil {
            storage?.deallocate()
            capacity = max(count, 1)
            storage = .allocate(capacity: capacity)
        }
        return storage!
    }
}

/// Input-gradient tensors shared by the layers of one model. Backward runs layer by layer and each layer's
/// dx is dead once the layer before it has read it, so a handful of buffers serve the whole network where
/// one per layer would cost about as much memory as the activations themselves (ResNet-18's training step
/// held 230 MB of them at batch 64).
///
/// A layer with `gradientPool` set takes its dx from `acquire()`; whoever consumes a gradient gives it back
/// with `release` (`Model.backward`, `BasicBlock.backward`). Tensors keep their largest size, so once the
/// first steps have grown them (the same sequence of sizes repeats every step) no call allocates.
public final class GradientPool {
    private var all: [Tensor] = []
    private var free: [Tensor] = []

    public init() {}

    /// A tensor not handed out since its last `release`, for `count` floats: the smallest free one that
    /// holds them (so a large tensor is not spent on a small gradient), else the largest free one, which
    /// grows. Shape and contents unspecified.
    public func acquire(_ count: Int) -> Tensor {
        var best = -1
        for (i, t) in free.enumerated() {
            guard best >= 0 else { best = i; continue }
            let b = free[best].capacity, c = t.capacity
            if b >= count ? (c >= count && c < b) : c > b { best = i }
        }
        if best >= 0 { return free.remove(at: best) }
        let t = Tensor(shape: [0])
        all.append(t)
        free.reserveCapacity(all.count)
        return t
    }

    /// Gives `t` back; a tensor the pool did not hand out (a layer's own, the loss gradient) is ignored.
    public func release(_ t: Tensor?) {
        guard let t, all.contains(where: { $0 === t }) else { return }
        precondition(!free.contains(where: { $0 === t }), "GradientPool: tensor released twice")
        free.append(t)
    }

    /// Tensors the pool has made (tests: the count stays small and stops growing after the first step).
    public var tensorCount: Int { all.count }
    /// Floats held by the pool's tensors.
    public var floatsHeld: Int { all.reduce(0) { $0 + $1.capacity } }
}
