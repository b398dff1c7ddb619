// Container workloads of gomem bench: GoCollections against Swift's own.
import GoCollections
import GoHeap
import Histogram
#if canImport(Glibc)
import Glibc
#endif

enum ContainerWorkloads {
    /// Before each run of every contender, GoHeap and glibc's malloc (which
    /// Swift's Array and Dictionary use) both return the free memory they
    /// retain to the OS, so every run starts from the same footing: its peak
    /// RSS counts all it touches, and no contender reuses pages an earlier
    /// run faulted in while another pays for fresh ones. (glibc keeps freed
    /// blocks below its dynamic mmap threshold, up to 32 MiB, resident.)
    static func releaseRetainedMemory(_ heap: Heap) {
        heap.releaseFreeMemory()
        _ = glibcTrim?(0)
    }

    /// glibc's malloc_trim, found at run time (not in the Glibc module).
    static let glibcTrim: (@convention(c) (Int) -> Int32)? =
        dlsym(nil, "malloc_trim")  // nil: RTLD_DEFAULT
            .map { unsafeBitCast($0, to: (@convention(c) (Int) -> Int32).self) }

    /// Appends 0..<count one at a time to an empty array and sums it back, so
    /// nothing is optimised away. Before each run the free memory of both
    /// allocators goes back to the OS (releaseRetainedMemory).
    static func appendContenders(count: Int, heap: Heap) -> [Contender] {
        [
            Contender(name: "GrowableArray", run: {
                let t0 = monotonicNanos()
                var a = GrowableArray<Int>()
                for i in 0..<count { a.append(i) }
                let t1 = monotonicNanos()
                escapeValue(a.withUnsafeBufferPointer { $0.reduce(0, &+) })
                return RunResult(nanos: t1 - t0)
            }, prepare: { releaseRetainedMemory(heap) }),
            Contender(name: "Swift Array", run: {
                let t0 = monotonicNanos()
                var a: [Int] = []
                for i in 0..<count { a.append(i) }
                let t1 = monotonicNanos()
                escapeValue(a.withUnsafeBufferPointer { $0.reduce(0, &+) })
                return RunResult(nanos: t1 - t0)
            }, prepare: { releaseRetainedMemory(heap) }),
        ] + goContender(name: "Go slice", mode: "append", n: count)
    }

    /// Go's own row, when a Go toolchain is available.
    static func goContender(name: String, mode: String, n: Int) -> [Contender] {
        if case .success = GoRunner.binary { return [GoRunner.contender(name: name, mode: mode, n: n)] }
        return []
    }

    /// The operations a map must offer for the map workload.
    protocol BenchMap {
        init()
        subscript(key: Int) -> Int? { get set }
    }

    /// Inserts `count` random keys (timed as a block), looks them all up in
    /// another order, deletes them all; then inserts them again into a fresh
    /// map with a clock read around every insert, for the latency histogram.
    static func mapRun<M: BenchMap>(_: M.Type, keys: [Int], order: [Int]) -> RunResult {
        let n = keys.count
        var m = M()
        let t0 = monotonicNanos()
        for i in 0..<n { m[keys[i]] = i }
        let t1 = monotonicNanos()
        var found = 0
        for i in 0..<n { found &+= m[keys[order[i]]] ?? 0 }
        let t2 = monotonicNanos()
        for i in 0..<n { m[keys[i]] = nil }
        let t3 = monotonicNanos()
        escapeValue(found)
        var h = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var l = M()
        for i in 0..<n {
            let a = monotonicNanos()
            l[keys[i]] = i
            let b = monotonicNanos()
            _ = h.record(b - a)
        }
        escapeValue(l[keys[0]] ?? 0)
        return RunResult(nanos: t1 - t0, extras: [
            "lookup": Double(t2 - t1) / Double(n), "delete": Double(t3 - t2) / Double(n),
            "p9999": Double(h.valueAtPercentile(99.99)), "worst": Double(h.maxRecorded) / 1000,
        ])
    }

    /// The operations a map of arrays must offer for the grouping rows.
    protocol BenchGroupMap {
        init()
        /// `m[key, default: []].append(value)`.
        mutating func append(_ value: Int, to key: Int)
        func countOfGroup(_ key: Int) -> Int
    }

    /// Groups `count` values by key with `m[k, default: []].append(x)` (Go's
    /// `m[k] = append(m[k], x)`): count / 8 keys, 8 values each, the keys
    /// visited in random order, so the map grows as keys arrive and each
    /// value array grows as its values do. ns/op is per append.
    static func groupRun<M: BenchGroupMap>(_: M.Type, keys: [Int], order: [Int]) -> RunResult {
        let n = keys.count
        var m = M()
        let t0 = monotonicNanos()
        for i in 0..<n { m.append(i, to: keys[order[i] >> 3]) }
        let t1 = monotonicNanos()
        escapeValue(m.countOfGroup(keys[0]))
        return RunResult(nanos: t1 - t0)
    }

    /// The keys and lookup order of workload 8, made on first use (so that
    /// a run of other workloads does not pay for them).
    final class MapInput {
        let count: Int
        init(count: Int) { self.count = count }
        lazy var data: (keys: [Int], order: [Int]) = {
            var rng = Rng(s: 2024)
            let keys = (0..<count).map { _ in Int(bitPattern: UInt(rng.next())) }
            var order = Array(0..<count)
            for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
            return (keys, order)
        }()
        // A heap without the huge-page path: on virtual machines the first
        // touch of a fresh 2 MiB page can stall for milliseconds, and a growing
        // map touches its new array's pages during later inserts.
        lazy var smallPageHeap = Heap(configuration: HeapConfiguration(hugeThreshold: nil))
    }

    static func mapContenders(count: Int, heap: Heap) -> [Contender] {
        let input = MapInput(count: count)
        return [
            Contender(name: "IncrementalMap", run: { mapRun(IncrementalMap<Int, Int>.self, keys: input.data.keys, order: input.data.order) },
                      prepare: { releaseRetainedMemory(heap) }),
            Contender(name: "IncrementalMap, no THP", run: { mapRun(SmallPageMap.self, keys: input.data.keys, order: input.data.order) },
                      prepare: { releaseRetainedMemory(input.smallPageHeap); SmallPageMap.heap = input.smallPageHeap }),
            Contender(name: "Swift Dictionary", run: { mapRun([Int: Int].self, keys: input.data.keys, order: input.data.order) },
                      prepare: { releaseRetainedMemory(heap) }),
        ] + goContender(name: "Go map", mode: "map", n: count) + [
            Contender(name: "IncrementalMap, m[k, default: []].append", run: { groupRun(IncrementalMap<Int, [Int]>.self, keys: input.data.keys, order: input.data.order) },
                      prepare: { releaseRetainedMemory(heap) }),
            Contender(name: "Swift Dictionary, m[k, default: []].append", run: { groupRun([Int: [Int]].self, keys: input.data.keys, order: input.data.order) },
                      prepare: { releaseRetainedMemory(heap) }),
        ]
    }
}

/// Keeps a value observable so the loop that produced it is not removed.
func escapeValue(_ v: Int) {
    escapeSink.store(UInt(bitPattern: v), ordering: .relaxed)
}

extension IncrementalMap: ContainerWorkloads.BenchMap where Key == Int, Value == Int {}

/// IncrementalMap<Int, Int> in a heap chosen at run time (BenchMap needs init()).
struct SmallPageMap: ContainerWorkloads.BenchMap {
    nonisolated(unsafe) static var heap = Heap.shared
    var map = IncrementalMap<Int, Int>(minimumCapacity: 0, heap: SmallPageMap.heap)
    init() {}
    subscript(key: Int) -> Int? {
        get { map[key] }
        set { map[key] = newValue }
    }
}
extension Dictionary: ContainerWorkloads.BenchMap where Key == Int, Value == Int {}

extension IncrementalMap: ContainerWorkloads.BenchGroupMap where Key == Int, Value == [Int] {
    mutating func append(_ value: Int, to key: Int) { self[key, default: []].append(value) }
    func countOfGroup(_ key: Int) -> Int { self[key]?.count ?? 0 }
}
extension Dictionary: ContainerWorkloads.BenchGroupMap where Key == Int, Value == [Int] {
    mutating func append(_ value: Int, to key: Int) { self[key, default: []].append(value) }
    func countOfGroup(_ key: Int) -> Int { self[key]?.count ?? 0 }
}
