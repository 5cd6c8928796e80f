import Foundation
import LDKernels
import LDNetworks

/// One GEMM of a workload: C (m, n) = op(A) (m, k) · op(B) (k, n), `count` times per step.
struct GemmShape: Hashable {
    let transA: Bool, transB: Bool, m: Int, n: Int, k: Int
}

/// Every `Conv2d` and `Linear` reachable from `root` (stored properties, arrays, optionals), each once.
private func gemmLayers(_ root: Any) -> (convs: [Conv2d], linears: [Linear]) {
    var seen = Set<ObjectIdentifier>(), convs: [Conv2d] = [], linears: [Linear] = []
    func visit(_ value: Any, _ depth: Int) {
        guard depth < 64 else { return }
        if value is Tensor || value is Parameter { return }
        var mirror: Mirror? = Mirror(reflecting: value)
        if mirror?.displayStyle == .class {
            guard seen.insert(ObjectIdentifier(value as AnyObject)).inserted else { return }
            if let c = value as? Conv2d { convs.append(c); return }
            if let l = value as? Linear { linears.append(l); return }
        }
        while let m = mirror {
            for child in m.children { visit(child.value, depth + 1) }
            mirror = m.superclassMirror
        }
    }
    visit(root, 0)
    return (convs, linears)
}

/// The GEMMs one step of `kind` (train, relabel, recover) makes, as the engine would at whole-layer size:
/// a Winograd convolution's 36 products over all the batch's tiles, an im2col convolution's one product over
/// all its columns, backward's weight and input gradients where the step computes them. Read from the layers'
/// output shapes after one forward. Depthwise convolutions and attention's products are not GEMMs here and
/// are left out (this bound is for the models whose work is convolutions and linear layers).
func workloadGemms(_ model: Model, kind: String) -> [GemmShape: Int] {
    var gemms: [GemmShape: Int] = [:]
    func add(_ s: GemmShape, _ count: Int = 1) { gemms[s, default: 0] += count }
    let (convs, linears) = gemmLayers(model)
    for conv in convs where conv.output.shape.count == 4 {
        let k = conv.outChannels, c = conv.inChannels, o = conv.output.shape
        let n = o[1], ho = o[2], wo = o[3]
        let wantDx = kind == "recover" || (kind == "train" && conv.wantsInputGrad), wantDw = kind == "train"
        if conv.usesWinograd(height: ho, width: wo) {
            let tiles = n * ((ho + 3) / 4) * ((wo + 3) / 4)
            add(GemmShape(transA: false, transB: false, m: k, n: tiles, k: c), 36)
            if wantDx { add(GemmShape(transA: false, transB: false, m: c, n: tiles, k: k), 36) }
            if wantDw {
                if Conv2d.winogradWeightGradient {
                    add(GemmShape(transA: false, transB: true, m: k, n: c, k: tiles), 36)
                } else {
                    add(GemmShape(transA: false, transB: true, m: k, n: c * 9, k: n * ho * wo))
                }
            }
        } else {
            let ckk = c * conv.kernel * conv.kernel, p = n * ho * wo
            add(GemmShape(transA: false, transB: false, m: k, n: p, k: ckk))
            if wantDw { add(GemmShape(transA: false, transB: true, m: k, n: ckk, k: p)) }
            if wantDx { add(GemmShape(transA: true, transB: false, m: ckk, n: p, k: k)) }
        }
    }
    for l in linears where l.output.shape.count == 2 {
        let n = l.output.shape[0], f = l.inFeatures, k = l.outFeatures
        add(GemmShape(transA: false, transB: true, m: n, n: k, k: f))
        if kind == "train" { add(GemmShape(transA: true, transB: false, m: k, n: f, k: n)) }
        if kind == "recover" || (kind == "train" && l.wantsInputGrad) { add(GemmShape(transA: false, transB: false, m: n, n: f, k: k)) }
    }
    return gemms
}

/// Seconds one step's GEMMs take alone on the current thread count: each distinct shape timed by itself
/// (OpenBLAS's own threading over the whole shape, operands in memory), times how often the step makes it.
func gemmOnlySeconds(_ gemms: [GemmShape: Int], secs: Double) -> Double {
    var rng = BenchRNG(state: 7)
    var total = 0.0
    for (s, count) in gemms {
        let a = Tensor(shape: [s.m * s.k]), b = Tensor(shape: [s.k * s.n]), c = Tensor(shape: [s.m * s.n])
        rng.fillUniform(a, -1, 1); rng.fillUniform(b, -1, 1)
        let per = max(0.05, secs * Double(count) / Double(gemms.values.reduce(0, +)))
        let dt = timeit(secs: per, warm: 1) {
            sgemm(transA: s.transA, transB: s.transB, s.m, s.n, s.k, a.data, b.data, c.data)
        }
        total += dt * Double(count)
    }
    return total
}

/// `ld-bench floor [--secs S] [--threads 1,2] [--only NAME] [--suite small|seeds|all] [--model M ...]`: each
/// workload's images/s beside the images/s its GEMMs alone would allow (the same products at whole-layer size
/// on OpenBLAS, nothing else: no transforms, packing of our own, epilogues, im2col, pooling, memory passes),
/// at each thread count, and both speed-ups. An upper bound for any engine built on these GEMMs: the share
/// says how much of it the engine reaches, and the GEMM-only speed-up what the machine's cores give OpenBLAS.
func floorBench(_ args: [String]) throws {
    var secs = 3.0, only: String? = nil, suite = "small", counts = [1, 2]
    var model: String? = nil, stem = "small", batch = 64, size = 32
    var i = 0
    while i < args.count {
        switch args[i] {
        case "--secs": i += 1; secs = Double(args[i]) ?? secs
        case "--only": i += 1; only = args[i]
        case "--suite": i += 1; suite = args[i]
        case "--threads": i += 1; counts = args[i].split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
        case "--model": i += 1; model = args[i]
        case "--stem": i += 1; stem = args[i]
        case "--batch": i += 1; batch = Int(args[i]) ?? batch
        case "--size": i += 1; size = Int(args[i]) ?? size
        default: throw LDError("ld-bench floor: unknown argument '\(args[i])'")
        }
        i += 1
    }
    guard ["small", "seeds", "all"].contains(suite), !counts.isEmpty else {
        throw LDError("ld-bench floor: --suite small, seeds or all; --threads a list such as 1,2")
    }
    print("GEMM-only bound (OpenBLAS core \(Engine.blasCore)): the workload's convolution and linear GEMMs alone, whole-layer shapes")
    print("workload\tGFLOP/img (GEMMs)\t" + counts.map { "img/s \($0)t\tGEMM-only \($0)t\tshare" }.joined(separator: "\t")
          + (counts.count > 1 ? "\tspeed-up (GEMM-only)" : ""))
    var rng = BenchRNG(state: 42)
    let chosen = try adHocWorkloads(model, stem: stem, batch: batch, size: size)
        ?? ((suite == "seeds" ? [] : workloads) + (suite == "small" ? [] : try seedsWorkloads()))
    for w in chosen where only.map({ w.name.contains($0) }) ?? true {
        // the shapes, from a model whose first ConvNet block is a plain Conv2d (ConvBatchNorm makes the same product)
        let fused = ConvBatchNorm.enabled
        ConvBatchNorm.enabled = false
        let probe = try Model(w.config, rng: &rng)
        ConvBatchNorm.enabled = fused
        if w.kind == "recover" && probe.batchNorms.isEmpty { continue }
        try makeStep(w, probe, rng: &rng)()
        let gemms = workloadGemms(probe, kind: w.kind)
        var flop = 0.0
        for (s, count) in gemms { flop += 2 * Double(s.m) * Double(s.n) * Double(s.k) * Double(count) }
        var cells: [String] = [], rates: [Double] = [], bounds: [Double] = []
        for t in counts {
            Engine.threads = t
            let model = try Model(w.config, rng: &rng)
            let step = try makeStep(w, model, rng: &rng)
            let dt = try timeSteps(secs: secs) { try step() }.median
            let ips = Double(w.batch) / dt
            let bound = Double(w.batch) / gemmOnlySeconds(gemms, secs: secs)
            rates.append(ips); bounds.append(bound)
            cells.append(String(format: "%.1f\t%.1f\t%.0f%%", ips, bound, 100 * ips / bound))
        }
        let perImage: Double = flop / 1e9 / Double(w.batch)
        var line: String = w.name + "\t" + String(format: "%.2f", perImage) + "\t" + cells.joined(separator: "\t")
        var speedups: [String] = []
        for j in 1..<counts.count {
            speedups.append(String(format: "%dt %.2fx (%.2fx)", counts[j], rates[j] / rates[0], bounds[j] / bounds[0]))
        }
        if !speedups.isEmpty { line += "\t" + speedups.joined(separator: " ") }
        print(line)
        fflush(stdout)
    }
}
