import Testing
import Foundation
import Synchronization
@testable import GoHeap

/// A bounded single-producer single-consumer queue of pointers.
final class PointerQueue: @unchecked Sendable {
    private let lock = Locked<[UInt]>([])
    func push(_ p: UnsafeMutableRawPointer) { lock.withLock { $0.append(UInt(bitPattern: p)) } }
    func popAll() -> [UnsafeMutableRawPointer] {
        let addrs = lock.withLock { q in
            defer { q.removeAll(keepingCapacity: true) }
            return q
        }
        return addrs.map { UnsafeMutableRawPointer(bitPattern: $0)! }
    }
}

@Suite(.serialized) struct ConcurrencyTests {
    /// One thread allocates, another frees (every free is remote), both exit.
    @Test func producerConsumerCrossThreadFrees() {
        let heap = makeTestHeap()
        let q = PointerQueue()
        let done = Atomic<Bool>(false)
        let perThread = 200_000
        runOnThreads([
            {
                var rng = SplitMix(seed: 11)
                for i in 0..<perThread {
                    let n = Int.random(in: 16...600, using: &rng)
                    let p = heap.allocate(byteCount: n)
                    p.storeBytes(of: n, as: Int.self)
                    p.storeBytes(of: UInt8(truncatingIfNeeded: i), toByteOffset: n - 1, as: UInt8.self)
                    q.push(p)
                }
                done.store(true, ordering: .releasing)
            },
            {
                var freed = 0
                while true {
                    let finished = done.load(ordering: .acquiring)
                    let batch = q.popAll()
                    for p in batch {
                        let n = p.load(as: Int.self)
                        precondition(n >= 16 && n <= 600 && heap.usableSize(of: p) >= n)
                        heap.deallocate(p)
                    }
                    freed += batch.count
                    if finished && batch.isEmpty { break }
                }
                precondition(freed == perThread)
            },
        ])
        let s = heap.stats
        #expect(s.mallocs == perThread)
        #expect(s.frees == perThread)
        #expect(s.heapAlloc == 0)
        #expect(s.threadCaches == 0, "both thread caches retired at exit")
        // No span lost: once mcentrals are swept every page is free again.
        heap.releaseFreeMemory()
        #expect(heap.stats.heapInUse == 0)
        #expect(heap.stats.smallSpansInUse == 0)
    }

    /// Several threads allocate, pass blocks around in a ring, free what they
    /// receive, and exit; checks contents survive and every span comes back.
    @Test func ringOfThreadsLarsonStyle() {
        let heap = makeTestHeap()
        let threads = 4
        let queues = (0..<threads).map { _ in PointerQueue() }
        let rounds = 40_000
        let finished = Atomic<Int>(0)
        runOnThreads((0..<threads).map { t in
            {
                var rng = SplitMix(seed: UInt64(t) + 100)
                var mine: [UnsafeMutableRawPointer] = []
                for i in 0..<rounds {
                    let n = [16, 24, 48, 100, 256, 1000, 4000, 40000][Int.random(in: 0..<8, using: &rng)]
                    let p = heap.allocate(byteCount: n)
                    memset(p, Int32(t + 1), n)
                    p.storeBytes(of: n, as: Int.self)
                    if i % 3 == 0 { mine.append(p) } else { queues[(t + 1) % threads].push(p) }
                    if i % 64 == 0 {
                        for r in queues[t].popAll() {
                            let m = r.load(as: Int.self)
                            precondition(r.load(fromByteOffset: m - 1, as: UInt8.self) != 0)
                            heap.deallocate(r)
                        }
                    }
                    if mine.count > 100 { heap.deallocate(mine.removeFirst()) }
                }
                for p in mine { heap.deallocate(p) }
                finished.wrappingAdd(1, ordering: .sequentiallyConsistent)
                while finished.load(ordering: .sequentiallyConsistent) < threads { sched_yield() }
                for r in queues[t].popAll() { heap.deallocate(r) }
            }
        })
        let s = heap.stats
        #expect(s.mallocs == threads * rounds)
        #expect(s.frees == s.mallocs)
        #expect(s.heapAlloc == 0)
        heap.releaseFreeMemory()
        #expect(heap.stats.heapInUse == 0)
    }

    /// The larson pattern, where the freed-object stacks do most of the
    /// allocating: threads replace random slots of arrays that move one
    /// thread along after every round (so half the frees are local, half
    /// remote), with mixed sizes, while another thread keeps asking the heap
    /// to take idle caches back. Every object carries its own tag from end to
    /// end, checked when it is freed, so an object handed out twice (a stale
    /// stack entry taken for a free one) shows as a clobbered tag, and the
    /// live objects are distinct at the end.
    @Test func larsonArraysHandedAroundStayIntact() {
        let heap = makeTestHeap()
        let threads = 3, slots = 500, rounds = 60
        let arrays = (0..<threads).map { _ in UnsafeMutablePointer<UInt>.allocate(capacity: slots) }
        defer { arrays.forEach { $0.deallocate() } }
        let addrs = arrays.map { UInt(bitPattern: $0) }
        let arrived = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        @Sendable func barrier(_ generation: Int) {
            arrived.wrappingAdd(1, ordering: .sequentiallyConsistent)
            while arrived.load(ordering: .sequentiallyConsistent) < threads * generation { sched_yield() }
        }
        @Sendable func tagged(_ n: Int, _ tag: UInt64) -> UInt {
            let p = heap.allocate(byteCount: n)
            p.storeBytes(of: UInt64(n) << 48 | tag, as: UInt64.self)
            p.storeBytes(of: tag, toByteOffset: (n - 8) & ~7, as: UInt64.self)
            return UInt(bitPattern: p)
        }
        @Sendable func check(_ a: UInt) {
            let p = UnsafeMutableRawPointer(bitPattern: a)!
            let head = p.load(as: UInt64.self)
            let n = Int(head >> 48), tag = head & (1 << 48 - 1)
            precondition(n >= 16 && n <= 1024 && p.load(fromByteOffset: (n - 8) & ~7, as: UInt64.self) == tag,
                         "object \(p) clobbered: handed out twice")
            heap.deallocate(p)
        }
        var bodies: [@Sendable () -> Void] = (0..<threads).map { t in
            {
                var rng = SplitMix(seed: UInt64(t) &* 977 &+ 1)
                var serial = UInt64(t) << 40
                let mine = UnsafeMutablePointer<UInt>(bitPattern: addrs[t])!
                for i in 0..<slots {
                    serial += 1
                    mine[i] = tagged(16 + Int.random(in: 0..<1009, using: &rng), serial)
                }
                barrier(1)
                for r in 0..<rounds {
                    let arr = UnsafeMutablePointer<UInt>(bitPattern: addrs[(t + r) % threads])!
                    for _ in 0..<slots {
                        let i = Int.random(in: 0..<slots, using: &rng)
                        check(arr[i])
                        serial += 1
                        arr[i] = tagged(16 + Int.random(in: 0..<1009, using: &rng), serial)
                    }
                    barrier(r + 2)
                }
                done.wrappingAdd(1, ordering: .sequentiallyConsistent)
            }
        }
        bodies.append {
            while done.load(ordering: .sequentiallyConsistent) < threads {
                _ = heap.releaseFreeMemory()
                usleep(2_000)
            }
        }
        runOnThreads(bodies)
        var live = Set<UInt>()
        for a in arrays { for i in 0..<slots { #expect(live.insert(a[i]).inserted, "\(a[i]) is in two slots") } }
        for a in live { check(a) }
        #expect(heap.stats.heapAlloc == 0)
        #expect(heap.stats.frees == heap.stats.mallocs)
    }

    /// A thread that exits while holding cached spans gives them back: the main
    /// thread can then free the objects and the heap drains completely.
    @Test func threadExitReturnsCachedSpans() {
        let heap = makeTestHeap()
        let q = PointerQueue()
        runOnThreads([{
            for n in stride(from: 8, through: 32768, by: 8) { q.push(heap.allocate(byteCount: n)) }
        }])
        #expect(heap.stats.threadCaches == 0)
        let blocks = q.popAll()
        #expect(heap.stats.heapObjects == blocks.count)
        for p in blocks { heap.deallocate(p) }
        heap.releaseFreeMemory()
        #expect(heap.stats.heapInUse == 0)
        #expect(heap.stats.heapObjects == 0)
    }

    /// Two threads free the same objects' neighbours concurrently into spans
    /// parked in the full list: the full -> partial notification must not lose spans.
    @Test func remoteFreesIntoFullSpans() {
        let heap = makeTestHeap()
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<100_000 { blocks.append(heap.allocate(byteCount: 32)) }
        heap.flushThreadCache()  // every span now sits in its mcentral, most of them full
        let half = blocks.count / 2
        let a = blocks[..<half].map { UInt(bitPattern: $0) }, b = blocks[half...].map { UInt(bitPattern: $0) }
        runOnThreads([
            { for p in a { heap.deallocate(UnsafeMutableRawPointer(bitPattern: p)!) } },
            { for p in b { heap.deallocate(UnsafeMutableRawPointer(bitPattern: p)!) } },
        ])
        // The freed space is reused by new allocations instead of growing the heap.
        let sysBefore = heap.stats.heapSys
        var again: [UnsafeMutableRawPointer] = []
        for _ in 0..<100_000 { again.append(heap.allocate(byteCount: 32)) }
        #expect(heap.stats.heapSys == sysBefore)
        for p in again { heap.deallocate(p) }
        heap.releaseFreeMemory()
        #expect(heap.stats.heapInUse == 0)
    }

    /// Releasing memory (madvise outside the heap lock) while another thread
    /// allocates, fills, checks and frees large and huge blocks: released runs
    /// are never handed out mid-release, and contents are never lost.
    @Test func releaseRacesWithLargeAllocations() {
        let heap = makeTestHeap()
        let done = Atomic<Bool>(false)
        let corrupt = Atomic<Int>(0)
        runOnThreads([
            {
                var rng = SplitMix(seed: 9)
                for i in 0..<3000 {
                    let n = i % 7 == 0 ? Int.random(in: (2 << 20)...(5 << 20), using: &rng)
                                       : Int.random(in: 40_000...600_000, using: &rng)
                    let p = heap.allocate(byteCount: n).assumingMemoryBound(to: UInt8.self)
                    let tag = UInt8(truncatingIfNeeded: i)
                    p[0] = tag; p[n / 2] = tag; p[n - 1] = tag
                    if p[0] != tag || p[n / 2] != tag || p[n - 1] != tag { corrupt.wrappingAdd(1, ordering: .relaxed) }
                    heap.deallocate(UnsafeMutableRawPointer(p))
                }
                done.store(true, ordering: .releasing)
            },
            {
                while !done.load(ordering: .acquiring) { heap.releaseFreeMemory() }
            },
        ])
        #expect(corrupt.load(ordering: .relaxed) == 0)
        heap.releaseFreeMemory()
        let s = heap.stats
        #expect(s.heapInUse == 0)
        #expect(s.heapReleased == s.heapSys)
        #expect(s.largeAllocs + s.hugeAllocs == 3000)
    }

    /// Heaps created on several threads at once each get a slot of their own:
    /// every allocation comes from the heap asked (before the fix, two heaps
    /// created together could share a slot and so a thread cache).
    @Test func heapsCreatedConcurrentlyNeverShareCaches() {
        let failures = Atomic<Int>(0)
        runOnThreads((0..<4).map { t in
            {
                for round in 0..<12 {
                    let h = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
                    var ps: [UnsafeMutableRawPointer] = []
                    for i in 0..<200 { ps.append(h.allocate(byteCount: 16 + (i + t + round) % 300)) }
                    for p in ps where !h.owns(p) { failures.wrappingAdd(1, ordering: .relaxed) }
                    if h.stats.mallocs != 200 { failures.wrappingAdd(1, ordering: .relaxed) }
                    for p in ps { h.deallocate(p) }
                    if h.stats.heapObjects != 0 { failures.wrappingAdd(1, ordering: .relaxed) }
                }
            }
        })
        #expect(failures.load(ordering: .relaxed) == 0)
    }

    /// Many heaps and threads at once; each heap's counts stay its own.
    @Test func independentHeapsOnManyThreads() {
        let heaps = (0..<4).map { _ in makeTestHeap() }
        runOnThreads((0..<8).map { t in
            {
                let h = heaps[t % 4]
                var ps: [UnsafeMutableRawPointer] = []
                for i in 0..<20_000 { ps.append(h.allocate(byteCount: 8 + i % 500)) }
                for p in ps { h.deallocate(p) }
            }
        })
        for h in heaps {
            #expect(h.stats.mallocs == 40_000)
            #expect(h.stats.frees == 40_000)
        }
    }
}
