import Testing
import Foundation
@testable import GoHeap
import CShims
import Synchronization

/// Returning memory: scavenger aging, the soft limit's cost, releasing while
/// others allocate, and spans held by idle threads (issue 9, defects 4-7).
@Suite(.serialized) struct ReleaseTests {
    /// Defect 4: a free run that keeps merging with fresh frees used to have
    /// its whole free time reset by every merge, so the background scavenger
    /// never returned it. Free memory is now aged per 512 KiB chunk.
    @Test func oldFreePagesAreReleasedWhileTheirRunKeepsMerging() {
        let heap = makeTestHeap(HeapConfiguration(scavengePeriod: .milliseconds(20), scavengeDelay: .milliseconds(300)))
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<64 {
            let p = heap.allocate(byteCount: 1 << 20)
            memset(p, 1, 1 << 20)
            blocks.append(p)
        }
        for p in blocks { heap.deallocate(p) }
        // One 100 KB allocate + free every 50 ms: each free merges into the big run.
        var released = 0
        for _ in 0..<100 where released < 56 << 20 {
            let p = heap.allocate(byteCount: 100_000)
            memset(p, 2, 100_000)
            heap.deallocate(p)
            usleep(50_000)
            released = heap.stats.heapReleased
        }
        #expect(released >= 56 << 20, "released \(released >> 20) MiB of 64 MiB free while churning: \(heap.stats)")
    }

    /// Defect 5: over the soft limit, every page allocation used to walk every
    /// free run. Finding pages to release must only look at runs with dirty
    /// pages, however many clean runs the heap has.
    @Test func memoryLimitWorkDoesNotGrowWithCleanFreeRuns() {
        let heap = makeTestHeap(HeapConfiguration(memoryLimit: 16 << 20, backgroundScavenging: false))
        // ~4,000 clean free runs: allocate 8 MiB of 2-page objects, free every other one, release.
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<8_000 { blocks.append(heap.allocate(byteCount: 40_000)) }
        for (i, p) in blocks.enumerated() where i % 2 == 0 { heap.deallocate(p) }
        heap.releaseFreeMemory()
        // Stay above the limit with live memory, then churn.
        let live = (0..<10).map { _ in heap.allocate(byteCount: 2 << 20) }
        for p in live { memset(p, 1, 2 << 20) }
        let before = heap.partitions[0].mheap.locked.withLock { $0.counters.runsVisitedForRelease }
        let rounds = 1_000
        for _ in 0..<rounds {
            let p = heap.allocate(byteCount: 100_000)
            memset(p, 3, 4096)
            heap.deallocate(p)
        }
        let visited = heap.partitions[0].mheap.locked.withLock { $0.counters.runsVisitedForRelease } - before
        #expect(visited <= rounds * 4, "\(visited) free runs examined for \(rounds) allocations over the limit")
        let s = heap.stats
        // Over the limit, free pages do not stay resident beyond the piece just freed.
        #expect(s.heapRetained - s.heapInUse <= 1 << 20, "\(s)")
        for p in live { heap.deallocate(p) }
        for (i, p) in blocks.enumerated() where i % 2 == 1 { heap.deallocate(p) }
    }

    /// Defect 6: releasing a big run used to take all of it out of the free
    /// index while the kernel dropped it, so other threads' allocations mapped
    /// new arenas. Now at most one batch is out at a time.
    @Test func releasingDoesNotMakeTheHeapGrow() {
        let heap = makeTestHeap()
        for round in 0..<4 {
            let blocks = (0..<256).map { _ in heap.allocate(byteCount: 1 << 20) }
            for p in blocks { memset(p, 1, 1 << 20) }
            for p in blocks { heap.deallocate(p) }
            let sys = heap.stats.heapSys
            let started = Atomic<Bool>(false)
            let addrs = Mutex<[UInt]>([])
            runOnThreads([
                {
                    started.store(true, ordering: .releasing)
                    heap.releaseFreeMemory()
                },
                {
                    while !started.load(ordering: .acquiring) {}
                    var mine: [UInt] = []
                    for _ in 0..<512 { mine.append(UInt(bitPattern: heap.allocate(byteCount: 64 << 10))) }
                    addrs.withLock { $0 = mine }
                },
            ])
            #expect(heap.stats.heapSys == sys, "round \(round): heap grew from \(sys >> 20) to \(heap.stats.heapSys >> 20) MiB while releasing")
            for a in addrs.withLock({ $0 }) { heap.deallocate(UnsafeMutableRawPointer(bitPattern: a)!) }
        }
    }

    /// Defect 7: threads that freed everything and went idle kept their cached
    /// spans until they exited; releaseFreeMemory() now takes them back.
    @Test func releaseFreeMemoryReclaimsIdleThreadsCaches() {
        let heap = makeTestHeap()
        let threads = 32
        let ready = DispatchSemaphore(value: 0)
        let finish = DispatchSemaphore(value: 0)
        let bodies: [@Sendable () -> Void] = (0..<threads).map { t in
            {
                var ps: [UnsafeMutableRawPointer] = []
                for size in stride(from: 8, through: 32768, by: 97) { ps.append(heap.allocate(byteCount: size)) }
                for i in 0..<2_000 { ps.append(heap.allocate(byteCount: 16 + (i * 7 + t) % 1000)) }
                for p in ps { heap.deallocate(p) }
                ready.signal()
                finish.wait()
                // Still usable after its cache was taken.
                let p = heap.allocate(byteCount: 100)
                heap.deallocate(p)
            }
        }
        let runner = Thread { runOnThreads(bodies) }
        runner.start()
        for _ in 0..<threads { ready.wait() }
        let held = heap.stats.heapInUse
        heap.releaseFreeMemory()
        let s = heap.stats
        for _ in 0..<threads { finish.signal() }
        while !runner.isFinished { usleep(1000) }
        #expect(held > 8 << 20, "the idle threads should have held spans: \(held)")
        #expect(s.heapInUse <= 1 << 20, "heapInUse \(s.heapInUse) after releaseFreeMemory with \(threads) idle threads (held \(held))")
        #expect(s.heapAlloc == 0)
    }

    /// The background scavenger takes spans back from caches idle longer than
    /// scavengeDelay, without any call from the program.
    @Test func backgroundScavengerReclaimsIdleCaches() {
        let heap = makeTestHeap(HeapConfiguration(scavengePeriod: .milliseconds(20), scavengeDelay: .milliseconds(100)))
        let ready = DispatchSemaphore(value: 0)
        let finish = DispatchSemaphore(value: 0)
        let bodies: [@Sendable () -> Void] = (0..<4).map { _ in
            {
                var ps: [UnsafeMutableRawPointer] = []
                for size in stride(from: 8, through: 32768, by: 211) { ps.append(heap.allocate(byteCount: size)) }
                for p in ps { heap.deallocate(p) }
                ready.signal()
                finish.wait()
            }
        }
        let runner = Thread { runOnThreads(bodies) }
        runner.start()
        for _ in 0..<4 { ready.wait() }
        var inUse = heap.stats.heapInUse
        for _ in 0..<500 where inUse > 0 {
            usleep(20_000)
            inUse = heap.stats.heapInUse
        }
        for _ in 0..<4 { finish.signal() }
        while !runner.isFinished { usleep(1000) }
        #expect(inUse == 0, "idle caches still hold \(inUse) bytes")
    }

    /// Carving a large object out of a free run keeps the count of released
    /// (clean) pages exact, whether the run is all clean, all dirty or mixed:
    /// the first two are carved without counting dirty bits, the third by
    /// counting them. Each step's expected change follows from which pages
    /// the object takes.
    @Test func carvingKeepsReleasedPagesExactForCleanDirtyAndMixedRuns() {
        let heap = makeTestHeap()
        let page = SizeClasses.pageSize
        let a = heap.allocate(byteCount: 64 * page)
        memset(a, 1, 64 * page)
        // All clean: A took 64 clean pages of the fresh arena, then B 64 more.
        let released = heap.stats.heapReleased
        #expect(released == heap.stats.heapSys - 64 * page)
        let b = heap.allocate(byteCount: 64 * page)
        memset(b, 1, 64 * page)
        #expect(heap.stats.heapReleased == released - 64 * page)
        // A's run, between the arena's start (or an in-use span) and B, is all
        // dirty; a 32-page object is carved from it (the smallest fitting run).
        heap.deallocate(a)
        let c = heap.allocate(byteCount: 32 * page)
        #expect(c == a, "the 32 pages come from the start of A's freed run")
        #expect(heap.stats.heapReleased == released - 64 * page, "no clean page taken from an all-dirty run")
        // Freeing B merges A's dirty rest, B and the clean tail: a mixed run.
        heap.deallocate(b)
        #expect(heap.stats.heapReleased == released - 64 * page)
        // 16 pages from its dirty start, then 128 = 16 dirty + 64 dirty + 48 clean.
        let d = heap.allocate(byteCount: 16 * page)
        #expect(heap.stats.heapReleased == released - 64 * page)
        let e = heap.allocate(byteCount: 128 * page)
        #expect(e == a + 48 * page)
        #expect(heap.stats.heapReleased == released - 64 * page - 48 * page)
        for p in [c, d, e] { heap.deallocate(p) }
    }
}
