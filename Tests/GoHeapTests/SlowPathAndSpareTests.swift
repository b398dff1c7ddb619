import Testing
import Foundation
@testable import GoHeap
import CShims

/// Behaviour added for the malloc library and the larson pattern: scavenging
/// from slow paths when there is no background thread, and full spans kept
/// by the cache that filled them.
@Suite(.serialized) struct SlowPathAndSpareTests {
    /// A heap without background scavenging returns pages that stayed free
    /// for the delay once enough slow-path operations come after the period.
    @Test func slowPathsScavengeWithoutABackgroundThread() {
        let heap = Heap(configuration: HeapConfiguration(
            hugeThreshold: nil, backgroundScavenging: false,
            scavengePeriod: .milliseconds(10), scavengeDelay: .zero))
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
        let size = 1024  // 8 objects per 8 KiB span
        var objs: [UnsafeMutableRawPointer] = []
        for _ in 0..<24 { objs.append(heap.allocate(byteCount: size, noscan: true)) }
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
        let size = 1024
        var objs: [UnsafeMutableRawPointer] = []
        for _ in 0..<24 { objs.append(heap.allocate(byteCount: size, noscan: true)) }
        let first = heap.pageMap.span(of: UInt(bitPattern: objs[0]))!
        let second = heap.pageMap.span(of: UInt(bitPattern: objs[8]))!
        #expect(first.cachedState == .fullSpare && second.cachedState == .fullSpare)
        heap.deallocate(objs[3])
        #expect(first.cachedState == .spare)
        #expect(second.cachedState == .fullSpare)
        // The current span is full: this allocation refills from the spare.
        let again = heap.allocate(byteCount: size, noscan: true)
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
        let size = 1024
        var objs: [UnsafeMutableRawPointer] = []
        for _ in 0..<24 { objs.append(heap.allocate(byteCount: size, noscan: true)) }
        let second = heap.pageMap.span(of: UInt(bitPattern: objs[8]))!
        let victim = HeapBlock(objs[13], byteCount: size)
        let done = DispatchSemaphore(value: 0)
        Thread {
            heap.deallocate(victim)
            done.signal()
        }.start()
        done.wait()
        #expect(second.cachedState == .fullSpare)
        #expect(second.remotePending.pointee.load(ordering: .relaxed) == 1)
        let again = heap.allocate(byteCount: size, noscan: true)
        #expect(again == objs[13])
        #expect(second.cachedState == .current)
        objs[13] = again
        for p in objs { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }
}
