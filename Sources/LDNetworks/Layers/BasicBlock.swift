import LDKernels
import LDRecords
import LDData
/// A ResNet block: y = relu(main(x) + shortcut(x)), main = the convolutions each followed by BN (+ReLU but
/// the last): basic (ResNet-18: relu(bn1(conv1)) -> bn2(conv2)) or bottleneck (ResNet-50/101: 1x1, 3x3,
/// 1x1 to 4x), shortcut = x or bn(conv1x1(x)) when the stride or the width changes. x (C,N,H,W) → y (K,N,Ho,Wo).
public final class ResidualBlock: Layer {
    /// Main branch: convolution -> BN (+ReLU) pairs; the last BN has no ReLU (the sum's ReLU follows).
    /// Basic block: conv3x3/stride, conv3x3/1. Bottleneck (torchvision's v1.5): conv1x1, conv3x3/stride,
    /// conv1x1 to 4x the width.
    public let convs: [Conv2d], bns: [BatchNorm2d]
    public var conv1: Conv2d { convs[0] }
    public var bn1: BatchNorm2d { bns[0] }
    /// Shortcut projection (conv1×1/stride → BN) when the stride or width changes; nil for identity.
    public let downsample: (conv: Conv2d, bn: BatchNorm2d)?
    public var parameters: [Parameter] {
        var p: [Parameter] = []
        for (c, b) in zip(convs, bns) { p += c.parameters + b.parameters }
        if let d = downsample { p += d.conv.parameters + d.bn.parameters }
        return p
    }
    /// BatchNorm layers in registration order: bn1, bn2 (, bn3), downsample bn.
    public var batchNorms: [BatchNorm2d] { bns + (downsample.map { [$0.bn] } ?? []) }
    private var flags = LayerFlags()
    public var training: Bool {
        get { flags.training }
        set {
            flags.training = newValue
            for c in convs { c.training = newValue }
            for b in bns { b.training = newValue }
            downsample?.conv.training = newValue; downsample?.bn.training = newValue
        }
    }
    public var wantsParamGrads: Bool {
        get { flags.wantsParamGrads }
        set {
            flags.wantsParamGrads = newValue
            for c in convs { c.wantsParamGrads = newValue }
            for b in bns { b.wantsParamGrads = newValue }
            downsample?.conv.wantsParamGrads = newValue; downsample?.bn.wantsParamGrads = newValue
        }
    }
    public var wantsInputGrad: Bool {
        get { flags.wantsInputGrad }
        set {
            flags.wantsInputGrad = newValue
            convs[0].wantsInputGrad = newValue
            downsample?.conv.wantsInputGrad = newValue
        }
    }
    /// Where backward takes its gradient buffers inside a model (see `GradientPool`), its convolutions
    /// included; nil: the block's and the convolutions' own.
    public var gradientPool: GradientPool? {
        didSet { for c in convs { c.gradientPool = gradientPool }; downsample?.conv.gradientPool = gradientPool }
    }
    /// y (K,N,Ho,Wo); dsum is dL/d(pre-activation sum) (K,N,Ho,Wo).
    public let output = Tensor(shape: [0])
    private let dsum = Tensor(shape: [0])
    private var input: Tensor?

    /// A block of `convs` (each followed by its BN, ReLU after all but the last) and a projection shortcut
    /// from `inChannels` when `stride` or the width changes.
    init(convs: [Conv2d], inChannels: Int, stride: Int, name: String, workspace: Workspace) {
        self.convs = convs
        bns = convs.enumerated().map { i, c in
            BatchNorm2d(c.outChannels, relu: i < convs.count - 1, name: name + ".bn\(i + 1)")
        }
        let out = convs.last!.outChannels
        if stride != 1 || inChannels != out {
            downsample = (Conv2d(inChannels, out, kernel: 1, stride: stride, bias: false,
                                 name: name + ".downsample.0", workspace: workspace),
                          BatchNorm2d(out, name: name + ".downsample.1"))
        } else {
            downsample = nil
        }
    }

    /// A basic block `name` (e.g. `layer2.0`) from C to K channels; its convolutions share `workspace`.
    public convenience init(_ inChannels: Int, _ outChannels: Int, stride: Int, name: String, workspace: Workspace) {
        self.init(convs: [Conv2d(inChannels, outChannels, kernel: 3, stride: stride, padding: 1, bias: false,
                                 name: name + ".conv1", workspace: workspace),
                          Conv2d(outChannels, outChannels, kernel: 3, stride: 1, padding: 1, bias: false,
                                 name: name + ".conv2", workspace: workspace)],
                  inChannels: inChannels, stride: stride, name: name, workspace: workspace)
    }

    /// A bottleneck block (torchvision's ResNet-50/101, stride on the 3x3): C -> `width` (1x1) -> `width`
    /// (3x3/stride) -> 4 `width` (1x1).
    public static func bottleneck(_ inChannels: Int, width: Int, stride: Int, name: String, workspace: Workspace) -> ResidualBlock {
        ResidualBlock(convs: [Conv2d(inChannels, width, kernel: 1, stride: 1, bias: false, name: name + ".conv1", workspace: workspace),
                              Conv2d(width, width, kernel: 3, stride: stride, padding: 1, bias: false, name: name + ".conv2", workspace: workspace),
                              Conv2d(width, 4 * width, kernel: 1, stride: 1, bias: false, name: name + ".conv3", workspace: workspace)],
                      inChannels: inChannels, stride: stride, name: name, workspace: workspace)
    }

    /// Kaiming-normal (fan-out) weights for conv1, conv2 (, conv3) and the downsample conv, in that order.
    public func initialize<G: RandomNumberGenerator>(_ rng: inout G) {
        for c in convs { c.initialize(&rng) }
        downsample?.conv.initialize(&rng)
    }

    public var activationFloats: Int {
        output.count + zip(convs, bns).reduce(0) { $0 + $1.0.output.count + $1.1.output.count }
            + (downsample.map { $0.conv.output.count + $0.bn.output.count } ?? 0)
    }
    public func trace(_ x: ImageShape) -> LayerTrace {
        var macs = downsample.map { $0.conv.macs(n: 1, h: x.h, w: x.w) } ?? 0, s = x
        for c in convs { let t = c.trace(s); macs += t.macs; s = t.output }
        return LayerTrace(s, "block \(conv1.weight.name.dropLast(13))", macs: macs)
    }

    public func forward(_ x: Tensor) -> Tensor {
        input = x
        var b = x
        for (c, n) in zip(convs, bns) { b = n.forward(c.forward(b)) }
        let s = downsample.map { $0.bn.forward($0.conv.forward(x)) } ?? x
        return addReLU(b, s)
    }

    /// Eval-mode forward for inference (`Model.predict`): each BatchNorm, and the final addition and ReLU, are
    /// applied by the convolution before it where it can (`Conv2d.forward(_:then:)`). The same values as
    /// `forward`; the result may be conv2's output rather than the block's. No backward may follow.
    public func predict(_ x: Tensor) -> Tensor {
        input = nil
        let s = downsample.map { d in d.conv.forward(x, then: d.bn) ?? d.bn.forward(d.conv.forward(x)) } ?? x
        var a = x
        for (c, n) in zip(convs, bns).dropLast() { a = c.forward(a, then: n) ?? n.forward(c.forward(a)) }
        let c = convs.last!, n = bns.last!
        if let y = c.forward(a, then: n, residual: s, relu: true) { return y }
        return addReLU(n.forward(c.forward(a)), s)
    }

    /// output = relu(b + s).
    private func addReLU(_ b: Tensor, _ s: Tensor) -> Tensor {
        precondition(b.count == s.count, "ResidualBlock: branch \(b.shape) vs shortcut \(s.shape)")
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
        guard let x = input else { preconditionFailure("ResidualBlock.backward before forward") }
        precondition(dy.count == output.count, "ResidualBlock.backward: dy \(dy.shape), y \(output.shape)")
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
        // Down the main branch; each step's buffer is released once the next one has read it.
        var g: Tensor = ds
        for k in stride(from: convs.count - 1, through: 1, by: -1) {
            let next = convs[k].backward(bns[k].backward(g)!)!
            pool?.release(g)
            g = next
        }
        let d1 = convs[0].backward(bns[0].backward(g)!)
        pool?.release(g)
        guard flags.wantsInputGrad, let dx = d1 else { pool?.release(shortcut); return nil }
        precondition(dx.count == x.count, "ResidualBlock.backward: shapes")
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

/// ResNet-18's block (the name the rest of the code and the tests know).
public typealias BasicBlock = ResidualBlock
