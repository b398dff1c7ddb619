import Testing
import Foundation
import Synchronization
@testable import GoHeap
import CShims

/// Behaviour added for the malloc library and the larson pattern: scavenging
/// from slow paths when there is no background thread, and full spans kept
/// by the cache that filled them.
/// The object size the spare tests use: 8 objects per 8 KiB span.
private let spanFillSize = 1024

/// 24 objects of `spanFillSize` from the calling thread's cache: two full
/// spans moved on from, and a third that is the current span, full too.
private func fillThreeSpans(_ heap: Heap) -> [UnsafeMutableRawPointer] {
    (0..<24).map { _ in heap.allocate(byteCount: spanFillSize, noscan: true) }
}

/// 96 objects of `spanFillSize` and no frees: a producer's class, so the
/// spans filled after the first keptFullSpansWithoutFrees are filed in the
/// mcentral, unowned. Returns the objects, the index of the first object of
/// the first filed span, and that span.
private func fillPastTheKeptSpares(_ heap: Heap) -> ([UnsafeMutableRawPointer], Int, SpanRef) {
    let objs = (0..<96).map { _ in heap.allocate(byteCount: spanFillSize, noscan: true) }
    let first = 8 * MCacheRef.keptFullSpansWithoutFrees
    return (objs, first, heap.pageMap.span(of: UInt(bitPattern: objs[first]))!)
}

/// Frees `p` from a new thread and waits until it has.
private func freeOnAnotherThread(_ heap: Heap, _ p: UnsafeMutableRawPointer) {
    let victim = HeapBlock(p, byteCount: spanFillSize)
    let done = DispatchSemaphore(value: 0)
    Thread {
        heap.deallocate(victim)
        done.signal()
    }.start()
    done.wait()
}

@Suite(.serialized) struct SlowPathAndSpareTests {
    /// A heap without background scavenging returns pages that stayed free
    /// for the delay once enough slow-path operations come after the period,
    /// and counts those operations from zero even where a dead heap's cache
    /// is still in this thread's slot: left as it was (only large objects
    /// follow) or rebound to the new heap by a small allocation.
    @Test(arguments: [false, true])
    func slowPathsScavengeWithoutABackgroundThread(rebindCache: Bool) {
        // A dead heap whose cache's count stands at 54: if the new heap
        // (usually in the same slot) counted on from it, its first check
        // would come at its tenth slow path, after its first free below.
        do {
            let old = Heap(configuration: HeapConfiguration(hugeThreshold: nil, backgroundScavenging: false))
            old.deallocate(old.allocate(byteCount: 64))  // creates this thread's cache
            MCacheRef(goheap_tls_slots()[old.slot]!).slowTicks = 54
        }
        let heap = Heap(configuration: HeapConfiguration(
            hugeThreshold: nil, backgroundScavenging: false,
            scavengePeriod: .milliseconds(10), scavengeDelay: .zero))
        if rebindCache { heap.deallocate(heap.allocate(byteCount: 64)) }
        var blocks: [UnsafeMutableRawPointer] = []
        // 16 slow-path operations: fewer than the 64 after which one checks.
        for _ in 0..<8 {
            let p = heap.allocate(byteCount: 4 << 20)
            memset(p, 1, 4 << 20)
            blocks.append(p)
        }
        for p in blocks { heap.deallocate(p) }
        #expect(heap.stats.releasedTotal == 0, "nothing is released before a slow path asks")
        usleep(30_000)
        // Every 64th large operation looks at the clock.
        for _ in 0..<130 { heap.deallocate(heap.allocate(byteCount: 64 << 10)) }
        #expect(heap.stats.releasedTotal >= 16 << 20, "released \(heap.stats.releasedTotal) bytes")
    }

    /// The span a thread just filled stays in its cache as a spare (owned,
    /// not filed in the mcentral), so frees into it are local.
    @Test func filledSpansStayWithTheirCache() {
        let heap = makeTestHeap()
        let objs = fillThreeSpans(heap)
        let first = heap.pageMap.span(of: UInt(bitPattern: objs[0]))!
        let mine = UInt(bitPattern: goheap_tls_slots()[heap.slot])
        #expect(first.cachedState == .fullSpare)
        #expect(first.owner.pointee.load(ordering: .relaxed) == mine)
        #expect(first.allocatedCount() == first.nelems)
        for p in objs { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }

    /// A local free into a full spare goes on the entry's freed stack: the
    /// next allocations that find the word empty take those objects back,
    /// last freed first, with the span left on the full spares' list (no
    /// list moves, no refill).
    @Test func localFreesIntoFullSparesAreAllocatedAgainLastFirst() {
        let heap = makeTestHeap()
        var objs = fillThreeSpans(heap)
        let first = heap.pageMap.span(of: UInt(bitPattern: objs[0]))!
        let second = heap.pageMap.span(of: UInt(bitPattern: objs[8]))!
        let current = heap.pageMap.span(of: UInt(bitPattern: objs[16]))!
        #expect(first.cachedState == .fullSpare && second.cachedState == .fullSpare)
        heap.deallocate(objs[3])
        heap.deallocate(objs[12])
        #expect(first.cachedState == .fullSpare && second.cachedState == .fullSpare)
        #expect(first.liveCount == first.nelems - 1 && second.liveCount == second.nelems - 1)
        // The current span is full: these come from the stack.
        let a = heap.allocate(byteCount: spanFillSize, noscan: true)
        let b = heap.allocate(byteCount: spanFillSize, noscan: true)
        #expect(a == objs[12] && b == objs[3])
        #expect(first.cachedState == .fullSpare && second.cachedState == .fullSpare && current.cachedState == .current)
        #expect(first.liveCount == first.nelems && second.liveCount == second.nelems)
        objs[12] = a
        objs[3] = b
        for p in objs { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }

    /// When the freed stack is full, a local free into a full spare moves it
    /// to the spares with room instead, and the refill after the stack is
    /// spent allocates from it.
    @Test func aFullFreedStackMovesTheSpareToTheSparesWithRoom() {
        let heap = makeTestHeap()
        var objs = (0..<32).map { _ in heap.allocate(byteCount: spanFillSize, noscan: true) }
        let spans = (0..<4).map { heap.pageMap.span(of: UInt(bitPattern: objs[$0 * 8]))! }
        #expect(spans[0..<3].allSatisfy { $0.cachedState == .fullSpare })
        // 7 of the first span, 7 of the second, 2 of the third: 16, a full stack.
        let stacked = Array(0..<7) + Array(8..<15) + [16, 17]
        #expect(stacked.count == CacheEntry.freedCapacity)
        for i in stacked { heap.deallocate(objs[i]) }
        #expect(spans[2].cachedState == .fullSpare)
        heap.deallocate(objs[18])
        #expect(spans[2].cachedState == .spare, "the 17th free found the stack full")
        for i in stacked.reversed() {
            let p = heap.allocate(byteCount: spanFillSize, noscan: true)
            #expect(p == objs[i], "object \(i) comes back from the stack, last freed first")
            objs[i] = p
        }
        let p = heap.allocate(byteCount: spanFillSize, noscan: true)
        #expect(p == objs[18], "the refill takes the spare with room")
        #expect(spans[2].cachedState == .current)
        objs[18] = p
        for p in objs { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }

    /// Entries whose span left the cache (emptied and given back, or flushed)
    /// are skipped, never handed out as they stand: every object allocated
    /// afterwards is distinct from the live ones, and the counts add up.
    @Test(arguments: [false, true])
    func staleFreedEntriesAreSkipped(flush: Bool) {
        let heap = makeTestHeap()
        var objs = fillThreeSpans(heap)
        let first = heap.pageMap.span(of: UInt(bitPattern: objs[0]))!
        let mine = UInt(bitPattern: goheap_tls_slots()[heap.slot])
        // Seven frees go on the stack; the eighth empties the span, which goes back.
        for i in 0..<8 { heap.deallocate(objs[i]) }
        #expect(first.owner.pointee.load(ordering: .relaxed) != mine)
        heap.deallocate(objs[9])
        if flush { heap.flushThreadCache() }
        var live = Set(objs[10...].map { UInt(bitPattern: $0) } + [UInt(bitPattern: objs[8])])
        var fresh: [UnsafeMutableRawPointer] = []
        for _ in 0..<20 {
            let p = heap.allocate(byteCount: spanFillSize, noscan: true)
            #expect(live.insert(UInt(bitPattern: p)).inserted, "\(p) handed out twice")
            fresh.append(p)
        }
        #expect(heap.stats.heapAlloc == live.count * spanFillSize)
        if !flush { #expect(fresh[0] == objs[9], "the valid entry comes first") }
        for p in fresh + [objs[8]] + Array(objs[10...]) { heap.deallocate(p) }
        objs.removeAll()
        #expect(heap.stats.heapAlloc == 0)
    }

    /// An entry whose object was allocated again from the word is skipped. A
    /// flush request makes the slow path go straight to a refill, which
    /// returns every span and takes the one with the freed object back from
    /// the mcentral as the current span, so the word hands that object out
    /// while the stack still names it.
    @Test func aStackEntryAllocatedSinceFromTheWordIsSkipped() {
        let heap = makeTestHeap()
        var objs = fillThreeSpans(heap)
        heap.deallocate(objs[3])
        let c = MCacheRef(goheap_tls_slots()[heap.slot]!)
        #expect(c.entry(SizeClasses.spanClass(sizeClass: SizeClasses.classIndex(spanFillSize), noscan: true)).freedCount == 1)
        c.flushRequested.pointee.store(1, ordering: .relaxed)
        let a = heap.allocate(byteCount: spanFillSize, noscan: true)
        #expect(a == objs[3], "the refill after the flush allocates the free object from the word")
        objs[3] = a
        let b = heap.allocate(byteCount: spanFillSize, noscan: true)
        #expect(!objs.contains(b), "\(b) is live already")
        for p in objs + [b] { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }

    /// A free by another thread into a full spare leaves it on its list with
    /// its remotePending flag raised; the owner's next refill finds it there
    /// and allocates the freed object again.
    @Test func aRemoteFreeIntoAFullSpareIsCollectedAtRefill() {
        let heap = makeTestHeap()
        var objs = fillThreeSpans(heap)
        let second = heap.pageMap.span(of: UInt(bitPattern: objs[8]))!
        freeOnAnotherThread(heap, objs[13])
        #expect(second.cachedState == .fullSpare)
        #expect(second.remotePending.pointee.load(ordering: .relaxed) == 1)
        let again = heap.allocate(byteCount: spanFillSize, noscan: true)
        #expect(again == objs[13])
        #expect(second.cachedState == .current)
        objs[13] = again
        for p in objs { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }

    /// A thread that only allocates a class (a producer) keeps at most
    /// keptFullSpansWithoutFrees full spans of it; the rest are filed in
    /// the mcentral, unowned, where other threads' frees make them reusable.
    @Test func aClassTheThreadOnlyAllocatesKeepsFewFullSpares() {
        let heap = makeTestHeap()
        let objs = (0..<96).map { _ in heap.allocate(byteCount: spanFillSize, noscan: true) }
        let movedOn = stride(from: 0, to: 88, by: 8).map { heap.pageMap.span(of: UInt(bitPattern: objs[$0]))! }
        #expect(movedOn.count == 11)
        let kept = movedOn.filter { $0.cachedState == .fullSpare }
        #expect(kept.count == MCacheRef.keptFullSpansWithoutFrees)
        for s in movedOn where s.cachedState != .fullSpare {
            #expect(s.owner.pointee.load(ordering: .relaxed) == 0)
        }
        for p in objs { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }

    /// A span this thread filed in the mcentral that a remote free then moved
    /// to the partial list is still this thread's to take back: its next
    /// local free into it reclaims it from the partial list (and collects the
    /// remote free), rather than going remote itself.
    @Test func aFiledSpanMovedToPartialIsTakenBackByItsFiller() {
        let heap = makeTestHeap()
        let (filled, first, filed) = fillPastTheKeptSpares(heap)
        var objs = filled
        #expect(filed.owner.pointee.load(ordering: .relaxed) == 0)
        #expect(filed.location.pointee.load(ordering: .relaxed) == SpanLocation.full.rawValue)
        #expect(filed.lastOwner != 0)
        freeOnAnotherThread(heap, objs[first + 1])
        #expect(filed.location.pointee.load(ordering: .relaxed) == SpanLocation.partial.rawValue)
        heap.deallocate(objs[first + 2])
        #expect(filed.owner.pointee.load(ordering: .relaxed) & ~1 == filed.lastOwner)
        #expect(filed.location.pointee.load(ordering: .relaxed) == SpanLocation.cached.rawValue)
        #expect(filed.cachedState == .spare)
        #expect(filed.liveCount == 6)
        objs.removeSubrange((first + 1)...(first + 2))
        for p in objs { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }

    /// A partial span another thread's cache checks out forgets the cache
    /// that filled it, so that the filler's frees into it go straight to the
    /// remote path instead of taking two locks to find the span gone.
    @Test func aSpanAnotherCacheChecksOutForgetsItsFiller() {
        let heap = makeTestHeap()
        let (objs, first, filed) = fillPastTheKeptSpares(heap)
        #expect(filed.lastOwner != 0)
        let victim = HeapBlock(objs[first + 1], byteCount: spanFillSize)
        let sawFiller = Mutex<UInt?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            heap.deallocate(victim)  // moves the span to the partial list
            let q = heap.allocate(byteCount: spanFillSize, noscan: true)
            if heap.pageMap.span(of: UInt(bitPattern: q))?.raw == filed.raw {
                sawFiller.withLock { $0 = filed.lastOwner }
            }
            heap.deallocate(q)
            done.signal()
        }.start()
        done.wait()
        #expect(sawFiller.withLock { $0 } == 0)
        for (i, p) in objs.enumerated() where i != first + 1 { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }

    /// A thread that also frees objects of the class between fills keeps
    /// every span it moved on from (up to keptFullSpans), owned: here 80,
    /// a larson thread's share of the 1 KiB class.
    @Test func aClassTheThreadAlsoFreesKeepsItsFullSpares() {
        let heap = makeTestHeap()
        var objs: [UnsafeMutableRawPointer] = []
        for _ in 0..<81 {
            heap.deallocate(heap.allocate(byteCount: spanFillSize, noscan: true))
            for _ in 0..<8 { objs.append(heap.allocate(byteCount: spanFillSize, noscan: true)) }
        }
        let movedOn = stride(from: 0, to: 640, by: 8).map { heap.pageMap.span(of: UInt(bitPattern: objs[$0]))! }
        #expect(Set(movedOn.map(\.raw)).count == 80)
        #expect(movedOn.count > MCacheRef.keptFullSpansWithoutFrees)
        #expect(movedOn.allSatisfy { $0.cachedState == .fullSpare })
        for p in objs { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }

    /// Each refill looks at only a few full spares, but goes on where the
    /// last one stopped: a remote free into the oldest full spare (the far
    /// end of the list from where looking starts) is found by the second
    /// refill, not left behind the spares filed after it.
    @Test func refillsLookAtEveryFullSpareInTurn() {
        let heap = makeTestHeap()
        let looked = MCacheRef.fullSparesLookedAt
        let spans = looked + 4  // full spares: more than one refill looks at
        #expect(spans + 1 <= MCacheRef.keptFullSpans)
        var objs: [UnsafeMutableRawPointer] = []
        for _ in 0..<(spans + 1) {
            for _ in 0..<8 { objs.append(heap.allocate(byteCount: spanFillSize, noscan: true)) }
            // A local free into the current span each time it fills: the
            // class counts as one this thread frees, so its full spares stay.
            heap.deallocate(objs.removeLast())
            objs.append(heap.allocate(byteCount: spanFillSize, noscan: true))
        }
        let oldest = heap.pageMap.span(of: UInt(bitPattern: objs[0]))!
        #expect(oldest.cachedState == .fullSpare)
        freeOnAnotherThread(heap, objs[2])
        // The first refill looks at the newest full spares and takes a fresh
        // span; the refill after that span fills looks at the next ones.
        var later: [UnsafeMutableRawPointer] = []
        for _ in 0..<(2 * 8 + 1) {
            later.append(heap.allocate(byteCount: spanFillSize, noscan: true))
        }
        #expect(later.contains(objs[2]))
        objs.remove(at: 2)
        for p in objs + later { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }
}
