// GrowableArray+Collection: Array's collection API on Go's growth.
//
// Design note: GrowableArray is a RandomAccessCollection, MutableCollection
// and RangeReplaceableCollection with Int indices from 0, like Array. Every
// operation that needs room goes through _grow, so any growth (append,
// insert, replaceSubrange, reserveCapacity, the RangeReplaceableCollection
// algorithms built on them) gives Go's capacity. Operations that build a new
// array from this one (filter, and the protocol algorithms that start from
// `self`) allocate from this array's heap; the initializers take a heap,
// Heap.shared by default (the literal and the protocol's own initializers use
// Heap.shared). Contiguous storage is offered to the standard library's
// algorithms, as Array offers its buffer.

import GoHeap

extension GrowableArray: RandomAccessCollection, MutableCollection {
    public typealias Index = Int
    public typealias Indices = Range<Int>

    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { count }

    @inlinable
    public subscript(position: Int) -> Element {
        get {
            precondition(position >= 0 && position < count, "GrowableArray index \(position) out of range 0..<\(count)")
            return _storage.unsafelyUnwrapped.base[position]
        }
        _modify {
            precondition(position >= 0 && position < count, "GrowableArray index \(position) out of range 0..<\(count)")
            _reserve(count)
            yield &_storage.unsafelyUnwrapped.base[position]
        }
    }
}

extension GrowableArray: RangeReplaceableCollection {
    public mutating func replaceSubrange<C: Collection>(_ subrange: Range<Int>, with newElements: __owned C)
    where C.Element == Element {
        precondition(subrange.lowerBound >= 0 && subrange.upperBound <= count,
                     "GrowableArray.replaceSubrange: range \(subrange) out of bounds 0..<\(count)")
        let newCount = newElements.count
        let removed = subrange.count
        let needed = count - removed + newCount
        if needed > capacity {
            // Grow first with a gap where the new elements go, then drop the
            // replaced ones (which now sit at the start of the gap's tail).
            let lower = subrange.lowerBound
            _grow(needed: needed, gapAt: lower, gapCount: newCount)
            let s = _storage!
            let replacedStart = lower + newCount
            (s.base + replacedStart).deinitialize(count: removed)
            (s.base + replacedStart).moveInitialize(from: s.base + replacedStart + removed,
                                                    count: s.count - replacedStart - removed)
            s.count -= removed
            var i = lower
            for e in newElements { (s.base + i).initialize(to: e); i += 1 }
            return
        }
        if needed == 0 && _storage == nil { return }
        _reserve(count)
        let s = _storage!
        let lower = subrange.lowerBound, upper = subrange.upperBound
        (s.base + lower).deinitialize(count: removed)
        if newCount != removed {
            (s.base + lower + newCount).moveInitialize(from: s.base + upper, count: s.count - upper)
        }
        var i = lower
        for e in newElements { (s.base + i).initialize(to: e); i += 1 }
        s.count = needed
    }

    /// Removes everything; with `keepingCapacity` the backing array stays.
    /// Either way the array keeps its heap.
    public mutating func removeAll(keepingCapacity keepCapacity: Bool = false) {
        if !keepCapacity || _storage == nil {
            _storage = nil
            return
        }
        if isKnownUniquelyReferenced(&_storage) {
            let s = _storage!
            s.base.deinitialize(count: s.count)
            s.count = 0
        } else {
            let old = _storage!
            let bytes = SliceGrowth.makeBytes(count: old.capacity, elementSize: Self.elementSize)
            _storage = _GrowableStorage(heap: heap, capacity: old.capacity, byteCount: bytes)
        }
    }

    @inlinable
    @discardableResult
    public mutating func removeLast() -> Element {
        precondition(count > 0, "GrowableArray.removeLast: the array is empty")
        _reserve(count)
        let s = _storage.unsafelyUnwrapped
        s.count -= 1
        return (s.base + s.count).move()
    }
}

extension GrowableArray: ExpressibleByArrayLiteral {
    /// Like `[]T{a, b, c}`: capacity exactly the literal's length.
    public init(arrayLiteral elements: Element...) {
        self.init(capacity: elements.count)
        append(contentsOf: elements)
    }
}

extension GrowableArray: Equatable where Element: Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        a.count == b.count && (a._storage === b._storage || a.elementsEqual(b))
    }
}

extension GrowableArray: Hashable where Element: Hashable {
    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for e in self { hasher.combine(e) }
    }
}

extension GrowableArray: @unchecked Sendable where Element: Sendable {}

extension GrowableArray {
    /// The elements of a sequence, in `heap`: one growth from empty for the
    /// whole sequence, as `append([]T(nil), xs...)` makes in Go.
    @inlinable
    public init<S: Sequence>(_ elements: __owned S, heap: Heap = .shared) where S.Element == Element {
        self.init(heap: heap)
        append(contentsOf: elements)
    }

    /// The elements of a sequence, in Heap.shared.
    @inlinable
    public init<S: Sequence>(_ elements: __owned S) where S.Element == Element {
        self.init(elements, heap: .shared)
    }

    /// The elements that satisfy `isIncluded`, in a new array on this array's
    /// heap, grown one append at a time as Go's filtering loop grows its slice.
    @inlinable
    public func filter(_ isIncluded: (Element) throws -> Bool) rethrows -> GrowableArray {
        var r = GrowableArray(heap: heap)
        for e in self where try isIncluded(e) { r.append(e) }
        return r
    }

    @inlinable
    public func withContiguousStorageIfAvailable<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R? {
        try withUnsafeBufferPointer(body)
    }

    @inlinable
    public mutating func withContiguousMutableStorageIfAvailable<R>(
        _ body: (inout UnsafeMutableBufferPointer<Element>) throws -> R
    ) rethrows -> R? {
        try withUnsafeMutableBufferPointer(body)
    }
}
