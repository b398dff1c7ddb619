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
// This file holds the public types and the struct's core (its initializers,
// count and heap). The storage is split by concern: +Storage (the class,
// bucket layout, hashing, bucket arrays), +Operations (lookup and writes),
// +Growth (growth and evacuation), +Traversal (copy, teardown, iteration).
// The rest of the API too: +Collection (indices, iteration), +Dictionary
// (Dictionary's key-based API), +Views (keys, values), +Codable,
// +Descriptions.

import GoHeap

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
