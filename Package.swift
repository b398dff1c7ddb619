// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "GoHeap",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "GoHeap", targets: ["GoHeap"]),
        .library(name: "GoCollections", targets: ["GoCollections"]),
        .executable(name: "gomem", targets: ["gomem"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Thin OS layer: mmap/madvise, thread-local slots, getcpu, libnuma loaded at run time.
        .target(name: "CShims", path: "CShims"),
        // The allocator. Depends on nothing but the toolchain.
        .target(name: "GoHeap", dependencies: ["CShims"]),
        // Go's slice and map, allocating through GoHeap (CShims for its prefetch hint).
        .target(name: "GoCollections", dependencies: ["GoHeap", "CShims"]),
        .executableTarget(
            name: "gomem",
            dependencies: [
                "GoHeap",
                "GoCollections",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]),
        // Deliberately misuses the heap so tests can check fatal errors in a subprocess.
        .executableTarget(name: "goheap-testhelper", dependencies: ["GoHeap", "GoCollections", "CShims", "TestSupport"]),
        .target(name: "TestSupport", dependencies: ["CShims"], path: "Tests/TestSupport"),
        .testTarget(
            name: "GoHeapTests",
            dependencies: ["GoHeap", "CShims", "TestSupport"],
            resources: [.copy("Resources")]),
        .testTarget(
            name: "GomemTests",
            dependencies: ["TestSupport"],
            resources: [.copy("Resources")]),
        .testTarget(
            name: "GoCollectionsTests",
            dependencies: ["GoCollections", "GoHeap", "TestSupport"],
            resources: [.copy("Resources")]),
    ]
)
