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
        #expect(first.cachedState == .spare)
        #expect(first.owner.pointee.load(ordering: .relaxed) == mine)
        #expect(first.allocatedCount() == first.nelems)
        for p in objs { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
    }
}
