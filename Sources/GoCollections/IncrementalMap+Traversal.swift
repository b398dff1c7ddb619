// IncrementalMap+Traversal: walking a table (teardown, structural copy,
// iteration in Go's randomized order), including tables caught mid-growth.
// See IncrementalMap.swift for the design.

import CShims
import GoHeap
#if canImport(Glibc)
import Glibc
#endif

extension _MapStorage {
    // MARK: teardown and copy

    @inlinable func destroyChain(_ first: UnsafeMutableRawPointer, array: UnsafeMutableRawPointer, allocated: Int) {
        var chain: UnsafeMutableRawPointer? = first
        while let c = chain {
            let th = tophash(c)
            for i in 0..<8 where th[i] >= minTopHash { destroyEntry(c, i) }
            let next = overflow(c)
            if c != first && isSeparate(c, array: array, allocated: allocated) { heap.deallocate(c) }
            chain = next
        }
    }

    /// A structural copy: same seed, B, buckets, chains and growth state.
    /// The copy keeps the age too: indices of the original stay valid in it.
    @inlinable func copy() -> _MapStorage {
        let s = _MapStorage(heap: heap, bucketShift: 0, seed: seed, iterationSeed: iterationSeed)
        s.age = age
        s.b = b
        s.count = count
        s.nevacuate = nevacuate
        s.sameSizeGrow = sameSizeGrow
        s.growths = growths
        s.insertsSinceGrowthStart = insertsSinceGrowthStart
        s.maxDrainInserts = maxDrainInserts
        if let cur = buckets {
            s.installNewArray(b)
            for i in 0..<(1 << b) where newBucketInUse(i) {
                copyChain(from: bucket(cur, i), to: bucket(s.buckets!, i), into: s, separate: false)
            }
        }
        if let old = oldBuckets {
            let (p, n, _) = makeBucketArray(oldB)
            s.oldBuckets = p
            s.oldAllocatedBuckets = n
            for i in 0..<(1 << oldB) {
                let src = bucket(old, i), dst = bucket(p, i)
                if isEvacuated(src) {
                    dst.copyMemory(from: src, byteCount: 8)  // the evacuation marks
                } else {
                    copyChain(from: src, to: dst, into: s, separate: true)
                }
            }
        }
        s.noverflow = noverflow
        return s
    }

    /// Copies one chain: tophash bytes verbatim, live entries copied, overflow
    /// buckets taken from the copy's preallocated ones (current table) or
    /// allocated on their own (old table).
    @inlinable func copyChain(from src: UnsafeMutableRawPointer, to dst: UnsafeMutableRawPointer,
                           into s: _MapStorage, separate: Bool) {
        var a = src, d = dst
        while true {
            d.copyMemory(from: a, byteCount: 8)
            let th = tophash(a)
            for i in 0..<8 where th[i] >= minTopHash {
                s.initializeEntry(d, i, keyPtr(a, i).pointee, valuePtr(a, i).pointee)
            }
            guard let next = overflow(a) else { return }
            if separate {
                let o = heap.allocateZeroed(byteCount: layout.size, alignment: max(8, MemoryLayout<Key>.alignment, MemoryLayout<Value>.alignment))
                s.separateOverflows &+= 1
                s.setOverflow(d, o)
                d = o
            } else {
                d = s.newOverflow(after: d)
            }
            a = next
        }
    }

    // MARK: traversal

    /// The traversal's start this age: a bucket and a slot offset (see the
    /// header's "Order").
    @inlinable var rotation: (start: Int, offset: Int) {
        let r = _mix64(iterationSeed &+ age &* 0x9E37_79B9_7F4A_7C15)
        return (Int(truncatingIfNeeded: r) & ((1 << b) - 1), Int(truncatingIfNeeded: r >> 61))
    }

    /// A place in the traversal order: the `visit`-th new bucket from the
    /// start, `depth` buckets down the chain visited for it, slot ordinal
    /// `slot` (the physical slot is (slot + offset) & 7). `chain`, when set,
    /// is the bucket at that depth, so an iterator steps without walking
    /// chains; indices keep only the three numbers.
    @usableFromInline struct Cursor {
        @usableFromInline var visit: Int
        @usableFromInline var depth: Int
        @usableFromInline var slot: Int
        @usableFromInline var chain: UnsafeMutableRawPointer? = nil
        @usableFromInline var fromOld = false
        /// The physical index of the new bucket visited.
        @usableFromInline var bucketIndex = 0

        @inlinable init(visit: Int, depth: Int, slot: Int) {
            self.visit = visit
            self.depth = depth
            self.slot = slot
        }
    }

    /// The chain visited for new bucket `j`: its old bucket while that is not
    /// evacuated (only the entries that belong to `j` are visited there), else
    /// its own chain. A new bucket is never read before its old one is
    /// evacuated: until then it may not even be cleared.
    @inlinable @inline(__always)
    func chainHead(_ j: Int) -> (bucket: UnsafeMutableRawPointer, fromOld: Bool) {
        if let old = oldBuckets {
            let ob = bucket(old, j & ((1 << oldB) - 1))
            if !isEvacuated(ob) { return (ob, true) }
        }
        return (bucket(buckets!, j), false)
    }

    /// The bucket `depth` links down the chain visited for new bucket `j`.
    @inlinable func chainBucket(_ j: Int, depth: Int) -> (bucket: UnsafeMutableRawPointer, fromOld: Bool) {
        var (bk, fromOld) = chainHead(j)
        for _ in 0..<depth {
            guard let n = overflow(bk) else { preconditionFailure("IncrementalMap: index is not valid for this map") }
            bk = n
        }
        return (bk, fromOld)
    }

    /// Moves `c` to the first entry at or after it in the traversal order.
    /// Returns false at the end, with `c` at the end position (visit 2^B).
    @inlinable func advance(_ c: inout Cursor, start: Int, offset: Int) -> Bool {
        let nb = 1 << b
        guard count > 0, buckets != nil else {
            c = Cursor(visit: nb, depth: 0, slot: 0)
            return false
        }
        while c.visit < nb {
            if c.chain == nil {
                c.bucketIndex = (start + c.visit) & (nb - 1)
                (c.chain, c.fromOld) = chainBucket(c.bucketIndex, depth: c.depth)
            }
            let bk = c.chain.unsafelyUnwrapped
            let th = tophash(bk)
            while c.slot < 8 {
                let i = (c.slot + offset) & 7
                if th[i] >= minTopHash {
                    // An old bucket of a doubling splits between two new
                    // ones: visit only what belongs to the new bucket.
                    if !c.fromOld || sameSizeGrow
                        || Int(truncatingIfNeeded: hash(keyPtr(bk, i).pointee) & UInt(nb - 1)) == c.bucketIndex {
                        return true
                    }
                }
                c.slot += 1
            }
            c.slot = 0
            if let n = overflow(bk) {
                c.chain = n
                c.depth += 1
            } else {
                c.chain = nil
                c.depth = 0
                c.visit += 1
            }
        }
        return false
    }

    /// The bucket and physical slot of the entry at a traversal place; traps
    /// if there is no entry there.
    @inlinable func entry(visit: Int, depth: Int, slot: Int) -> (bucket: UnsafeMutableRawPointer, slot: Int) {
        let nb = 1 << b
        precondition(visit >= 0 && visit < nb && depth >= 0 && slot >= 0 && slot < 8 && buckets != nil,
                     "IncrementalMap: index out of range")
        let (start, offset) = rotation
        let (bk, _) = chainBucket((start + visit) & (nb - 1), depth: depth)
        let i = (slot + offset) & 7
        precondition(tophash(bk)[i] >= minTopHash, "IncrementalMap: index is not valid for this map")
        return (bk, i)
    }

    /// The traversal place of `key`, if present.
    @inlinable func place(of key: Key) -> Cursor? {
        guard count > 0, buckets != nil else { return nil }
        let h = hash(key)
        let nb = 1 << b
        let j = Int(truncatingIfNeeded: h & UInt(nb - 1))
        let top = Self.top(h)
        var bk = chainHead(j).bucket
        var depth = 0
        while true {
            let th = tophash(bk)
            for i in 0..<8 {
                let t = th[i]
                if t == top && keyPtr(bk, i).pointee == key {
                    let (start, offset) = rotation
                    return Cursor(visit: (j - start) & (nb - 1), depth: depth, slot: (i - offset) & 7)
                }
                if t == emptyRest { return nil }
            }
            guard let n = overflow(bk) else { return nil }
            bk = n
            depth += 1
        }
    }

    /// Walks the frozen table in the traversal order.
    @usableFromInline struct Iterator {
        @usableFromInline let storage: _MapStorage
        @usableFromInline let start: Int
        @usableFromInline let offset: Int
        @usableFromInline var cursor = Cursor(visit: 0, depth: 0, slot: 0)

        @inlinable init(storage: _MapStorage) {
            self.storage = storage
            (start, offset) = storage.rotation
        }

        /// The next entry's bucket and physical slot.
        @inlinable mutating func nextEntry() -> (bucket: UnsafeMutableRawPointer, slot: Int)? {
            guard storage.advance(&cursor, start: start, offset: offset) else { return nil }
            let i = (cursor.slot + offset) & 7
            cursor.slot += 1
            return (cursor.chain.unsafelyUnwrapped, i)
        }

        @inlinable mutating func next() -> (Key, Value)? {
            guard let (bk, i) = nextEntry() else { return nil }
            return (storage.keyPtr(bk, i).pointee, storage.valuePtr(bk, i).pointee)
        }
    }
}
