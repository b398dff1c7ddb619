// IncrementalMap+Operations: Go's mapaccess, mapassign and mapdelete on the
// storage, the paths every lookup and write by key takes. See
// IncrementalMap.swift for the design.

import CShims
import GoHeap
#if canImport(Glibc)
import Glibc
#endif

extension _MapStorage {
    // MARK: lookup

    /// The bucket chain and slot holding `key`, or nil.
    @inlinable func find(_ key: Key) -> (UnsafeMutableRawPointer, Int)? {
        guard count > 0, let cur = buckets else { return nil }
        let h = hash(key)
        let hi = Int(truncatingIfNeeded: h)
        var bk = bucket(cur, hi & bucketMask)
        if let old = oldBuckets {
            let ob = bucket(old, hi & oldBucketMask)
            if !isEvacuated(ob) { bk = ob }
        }
        if bucketArrayBytes >= Self.prefetchMinimumBytes { prefetchBucket(bk) }
        return scan(chain: bk, top: Self.top(h), for: key)
    }

    /// The value for `key`, or nil (Go's mapaccess).
    @inlinable func lookup(_ key: Key) -> Value? {
        guard let (bk, i) = find(key) else { return nil }
        return valuePtr(bk, i).pointee
    }

    /// The bucket and slot holding `key` in the chain starting at `first`.
    /// Stops at a bucket with an emptyRest slot: nothing follows it.
    @inlinable @inline(__always)
    func scan(chain first: UnsafeMutableRawPointer, top: UInt8, for key: Key) -> (UnsafeMutableRawPointer, Int)? {
        var c = first
        while true {
            let w = tophashWord(c)
            var m = Self.matches(w, top)
            while m != 0 {
                let i = Self.firstSlot(m)
                if keyPtr(c, i).pointee == key { return (c, i) }
                m &= m &- 1
            }
            guard let n = overflow(c) else { return nil }  // first: see assignSlot
            if Self.zeroBytes(w) != 0 { return nil }
            c = n
        }
    }

    // MARK: writes

    /// Evacuation work a write does first (Go's growWork).
    @inlinable func growWork(forHash h: UInt) {
        let i = Int(truncatingIfNeeded: h) & oldBucketMask
        if let old = oldBuckets, bucketArrayBytes >= Self.prefetchMinimumBytes {
            // The old bucket and its two destinations are in random places:
            // start loading all of them before working on any.
            prefetchBucket(bucket(old, i), firstLine: true)
            let cur = buckets.unsafelyUnwrapped
            prefetchBucket(bucket(cur, i), firstLine: true, forWrite: true)
            if !sameSizeGrow { prefetchBucket(bucket(cur, i &+ (1 &<< oldB)), firstLine: true, forWrite: true) }
        }
        evacuate(i)
        if isGrowing { evacuate(nevacuate) }
    }

    /// Go's mapassign up to the value store: the slot holding `key`, or, for
    /// a new key, a slot claimed for it (after starting a growth if the key
    /// would overload the table) with the key and tophash stored, the count
    /// raised and the value left uninitialized for the caller to fill.
    /// `growWorkDone`: the caller already did this write's evacuation work.
    @inlinable func assignSlot(_ key: Key, hash h: UInt, growWorkDone: Bool = false)
        -> (bucket: UnsafeMutableRawPointer, slot: Int, inserted: Bool) {
        if buckets == nil { installNewArray(b) }
        if !growWorkDone && _slowPath(count >= prefaultStart) { prefaultStep() }
        var skipGrowWork = growWorkDone
        while true {
            if isGrowing && !skipGrowWork { growWork(forHash: h) }
            skipGrowWork = false
            let top = Self.top(h)
            let first = bucket(buckets.unsafelyUnwrapped, Int(truncatingIfNeeded: h) & bucketMask)
            if bucketArrayBytes >= Self.prefetchMinimumBytes { prefetchBucket(first) }
            var insertBucket: UnsafeMutableRawPointer?
            var insertSlot = 0
            var last = first
            var c = first
            while true {
                let w = tophashWord(c)
                var m = Self.matches(w, top)
                while m != 0 {
                    let i = Self.firstSlot(m)
                    if keyPtr(c, i).pointee == key { return (c, i, false) }
                    m &= m &- 1
                }
                if insertBucket == nil {
                    let e = Self.empties(w)
                    if e != 0 {
                        insertBucket = c
                        insertSlot = Self.firstSlot(e)
                    }
                }
                last = c
                // The overflow test first: it is almost always "none", so it
                // predicts well, while whether a bucket has an emptyRest slot
                // is a coin toss that, mispredicted while the bucket is still
                // on its way from memory, would keep the next insert from
                // starting early.
                guard let n = overflow(c) else { break }
                if Self.zeroBytes(w) != 0 { break }
                c = n
            }
            // A new key: grow first if the table is full (unless growing already).
            if !isGrowing && (count &+ 1 > growthThreshold || tooManyOverflowBuckets()) {
                hashGrow()
                continue
            }
            if insertBucket == nil {
                insertBucket = newOverflow(after: last)
                insertSlot = 0
            }
            let bk = insertBucket!
            initializeKey(bk, insertSlot, key)
            prepareValueSlot(bk, insertSlot)
            tophash(bk)[insertSlot] = top
            count += 1
            age &+= 1
            if isGrowing { insertsSinceGrowthStart += 1 }
            return (bk, insertSlot, true)
        }
    }

    /// Inserts or updates; returns the previous value for an update.
    @inlinable func assign(_ key: Key, _ value: __owned Value) -> Value? {
        let (bk, i, inserted) = assignSlot(key, hash: hash(key))
        let vp = valuePtr(bk, i)
        if inserted {
            vp.initialize(to: value)
            return nil
        }
        let old = vp.move()
        vp.initialize(to: value)
        return old
    }

    /// Stores a key in a free slot (in a GoHeap box when it is out of line).
    @inlinable func initializeKey(_ bk: UnsafeMutableRawPointer, _ i: Int, _ key: Key) {
        if layout.indirectKey {
            let box = heap.allocate(byteCount: MemoryLayout<Key>.size, alignment: MemoryLayout<Key>.alignment)
            box.initializeMemory(as: Key.self, to: key)
            keySlot(bk, i).storeBytes(of: box, as: UnsafeMutableRawPointer.self)
        } else {
            keySlot(bk, i).initializeMemory(as: Key.self, to: key)
        }
    }

    /// Makes valuePtr(bk, i) point at uninitialized memory for a value: the
    /// slot itself, or a new GoHeap box for an out-of-line value.
    @inlinable func prepareValueSlot(_ bk: UnsafeMutableRawPointer, _ i: Int) {
        if layout.indirectValue {
            let box = heap.allocate(byteCount: max(1, MemoryLayout<Value>.size), alignment: MemoryLayout<Value>.alignment)
            valueSlot(bk, i).storeBytes(of: box, as: UnsafeMutableRawPointer.self)
        }
    }

    @inlinable func initializeEntry(_ bk: UnsafeMutableRawPointer, _ i: Int, _ key: Key, _ value: Value) {
        initializeKey(bk, i, key)
        prepareValueSlot(bk, i)
        valuePtr(bk, i).initialize(to: value)
    }

    /// Deinitializes the entry in a slot and frees its out-of-line boxes.
    @inlinable func destroyEntry(_ bk: UnsafeMutableRawPointer, _ i: Int) {
        valuePtr(bk, i).deinitialize(count: 1)
        destroyEntryWithoutValue(bk, i)
    }

    /// Deinitializes the key of a slot whose value was already moved out, and
    /// frees its out-of-line boxes.
    @inlinable func destroyEntryWithoutValue(_ bk: UnsafeMutableRawPointer, _ i: Int) {
        keyPtr(bk, i).deinitialize(count: 1)
        if layout.indirectKey { heap.deallocate(keySlot(bk, i).load(as: UnsafeMutableRawPointer.self)) }
        if layout.indirectValue { heap.deallocate(valueSlot(bk, i).load(as: UnsafeMutableRawPointer.self)) }
    }

    /// The first half of a write by key (Go's mapassign and mapdelete): the
    /// evacuation work, then the key's place. After growWork the key's old
    /// bucket is evacuated, so the key can only be in the new table.
    @inlinable func findForWrite(_ key: Key, hash h: UInt)
        -> (first: UnsafeMutableRawPointer, bucket: UnsafeMutableRawPointer, slot: Int)? {
        guard let cur = buckets else { return nil }
        if isGrowing { growWork(forHash: h) }
        if _slowPath(count >= prefaultStart) { prefaultStep() }
        let first = bucket(cur, Int(truncatingIfNeeded: h) & bucketMask)
        guard let (c, i) = scan(chain: first, top: Self.top(h), for: key) else { return nil }
        return (first, c, i)
    }

    /// Marks a slot whose entry is gone as empty (Go's delete bookkeeping).
    @inlinable func clearSlot(first: UnsafeMutableRawPointer, bucket c: UnsafeMutableRawPointer, slot i: Int) {
        tophash(c)[i] = emptyOne
        markEmptyRest(first: first, bucket: c, slot: i)
        count -= 1
        age &+= 1
    }

    /// Removes `key`; returns its value.
    @inlinable func remove(_ key: Key) -> Value? {
        guard count > 0, buckets != nil else { return nil }
        guard let (first, c, i) = findForWrite(key, hash: hash(key)) else { return nil }
        let v = valuePtr(c, i).move()
        destroyEntryWithoutValue(c, i)
        clearSlot(first: first, bucket: c, slot: i)
        return v
    }

    /// After a delete: if nothing follows the slot, turn the trailing run of
    /// empty slots into emptyRest so lookups stop early (as Go does).
    @inlinable func markEmptyRest(first: UnsafeMutableRawPointer, bucket start: UnsafeMutableRawPointer, slot: Int) {
        var bk = start
        var i = slot
        if i == 7 {
            if let o = overflow(bk), tophash(o)[0] != emptyRest { return }
        } else if tophash(bk)[i + 1] != emptyRest {
            return
        }
        while true {
            tophash(bk)[i] = emptyRest
            if i == 0 {
                if bk == first { return }
                var prev = first
                while overflow(prev) != bk { prev = overflow(prev)! }
                bk = prev
                i = 7
            } else {
                i -= 1
            }
            if tophash(bk)[i] != emptyOne { return }
        }
    }
}
