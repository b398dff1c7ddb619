// IncrementalMap+Collection: indices and iteration.
//
// Design note: IncrementalMap is a Collection, as Dictionary is. Dictionary's
// API leans on indices in places (index(forKey:), subscript(position:),
// remove(at:), values[i] mutated in place, keys and values as collections
// with an O(1) count), and generic code expects a Collection (first,
// firstIndex(where:), sorted, randomElement, indices). The price is order:
// Collection needs every traversal made between two mutations to visit the
// elements in one order, its indices' order, while Go's range picks a new
// random start for every loop. IncrementalMap keeps the random start but draws
// it per *age* of the table (the storage's counter of structural changes:
// insert, delete, growth, evacuation), from a seed random per map and per
// process. So code still cannot depend on the order, which is what Go's
// randomization is for: it changes unpredictably with every insert or delete.
// Only traversals with no structural change between them agree, as
// Collection requires. Iteration (makeIterator) follows the indices' order.
//
// An Index is a place in the traversal (the visit number of a new bucket, the
// depth in the chain visited for it, the slot's ordinal) and the age it was
// made at. Like Dictionary.Index it is valid until the next structural change,
// and every use checks it: an index from another age or another map traps.
// Replacing a present key's value in place (through values[i], or by key while
// the map is not growing) is not a structural change; a write by key during a
// growth may evacuate buckets, which is, so treat writes by key as
// invalidating, as for Dictionary. A copy-on-write copy keeps the structure
// and the age, so indices survive it. index(after:) is amortized O(1) (it
// scans slots, as Go's iterator does, and walks the chain it resumes in);
// startIndex scans from the start, O(buckets) at worst, like Go's first
// iteration step. The iterator steps with chain pointers instead.

import GoHeap

extension IncrementalMap: Collection {
    public typealias Element = (key: Key, value: Value)

    /// A position in an IncrementalMap, valid until the map's next structural
    /// change (an insert or a delete; during a growth, any write by key).
    public struct Index: Comparable, Hashable, Sendable {
        @usableFromInline let _age: UInt64
        @usableFromInline let _visit: Int
        @usableFromInline let _depth: Int
        @usableFromInline let _slot: Int

        @inlinable
        init(age: UInt64, visit: Int, depth: Int, slot: Int) {
            _age = age
            _visit = visit
            _depth = depth
            _slot = slot
        }

        @inlinable
        public static func == (a: Index, b: Index) -> Bool {
            precondition(a._age == b._age, "IncrementalMap: comparing indices of different maps, or of one map before and after a change")
            return a._visit == b._visit && a._depth == b._depth && a._slot == b._slot
        }

        @inlinable
        public static func < (a: Index, b: Index) -> Bool {
            precondition(a._age == b._age, "IncrementalMap: comparing indices of different maps, or of one map before and after a change")
            return (a._visit, a._depth, a._slot) < (b._visit, b._depth, b._slot)
        }

        @inlinable
        public func hash(into hasher: inout Hasher) {
            hasher.combine(_visit)
            hasher.combine(_depth)
            hasher.combine(_slot)
        }
    }

    @inlinable public var startIndex: Index { _MapIndexing.start(_storage) }
    @inlinable public var endIndex: Index { _MapIndexing.end(_storage) }
    @inlinable public func index(after i: Index) -> Index { _MapIndexing.after(_storage, i) }
    @inlinable public var underestimatedCount: Int { count }

    /// The entry at `position`. O(1) for the usual short chains.
    @inlinable
    public subscript(position: Index) -> Element {
        let (s, bk, i) = _MapIndexing.entry(_storage, position)
        return (s.keyPtr(bk, i).pointee, s.valuePtr(bk, i).pointee)
    }

    /// The index of `key`'s entry, or nil. A lookup: no evacuation work.
    @inlinable
    public func index(forKey key: Key) -> Index? {
        guard let s = _storage, let c = s.place(of: key) else { return nil }
        return Index(age: s.age, visit: c.visit, depth: c.depth, slot: c.slot)
    }

    /// Removes and returns the entry at `index` (Go's delete of its key).
    @inlinable
    @discardableResult
    public mutating func remove(at index: Index) -> Element {
        let (s, bk, i) = _MapIndexing.entry(_storage, index)
        let key = s.keyPtr(bk, i).pointee
        let value = uniqueStorage().remove(key)!
        return (key, value)
    }

    /// Removes and returns the first entry in the traversal order, or nil.
    @inlinable
    public mutating func popFirst() -> Element? {
        isEmpty ? nil : remove(at: startIndex)
    }

    /// Iterates in the indices' order, from this age's random start.
    public struct Iterator: IteratorProtocol {
        @usableFromInline var _inner: _MapStorage<Key, Value>.Iterator?

        @inlinable init(_ storage: _MapStorage<Key, Value>?) {
            _inner = storage.map { _MapStorage.Iterator(storage: $0) }
        }

        @inlinable
        public mutating func next() -> Element? {
            guard let (k, v) = _inner?.next() else { return nil }
            return (k, v)
        }
    }

    @inlinable
    public func makeIterator() -> Iterator { Iterator(_storage) }
}

extension IncrementalMap.Iterator: @unchecked Sendable where Key: Sendable, Value: Sendable {}

/// Index arithmetic shared by the map and its keys and values views, which
/// hold the same storage.
@usableFromInline
enum _MapIndexing<Key: Hashable, Value> {
    @usableFromInline typealias Storage = _MapStorage<Key, Value>
    @usableFromInline typealias Index = IncrementalMap<Key, Value>.Index

    @inlinable
    static func start(_ storage: Storage?) -> Index {
        guard let s = storage else { return Index(age: 0, visit: 0, depth: 0, slot: 0) }
        var c = Storage.Cursor(visit: 0, depth: 0, slot: 0)
        let (start, offset) = s.rotation
        _ = s.advance(&c, start: start, offset: offset)
        return Index(age: s.age, visit: c.visit, depth: c.depth, slot: c.slot)
    }

    @inlinable
    static func end(_ storage: Storage?) -> Index {
        guard let s = storage else { return Index(age: 0, visit: 0, depth: 0, slot: 0) }
        return Index(age: s.age, visit: 1 << s.b, depth: 0, slot: 0)
    }

    @inlinable
    static func check(_ storage: Storage?, _ i: Index) -> Storage {
        guard let s = storage, s.age == i._age else {
            preconditionFailure("IncrementalMap: index is not valid for this map (the map changed since it was made, or it belongs to another map)")
        }
        return s
    }

    @inlinable
    static func after(_ storage: Storage?, _ i: Index) -> Index {
        let s = check(storage, i)
        precondition(i._visit < 1 << s.b, "IncrementalMap: cannot advance past endIndex")
        var c = Storage.Cursor(visit: i._visit, depth: i._depth, slot: i._slot + 1)
        let (start, offset) = s.rotation
        _ = s.advance(&c, start: start, offset: offset)
        return Index(age: s.age, visit: c.visit, depth: c.depth, slot: c.slot)
    }

    @inlinable
    static func entry(_ storage: Storage?, _ i: Index) -> (Storage, UnsafeMutableRawPointer, Int) {
        let s = check(storage, i)
        let (bk, slot) = s.entry(visit: i._visit, depth: i._depth, slot: i._slot)
        return (s, bk, slot)
    }
}
