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
// buckets, evacuation progress). Iterators hold a reference too, so mutating a
// map while iterating it copies, and the iterator sees a frozen table: every
// entry exactly once, even mid-growth, starting at a random bucket and slot as
// Go's iteration does.

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

    @usableFromInline init(heap: Heap, bucketShift: Int, seed: Int? = nil) {
        self.layout = BucketLayout(Key.self, Value.self)
        self.heap = heap
        let s = mapSeedCounter.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        self.seed = seed ?? Int(bitPattern: UInt(z))
        self.rng = z | 1
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

    /// Inserts or updates; returns the previous value for an update.
    @inlinable func assign(_ key: Key, _ value: Value) -> Value? {
        let h = hash(key)
        if buckets == nil { installNewArray(b) }
        while true {
            if isGrowing { growWork(forHash: h) }
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
                    let kp = keyPtr(c, i)
                    if kp.pointee == key {
                        let vp = valuePtr(c, i)
                        let old = vp.move()
                        vp.initialize(to: value)
                        return old
                    }
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
            initializeEntry(bk, insertSlot, key, value)
            tophash(bk)[insertSlot] = top
            count += 1
            if isGrowing { insertsSinceGrowthStart += 1 }
            return nil
        }
    }

    @inlinable func initializeEntry(_ bk: UnsafeMutableRawPointer, _ i: Int, _ key: Key, _ value: Value) {
        if layout.indirectKey {
            let box = heap.allocate(byteCount: MemoryLayout<Key>.size, alignment: MemoryLayout<Key>.alignment)
            box.initializeMemory(as: Key.self, to: key)
            keySlot(bk, i).storeBytes(of: box, as: UnsafeMutableRawPointer.self)
        } else {
            keySlot(bk, i).initializeMemory(as: Key.self, to: key)
        }
        if layout.indirectValue {
            let box = heap.allocate(byteCount: max(1, MemoryLayout<Value>.size), alignment: MemoryLayout<Value>.alignment)
            box.initializeMemory(as: Value.self, to: value)
            valueSlot(bk, i).storeBytes(of: box, as: UnsafeMutableRawPointer.self)
        } else {
            valueSlot(bk, i).initializeMemory(as: Value.self, to: value)
        }
    }

    /// Deinitializes the entry in a slot and frees its out-of-line boxes.
    @inlinable func destroyEntry(_ bk: UnsafeMutableRawPointer, _ i: Int) {
        keyPtr(bk, i).deinitialize(count: 1)
        valuePtr(bk, i).deinitialize(count: 1)
        if layout.indirectKey { heap.deallocate(keySlot(bk, i).load(as: UnsafeMutableRawPointer.self)) }
        if layout.indirectValue { heap.deallocate(valueSlot(bk, i).load(as: UnsafeMutableRawPointer.self)) }
    }

    /// Moves the entry out of a slot (freeing its boxes).
    @inlinable func takeEntry(_ bk: UnsafeMutableRawPointer, _ i: Int) -> (Key, Value) {
        let k = keyPtr(bk, i).move()
        let v = valuePtr(bk, i).move()
        if layout.indirectKey { heap.deallocate(keySlot(bk, i).load(as: UnsafeMutableRawPointer.self)) }
        if layout.indirectValue { heap.deallocate(valueSlot(bk, i).load(as: UnsafeMutableRawPointer.self)) }
        return (k, v)
    }

    /// Removes `key`; returns its value.
    @inlinable func remove(_ key: Key) -> Value? {
        guard count > 0, buckets != nil else { return nil }
        let h = hash(key)
        if isGrowing { growWork(forHash: h) }
        // After growWork the key's old bucket is evacuated: it can only be in the new table.
        let first = bucket(buckets!, Int(truncatingIfNeeded: h & UInt((1 << b) - 1)))
        guard let (c, i) = scan(chain: first, top: Self.top(h), for: key) else { return nil }
        let (_, v) = takeEntry(c, i)
        tophash(c)[i] = emptyOne
        markEmptyRest(first: first, bucket: c, slot: i)
        count -= 1
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
    @inlinable func copy() -> _MapStorage {
        let s = _MapStorage(heap: heap, bucketShift: 0, seed: seed)
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

    // MARK: iteration

    /// Walks the frozen table from a start bucket and slot offset, visiting for
    /// each new bucket either its unevacuated old bucket (entries that belong
    /// here only) or its own chain.
    @usableFromInline struct Iterator {
        @usableFromInline let storage: _MapStorage
        @usableFromInline let start: Int
        @usableFromInline let offset: Int
        @usableFromInline var visited = 0  // new buckets fully visited
        @usableFromInline var chain: UnsafeMutableRawPointer?
        @usableFromInline var slot = 0
        @usableFromInline var fromOld = false
        @usableFromInline var current = -1

        @usableFromInline init(storage: _MapStorage, start: Int, offset: Int) {
            self.storage = storage
            self.start = start
            self.offset = offset
        }

        @inlinable mutating func next() -> (Key, Value)? {
            let s = storage
            guard let cur = s.buckets, s.count > 0 else { return nil }
            let nb = 1 << s.b
            while true {
                if chain == nil {
                    if visited == nb { return nil }
                    current = (start + visited) & (nb - 1)
                    visited += 1
                    fromOld = false
                    chain = s.bucket(cur, current)
                    if let old = s.oldBuckets {
                        let ob = s.bucket(old, current & ((1 << s.oldB) - 1))
                        if !s.isEvacuated(ob) { chain = ob; fromOld = true }
                    }
                    slot = 0
                }
                let c = chain!
                while slot < 8 {
                    let i = (slot + offset) & 7
                    slot += 1
                    let t = s.tophash(c)[i]
                    if t < minTopHash { continue }
                    if fromOld && !s.sameSizeGrow {
                        // This old bucket splits between two new ones; yield
                        // only what belongs to the new bucket being visited.
                        let h = s.hash(s.keyPtr(c, i).pointee)
                        if Int(truncatingIfNeeded: h & UInt(nb - 1)) != current { continue }
                    }
                    return (s.keyPtr(c, i).pointee, s.valuePtr(c, i).pointee)
                }
                chain = s.overflow(c)
                slot = 0
            }
        }
    }
}

/// Go's map, with incremental growth, in memory from GoHeap.
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

    @inlinable public var count: Int { _storage?.count ?? 0 }
    @inlinable public var isEmpty: Bool { count == 0 }

    @inlinable @inline(__always)
    mutating func uniqueStorage() -> _MapStorage<Key, Value> {
        if _storage == nil {
            _storage = _MapStorage(heap: heap, bucketShift: 0)
        } else if !isKnownUniquelyReferenced(&_storage) {
            _storage = _storage!.copy()
        }
        return _storage!
    }

    @inlinable
    public subscript(key: Key) -> Value? {
        get {
            guard let s = _storage, let (bk, i) = s.find(key) else { return nil }
            return s.valuePtr(bk, i).pointee
        }
        set {
            if let v = newValue { updateValue(v, forKey: key) } else { removeValue(forKey: key) }
        }
    }

    /// Inserts or replaces; returns the old value if there was one.
    @discardableResult
    @inlinable
    public mutating func updateValue(_ value: Value, forKey key: Key) -> Value? {
        uniqueStorage().assign(key, value)
    }

    /// Removes a key; returns its value if it was present.
    @discardableResult
    @inlinable
    public mutating func removeValue(forKey key: Key) -> Value? {
        guard _storage != nil, count > 0 else { return nil }
        return uniqueStorage().remove(key)
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

    /// The keys, in iteration order.
    public var keys: LazyMapSequence<IncrementalMap, Key> { lazy.map { $0.key } }
    /// The values, in iteration order.
    public var values: LazyMapSequence<IncrementalMap, Value> { lazy.map { $0.value } }
}

extension IncrementalMap: Sequence {
    public typealias Element = (key: Key, value: Value)

    public struct Iterator: IteratorProtocol {
        var inner: _MapStorage<Key, Value>.Iterator?
        public mutating func next() -> (key: Key, value: Value)? {
            guard let (k, v) = inner?.next() else { return nil }
            return (k, v)
        }
    }

    /// Starts at a random bucket and slot, as Go's range over a map does.
    public func makeIterator() -> Iterator {
        guard let s = _storage else { return Iterator(inner: nil) }
        let r = Int.random(in: 0..<Int.max)
        return Iterator(inner: .init(storage: s, start: r & ((1 << s.b) - 1), offset: (r >> s.b) & 7))
    }

    public var underestimatedCount: Int { count }
}

extension IncrementalMap: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (Key, Value)...) {
        self.init(minimumCapacity: elements.count)
        for (k, v) in elements { updateValue(v, forKey: k) }
    }
}

extension IncrementalMap: Equatable where Value: Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        guard a.count == b.count else { return false }
        if a._storage === b._storage { return true }
        for (k, v) in a {
            guard let w = b[k], w == v else { return false }
        }
        return true
    }
}

extension IncrementalMap: @unchecked Sendable where Key: Sendable, Value: Sendable {}

extension IncrementalMap: CustomStringConvertible {
    public var description: String {
        if isEmpty { return "[:]" }
        return "[" + map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "]"
    }
}
