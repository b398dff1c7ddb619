import Testing
import GoHeap
@testable import GoCollections

/// Issue 13: the next doubling's array is allocated and faulted in ahead of
/// the growth, a bounded number of bytes per write; the layout keeps Go's
/// bucket size; teardown of plain-data maps skips the per-entry walk.
@Suite struct IncrementalMapGrowthPreparationTests {
    /// Every write touches at most prefaultBytesPerWrite of the next array,
    /// and every doubling to an array of prefaultMinimumBytes or more
    /// installs the prepared array, entirely touched, so none of the
    /// growth's writes is the first to touch a page of it. B follows Go's
    /// trigger exactly all the while.
    @Test func nextArrayIsTouchedAheadInBoundedSteps() {
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        var m = IncrementalMap<Int, Int>(heap: heap)
        var rng = SplitMix(seed: 13)
        var lastTotal = 0, doublings = 0, preparedDoublings = 0, b = 0
        for i in 0..<150_000 {
            m[Int.random(in: .min ... .max, using: &rng)] = i
            let p = m.prefaultStatistics
            #expect(p.totalTouchedBytes - lastTotal <= MapConstants.prefaultBytesPerWrite, "write \(i)")
            #expect(p.touchedBytes <= p.nextArrayBytes)
            lastTotal = p.totalTouchedBytes
            let s = m.debugState
            if s.bucketShift != b {
                #expect(s.bucketShift == b + 1 && s.count == MapConstants.growthThreshold(bucketShift: b) + 1,
                        "doubling at Go's trigger")
                doublings += 1
                let arrayBytes = (1 << s.bucketShift + (s.bucketShift >= 4 ? 1 << (s.bucketShift - 4) : 0)) * s.bucketSize
                if arrayBytes >= MapConstants.prefaultMinimumBytes { preparedDoublings += 1 }
                b = s.bucketShift
            }
        }
        let p = m.prefaultStatistics
        #expect(b == 15 && doublings == 15)
        #expect(preparedDoublings >= 4)
        #expect(p.preparedGrowths == preparedDoublings, "every large doubling used the prepared array")
        #expect(p.fullyTouchedGrowths == preparedDoublings, "and found it entirely touched")
        #expect(p.maxBytesTouchedByOneWrite == MapConstants.prefaultBytesPerWrite)
        #expect(p.totalTouchedBytes > 0)
        // Not yet in the window of the next doubling: nothing allocated ahead.
        #expect(m.count < p.growthStartsAtCount! && p.nextArrayBytes == 0)
    }

    /// A map that stops inside the window keeps the prepared array until it
    /// dies; copies, removeAll and teardown leave nothing behind.
    @Test func preparedArrayIsFreedWithTheMap() {
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        do {
            var m = IncrementalMap<Int, Int>(heap: heap)
            var i = 0
            while m.prefaultStatistics.nextArrayBytes == 0 { m[i &* 0x9E37_79B9] = i; i += 1 }
            let start = m.prefaultStatistics.growthStartsAtCount!
            #expect(m.count == start + 1, "the first write at the window's start allocates the next array")
            #expect(!m.debugState.isGrowing)
            let copy = m
            m[-1] = -1  // a write to a shared map copies it first; the copy prepares its own
            #expect(copy.prefaultStatistics.nextArrayBytes > 0 && m.prefaultStatistics.nextArrayBytes > 0)
            #expect(copy.count == m.count - 1)
            var emptied = m
            emptied.removeAll(keepingCapacity: true)
            #expect(emptied.prefaultStatistics.nextArrayBytes == 0)
        }
        #expect(heap.stats.heapObjects == 0, "prepared arrays went back to the heap")
    }

    /// Key and value of a slot sit side by side when that gives exactly Go's
    /// bucket size; otherwise Go's order (8 keys, then 8 values) is kept.
    @Test func layoutKeepsGoBucketSize() {
        let ii = BucketLayout(Int.self, Int.self)
        #expect(ii.size == 144 && ii.keyStride == 16 && ii.valuesOffset == 16 && ii.overflowOffset == 136)
        let si = BucketLayout(String.self, Int.self)
        #expect(si.size == 208 && si.keyStride == 24 && si.valuesOffset == 24)
        let small = BucketLayout(Int32.self, Int8.self)  // interleaving would pad: Go's order
        #expect(small.size == 56 && small.keyStride == 4 && small.valuesOffset == 40 && small.overflowOffset == 48)
        let set = BucketLayout(Int.self, Void.self)
        #expect(set.size == 80 && set.keyStride == 8 && set.valueStride == 0)
    }

    /// Maps of plain data skip the per-entry teardown, but still free the
    /// overflow buckets allocated on their own, in the current table, in the
    /// old table of a growth, and in copies.
    @Test func plainDataTeardownFreesSeparateOverflowBuckets() {
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        var rng = SplitMix(seed: 99)
        var sawSeparate = 0
        do {
            var maps: [IncrementalMap<Int, Int>] = []
            for _ in 0..<300 {
                // B = 1, no preallocated overflow buckets: any overflow is separate.
                var m = IncrementalMap<Int, Int>(heap: heap)
                for j in 0..<13 { m[Int.random(in: .min ... .max, using: &rng)] = j }
                if m._storage!.separateOverflows > 0 { sawSeparate += 1 }
                maps.append(m)
                var copy = m
                copy[Int.random(in: .min ... .max, using: &rng)] = 0  // starts a growth in the copy
                maps.append(copy)
            }
        }
        #expect(sawSeparate > 0)
        #expect(heap.stats.heapObjects == 0, "every bucket array and overflow bucket went back")
    }
}
