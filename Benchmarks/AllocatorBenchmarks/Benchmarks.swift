// GoHeap's fast paths under package-benchmark, beside glibc malloc, so a saved
// baseline catches regressions. mallocCountTotal shows GoHeap never calls malloc.
import Benchmark
import GoHeap
#if canImport(Glibc)
import Glibc
#endif

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        scalingFactor: .kilo,
        maxDuration: .seconds(2))

    let sizes = (1...32).map { $0 * 16 }

    Benchmark("GoHeap allocate+free, 16-512 B") { benchmark in
        let heap = Heap.shared
        for i in benchmark.scaledIterations {
            let p = heap.allocate(byteCount: sizes[i & 31])
            blackHole(p)
            heap.deallocate(p)
        }
    }

    Benchmark("Glibc malloc and free, 16-512 B") { benchmark in
        for i in benchmark.scaledIterations {
            let p = malloc(sizes[i & 31])!
            blackHole(p)
            free(p)
        }
    }

    Benchmark("GoHeap batch: 1000 x 8-263 B, freed in reverse") { benchmark in
        let heap = Heap.shared
        var ptrs = [UnsafeMutableRawPointer](repeating: UnsafeMutableRawPointer(bitPattern: 8)!, count: 1000)
        for _ in benchmark.scaledIterations {
            for j in 0..<1000 { ptrs[j] = heap.allocate(byteCount: 8 + (j * 37) % 256) }
            for j in stride(from: 999, through: 0, by: -1) { heap.deallocate(ptrs[j]) }
        }
    }

    Benchmark("GoHeap large: 256 KiB allocate+free", configuration: .init(scalingFactor: .one)) { benchmark in
        let heap = Heap.shared
        for _ in benchmark.scaledIterations {
            let p = heap.allocate(byteCount: 256 << 10)
            p.storeBytes(of: 1, as: UInt8.self)
            heap.deallocate(p)
        }
    }

    Benchmark("GoHeap allocateZeroed: 4 KiB") { benchmark in
        let heap = Heap.shared
        for _ in benchmark.scaledIterations {
            let p = heap.allocateZeroed(byteCount: 4096)
            blackHole(p)
            heap.deallocate(p)
        }
    }
}
