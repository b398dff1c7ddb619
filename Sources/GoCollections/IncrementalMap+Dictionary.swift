// IncrementalMap+Dictionary: Dictionary's key-based API, on Go's semantics.
//
// Design note: every write by key is one of Go's two writes, mapassign
// (insert or update) or mapdelete, with the evacuation work Go does first; so
// a growth starts only when a new key would overload the table, and drains
// within as many writes as it has old buckets, whichever API the writes came
// through. The literal uses Heap.shared and, like Go's, is sized for its
// entries.

import GoHeap

extension IncrementalMap {
    /// The value for `key`, or nil. Reading is a lookup (Go's mapaccess): it
    /// reads old buckets not yet evacuated and does no evacuation work.
    /// Assigning nil deletes the key.
    @inlinable
    public subscript(key: Key) -> Value? {
        get {
            guard let s = _storage, let (bk, i) = s.find(key) else { return nil }
            return s.valuePtr(bk, i).pointee
        }
        set {
            if let v = newValue {
                _ = uniqueStorage().assign(key, v)
            } else {
                removeValue(forKey: key)
            }
        }
    }

    /// Inserts or replaces; returns the old value if there was one.
    @discardableResult
    @inlinable
    public mutating func updateValue(_ value: __owned Value, forKey key: Key) -> Value? {
        uniqueStorage().assign(key, value)
    }

    /// Removes a key (Go's delete); returns its value if it was present.
    @discardableResult
    @inlinable
    public mutating func removeValue(forKey key: Key) -> Value? {
        guard _storage != nil, count > 0 else { return nil }
        return uniqueStorage().remove(key)
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

extension IncrementalMap: @unchecked Sendable where Key: Sendable, Value: Sendable {}
