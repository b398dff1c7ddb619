// RawGrowableArray: a slice of untyped elements whose size is known only at
// run time, as Go's runtime sees every slice. It grows through the same
// SliceGrowth core as GrowableArray and really allocates and copies through
// GoHeap, so tools (gomem trace, gomem explain) can replay Go's behaviour for
// any element size without a Swift type of that size.

import GoHeap
#if canImport(Glibc)
import Glibc
#endif

public final class RawGrowableArray {
    public let elementSize: Int
    public private(set) var count = 0
    public private(set) var capacity = 0
    public private(set) var growthCount = 0
    public private(set) var bytesCopied = 0
    /// Bytes of the current backing array as allocated (0 for size-0 elements).
    public private(set) var byteCount = 0
    public let heap: Heap
    private var base: UnsafeMutableRawPointer?

    /// A nil slice of `elementSize`-byte elements.
    public init(elementSize: Int, heap: Heap = .shared) {
        precondition(elementSize >= 0, "RawGrowableArray(elementSize:): elementSize \(elementSize) is negative")
        self.elementSize = elementSize
        self.heap = heap
    }

    /// `make([]T, length, capacity)`: exact capacity, zeroed elements.
    public convenience init(elementSize: Int, length: Int, capacity: Int? = nil, heap: Heap = .shared) {
        self.init(elementSize: elementSize, heap: heap)
        let cap = capacity ?? length
        precondition(length >= 0 && cap >= length, "RawGrowableArray: length \(length) and capacity \(cap) must satisfy 0 <= length <= capacity")
        let bytes = SliceGrowth.makeBytes(count: cap, elementSize: elementSize)
        if bytes > 0 {
            base = heap.allocateZeroed(byteCount: bytes, noscan: true)
            byteCount = bytes
        }
        self.capacity = cap
        self.count = length
    }

    deinit { if let base { heap.deallocate(base) } }

    /// `append(s, k zero elements...)`: one growth decision for the batch.
    /// Returns the growth event if the slice grew.
    @discardableResult
    public func append(count k: Int) -> SliceGrowthEvent? {
        precondition(k >= 0, "RawGrowableArray.append(count:): count \(k) is negative")
        let needed = count + k
        var event: SliceGrowthEvent?
        if needed > capacity {
            let d = SliceGrowth.grow(oldCapacity: capacity, needed: needed, elementSize: elementSize)
            var newBase: UnsafeMutableRawPointer?
            let copied = count * elementSize
            if d.byteCount > 0 {
                // As growslice does for pointer-free slices: copy the old
                // elements, clear only what they do not cover.
                let p = heap.allocate(byteCount: d.byteCount, noscan: true)
                if let base, copied > 0 { p.copyMemory(from: base, byteCount: copied) }
                memset(p + copied, 0, d.byteCount - copied)
                newBase = p
            }
            if let base { heap.deallocate(base) }
            event = SliceGrowthEvent(
                elementSize: elementSize, oldLength: count, oldCapacity: capacity, neededLength: needed,
                newCapacity: d.capacity, byteCount: d.byteCount, bytesCopied: copied,
                path: d.byteCount > 0 ? heap.path(forByteCount: d.byteCount, noscan: true) : nil)
            base = newBase
            capacity = d.capacity
            byteCount = d.byteCount
            growthCount += 1
            bytesCopied += copied
            SliceGrowth.report(event!)
        }
        count = needed
        return event
    }

    /// The backing array (nil for size-0 elements or capacity 0).
    public var baseAddress: UnsafeMutableRawPointer? { base }
}
