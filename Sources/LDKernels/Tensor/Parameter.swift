/// A trainable tensor with its gradient, as optimisers see it.
public final class Parameter {
    /// A readable path such as `features.0.conv.weight`, used in model files and error messages.
    public let name: String
    public let value: Tensor
    /// Same shape as `value`; backward passes accumulate (`+=`) into it, `zeroGrad` clears it.
    public let grad: Tensor
    /// Whether weight decay applies (AdamW parameter groups exclude BatchNorm parameters and biases).
    public var decays: Bool

    public init(name: String, shape: [Int], decays: Bool = true) {
        self.name = name
        self.value = Tensor(shape: shape)
        self.grad = Tensor(shape: shape)
        self.decays = decays
    }

    /// Zeroes the gradient, split over the threads when it is large (a 512-channel 3x3 kernel: 2.4M floats).
    public func zeroGrad() {
        let g = grad.data
        Engine.parallelRange(grad.count, grain: 1 << 16) { lo, hi in (g + lo).update(repeating: 0, count: hi - lo) }
    }
}
