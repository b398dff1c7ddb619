import Testing
import Foundation
import GoHeap
@testable import GoCollections

@Suite struct IncrementalMapBehaviourTests {
    /// Random inserts, updates, deletes, lookups and iterations against
    /// Dictionary, with phases of pure growth and of churn (inserts and
    /// deletes at a steady count, which piles up overflow buckets and starts
    /// same-size growths).
    @Test(arguments: [1 as UInt64, 2, 3])
    func differentialAgainstDictionary(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        var m = IncrementalMap<Int, String>()
        var d: [Int: String] = [:]
        var sawGrowing = false, sawSameSize = false, iterationsMidGrowth = 0
        var live: [Int] = []
        func check(_ k: Int) { #expect(m[k] == d[k], "key \(k)") }
        for step in 0..<400_000 {
            let churn = step > 150_000
            let r = Int.random(in: 0..<100, using: &rng)
            if r < (churn ? 40 : 70) {
                let k = Int.random(in: 0..<Int.max, using: &rng)
                let v = "v\(step)"
                #expect(m.updateValue(v, forKey: k) == d.updateValue(v, forKey: k))
                live.append(k)
            } else if r < (churn ? 80 : 80), !live.isEmpty {
                let i = Int.random(in: 0..<live.count, using: &rng)
                let k = live[i]
                live.swapAt(i, live.count - 1); live.removeLast()
                #expect(m.removeValue(forKey: k) == d.removeValue(forKey: k))
            } else if r < 90, !live.isEmpty {
                let k = live[Int.random(in: 0..<live.count, using: &rng)]
                m[k] = "u\(step)"; d[k] = "u\(step)"
            } else {
                check(live.isEmpty ? 0 : live[Int.random(in: 0..<live.count, using: &rng)])
                check(Int.random(in: 0..<Int.max, using: &rng))  // almost surely absent
            }
            let s = m.debugState
            if s.isGrowing {
                sawGrowing = true
                if s.isSameSizeGrowth { sawSameSize = true }
                if iterationsMidGrowth < 20 && step % 7 == 0 {
                    // Iterating mid-growth yields every entry exactly once.
                    var seen: [Int: String] = [:]
                    for (k, v) in m { #expect(seen.updateValue(v, forKey: k) == nil, "key \(k) yielded twice") }
                    #expect(seen == d)
                    iterationsMidGrowth += 1
                }
            }
            #expect(m.count == d.count)
        }
        var seen: [Int: String] = [:]
        for (k, v) in m { seen[k] = v }
        #expect(seen == d)
        #expect(Set(m.keys) == Set(d.keys))
        #expect(Array(m.values).count == d.count)
        #expect(sawGrowing && iterationsMidGrowth > 0)
        _ = sawSameSize
    }

    /// A small map churned at a steady count (inserts and deletes, about 5
    /// entries per bucket) accumulates overflow buckets until there are as
    /// many as buckets, which starts a same-size growth; contents stay right.
    @Test func churnStartsSameSizeGrowths() {
        var rng = SplitMix(seed: 77)
        var m = IncrementalMap<Int, Int>()
        var d: [Int: Int] = [:]
        var live: [Int] = []
        var sameSize = 0, wasSameSize = false, previousB = 0
        for step in 0..<200_000 {
            if live.count < 45 || Int.random(in: 0..<2, using: &rng) == 0 {
                let k = Int.random(in: 0..<Int.max, using: &rng)
                m[k] = step; d[k] = step; live.append(k)
            } else {
                let i = Int.random(in: 0..<live.count, using: &rng)
                let k = live[i]
                live.swapAt(i, live.count - 1); live.removeLast()
                #expect(m.removeValue(forKey: k) == d.removeValue(forKey: k))
            }
            let s = m.debugState
            if s.isSameSizeGrowth && !wasSameSize {
                sameSize += 1
                #expect(s.bucketShift == previousB, "same-size growth keeps B")
                #expect(s.oldBucketCount == 1 << s.bucketShift)
            }
            wasSameSize = s.isSameSizeGrowth
            previousB = s.bucketShift
            if step % 1000 == 0 { for k in live.prefix(10) { #expect(m[k] == d[k]) } }
        }
        #expect(sameSize > 0, "no same-size growth in 200k churn steps")
        var seen: [Int: Int] = [:]
        for (k, v) in m { seen[k] = v }
        #expect(seen == d)
    }

    /// A copy taken mid-growth has the same shape, and the two evolve independently.
    @Test func copyOnWriteMidGrowth() {
        var a = IncrementalMap<String, Int>()
        var i = 0
        while !a.debugState.isGrowing || a.debugState.evacuatedBuckets < 3 { a["k\(i)"] = i; i += 1 }
        var b = a
        #expect(b.debugState == a.debugState)
        b["new"] = -1
        a.removeValue(forKey: "k0")
        #expect(a["new"] == nil && b["new"] == -1)
        #expect(a["k0"] == nil && b["k0"] == 0)
        #expect(a.count == i - 1 && b.count == i + 1)
        for j in 1..<i { #expect(a["k\(j)"] == j && b["k\(j)"] == j) }
        // Mutating while iterating works on a copy: the iteration is unaffected.
        var n = 0
        for (k, _) in b { b[k + "!"] = 0; n += 1 }
        #expect(n == i + 1)
        #expect(b.count == 2 * (i + 1))
    }

    /// Keys and values over 128 bytes are stored out of line, in GoHeap boxes.
    @Test func largeKeysAndValuesOutOfLine() {
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        do {
            var m = IncrementalMap<K130, V200>(minimumCapacity: 0, heap: heap)
            #expect(m.debugState.bucketSize == 8 + 64 + 64 + 8)
            for t in 0..<1000 { m[K130(t)] = V200(UInt8(truncatingIfNeeded: t)) }
            // Boxes: one 130-byte key and one 200-byte value per entry.
            #expect(heap.stats.bySize.first { $0.size == 144 }!.liveObjects >= 1000)
            #expect(heap.stats.bySize.first { $0.size == 208 }!.liveObjects >= 1000)
            for t in 0..<1000 {
                let v = m[K130(t)]
                #expect(v?.b[0] == UInt8(truncatingIfNeeded: t) && v?.b[199] == UInt8(truncatingIfNeeded: t))
            }
            for t in 0..<500 { m[K130(t)] = nil }
            #expect(m.count == 500)
        }
        #expect(heap.stats.heapObjects == 0, "boxes, buckets and arrays all went back to the heap")
    }

    /// Class keys and values are deinitialized exactly once, through growth,
    /// updates, deletes, copies and teardown.
    @Test func classKeysAndValuesDeinitializedOnce() {
        let counter = DeinitCounter()
        var made = 0
        do {
            var m = IncrementalMap<Tracked, Tracked>()
            for i in 0..<5000 { m[Tracked(i, counter)] = Tracked(i, counter); made += 2 }
            let copy = m
            for i in 0..<5000 where i % 3 == 0 { m[Tracked(i, counter)] = Tracked(-i, counter); made += 2 }
            for i in 0..<5000 where i % 5 == 0 { m.removeValue(forKey: Tracked(i, counter)); made += 1 }
            #expect(copy.count == 5000)
            m.removeAll(keepingCapacity: true)
            for i in 0..<100 { m[Tracked(i, counter)] = Tracked(i, counter); made += 2 }
        }
        #expect(counter.count == made)
    }

    /// A huge table's first bucket array comes from GoHeap's zeroed allocation,
    /// which skips the memset on pages fresh from the OS; starting a growth
    /// clears nothing up front, even when the memory was used before: each new
    /// bucket is cleared by the evacuation that first writes it.
    @Test func growingAHugeTableClearsNothingUpFront() {
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        // Dirty the heap first: a freed table leaves its pages for reuse.
        do {
            var warm = IncrementalMap<Int64, Int64>(minimumCapacity: 3_500_000, heap: heap)
            for i in 0..<100_000 { warm[Int64(i)] = 1 }
        }
        let s0 = heap.stats
        var m = IncrementalMap<Int64, Int64>(minimumCapacity: 1_700_000, heap: heap)
        #expect(m.debugState.bucketShift == 18)
        let s1 = heap.stats
        #expect(s1.zeroedBytes + s1.zeroReleasedBytes + s1.zeroSkippedBytes
                - s0.zeroedBytes - s0.zeroReleasedBytes - s0.zeroSkippedBytes >= m.debugState.bucketArrayBytes,
                "the first array is a zeroed allocation")
        var i: Int64 = 0
        while !m.debugState.isGrowing { m[i] = i; i += 1 }
        let s2 = heap.stats
        #expect(m.debugState.bucketArrayBytes > 64 << 20)
        #expect(s2.zeroedBytes == s1.zeroedBytes && s2.zeroReleasedBytes == s1.zeroReleasedBytes
                && s2.zeroSkippedBytes == s1.zeroSkippedBytes, "starting the growth cleared memory up front")
        // The growth completes correctly over the lazily cleared array.
        let n = i
        while m.debugState.isGrowing { m[i] = i; i += 1 }
        for k in stride(from: Int64(0), to: i, by: 997) { #expect(m[k] == k) }
        #expect(m.count == Int(i) && n > 0)
        let copy = m
        #expect(copy.count == m.count)
    }

    /// Copies and teardown taken mid-growth never read the new array's
    /// not-yet-cleared buckets (the heap is dirtied first so garbage would show).
    @Test func midGrowthCopyAndTeardownOverDirtyMemory() {
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        for round in 0..<3 {
            var junk = heap.allocate(byteCount: 4 << 20)
            memset(junk, 0xA5, 4 << 20)
            heap.deallocate(junk)
            junk = heap.allocate(byteCount: 200_000)
            memset(junk, 0x5A, 200_000)
            heap.deallocate(junk)
            var m = IncrementalMap<String, Int>(minimumCapacity: 0, heap: heap)
            var i = 0
            while !m.debugState.isGrowing || m.debugState.bucketShift < 12 + round { m["k\(i)"] = i; i += 1 }
            let c = m
            #expect(c.count == i)
            for j in stride(from: 0, to: i, by: 13) { #expect(c["k\(j)"] == j) }
            var seen = 0
            for _ in c { seen += 1 }
            #expect(seen == i)
        }
        #expect(heap.stats.heapObjects == 0)
    }

    @Test func literalsDescriptionAndEquality() {
        let m: IncrementalMap = ["a": 1, "b": 2]
        #expect(m.count == 2 && m["a"] == 1)
        // The order is random (per map and per change): either is right.
        let text = m.description
        #expect(text == #"["a": 1, "b": 2]"# || text == #"["b": 2, "a": 1]"#, "\(text)")
        var n = IncrementalMap<String, Int>()
        n["b"] = 2; n["a"] = 1
        #expect(m == n)
        n["a"] = 3
        #expect(m != n)
        #expect(IncrementalMap<Int, Int>().description == "[:]")
    }
}
