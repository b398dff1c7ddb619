// IncrementalMap: Go's classic hash map (go1.19 hmap) in Swift, on GoHeap.
//
// Layout. 2^B buckets of 8 slots. A bucket is 8 tophash bytes, then 8 keys,
// then 8 values, then a pointer to an overflow bucket, each part aligned as
// its type needs (144 bytes for Int64 keys and values). Keys or values over
// 128 bytes live out of line: the slot holds a pointer to a GoHeap box.
// make(map, hint) picks the smallest B whose 6.5-per-bucket load holds the
// hint, and for B >= 4 allocates 2^(B-4) extra overflow buckets in the same
// allocation, plus every further whole bucket the size class rounding leaves.
//
// Hashing. Swift's Hasher (the raw hash Dictionary uses) seeded per map. The
// top 8 bits are the tophash, shifted above Go's reserved markers (0 empty and
// nothing after, 1 empty, 2/3 evacuated to the low/high half, 4 evacuated
// empty); the low B bits pick the bucket.
//
// Growth. Inserting a new key when count+1 > 8 and count+1 > 6.5 * 2^B
// doubles the table; as many overflow buckets as buckets (capped at 2^15)
// starts a same-size growth that repacks the chains. Growth only allocates the
// new array, uncleared: each new bucket is cleared by the evacuation that first
// writes it (and a preallocated overflow bucket when it is handed out), so
// starting a growth costs the same whatever the array's memory held. Only the
// first array of a map is a zeroed allocation (which GoHeap serves without a
// memset from fresh pages). Entries move later: every write first evacuates
// the old bucket it touches and the oldest unevacuated one, so a growth
// finishes within as many writes as there are old buckets and no single insert
// copies the table. Lookups read old buckets that
// are not evacuated yet. Evacuation moves entries (they are never duplicated)
// and frees the old chain's overflow buckets; the old array goes back to GoHeap
// when the last old bucket is evacuated.
//
// Value semantics. The struct holds a reference to the storage and copies it on
// the first write while shared. The struct also holds the heap (nil for
// Heap.shared): a map made with `heap: h` allocates from h for life, also after
// removeAll() dropped its storage. A copy preserves the exact structure (B, old
// buckets, evacuation progress). Iterators and views hold a reference too, so
// mutating a map while iterating it copies, and the iterator sees a frozen
// table: every entry exactly once, even mid-growth.
//
// Order. A traversal starts at a random bucket and slot offset, as Go's range
// does. The start is drawn from the map's random iteration seed and its age (a
// counter every structural change bumps: insert, delete, growth, evacuation),
// so it changes unpredictably with every structural change but stays put
// between two of them, which IncrementalMap's Collection conformance needs
// (see IncrementalMap+Collection.swift).
//
// This file holds the storage and its growth, and the struct's core (its
// initializers, count and heap). The rest of the API is split by concern:
// +Collection (indices, iteration), +Dictionary (Dictionary's key-based API),
// +Views (keys, values), +Codable, +Descriptions.

import GoHeap
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Introspection of an IncrementalMap's table, for tools and tests.
public struct MapDebugState: Sendable, Equatable, CustomStringConvertible {
    /// B: the table has 2^B buckets.
    public var bucketShift: Int
    public var count: Int
    /// Go's noverflow: overflow buckets in use (counted probabilistically for B >= 16, as Go does).
    public var overflowBucketCount: Int
    public var isGrowing: Bool
    public var isSameSizeGrowth: Bool
    /// Go's nevacuate: old buckets below this index are evacuated.
    public var evacuatedBuckets: Int
    /// Old buckets of the growth in progress (0 when not growing).
    public var oldBucketCount: Int
    /// Usable size GoHeap gave the current bucket array (its size class or
    /// page-rounded size), including preallocated overflow buckets.
    public var bucketArrayBytes: Int
    /// Bytes per bucket.
    public var bucketSize: Int

    public var description: String {
        "B=\(bucketShift) count=\(count) overflow=\(overflowBucketCount) growing=\(isGrowing)\(isSameSizeGrowth ? " (same size)" : "") nevacuate=\(evacuatedBuckets)/\(oldBucketCount) bucketArrayBytes=\(bucketArrayBytes)"
    }
}

/// Go's constants for the classic map.
public enum MapConstants {
    public static let bucketCount = 8
    public static let loadFactorNumerator = 13
    public static let loadFactorDenominator = 2
    public static let maxInlineKeySize = 128
    public static let maxInlineValueSize = 128

    /// count items in 2^B buckets exceed the load factor (Go's overLoadFactor).
    public static func overLoadFactor(count: Int, bucketShift b: Int) -> Bool {
        count > bucketCount && count > loadFactorNumerator * ((1 << b) / loadFactorDenominator)
    }

    /// The B that make(map, hint) starts with.
    public static func bucketShift(forHint hint: Int) -> Int {
        var b = 0
        while overLoadFactor(count: hint, bucketShift: b) { b += 1 }
        return b
    }
}

// Reserved tophash values.
@usableFromInline let emptyRest: UInt8 = 0
@usableFromInline let emptyOne: UInt8 = 1
@usableFromInline let evacuatedX: UInt8 = 2
@usableFromInline let evacuatedY: UInt8 = 3
@usableFromInline let evacuatedEmpty: UInt8 = 4
@usableFromInline let minTopHash: UInt8 = 5

/// Byte offsets of a bucket's parts for one key and value type.
@usableFromInline
struct BucketLayout {
    @usableFromInline let indirectKey: Bool
    @usableFromInline let indirectValue: Bool
    @usableFromInline let keySlot: Int
    @usableFromInline let valueSlot: Int
    @usableFromInline let keysOffset: Int
    @usableFromInline let valuesOffset: Int
    @usableFromInline let overflowOffset: Int
    @usableFromInline let size: Int

    init<K, V>(_: K.Type, _: V.Type) {
        func goSize<T>(_: T.Type) -> Int { MemoryLayout<T>.size == 0 ? 0 : MemoryLayout<T>.stride }
        func align(_ n: Int, _ a: Int) -> Int { (n + a - 1) & ~(a - 1) }
        indirectKey = goSize(K.self) > MapConstants.maxInlineKeySize
        indirectValue = goSize(V.self) > MapConstants.maxInlineValueSize
        keySlot = indirectKey ? 8 : goSize(K.self)
        valueSlot = indirectValue ? 8 : goSize(V.self)
        let keyAlign = indirectKey ? 8 : MemoryLayout<K>.alignment
        let valueAlign = indirectValue ? 8 : MemoryLayout<V>.alignment
        keysOffset = align(8, keyAlign)
        valuesOffset = align(keysOffset + 8 * keySlot, valueAlign)
        overflowOffset = align(valuesOffset + 8 * valueSlot, 8)
        size = align(overflowOffset + 8, max(8, keyAlign, valueAlign))
    }
}

/// Per-map seeds: distinct per map, cheap to make.
let mapSeedCounter = Atomic<UInt64>(0x2545_F491_4F6C_DD1D)
/// Per-process randomness for iteration starts (the seed counter alone is the
/// same in every run).
let iterationSalt = UInt64.random(in: .min ... .max)

/// SplitMix64's finalizer: a well-mixed 64-bit value from any input.
@inlinable @inline(__always)
func _mix64(_ x: UInt64) -> UInt64 {
    var z = x
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

@usableFromInline
final class _MapStorage<Key: Hashable, Value> {
    @usableFromInline let layout: BucketLayout
    @usableFromInline let heap: Heap
    @usableFromInline let seed: Int
    @exclusivity(unchecked) @usableFromInline var count = 0
    @exclusivity(unchecked) @usableFromInline var b = 0
    @exclusivity(unchecked) @usableFromInline var buckets: UnsafeMutableRawPointer?
    /// Buckets in the current allocation (2^B plus preallocated overflow ones).
    @exclusivity(unchecked) @usableFromInline var allocatedBuckets = 0
    @exclusivity(unchecked) @usableFromInline var nextPrealloc = 0
    @exclusivity(unchecked) @usableFromInline var bucketArrayBytes = 0
    @exclusivity(unchecked) @usableFromInline var oldBuckets: UnsafeMutableRawPointer?
    @exclusivity(unchecked) @usableFromInline var oldAllocatedBuckets = 0
    @exclusivity(unchecked) @usableFromInline var nevacuate = 0
    @exclusivity(unchecked) @usableFromInline var sameSizeGrow = false
    @exclusivity(unchecked) @usableFromInline var noverflow = 0
    @exclusivity(unchecked) @usableFromInline var rng: UInt64
    /// Growths started and the inserts it took to finish each (for drain checks).
    @exclusivity(unchecked) @usableFromInline var growths = 0
    @exclusivity(unchecked) @usableFromInline var insertsSinceGrowthStart = 0
    @exclusivity(unchecked) @usableFromInline var maxDrainInserts = 0
    /// Bumped by every structural change (insert, delete, growth, evacuation):
    /// indices carry it and are valid while it is unchanged; with
    /// `iterationSeed` it picks the traversal's random start.
    @exclusivity(unchecked) @usableFromInline var age: UInt64
    @usableFromInline let iterationSeed: UInt64

    @usableFromInline init(heap: Heap, bucketShift: Int, seed: Int? = nil, iterationSeed: UInt64? = nil) {
        self.layout = BucketLayout(Key.self, Value.self)
        self.heap = heap
        let z = _mix64(mapSeedCounter.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue)
        self.seed = seed ?? Int(bitPattern: UInt(z))
        self.rng = z | 1
        let i = iterationSeed ?? _mix64(z ^ iterationSalt)
        self.iterationSeed = i
        self.age = _mix64(i) >> 16  // a random start, so indices of two maps rarely share an age
        self.b = bucketShift
        if bucketShift > 0 { installNewArray(bucketShift) }
    }

    deinit {
        if let cur = buckets {
            for i in 0..<(1 << b) where newBucketInUse(i) {
                destroyChain(bucket(cur, i), array: cur, allocated: allocatedBuckets)
            }
        }
        if let old = oldBuckets {
            for i in 0..<(1 << oldB) where !isEvacuated(bucket(old, i)) {
                destroyChain(bucket(old, i), array: old, allocated: oldAllocatedBuckets)
            }
            heap.deallocate(old)
        }
        if let cur = buckets { heap.deallocate(cur) }
    }

    /// A new bucket holds data only once its old bucket has been evacuated
    /// into it; until then it may not even be cleared.
    @inlinable func newBucketInUse(_ i: Int) -> Bool {
        guard let old = oldBuckets else { return true }
        return isEvacuated(bucket(old, i & ((1 << oldB) - 1)))
    }

    // MARK: bucket access

    @inlinable @inline(__always) func bucket(_ array: UnsafeMutableRawPointer, _ i: Int) -> UnsafeMutableRawPointer {
        array + i &* layout.size
    }
    @inlinable @inline(__always) func tophash(_ bk: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt8> {
        bk.assumingMemoryBound(to: UInt8.self)
    }
    @inlinable @inline(__always) func overflow(_ bk: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
        bk.load(fromByteOffset: layout.overflowOffset, as: UnsafeMutableRawPointer?.self)
    }
    @inlinable @inline(__always) func setOverflow(_ bk: UnsafeMutableRawPointer, _ o: UnsafeMutableRawPointer?) {
        bk.storeBytes(of: o, toByteOffset: layout.overflowOffset, as: UnsafeMutableRawPointer?.self)
    }
    @inlinable @inline(__always) func keySlot(_ bk: UnsafeMutableRawPointer, _ i: Int) -> UnsafeMutableRawPointer {
        bk + layout.keysOffset + i &* layout.keySlot
    }
    @inlinable @inline(__always) func valueSlot(_ bk: UnsafeMutableRawPointer, _ i: Int) -> UnsafeMutableRawPointer {
        bk + layout.valuesOffset + i &* layout.valueSlot
    }
    @inlinable @inline(__always) func keyPtr(_ bk: UnsafeMutableRawPointer, _ i: Int) -> UnsafeMutablePointer<Key> {
        let s = keySlot(bk, i)
        if layout.indirectKey { return s.load(as: UnsafeMutableRawPointer.self).assumingMemoryBound(to: Key.self) }
        return s.assumingMemoryBound(to: Key.self)
    }
    @inlinable @inline(__always) func valuePtr(_ bk: UnsafeMutableRawPointer, _ i: Int) -> UnsafeMutablePointer<Value> {
        let s = valueSlot(bk, i)
        if layout.indirectValue { return s.load(as: UnsafeMutableRawPointer.self).assumingMemoryBound(to: Value.self) }
        return s.assumingMemoryBound(to: Value.self)
    }

    @inlinable @inline(__always) func isEvacuated(_ bk: UnsafeMutableRawPointer) -> Bool {
        let h = tophash(bk)[0]
        return h > emptyOne && h < minTopHash
    }

    @inlinable @inline(__always) func hash(_ key: Key) -> UInt {
        UInt(bitPattern: key._rawHashValue(seed: seed))
    }

    @inlinable @inline(__always) static func top(_ hash: UInt) -> UInt8 {
        let t = UInt8(truncatingIfNeeded: hash >> 56)
        return t < minTopHash ? t &+ minTopHash : t
    }

    @inlinable var oldB: Int { sameSizeGrow ? b : b - 1 }
    @inlinable var isGrowing: Bool { oldBuckets != nil }

    /// An overflow bucket allocated outside the array must be freed on its own.
    @inlinable @inline(__always) func isSeparate(_ bk: UnsafeMutableRawPointer, array: UnsafeMutableRawPointer, allocated: Int) -> Bool {
        bk < array || bk >= array + allocated * layout.size
    }

    // MARK: bucket arrays

    /// Go's makeBucketArray: 2^b buckets, plus 2^(b-4) overflow buckets for
    /// b >= 4 and whatever whole buckets the size-class rounding leaves.
    /// `zeroed: false` is for growth: the buckets are cleared one by one just
    /// before first use (see evacuate), so starting a growth never clears the
    /// whole array, whatever the memory held before.
    @inlinable func makeBucketArray(_ shift: Int, zeroed: Bool = true) -> (UnsafeMutableRawPointer, Int, Int) {
        var n = 1 << shift
        let size = layout.size
        if shift >= 4 {
            n += 1 << (shift - 4)
            let bytes = size * n
            let up = SizeClasses.roundUp(byteCount: bytes)
            if up != bytes { n = up / size }
        }
        let bytes = size * n
        let align = max(8, MemoryLayout<Key>.alignment, MemoryLayout<Value>.alignment)
        let p = zeroed ? heap.allocateZeroed(byteCount: bytes, alignment: align)
                       : heap.allocate(byteCount: bytes, alignment: align)
        return (p, n, heap.usableSize(of: p))
    }

    @inlinable func installNewArray(_ shift: Int, zeroed: Bool = true) {
        let (p, n, usable) = makeBucketArray(shift, zeroed: zeroed)
        buckets = p
        allocatedBuckets = n
        nextPrealloc = 1 << shift
        bucketArrayBytes = usable
    }

    /// Go's newoverflow: a preallocated bucket if any is left, else a new one.
    @inlinable func newOverflow(after bk: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        let ovf: UnsafeMutableRawPointer
        if nextPrealloc < allocatedBuckets, let cur = buckets {
            ovf = bucket(cur, nextPrealloc)
            nextPrealloc += 1
            memset(ovf, 0, layout.size)  // the array may not have been cleared up front
        } else {
            ovf = heap.allocateZeroed(byteCount: layout.size, alignment: max(8, MemoryLayout<Key>.alignment, MemoryLayout<Value>.alignment))
        }
        incrNoverflow()
        setOverflow(bk, ovf)
        return ovf
    }

    /// Go's incrnoverflow: exact below B = 16, then counted with probability
    /// 1 / 2^(B-15) so a 16-bit counter suffices.
    @inlinable func incrNoverflow() {
        if b < 16 { noverflow += 1; return }
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        let mask = (UInt64(1) << UInt64(b - 15)) - 1
        if rng & mask == 0 { noverflow += 1 }
    }

    @inlinable func tooManyOverflowBuckets() -> Bool {
        noverflow >= 1 << min(b, 15)
    }

    // MARK: lookup

    /// The bucket chain and slot holding `key`, or nil.
    @inlinable func find(_ key: Key) -> (UnsafeMutableRawPointer, Int)? {
        guard count > 0, let cur = buckets else { return nil }
        let h = hash(key)
        var bk = bucket(cur, Int(truncatingIfNeeded: h & UInt((1 << b) - 1)))
        if let old = oldBuckets {
            let ob = bucket(old, Int(truncatingIfNeeded: h & UInt((1 << oldB) - 1)))
            if !isEvacuated(ob) { bk = ob }
        }
        return scan(chain: bk, top: Self.top(h), for: key)
    }

    /// The bucket and slot holding `key` in the chain starting at `first`.
    /// Stops at the first emptyRest slot: nothing follows it.
    @inlinable @inline(__always)
    func scan(chain first: UnsafeMutableRawPointer, top: UInt8, for key: Key) -> (UnsafeMutableRawPointer, Int)? {
        var chain: UnsafeMutableRawPointer? = first
        while let c = chain {
            let th = tophash(c)
            for i in 0..<8 {
                let t = th[i]
                if t != top {
                    if t == emptyRest { return nil }
                    continue
                }
                if keyPtr(c, i).pointee == key { return (c, i) }
            }
            chain = overflow(c)
        }
        return nil
    }

    // MARK: writes

    /// Evacuation work a write does first (Go's growWork).
    @inlinable func growWork(forHash h: UInt) {
        evacuate(Int(truncatingIfNeeded: h & UInt((1 << oldB) - 1)))
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
        var skipGrowWork = growWorkDone
        while true {
            if isGrowing && !skipGrowWork { growWork(forHash: h) }
            skipGrowWork = false
            let top = Self.top(h)
            let first = bucket(buckets!, Int(truncatingIfNeeded: h & UInt((1 << b) - 1)))
            var insertBucket: UnsafeMutableRawPointer?
            var insertSlot = 0
            var last = first
            var chain: UnsafeMutableRawPointer? = first
            search: while let c = chain {
                let th = tophash(c)
                for i in 0..<8 {
                    let t = th[i]
                    if t != top {
                        if t <= emptyOne && insertBucket == nil {
                            insertBucket = c
                            insertSlot = i
                        }
                        if t == emptyRest { break search }
                        continue
                    }
                    if keyPtr(c, i).pointee == key { return (c, i, false) }
                }
                last = c
                chain = overflow(c)
            }
            // A new key: grow first if the table is full (unless growing already).
            if !isGrowing && (MapConstants.overLoadFactor(count: count + 1, bucketShift: b) || tooManyOverflowBuckets()) {
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
        let first = bucket(cur, Int(truncatingIfNeeded: h & UInt((1 << b) - 1)))
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

    // MARK: growth

    /// Go's hashGrow: allocate the new array; entries move later.
    @inlinable func hashGrow() {
        let bigger = MapConstants.overLoadFactor(count: count + 1, bucketShift: b)
        sameSizeGrow = !bigger
        oldBuckets = buckets
        oldAllocatedBuckets = allocatedBuckets
        if bigger { b += 1 }
        installNewArray(b, zeroed: false)
        nevacuate = 0
        noverflow = 0
        age &+= 1
        growths += 1
        insertsSinceGrowthStart = 0
    }

    /// Moves the entries of old bucket `oldIndex` (and its chain) to the new
    /// table: to the same index, or for a doubling, to index + 2^oldB when the
    /// new hash bit is set.
    @inlinable func evacuate(_ oldIndex: Int) {
        guard let old = oldBuckets, let cur = buckets else { return }
        let ob = bucket(old, oldIndex)
        let newbit = 1 << oldB
        if !isEvacuated(ob) {
            // Destinations: x (same index) and, when doubling, y (index + 2^oldB).
            // Nothing has used them yet (writes to them evacuate this bucket
            // first), so they are cleared here rather than when the array was made.
            var xb = bucket(cur, oldIndex), xi = 0
            var yb = sameSizeGrow ? xb : bucket(cur, oldIndex + newbit), yi = 0
            memset(xb, 0, layout.size)
            if !sameSizeGrow { memset(yb, 0, layout.size) }
            var chain: UnsafeMutableRawPointer? = ob
            while let c = chain {
                let th = tophash(c)
                for i in 0..<8 {
                    let t = th[i]
                    if t <= emptyOne {
                        th[i] = evacuatedEmpty
                        continue
                    }
                    let useY = !sameSizeGrow && hash(keyPtr(c, i).pointee) & UInt(newbit) != 0
                    th[i] = useY ? evacuatedY : evacuatedX
                    var db = useY ? yb : xb
                    var di = useY ? yi : xi
                    if di == 8 {
                        db = newOverflow(after: db)
                        di = 0
                    }
                    tophash(db)[di] = t
                    // Move the slot contents: the inline key and value, or their box pointers.
                    keySlot(db, di).copyMemory(from: keySlot(c, i), byteCount: layout.keySlot)
                    valueSlot(db, di).copyMemory(from: valueSlot(c, i), byteCount: layout.valueSlot)
                    if useY { yb = db; yi = di + 1 } else { xb = db; xi = di + 1 }
                }
                let next = overflow(c)
                if c != ob && isSeparate(c, array: old, allocated: oldAllocatedBuckets) { heap.deallocate(c) }
                chain = next
            }
            setOverflow(ob, nil)
            age &+= 1
        }
        if oldIndex == nevacuate { advanceEvacuationMark(newbit) }
    }

    @inlinable func advanceEvacuationMark(_ oldCount: Int) {
        nevacuate += 1
        let stop = nevacuate + 1024
        while nevacuate != stop && nevacuate != oldCount && isEvacuated(bucket(oldBuckets!, nevacuate)) {
            nevacuate += 1
        }
        if nevacuate == oldCount {
            heap.deallocate(oldBuckets!)
            oldBuckets = nil
            oldAllocatedBuckets = 0
            sameSizeGrow = false
            maxDrainInserts = max(maxDrainInserts, insertsSinceGrowthStart)
        }
    }

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

/// Go's map, with incremental growth, in memory from GoHeap.
///
/// Dictionary's API, with Go's behaviour underneath: the table grows at
/// Go's load factor and moves its entries a few buckets per write, the
/// traversal starts at a random place, and the memory comes from the heap the
/// map was created with.
public struct IncrementalMap<Key: Hashable, Value> {
    @usableFromInline var _storage: _MapStorage<Key, Value>?
    /// The heap this map allocates from, for life; nil stands for Heap.shared.
    @usableFromInline var _heapRef: Heap?

    /// An empty map; the first insert allocates one bucket (as Go's make(map) does).
    @inlinable
    public init() {
        _storage = nil
        _heapRef = nil
    }

    /// An empty map whose buckets will live in `heap`, for the map's whole life.
    @inlinable
    public init(heap: Heap = .shared) {
        _storage = nil
        _heapRef = Self._reference(to: heap)
    }

    /// Like `make(map[K]V, hint)`: the smallest B whose load factor holds
    /// `minimumCapacity`, with Go's preallocated overflow buckets for B >= 4.
    public init(minimumCapacity: Int, heap: Heap = .shared) {
        precondition(minimumCapacity >= 0, "IncrementalMap(minimumCapacity:): \(minimumCapacity) is negative")
        _storage = _MapStorage(heap: heap, bucketShift: MapConstants.bucketShift(forHint: minimumCapacity))
        _heapRef = Self._reference(to: heap)
    }

    /// What the struct keeps for `heap`: nil for the shared heap.
    @inlinable @inline(__always)
    static func _reference(to heap: Heap) -> Heap? { heap === Heap.shared ? nil : heap }

    /// The heap the buckets and out-of-line keys and values live in: the one
    /// the map was created with, for life.
    @inlinable
    public var heap: Heap { _heapRef ?? .shared }

    /// An empty map on the same heap, sized like `make(map, hint)`.
    @inlinable
    func _empty<V>(minimumCapacity hint: Int = 0) -> IncrementalMap<Key, V> {
        hint == 0 ? IncrementalMap<Key, V>(heap: heap) : IncrementalMap<Key, V>(minimumCapacity: hint, heap: heap)
    }

    @inlinable public var count: Int { _storage?.count ?? 0 }
    @inlinable public var isEmpty: Bool { count == 0 }

    /// The number of entries the current table holds before the next new
    /// key starts a growth by Go's load factor (6.5 per bucket, at least 8).
    /// A same-size growth, started by too many overflow buckets, can come
    /// sooner.
    public var capacity: Int {
        let b = _storage?.b ?? 0
        return Swift.max(MapConstants.bucketCount,
                   MapConstants.loadFactorNumerator * ((1 << b) / MapConstants.loadFactorDenominator))
    }

    @inlinable @inline(__always)
    mutating func uniqueStorage() -> _MapStorage<Key, Value> {
        if _storage == nil {
            _storage = _MapStorage(heap: heap, bucketShift: 0)
        } else if !isKnownUniquelyReferenced(&_storage) {
            _storage = _storage!.copy()
        }
        return _storage.unsafelyUnwrapped
    }

    /// Removes every entry. With `keepingCapacity` the map keeps its bucket
    /// count (a fresh, zeroed array of the same B). Either way it keeps its heap.
    public mutating func removeAll(keepingCapacity: Bool = false) {
        guard let s = _storage else { return }
        if keepingCapacity {
            _storage = _MapStorage(heap: heap, bucketShift: s.b)
        } else {
            _storage = nil
        }
    }

    /// Makes room for `minimumCapacity` entries without a growth. An empty
    /// map gets the table `make(map, minimumCapacity)` would; a map with
    /// entries whose table is too small is rebuilt into such a table at once
    /// (not incrementally: Go has no such operation). Never shrinks.
    public mutating func reserveCapacity(_ minimumCapacity: Int) {
        precondition(minimumCapacity >= 0, "IncrementalMap.reserveCapacity: \(minimumCapacity) is negative")
        let wanted = MapConstants.bucketShift(forHint: minimumCapacity)
        guard let s = _storage else {
            if minimumCapacity > 0 { self = IncrementalMap(minimumCapacity: minimumCapacity, heap: heap) }
            return
        }
        if wanted <= s.b { return }
        var rebuilt = IncrementalMap(minimumCapacity: Swift.max(minimumCapacity, count), heap: heap)
        let r = rebuilt.uniqueStorage()
        var it = _MapStorage<Key, Value>.Iterator(storage: s)
        while let (k, v) = it.next() { _ = r.assign(k, v) }
        self = rebuilt
    }

    /// The table's shape, for tools and tests.
    public var debugState: MapDebugState {
        guard let s = _storage else {
            return MapDebugState(bucketShift: 0, count: 0, overflowBucketCount: 0, isGrowing: false,
                                 isSameSizeGrowth: false, evacuatedBuckets: 0, oldBucketCount: 0,
                                 bucketArrayBytes: 0, bucketSize: BucketLayout(Key.self, Value.self).size)
        }
        return MapDebugState(bucketShift: s.b, count: s.count, overflowBucketCount: s.noverflow,
                             isGrowing: s.isGrowing, isSameSizeGrowth: s.isGrowing && s.sameSizeGrow,
                             evacuatedBuckets: s.isGrowing ? s.nevacuate : 0,
                             oldBucketCount: s.isGrowing ? 1 << s.oldB : 0,
                             bucketArrayBytes: s.bucketArrayBytes, bucketSize: s.layout.size)
    }

    /// Growths started, and the most inserts any completed growth took to drain.
    public var growthStatistics: (growths: Int, maxDrainInserts: Int) {
        (_storage?.growths ?? 0, _storage?.maxDrainInserts ?? 0)
    }
}
