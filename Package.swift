// swift-tools-version:6.0
// ld: dataset distillation (SRe2L, CDA, LPLD, RethinkDC) as small Unix tools on one tensor engine.
import PackageDescription

let tools = ["ld-squeeze", "ld-recover", "ld-relabel", "ld-prune", "ld-train"]

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
        .target(
            name: "Shared",
            dependencies: [
                "COpenBLAS", "CPNG", "CZstd", "CZlib",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
        ),
    ] + tools.map { tool in
        .executableTarget(
            name: tool,
            dependencies: ["Shared", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        )
    } + [
        .executableTarget(name: "ld-bench", dependencies: ["Shared"], path: "Benchmarks/ld-bench"),
        .testTarget(name: "SharedTests", dependencies: ["Shared"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ToolTests", dependencies: ["Shared"]),
    ],
    // Swift 6 tools, Swift 5 language mode: the engine shares raw buffers across worker threads on purpose
    // (disjoint slices), which strict concurrency checking cannot express without noise.
    swiftLanguageModes: [.v5]
)
