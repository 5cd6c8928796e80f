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
    /// Where backward takes its input-gradient buffers inside a model (see `GradientPool`); layers that
    /// make no new gradient buffer keep the default (nil, ignored). `Model` sets it on every layer.
    var gradientPool: GradientPool? { get set }
    /// One image's shape through the layer, for `-v` summaries and the benches' FLOP counts: given the
    /// input (C,H,W), the output shape, a short label and the multiply-accumulates of the forward pass.
    func trace(_ input: ImageShape) -> LayerTrace
    /// Floats of activations the layer holds after a forward pass (its outputs and what backward reads),
    /// for the benches' memory figures; 0 by default.
    var activationFloats: Int { get }
}

/// One image's activation shape: channels (or features, with h = w = 1), height, width.
public struct ImageShape: Equatable, Sendable {
    public var c: Int, h: Int, w: Int
    public init(c: Int, h: Int, w: Int) { self.c = c; self.h = h; self.w = w }
}

/// What `Layer.trace` reports.
public struct LayerTrace {
    public var output: ImageShape
    public var label: String
    public var macs: Int
    public init(_ output: ImageShape, _ label: String, macs: Int = 0) { self.output = output; self.label = label; self.macs = macs }
}

extension Layer {
    public var gradientPool: GradientPool? { get { nil } set {} }
    /// Default: shape unchanged, the type's name, no multiply-accumulates.
    public func trace(_ input: ImageShape) -> LayerTrace { LayerTrace(input, "\(type(of: self))".lowercased()) }
    public var activationFloats: Int { 0 }
}

/// The mutable switches every layer has; layers embed one to satisfy `Layer`'s flags.
public struct LayerFlags {
    public var training = true
    public var wantsParamGrads = true
    public var wantsInputGrad = true
    /// Train mode, both gradients wanted.
    public init() {}
}
