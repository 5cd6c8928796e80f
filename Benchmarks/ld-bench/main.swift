// ld-bench: the project's benchmarks (`make bench`). Not part of the product; prints one line per figure.
import Foundation
import Shared

let benchArgs = Array(CommandLine.arguments.dropFirst())
if benchArgs.first == "conv" {
    Engine.threads = Int(benchArgs.dropFirst().first ?? "1") ?? 1
    convShapesBench()
} else if benchArgs.first == "gemm" {
    gemmShapesBench()
} else if benchArgs.first == "engine" {
    do { try engineBench(Array(benchArgs.dropFirst())) } catch { print("ld-bench: \(error)"); exit(1) }
} else {
    print("usage: ld-bench engine [--secs S] [--threads T] [--only NAME]")
}
