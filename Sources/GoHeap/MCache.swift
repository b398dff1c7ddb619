// mcache: one thread's private cache of spans, one per span class.
//
// What this tier owns: for every span class, the span this thread has checked
// out of its mcentral and a 64-object window of it. The window is a free mask
// (bit i set: object windowBase + i * size is free) taken from one allocBits
// word. Allocation is count-trailing-zeros, clear-lowest-bit, multiply-add:
// no lock, no atomic read-modify-write, no write to the span. A free by the
// owning thread into its window sets the bit back, so the next allocation of
// that class reuses the object while it is still in cache.
//
// When a window runs dry the cache writes it back, looks for the next word with
// free objects (wrapping once), then collects remote frees, and only when the
// span is really full returns it to the mcentral and checks out another.
//
// Fields written only by the owning thread are plain memory. The free mask and
// the statistics counters are atomics accessed with relaxed loads and stores
// (plain moves on x86-64): other threads read the counters for statistics, and
// a dying heap clears the masks of caches that other threads still hold.
//
// Thread exit: a pthread key destructor (CShims) hands the dying thread's slot
// array to `threadExitHook`, which returns every cached span to its mcentral and
// folds the counters into the heap's totals.
//
// Registry: a global mutex maps heap slots to live heaps and lists each heap's
// caches. It is taken only to create or retire a cache, to read statistics, and
// to create or destroy a heap. Lock order: registry, then mcentral, then mheap.

import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Handle to one cache block: a header, then one 64-byte entry per span class.
@usableFromInline
struct MCacheRef: Equatable, @unchecked Sendable {
    @usableFromInline let raw: UnsafeMutableRawPointer

    @usableFromInline @inline(__always)
    init(_ raw: UnsafeMutableRawPointer) { self.raw = raw }

    static let headerBytes = 128
    static let entryBytes = 64
    static let blockBytes = headerBytes + SizeClasses.spanClassCount * entryBytes
    private static let epochOff = 0, deadOff = 8

    @usableFromInline @inline(__always)
    func entry(_ spanClass: Int) -> CacheEntry {
        CacheEntry(raw + Self.headerBytes + spanClass &* Self.entryBytes)
    }

    /// Identity of the heap this cache belongs to (heaps get distinct epochs).
    var epoch: Int {
        get { raw.load(fromByteOffset: Self.epochOff, as: Int.self) }
        nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.epochOff, as: Int.self) }
    }
    /// Set by a dying heap; the owner then rebuilds the cache on its slow path.
    var dead: UnsafeMutablePointer<Atomic<Int>> {
        (raw + Self.deadOff).assumingMemoryBound(to: Atomic<Int>.self)
    }

    var address: UInt { UInt(bitPattern: raw) }

    /// True if the cache still belongs to the heap with this epoch.
    @inline(__always)
    func isLive(epoch e: Int) -> Bool {
        dead.pointee.load(ordering: .acquiring) == 0 && epoch == e
    }

    static func create(epoch: Int) -> MCacheRef {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: blockBytes, alignment: 64)
        memset(raw, 0, blockBytes)
        let c = MCacheRef(raw)
        c.dead.initialize(to: Atomic(0))
        for i in 0..<SizeClasses.spanClassCount { c.entry(i).bind() }
        c.reset(epoch: epoch)
        return c
    }

    /// Forgets every span (they belonged to a heap that no longer exists) and
    /// rebinds the block to a heap. Owner thread only.
    func reset(epoch: Int) {
        for i in 0..<SizeClasses.spanClassCount { entry(i).clear() }
        self.epoch = epoch
        dead.pointee.store(0, ordering: .releasing)
    }

    func destroy() { raw.deallocate() }

    // MARK: refill and release

    /// Makes the window of `spanClass` non-empty. Returns false only when the
    /// OS refuses memory for a new span.
    func refill(_ spanClass: Int, from central: MCentral) -> Bool {
        let e = entry(spanClass)
        if let s = e.span {
            e.writeBack(s)
            if let w = s.findFreeWord() {
                e.checkOut(s, word: w)
                return true
            }
            if s.collectRemoteFrees() > 0, let w = s.findFreeWord() {
                e.checkOut(s, word: w)
                return true
            }
            e.span = nil
            central.uncacheSpan(s, allocated: s.nelems)
        }
        while true {
            guard let s = central.cacheSpan(owner: address) else { return false }
            if let w = s.findFreeWord() {
                e.span = s
                e.elemSize = s.elemSize
                e.checkOut(s, word: w)
                return true
            }
            // A span filed as partial on a spurious notification: it is full.
            central.uncacheSpan(s, allocated: s.nelems)
        }
    }

    /// Returns every span to its mcentral (thread exit, or an explicit flush).
    func releaseAll(to centrals: [MCentral]) {
        for spc in 0..<SizeClasses.spanClassCount {
            let e = entry(spc)
            guard let s = e.span else { continue }
            e.writeBack(s)
            s.collectRemoteFrees()
            e.span = nil
            centrals[spc].uncacheSpan(s, allocated: s.allocatedCount())
        }
    }

    /// Kills the cache on behalf of a dying heap (any thread, registry lock held):
    /// empties every window so the owner's fast path falls through to its slow path.
    func markDead() {
        for i in 0..<SizeClasses.spanClassCount {
            entry(i).freeMask.pointee.store(0, ordering: .relaxed)
        }
        dead.pointee.store(1, ordering: .releasing)
    }
}

/// Handle to one span class's entry in a cache.
@usableFromInline
struct CacheEntry: @unchecked Sendable {
    @usableFromInline let raw: UnsafeMutableRawPointer

    @usableFromInline @inline(__always)
    init(_ raw: UnsafeMutableRawPointer) { self.raw = raw }

    private static let maskOff = 0, windowBaseOff = 8, elemSizeOff = 16, spanOff = 24
    private static let windowWordOff = 32, mallocsOff = 40, freesOff = 48

    @usableFromInline var freeMask: UnsafeMutablePointer<Atomic<UInt64>> {
        @inline(__always) get { raw.assumingMemoryBound(to: Atomic<UInt64>.self) }
    }
    /// Address of object 0 of the window.
    @usableFromInline var windowBase: UInt {
        @inline(__always) get { raw.load(fromByteOffset: Self.windowBaseOff, as: UInt.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.windowBaseOff, as: UInt.self) }
    }
    @usableFromInline var elemSize: Int {
        @inline(__always) get { raw.load(fromByteOffset: Self.elemSizeOff, as: Int.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.elemSizeOff, as: Int.self) }
    }
    @usableFromInline var span: SpanRef? {
        @inline(__always) get { raw.load(fromByteOffset: Self.spanOff, as: UnsafeMutableRawPointer?.self).map(SpanRef.init) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue?.raw, toByteOffset: Self.spanOff, as: UnsafeMutableRawPointer?.self) }
    }
    /// allocBits word index of the window.
    @usableFromInline var windowWord: Int {
        @inline(__always) get { raw.load(fromByteOffset: Self.windowWordOff, as: Int.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.windowWordOff, as: Int.self) }
    }
    @usableFromInline var mallocs: UnsafeMutablePointer<Atomic<Int>> {
        @inline(__always) get { (raw + Self.mallocsOff).assumingMemoryBound(to: Atomic<Int>.self) }
    }
    @usableFromInline var frees: UnsafeMutablePointer<Atomic<Int>> {
        @inline(__always) get { (raw + Self.freesOff).assumingMemoryBound(to: Atomic<Int>.self) }
    }

    func bind() {
        freeMask.initialize(to: Atomic(0))
        mallocs.initialize(to: Atomic(0))
        frees.initialize(to: Atomic(0))
    }

    func clear() {
        freeMask.pointee.store(0, ordering: .relaxed)
        span = nil
        windowBase = 0
        windowWord = 0
        elemSize = 0
        mallocs.pointee.store(0, ordering: .relaxed)
        frees.pointee.store(0, ordering: .relaxed)
    }

    /// Pops one object, or returns nil when the window is empty.
    @usableFromInline @inline(__always)
    func pop() -> UnsafeMutableRawPointer? {
        let m = freeMask.pointee.load(ordering: .relaxed)
        if m == 0 { return nil }
        freeMask.pointee.store(m & (m &- 1), ordering: .relaxed)
        mallocs.pointee.store(mallocs.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        let i = UInt(truncatingIfNeeded: m.trailingZeroBitCount)
        return UnsafeMutableRawPointer(bitPattern: windowBase &+ i &* UInt(bitPattern: elemSize))
    }

    /// Takes allocBits word `w` of `s` into the window.
    func checkOut(_ s: SpanRef, word w: Int) {
        let a = s.allocBits[w].load(ordering: .relaxed)
        s.allocBits[w].store(~0, ordering: .relaxed)
        windowWord = w
        windowBase = s.base + UInt(w * 64 * s.elemSize)
        s.scanWord = w + 1
        freeMask.pointee.store(~a, ordering: .relaxed)
    }

    /// Puts the window's state back into allocBits; the window is then empty.
    func writeBack(_ s: SpanRef) {
        let m = freeMask.pointee.load(ordering: .relaxed)
        s.allocBits[windowWord].store(~m, ordering: .relaxed)
        freeMask.pointee.store(0, ordering: .relaxed)
    }

    /// Frees object `idx` of `s`, which this cache owns. Returns false if the
    /// object was not allocated (double free).
    @usableFromInline @inline(__always)
    func freeOwned(_ s: SpanRef, index idx: Int) -> Bool {
        let w = idx &>> 6
        let bit: UInt64 = 1 &<< UInt64(truncatingIfNeeded: idx & 63)
        if w == windowWord {
            let m = freeMask.pointee.load(ordering: .relaxed)
            if m & bit != 0 { return false }
            freeMask.pointee.store(m | bit, ordering: .relaxed)
        } else {
            let a = s.allocBits[w].load(ordering: .relaxed)
            if a & bit == 0 { return false }
            s.allocBits[w].store(a & ~bit, ordering: .relaxed)
        }
        frees.pointee.store(frees.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        return true
    }
}

// MARK: - registry of heaps and caches

/// Per-heap bookkeeping kept by the registry.
struct HeapRegistration {
    weak var heap: Heap?
    let epoch: Int
    var caches: [MCacheRef] = []
    /// Counters of caches whose threads have exited, per span class.
    var retiredMallocs = [Int](repeating: 0, count: SizeClasses.spanClassCount)
    var retiredFrees = [Int](repeating: 0, count: SizeClasses.spanClassCount)
}

struct RegistryState {
    var slots = [HeapRegistration?](repeating: nil, count: Int(GOHEAP_MAX_HEAPS))
    var nextEpoch = 1
    var scavengerRunning = false
}

let registry = Locked(RegistryState())

/// Runs in a dying thread (pthread key destructor): return every span to its
/// heap and fold the counters into the heap's totals.
let threadExitHook: goheap_thread_exit_fn = { slots in
    guard let slots else { return }
    for slot in 0..<Int(GOHEAP_MAX_HEAPS) {
        guard let raw = slots[slot] else { continue }
        slots[slot] = nil
        let c = MCacheRef(raw)
        // The strong reference is dropped after the lock: if it were the last
        // one, the heap's deinit (which takes the registry lock) runs outside it.
        var keepAlive: Heap?
        registry.withLock { r in
            if c.dead.pointee.load(ordering: .acquiring) == 0, var reg = r.slots[slot], reg.epoch == c.epoch,
               let heap = reg.heap {
                keepAlive = heap
                c.releaseAll(to: heap.centrals)
                for spc in 0..<SizeClasses.spanClassCount {
                    let e = c.entry(spc)
                    reg.retiredMallocs[spc] += e.mallocs.pointee.load(ordering: .relaxed)
                    reg.retiredFrees[spc] += e.frees.pointee.load(ordering: .relaxed)
                }
                reg.caches.removeAll { $0 == c }
                r.slots[slot] = reg
            }
        }
        keepAlive = nil
        c.destroy()
    }
}
