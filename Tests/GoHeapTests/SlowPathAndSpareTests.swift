import Testing
import Foundation
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

    /// A local free into a full spare moves it to the spares with room, and
    /// the next refill allocates from it again, without the mcentral.
    @Test func aLocalFreeMakesAFullSpareTheNextToAllocateFrom() {
        let heap = makeTestHeap()
        var objs = fillThreeSpans(heap)
        let first = heap.pageMap.span(of: UInt(bitPattern: objs[0]))!
        let second = heap.pageMap.span(of: UInt(bitPattern: objs[8]))!
        #expect(first.cachedState == .fullSpare && second.cachedState == .fullSpare)
        heap.deallocate(objs[3])
        #expect(first.cachedState == .spare)
        #expect(second.cachedState == .fullSpare)
        // The current span is full: this allocation refills from the spare.
        let again = heap.allocate(byteCount: spanFillSize, noscan: true)
        #expect(again == objs[3])
        #expect(first.cachedState == .current)
        objs[3] = again
        for p in objs { heap.deallocate(p) }
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

    /// A thread that also frees objects of the class between fills keeps
    /// every span it moved on from (up to keptFullSpans), owned.
    @Test func aClassTheThreadAlsoFreesKeepsItsFullSpares() {
        let heap = makeTestHeap()
        var objs: [UnsafeMutableRawPointer] = []
        for _ in 0..<12 {
            heap.deallocate(heap.allocate(byteCount: spanFillSize, noscan: true))
            for _ in 0..<8 { objs.append(heap.allocate(byteCount: spanFillSize, noscan: true)) }
        }
        let movedOn = stride(from: 0, to: 88, by: 8).map { heap.pageMap.span(of: UInt(bitPattern: objs[$0]))! }
        #expect(Set(movedOn.map(\.raw)).count == 11)
        #expect(movedOn.count > MCacheRef.keptFullSpansWithoutFrees)
        #expect(movedOn.allSatisfy { $0.cachedState == .fullSpare })
        for p in objs { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }

    /// Each refill looks at only a few full spares, but goes on where the
    /// last one stopped: a remote free into the oldest of 8 full spares (the
    /// far end of the list from where looking starts) is found by the second
    /// refill, not left behind the spares filed after it.
    @Test func refillsLookAtEveryFullSpareInTurn() {
        let heap = makeTestHeap()
        var objs = (0..<72).map { _ in heap.allocate(byteCount: spanFillSize, noscan: true) }
        let oldest = heap.pageMap.span(of: UInt(bitPattern: objs[0]))!
        #expect(oldest.cachedState == .fullSpare)
        freeOnAnotherThread(heap, objs[2])
        // The first refill looks at the 4 newest full spares and takes a
        // fresh span; the refill after that span fills looks at the next 4.
        var later: [UnsafeMutableRawPointer] = []
        for _ in 0..<(2 * 8 + 1) {
            later.append(heap.allocate(byteCount: spanFillSize, noscan: true))
        }
        #expect(later.contains(objs[2]))
        #expect(MCacheRef.fullSparesLookedAt * 2 >= 8)
        objs.remove(at: 2)
        for p in objs + later { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }
}
