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
