import Testing
import Foundation
@testable import GoHeap

@Suite struct HeapBasicTests {
    /// Every size class, both span classes: the block is usable, distinct,
    /// naturally aligned, and usableSize is the class size.
    @Test func everyClassAllocatesAlignedDistinctBlocks() {
        let heap = makeTestHeap()
        for c in SizeClasses.table {
            for noscan in [false, true] {
                var ptrs: [UnsafeMutableRawPointer] = []
                for _ in 0..<(c.objects * 2 + 3) {  // cross at least two spans
                    let p = heap.allocate(byteCount: c.size, noscan: noscan)
                    #expect(UInt(bitPattern: p) % UInt(c.minAlignment) == 0)
                    #expect(heap.usableSize(of: p) == c.size)
                    #expect(heap.path(of: p) == .small(sizeClass: c.index, spanClass: c.index * 2 + (noscan ? 1 : 0)))
                    fill(p, c.size, tag: UInt8(c.index))
                    ptrs.append(p)
                }
                #expect(Set(ptrs).count == ptrs.count)
                for p in ptrs { #expect(check(p, c.size, tag: UInt8(c.index))) }
                for p in ptrs { heap.deallocate(p) }
            }
        }
        let s = heap.stats
        #expect(s.heapObjects == 0)
        #expect(s.heapAlloc == 0)
    }

    @Test(arguments: [16, 32, 64, 128, 256, 512, 1024, 4096, 8192, 16384, 65536, 1 << 21])
    func alignments(alignment: Int) {
        let heap = makeTestHeap()
        for size in [1, 8, 24, 100, 1000, 5000, 33000, 100_000] {
            let p = heap.allocate(byteCount: size, alignment: alignment)
            #expect(UInt(bitPattern: p) % UInt(alignment) == 0, "size \(size) alignment \(alignment)")
            #expect(heap.usableSize(of: p) >= size)
            fill(p, size, tag: 3)
            #expect(check(p, size, tag: 3))
            heap.deallocate(p)
        }
        #expect(heap.stats.heapObjects == 0)
    }

    @Test func largeObjectsArePageRunsOfRoundUp() {
        let heap = makeTestHeap()
        for n in [32769, 40000, 65536, 100_000, 1 << 20, (2 << 20) - 1] {
            let p = heap.allocate(byteCount: n)
            #expect(heap.usableSize(of: p) == SizeClasses.roundUp(byteCount: n))
            #expect(heap.path(of: p) == .large(pages: SizeClasses.roundUp(byteCount: n) / 8192))
            fill(p, n, tag: 9)
            #expect(check(p, n, tag: 9))
            heap.deallocate(p)
        }
        let s = heap.stats
        #expect(s.largeAllocs == 6 && s.largeFrees == 6 && s.largeBytesInUse == 0)
    }

    @Test func hugeObjectsAre2MiBAlignedPageRuns() {
        let heap = makeTestHeap()
        for n in [2 << 20, (2 << 20) + 1, 5_000_000, 16 << 20, 70 << 20] {
            let p = heap.allocate(byteCount: n)
            #expect(UInt(bitPattern: p) % UInt(2 << 20) == 0)
            #expect(heap.usableSize(of: p) == SizeClasses.roundUp(byteCount: n))
            #expect(heap.path(of: p) == .huge(pages: SizeClasses.roundUp(byteCount: n) / 8192))
            heap.deallocate(p)
        }
        #expect(heap.stats.hugeAllocs == 5 && heap.stats.hugeFrees == 5)
        // The threshold is configurable, and can be switched off.
        let h2 = makeTestHeap(HeapConfiguration(hugeThreshold: 1 << 20, backgroundScavenging: false))
        #expect(h2.path(forByteCount: 1 << 20) == .huge(pages: 128))
        let h3 = makeTestHeap(HeapConfiguration(hugeThreshold: nil, backgroundScavenging: false))
        #expect(h3.path(forByteCount: 64 << 20) == .large(pages: 8192))
    }

    @Test func zeroedAllocationSkipsFreshPages() {
        let heap = makeTestHeap()
        let n = 8 << 20
        let p = heap.allocateZeroed(byteCount: n)
        let bytes = p.assumingMemoryBound(to: UInt8.self)
        #expect((0..<n).allSatisfy { bytes[$0] == 0 })
        // Fresh from the OS: nothing was memset.
        #expect(heap.stats.zeroedBytes == 0)
        #expect(heap.stats.zeroSkippedBytes == n)
        memset(p, 0xAB, n)
        heap.deallocate(p)
        // The same pages come back dirty and must be cleared: a run this long
        // is cleared by handing it back to the OS rather than by memset.
        let q = heap.allocateZeroed(byteCount: n)
        let qb = q.assumingMemoryBound(to: UInt8.self)
        #expect((0..<n).allSatisfy { qb[$0] == 0 })
        #expect(heap.stats.zeroReleasedBytes == n)
        #expect(heap.stats.zeroedBytes == 0)
        memset(q, 0xCD, n)
        heap.deallocate(q)
        // A dirty run below 2 MiB is cleared with memset.
        let dirty = heap.allocate(byteCount: 1 << 20)
        memset(dirty, 0xEE, 1 << 20)
        heap.deallocate(dirty)
        let small = heap.allocateZeroed(byteCount: 1 << 20)
        let sb = small.assumingMemoryBound(to: UInt8.self)
        #expect((0..<(1 << 20)).allSatisfy { sb[$0] == 0 })
        #expect(heap.stats.zeroedBytes == 1 << 20)
        heap.deallocate(small)
        // After release the pages read as zero again and are skipped.
        heap.releaseFreeMemory()
        let skippedBefore = heap.stats.zeroSkippedBytes
        let r = heap.allocateZeroed(byteCount: n)
        #expect(heap.stats.zeroedBytes == 1 << 20)
        #expect(heap.stats.zeroSkippedBytes == skippedBefore + n)
        heap.deallocate(r)
        // Small zeroed objects are cleared whatever they held.
        for size in [8, 100, 3000, 32768] {
            let a = heap.allocate(byteCount: size)
            memset(a, 0xFF, size)
            heap.deallocate(a)
            let z = heap.allocateZeroed(byteCount: size).assumingMemoryBound(to: UInt8.self)
            #expect((0..<size).allSatisfy { z[$0] == 0 })
            heap.deallocate(UnsafeMutableRawPointer(z))
        }
    }

    @Test func tryAllocateReturnsNilWhenImpossible() {
        let heap = makeTestHeap()
        #expect(heap.tryAllocate(byteCount: 1 << 50) == nil)
        #expect(heap.tryAllocate(byteCount: Int.max) == nil)
        // 100 TiB of address space: more than a 47-bit user space can hold alongside the rest.
        #expect(heap.tryAllocate(byteCount: 100 << 40) == nil)
        let p = heap.tryAllocate(byteCount: 64)
        #expect(p != nil)
        heap.deallocate(p!)
    }

    @Test func zeroByteAllocationsAreDistinct() {
        let heap = makeTestHeap()
        let a = heap.allocate(byteCount: 0), b = heap.allocate(byteCount: 0)
        #expect(a != b)
        #expect(heap.usableSize(of: a) == 8)
        heap.deallocate(a)
        heap.deallocate(b)
    }

    @Test func ownershipQueries() {
        let heap = makeTestHeap(), other = makeTestHeap()
        let p = heap.allocate(byteCount: 100)
        #expect(heap.owns(p))
        #expect(!other.owns(p))
        var local = 0
        #expect(!heap.owns(&local))
        heap.deallocate(p)
    }
}

@Suite struct RandomizedHeapTests {
    /// Random alloc/free over small, large and huge sizes; every block carries a
    /// pattern checked before it is freed; stats balance to zero at the end.
    @Test(arguments: [1 as UInt64, 2, 3])
    func randomSequences(seed: UInt64) {
        let heap = makeTestHeap()
        var rng = SplitMix(seed: seed)
        var live: [(UnsafeMutableRawPointer, Int, UInt8)] = []
        var intervals: [(UInt, UInt)] = []
        for step in 0..<60_000 {
            if live.isEmpty || Int.random(in: 0..<100, using: &rng) < 55 {
                let r = Int.random(in: 0..<1000, using: &rng)
                let n: Int
                if r < 900 { n = Int.random(in: 0...2048, using: &rng) }
                else if r < 990 { n = Int.random(in: 2049...200_000, using: &rng) }
                else { n = Int.random(in: (2 << 20)...(6 << 20), using: &rng) }
                let p = heap.allocate(byteCount: n, noscan: r & 1 == 0)
                let tag = UInt8(truncatingIfNeeded: step)
                #expect(heap.usableSize(of: p) == SizeClasses.roundUp(byteCount: max(n, 1)) || n == 0)
                fill(p, n, tag: tag)
                live.append((p, n, tag))
            } else {
                let i = Int.random(in: 0..<live.count, using: &rng)
                live.swapAt(i, live.count - 1)
                let (p, n, tag) = live.removeLast()
                #expect(check(p, n, tag: tag), "block \(p) of \(n) bytes was overwritten")
                heap.deallocate(p)
            }
            if step % 10_000 == 0 {
                // No two live blocks overlap.
                intervals = live.map { (UInt(bitPattern: $0.0), UInt(bitPattern: $0.0) + UInt(heap.usableSize(of: $0.0))) }
                intervals.sort { $0.0 < $1.0 }
                for k in 1..<max(intervals.count, 1) where intervals.count > 1 {
                    #expect(intervals[k - 1].1 <= intervals[k].0)
                }
            }
        }
        for (p, n, tag) in live {
            #expect(check(p, n, tag: tag))
            heap.deallocate(p)
        }
        let s = heap.stats
        #expect(s.heapObjects == 0)
        #expect(s.heapAlloc == 0)
        #expect(s.mallocs == s.frees)
        #expect(s.largeBytesInUse == 0 && s.hugeBytesInUse == 0)
        #expect(s.bySize.allSatisfy { $0.liveObjects == 0 })
        // Everything free: after a flush and sweep no span holds pages.
        heap.releaseFreeMemory()
        let after = heap.stats
        #expect(after.heapInUse == 0)
        #expect(after.smallSpansInUse == 0)
        #expect(after.heapIdle == after.heapSys)
        #expect(after.heapReleased == after.heapSys)
    }
}

/// Heap.reallocate: C's realloc contract, growing page runs in place.
@Suite struct ReallocateTests {
    @Test func smallObjectThatStillFitsStaysPut() {
        let heap = makeTestHeap()
        let p = heap.allocate(byteCount: 100)  // 112 B class
        fill(p, 100, tag: 1)
        #expect(heap.reallocate(p, byteCount: 112) == p)
        let q = heap.reallocate(p, byteCount: 500)
        #expect(q != p)
        #expect(check(q, 100, tag: 1))
        #expect(heap.usableSize(of: q) >= 500)
        heap.deallocate(q)
        #expect(heap.stats.heapAlloc == 0)
    }

    @Test func pageRunGrowsInPlaceWhenTheNextPagesAreFree() {
        let heap = makeTestHeap()
        let p = heap.allocate(byteCount: 100_000)
        fill(p, 100_000, tag: 2)
        let q = heap.reallocate(p, byteCount: 1 << 20)
        #expect(q == p, "the pages after a fresh run are free: grow in place")
        #expect(check(q, 100_000, tag: 2))
        #expect(heap.usableSize(of: q) == 1 << 20)
        #expect(heap.stats.heapAlloc == 1 << 20)
        memset(q, 3, 1 << 20)
        heap.deallocate(q)
        #expect(heap.stats.heapAlloc == 0)
        #expect(heap.stats.heapInUse == 0)
    }

    /// A run at the end of the heap's reserved address space grows in place by
    /// reserving more right after it: a growing array never has its old and
    /// new copies resident at once.
    @Test func runAtTheEndOfTheHeapGrowsByReservingMore() {
        let heap = makeTestHeap()
        let p = heap.allocate(byteCount: 48 << 20)  // huge path: most of one 64 MiB arena
        fill(p, 1 << 20, tag: 6)
        let sys = heap.stats.heapSys
        let q = heap.reallocate(p, byteCount: 150 << 20)
        #expect(q == p, "the run should have grown into a reservation placed right after it")
        #expect(check(q, 1 << 20, tag: 6))
        #expect(heap.usableSize(of: q) == 150 << 20)
        #expect(heap.stats.heapSys > sys)
        heap.deallocate(q)
        #expect(heap.stats.heapAlloc == 0)
    }

    @Test func pageRunMovesWhenBlockedAndKeepsItsBytes() {
        let heap = makeTestHeap()
        let p = heap.allocate(byteCount: 64 << 10)
        let blocker = heap.allocate(byteCount: 64 << 10)
        fill(p, 64 << 10, tag: 4)
        let q = heap.reallocate(p, byteCount: 300_000)
        #expect(q != p)
        #expect(check(q, 64 << 10, tag: 4))
        #expect(heap.usableSize(of: q) >= 300_000)
        heap.deallocate(q)
        heap.deallocate(blocker)
        #expect(heap.stats.heapAlloc == 0)
    }

    @Test func sweepOfSizesKeepsContents() {
        let heap = makeTestHeap()
        var rng = SplitMix(seed: 11)
        var p = heap.allocate(byteCount: 8)
        var n = 8
        fill(p, n, tag: 5)
        for _ in 0..<200 {
            let m = Int.random(in: 1...(3 << 20), using: &rng)
            p = heap.reallocate(p, byteCount: m)
            #expect(check(p, min(n, m), tag: 5))
            fill(p, m, tag: 5)
            n = m
        }
        heap.deallocate(p)
        #expect(heap.stats.heapAlloc == 0)
    }
}
