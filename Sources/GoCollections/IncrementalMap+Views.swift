// IncrementalMap+Views: the keys and values collections.
//
// Design note: as Dictionary's, both views hold the map's storage (no copy),
// share its Index type and traversal order, and have an O(1) count. Keys is
// read-only; it answers contains and firstIndex(of:) by hashing, not by a
// scan. Values is a MutableCollection: map.values[i] mutates the stored value
// in place. The map's `values` accessor lends its storage to the view for the
// mutation (the map holds nothing meanwhile), so the storage stays uniquely
// referenced and is not copied; a view that shares its storage copies it on
// its first write, keeping the structure and the age, so indices stay valid.
// Mutating a value is not a structural change: indices stay valid.

import GoHeap

extension IncrementalMap {
    /// The keys, in the map's traversal order.
    @inlinable
    public var keys: Keys { Keys(_storage) }

    /// The values, in the map's traversal order; mutable in place through an index.
    @inlinable
    public var values: Values {
        get { Values(_storage) }
        _modify {
            var view = Values(_storage)
            _storage = nil
            defer { _storage = view._storage }
            yield &view
        }
    }

    /// A view of a map's keys.
    public struct Keys: Collection, Equatable {
        public typealias Element = Key
        public typealias Index = IncrementalMap.Index
        @usableFromInline let _storage: _MapStorage<Key, Value>?

        @inlinable init(_ storage: _MapStorage<Key, Value>?) { _storage = storage }

        @inlinable public var startIndex: Index { _MapIndexing.start(_storage) }
        @inlinable public var endIndex: Index { _MapIndexing.end(_storage) }
        @inlinable public func index(after i: Index) -> Index { _MapIndexing.after(_storage, i) }
        @inlinable public var count: Int { _storage?.count ?? 0 }
        @inlinable public var isEmpty: Bool { count == 0 }
        @inlinable public var underestimatedCount: Int { count }

        @inlinable
        public subscript(position: Index) -> Key {
            let (s, bk, i) = _MapIndexing.entry(_storage, position)
            return s.keyPtr(bk, i).pointee
        }

        /// contains(_:) by lookup.
        @inlinable
        public func _customContainsEquatableElement(_ key: Key) -> Bool? {
            guard let s = _storage else { return false }
            return s.find(key) != nil
        }

        /// firstIndex(of:) by lookup.
        @inlinable
        public func _customIndexOfEquatableElement(_ key: Key) -> Index?? {
            guard let s = _storage, let c = s.place(of: key) else { return .some(nil) }
            return .some(Index(age: s.age, visit: c.visit, depth: c.depth, slot: c.slot))
        }

        /// The same set of keys (Dictionary.Keys compares this way too).
        @inlinable
        public static func == (a: Keys, b: Keys) -> Bool {
            if a._storage === b._storage { return true }
            guard a.count == b.count else { return false }
            for k in a where !b.contains(k) { return false }
            return true
        }

        public struct Iterator: IteratorProtocol {
            @usableFromInline var _inner: _MapStorage<Key, Value>.Iterator?

            @inlinable init(_ storage: _MapStorage<Key, Value>?) {
                _inner = storage.map { _MapStorage.Iterator(storage: $0) }
            }

            @inlinable
            public mutating func next() -> Key? {
                guard let (bk, i) = _inner?.nextEntry() else { return nil }
                return _inner.unsafelyUnwrapped.storage.keyPtr(bk, i).pointee
            }
        }

        @inlinable public func makeIterator() -> Iterator { Iterator(_storage) }
    }

    /// A view of a map's values, mutable in place.
    public struct Values: MutableCollection {
        public typealias Element = Value
        public typealias Index = IncrementalMap.Index
        @usableFromInline var _storage: _MapStorage<Key, Value>?

        @inlinable init(_ storage: _MapStorage<Key, Value>?) { _storage = storage }

        @inlinable public var startIndex: Index { _MapIndexing.start(_storage) }
        @inlinable public var endIndex: Index { _MapIndexing.end(_storage) }
        @inlinable public func index(after i: Index) -> Index { _MapIndexing.after(_storage, i) }
        @inlinable public var count: Int { _storage?.count ?? 0 }
        @inlinable public var isEmpty: Bool { count == 0 }
        @inlinable public var underestimatedCount: Int { count }

        @inlinable
        public subscript(position: Index) -> Value {
            get {
                let (s, bk, i) = _MapIndexing.entry(_storage, position)
                return s.valuePtr(bk, i).pointee
            }
            _modify {
                if _storage != nil && !isKnownUniquelyReferenced(&_storage) { _storage = _storage!.copy() }
                let (s, bk, i) = _MapIndexing.entry(_storage, position)
                yield &s.valuePtr(bk, i).pointee
            }
        }

        public struct Iterator: IteratorProtocol {
            @usableFromInline var _inner: _MapStorage<Key, Value>.Iterator?

            @inlinable init(_ storage: _MapStorage<Key, Value>?) {
                _inner = storage.map { _MapStorage.Iterator(storage: $0) }
            }

            @inlinable
            public mutating func next() -> Value? {
                guard let (bk, i) = _inner?.nextEntry() else { return nil }
                return _inner.unsafelyUnwrapped.storage.valuePtr(bk, i).pointee
            }
        }

        @inlinable public func makeIterator() -> Iterator { Iterator(_storage) }
    }
}

extension IncrementalMap.Keys: @unchecked Sendable where Key: Sendable, Value: Sendable {}
extension IncrementalMap.Values: @unchecked Sendable where Key: Sendable, Value: Sendable {}
extension IncrementalMap.Keys.Iterator: @unchecked Sendable where Key: Sendable, Value: Sendable {}
extension IncrementalMap.Values.Iterator: @unchecked Sendable where Key: Sendable, Value: Sendable {}
