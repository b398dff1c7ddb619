import Testing
import Foundation
import Synchronization
@testable import GoHeap

/// As in the README: a Sendable class around the Mutex, so that closures can share it.
final class Outbox: Sendable {
    let blocks = Mutex<[HeapBlock]>([])
    let sum = Mutex(0)
}

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

    /// The README's cross-thread example, as written: blocks cross threads
    /// through a Mutex-guarded array (this must compile in Swift 6 mode,
    /// which raw pointers do not), and another thread checks and frees them.
    @Test func crossThreadExample() {
        let heap = makeTestHeap()
        let one = heap.allocateBlock(byteCount: 64)
        let outbox = Outbox()
        for i in 0..<100 {
            let block = heap.allocateBlock(byteCount: 64)
            block.bytes.storeBytes(of: i, as: Int.self)
            outbox.blocks.withLock { $0.append(block) }
        }
        let done = DispatchSemaphore(value: 0)
        Thread {
            heap.deallocate(one)
            var sum = 0
            for b in outbox.blocks.withLock({ $0 }) {
                sum += b.bytes.load(as: Int.self)
                heap.deallocate(b)
            }
            outbox.sum.withLock { $0 = sum }
            done.signal()
        }.start()
        done.wait()
        #expect(outbox.sum.withLock { $0 } == (0..<100).reduce(0, +))
        #expect(heap.stats.heapAlloc == 0)
    }

    /// A block handed to a task and freed there.
    @Test func blockCrossesIntoATask() async {
        let heap = makeTestHeap()
        let block = heap.allocateBlock(byteCount: 100_000)
        block.bytes.initializeMemory(as: UInt8.self, repeating: 7)
        let sum = await Task.detached {
            let s = block.bytes.reduce(0) { $0 + Int($1) }
            heap.deallocate(block)
            return s
        }.value
        #expect(sum == 700_000)
        #expect(heap.stats.heapAlloc == 0)
    }
}
