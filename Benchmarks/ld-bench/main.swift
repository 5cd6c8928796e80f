// ld-bench: the project's benchmarks (`make bench`). Not part of the product; prints one line per figure.
// `ld-bench --help` lists the benchmarks and their options.
import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

let usage = """
usage: ld-bench                 everything: engine workloads, thread scaling, the GEMM-only bound (floor),
                                the recover loop, then the stream benchmark
       ld-bench engine [--secs S] [--threads T] [--only NAME] [--suite small|seeds|all]
                       [--peer FILE (PyTorch figures of this run, as torch_bench.py prints them)]
                       [--winograd MINCHANNELS (0: off)] [--winograd-min-size S]
                       [--winograd-dw 0|1] [--winograd-block FLOATS] [--winograd-min-tiles N]
                       [--columns FLOATS (im2col chunk)] [--fuse-stem 0|1 (ConvNet's first block as ConvBatchNorm)]
                       [--steps N (exactly N steps, no table, no sgemm rate: allocation counts, perf)]
       ld-bench scaling [--secs S] [--threads 1,2,4] [--only NAME]   images/s per thread count, speed-up
       ld-bench recover [--secs S] [--threads T]    ld-recover's loop, images x iterations per second
       ld-bench stream                              record streams: write, read, zstd, MB/s
       ld-bench layers [--only NAME] [--steps S] [--threads T]   per-layer forward/backward ms
       (engine and layers: --model NAME [--stem S] [--batch B] [--size PX] for train, relabel and recover rows
       of any registered model in place of the table)
       ld-bench conv [THREADS [WINOGRAD_MIN_TILES [WINOGRAD_BLOCK_FLOATS]]]   per-shape convolutions
       ld-bench gemm                                OpenBLAS sgemm GFLOP/s on the engine's shapes
       ld-bench floor [--secs S] [--threads 1,2] [--only NAME] [--suite small|seeds|all] [--model M ...]
                       each workload's img/s beside what its GEMMs alone allow (OpenBLAS, whole-layer
                       shapes, nothing else), per thread count: the bound any engine on these GEMMs meets
       ld-bench jpeg DIR [--mode train|val] [--size 224] [--threads T] [--secs S]
                       image loading on a JPEG folder (decode, RandomResizedCrop+flip or Resize+CenterCrop,
                       normalise), as ../shared/peer/jpeg_bench.py times PIL + torchvision
       ld-bench ondisk DIR [--size 224] [--model M] [--batch B] [--steps N] [--data-memory 1G]
                                                    training from a folder kept on disk vs decoded beforehand
       ld-bench makeset DIR [--layout tiny|imagenet] [--classes N] [--per-class K] [--val-per-class V]
                                                    a synthetic JPEG set in Tiny-ImageNet's or ImageNet's layout
       ld-bench depthwise [--threads T] [--secs S]  depthwise convolutions of MobileNetV2 / EfficientNet-B0
"""

let benchArgs = Array(CommandLine.arguments.dropFirst())
if benchArgs.contains("--help") || benchArgs.contains("-h") {
    print(usage)
    exit(0)
}
do {
    switch benchArgs.first {
    case nil:
        try engineBench([])
        try scalingBench([])
        try floorBench(["--secs", "2"])
        try recoverBench([])
        streamBench()
    case "engine":
        try engineBench(Array(benchArgs.dropFirst()))
    case "stream":
        streamBench()
    case "scaling":
        try scalingBench(Array(benchArgs.dropFirst()))
    case "recover":
        try recoverBench(Array(benchArgs.dropFirst()))
    case "conv":
        let convArgs = Array(benchArgs.dropFirst()).map { Int($0) }
        Engine.threads = (convArgs.first ?? 1) ?? 1
        if convArgs.count > 1, let t = convArgs[1] { Conv2d.winogradMinTiles = t }
        if convArgs.count > 2, let f = convArgs[2] { Conv2d.winogradBlockFloats = f }
        convShapesBench()
    case "gemm":
        gemmShapesBench()
    case "floor":
        try floorBench(Array(benchArgs.dropFirst()))
    case "jpeg":
        try jpegBench(Array(benchArgs.dropFirst()))
    case "layers":
        try layerBench(Array(benchArgs.dropFirst()))
    case "depthwise":
        try depthwiseBench(Array(benchArgs.dropFirst()))
    case "ondisk":
        try onDiskBench(Array(benchArgs.dropFirst()))
    case "makeset":
        try makeSet(Array(benchArgs.dropFirst()))
    default:
        FileHandle.standardError.write("ld-bench: unknown benchmark '\(benchArgs[0])'\n\(usage)\n".data(using: .utf8)!)
        exit(2)
    }
} catch {
    FileHandle.standardError.write("ld-bench: \(error)\n".data(using: .utf8)!)
    exit(1)
}
