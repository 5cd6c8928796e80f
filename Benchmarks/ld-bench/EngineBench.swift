// Engine benchmark: the six workloads of shared/peer/README.md (same shapes as torch_bench.py), in images per
// second, next to the OpenBLAS sgemm rate measured in the same run.
import Foundation
import COpenBLAS
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

/// SplitMix64 for benchmark inputs (bench-local).
struct BenchRNG: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Peak resident set size of this process in bytes.
func peakRSS() -> Int {
    var ru = rusage()
    getrusage(RUSAGE_SELF.rawValue, &ru)
    return ru.ru_maxrss * 1024
}

/// Current resident set size in bytes (from /proc/self/statm).
func currentRSS() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let f = s.split(separator: " ")
    return f.count > 1 ? (Int(f[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

/// Times `step` for about `secs` seconds after `warm` warm-up calls; returns the median and the best
/// seconds per call (the machine is shared: the median is what a run sees, the best what the code can do).
func timeSteps(secs: Double, warm: Int = 2, _ step: () throws -> Void) rethrows -> (median: Double, best: Double) {
    for _ in 0..<warm { try step() }
    var times: [Double] = []
    times.reserveCapacity(1000)
    let t0 = now()
    repeat {
        let a = now()
        try step()
        times.append(now() - a)
    } while now() - t0 < secs || times.count < 3
    times.sort()
    return (times[times.count / 2], times[0])
}

func timeit(secs: Double, warm: Int = 2, _ step: () throws -> Void) rethrows -> Double {
    try timeSteps(secs: secs, warm: warm, step).median
}

/// GFLOP/s of a large square sgemm on `threads` threads.
private func sgemmRate(threads: Int, size: Int = 1536, secs: Double) -> Double {
    Engine.threads = threads
    let a = Tensor(shape: [size, size]), b = Tensor(shape: [size, size]), c = Tensor(shape: [size, size])
    var rng = BenchRNG(state: 1)
    rng.fillUniform(a, -1, 1); rng.fillUniform(b, -1, 1)
    let dt = timeit(secs: secs, warm: 1) {
        sgemm(size, size, size, a.data, b.data, c.data)
    }
    return 2 * Double(size * size * size) / dt / 1e9
}

/// Bytes of the activation tensors a training step keeps between forward and backward: every layer output
/// (convs read their input, BN its input and output) plus the model input.
func activationBytes(_ model: Model) -> Int { 4 * model.layers.reduce(0) { $0 + $1.activationFloats } }

struct Workload {
    let name: String
    let config: ModelConfig
    let batch: Int
    let kind: String   // train, relabel, recover
}

let workloads = [
    Workload(name: "train convnet3-fmnist b128", config: .convnet(), batch: 128, kind: "train"),
    Workload(name: "relabel convnet3-fmnist b128", config: .convnet(), batch: 128, kind: "relabel"),
    Workload(name: "recover convnet3-fmnist b100", config: .convnet(), batch: 100, kind: "recover"),
    Workload(name: "train resnet18-cifar b64", config: .resnet18(), batch: 64, kind: "train"),
    Workload(name: "relabel resnet18-cifar b64", config: .resnet18(), batch: 64, kind: "relabel"),
    Workload(name: "recover resnet18-cifar b64", config: .resnet18(), batch: 64, kind: "recover"),
]

/// The seeds' resolutions and architectures (`--suite seeds`), named as `torch_bench.py --suite seeds`
/// and `Benchmarks/peer_seeds.py` name their rows: ResNet-18 at 64 px (Tiny-ImageNet) and 224 px (ImageNet
/// stem), ResNet-50 at 224 and 32 px, and the other students at 32 px (CIFAR variants: stride-1 first layer).
func seedsWorkloads() throws -> [Workload] {
    func config(_ arch: String, _ size: Int, _ classes: Int, stem: String = "small") throws -> ModelConfig {
        try ModelConfig.named(arch, width: 64, depth: 3, stem: stem, channels: 3, imageSize: size, classes: classes)
    }
    var rows: [(String, ModelConfig, Int)] = [
        ("resnet18-tiny", try config("resnet18", 64, 200), 64),
        ("resnet18-imagenet", try config("resnet18", 224, 1000, stem: "imagenet"), 32),
        ("resnet50-imagenet", try config("resnet50", 224, 1000, stem: "imagenet"), 16),
        ("resnet50-cifar", try config("resnet50", 32, 10), 64),
    ]
    for (arch, name) in [("mobilenetv2", "mobilenetv2-cifar"), ("efficientnet-b0", "efficientnet-b0-cifar"),
                         ("vgg11", "vgg11-cifar"), ("vit-tiny", "vit-tiny-cifar")]
    where Architectures.names.contains(arch) {
        rows.append((name, try config(arch, 32, 10), 64))
    }
    return rows.flatMap { name, config, batch in
        ["train", "relabel", "recover"].map { Workload(name: "\($0) \(name) b\(batch)", config: config, batch: batch, kind: $0) }
    }
}

/// `--model NAME`'s rows in place of the table: train, relabel and recover of any registered model on
/// `batch` x 3 x `size` x `size` images, 10 classes.
func adHocWorkloads(_ model: String?, stem: String, batch: Int, size: Int) throws -> [Workload]? {
    guard let model else { return nil }
    let c = try ModelConfig.named(model, width: 64, depth: 3, stem: stem, channels: 3, imageSize: size, classes: 10)
    return ["train", "relabel", "recover"].map { Workload(name: "\($0) \(model)-\(stem)\(size) b\(batch)", config: c, batch: batch, kind: $0) }
}

/// PyTorch 2 threads on the reference machine (peer/README.md), img/s: the ratio printed when no
/// `--peer` figures of the same run are given.
private let pytorch: [String: Double] = [
    "train convnet3-fmnist b128": 112, "relabel convnet3-fmnist b128": 358, "recover convnet3-fmnist b100": 71,
    "train resnet18-cifar b64": 51, "relabel resnet18-cifar b64": 190, "recover resnet18-cifar b64": 42,
    "train resnet18-tiny b64": 8.9, "relabel resnet18-tiny b64": 36.3, "recover resnet18-tiny b64": 7.4,
    "train resnet18-imagenet b32": 14.9, "relabel resnet18-imagenet b32": 45.8, "recover resnet18-imagenet b32": 10.6,
    "train resnet50-imagenet b16": 4.9, "relabel resnet50-imagenet b16": 19.1, "recover resnet50-imagenet b16": 3.6,
    "train resnet50-cifar b64": 14.8,
    "train mobilenetv2-cifar b64": 212, "relabel mobilenetv2-cifar b64": 1300, "recover mobilenetv2-cifar b64": 137,
]

/// The peer's figures of this run: lines `NAME<TAB>IMG/S img/s...` as `torch_bench.py` prints them.
private func peerFigures(_ path: String) throws -> [String: Double] {
    var figures: [String: Double] = [:]
    guard let lines = try Files.lines(path) else { throw LDError("ld-bench: no peer figures at \(path)") }
    for line in lines {
        let f = line.split(separator: "\t")
        guard f.count >= 2, let v = Double(f[1].split(separator: " ").first ?? "") else { continue }
        figures[String(f[0])] = v
    }
    return figures
}

/// One workload's step closure, with the engine's optimisers: SGD (lr 0.01, momentum 0.9) for training,
/// recover's Adam on the images (lr 0.25, betas 0.5 and 0.9).
func makeStep(_ w: Workload, _ model: Model, rng: inout BenchRNG) throws -> () throws -> Void {
    let c = w.config
    let x = Tensor(shape: [w.batch, c.channels, c.imageSize, c.imageSize])
    rng.fillNormal(x, std: 1)
    let labels = (0..<w.batch).map { _ in Int32(rng.next() % UInt64(c.classes)) }
    let dLogits = Tensor(shape: [0])
    switch w.kind {
    case "train":
        model.training = true
        let optimizer = SGD(model.parameters, learningRate: 0.01, momentum: 0.9)
        return {
            model.zeroGrad()
            try CrossEntropy.loss(logits: model.forward(x), labels: labels, dLogits: dLogits)
            model.backward(dLogits)
            optimizer.step()
        }
    case "relabel":
        model.training = false
        return { _ = model.predict(x) }   // what ld-relabel runs: BatchNorm inside the convolutions
    default: // recover
        model.training = false
        model.captureBatchStatistics = true
        let optimizer = ImageAdam(count: x.count, learningRate: 0.25, betas: (0.5, 0.9))   // recover's
        return {
            try CrossEntropy.loss(logits: model.forward(x), labels: labels, dLogits: dLogits)
            try BNStatisticsLoss.loss(model.batchNorms, scale: 0.01)
            let g = model.backward(dLogits, inputGrad: true, paramGrads: false)!
            optimizer.step(x, grad: g)
        }
    }
}

/// `ld-bench engine [--secs S] [--threads T] [--only SUBSTRING]`: prints one line per workload.
func engineBench(_ args: [String]) throws {
    var secs = 4.0, threads = 2, only: String? = nil, steps = 0, suite = "small", peer: [String: Double]? = nil
    var model: String? = nil, stem = "small", batch = 64, size = 32
    var i = 0
    while i < args.count {
        switch args[i] {
        case "--secs": i += 1; secs = Double(args[i]) ?? secs
        case "--threads": i += 1; threads = Int(args[i]) ?? threads
        case "--only": i += 1; only = args[i]
        case "--suite": i += 1; suite = args[i]
        case "--peer": i += 1; peer = try peerFigures(args[i])
        // Winograd settings (development): fewest channels (0 turns it off), smallest plane side
        case "--winograd": i += 1; Conv2d.winogradMinChannels = Int(args[i]) ?? 16; Conv2d.winograd = Conv2d.winogradMinChannels > 0
        case "--winograd-min-size": i += 1; Conv2d.winogradMinSize = Int(args[i]) ?? Conv2d.winogradMinSize
        case "--winograd-dw": i += 1; Conv2d.winogradWeightGradient = args[i] != "0"
        case "--winograd-block": i += 1; Conv2d.winogradBlockFloats = Int(args[i]) ?? Conv2d.winogradBlockFloats
        case "--winograd-min-tiles": i += 1; Conv2d.winogradMinTiles = Int(args[i]) ?? Conv2d.winogradMinTiles
        case "--steps": i += 1; steps = Int(args[i]) ?? 0   // exactly this many steps, no table (allocation counts)
        case "--columns": i += 1; Conv2d.columnBudget = Int(args[i]) ?? Conv2d.columnBudget
        case "--fuse-stem": i += 1; ConvBatchNorm.enabled = args[i] != "0"
        case "--model": i += 1; model = args[i]
        case "--stem": i += 1; stem = args[i]
        case "--batch": i += 1; batch = Int(args[i]) ?? batch
        case "--size": i += 1; size = Int(args[i]) ?? size
        default: throw LDError("ld-bench engine: unknown argument '\(args[i])'")
        }
        i += 1
    }
    // `--steps` runs the model's steps alone (allocation counts, `perf record`), without the sgemm rate
    let g1 = steps > 0 ? 0 : sgemmRate(threads: 1, secs: min(secs, 2))
    let g2 = steps > 0 ? 0 : sgemmRate(threads: 2, secs: min(secs, 2))
    print("OpenBLAS core: \(Engine.blasCore)")
    if steps == 0 { print(String(format: "sgemm 1536^3: %.1f GFLOP/s (1 thread), %.1f GFLOP/s (2 threads)", g1, g2)) }
    Engine.threads = threads
    let ceiling = threads == 1 ? g1 : g2
    // GFLOP/s counts a direct convolution's FLOPs; Winograd does fewer multiplies, so the share can pass 100%.
    guard ["small", "seeds", "all"].contains(suite) else { throw LDError("ld-bench engine: --suite small, seeds or all") }
    let chosen = (suite == "seeds" ? [] : workloads) + (suite == "small" ? [] : try seedsWorkloads())
    print("workload\timg/s\tms/step\tbest ms\tGFLOP/s (direct)\tshare of sgemm\t\(peer == nil ? "x PyTorch(ref)" : "x PyTorch(this run)")\tpeak RSS MB\tactivations MB")
    var rng = BenchRNG(state: 42)
    for w in try adHocWorkloads(model, stem: stem, batch: batch, size: size) ?? chosen where only.map({ w.name.contains($0) }) ?? true {
        let base = currentRSS()
        let model = try Model(w.config, rng: &rng)
        if w.kind == "recover" && model.batchNorms.isEmpty { continue }   // nothing for recovery to match
        let step = try makeStep(w, model, rng: &rng)
        if steps > 0 {
            for _ in 0..<(steps + 2) { try step() }
            continue
        }
        let (dt, best) = try timeSteps(secs: secs, step)
        let macs = Double(model.macsPerImage * w.batch)
        let flop = macs * (w.kind == "train" ? 6 : w.kind == "recover" ? 4 : 2)
        let gf = flop / dt / 1e9
        let ips = Double(w.batch) / dt
        let ratio = ips / ((peer ?? pytorch)[w.name] ?? .nan)
        print(String(format: "%@\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f%%\t%.2fx\t%.0f\t%.0f", w.name, ips, dt * 1000, best * 1000, gf,
                     100 * gf / ceiling, ratio, Double(peakRSS() - base) / 1e6, Double(activationBytes(model)) / 1e6))
        fflush(stdout)
    }
}

/// `ld-bench gemm`: GFLOP/s of the GEMM shapes of ConvNet-128 b128 and ResNet-18 b64 (1 and 2 threads).
func gemmShapesBench() {
    let shapes: [(String, Bool, Bool, Int, Int, Int)] = [
        ("conv1 fwd K=9", false, false, 128, 100352, 9),
        ("conv1 dW", false, true, 128, 9, 100352),
        ("conv2 fwd", false, false, 128, 25088, 1152),
        ("conv2 dW", false, true, 128, 1152, 25088),
        ("conv2 dcols", true, false, 1152, 25088, 128),
        ("conv3 fwd", false, false, 128, 6272, 1152),
        ("r18 layer1 fwd", false, false, 64, 65536, 576),
        ("r18 layer1 dW", false, true, 64, 576, 65536),
        ("r18 layer1 dcols", true, false, 576, 65536, 64),
        ("r18 layer4 fwd", false, false, 512, 1024, 4608),
        ("r18 layer4 dcols", true, false, 4608, 1024, 512),
        // one Winograd F(4x4) block's GEMM per stage (K, tiles, C)
        ("wino 64ch 128 tiles", false, false, 64, 128, 64),
        ("wino 64ch 256 tiles", false, false, 64, 256, 64),
        ("wino 128ch 128 tiles", false, false, 128, 128, 128),
        ("wino 256ch 128 tiles", false, false, 256, 128, 256),
        ("wino 512ch 32 tiles", false, false, 512, 32, 512),
        ("wino 512ch 64 tiles", false, false, 512, 64, 512),
        // ResNet-50 at 224 px, batch 16, inference: the 1×1 convolutions whole (M = K out, N = columns, K = C in),
        // the stem's and the stride-2 3×3 convolutions' im2col products
        ("r50 stem 7x7/2", false, false, 64, 12544, 147),
        ("r50 layer1 1x1 256>64", false, false, 64, 50176, 256),
        ("r50 layer1 1x1 64>256", false, false, 256, 50176, 64),
        ("r50 layer2 1x1 512>128", false, false, 128, 12544, 512),
        ("r50 layer2 1x1 128>512", false, false, 512, 12544, 128),
        ("r50 layer2 3x3/2 128", false, false, 128, 12544, 1152),
        ("r50 layer3 1x1 1024>256", false, false, 256, 3136, 1024),
        ("r50 layer3 1x1 256>1024", false, false, 1024, 3136, 256),
        ("r50 layer4 1x1 2048>512", false, false, 512, 784, 2048),
        ("r50 layer4 1x1 512>2048", false, false, 2048, 784, 512),
        ("r50 layer4 3x3/2 512", false, false, 512, 784, 4608),
    ]
    var rng = BenchRNG(state: 3)
    for (name, ta, tb, m, n, k) in shapes {
        let a = Tensor(shape: [m * k]), b = Tensor(shape: [k * n]), c = Tensor(shape: [m * n])
        rng.fillUniform(a, -1, 1); rng.fillUniform(b, -1, 1)
        var line = name
        for t in [1, 2] {
            Engine.threads = t
            let dt = timeit(secs: 0.5, warm: 1) { sgemm(transA: ta, transB: tb, m, n, k, a.data, b.data, c.data) }
            line += String(format: "\t%.1f", 2 * Double(m * n * k) / dt / 1e9)
        }
        print(line)
    }
}

/// `ld-bench conv`: forward and input-gradient time of single 3×3 convolutions, im2col vs Winograd.
func convShapesBench() {
    var rng = BenchRNG(state: 5)
    for (c, hw, n) in [(64, 32, 64), (128, 16, 64), (256, 8, 64), (512, 4, 64), (128, 14, 128), (128, 7, 128)] {
        let conv = Conv2d(c, c, kernel: 3, padding: 1, bias: false)
        conv.initialize(&rng)
        conv.wantsParamGrads = false
        let x = Tensor(shape: [c, n, hw, hw]); rng.fillNormal(x, std: 1)
        let dy = Tensor(shape: [c, n, hw, hw]); rng.fillNormal(dy, std: 1)
        var line = "\(c)ch \(hw)x\(hw) n\(n)"
        for wino in [false, true] {
            Conv2d.winograd = wino; Conv2d.winogradMinSize = 1
            let f = timeit(secs: 0.4) { _ = conv.forward(x) }
            let b = timeit(secs: 0.4) { _ = conv.backward(dy) }
            line += String(format: "\t%@ fwd %.1f ms dx %.1f ms", wino ? "F4x4" : "im2col", f * 1000, b * 1000)
        }
        // training: the weights change every step, so their transform is paid on every forward; the
        // backward adds the weight gradient (im2col + GEMM, or Winograd)
        conv.wantsParamGrads = true
        let f = timeit(secs: 0.4) { _ = conv.forward(x) }
        line += String(format: "\ttrain: fwd %.1f ms", f * 1000)
        for dw in [false, true] {
            Conv2d.winogradWeightGradient = dw
            let b = timeit(secs: 0.4) { _ = conv.backward(dy) }
            line += String(format: " dx+dW(%@) %.1f ms", dw ? "F4x4" : "im2col", b * 1000)
        }
        conv.wantsParamGrads = false
        print(line)
    }
    // ResNet-18's stride-2 3x3 convolutions (first block of layers 2-4): im2col + GEMM only
    for (c, hw, n) in [(64, 32, 64), (128, 16, 64), (256, 8, 64)] {
        let conv = Conv2d(c, 2 * c, kernel: 3, stride: 2, padding: 1, bias: false)
        conv.initialize(&rng)
        let x = Tensor(shape: [c, n, hw, hw]); rng.fillNormal(x, std: 1)
        let dy = Tensor(shape: [2 * c, n, hw / 2, hw / 2]); rng.fillNormal(dy, std: 1)
        conv.wantsParamGrads = false
        let f = timeit(secs: 0.4) { _ = conv.forward(x) }
        let b = timeit(secs: 0.4) { _ = conv.backward(dy) }
        conv.wantsParamGrads = true
        _ = conv.forward(x)
        let t = timeit(secs: 0.4) { _ = conv.backward(dy) }
        print(String(format: "%dch->%dch %dx%d stride 2 n%d\tim2col fwd %.1f ms dx %.1f ms\ttrain: dx+dW %.1f ms",
                     c, 2 * c, hw, hw, n, f * 1000, b * 1000, t * 1000))
    }
}

/// `ld-bench layers [--only NAME] [--steps S] [--threads T]`: where a workload's step goes, layer by layer
/// (forward and backward milliseconds, medians over S steps), to see which layers are worth work.
func layerBench(_ args: [String]) throws {
    var only: String? = nil, steps = 20, threads = 2
    var model: String? = nil, stem = "small", batch = 64, size = 32
    var i = 0
    while i < args.count {
        switch args[i] {
        case "--only": i += 1; only = args[i]
        case "--steps": i += 1; steps = Int(args[i]) ?? steps
        case "--threads": i += 1; threads = Int(args[i]) ?? threads
        case "--fuse-stem": i += 1; ConvBatchNorm.enabled = args[i] != "0"
        case "--model": i += 1; model = args[i]
        case "--stem": i += 1; stem = args[i]
        case "--batch": i += 1; batch = Int(args[i]) ?? batch
        case "--size": i += 1; size = Int(args[i]) ?? size
        default: throw LDError("ld-bench layers: unknown argument '\(args[i])'")
        }
        i += 1
    }
    Engine.threads = threads
    var rng = BenchRNG(state: 42)
    let rows = try adHocWorkloads(model, stem: stem, batch: batch, size: size) ?? workloads
    for w in rows where only.map({ w.name.contains($0) }) ?? true {
        let model = try Model(w.config, rng: &rng)
        let step = try makeStep(w, model, rng: &rng)
        for _ in 0..<2 { try step() }
        let layers = model.layers
        var fwd = [[Double]](repeating: [], count: layers.count), bwd = fwd
        let c = w.config
        let x = Tensor(shape: [c.channels, w.batch, c.imageSize, c.imageSize])
        rng.fillNormal(x, std: 1)
        for _ in 0..<steps {
            var t = x
            for (j, l) in layers.enumerated() { let a = now(); t = l.forward(t); fwd[j].append(now() - a) }
            guard w.kind != "relabel" else { continue }
            for l in layers { l.wantsParamGrads = w.kind == "train" }
            layers[0].wantsInputGrad = w.kind == "recover"
            var g: Tensor? = Tensor(shape: t.shape)
            for (j, l) in layers.enumerated().reversed() {
                guard let d = g else { break }
                let a = now(); g = l.backward(d); bwd[j].append(now() - a)
                if g !== d { model.gradients.release(d) }
            }
            model.gradients.release(g)
        }
        func median(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.sorted()[v.count / 2] * 1000 }
        print("\(w.name): layer\tforward ms\tbackward ms")
        var tf = 0.0, tb = 0.0
        var shape = ImageShape(c: w.config.channels, h: w.config.imageSize, w: w.config.imageSize)
        for (j, l) in layers.enumerated() {
            let f = median(fwd[j]), b = median(bwd[j]); tf += f; tb += b
            let t = l.trace(shape), name = t.label
            shape = t.output
            print(String(format: "  %@\t%.2f\t%.2f", name, f, b))
        }
        print(String(format: "  total\t%.2f\t%.2f", tf, tb))
        fflush(stdout)
    }
}

/// `ld-bench scaling [--secs S] [--threads 1,2,4] [--only SUBSTRING]`: each engine workload's images/s at
/// each thread count (default 1, 2, 4, ... up to every core this process may use, and that count), its
/// speed-up over one thread and the scaling efficiency (speed-up / threads), measured side by side.
func scalingBench(_ args: [String]) throws {
    var secs = 3.0, only: String? = nil
    var counts: [Int] = []
    var i = 0
    while i < args.count {
        switch args[i] {
        case "--secs": i += 1; secs = Double(args[i]) ?? secs
        case "--only": i += 1; only = args[i]
        case "--threads": i += 1; counts = args[i].split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
        default: throw LDError("ld-bench scaling: unknown argument '\(args[i])'")
        }
        i += 1
    }
    let cores = Engine.availableCores
    if counts.isEmpty {
        var t = 1
        while t < cores { counts.append(t); t *= 2 }
        counts.append(cores)
        if counts.count == 1 { counts.append(2) }   // one core: still show what a second thread does
    }
    print("thread scaling on \(cores) available core(s), OpenBLAS core \(Engine.blasCore)")
    print("workload\t" + counts.map { "img/s \($0)t" }.joined(separator: "\t") + "\t" + counts.dropFirst().map { "x\($0)t (eff.)" }.joined(separator: "\t"))
    var rng = BenchRNG(state: 42)
    for w in workloads where only.map({ w.name.contains($0) }) ?? true {
        var rates: [Double] = []
        for t in counts {
            Engine.threads = t
            let model = try Model(w.config, rng: &rng)
            let step = try makeStep(w, model, rng: &rng)
            let (dt, _) = try timeSteps(secs: secs, step)
            rates.append(Double(w.batch) / dt)
        }
        let speedups = zip(counts, rates).dropFirst().map { t, r in String(format: "%.2fx (%.0f%%)", r / rates[0], 100 * r / rates[0] / Double(t)) }
        print(w.name + "\t" + rates.map { String(format: "%.1f", $0) }.joined(separator: "\t") + "\t" + speedups.joined(separator: "\t"))
        fflush(stdout)
    }
}

/// `ld-bench depthwise [--threads T] [--secs S]`: the depthwise convolutions of MobileNetV2 and EfficientNet-B0
/// at 32 px, batch 64 (small stem): forward and backward ms and the GB/s of their compulsory traffic (x, y,
/// and dx, dy read or written once).
func depthwiseBench(_ args: [String]) throws {
    var threads = 2, secs = 1.0
    var i = 0
    while i < args.count {
        switch args[i] {
        case "--threads": i += 1; threads = Int(args[i]) ?? threads
        case "--secs": i += 1; secs = Double(args[i]) ?? secs
        default: throw LDError("ld-bench depthwise: unknown argument '\(args[i])'")
        }
        i += 1
    }
    Engine.threads = threads
    var rng = BenchRNG(state: 7)
    print("depthwise b64\tforward ms\tGB/s\tbackward ms\tGB/s\tof which dx ms")
    for (c, side, k, s) in [(32, 32, 3, 1), (96, 32, 3, 2), (144, 16, 3, 1), (144, 16, 5, 2), (192, 8, 3, 1), (240, 8, 5, 2),
                            (384, 4, 3, 1), (672, 4, 5, 1), (960, 2, 3, 1), (1152, 2, 5, 1)] {
        let conv = DepthwiseConv2d(c, kernel: k, stride: s)
        conv.initialize(&rng)
        let x = Tensor(shape: [c, 64, side, side])
        rng.fillNormal(x, std: 1)
        let y = conv.forward(x)
        let dy = Tensor(shape: y.shape)
        rng.fillNormal(dy, std: 1)
        let f = timeSteps(secs: secs) { _ = conv.forward(x) }.median
        let b = timeSteps(secs: secs) { _ = conv.forward(x); _ = conv.backward(dy) }.median - f
        conv.wantsParamGrads = false
        let bx = timeSteps(secs: secs) { _ = conv.forward(x); _ = conv.backward(dy) }.median - f
        let bytesF = Double(4 * (x.count + y.count)), bytesB = Double(4 * (2 * x.count + y.count))
        print(String(format: "%4d ch %2dx%-2d k%d s%d\t%.2f\t%.1f\t%.2f\t%.1f\t%.2f", c, side, side, k, s,
                     f * 1000, bytesF / f / 1e9, b * 1000, bytesB / b / 1e9, bx * 1000))
        fflush(stdout)
    }
}
