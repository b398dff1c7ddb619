// GoCollections beside Swift's Array and Dictionary under package-benchmark.
import Benchmark
import GoCollections

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        maxDuration: .seconds(2))

    Benchmark("GrowableArray: 1 M Int appends") { benchmark in
        for _ in benchmark.scaledIterations {
            var a = GrowableArray<Int>()
            for i in 0..<1_000_000 { a.append(i) }
            blackHole(a.count)
        }
    }

    Benchmark("Swift Array: 1 M Int appends") { benchmark in
        for _ in benchmark.scaledIterations {
            var a: [Int] = []
            for i in 0..<1_000_000 { a.append(i) }
            blackHole(a.count)
        }
    }

    let keys = (0..<200_000).map { Int(bitPattern: UInt($0) &* 0x9E37_79B9_7F4A_7C15) }

    Benchmark("IncrementalMap: 200 k Int inserts") { benchmark in
        for _ in benchmark.scaledIterations {
            var m = IncrementalMap<Int, Int>()
            for k in keys { m[k] = k }
            blackHole(m.count)
        }
    }

    Benchmark("Swift Dictionary: 200 k Int inserts") { benchmark in
        for _ in benchmark.scaledIterations {
            var m: [Int: Int] = [:]
            for k in keys { m[k] = k }
            blackHole(m.count)
        }
    }

    Benchmark("IncrementalMap: 200 k lookups") { benchmark in
        var m = IncrementalMap<Int, Int>()
        for k in keys { m[k] = k }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var sum = 0
            for k in keys { sum &+= m[k]! }
            blackHole(sum)
        }
    }
}
