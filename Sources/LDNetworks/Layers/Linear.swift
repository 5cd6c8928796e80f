import LDKernels
import LDRecords
import LDData
/// Fully connected layer on sgemm: x (N,F) → y (N,K) = x · Wᵀ + b. Weight (K,F), bias (K).
public final class Linear: Layer {
    /// F and K.
    public let inFeatures: Int, outFeatures: Int
    /// Weight (K,F) and bias (K).
    public let weight: Parameter, bias: Parameter
    public var parameters: [Parameter] { [weight, bias] }
    private var flags = LayerFlags()
    public var training: Bool { get { flags.training } set { flags.training = newValue } }
    public var wantsParamGrads: Bool { get { flags.wantsParamGrads } set { flags.wantsParamGrads = newValue } }
    public var wantsInputGrad: Bool { get { flags.wantsInputGrad } set { flags.wantsInputGrad = newValue } }
    /// y (N,K), dx (N,F)
    public let output = Tensor(shape: [0]), inputGrad = Tensor(shape: [0])
    private var input: Tensor?

    /// A linear map from F to K features; `name` prefixes the parameter names.
    public init(_ inFeatures: Int, _ outFeatures: Int, name: String = "") {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures
        let prefix = name.isEmpty ? "" : name + "."
        weight = Parameter(name: prefix + "weight", shape: [outFeatures, inFeatures])
        bias = Parameter(name: prefix + "bias", shape: [outFeatures], decays: false)
    }

    /// PyTorch's default: weight and bias uniform(±1/sqrt(F)), weight first.
    public func initialize<G: RandomNumberGenerator>(_ rng: inout G) {
        let r = 1 / Float(inFeatures).squareRoot()
        rng.fillUniform(weight.value, -r, r)
        rng.fillUniform(bias.value, -r, r)
    }

    public func trace(_ x: ImageShape) -> LayerTrace {
        LayerTrace(ImageShape(c: outFeatures, h: 1, w: 1), "linear \(weight.name.dropLast(7))", macs: inFeatures * outFeatures)
    }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 2 && x.shape[1] == inFeatures, "Linear: input \(x.shape), expected (N,\(inFeatures))")
        input = x
        let n = x.shape[0]
        output.ensureShape(n, outFeatures)
        let y = output.data, b = bias.value.data
        for i in 0..<n { (y + i * outFeatures).update(from: b, count: outFeatures) }
        sgemm(transB: true, n, outFeatures, inFeatures, x.data, weight.value.data, beta: 1, y)
        return output
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard let x = input else { preconditionFailure("Linear.backward before forward") }
        let n = x.shape[0]
        precondition(dy.count == n * outFeatures, "Linear.backward: dy \(dy.shape)")
        let g = dy.data
        if flags.wantsParamGrads {
            // dW (K,F) += dyᵀ (K,N) · x (N,F); db += Σ_n dy
            sgemm(transA: true, outFeatures, inFeatures, n, g, x.data, beta: 1, weight.grad.data)
            let db = bias.grad.data
            for i in 0..<n { for k in 0..<outFeatures { db[k] += g[i * outFeatures + k] } }
        }
        guard flags.wantsInputGrad else { return nil }
        inputGrad.ensureShape(n, inFeatures)
        sgemm(n, inFeatures, outFeatures, g, weight.value.data, beta: 0, inputGrad.data)
        return inputGrad
    }
}
