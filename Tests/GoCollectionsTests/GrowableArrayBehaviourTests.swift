import Testing
import GoHeap
@testable import GoCollections

@Suite struct GrowableArrayBehaviourTests {
    /// Long random sequences of every mutating operation, on the container and
    /// on Swift's Array as a model, including copies and mutation of copies.
    @Test(arguments: [1 as UInt64, 2, 3, 4])
    func differentialAgainstArray(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        var g = GrowableArray<String>()
        var a: [String] = []
        var snapshots: [(GrowableArray<String>, [String])] = []
        for step in 0..<20_000 {
            let op = Int.random(in: 0..<100, using: &rng)
            let v = "v\(step)"
            switch op {
            case 0..<35:
                g.append(v); a.append(v)
            case 35..<45:
                let k = Int.random(in: 0...20, using: &rng)
                let xs = (0..<k).map { "\(v).\($0)" }
                g.append(contentsOf: xs); a.append(contentsOf: xs)
            case 45..<55:
                let i = Int.random(in: 0...a.count, using: &rng)
                g.insert(v, at: i); a.insert(v, at: i)
            case 55..<65 where !a.isEmpty:
                let i = Int.random(in: 0..<a.count, using: &rng)
                #expect(g.remove(at: i) == a.remove(at: i))
            case 65..<75:
                let lo = Int.random(in: 0...a.count, using: &rng)
                let hi = Int.random(in: lo...a.count, using: &rng)
                let xs = (0..<Int.random(in: 0...30, using: &rng)).map { "\(v)r\($0)" }
                g.replaceSubrange(lo..<hi, with: xs); a.replaceSubrange(lo..<hi, with: xs)
            case 75..<80 where !a.isEmpty:
                let i = Int.random(in: 0..<a.count, using: &rng)
                g[i] = v; a[i] = v
            case 80..<84:
                snapshots.append((g, a))  // copies share storage until mutated
            case 84..<88 where !snapshots.isEmpty:
                let k = Int.random(in: 0..<snapshots.count, using: &rng)
                var (sg, sa) = snapshots[k]
                sg.append(v); sa.append(v)
                if !sa.isEmpty { sg[0] = v; sa[0] = v }
                #expect(Array(sg) == sa)
            case 88..<90 where !a.isEmpty:
                #expect(g.removeLast() == a.removeLast())
            case 90:
                g.removeAll(keepingCapacity: true); a.removeAll(keepingCapacity: true)
            case 91:
                let n = a.count + Int.random(in: 0...100, using: &rng)
                g.reserveCapacity(n); a.reserveCapacity(n)
                #expect(g.capacity >= n)
            default:
                break
            }
            #expect(g.count == a.count)
            #expect(g.capacity >= g.count)
            if step % 500 == 0 { #expect(Array(g) == a) }
        }
        #expect(Array(g) == a)
        // Snapshots were never disturbed by later mutations of the original.
        for (sg, sa) in snapshots { #expect(Array(sg) == sa) }
        #expect(g == GrowableArray(a))
        #expect(g.hashValue == GrowableArray(a).hashValue)
    }

    /// Every element is deinitialized exactly once, whatever path removed it.
    @Test func classElementsAreDeinitializedExactlyOnce() {
        let counter = DeinitCounter()
        var made = 0
        do {
            var g = GrowableArray<Tracked>()
            for i in 0..<1000 { g.append(Tracked(i, counter)); made += 1 }
            let copy = g                      // shared, then split by the mutation below
            g.insert(Tracked(-1, counter), at: 10); made += 1
            g.replaceSubrange(0..<100, with: (0..<50).map { Tracked($0, counter) }); made += 50
            // Only Tracked(-1) was held by g alone; the copy still holds the others it replaced.
            #expect(counter.count == 1)
            _ = g.remove(at: 5)
            g.removeAll(keepingCapacity: true)
            #expect(copy.count == 1000)
            for i in 0..<300 { g.append(Tracked(i, counter)); made += 1 }
        }
        #expect(counter.count == made)
    }

    /// The backing array comes from GoHeap through the path its size selects,
    /// and pointer-free elements use the noscan span classes.
    @Test func storageComesFromHeapPaths() {
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        do {
            var ints = GrowableArray<UInt64>(capacity: 0, heap: heap)
            for i in 0..<400_000 { ints.append(UInt64(i)) }      // 3.2 MB: small, large, then huge
            #expect(ints.heap === heap)
            let s = heap.stats
            #expect(s.bySize.reduce(0) { $0 + $1.mallocs } > 0, "small growths")
            #expect(s.bySize.reduce(0) { $0 + $1.noscanMallocs } == s.bySize.reduce(0) { $0 + $1.mallocs },
                    "UInt64 slices are noscan")
            #expect(s.largeAllocs > 0, "growth past 32 KiB takes page runs")
            #expect(s.hugeAllocs > 0, "growth past 2 MiB takes the huge path")
            #expect(s.heapObjects == 1, "old backing arrays were freed")
            ints.withUnsafeBufferPointer { b in
                #expect(heap.path(of: b.baseAddress!) == .huge(pages: heap.usableSize(of: b.baseAddress!) / 8192))
                #expect(b.count == 400_000 && b[399_999] == 399_999)
            }
            var strings = GrowableArray<String>(capacity: 0, heap: heap)
            strings.append("x")
            #expect(heap.stats.bySize[1].mallocs - heap.stats.bySize[1].noscanMallocs == 1,
                    "String elements hold references: scan class (16 B, class 2)")
        }
        #expect(heap.stats.heapObjects == 0, "memory went back when the last copy died")
    }

    /// Growth events report old and new capacity, bytes and path.
    @Test func growthIsObservable() {
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        var g = GrowableArray<Int>(capacity: 0, heap: heap)
        var expected: [(Int, Int)] = []
        var cap = 0
        for _ in 0..<5000 {
            if g.count == cap {
                let d = SliceGrowth.grow(oldCapacity: cap, needed: cap + 1, elementSize: 8)
                expected.append((cap, d.capacity))
                cap = d.capacity
            }
            g.append(1)
        }
        #expect(g.capacity == cap)
        #expect(g.growthCount == expected.count)
        let copied = expected.dropFirst().reduce(0) { $0 + $1.0 * 8 }
        #expect(g.bytesCopied == copied)
        let raw = RawGrowableArray(elementSize: 8, heap: heap)
        let e = raw.append(count: 3000)!
        #expect(e.oldCapacity == 0 && e.newCapacity == 3072 && e.byteCount == 24576 && e.path == .small(sizeClass: 64, spanClass: 129))
        // 3072 + (3072 + 768) / 4 = 4032 elements = 32256 B -> the 32 KiB class: 4096.
        let e2 = raw.append(count: 73)!
        #expect(e2.newCapacity == 4096 && e2.bytesCopied == 24000 && e2.path == .small(sizeClass: 67, spanClass: 135))
        // 4096 + 1216 = 5312 elements = 42496 B -> 6 pages: 6144 elements.
        let e3 = raw.append(count: 1100)!
        #expect(e3.newCapacity == 6144 && e3.byteCount == 49152 && e3.path == .large(pages: 6))
    }

    @Test func goConstructors() {
        let m = GrowableArray<Int>(capacity: 100)            // make([]int, 0, 100)
        #expect(m.capacity == 100 && m.count == 0)
        var r = GrowableArray(repeating: 0, count: 100)      // make([]int, 100)
        #expect(r.capacity == 100)
        r.append(1)                                           // Go: cap 224 (200 rounded to 1792 B)
        #expect(r.capacity == 224)
        let lit: GrowableArray = [1, 2, 3]
        #expect(lit.capacity == 3 && lit.description == "[1, 2, 3]")
        var z = GrowableArray<Void>()
        for _ in 0..<10 { z.append(()) }
        #expect(z.capacity == 10 && z.count == 10, "size-0 elements: capacity is the length")
    }

    @Test func overflowIsAClearFatalError() throws {
        let r = try TestHelper.run("slice-overflow")
        #expect(r.signaled)
        #expect(r.output.contains("fatal error: GoCollections: cannot grow a slice to"), "\(r.output)")
        #expect(r.output.contains("elements of 1000 bytes"), "\(r.output)")
    }
}

/// The README's GoCollections example, as written.
@Suite struct ReadmeCollectionsExampleTests {
    @Test func example() {
        var s = GrowableArray<Int>()                 // a nil slice
        for i in 0..<1000 { s.append(i) }            // capacity 1280, as Go gives a []int
        #expect(s.capacity == 1280)
        var m = IncrementalMap<String, Int>(minimumCapacity: 100)   // make(map[string]int, 100): B = 4
        #expect(m.debugState.bucketShift == 4)
        m["go"] = 1
        #expect(m.debugState.count == 1)
        var groups = IncrementalMap<Int, [Int]>()
        for i in 0..<100 { groups[i % 10, default: []].append(i) }  // Go's m[k] = append(m[k], x), in place
        #expect(groups.count == 10 && groups[3] == Array(stride(from: 3, to: 100, by: 10)))
        let ages: IncrementalMap = ["ann": 31, "bo": 27]          // literals, Equatable, Hashable, Codable
        let names: GrowableArray = ["ann", "bo"]                   // prints ["ann", "bo"], as Array does
        #expect(names.description == #"["ann", "bo"]"#)
        let older = ages.mapValues { $0 + 1 }.filter { $0.value > 30 }   // an IncrementalMap, not an array
        #expect(older == ["ann": 32])
        #expect(ages.keys.count == 2 && ages.index(forKey: "bo") != nil)
        let scratch = Heap(configuration: HeapConfiguration())
        var local = IncrementalMap<Int, Int>(heap: scratch)        // every initializer takes heap:
        local[1] = 2
        #expect(local[1] == 2)
    }
}
