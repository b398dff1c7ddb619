// Container workloads of gomem bench: GoCollections against Swift's own.
import GoCollections
import GoHeap

enum ContainerWorkloads {
    /// Appends 0..<count one at a time to an empty array and sums it back, so
    /// nothing is optimised away. Before each run GoHeap returns its free
    /// pages, so the peak RSS of every run starts from the same footing.
    static func appendContenders(count: Int, heap: Heap) -> [Contender] {
        [
            Contender(name: "GrowableArray", run: {
                let t0 = monotonicNanos()
                var a = GrowableArray<Int>()
                for i in 0..<count { a.append(i) }
                let t1 = monotonicNanos()
                escapeValue(a.withUnsafeBufferPointer { $0.reduce(0, &+) })
                return t1 - t0
            }, prepare: { heap.releaseFreeMemory() }),
            Contender(name: "Swift Array", run: {
                let t0 = monotonicNanos()
                var a: [Int] = []
                for i in 0..<count { a.append(i) }
                let t1 = monotonicNanos()
                escapeValue(a.withUnsafeBufferPointer { $0.reduce(0, &+) })
                return t1 - t0
            }, prepare: { heap.releaseFreeMemory() }),
        ]
    }
}

/// Keeps a value observable so the loop that produced it is not removed.
func escapeValue(_ v: Int) {
    escapeSink.store(UInt(bitPattern: v), ordering: .relaxed)
}
