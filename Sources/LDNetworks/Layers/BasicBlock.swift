import LDKernels
import LDRecords
import LDData
/// ResNet basic block: y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), shortcut = x or
/// bn(conv1x1(x)) when the stride or the width changes. x (C,N,H,W) → y (K,N,Ho,Wo).
public final class BasicBlock: Layer {
    /// Main branch: conv3×3/stride → BN+ReLU → conv3×3/1 → BN.
    public let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d
    /// Shortcut projection (conv1×1/stride → BN) when the stride or width changes; nil for identity.
    public let downsample: (conv: Conv2d, bn: BatchNorm2d)?
    public var parameters: [Parameter] {
        var p = conv1.parameters + bn1.parameters + conv2.parameters + bn2.parameters
        if let d = downsample { p += d.conv.parameters + d.bn.parameters }
        return p
    }
    /// BatchNorm layers in registration order: bn1, bn2, downsample bn.
    public var batchNorms: [BatchNorm2d] { [bn1, bn2] + (downsample.map { [$0.bn] } ?? []) }
    private var flags = LayerFlags()
    // NOTE: the setters touch each sub-layer by name (no temporary array): they run on every backward.
    public var training: Bool {
        get { flags.training }
        set {
            flags.training = newValue
            conv1.training = newValue; bn1.training = newValue; conv2.training = newValue; bn2.training = newValue
            downsample?.conv.training = newValue; downsample?.bn.training = newValue
        }
    }
    public var wantsParamGrads: Bool {
        get { flags.wantsParamGrads }
        set {
            flags.wantsParamGrads = newValue
            conv1.wantsParamGrads = newValue; bn1.wantsParamGrads = newValue
            conv2.wantsParamGrads = newValue; bn2.wantsParamGrads = newValue
            downsample?.conv.wantsParamGrads = newValue; downsample?.bn.wantsParamGrads = newValue
        }
    }
    public var wantsInputGrad: Bool {
        get { flags.wantsInputGrad }
        set {
            flags.wantsInputGrad = newValue
            conv1.wantsInputGrad = newValue
            downsample?.conv.wantsInputGrad = newValue
        }
    }
    /// Where backward takes its gradient buffers inside a model (see `GradientPool`), its convolutions
    /// included; nil: the block's and the convolutions' own.
    public var gradientPool: GradientPool? {
        didSet { conv1.gradientPool = gradientPool; conv2.gradientPool = gradientPool; downsample?.conv.gradientPool = gradientPool }
    }
    /// y (K,N,Ho,Wo); dsum is dL/d(pre-activation sum) (K,N,Ho,Wo).
    public let output = Tensor(shape: [0])
    private let dsum = Tensor(shape: [0])
    private var input: Tensor?

    /// A block `name` (e.g. `layer2.0`) from C to K channels; its convolutions share `workspace`.
    public init(_ inChannels: Int, _ outChannels: Int, stride: Int, name: String, workspace: Workspace) {
        conv1 = Conv2d(inChannels, outChannels, kernel: 3, stride: stride, padding: 1, bias: false,
                       name: name + ".conv1", workspace: workspace)
        bn1 = BatchNorm2d(outChannels, relu: true, name: name + ".bn1")
        conv2 = Conv2d(outChannels, outChannels, kernel: 3, stride: 1, padding: 1, bias: false,
                       name: name + ".conv2", workspace: workspace)
        bn2 = BatchNorm2d(outChannels, name: name + ".bn2")
        if stride != 1 || inChannels != outChannels {
            downsample = (Conv2d(inChannels, outChannels, kernel: 1, stride: stride, bias: false,
                                 name: name + ".downsample.0", workspace: workspace),
                          BatchNorm2d(outChannels, name: name + ".downsample.1"))
        } else {
            downsample = nil
        }
    }

    /// Kaiming-normal (fan-out) weights for conv1, conv2 and the downsample conv, in that order.
    public func initialize<G: RandomNumberGenerator>(_ rng: inout G) {
        conv1.initialize(&rng); conv2.initialize(&rng); downsample?.conv.initialize(&rng)
    }

    public func forward(_ x: Tensor) -> Tensor {
        input = x
        let b = bn2.forward(conv2.forward(bn1.forward(conv1.forward(x))))
        let s = downsample.map { $0.bn.forward($0.conv.forward(x)) } ?? x
        return addReLU(b, s)
    }

    /// Eval-mode forward for inference (`Model.predict`): each BatchNorm, and the final addition and ReLU, are
    /// applied by the convolution before it where it can (`Conv2d.forward(_:then:)`). The same values as
    /// `forward`; the result may be conv2's output rather than the block's. No backward may follow.
    public func predict(_ x: Tensor) -> Tensor {
        input = nil
        let s = downsample.map { d in d.conv.forward(x, then: d.bn) ?? d.bn.forward(d.conv.forward(x)) } ?? x
        let a = conv1.forward(x, then: bn1) ?? bn1.forward(conv1.forward(x))
        if let y = conv2.forward(a, then: bn2, residual: s, relu: true) { return y }
        return addReLU(bn2.forward(conv2.forward(a)), s)
    }

    /// output = relu(b + s).
    private func addReLU(_ b: Tensor, _ s: Tensor) -> Tensor {
        precondition(b.count == s.count, "BasicBlock: branch \(b.shape) vs shortcut \(s.shape)")
        output.reshapeLike(b)
        let bp = UnsafePointer(b.data), sp = UnsafePointer(s.data), yp = output.data
        Engine.parallelRange(b.count, grain: 1 << 15) { lo, hi in
            var i = lo
            while i + 16 <= hi {
                let v = load16(bp + i) + load16(sp + i)
                store16(v.replacing(with: 0, where: v .< 0), yp + i)
                i += 16
            }
            while i < hi { let v = bp[i] + sp[i]; yp[i] = v > 0 ? v : 0; i += 1 }
        }
        return output
    }

    /// dsum = dy where y > 0; main branch from dsum (its BatchNorms work in place in dsum), shortcut from
    /// dy masked in place (downsample) or from dy and the mask again (identity). Overwrites dy.
    public func backward(_ dy: Tensor) -> Tensor? {
        guard let x = input else { preconditionFailure("BasicBlock.backward before forward") }
        precondition(dy.count == output.count, "BasicBlock.backward: dy \(dy.shape), y \(output.shape)")
        let pool = gradientPool
        let ds = pool?.acquire(output.count) ?? dsum
        ds.reshapeLike(output)
        let yp = UnsafePointer(output.data), gp = dy.data, dp = ds.data
        let inPlace = downsample != nil
        Engine.parallelRange(dy.count, grain: 1 << 15) { lo, hi in
            var i = lo
            while i + 16 <= hi {
                let g = load16(gp + i).replacing(with: 0, where: load16(yp + i) .<= 0)
                store16(g, dp + i)
                if inPlace { store16(g, gp + i) }
                i += 16
            }
            while i < hi {
                let g = yp[i] > 0 ? gp[i] : 0
                dp[i] = g
                if inPlace { gp[i] = g }
                i += 1
            }
        }
        var shortcut: Tensor? = nil
        if let d = downsample { shortcut = d.conv.backward(d.bn.backward(dy)!) }
        let d2 = conv2.backward(bn2.backward(ds)!)!
        pool?.release(ds)
        let d1 = conv1.backward(bn1.backward(d2)!)
        pool?.release(d2)
        guard flags.wantsInputGrad, let dx = d1 else { pool?.release(shortcut); return nil }
        precondition(dx.count == x.count, "BasicBlock.backward: shapes")
        let xp = dx.data
        if let s = shortcut {
            // The shortcut's gradient is added into conv1's input-gradient buffer (read only by this block).
            let sp = UnsafePointer(s.data)
            Engine.parallelRange(dx.count, grain: 1 << 15) { lo, hi in
                var i = lo
                while i + 16 <= hi { store16(load16(xp + i) + load16(sp + i), xp + i); i += 16 }
                while i < hi { xp[i] += sp[i]; i += 1 }
            }
            pool?.release(s)
        } else {
            let g = UnsafePointer(gp)
            Engine.parallelRange(dx.count, grain: 1 << 15) { lo, hi in
                var i = lo
                while i + 16 <= hi {
                    store16(load16(xp + i) + load16(g + i).replacing(with: 0, where: load16(yp + i) .<= 0), xp + i)
                    i += 16
                }
                while i < hi { if yp[i] > 0 { xp[i] += g[i] }; i += 1 }
            }
        }
        return dx
    }
}
