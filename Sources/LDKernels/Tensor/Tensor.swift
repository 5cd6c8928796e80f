/// A dense float32 tensor in row-major (NCHW for images) layout, owning one unsafe buffer.
///
/// A reference type on purpose: layers keep their outputs and caches as `Tensor`s that are allocated once
/// per batch shape and reused every step. Hot loops read `data` into a local pointer first
/// (`let x = t.data`), so they pay no exclusivity, bounds or copy-on-write checks (anchors.md C.3).
public final class Tensor {
    /// Dimensions, outermost first: (N, C, H, W) for images, (N, K) for logits.
    public private(set) var shape: [Int]
    /// Number of elements, the product of `shape`.
    public private(set) var count: Int
    /// The elements; `capacity` floats are allocated, `count` are in use.
    public private(set) var data: UnsafeMutablePointer<Float>
    public private(set) var capacity: Int

    /// A zero-filled tensor of the given shape.
    public init(shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.capacity = max(count, 1)
        self.data = .allocate(capacity: capacity)
        data.initialize(repeating: 0, count: capacity)
    }

    /// A tensor holding a copy of `values`, which must have `shape`'s element count.
    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    deinit { data.deallocate() }

    /// Changes the shape, reusing the buffer when it is large enough (so a smaller last batch allocates
    /// nothing). Contents are unspecified afterwards unless the count is unchanged.
    public func reshape(_ newShape: [Int]) {
        let n = newShape.reduce(1, *)
        if n > capacity {
            data.deallocate()
            capacity = n
            data = .allocate(capacity: n)
            data.initialize(repeating: 0, count: n)
        }
        shape = newShape
        count = n
    }

    /// Sets every element to `value`.
    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    /// Copies the elements out (for tests and small results; never in hot loops).
    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// A buffer view of the elements in use.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }
}

extension Tensor {
    /// Makes the shape (d0, d1) without allocating when it already is (steady-state layers call this every step).
    @inline(__always)
    public func ensureShape(_ d0: Int, _ d1: Int) {
        if shape.count == 2 && shape[0] == d0 && shape[1] == d1 { return }
        reshape([d0, d1])
    }

    /// Makes the shape (d0, d1, d2, d3) without allocating when it already is.
    @inline(__always)
    public func ensureShape(_ d0: Int, _ d1: Int, _ d2: Int, _ d3: Int) {
        if shape.count == 4 && shape[0] == d0 && shape[1] == d1 && shape[2] == d2 && shape[3] == d3 { return }
        reshape([d0, d1, d2, d3])
    }

    /// Makes the shape (d0) without allocating when it already is.
    @inline(__always)
    public func ensureShape(_ d0: Int) {
        if shape.count == 1 && shape[0] == d0 { return }
        reshape([d0])
    }

    /// Takes `other`'s shape without allocating when it already matches.
    @inline(__always)
    public func reshapeLike(_ other: Tensor) {
        if shape != other.shape { reshape(other.shape) }
    }

    /// Multiplies every element by `factor` in place.
    public func scale(by factor: Float) {
        let p = data
        for i in 0..<count { p[i] *= factor }
    }

    /// Copies the elements of `other` (same element count) into this tensor.
    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }
}
