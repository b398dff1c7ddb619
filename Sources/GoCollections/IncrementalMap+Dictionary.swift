// IncrementalMap+Dictionary: Dictionary's key-based API, on Go's semantics.
//
// Design note: every write by key is one of Go's two writes, mapassign
// (insert or update) or mapdelete, with the evacuation work Go does first; so
// a growth starts only when a new key would overload the table, and drains
// within as many writes as it has old buckets, whichever API the writes came
// through. The two subscripts' _modify accessors find the entry once (one
// hash, one chain scan) and yield the value in place: subscript(key:) moves
// it out into an Optional and back (Dictionary does the same), and
// subscript(key:default:) yields the slot itself, inserting the default first
// if needed. So m[k]!.append(x) and m[k, default: []].append(x) mutate the
// stored array without copying it. A key that was absent and stays absent
// through subscript(key:)'s _modify inserts nothing (only the evacuation work
// is done, as a write).
//
// Maps built from a map (filter, mapValues, compactMapValues, merging) live
// in their source's heap, and are built the way Go code would build them:
// make(map, len(m)) for mapValues, a plain make for the others. The other
// initializers take a heap, Heap.shared by default; the literal uses
// Heap.shared and, like Go's, is sized for its entries.

import GoHeap

extension IncrementalMap {
    /// The value for `key`, or nil. Reading is a lookup (Go's mapaccess): it
    /// reads old buckets not yet evacuated and does no evacuation work.
    /// Assigning nil deletes the key.
    @inlinable
    public subscript(key: Key) -> Value? {
        get {
            // Optional chaining on the stored reference borrows it: no
            // retain and release around the lookup (which, as atomic
            // read-modify-writes, would also keep lookups from overlapping
            // their cache misses).
            _storage?.lookup(key)
        }
        set {
            if let v = newValue {
                _makeUnique()
                _ = _storage!.assign(key, v)
            } else {
                removeValue(forKey: key)
            }
        }
        _modify {
            // The storage is reached through the stored reference each time
            // (a borrow, no retain and release); self owns it and is
            // exclusively accessed across the yield.
            _makeUnique()
            let h = _storage!.hash(key)
            let found = _storage!.findForWrite(key, hash: h)
            var value: Value? = nil
            if let f = found { value = _storage!.valuePtr(f.bucket, f.slot).move() }
            defer { _storage!.finishModify(key, hash: h, found: found, value: &value) }
            yield &value
        }
    }

    /// The value for `key`, or `defaultValue()`. Mutating through it inserts
    /// the default first if the key is absent (Go's m[k] = f(m[k])), then
    /// mutates the stored value in place.
    @inlinable
    public subscript(key: Key, default defaultValue: @autoclosure () -> Value) -> Value {
        get { self[key] ?? defaultValue() }
        _modify {
            _makeUnique()
            // Calls through the stored reference borrow it: no retain and
            // release (atomic read-modify-writes) around the write. Self
            // owns the storage and is exclusively accessed across the yield.
            let (bk, i, inserted) = _storage!.assignSlot(key, hash: _storage!.hash(key))
            let vp = _storage!.valuePtr(bk, i)
            if inserted { vp.initialize(to: defaultValue()) }
            yield &vp.pointee
        }
    }

    /// Inserts or replaces; returns the old value if there was one.
    @discardableResult
    @inlinable
    public mutating func updateValue(_ value: __owned Value, forKey key: Key) -> Value? {
        _makeUnique()
        return _storage!.assign(key, value)
    }

    /// Removes a key (Go's delete); returns its value if it was present.
    @discardableResult
    @inlinable
    public mutating func removeValue(forKey key: Key) -> Value? {
        guard _storage != nil, count > 0 else { return nil }
        _makeUnique()
        return _storage!.remove(key)
    }

    // MARK: merging

    /// Inserts `value` for `key`, or combines it with the present value.
    @inlinable
    mutating func _merge(_ key: Key, _ value: __owned Value,
                         _ combine: (Value, Value) throws -> Value) rethrows {
        _makeUnique()
        let (bk, i, inserted) = _storage!.assignSlot(key, hash: _storage!.hash(key))
        let vp = _storage!.valuePtr(bk, i)
        if inserted {
            vp.initialize(to: value)
        } else {
            vp.pointee = try combine(vp.pointee, value)
        }
    }

    /// Merges key-value pairs; `combine` gets the present and the new value
    /// of a key that is in both.
    @inlinable
    public mutating func merge<S: Sequence>(
        _ other: __owned S, uniquingKeysWith combine: (Value, Value) throws -> Value
    ) rethrows where S.Element == (Key, Value) {
        for (k, v) in other { try _merge(k, v, combine) }
    }

    /// Merges another map; `combine` gets the present and the new value of a
    /// key that is in both.
    @inlinable
    public mutating func merge(
        _ other: __owned IncrementalMap, uniquingKeysWith combine: (Value, Value) throws -> Value
    ) rethrows {
        for (k, v) in other { try _merge(k, v, combine) }
    }

    /// Merges a dictionary; `combine` gets the present and the new value of a
    /// key that is in both.
    @inlinable
    public mutating func merge(
        _ other: __owned [Key: Value], uniquingKeysWith combine: (Value, Value) throws -> Value
    ) rethrows {
        for (k, v) in other { try _merge(k, v, combine) }
    }

    /// A copy of this map with key-value pairs merged in.
    @inlinable
    public func merging<S: Sequence>(
        _ other: __owned S, uniquingKeysWith combine: (Value, Value) throws -> Value
    ) rethrows -> IncrementalMap where S.Element == (Key, Value) {
        var r = self
        try r.merge(other, uniquingKeysWith: combine)
        return r
    }

    /// A copy of this map with another map merged in.
    @inlinable
    public func merging(
        _ other: __owned IncrementalMap, uniquingKeysWith combine: (Value, Value) throws -> Value
    ) rethrows -> IncrementalMap {
        var r = self
        try r.merge(other, uniquingKeysWith: combine)
        return r
    }

    /// A copy of this map with a dictionary merged in.
    @inlinable
    public func merging(
        _ other: __owned [Key: Value], uniquingKeysWith combine: (Value, Value) throws -> Value
    ) rethrows -> IncrementalMap {
        var r = self
        try r.merge(other, uniquingKeysWith: combine)
        return r
    }

    // MARK: derived maps

    /// The same keys with transformed values, in this map's heap, built as
    /// `m2 := make(map[K]T, len(m)); for k, v := range m { m2[k] = f(v) }`.
    @inlinable
    public func mapValues<T>(_ transform: (Value) throws -> T) rethrows -> IncrementalMap<Key, T> {
        var r: IncrementalMap<Key, T> = _empty(minimumCapacity: count)
        guard let s = _storage, count > 0 else { return r }
        let rs = r.uniqueStorage()
        var it = _MapStorage<Key, Value>.Iterator(storage: s)
        while let (bk, i) = it.nextEntry() {
            _ = rs.assign(s.keyPtr(bk, i).pointee, try transform(s.valuePtr(bk, i).pointee))
        }
        return r
    }

    /// The keys whose transformed value is not nil, with that value, in this
    /// map's heap.
    @inlinable
    public func compactMapValues<T>(_ transform: (Value) throws -> T?) rethrows -> IncrementalMap<Key, T> {
        var r: IncrementalMap<Key, T> = _empty()
        guard let s = _storage, count > 0 else { return r }
        var it = _MapStorage<Key, Value>.Iterator(storage: s)
        while let (bk, i) = it.nextEntry() {
            if let t = try transform(s.valuePtr(bk, i).pointee) {
                r.updateValue(t, forKey: s.keyPtr(bk, i).pointee)
            }
        }
        return r
    }

    /// The entries that satisfy `isIncluded`, as a map in this map's heap.
    @inlinable
    public func filter(_ isIncluded: (Element) throws -> Bool) rethrows -> IncrementalMap {
        var r: IncrementalMap = _empty()
        guard let s = _storage, count > 0 else { return r }
        var it = _MapStorage<Key, Value>.Iterator(storage: s)
        while let (bk, i) = it.nextEntry() {
            let k = s.keyPtr(bk, i).pointee, v = s.valuePtr(bk, i).pointee
            if try isIncluded((k, v)) { r.updateValue(v, forKey: k) }
        }
        return r
    }

    // MARK: initializers

    /// A map of the given pairs; traps on a duplicate key. Sized like
    /// make(map, n) for the sequence's underestimated count.
    @inlinable
    public init<S: Sequence>(uniqueKeysWithValues keysAndValues: __owned S, heap: Heap = .shared)
    where S.Element == (Key, Value) {
        let n = keysAndValues.underestimatedCount
        self = n > 0 ? IncrementalMap(minimumCapacity: n, heap: heap) : IncrementalMap(heap: heap)
        for (k, v) in keysAndValues {
            let s = uniqueStorage()
            let (bk, i, inserted) = s.assignSlot(k, hash: s.hash(k))
            precondition(inserted, "Duplicate values for key: '\(k)'")
            s.valuePtr(bk, i).initialize(to: v)
        }
    }

    /// A map of the given pairs; `combine` resolves duplicate keys.
    @inlinable
    public init<S: Sequence>(
        _ keysAndValues: __owned S, uniquingKeysWith combine: (Value, Value) throws -> Value,
        heap: Heap = .shared
    ) rethrows where S.Element == (Key, Value) {
        self.init(heap: heap)
        try merge(keysAndValues, uniquingKeysWith: combine)
    }

    /// Groups `values` by key: each key maps to the values it was computed
    /// from, in their order.
    @inlinable
    public init<S: Sequence>(
        grouping values: __owned S, by keyForValue: (S.Element) throws -> Key, heap: Heap = .shared
    ) rethrows where Value == [S.Element] {
        self.init(heap: heap)
        for v in values { self[try keyForValue(v), default: []].append(v) }
    }
}

extension _MapStorage {
    /// The second half of subscript(key:)'s _modify: puts the value back,
    /// deletes the entry (nil), or inserts the key (a value for an absent
    /// key), without searching again unless a new key must be placed.
    @inlinable
    func finishModify(_ key: Key, hash h: UInt,
                      found: (first: UnsafeMutableRawPointer, bucket: UnsafeMutableRawPointer, slot: Int)?,
                      value: inout Value?) {
        if let (first, bk, i) = found {
            if let v = value.take() {
                valuePtr(bk, i).initialize(to: v)
            } else {
                destroyEntryWithoutValue(bk, i)
                clearSlot(first: first, bucket: bk, slot: i)
            }
        } else if let v = value.take() {
            let (bk, i, _) = assignSlot(key, hash: h, growWorkDone: true)
            valuePtr(bk, i).initialize(to: v)
        }
    }
}

extension IncrementalMap: ExpressibleByDictionaryLiteral {
    /// Like a Go map literal: sized for its entries; a duplicate key traps.
    public init(dictionaryLiteral elements: (Key, Value)...) {
        self.init(minimumCapacity: elements.count)
        let s = uniqueStorage()
        for (k, v) in elements {
            let (bk, i, inserted) = s.assignSlot(k, hash: s.hash(k))
            precondition(inserted, "IncrementalMap literal contains duplicate keys")
            s.valuePtr(bk, i).initialize(to: v)
        }
    }
}

extension IncrementalMap: Equatable where Value: Equatable {
    /// Same keys with equal values, whatever the tables' shapes.
    @inlinable
    public static func == (a: Self, b: Self) -> Bool {
        guard a.count == b.count else { return false }
        if a._storage === b._storage { return true }
        guard let s = a._storage else { return true }
        var it = _MapStorage<Key, Value>.Iterator(storage: s)
        while let (bk, i) = it.nextEntry() {
            guard let w = b[s.keyPtr(bk, i).pointee], w == s.valuePtr(bk, i).pointee else { return false }
        }
        return true
    }
}

extension IncrementalMap: Hashable where Value: Hashable {
    /// Independent of the order and of the table's shape: equal maps hash
    /// equal (a commutative combination of the entries' hashes).
    public func hash(into hasher: inout Hasher) {
        var commutative = 0
        for (k, v) in self {
            var h = Hasher()
            h.combine(k)
            h.combine(v)
            commutative ^= h.finalize()
        }
        hasher.combine(count)
        hasher.combine(commutative)
    }
}

extension IncrementalMap: @unchecked Sendable where Key: Sendable, Value: Sendable {}
