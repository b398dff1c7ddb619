// swift-tools-version:6.1
// package-benchmark suites for GoHeap's fast paths and GoCollections. A separate
// package, so that depending on GoHeap never pulls in the benchmark framework.
// Run them as the README's "Benchmarks (package-benchmark)" says:
//   cd Benchmarks && swift package --disable-sandbox benchmark
// Only the MallocInterposer trait is on (malloc counts). The RuntimeInterposer
// trait, an LD_PRELOAD stand-in for Swift 6.3's retain/release hooks on Linux,
// is off: no suite counts retains or releases, so on Swift 6.3 the plugin's
// "Note: skipping LD_PRELOAD of .../libSwiftRuntimeInterposerSwift.so (not
// built)" is expected.
import PackageDescription

let package = Package(
    name: "GoHeapBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "GoHeap", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "AllocatorBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "GoHeap", package: "GoHeap"),
            ],
            path: "AllocatorBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
        .executableTarget(
            name: "ContainerBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "GoCollections", package: "GoHeap"),
            ],
            path: "ContainerBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    ]
)
