// GrowableArray: a Swift collection that grows exactly like a Go slice.
//
// Storage: a small class instance (count, capacity, statistics, the heap) owns
// one backing array allocated from GoHeap; the struct holds a reference to it
// and copies it on write, like Swift's Array. Every operation that needs more
// room than the capacity asks SliceGrowth.grow, the one place capacity is
// decided, so the capacity after any growth is what Go's append gives a slice
// of the same element size. Go's element size is Swift's stride (0 for
// zero-sized types, which take no memory at all).
//
// Elements are moved with moveInitialize (never bit-copied behind Swift's
// back) and deinitialized exactly once: when removed, or when the last copy of
// the storage dies. Trivially destructible elements are allocated from the
// noscan span class, as Go puts pointer-free slices there, and skip the
// deinitialization pass.
//
// Copying a GrowableArray shares the storage; the first mutation of a shared
// storage copies it with the same capacity (Go has no such copy; it is not a
// growth and does not consult the growth rule).
//
// This file holds the storage, its growth and Go's operations (make, append);
// GrowableArray+Collection has Array's collection API, +Codable and
// +Descriptions the rest of Array's conformances.
//
// The heap is part of the value, not only of the storage: an array made with
// `heap: h` allocates from h for life, also after removeAll() dropped its
// storage, after reserveCapacity from empty, and in every copy. The struct
// keeps nil for Heap.shared, so arrays on the shared heap never touch its
// reference count.

import GoHeap

// The storage's mutable fields opt out of dynamic exclusivity checks: they are
// reached only through GrowableArray, whose mutating methods first make the
// storage unique, so overlapping accesses cannot arise; the checks otherwise
// cost more than the append itself (a runtime call and a TLS lookup each).
@usableFromInline
final class _GrowableStorage<Element> {
    @exclusivity(unchecked) @usableFromInline var base: UnsafeMutablePointer<Element>
    @exclusivity(unchecked) @usableFromInline var count: Int
    @exclusivity(unchecked) @usableFromInline var capacity: Int
    @usableFromInline let heap: Heap
    /// True when `base` came from the heap (false for size-0 elements and capacity 0).
    @usableFromInline let owned: Bool
    @exclusivity(unchecked) @usableFromInline var growths = 0
    @exclusivity(unchecked) @usableFromInline var bytesCopied = 0

    @usableFromInline
    init(heap: Heap, capacity: Int, byteCount: Int) {
        self.heap = heap
        self.count = 0
        self.capacity = capacity
        if byteCount > 0 {
            let raw = heap.allocate(byteCount: byteCount, alignment: MemoryLayout<Element>.alignment,
                                    noscan: _isPOD(Element.self))
            base = raw.bindMemory(to: Element.self, capacity: capacity)
            owned = true
        } else {
            // No memory: any non-null, aligned address serves zero-sized accesses.
            base = UnsafeMutablePointer(bitPattern: MemoryLayout<Element>.alignment)!
            owned = false
        }
    }

    deinit {
        if !_isPOD(Element.self) { base.deinitialize(count: count) }
        if owned { heap.deallocate(UnsafeMutableRawPointer(base)) }
    }
}

/// An array whose capacity grows exactly as Go's `append` grows a slice, with
/// its elements in memory from GoHeap.
public struct GrowableArray<Element> {
    @usableFromInline var _storage: _GrowableStorage<Element>?
    /// The heap this array allocates from, for life; nil stands for Heap.shared.
    @usableFromInline var _heapRef: Heap?

    /// Go's element size for `Element`: its stride, or 0 for zero-sized types.
    @inlinable
    public static var elementSize: Int {
        MemoryLayout<Element>.size == 0 ? 0 : MemoryLayout<Element>.stride
    }

    /// An empty array with no storage, like a nil slice.
    @inlinable
    public init() {
        _storage = nil
        _heapRef = nil
    }

    /// An empty array with no storage, like a nil slice, whose elements will
    /// live in `heap` (for the array's whole life, whatever drops its storage).
    @inlinable
    public init(heap: Heap = .shared) {
        _storage = nil
        _heapRef = Self._reference(to: heap)
    }

    /// Like `make([]T, 0, capacity)`: exactly `capacity`, no rounding.
    public init(capacity: Int, heap: Heap = .shared) {
        let bytes = SliceGrowth.makeBytes(count: capacity, elementSize: Self.elementSize)
        _storage = _GrowableStorage(heap: heap, capacity: capacity, byteCount: bytes)
        _heapRef = Self._reference(to: heap)
    }

    /// What the struct keeps for `heap`: nil for the shared heap.
    @inlinable @inline(__always)
    static func _reference(to heap: Heap) -> Heap? { heap === Heap.shared ? nil : heap }

    /// Like `make([]T, count)`: `count` copies of `value`, capacity exactly `count`.
    public init(repeating value: Element, count: Int) {
        self.init(repeating: value, count: count, heap: .shared)
    }

    /// Like `make([]T, count)`, in a heap of your choice.
    public init(repeating value: Element, count: Int, heap: Heap = .shared) {
        self.init(capacity: count, heap: heap)
        let s = _storage!
        s.base.initialize(repeating: value, count: count)
        s.count = count
    }

    // MARK: size

    @inlinable
    public var count: Int { _storage?.count ?? 0 }

    /// The number of elements the current backing array holds.
    @inlinable
    public var capacity: Int { _storage?.capacity ?? 0 }

    /// How many times this array's storage grew (a copy keeps its source's history).
    public var growthCount: Int { _storage?.growths ?? 0 }

    /// Bytes moved from old backing arrays into new ones by growth.
    public var bytesCopied: Int { _storage?.bytesCopied ?? 0 }

    /// The heap the elements live in: the one the array was created with, for life.
    @inlinable
    public var heap: Heap { _heapRef ?? .shared }

    // MARK: growth

    /// Ensures unique storage with room for `needed` elements; grows through
    /// the growth core when the capacity is too small.
    @inlinable @inline(__always)
    mutating func _reserve(_ needed: Int) {
        if _slowPath(!isKnownUniquelyReferenced(&_storage) || _storage!.capacity < needed) {
            _prepareSlow(needed: needed)
        }
    }

    @usableFromInline @inline(never)
    mutating func _prepareSlow(needed: Int) {
        let cap = capacity
        if needed > cap {
            _grow(needed: needed, gapAt: count, gapCount: 0)
        } else if !isKnownUniquelyReferenced(&_storage) {
            _copyUnique()
        }
    }

    /// Replaces the storage by a copy with the same capacity.
    @usableFromInline
    mutating func _copyUnique() {
        guard let old = _storage else { return }
        let bytes = SliceGrowth.makeBytes(count: old.capacity, elementSize: Self.elementSize)
        let s = _GrowableStorage<Element>(heap: heap, capacity: old.capacity, byteCount: bytes)
        if Self.elementSize > 0 { s.base.initialize(from: old.base, count: old.count) }
        s.count = old.count
        s.growths = old.growths
        s.bytesCopied = old.bytesCopied
        _storage = s
    }

    /// Grows to Go's capacity for `needed` elements. The existing elements keep
    /// their order, except that `gapCount` uninitialized slots are left at
    /// `gapAt` (for insertion); the new count is count + gapCount. The caller
    /// fills the gap.
    @usableFromInline
    mutating func _grow(needed: Int, gapAt: Int, gapCount: Int) {
        // Asked before `old` holds a second reference.
        let unique = isKnownUniquelyReferenced(&_storage)
        let old = _storage
        let oldCount = old?.count ?? 0
        let oldCap = old?.capacity ?? 0
        let size = Self.elementSize
        let d = SliceGrowth.grow(oldCapacity: oldCap, needed: needed, elementSize: size)
        let heap = self.heap
        if let old, gapCount == 0, gapAt == oldCount, old.owned,
           oldCap * size >= Self._reallocateMinimumBytes, _isBitwiseTakable(Element.self), unique,
           let p = Self._reallocate(heap, old.base, byteCount: d.byteCount) {
            // The block grew in place or its pages moved: the elements are
            // where they were relative to the base, nothing was copied twice.
            old.base = p.bindMemory(to: Element.self, capacity: d.capacity)
            old.capacity = d.capacity
            old.growths += 1
            old.bytesCopied += oldCount * size
            SliceGrowth.report(SliceGrowthEvent(
                elementSize: size, oldLength: oldCount, oldCapacity: oldCap, neededLength: needed,
                newCapacity: d.capacity, byteCount: d.byteCount, bytesCopied: oldCount * size,
                path: heap.path(forByteCount: d.byteCount, noscan: _isPOD(Element.self))))
            return
        }
        let s = _GrowableStorage<Element>(heap: heap, capacity: d.capacity, byteCount: d.byteCount)
        if let old, size == 0 {
            // Zero-sized values occupy no memory: nothing to move or copy.
            s.growths = old.growths
            s.bytesCopied = old.bytesCopied
            if unique { old.count = 0 }
        } else if let old {
            if unique {
                s.base.moveInitialize(from: old.base, count: gapAt)
                (s.base + gapAt + gapCount).moveInitialize(from: old.base + gapAt, count: oldCount - gapAt)
                old.count = 0
            } else {
                s.base.initialize(from: old.base, count: gapAt)
                (s.base + gapAt + gapCount).initialize(from: old.base + gapAt, count: oldCount - gapAt)
            }
            s.growths = old.growths
            s.bytesCopied = old.bytesCopied
        }
        s.count = oldCount + gapCount
        s.growths += 1
        s.bytesCopied += oldCount * size
        _storage = s
        SliceGrowth.report(SliceGrowthEvent(
            elementSize: size, oldLength: oldCount, oldCapacity: oldCap, neededLength: needed,
            newCapacity: d.capacity, byteCount: d.byteCount, bytesCopied: oldCount * size,
            path: d.byteCount > 0 ? heap.path(forByteCount: d.byteCount, noscan: _isPOD(Element.self)) : nil))
    }

    /// Backing arrays from this size up (page runs) grow through
    /// `_reallocate` when it is available.
    @usableFromInline static var _reallocateMinimumBytes: Int { 32 << 10 }

    /// Resizes a backing array without holding the old and the new one at
    /// once (issue 13: a growth that allocates, copies and frees keeps both
    /// resident during the copy, 2x the old array, which puts GrowableArray's
    /// peak RSS above Array's for large arrays whatever GoHeap does with the
    /// freed block). Returns nil when the heap cannot, and the caller
    /// allocates and copies as before. The capacity is decided by
    /// SliceGrowth as before; only how the bytes get there changes.
    ///
    /// GoHeap's reallocate grows a page run in place when the pages after it
    /// are free, and otherwise moves the bytes itself.
    @usableFromInline
    static func _reallocate(_ heap: Heap, _ base: UnsafeMutablePointer<Element>, byteCount: Int) -> UnsafeMutableRawPointer? {
        heap.reallocate(UnsafeMutableRawPointer(base), byteCount: byteCount,
                        alignment: MemoryLayout<Element>.alignment, noscan: _isPOD(Element.self))
    }

    // MARK: Go's append forms

    /// `append(s, x)`: grows (once) only when the array is full.
    @inlinable
    public mutating func append(_ newElement: __owned Element) {
        let c = count
        _reserve(c + 1)
        let s = _storage.unsafelyUnwrapped
        (s.base + c).initialize(to: newElement)
        s.count = c + 1
    }

    /// `append(s, xs...)`: one growth decision for the whole batch.
    @inlinable
    public mutating func append<C: Collection>(contentsOf newElements: __owned C) where C.Element == Element {
        let k = newElements.count
        if k == 0 { return }
        let c = count
        _reserve(c + k)
        let s = _storage.unsafelyUnwrapped
        let copied: Void? = Self.elementSize == 0 ? nil : newElements.withContiguousStorageIfAvailable { buf in
            (s.base + c).initialize(from: buf.baseAddress!, count: k)
        }
        if copied == nil {
            var i = c
            for e in newElements {
                (s.base + i).initialize(to: e)
                i += 1
            }
        }
        s.count = c + k
    }

    /// Appends a sequence whose length is not known up front: it is gathered
    /// first, so the array still grows once for the batch.
    @inlinable
    public mutating func append<S: Sequence>(contentsOf newElements: __owned S) where S.Element == Element {
        if let done: Void = newElements.withContiguousStorageIfAvailable({ self.append(contentsOf: $0) }) {
            return done
        }
        append(contentsOf: Array(newElements))
    }

    /// Makes room for at least `minimumCapacity` elements. A growth it causes
    /// follows the Go rule (as `append(s, make([]T, n - len(s))...)` would), so
    /// the capacity may end up larger than asked.
    public mutating func reserveCapacity(_ minimumCapacity: Int) {
        if minimumCapacity > capacity { _grow(needed: minimumCapacity, gapAt: count, gapCount: 0) }
    }

    // MARK: raw access

    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        guard let s = _storage else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        return try withExtendedLifetime(s) { try body(UnsafeBufferPointer(start: s.base, count: s.count)) }
    }

    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<Element>) throws -> R
    ) rethrows -> R {
        guard _storage != nil else {
            var empty = UnsafeMutableBufferPointer<Element>(start: nil, count: 0)
            return try body(&empty)
        }
        _reserve(count)
        let s = _storage!
        var buf = UnsafeMutableBufferPointer(start: s.base, count: s.count)
        let result = try body(&buf)
        precondition(buf.baseAddress == s.base && buf.count == s.count,
                     "GrowableArray.withUnsafeMutableBufferPointer: the buffer must not be replaced")
        return result
    }
}
