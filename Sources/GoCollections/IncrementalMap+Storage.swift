// IncrementalMap+Storage: the table's storage class, its bucket layout and
// addressing, its hash, and the allocation of bucket arrays. The operations
// on it live in +Operations (lookup and writes), +Growth (preparing arrays
// ahead, starting a growth, evacuation) and +Traversal (copy, teardown,
// iteration). See IncrementalMap.swift for the design.

import CShims
import GoHeap
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// Reserved tophash values.
// (Computed, so inlined code sees constants rather than calling a global's accessor.)
@inlinable @inline(__always) var emptyRest: UInt8 { 0 }
@inlinable @inline(__always) var emptyOne: UInt8 { 1 }
@inlinable @inline(__always) var evacuatedX: UInt8 { 2 }
@inlinable @inline(__always) var evacuatedY: UInt8 { 3 }
@inlinable @inline(__always) var evacuatedEmpty: UInt8 { 4 }
@inlinable @inline(__always) var minTopHash: UInt8 { 5 }

/// Byte offsets of a bucket's parts for one key and value type.
@usableFromInline
struct BucketLayout {
    @usableFromInline let indirectKey: Bool
    @usableFromInline let indirectValue: Bool
    /// Bytes of a key and of a value as stored in a slot.
    @usableFromInline let keySlot: Int
    @usableFromInline let valueSlot: Int
    /// Distance from one slot's key (value) to the next one's.
    @usableFromInline let keyStride: Int
    @usableFromInline let valueStride: Int
    @usableFromInline let keysOffset: Int
    @usableFromInline let valuesOffset: Int
    @usableFromInline let overflowOffset: Int
    @usableFromInline let size: Int

    /// Pure arithmetic on the two types' layouts, so a specialized caller
    /// folds every offset to a constant (see _MapStorage.layout).
    @inlinable @inline(__always)
    init<K, V>(_: K.Type, _: V.Type) {
        let ks = MemoryLayout<K>.size == 0 ? 0 : MemoryLayout<K>.stride
        let vs = MemoryLayout<V>.size == 0 ? 0 : MemoryLayout<V>.stride
        indirectKey = ks > 128  // MapConstants.maxInlineKeySize
        indirectValue = vs > 128  // MapConstants.maxInlineValueSize
        keySlot = indirectKey ? 8 : ks
        valueSlot = indirectValue ? 8 : vs
        let keyAlign = indirectKey ? 8 : MemoryLayout<K>.alignment
        let valueAlign = indirectValue ? 8 : MemoryLayout<V>.alignment
        let maxAlign = Swift.max(8, keyAlign, valueAlign)
        keysOffset = Self.align(8, keyAlign)
        // Go's order: 8 keys, then 8 values.
        let goValues = Self.align(keysOffset + 8 &* keySlot, valueAlign)
        let goOverflow = Self.align(goValues + 8 &* valueSlot, 8)
        size = Self.align(goOverflow + 8, maxAlign)
        // Each key next to its value, when that takes exactly Go's bucket size.
        let valueInPair = Self.align(keySlot, valueAlign)
        let pair = Self.align(valueInPair + valueSlot, Swift.max(keyAlign, valueAlign))
        let pairedOverflow = Self.align(keysOffset + 8 &* pair, 8)
        if keySlot > 0 && valueSlot > 0 && Self.align(pairedOverflow + 8, maxAlign) == size {
            keyStride = pair
            valueStride = pair
            valuesOffset = keysOffset + valueInPair
            overflowOffset = pairedOverflow
        } else {
            keyStride = keySlot
            valueStride = valueSlot
            valuesOffset = goValues
            overflowOffset = goOverflow
        }
    }

    @inlinable @inline(__always)
    static func align(_ n: Int, _ a: Int) -> Int { (n &+ a &- 1) & ~(a &- 1) }
}

/// Per-map seeds: distinct per map, cheap to make.
let mapSeedCounter = Atomic<UInt64>(0x2545_F491_4F6C_DD1D)
/// Per-process randomness for iteration starts (the seed counter alone is the
/// same in every run).
let iterationSalt = UInt64.random(in: .min ... .max)

/// Per-process randomness for word-key hashes (map seeds alone repeat
/// from run to run, and Hasher's own seed is not reachable).
let wordHashSalt = UInt64.random(in: .min ... .max)

// Odd constants with well-spread bits for _wordHash.
@inlinable @inline(__always) var _wordHashK0: UInt64 { 0xA076_1D64_78BD_642F }
@inlinable @inline(__always) var _wordHashK1: UInt64 { 0xE703_7ED1_A0B4_28DB }

/// The two halves of the 128-bit product, xored: every input bit reaches
/// the middle and top of the result.
@inlinable @inline(__always)
func _foldedProduct(_ a: UInt64, _ b: UInt64) -> UInt64 {
    let p = a.multipliedFullWidth(by: b)
    return p.high ^ p.low
}

/// The hash of a 64-bit key: two folded multiplies, the first of the key
/// against the key rotated and xored with the seed (so the seed takes part
/// in the product rather than just offsetting its input), the second to
/// spread that over all 64 bits, top (tophash) and bottom (bucket) alike.
/// The shape of the 8-byte case of wyhash, which Go's hash for 8-byte keys
/// resembles where it has no AES instructions.
@inlinable @inline(__always)
func _wordHash(_ x: UInt64, _ seed: UInt64) -> UInt64 {
    let p = (x ^ _wordHashK1).multipliedFullWidth(by: ((x &<< 32) | (x &>> 32)) ^ seed)
    return _foldedProduct(p.low ^ _wordHashK0 ^ 8, p.high ^ _wordHashK1)
}

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
    /// The bucket layout, computed rather than stored: in code specialized
    /// for concrete Key and Value types every offset and the bucket size are
    /// constants, so bucket and slot addresses are a multiply-add by a
    /// constant and moves of a slot are fixed-size copies.
    @inlinable @inline(__always) var layout: BucketLayout { BucketLayout(Key.self, Value.self) }
    @usableFromInline let heap: Heap
    @usableFromInline let seed: Int
    /// The seed of _wordHash: the map's seed mixed with this process's
    /// random salt, so word keys hash differently in every run.
    @usableFromInline let wordSeed: UInt64
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
    /// The count from which writes prepare the next doubling's array
    /// (Int.max when it is too small to be worth it).
    @exclusivity(unchecked) @usableFromInline var prefaultStart = Int.max
    /// The next doubling's array, allocated ahead, and how much of it is touched.
    @exclusivity(unchecked) @usableFromInline var nextArray: UnsafeMutableRawPointer?
    @exclusivity(unchecked) @usableFromInline var nextArrayShift = 0
    @exclusivity(unchecked) @usableFromInline var nextArrayBuckets = 0
    @exclusivity(unchecked) @usableFromInline var nextArrayUsable = 0
    @exclusivity(unchecked) @usableFromInline var nextArrayTouched = 0
    @exclusivity(unchecked) @usableFromInline var prefaultBytesTouched = 0
    @exclusivity(unchecked) @usableFromInline var prefaultMaxPerWrite = 0
    @exclusivity(unchecked) @usableFromInline var preparedGrowths = 0
    @exclusivity(unchecked) @usableFromInline var fullyTouchedGrowths = 0
    /// Overflow buckets allocated on their own (not preallocated in an
    /// array), alive in either table: teardown walks the chains only if
    /// there are some or the entries need deinitializing.
    @exclusivity(unchecked) @usableFromInline var separateOverflows = 0

    @usableFromInline init(heap: Heap, bucketShift: Int, seed: Int? = nil, iterationSeed: UInt64? = nil) {
        self.heap = heap
        let z = _mix64(mapSeedCounter.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue)
        self.seed = seed ?? Int(bitPattern: UInt(z))
        self.wordSeed = _foldedProduct(UInt64(UInt(bitPattern: self.seed)) ^ wordHashSalt ^ _wordHashK0, _wordHashK1)
        self.rng = z | 1
        let i = iterationSeed ?? _mix64(z ^ iterationSalt)
        self.iterationSeed = i
        self.age = _mix64(i) >> 16  // a random start, so indices of two maps rarely share an age
        self.b = bucketShift
        if bucketShift > 0 { installNewArray(bucketShift) }
    }

    deinit {
        if let next = nextArray { heap.deallocate(next) }
        if !Self.entriesNeedTeardown && separateOverflows == 0 {
            if let old = oldBuckets { heap.deallocate(old) }
            if let cur = buckets { heap.deallocate(cur) }
            return
        }
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

    /// Entries own something (a reference, an out-of-line box) that must be
    /// released when they go.
    @inlinable static var entriesNeedTeardown: Bool {
        let l = BucketLayout(Key.self, Value.self)
        return !_isPOD(Key.self) || !_isPOD(Value.self) || l.indirectKey || l.indirectValue
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
    /// Starts loading the cache lines of a bucket of up to 256 bytes at
    /// once (all of them, or all but the first, which the caller is about to
    /// read anyway). A scan reads the tophash word first and only then the
    /// key and value of the slot it picks: on a table larger than the caches
    /// that is two misses one after the other, and with the bucket's other
    /// lines already on their way it costs about one. These are prefetch
    /// instructions, not loads: a load whose value is unused still cannot
    /// retire before its line arrives, so it held up the instructions behind
    /// it (the next operation's hashing and its own misses) for a whole
    /// memory latency. `forWrite` asks for the lines in a writable state, for
    /// buckets about to be cleared and filled.
    @inlinable @inline(__always) func prefetchBucket(_ bk: UnsafeMutableRawPointer, firstLine: Bool = false, forWrite: Bool = false) {
        let size = layout.size
        if size > 256 { return }
        var off = firstLine ? 0 : 64
        while off < size {
            if forWrite { goheap_prefetch_write(bk + off) } else { goheap_prefetch(bk + off) }
            off &+= 64
        }
        // The last line, when the bucket does not start a line.
        if size & 63 != 0 {
            if forWrite { goheap_prefetch_write(bk + (size &- 1)) } else { goheap_prefetch(bk + (size &- 1)) }
        }
    }

    /// Tables smaller than this mostly sit in the caches, where the extra
    /// loads of prefetchBucket cost more than they save.
    @inlinable @inline(__always) static var prefetchMinimumBytes: Int { 4 << 20 }

    /// The bucket's 8 tophash bytes as one little-endian word (byte i is slot i).
    @inlinable @inline(__always) func tophashWord(_ bk: UnsafeMutableRawPointer) -> UInt64 {
        UInt64(littleEndian: bk.load(as: UInt64.self))
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
        bk + (layout.keysOffset &+ i &* layout.keyStride)
    }
    @inlinable @inline(__always) func valueSlot(_ bk: UnsafeMutableRawPointer, _ i: Int) -> UnsafeMutableRawPointer {
        bk + (layout.valuesOffset &+ i &* layout.valueStride)
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
        // 64-bit integer keys (the fast64 maps) take a seeded multiply-fold
        // hash inline instead of a call into SipHash; the type test folds
        // away in specialized code.
        if Key.self == Int.self || Key.self == UInt.self || Key.self == Int64.self || Key.self == UInt64.self {
            return UInt(_wordHash(unsafeBitCast(key, to: UInt64.self), wordSeed))
        }
        return UInt(bitPattern: key._rawHashValue(seed: seed))
    }

    @inlinable @inline(__always) static func top(_ hash: UInt) -> UInt8 {
        let t = UInt8(truncatingIfNeeded: hash >> 56)
        return t < minTopHash ? t &+ minTopHash : t
    }

    @inlinable var oldB: Int { sameSizeGrow ? b : b &- 1 }
    @inlinable var isGrowing: Bool { oldBuckets != nil }
    /// 2^B - 1: the low hash bits that pick a bucket.
    @inlinable @inline(__always) var bucketMask: Int { (1 &<< b) &- 1 }
    /// 2^oldB - 1, for the old array of a growth.
    @inlinable @inline(__always) var oldBucketMask: Int { (1 &<< oldB) &- 1 }

    // MARK: tophash words
    //
    // The scans compare all 8 tophash bytes of a bucket at once (SWAR on one
    // word) instead of slot by slot: the same answers as Go's loop, with one
    // branch per bucket instead of one per slot. A tophash byte is emptyRest
    // (0), emptyOne (1), an evacuation mark (2-4, old buckets only) or a
    // key's top (>= 5), and nothing follows an emptyRest in its chain, so a
    // match found anywhere in a bucket is a real one and an emptyRest in a
    // bucket ends the chain.

    /// A high bit set in each byte of `v` that is zero (exact, no false positives).
    @inlinable @inline(__always) static func zeroBytes(_ v: UInt64) -> UInt64 {
        let low7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
        return ~(((v & low7) &+ low7) | v | low7)
    }
    /// Bytes of the word equal to `top`.
    @inlinable @inline(__always) static func matches(_ w: UInt64, _ top: UInt8) -> UInt64 {
        zeroBytes(w ^ (UInt64(top) &* 0x0101_0101_0101_0101))
    }
    /// Empty slots (emptyRest or emptyOne).
    @inlinable @inline(__always) static func empties(_ w: UInt64) -> UInt64 {
        zeroBytes(w & 0xFEFE_FEFE_FEFE_FEFE)
    }
    /// Slots holding an entry (tophash >= minTopHash) in a bucket that is not
    /// evacuated (whose bytes are all 0, 1 or >= 5).
    @inlinable @inline(__always) static func occupied(_ w: UInt64) -> UInt64 {
        ~empties(w) & 0x8080_8080_8080_8080
    }
    /// The slot of the lowest flagged byte.
    @inlinable @inline(__always) static func firstSlot(_ m: UInt64) -> Int {
        m.trailingZeroBitCount &>> 3
    }

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
        let (n, bytes) = bucketArrayShape(shift)
        let align = max(8, MemoryLayout<Key>.alignment, MemoryLayout<Value>.alignment)
        let p = zeroed ? heap.allocateZeroed(byteCount: bytes, alignment: align)
                       : heap.allocate(byteCount: bytes, alignment: align)
        return (p, n, heap.usableSize(of: p))
    }

    /// Buckets and bytes of the array makeBucketArray allocates for `shift`.
    @inlinable func bucketArrayShape(_ shift: Int) -> (buckets: Int, bytes: Int) {
        var n = 1 << shift
        let size = layout.size
        if shift >= 4 {
            n += 1 << (shift - 4)
            let bytes = size * n
            let up = SizeClasses.roundUp(byteCount: bytes)
            if up != bytes { n = up / size }
        }
        return (n, size * n)
    }

    @inlinable func installNewArray(_ shift: Int, zeroed: Bool = true) {
        let (p, n, usable) = makeBucketArray(shift, zeroed: zeroed)
        install(p, buckets: n, usable: usable, shift: shift)
    }

    @inlinable func install(_ p: UnsafeMutableRawPointer, buckets n: Int, usable: Int, shift: Int) {
        buckets = p
        allocatedBuckets = n
        nextPrealloc = 1 << shift
        bucketArrayBytes = usable
        planPrefault()
    }
}
