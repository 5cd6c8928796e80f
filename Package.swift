// swift-tools-version:6.0
// ld: dataset distillation (SRe2L, CDA, LPLD, RethinkDC) as small Unix tools on one tensor engine.
//
// The shared code is five layers, lowest first; each module imports only the ones below it, so the
// compiler enforces the layering (ARCHITECTURE.md draws it):
//
//   LDKernels   tensors, sgemm and the worker pool, counter-based random numbers, files, errors, hashes
//   LDRecords   the framed record-stream format: header, records, reader, writer, the record payloads
//   LDData      data sets, image codecs, normalisation, image grids, crop boxes on images
//   LDNetworks  layers, models (one file per architecture), losses, optimisers, augmentations
//   LDInterop   PyTorch interchange: safetensors and torch.save checkpoints with torchvision's names
//   LDJobs      the distillation jobs: squeeze, recover, relabel, prune, train, scores
//   LDCommand   the command-line vocabulary the five tools share (option groups, exit codes, progress)
//
// Each tool (Sources/ld-*) is its command line plus the call of one job.
import PackageDescription

let tools = ["ld-squeeze", "ld-recover", "ld-relabel", "ld-prune", "ld-train"]

// Hot loops share raw buffers across worker threads (disjoint slices) and are written against pointers,
// so exclusivity checks only cost; cross-module optimisation keeps small accessors of the lower layers
// inlinable in the layers above.
let engineFlags: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"])]

func layer(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .target(name: name, dependencies: dependencies, swiftSettings: engineFlags)
}

let package = Package(
    name: "ld",
    platforms: [.macOS(.v13)],
    products: tools.map { .executable(name: $0, targets: [$0]) },
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries from Debian's -dev packages, found through pkg-config.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),

        // The git revision of the build, from Sources/CBuildInfo/revision.h (written by `make build`).
        .target(name: "CBuildInfo"),
        layer("LDKernels", ["COpenBLAS", "CBuildInfo"]),
        layer("LDRecords", ["LDKernels", "CZstd"]),
        layer("LDData", ["LDKernels", "LDRecords", "CPNG", "CZlib", "CTurboJPEG"]),
        layer("LDNetworks", ["LDKernels", "LDRecords", "LDData"]),
        // PyTorch interchange: safetensors, torch.save archives (a restricted pickle reader), torchvision names.
        layer("LDInterop", ["LDKernels", "LDRecords", "LDData", "LDNetworks", "CZlib"]),
        layer("LDJobs", ["LDKernels", "LDRecords", "LDData", "LDNetworks", "LDInterop"]),
        layer("LDCommand", ["LDKernels", "LDRecords", "LDData", "LDNetworks", "LDInterop", "LDJobs",
                            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
    ] + tools.map { tool in
        .executableTarget(
            name: tool,
            dependencies: ["LDCommand", "LDInterop", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        )
    } + [
        .executableTarget(name: "ld-bench", dependencies: ["LDJobs"], path: "Benchmarks/ld-bench",
                          swiftSettings: engineFlags),
        // The structure-aware fuzzer of the tools' loading paths (`make fuzz`; fuzz/structured/main.swift).
        .executableTarget(name: "ld-fuzz", dependencies: ["LDJobs"], path: "fuzz/structured"),
        .testTarget(name: "UnitTests", dependencies: ["LDJobs", "LDInterop"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ToolTests", dependencies: ["LDJobs", "LDInterop"]),
    ],
    // Swift 6 tools, Swift 5 language mode: the engine shares raw buffers across worker threads on purpose
    // (disjoint slices), which strict concurrency checking cannot express without noise.
    swiftLanguageModes: [.v5]
)
