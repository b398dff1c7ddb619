import Testing
import GoHeap
@testable import GoCollections

/// Issue 9: a container created with `heap: h` allocates from h for its whole
/// life, whatever path dropped or replaced its storage.
@Suite struct HeapForLifeTests {
    static func privateHeap() -> Heap { Heap(configuration: HeapConfiguration(backgroundScavenging: false)) }

    /// Runs `body` and returns how many objects it allocated from `heap`.
    static func mallocs(in heap: Heap, _ body: () -> Void) -> Int {
        let before = heap.stats.mallocs
        body()
        return heap.stats.mallocs - before
    }

    static func base<E>(_ a: GrowableArray<E>) -> UnsafeRawPointer {
        a.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!) }
    }

    @Test func growableArrayAfterRemoveAll() {
        let heap = Self.privateHeap()
        var a = GrowableArray<Int>(capacity: 4, heap: heap)
        for i in 0..<100 { a.append(i) }
        a.removeAll()                                 // drops the storage
        #expect(a.heap === heap)
        #expect(Self.mallocs(in: heap) { a.append(1) } == 1, "the append after removeAll() allocates from the array's heap")
        #expect(heap.owns(Self.base(a)))
        a.removeAll(keepingCapacity: true)
        #expect(Self.mallocs(in: heap) { for i in 0..<1000 { a.append(i) } } > 0)
        #expect(heap.owns(Self.base(a)))
        // removeAll(keepingCapacity: true) while the storage is shared makes a new one, in the same heap.
        let copy = a
        #expect(Self.mallocs(in: heap) { a.removeAll(keepingCapacity: true) } == 1)
        a.append(7)
        #expect(heap.owns(Self.base(a)) && heap.owns(Self.base(copy)))
    }

    @Test func growableArrayReserveAndCopiesFromEmpty() {
        let heap = Self.privateHeap()
        var a = GrowableArray<String>(heap: heap)     // no storage yet
        #expect(a.heap === heap && a.capacity == 0)
        #expect(Self.mallocs(in: heap) { a.reserveCapacity(10) } == 1, "reserveCapacity from empty")
        #expect(heap.owns(Self.base(a)))
        a.removeAll()
        // A copy of an empty array, and an array assigned from one, keep the heap.
        var b = a
        var c = GrowableArray<String>()
        c = b
        #expect(Self.mallocs(in: heap) { b.append("x"); c.append(contentsOf: ["y", "z"]) } == 2)
        #expect(heap.owns(Self.base(b)) && heap.owns(Self.base(c)))
        #expect(b.heap === heap && c.heap === heap)
        // Inserting into and replacing ranges of an emptied array.
        var d = GrowableArray<Int>(capacity: 0, heap: heap)
        d.removeAll()
        d.insert(1, at: 0)
        #expect(heap.owns(Self.base(d)))
        d.removeAll()
        d.replaceSubrange(0..<0, with: [1, 2, 3])
        #expect(heap.owns(Self.base(d)))
        // The other initializers take the heap too.
        let r = GrowableArray(repeating: 1, count: 3, heap: heap)
        #expect(r.heap === heap && heap.owns(Self.base(r)))
        #expect(GrowableArray<Int>().heap === Heap.shared)
    }

    @Test func incrementalMapAfterRemoveAll() {
        let heap = Self.privateHeap()
        var m = IncrementalMap<Int, String>(minimumCapacity: 0, heap: heap)
        for i in 0..<100 { m[i] = "v\(i)" }
        m.removeAll()                                 // drops the storage
        #expect(m.heap === heap)
        #expect(Self.mallocs(in: heap) { m[1] = "one" } == 1, "the first insert after removeAll() allocates its bucket from the map's heap")
        m.removeAll(keepingCapacity: true)
        #expect(Self.mallocs(in: heap) { for i in 0..<1000 { m[i] = "v" } } > 0)
        // A copy of an emptied map, and a map assigned from one, keep the heap.
        m.removeAll()
        var b = m
        var c = IncrementalMap<Int, String>()
        c = b
        #expect(Self.mallocs(in: heap) { b[1] = "b"; c[2] = "c" } == 2)
        #expect(b.heap === heap && c.heap === heap)
        var e = IncrementalMap<Int, Int>(heap: heap)
        #expect(Self.mallocs(in: heap) { e[0] = 0 } == 1)
        #expect(IncrementalMap<Int, Int>().heap === Heap.shared)
    }

    /// Nothing is left behind in the private heap once the containers die.
    @Test func everythingGoesBack() {
        let heap = Self.privateHeap()
        do {
            var a = GrowableArray<String>(heap: heap)
            var m = IncrementalMap<String, GrowableArray<Int>>(heap: heap)
            for i in 0..<2000 {
                a.append("s\(i)")
                m["k\(i % 300)"] = GrowableArray(repeating: i, count: 3, heap: heap)
                if i % 500 == 0 { a.removeAll(); m.removeAll() }
            }
            #expect(heap.stats.heapObjects > 0)
        }
        #expect(heap.stats.heapObjects == 0)
    }
}
