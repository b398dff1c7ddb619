// Spans: runs of 8 KiB pages, each holding objects of one size class, or one
// large object, or nothing (a free run in the page allocator).
//
// What this tier owns: the span metadata block and its allocation state.
//
// Allocation state of a small-object span is a bitmap with one bit per object,
// set while the object is allocated ("allocBits"). It makes a double free exact
// (the bit is already clear) instead of a matter of luck, which an intrusive
// free list cannot do. allocBits is always the truth: the owning mcache
// allocates by setting the lowest clear bit of one word (count-trailing-zeros
// on its complement) and frees by clearing the bit, with plain stores, so any
// other thread that reads the word sees exactly which objects are live.
//
// Frees from threads that do not own the span go to a second bitmap
// ("remoteBits") with an atomic OR; a flag ("remotePending") tells the owner
// there is something to collect. Whoever owns the span (its mcache, or its
// mcentral under the mcentral lock) merges remote bits into allocBits. This is
// the remote-free list idea of mimalloc, with a bitmap in place of a list so
// duplicates cannot corrupt it. Every double free is caught where it happens,
// whatever the threads:
//   - local then local: the allocBits bit is clear;
//   - remote then remote: the OR finds the remoteBits bit set;
//   - local then remote: the remote freer reads a clear allocBits bit;
//   - remote then local: the owner finds the remoteBits bit set.
// Two frees of one object racing on two threads with nothing ordering them
// (a data race in the program) are caught when the remote bits are merged,
// unless the owner reallocated the object in between.
//
// Ownership and locking:
//   - `owner` is the mcache that has the span checked out, or 0. Only the owner
//     writes allocBits while it is set; the mcentral writes them only while the
//     span sits in its lists (owner 0) and it holds its lock.
//   - remote freers only read allocBits (atomically) and atomically update
//     remoteBits / remotePending / read location.
//   - base, npages, class and list links are written under the heap lock (free
//     runs) or by the mcentral (partial/full lists) and are stable while a span
//     is in use.

import Synchronization

/// What a span currently is.
@usableFromInline
enum SpanState: Int {
    case unused = 0  // in the span pool
    case free = 1  // a free run of pages in the page allocator
    case small = 2  // objects of one size class
    case large = 3  // one object > 32 KiB
    case scavenging = 4  // a free run taken out of the index while the OS releases it
}

/// One bitmap of a span record: 64-bit atomic words 16 bytes apart (the
/// allocation and remote-free bitmaps are interleaved word by word).
@usableFromInline
struct BitWords {
    @usableFromInline let base: UnsafeMutableRawPointer

    @inlinable @inline(__always)
    init(base: UnsafeMutableRawPointer) { self.base = base }

    @inlinable @inline(__always)
    func address(_ w: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        (base + w &* 16).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    @usableFromInline
    subscript(w: Int) -> Atomic<UInt64> {
        @inline(__always) unsafeAddress { UnsafePointer(address(w)) }
    }
}

/// How the owning cache holds a span it owns.
@usableFromInline
enum CachedState: Int {
    /// The span the cache allocates from.
    case current = 0
    /// On the cache's list of owned spans with free objects.
    case spare = 1
    /// On the cache's list of owned spans that were full when it moved on.
    case fullSpare = 2
}

/// Where a small-object span is, for remote frees that must find it.
enum SpanLocation: Int {
    case none = 0
    case cached = 1
    case partial = 2
    case full = 3
}

/// Handle to a span's metadata block.
@usableFromInline
struct SpanRef: Equatable, @unchecked Sendable {
    @usableFromInline let raw: UnsafeMutableRawPointer

    @inlinable @inline(__always)
    init(_ raw: UnsafeMutableRawPointer) { self.raw = raw }

    static let maxWords = 16  // 1024 objects: the most any class has (8-byte class)
    static let blockBytes = 448
    // Layout. Line 0 holds everything a free reads to find, check and clear
    // the object (base, division magic, object size, count, class, state,
    // owner, where its cache keeps it, the live count of a spare) and the
    // first two words of both bitmaps, side by side: a free of one of the
    // first 128 objects (every object of classes of 64 bytes and more) touches
    // this one line of the record. Later bitmap words follow, four pairs to a
    // line, then owner-only refill fields. Line 5 is the rest of what a free
    // by another thread reads and writes (the last owner, the profiler's
    // count, remotePending and the location) with the list links and the
    // partition a refill's scan of full spares reads with the flag: a remote
    // free touches two lines of the record. Cold fields last.
    @usableFromInline static let baseOff = 0, ownerOff = 8, divMagicOff = 16, objectSizeOff = 20
    @usableFromInline static let nelemsOff = 24, liveCountOff = 26, spanClassOff = 28, stateOff = 29
    @usableFromInline static let cachedStateOff = 30
    @usableFromInline static let bitsOff = 32, bitsStride = 16  // allocBits[w] at 32 + 16w, remoteBits[w] 8 after
    @usableFromInline static let npagesOff = 288, nwordsOff = 296, scanWordOff = 304, elemSizeOff = 312
    @usableFromInline static let pendingOff = 320, locationOff = 328, nextOff = 336, prevOff = 344
    @usableFromInline static let lastOwnerOff = 352, partitionOff = 368
    static let profiledObjectsOff = 360  // HeapProfiler.swift
    @usableFromInline static let dirtyNextOff = 384, dirtyPrevOff = 392, dirtyPagesOff = 400, poolOff = 408

    // MARK: plain fields

    @inlinable var base: UInt {
        @inline(__always) get { raw.load(fromByteOffset: Self.baseOff, as: UInt.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.baseOff, as: UInt.self) }
    }
    @inlinable var npages: Int {
        @inline(__always) get { raw.load(fromByteOffset: Self.npagesOff, as: Int.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.npagesOff, as: Int.self) }
    }
    /// Bytes per object: the class size of a small span, the whole run of a
    /// large one (up to 2^47, hence not the fast paths' 32-bit objectSize).
    var elemSize: Int {
        @inline(__always) get { raw.load(fromByteOffset: Self.elemSizeOff, as: Int.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.elemSizeOff, as: Int.self) }
    }
    /// The class size of a small span, in line 0 for the fast paths.
    @inlinable var objectSize: Int {
        @inline(__always) get { Int(raw.load(fromByteOffset: Self.objectSizeOff, as: UInt32.self)) }
        @inline(__always) nonmutating set { raw.storeBytes(of: UInt32(truncatingIfNeeded: newValue), toByteOffset: Self.objectSizeOff, as: UInt32.self) }
    }
    /// Objects in the span (at most 1024).
    @inlinable var nelems: Int {
        @inline(__always) get { Int(raw.load(fromByteOffset: Self.nelemsOff, as: UInt16.self)) }
        @inline(__always) nonmutating set { raw.storeBytes(of: UInt16(truncatingIfNeeded: newValue), toByteOffset: Self.nelemsOff, as: UInt16.self) }
    }
    /// Span class (fewer than 256 of them).
    @inlinable var spanClass: Int {
        @inline(__always) get { Int(raw.load(fromByteOffset: Self.spanClassOff, as: UInt8.self)) }
        @inline(__always) nonmutating set { raw.storeBytes(of: UInt8(truncatingIfNeeded: newValue), toByteOffset: Self.spanClassOff, as: UInt8.self) }
    }
    @inlinable var state: SpanState {
        @inline(__always) get { SpanState(rawValue: Int(raw.load(fromByteOffset: Self.stateOff, as: UInt8.self))) ?? .unused }
        @inline(__always) nonmutating set { raw.storeBytes(of: UInt8(newValue.rawValue), toByteOffset: Self.stateOff, as: UInt8.self) }
    }
    var next: SpanRef? {
        @inline(__always) get { raw.load(fromByteOffset: Self.nextOff, as: UnsafeMutableRawPointer?.self).map(SpanRef.init) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue?.raw, toByteOffset: Self.nextOff, as: UnsafeMutableRawPointer?.self) }
    }
    var prev: SpanRef? {
        @inline(__always) get { raw.load(fromByteOffset: Self.prevOff, as: UnsafeMutableRawPointer?.self).map(SpanRef.init) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue?.raw, toByteOffset: Self.prevOff, as: UnsafeMutableRawPointer?.self) }
    }
    /// 2^32 / elemSize rounded up: object index = (offset * divMagic) >> 32,
    /// exact for every offset inside a span, without a division.
    @inlinable var divMagic: UInt {
        @inline(__always) get { UInt(raw.load(fromByteOffset: Self.divMagicOff, as: UInt32.self)) }
        @inline(__always) nonmutating set { raw.storeBytes(of: UInt32(truncatingIfNeeded: newValue), toByteOffset: Self.divMagicOff, as: UInt32.self) }
    }
    var nwords: Int {
        @inline(__always) get { raw.load(fromByteOffset: Self.nwordsOff, as: Int.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.nwordsOff, as: Int.self) }
    }
    /// Owner-only cursor: the word after the last one checked out.
    var scanWord: Int {
        @inline(__always) get { raw.load(fromByteOffset: Self.scanWordOff, as: Int.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.scanWordOff, as: Int.self) }
    }
    /// Dirty pages of a free run (may be resident; not known to read as zero).
    var dirtyPages: Int {
        get { raw.load(fromByteOffset: Self.dirtyPagesOff, as: Int.self) }
        nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.dirtyPagesOff, as: Int.self) }
    }
    /// The cache that owned the span when it filled (a hint: that cache takes
    /// the span back on its first local free into it; see MCache.swift).
    /// Relaxed atomic: freeing threads read it without a lock while the
    /// mcentral clears it when another cache checks the span out.
    @inlinable var lastOwner: UInt {
        @inline(__always) get {
            (raw + Self.lastOwnerOff).assumingMemoryBound(to: Atomic<UInt>.self).pointee.load(ordering: .relaxed)
        }
        @inline(__always) nonmutating set {
            (raw + Self.lastOwnerOff).assumingMemoryBound(to: Atomic<UInt>.self).pointee.store(newValue, ordering: .relaxed)
        }
    }
    /// Allocated objects of a span its cache owns but does not allocate from
    /// (owner only; collected remote frees are subtracted when collected).
    @inlinable var liveCount: Int {
        @inline(__always) get { Int(raw.load(fromByteOffset: Self.liveCountOff, as: UInt16.self)) }
        @inline(__always) nonmutating set { raw.storeBytes(of: UInt16(truncatingIfNeeded: newValue), toByteOffset: Self.liveCountOff, as: UInt16.self) }
    }
    /// Where the owning cache keeps the span (owner only).
    @inlinable var cachedState: CachedState {
        @inline(__always) get { CachedState(rawValue: Int(raw.load(fromByteOffset: Self.cachedStateOff, as: UInt8.self))) ?? .current }
        @inline(__always) nonmutating set { raw.storeBytes(of: UInt8(newValue.rawValue), toByteOffset: Self.cachedStateOff, as: UInt8.self) }
    }

    /// The heap partition (NUMA node) whose pages these are (Partition.swift).
    var partition: Int {
        @inline(__always) get { raw.load(fromByteOffset: Self.partitionOff, as: Int.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.partitionOff, as: Int.self) }
    }

    /// Links of the page allocator's list of free runs with dirty pages.
    var dirtyNext: SpanRef? {
        get { raw.load(fromByteOffset: Self.dirtyNextOff, as: UnsafeMutableRawPointer?.self).map(SpanRef.init) }
        nonmutating set { raw.storeBytes(of: newValue?.raw, toByteOffset: Self.dirtyNextOff, as: UnsafeMutableRawPointer?.self) }
    }
    var dirtyPrev: SpanRef? {
        get { raw.load(fromByteOffset: Self.dirtyPrevOff, as: UnsafeMutableRawPointer?.self).map(SpanRef.init) }
        nonmutating set { raw.storeBytes(of: newValue?.raw, toByteOffset: Self.dirtyPrevOff, as: UnsafeMutableRawPointer?.self) }
    }
    var pool: ArenaPool {
        get { ArenaPool(rawValue: raw.load(fromByteOffset: Self.poolOff, as: Int.self)) ?? .normal }
        nonmutating set { raw.storeBytes(of: newValue.rawValue, toByteOffset: Self.poolOff, as: Int.self) }
    }

    var limit: UInt { base + UInt(npages << SizeClasses.pageShift) }

    // MARK: atomic fields

    @inlinable var owner: UnsafeMutablePointer<Atomic<UInt>> {
        @inline(__always) get { (raw + Self.ownerOff).assumingMemoryBound(to: Atomic<UInt>.self) }
    }
    var location: UnsafeMutablePointer<Atomic<Int>> {
        @inline(__always) get { (raw + Self.locationOff).assumingMemoryBound(to: Atomic<Int>.self) }
    }
    /// Word w of the allocation bitmap (bit set: object allocated).
    @inlinable var allocBits: BitWords {
        @inline(__always) get { BitWords(base: raw + Self.bitsOff) }
    }
    /// 1 once a remote free landed since the last collection (raised by the
    /// first such freer, lowered by the collector before it takes the bits).
    var remotePending: UnsafeMutablePointer<Atomic<Int>> {
        @inline(__always) get { (raw + Self.pendingOff).assumingMemoryBound(to: Atomic<Int>.self) }
    }
    /// Word w of the remote-free bitmap (bit set: freed by another thread, not collected).
    @inlinable var remoteBits: BitWords {
        @inline(__always) get { BitWords(base: raw + Self.bitsOff + 8) }
    }

    /// Binds a fresh metadata block's atomics. Called once per block.
    static func initializeBlock(_ raw: UnsafeMutableRawPointer) {
        let s = SpanRef(raw)
        s.owner.initialize(to: Atomic(0))
        s.location.initialize(to: Atomic(0))
        s.remotePending.initialize(to: Atomic(0))
        s.profiledObjects.initialize(to: Atomic(0))
        for w in 0..<maxWords {
            s.allocBits.address(w).initialize(to: Atomic(0))
            s.remoteBits.address(w).initialize(to: Atomic(0))
        }
    }

    // MARK: small-object state

    /// Turns a fresh run of pages into a small-object span of `spanClass`.
    func initSmall(spanClass: Int) {
        let sizeClass = spanClass >> 1
        let size = SizeClasses.classSize[sizeClass]
        let n = (npages << SizeClasses.pageShift) / size
        self.spanClass = spanClass
        self.elemSize = size
        self.objectSize = size
        self.nelems = n
        self.divMagic = UInt(UInt32.max) / UInt(size) + 1
        let words = (n + 63) >> 6
        self.nwords = words
        for w in 0..<words {
            allocBits[w].store(0, ordering: .relaxed)
            remoteBits[w].store(0, ordering: .relaxed)
        }
        // Bits past the last object read as allocated forever, so they are never handed out.
        if n & 63 != 0 {
            allocBits[words - 1].store(~0 << UInt64(n & 63), ordering: .relaxed)
        }
        remotePending.pointee.store(0, ordering: .relaxed)
        scanWord = 0
        lastOwner = 0
        cachedState = .current
        state = .small
    }

    /// Object index of an address inside this span, or nil if it is not the start of an object.
    @inlinable @inline(__always)
    func objectIndex(of addr: UInt) -> Int? {
        let off = addr &- base
        let idx = Int(truncatingIfNeeded: (off &* divMagic) >> 32)
        if idx &* objectSize != Int(bitPattern: off) || idx >= nelems { return nil }
        return idx
    }

    /// Finds a word with a free object, starting at `scanWord` and wrapping once.
    func findFreeWord() -> Int? {
        let words = nwords
        var w = scanWord
        if w >= words { w = 0 }
        for _ in 0..<words {
            if allocBits[w].load(ordering: .relaxed) != ~0 { return w }
            w += 1
            if w == words { w = 0 }
        }
        return nil
    }

    /// Number of allocated objects according to allocBits (no word checked out).
    func allocatedCount() -> Int {
        var n = 0
        for w in 0..<nwords { n += allocBits[w].load(ordering: .relaxed).nonzeroBitCount }
        let tail = nelems & 63
        return tail == 0 ? n : n - (64 - tail)
    }

    /// True if object `idx` is allocated and no other thread has freed it yet.
    func isLive(index idx: Int) -> Bool {
        let w = idx >> 6
        let bit: UInt64 = 1 << UInt64(idx & 63)
        return allocBits[w].load(ordering: .acquiring) & bit != 0
            && remoteBits[w].load(ordering: .acquiring) & bit == 0
    }

    /// Merges remote frees into allocBits. The caller owns the span (its cache,
    /// or its mcentral under the lock). Returns how many objects were freed.
    @discardableResult
    func collectRemoteFrees() -> Int {
        if remotePending.pointee.load(ordering: .acquiring) == 0 { return 0 }
        remotePending.pointee.store(0, ordering: .sequentiallyConsistent)
        var freed = 0
        for w in 0..<nwords {
            // A plain read first: most words of a span with pending frees
            // have none, and an exchange is a locked instruction per word.
            // A freer whose OR this read misses comes after the flag's reset
            // in the single order of these operations, so it raises the flag
            // again and the next collection takes its bit.
            if remoteBits[w].load(ordering: .sequentiallyConsistent) == 0 { continue }
            let r = remoteBits[w].exchange(0, ordering: .sequentiallyConsistent)
            let a = allocBits[w].load(ordering: .relaxed)
            if a & r != r {
                // Only two frees racing on two threads get here (see the note at the top).
                let bad = (r & ~a).trailingZeroBitCount
                heapFatal("double free of \(hex(base + UInt((w * 64 + bad) * elemSize))): object \(w * 64 + bad) of span \(describe()) was freed by two threads at once")
            }
            allocBits[w].store(a & ~r, ordering: .relaxed)
            freed += r.nonzeroBitCount
        }
        return freed
    }

    func describe() -> String {
        switch state {
        case .small:
            return "\(hex(base))-\(hex(limit)) (size class \(spanClass >> 1), \(elemSize) B objects, span class \(spanClass))"
        case .large:
            return "\(hex(base))-\(hex(limit)) (large object, \(npages) pages)"
        case .free, .scavenging:
            return "\(hex(base))-\(hex(limit)) (free pages)"
        case .unused:
            return "\(hex(raw)) (unused span record)"
        }
    }
}

/// Fixed-size allocator for span metadata blocks, carved from OS chunks and
/// never returned: span records are reused, so a stale page-map entry always
/// points at readable memory. Used under the heap lock.
///
/// Chunk sizes. The first `smallChunkCount` chunks are 256 KiB of ordinary
/// pages (2 MiB of records: 4 681 spans, a heap of about 37 MiB of one-page
/// spans), so a small heap pays no more than it uses. Later chunks are 2 MiB,
/// 2 MiB aligned and advised MADV_HUGEPAGE: a free reads one line of its
/// span's record, in whatever order the program frees, and on 4 KiB pages
/// (9 records to a page) a heap of a million small objects spreads its 17 000
/// records over 1 900 pages, more than the TLB maps; one huge page holds 4 681
/// records. The price is at most 2 MiB resident ahead of use, once the heap
/// is past 37 MiB.
struct SpanPool: @unchecked Sendable {
    private var freeList: SpanRef?
    private var chunk: UnsafeMutableRawPointer?
    private var chunkLeft = 0
    private(set) var chunks: [(UnsafeMutableRawPointer, Int)] = []
    static let chunkBytes = 256 << 10
    static let smallChunkCount = 8
    static let hugeChunkBytes = 2 << 20

    mutating func take() -> SpanRef? {
        if let s = freeList {
            freeList = s.next
            s.next = nil
            s.prev = nil
            return s
        }
        if chunkLeft < SpanRef.blockBytes {
            let huge = chunks.count >= Self.smallChunkCount
            let bytes = huge ? Self.hugeChunkBytes : Self.chunkBytes
            let (p, _) = OS.reserve(bytes: bytes, alignment: huge ? Self.hugeChunkBytes : 4096)
            guard let p else { return nil }
            // Advice only: without transparent huge pages the chunk works on
            // ordinary pages.
            if huge { _ = OS.adviseHuge(p, bytes: bytes, huge: true) }
            chunks.append((p, bytes))
            chunk = p
            chunkLeft = bytes
        }
        let raw = chunk!
        chunk = raw + SpanRef.blockBytes
        chunkLeft -= SpanRef.blockBytes
        SpanRef.initializeBlock(raw)
        return SpanRef(raw)
    }

    mutating func give(_ s: SpanRef) {
        s.state = .unused
        s.dirtyPages = 0
        s.dirtyNext = nil
        s.dirtyPrev = nil
        s.owner.pointee.store(0, ordering: .relaxed)
        s.location.pointee.store(SpanLocation.none.rawValue, ordering: .relaxed)
        s.prev = nil
        s.next = freeList
        freeList = s
    }

    /// Metadata bytes obtained from the OS.
    var bytesObtained: Int { chunks.reduce(0) { $0 + $1.1 } }

    func unmapAll() {
        for (p, n) in chunks { OS.unmap(p, bytes: n) }
    }
}
