import LDKernels

/// GELU, the exact erf form (PyTorch's `nn.GELU()` default): y = x·Φ(x), element-wise on a tensor of any
/// shape. Vectorised (`TransformerMath.gelu`) and split among the workers; backward computes
/// dx = dy·(Φ(x) + x·φ(x)) in place in dy from the kept input.
public final class GELU: Layer {
    public var parameters: [Parameter] { [] }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }
    /// y, x's shape.
    public let output = Tensor(shape: [0])
    private var input: Tensor?

    public init() {}

    public func trace(_ x: ImageShape) -> LayerTrace { LayerTrace(x, "gelu") }

    public func forward(_ x: Tensor) -> Tensor {
        input = x
        output.reshapeLike(x)
        let xp = x.data, yp = output.data, n = x.count
        Engine.parallelRange((n + 4095) / 4096) { b0, b1 in
            let i0 = b0 * 4096, i1 = min(n, b1 * 4096)
            TransformerMath.map(xp + i0, yp + i0, i1 - i0, TransformerMath.gelu)
        }
        return output
    }

    /// dx in place in dy; returns dy.
    public func backward(_ dy: Tensor) -> Tensor? {
        guard let x = input else { preconditionFailure("GELU.backward before forward") }
        guard flags.wantsInputGrad else { return nil }
        precondition(dy.count == x.count, "GELU.backward: dy \(dy.shape), x \(x.shape)")
        let xp = x.data, g = dy.data, n = x.count
        Engine.parallelRange((n + 4095) / 4096) { b0, b1 in
            var i = b0 * 4096
            let e = min(n, b1 * 4096)
            while i + 16 <= e {
                store16(load16(g + i) * TransformerMath.geluDerivative(load16(xp + i)), g + i)
                i += 16
            }
            if i < e {
                let v = TransformerMath.loadPartial(g + i, e - i, fill: 0)
                    * TransformerMath.geluDerivative(TransformerMath.loadPartial(xp + i, e - i, fill: 0))
                TransformerMath.storePartial(v, g + i, e - i)
            }
        }
        return dy
    }
}
