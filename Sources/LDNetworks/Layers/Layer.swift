import LDKernels
import LDRecords
import LDData
/// Layers of the engine.
///
/// Legend for shapes: N batch, C input channels, K output channels (or classes for logits), H, W input
/// height and width, Ho, Wo output height and width, F features.
///
/// Layout: inside a model, image activations are **channel-major (C, N, H, W)**. A batch-folded im2col GEMM
/// then writes its output directly in that layout, BatchNorm reads each channel as one contiguous run, and no
/// NCHW <-> folded transposes are needed between convolutions. `Model` converts its NCHW input on entry and
/// `Flatten` / `GlobalAvgPool2d` produce row-major (N, F) features for `Linear`.
///
/// Every layer owns its output tensor, sized on the first call for a batch shape and reused
/// (`Tensor.ensureShape`), so a steady-state step allocates nothing; it stays valid until the layer's next
/// forward. Input gradients are the layer's own too, except inside a model, where the layers that make new
/// ones take them from the model's `GradientPool` and the caller gives dy back once backward has read it.
public protocol Layer: AnyObject {
    /// Trainable parameters in a stable order, with names relative to the layer.
    var parameters: [Parameter] { get }
    /// Train mode (batch statistics, running-stat updates) or eval mode.
    var training: Bool { get set }
    /// When false, backward skips the parameter gradients (recover: frozen weights).
    var wantsParamGrads: Bool { get set }
    /// When false, backward does not compute the input gradient and returns nil (a model's first layer).
    var wantsInputGrad: Bool { get set }
    /// y = layer(x). The result is owned by the layer.
    func forward(_ x: Tensor) -> Tensor
    /// Given dL/dy for the last forward, accumulates (`+=`) parameter gradients and returns dL/dx, or nil
    /// when `wantsInputGrad` is false. dx is owned by the layer (or its pool), except that a layer may compute it in place
    /// in `dy` (BatchNorm2d does), so callers must treat dy's contents as consumed.
    func backward(_ dy: Tensor) -> Tensor?
}

/// The mutable switches every layer has; layers embed one to satisfy `Layer`'s flags.
public struct LayerFlags {
    public var training = true
    public var wantsParamGrads = true
    public var wantsInputGrad = true
    /// Train mode, both gradients wanted.
    public init() {}
}
