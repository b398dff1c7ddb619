import Testing
import Foundation
@testable import GoHeap

/// The README's usage example, run as written (with a private heap in place of
/// Heap.shared so counts are exact).
@Suite struct ReadmeExampleTests {
    @Test func usageExample() {
        let heap = makeTestHeap()
        let p = heap.allocate(byteCount: 100)                    // small: size class 9 (112 B)
        #expect(heap.path(of: p) == .small(sizeClass: 9, spanClass: 18))
        #expect(heap.usableSize(of: p) == 112)
        let big = heap.allocateZeroed(byteCount: 8 << 20)        // huge path: 2 MiB aligned, THP
        #expect(UInt(bitPattern: big) % UInt(2 << 20) == 0)
        #expect(heap.path(of: big) == .huge(pages: 1024))
        #expect(heap.stats.bySize[8].mallocs == 1 && heap.stats.bySize[8].size == 112)
        heap.deallocate(p); heap.deallocate(big)
        let pinned = Heap(configuration: HeapConfiguration(memoryLimit: 1 << 30, numaPolicy: .bind(node: 0)))
        let q = pinned.allocate(byteCount: 64)
        pinned.deallocate(q)
        #expect(heap.stats.heapAlloc == 0)
        #expect(heap.releaseFreeMemory() >= 0)
        #expect(heap.stats.heapReleased == heap.stats.heapSys)
    }

    /// The README's cross-thread example: the address crosses threads, the
    /// other thread frees it.
    @Test func crossThreadExample() {
        let heap = makeTestHeap()
        let address = UInt(bitPattern: heap.allocate(byteCount: 64))
        let done = DispatchSemaphore(value: 0)
        Thread { heap.deallocate(UnsafeMutableRawPointer(bitPattern: address)!); done.signal() }.start()
        done.wait()
        #expect(heap.stats.heapAlloc == 0)
    }
}
