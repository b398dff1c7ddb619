// IncrementalMap: Go's classic hash map (go1.19 hmap) in Swift, on GoHeap.
//
// Layout. 2^B buckets of 8 slots. A bucket is 8 tophash bytes, then 8 keys,
// then 8 values, then a pointer to an overflow bucket, each part aligned as
// its type needs (144 bytes for Int64 keys and values). Keys or values over
// 128 bytes live out of line: the slot holds a pointer to a GoHeap box.
// Where it takes exactly Go's bucket size (Int64 keys and values, String keys,
// most pairs without padding), each key sits next to its value instead of
// all keys then all values: a lookup then finds the value in the cache line
// of its key. Go lays keys and values apart to avoid padding; that case keeps
// Go's order. The bucket size, and so every byte count, is Go's either way.
// make(map, hint) picks the smallest B whose 6.5-per-bucket load holds the
// hint, and for B >= 4 allocates 2^(B-4) extra overflow buckets in the same
// allocation, plus every further whole bucket the size class rounding leaves.
//
// Hashing. Swift's Hasher (the raw hash Dictionary uses) seeded per map,
// except for 64-bit integer keys (Int, UInt, Int64, UInt64), which take an
// inline seeded multiply-fold hash (_wordHash, salted per process) as Go's
// fast64 maps take a cheap word hash: SipHash's call and rounds were most of
// an Int lookup's instructions, and an operation's instructions bound how
// many later operations the CPU can start while it waits on memory. The
// top 8 bits are the tophash, shifted above Go's reserved markers (0 empty and
// nothing after, 1 empty, 2/3 evacuated to the low/high half, 4 evacuated
// empty); the low B bits pick the bucket. Scans compare a bucket's 8 tophash
// bytes as one word (see "tophash words"), and on tables over 4 MiB prefetch
// all of a bucket's cache lines before reading its tophash word.
//
// Speed. The hot paths are @inlinable, so a client's concrete
// IncrementalMap<K, V> is specialized: the bucket layout is computed from the
// two types, not stored, and folds to constants, so bucket and slot
// addresses are multiply-adds by constants and evacuation copies fixed-size
// slots; the storage's fields skip dynamic exclusivity checks (they are
// reached only through the map, which makes the storage unique first).
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
// First touch (issue 13). What was left of a growth's cost in one insert was
// the kernel's: the growth's writes land on random buckets of the fresh new
// array, so the first writes of a doubling each faulted in pages of it, on
// the huge path whole 2 MiB pages (milliseconds each on a virtual machine).
// Evacuation cannot run ahead of that, since a write's own bucket is
// evacuated first wherever it is; a heap path without huge pages would trade
// the stall for TLB misses on every lookup. So the map faults the array in
// before the growth instead: the next doubling's array is allocated when the
// count comes within a small window of the trigger and each write touches a
// bounded part of it (see "preparing the next doubling's array"). B, the
// trigger and the array's size stay exactly Go's.
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

import CShims
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

/// How an IncrementalMap prepares the array of its next doubling ahead of
/// the growth, for tools and tests.
public struct MapPrefaultStatistics: Sendable, Equatable {
    /// The count at which writes start preparing the next doubling's array
    /// (nil when that array is too small to be prepared).
    public var growthStartsAtCount: Int?
    /// Bytes of the next doubling's array allocated ahead (0 when none is).
    public var nextArrayBytes = 0
    /// Bytes of that array touched so far.
    public var touchedBytes = 0
    /// Bytes touched ahead over the map's life, and the most one write touched.
    public var totalTouchedBytes = 0
    public var maxBytesTouchedByOneWrite = 0
    /// Doublings that installed an array prepared ahead, and those of them
    /// whose array was entirely touched when the growth started.
    public var preparedGrowths = 0
    public var fullyTouchedGrowths = 0

    public init(growthStartsAtCount: Int? = nil, nextArrayBytes: Int = 0, touchedBytes: Int = 0,
                totalTouchedBytes: Int = 0, maxBytesTouchedByOneWrite: Int = 0,
                preparedGrowths: Int = 0, fullyTouchedGrowths: Int = 0) {
        self.growthStartsAtCount = growthStartsAtCount
        self.nextArrayBytes = nextArrayBytes
        self.touchedBytes = touchedBytes
        self.totalTouchedBytes = totalTouchedBytes
        self.maxBytesTouchedByOneWrite = maxBytesTouchedByOneWrite
        self.preparedGrowths = preparedGrowths
        self.fullyTouchedGrowths = fullyTouchedGrowths
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
    @inlinable
    public static func overLoadFactor(count: Int, bucketShift b: Int) -> Bool {
        count > 8 && count > growthThreshold(bucketShift: b)
    }

    /// The largest count 2^B buckets hold without exceeding the load factor
    /// (at least 8): Go's 6.5 * 2^B, as integer arithmetic.
    @inlinable
    public static func growthThreshold(bucketShift b: Int) -> Int {
        Swift.max(8, 13 &* ((1 &<< b) / 2))
    }

    /// The most bytes of the next doubling's array one write touches ahead
    /// of the growth (see IncrementalMap's "preparing the next doubling").
    @inlinable public static var prefaultBytesPerWrite: Int { 32 << 10 }
    /// Next arrays smaller than this are not prepared ahead.
    @inlinable public static var prefaultMinimumBytes: Int { 256 << 10 }

    /// The B that make(map, hint) starts with.
    public static func bucketShift(forHint hint: Int) -> Int {
        var b = 0
        while overLoadFactor(count: hint, bucketShift: b) { b += 1 }
        return b
    }
}

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

    // MARK: preparing the next doubling's array
    //
    // A doubling's writes land on random buckets of the new array from its
    // first write on, so an array fresh from the OS would be faulted in by
    // them: on the huge path a write that is first to touch a 2 MiB page pays
    // for the kernel clearing it (milliseconds on a virtual machine, where the
    // host faults too), and the first writes of a growth would pay for many.
    // So when the count comes within a window of the growth trigger, the map
    // allocates the next doubling's array ahead (the same allocation the
    // doubling would make) and every write touches up to
    // prefaultBytesPerWrite of it, one store per 4 KiB page, until all of it
    // is touched. The window is twice the writes that takes, so the array is
    // normally fully faulted in before the trigger and the doubling's writes
    // fault nothing. Only arrays of prefaultMinimumBytes and more are
    // prepared. The trigger, B and the array's size stay Go's; only the time
    // the array is allocated moves (by a fraction of a percent of the
    // inserts). A map whose count stays inside the window keeps the prepared
    // array until it grows or dies. Same-size growths (which nothing
    // predicts) and tables made at their final size are faulted in by their
    // writes as before, a bounded number of buckets per write.

    /// Picks the count at which preparing the next doubling's array starts.
    @inlinable func planPrefault() {
        let (_, bytes) = bucketArrayShape(b &+ 1)
        guard bytes >= MapConstants.prefaultMinimumBytes else {
            prefaultStart = Int.max
            return
        }
        let perWrite = MapConstants.prefaultBytesPerWrite
        let writes = (bytes + perWrite - 1) / perWrite
        prefaultStart = growthThreshold - 2 * writes - 64
    }

    /// One write's share of preparing the next array: allocate it on the
    /// first call, then touch up to prefaultBytesPerWrite of it.
    @inlinable @inline(never) func prefaultStep() {
        let shift = b &+ 1
        if nextArray == nil || nextArrayShift != shift {
            if let stale = nextArray { heap.deallocate(stale) }
            let (p, n, usable) = makeBucketArray(shift, zeroed: false)
            nextArray = p
            nextArrayShift = shift
            nextArrayBuckets = n
            nextArrayUsable = usable
            nextArrayTouched = 0
        }
        let end = nextArrayBuckets &* layout.size
        var off = nextArrayTouched
        if off >= end { return }
        let p = nextArray.unsafelyUnwrapped
        let stop = Swift.min(end, off &+ MapConstants.prefaultBytesPerWrite)
        let page = 4096
        // The array is allocated but unused (not even cleared): any byte may
        // be written. One store per page faults it in.
        while off < stop {
            (p + off).storeBytes(of: 0, as: UInt8.self)
            off = (off &+ page) & ~(page &- 1)
        }
        let touched = Swift.min(off, end)
        prefaultBytesTouched &+= touched &- nextArrayTouched
        prefaultMaxPerWrite = Swift.max(prefaultMaxPerWrite, touched &- nextArrayTouched)
        nextArrayTouched = touched
    }

    /// The array for a doubling to `shift`: the prepared one if there is one.
    @inlinable func takeNextArray(_ shift: Int) -> (UnsafeMutableRawPointer, Int, Int) {
        if let p = nextArray {
            nextArray = nil
            if nextArrayShift == shift {
                preparedGrowths &+= 1
                if nextArrayTouched >= nextArrayBuckets &* layout.size { fullyTouchedGrowths &+= 1 }
                return (p, nextArrayBuckets, nextArrayUsable)
            }
            heap.deallocate(p)
        }
        return makeBucketArray(shift, zeroed: false)
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
            separateOverflows &+= 1
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

    /// The count above which a new key starts a doubling (Go's overLoadFactor).
    @inlinable @inline(__always) var growthThreshold: Int { MapConstants.growthThreshold(bucketShift: b) }

    @inlinable func tooManyOverflowBuckets() -> Bool {
        noverflow >= 1 &<< min(b, 15)
    }

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

    // MARK: growth

    /// Go's hashGrow: allocate the new array; entries move later.
    @inlinable func hashGrow() {
        let bigger = MapConstants.overLoadFactor(count: count + 1, bucketShift: b)
        sameSizeGrow = !bigger
        oldBuckets = buckets
        oldAllocatedBuckets = allocatedBuckets
        if bigger {
            b += 1
            let (p, n, usable) = takeNextArray(b)
            install(p, buckets: n, usable: usable, shift: b)
        } else {
            installNewArray(b, zeroed: false)
        }
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
        let newbit = 1 &<< oldB
        if !isEvacuated(ob) {
            // Destinations: x (same index) and, when doubling, y (index + 2^oldB).
            // Nothing has used them yet (writes to them evacuate this bucket
            // first), so they are cleared here rather than when the array was made.
            let xb = bucket(cur, oldIndex)
            let yb = sameSizeGrow ? xb : bucket(cur, oldIndex + newbit)
            memset(xb, 0, layout.size)
            if !sameSizeGrow { memset(yb, 0, layout.size) }
            // Which half an entry goes to (y: 1) is a coin toss, so the
            // destinations are picked by indexing, not by a branch: a
            // mispredicted branch would also discard the next entry's
            // hashing, which otherwise overlaps this one's moves. dest[h] is
            // half h's current bucket, dest[2 + h] its next free slot.
            let yMask = sameSizeGrow ? 0 : UInt(newbit)
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 4) { dest in
                dest[0] = Int(bitPattern: xb)
                dest[1] = Int(bitPattern: yb)
                dest[2] = 0
                dest[3] = 0
                var chain: UnsafeMutableRawPointer? = ob
                while let c = chain {
                    let th = tophash(c)
                    let w = tophashWord(c)
                    var marks = UInt64(evacuatedEmpty) &* 0x0101_0101_0101_0101
                    var m = Self.occupied(w)
                    while m != 0 {
                        let i = Self.firstSlot(m)
                        m &= m &- 1
                        let y = yMask == 0 ? 0 : Int(truncatingIfNeeded: (hash(keyPtr(c, i).pointee) & yMask) &>> UInt(oldB))
                        // evacuatedEmpty (4) becomes evacuatedX (2) or evacuatedY (3).
                        marks &-= UInt64(truncatingIfNeeded: 2 &- y) &<< (i &* 8)
                        var db = UnsafeMutableRawPointer(bitPattern: dest[y]).unsafelyUnwrapped
                        var di = dest[2 &+ y]
                        if _slowPath(di == 8) {
                            db = newOverflow(after: db)
                            dest[y] = Int(bitPattern: db)
                            di = 0
                        }
                        tophash(db)[di] = th[i]
                        // Move the slot contents: the inline key and value, or their box pointers.
                        keySlot(db, di).copyMemory(from: keySlot(c, i), byteCount: layout.keySlot)
                        valueSlot(db, di).copyMemory(from: valueSlot(c, i), byteCount: layout.valueSlot)
                        dest[2 &+ y] = di &+ 1
                    }
                    c.storeBytes(of: marks.littleEndian, as: UInt64.self)
                    let next = overflow(c)
                    if c != ob && isSeparate(c, array: old, allocated: oldAllocatedBuckets) {
                        heap.deallocate(c)
                        separateOverflows &-= 1
                    }
                    chain = next
                }
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

    /// Makes the storage exist and be referenced by this map alone.
    @inlinable @inline(__always)
    mutating func _makeUnique() {
        if _storage == nil {
            _storage = _MapStorage(heap: heap, bucketShift: 0)
        } else if !isKnownUniquelyReferenced(&_storage) {
            _storage = _storage!.copy()
        }
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

    /// How the next doubling's array is prepared ahead of the growth (see
    /// the design note in IncrementalMap.swift).
    public var prefaultStatistics: MapPrefaultStatistics {
        guard let s = _storage else { return MapPrefaultStatistics() }
        return MapPrefaultStatistics(
            growthStartsAtCount: s.prefaultStart == Int.max ? nil : s.prefaultStart,
            nextArrayBytes: s.nextArray == nil ? 0 : s.nextArrayBuckets * s.layout.size,
            touchedBytes: s.nextArray == nil ? 0 : s.nextArrayTouched,
            totalTouchedBytes: s.prefaultBytesTouched, maxBytesTouchedByOneWrite: s.prefaultMaxPerWrite,
            preparedGrowths: s.preparedGrowths, fullyTouchedGrowths: s.fullyTouchedGrowths)
    }

    /// Growths started, and the most inserts any completed growth took to drain.
    public var growthStatistics: (growths: Int, maxDrainInserts: Int) {
        (_storage?.growths ?? 0, _storage?.maxDrainInserts ?? 0)
    }
}
