// mcache: one thread's private cache of spans, one per span class.
//
// What this tier owns: for every span class, the span this thread has checked
// out of its mcentral and the allocBits word it allocates from. Allocation
// reads that word, sets its lowest clear bit and turns the bit index into an
// address (count-trailing-zeros, multiply-add): no lock, no atomic
// read-modify-write. A free by the owning thread clears the bit again, so the
// next allocation of that class reuses the object while it is still in cache.
// allocBits stays the truth about every object, so other threads can check a
// free against it exactly (see Span.swift).
//
// When the word is full the cache looks for the next word with free objects
// (wrapping once), then collects remote frees, and only when the span is
// really full returns it to the mcentral (remembering this cache as its last
// owner) and moves on: first to a spare span, then to the mcentral.
//
// Spares. A thread usually frees what it allocated. The last spans of a
// class it filled (keptFullSpans of a class it also frees, fewer of one it
// only allocates) stay in its cache as full spares, so frees
// into them are local and the cache allocates from them again as soon as one
// has a free object: a thread that frees at random among its live objects
// (larson) takes no lock at all. Older full spans are filed in the mcentral's
// full list; the thread's first free into one takes it back (one mcentral
// lock per span, MCentral.reclaim) and every later free into it is local.
// Spares keep a count of their live objects and sit on one of two lists per
// entry: full spares, and spares a local free made room in (the first local
// free into a full spare moves it there). A refill takes the head of the
// second list, and only when that is empty looks at the full spares' remote-
// free flags, so it never walks spans it cannot allocate from, and their
// count is kept rather than counted. A spare is given back as soon as its
// last object is freed, so a thread that frees in bulk keeps no empty spans.
//
// Recently freed objects. With mixed sizes (larson), each class has a free
// slot or two at a time, spread over its spares, and the allocation word runs
// dry on most allocations of the larger classes: a refill (cache lock, spare
// lists, two or three span records) per object. So each entry also keeps a
// small stack of the objects this thread last freed into its spares (span
// record and object index). The free still clears the allocBits bit (a
// double free stays exact); the stack is only a hint. When the word is empty,
// allocation pops the most recent entry that still checks out (span owned by
// this cache, of this class, object bit clear) and sets its bit: no lock, no
// list, no page-map lookup, one span record line the free had just touched,
// and an object still warm in cache. Entries that no longer
// check out (the span left the cache, or the object was allocated again from
// the word) are dropped as they are met, so nothing has to purge the stack
// when a span leaves; a reclaimer never touches it (the owner pops without
// the lock, inside the fast-path bracket below, and a revoked span fails the
// owner check).
//
// Reclaiming a cache from outside. A thread that went idle keeps its spans
// until it exits, so the heap can take them back (releaseFreeMemory, and the
// background scavenger for caches idle longer than scavengeDelay). The owner
// never takes a lock or an atomic read-modify-write on its fast paths, so the
// hand-over is an asymmetric Dekker protocol:
//   - the owner brackets each fast-path operation with plain stores of
//     `active` = 1 / 0 (a compiler barrier keeps its accesses inside);
//   - the reclaimer takes the cache's lock (which the owner holds on its slow
//     paths), points every entry at an always-full word and clears `owner` in
//     every span, then runs an asymmetric fence (membarrier: a full barrier on
//     every running thread of the process), then waits until `active` reads 0.
// After that, an operation that started before the fence has finished, and one
// that starts after it sees the revoked state and goes to the slow path, which
// waits for the lock. The reclaimer then returns the spans to their mcentrals
// exactly as the owner would. Without a usable fence (or under ThreadSanitizer,
// which cannot see one) the heap only asks: `flushRequested`, honoured on the
// owner's next slow path.
//
// Fields written by the owning thread are plain memory or relaxed atomics
// (plain moves on x86-64): other threads read the statistics counters, and a
// dying heap or a reclaimer rewrites entries under the protocol above.
//
// Locking: the cache's own lock is held by the owner on its slow paths (refill,
// flush) and by a reclaimer; thread exit, reclaiming and fork live in
// Registry.swift, which also gives the lock order.

import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Handle to one cache block: a header, then one 256-byte entry per span class.
@usableFromInline
struct MCacheRef: Equatable, @unchecked Sendable {
    @usableFromInline let raw: UnsafeMutableRawPointer

    @inlinable @inline(__always)
    init(_ raw: UnsafeMutableRawPointer) { self.raw = raw }

    @usableFromInline static let headerBytes = 128
    /// An entry's first line is what the fast paths touch; the second holds
    /// the spare lists, which only refills and frees into spares read; the
    /// last two hold the stack of recently freed objects (CacheEntry.freed).
    @usableFromInline static let entryBytes = 256
    static let blockBytes = headerBytes + SizeClasses.spanClassCount * entryBytes
    @usableFromInline static let activeOff = 24
    @usableFromInline static let epochOff = 0, deadOff = 8, fullWordOff = 16, lockOff = 32
    @usableFromInline static let refillsOff = 40, flushRequestedOff = 48, spansHeldOff = 56
    @usableFromInline static let idleRefillsOff = 64, idleSinceOff = 72, profileRandomOff = 80, slowTicksOff = 88

    @inlinable @inline(__always)
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
    /// An allocBits word with every bit set: entries with no span point here,
    /// so their fast path finds no free object without a separate check.
    var fullWord: UInt { UInt(bitPattern: raw + Self.fullWordOff) }
    /// 1 while the owner is inside a fast-path operation (see the note at the top).
    @inlinable var active: UnsafeMutablePointer<Atomic<Int>> {
        @inline(__always) get { (raw + Self.activeOff).assumingMemoryBound(to: Atomic<Int>.self) }
    }
    /// Held by the owner on its slow paths and by a reclaimer.
    var lock: LockRef { LockRef((raw + Self.lockOff).assumingMemoryBound(to: goheap_lock_t.self)) }
    /// Slow-path entries by the owner: the scavenger compares snapshots to find idle caches.
    var refills: UnsafeMutablePointer<Atomic<Int>> {
        (raw + Self.refillsOff).assumingMemoryBound(to: Atomic<Int>.self)
    }
    /// Set by the heap when it wants the spans back and cannot take them itself.
    var flushRequested: UnsafeMutablePointer<Atomic<Int>> {
        (raw + Self.flushRequestedOff).assumingMemoryBound(to: Atomic<Int>.self)
    }
    /// Spans this cache has checked out.
    var spansHeld: UnsafeMutablePointer<Atomic<Int>> {
        (raw + Self.spansHeldOff).assumingMemoryBound(to: Atomic<Int>.self)
    }
    /// The scavenger's snapshot of `refills` and when it last changed (registry lock).
    var idleRefills: Int {
        get { raw.load(fromByteOffset: Self.idleRefillsOff, as: Int.self) }
        nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.idleRefillsOff, as: Int.self) }
    }
    var idleSince: Int {
        get { raw.load(fromByteOffset: Self.idleSinceOff, as: Int.self) }
        nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.idleSinceOff, as: Int.self) }
    }

    /// State of the heap profiler's random sample points (cache lock held).
    var profileRandom: UInt64 {
        get { raw.load(fromByteOffset: Self.profileRandomOff, as: UInt64.self) }
        nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.profileRandomOff, as: UInt64.self) }
    }

    /// The owner's slow-path operations, for heaps that scavenge from their
    /// slow paths (Scavenger.swift). Owner only.
    var slowTicks: Int {
        get { raw.load(fromByteOffset: Self.slowTicksOff, as: Int.self) }
        nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.slowTicksOff, as: Int.self) }
    }

    var address: UInt { UInt(bitPattern: raw) }

    /// True if the cache still belongs to the heap with this epoch.
    @inline(__always)
    func isLive(epoch e: Int) -> Bool {
        dead.pointee.load(ordering: .acquiring) == 0 && epoch == e
    }

    /// Start and end of a fast-path operation (owner only).
    /// An object of span class `spc` from the calling thread's cache for the
    /// heap in `slot`, or nil (no cache yet, the window is spent, or a sample
    /// is due): the fast path every allocation entry point shares.
    @inlinable @inline(__always)
    static func popCurrentThread(slot: Int, spanClass spc: Int) -> UnsafeMutableRawPointer? {
        guard let raw = goheap_tls_slots()[slot] else { return nil }
        let c = MCacheRef(raw)
        c.enter()
        let p = c.entry(spc).pop()
        c.leave()
        return p
    }

    @inlinable @inline(__always)
    func enter() {
        active.pointee.store(1, ordering: .relaxed)
        goheap_compiler_barrier()
    }

    @inlinable @inline(__always)
    func leave() {
        active.pointee.store(0, ordering: .releasing)
    }

    static func create(epoch: Int) -> MCacheRef {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: blockBytes, alignment: 64)
        memset(raw, 0, blockBytes)
        let c = MCacheRef(raw)
        raw.storeBytes(of: UInt64.max, toByteOffset: fullWordOff, as: UInt64.self)
        c.dead.initialize(to: Atomic(0))
        c.active.initialize(to: Atomic(0))
        c.refills.initialize(to: Atomic(0))
        c.flushRequested.initialize(to: Atomic(0))
        c.spansHeld.initialize(to: Atomic(0))
        for i in 0..<SizeClasses.spanClassCount { c.entry(i).bind() }
        c.reset(epoch: epoch)
        return c
    }

    /// Forgets every span (they belonged to a heap that no longer exists) and
    /// rebinds the block to a heap. Owner thread only, while no registry lists it.
    func reset(epoch: Int) {
        for i in 0..<SizeClasses.spanClassCount { entry(i).clear(fullWord: fullWord) }
        spansHeld.pointee.store(0, ordering: .relaxed)
        flushRequested.pointee.store(0, ordering: .relaxed)
        // The new heap counts its own slow paths from zero: a count carried
        // over from a dead heap made its first scavenging check come early.
        slowTicks = 0
        self.epoch = epoch
        dead.pointee.store(0, ordering: .releasing)
    }

    func destroy() { raw.deallocate() }

    // MARK: refill and release (cache lock held)

    /// Full spans an entry keeps as spares when it moves on from them, rather
    /// than filing them in the mcentral. A refill never walks them all
    /// (fullSparesLookedAt), so the bound is on what they may hold back: remote
    /// frees into a full spare wait for its owner's refills. A thread with more
    /// full spans of a class files the rest (and takes each back on its first
    /// free into it). 256 covers a larson thread's share of the largest
    /// classes: of 10 000 live objects of 16 to 1024 bytes, 1 270 are in the
    /// 1 KiB class at 8 per span, 80 spans a thread. With 64, each refill of
    /// those classes filed a span and the thread's next free into it took it
    /// back: about 20 mcentral lock round trips per 100 operations, each on
    /// a lock the other thread was using (larson 233 against 280
    /// instructions per operation). A full spare holds no free memory but
    /// what other threads free into it before a refill looks at it.
    static let keptFullSpans = 256
    /// The same bound for a class the thread has not freed since its last
    /// span of that class filled.
    static let keptFullSpansWithoutFrees = 8
    /// Full spares a refill looks at for remote frees before it asks the
    /// mcentral. Since the freed stacks serve most allocations that used to
    /// refill (larson: 8% of allocations refill, down from 35%), refills come
    /// too seldom for a look at 4 to keep up with other threads' frees: with
    /// 8 threads the spans waiting in full spares doubled larson-8's peak
    /// RSS (12 to 24 MiB). 16 brings it back to 14 MiB for 9 instructions
    /// per operation (64: 12 MiB, 36 instructions).
    static let fullSparesLookedAt = 16

    /// Makes the entry of `spanClass` able to allocate. Returns false only when
    /// the OS refuses memory for a new span.
    func refill(_ spanClass: Int, table: PartitionTable, target: Int) -> Bool {
        let e = entry(spanClass)
        if let s = e.span {
            // A span of another partition (the thread moved to another node)
            // goes home even if it has free objects.
            if s.partition == target {
                if let w = s.findFreeWord() {
                    e.checkOut(s, word: w)
                    return true
                }
                if s.collectRemoteFrees() > 0, let w = s.findFreeWord() {
                    e.checkOut(s, word: w)
                    return true
                }
            }
            e.drop(fullWord: fullWord)
            // Every word was full when it was last looked at (a span of this
            // partition), so unless remote frees have landed since, the span
            // is full: no need to count its bits (a refill per allocation of
            // the largest classes under larson).
            let collected = s.collectRemoteFrees()
            let live = s.partition == target && collected == 0 ? s.nelems : s.allocatedCount()
            assert(live == s.allocatedCount(), "refill: span \(s.describe()) counted full with free objects")
            // A thread that frees objects of this class keeps many full
            // spans (its frees into them stay local); one that only
            // allocates them (a producer whose consumer frees) keeps a few,
            // and the rest go where remote frees make them reusable by
            // anyone, instead of waiting in this cache for its refills.
            let frees = e.frees.pointee.load(ordering: .relaxed)
            let kept = frees != e.freesAtLastFill ? Self.keptFullSpans : Self.keptFullSpansWithoutFrees
            e.freesAtLastFill = frees
            if live == s.nelems && s.partition == target && e.fullSpareCount < kept {
                // Keep the span this thread just filled: its frees stay local
                // and it is allocated from again once one lands, with no
                // mcentral lock either way.
                s.liveCount = live
                e.pushSpare(s, full: true)
            } else {
                spansHeld.pointee.wrappingSubtract(1, ordering: .relaxed)
                let lastOwner = live == s.nelems ? address : 0
                table.central(s.partition, spanClass) { $0.uncacheSpan(s, allocated: live, lastOwner: lastOwner) }
            }
        }
        // Spares a local free made room in: the head is the one freed into
        // last, so its lines are the likeliest to be in cache.
        while let s = e.spare {
            e.removeSpare(s)
            s.collectRemoteFrees()
            if s.partition == target, let w = s.findFreeWord() {
                e.adopt(s, word: w)
                return true
            }
            // Allocations from the freed stack filled it: a full spare.
            if s.partition == target && e.fullSpareCount < Self.keptFullSpans {
                assert(s.liveCount == s.nelems, "refill: spare \(s.describe()) is full, live count \(s.liveCount)")
                e.pushSpare(s, full: true)
                continue
            }
            // A spare of the node this thread left goes home.
            spansHeld.pointee.wrappingSubtract(1, ordering: .relaxed)
            table.central(s.partition, spanClass) { $0.uncacheSpan(s, allocated: s.allocatedCount()) }
        }
        // Full spares other threads have freed into since they filled. A
        // refill looks at a few of them (one line of each record), going on
        // where the last look stopped, so every full spare is seen within a
        // bounded number of refills and none is looked at twice in a row.
        var looked = 0
        var x = e.fullSpareCursor ?? e.fullSpare
        while let s = x, looked < Self.fullSparesLookedAt {
            looked &+= 1
            x = s.next ?? e.fullSpare
            guard s.remotePending.pointee.load(ordering: .relaxed) != 0, s.partition == target else { continue }
            e.removeSpare(s)
            s.collectRemoteFrees()
            if let w = s.findFreeWord() {
                e.adopt(s, word: w)
                return true
            }
            spansHeld.pointee.wrappingSubtract(1, ordering: .relaxed)
            table.central(target, spanClass) { $0.uncacheSpan(s, allocated: s.nelems) }
            x = e.fullSpareCursor ?? e.fullSpare
        }
        e.fullSpareCursor = x
        let owner = address
        while true {
            guard let s = table.central(target, spanClass, { $0.cacheSpan(owner: owner) }) else { return false }
            if let w = s.findFreeWord() {
                e.adopt(s, word: w)
                spansHeld.pointee.wrappingAdd(1, ordering: .relaxed)
                return true
            }
            // A span filed as partial on a spurious notification: it is full.
            table.central(target, spanClass) { $0.uncacheSpan(s, allocated: s.nelems) }
        }
    }

    /// Returns every span to its partition's mcentral (thread exit, an
    /// explicit flush, a flush request, or a reclaimer once the owner is out
    /// of the way).
    func releaseAll(to table: PartitionTable) {
        for spc in 0..<SizeClasses.spanClassCount {
            let e = entry(spc)
            while let s = e.spare ?? e.fullSpare {
                e.removeSpare(s)
                s.collectRemoteFrees()
                table.central(s.partition, spc) { $0.uncacheSpan(s, allocated: s.allocatedCount()) }
            }
            guard let s = e.span else { continue }
            e.drop(fullWord: fullWord)
            s.collectRemoteFrees()
            table.central(s.partition, spc) { $0.uncacheSpan(s, allocated: s.allocatedCount()) }
        }
        spansHeld.pointee.store(0, ordering: .relaxed)
        flushRequested.pointee.store(0, ordering: .relaxed)
    }

    /// First half of a reclaim (cache lock held, owner possibly running): make
    /// every fast path of the owner fail or go remote from now on.
    func revoke() {
        for spc in 0..<SizeClasses.spanClassCount {
            let e = entry(spc)
            e.forEachSpare { $0.owner.pointee.store(0, ordering: .relaxed) }
            guard let s = e.span else { continue }
            e.word.pointee.store(fullWord, ordering: .relaxed)
            s.owner.pointee.store(0, ordering: .relaxed)
        }
    }

    /// Takes back the span `s` this cache filled and filed in its mcentral
    /// (full, or partial since a remote free), cache lock held, and frees
    /// object `idx` in it. Returns nil if the mcentral no longer had the
    /// span (the caller frees remotely), else whether the free was valid and
    /// whether it emptied the span (the caller then gives it back).
    func reclaimAndFree(_ s: SpanRef, index idx: Int, central: MCentral) -> (valid: Bool, emptied: Bool)? {
        guard central.reclaim(s, owner: address) else { return nil }
        spansHeld.pointee.wrappingAdd(1, ordering: .relaxed)
        s.collectRemoteFrees()
        s.liveCount = s.allocatedCount()
        let e = entry(s.spanClass)
        e.pushSpare(s)
        guard e.freeOwned(s, index: idx) else { return (false, false) }
        let emptied = e.noteSpareFree(s, index: idx)
        if emptied { spansHeld.pointee.wrappingSubtract(1, ordering: .relaxed) }
        return (true, emptied)
    }

    /// Second half: after the fence, wait for an operation in flight to end.
    func waitUntilInactive() {
        var spins = 0
        while active.pointee.load(ordering: .acquiring) != 0 {
            spins += 1
            if spins > 64 { sched_yield() } else { goheap_cpu_relax() }
        }
    }

    /// Kills the cache on behalf of a dying heap (any thread, registry lock held;
    /// no operation on that heap can be running). The owner's fast paths then
    /// fail and its slow path rebuilds the cache.
    func markDead() {
        for i in 0..<SizeClasses.spanClassCount {
            entry(i).word.pointee.store(fullWord, ordering: .relaxed)
        }
        dead.pointee.store(1, ordering: .releasing)
    }
}

/// Handle to one span class's entry in a cache.
@usableFromInline
struct CacheEntry: @unchecked Sendable {
    @usableFromInline let raw: UnsafeMutableRawPointer

    @inlinable @inline(__always)
    init(_ raw: UnsafeMutableRawPointer) { self.raw = raw }

    @usableFromInline static let wordOff = 0, windowBaseOff = 8, elemSizeOff = 16, spanOff = 24
    @usableFromInline static let sampleAtOff = 32, mallocsOff = 40, freesOff = 48, spareOff = 56
    @usableFromInline static let fullSpareOff = 64, fullSpareCountOff = 72, fullSpareCursorOff = 80
    @usableFromInline static let freesAtLastFillOff = 88, freedCountOff = 96, freedOff = 128
    /// Objects the freed stack holds (its last two lines).
    @usableFromInline static let freedCapacity = 16

    /// Address of the allocBits word allocation comes from (the cache's full
    /// word when the entry has no span).
    @inlinable var word: UnsafeMutablePointer<Atomic<UInt>> {
        @inline(__always) get { raw.assumingMemoryBound(to: Atomic<UInt>.self) }
    }
    /// Address of the first object the word covers.
    @inlinable var windowBase: UInt {
        @inline(__always) get { raw.load(fromByteOffset: Self.windowBaseOff, as: UInt.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.windowBaseOff, as: UInt.self) }
    }
    @inlinable var elemSize: Int {
        @inline(__always) get { raw.load(fromByteOffset: Self.elemSizeOff, as: Int.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.elemSizeOff, as: Int.self) }
    }
    @inlinable var span: SpanRef? {
        @inline(__always) get { raw.load(fromByteOffset: Self.spanOff, as: UnsafeMutableRawPointer?.self).map(SpanRef.init) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue?.raw, toByteOffset: Self.spanOff, as: UnsafeMutableRawPointer?.self) }
    }
    /// The `mallocs` count at which the next allocation is a heap-profile
    /// sample: pop leaves it to the slow path (HeapProfiler.swift). Int.max
    /// while profiling is off. Written under the cache lock, read by pop.
    @inlinable var sampleAt: UnsafeMutablePointer<Atomic<Int>> {
        @inline(__always) get { (raw + Self.sampleAtOff).assumingMemoryBound(to: Atomic<Int>.self) }
    }
    /// Owned spans with free objects, not allocated from yet (linked through next/prev).
    @inlinable var spare: SpanRef? {
        @inline(__always) get { raw.load(fromByteOffset: Self.spareOff, as: UnsafeMutableRawPointer?.self).map(SpanRef.init) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue?.raw, toByteOffset: Self.spareOff, as: UnsafeMutableRawPointer?.self) }
    }
    /// Owned spans that were full when the cache moved on from them and have
    /// had no local free since (linked through next/prev). Remote frees into
    /// them raise their remotePending flag, which a refill looks for.
    var fullSpare: SpanRef? {
        @inline(__always) get { raw.load(fromByteOffset: Self.fullSpareOff, as: UnsafeMutableRawPointer?.self).map(SpanRef.init) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue?.raw, toByteOffset: Self.fullSpareOff, as: UnsafeMutableRawPointer?.self) }
    }
    /// The full spare the next refill looks at first (nil: the head).
    var fullSpareCursor: SpanRef? {
        @inline(__always) get { raw.load(fromByteOffset: Self.fullSpareCursorOff, as: UnsafeMutableRawPointer?.self).map(SpanRef.init) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue?.raw, toByteOffset: Self.fullSpareCursorOff, as: UnsafeMutableRawPointer?.self) }
    }
    /// `frees` when the entry last moved on from a full span (refill only).
    var freesAtLastFill: Int {
        get { raw.load(fromByteOffset: Self.freesAtLastFillOff, as: Int.self) }
        nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.freesAtLastFillOff, as: Int.self) }
    }
    /// Length of the fullSpare list (at most MCacheRef.keptFullSpans).
    var fullSpareCount: Int {
        @inline(__always) get { raw.load(fromByteOffset: Self.fullSpareCountOff, as: Int.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.fullSpareCountOff, as: Int.self) }
    }
    /// Entries in the freed stack (owner only).
    @inlinable var freedCount: Int {
        @inline(__always) get { raw.load(fromByteOffset: Self.freedCountOff, as: Int.self) }
        @inline(__always) nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.freedCountOff, as: Int.self) }
    }
    /// Entry k of the stack: a span record's address, with the object's
    /// index in the 16 bits above it (records live in user space, below 2^48).
    @inlinable @inline(__always)
    func freed(_ k: Int) -> UInt { raw.load(fromByteOffset: Self.freedOff &+ k &* 8, as: UInt.self) }

    /// Remembers object `idx` of spare `s`, which this thread just freed,
    /// for the next allocation of the class that finds its word empty.
    /// Returns false when the stack is full (it keeps what it has).
    @inlinable @inline(__always) @discardableResult
    func pushFreed(_ s: SpanRef, index idx: Int) -> Bool {
        let k = freedCount
        if k == Self.freedCapacity { return false }
        let entry = UInt(bitPattern: s.raw) | UInt(truncatingIfNeeded: idx) &<< 48
        raw.storeBytes(of: entry, toByteOffset: Self.freedOff &+ k &* 8, as: UInt.self)
        freedCount = k &+ 1
        return true
    }

    @inlinable var mallocs: UnsafeMutablePointer<Atomic<Int>> {
        @inline(__always) get { (raw + Self.mallocsOff).assumingMemoryBound(to: Atomic<Int>.self) }
    }
    @inlinable var frees: UnsafeMutablePointer<Atomic<Int>> {
        @inline(__always) get { (raw + Self.freesOff).assumingMemoryBound(to: Atomic<Int>.self) }
    }

    func bind() {
        word.initialize(to: Atomic(0))
        sampleAt.initialize(to: Atomic(Int.max))
        mallocs.initialize(to: Atomic(0))
        frees.initialize(to: Atomic(0))
    }

    func clear(fullWord: UInt) {
        word.pointee.store(fullWord, ordering: .relaxed)
        span = nil
        spare = nil
        fullSpare = nil
        fullSpareCount = 0
        fullSpareCursor = nil
        freesAtLastFill = 0
        freedCount = 0
        windowBase = 0
        sampleAt.pointee.store(Int.max, ordering: .relaxed)
        elemSize = 0
        mallocs.pointee.store(0, ordering: .relaxed)
        frees.pointee.store(0, ordering: .relaxed)
    }

    /// Forgets the span (its owner field is the caller's business).
    func drop(fullWord: UInt) {
        word.pointee.store(fullWord, ordering: .relaxed)
        span = nil
    }

    /// Allocates one object, or returns nil when the word is full or the
    /// allocation is a heap-profile sample point (the slow path records it).
    @inlinable @inline(__always)
    func pop() -> UnsafeMutableRawPointer? { pop(sampling: true) }

    /// pop for the slow path, which must not fail at a sample point (the
    /// point stays due, so the next allocation is the sample).
    @inlinable @inline(__always)
    func popUnsampled() -> UnsafeMutableRawPointer? { pop(sampling: false) }

    @inlinable @inline(__always)
    func pop(sampling: Bool) -> UnsafeMutableRawPointer? {
        // mallocs is read as plain memory: only this thread writes it, and a
        // plain read lets the compare take it as a memory operand.
        if sampling && raw.load(fromByteOffset: Self.mallocsOff, as: Int.self) >= sampleAt.pointee.load(ordering: .relaxed) {
            return nil
        }
        let w = UnsafeMutablePointer<Atomic<UInt64>>(bitPattern: word.pointee.load(ordering: .relaxed))
            .unsafelyUnwrapped
        let a = w.pointee.load(ordering: .relaxed)
        let free = ~a
        if free == 0 { return nil }
        w.pointee.store(a | (free & (0 &- free)), ordering: .relaxed)
        mallocs.pointee.store(mallocs.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        let i = UInt(truncatingIfNeeded: free.trailingZeroBitCount)
        return UnsafeMutableRawPointer(bitPattern: windowBase &+ i &* UInt(bitPattern: elemSize))
    }

    /// Files `s` at the head of a spare list: the full spares (a span the
    /// cache filled) or, by default, the spares with free objects.
    func pushSpare(_ s: SpanRef, full: Bool = false) {
        let head = full ? fullSpare : spare
        s.cachedState = full ? .fullSpare : .spare
        s.prev = nil
        s.next = head
        head?.prev = s
        if full {
            fullSpare = s
            fullSpareCount &+= 1
        } else {
            spare = s
        }
    }

    /// Takes `s` off whichever spare list holds it.
    @usableFromInline
    func removeSpare(_ s: SpanRef) {
        let full = s.cachedState == .fullSpare
        if full && fullSpareCursor == s { fullSpareCursor = s.next }
        if let p = s.prev { p.next = s.next } else if full { fullSpare = s.next } else { spare = s.next }
        s.next?.prev = s.prev
        s.next = nil
        s.prev = nil
        s.cachedState = .current
        if full { fullSpareCount &-= 1 }
    }

    /// Calls body on every spare of both lists (body must not relink them).
    func forEachSpare(_ body: (SpanRef) -> Void) {
        var x = spare
        while let s = x {
            x = s.next
            body(s)
        }
        x = fullSpare
        while let s = x {
            x = s.next
            body(s)
        }
    }

    /// After a local free of object `idx` of spare `s`: true
    /// when that emptied it, in which case it has left its list and the
    /// caller gives it back. The object goes on the freed stack. A full spare
    /// stays on its list while the stack holds its free objects (a refill
    /// need not find them there; a span whose last free slot goes back and
    /// forth with the stack costs no list moves), and moves to the spares with
    /// room when the stack is full.
    @inlinable @inline(__always)
    func noteSpareFree(_ s: SpanRef, index idx: Int) -> Bool {
        let n = s.liveCount &- 1
        s.liveCount = n
        if n == 0 {
            removeSpare(s)
            return true
        }
        if !pushFreed(s, index: idx) && s.cachedState == .fullSpare { promote(s) }
        return false
    }

    /// Allocates the most recently freed object of the stack that is still
    /// free in a span of class `spanClass` that cache `owner` owns (of
    /// `partition`, unless nil), or returns nil when none is. Owner only,
    /// inside the fast-path bracket.
    @inline(__always)
    func popFreed(spanClass: Int, owner: UInt, partition: Int?) -> UnsafeMutableRawPointer? {
        var k = freedCount
        while k > 0 {
            k &-= 1
            let entry = freed(k)
            // Span records stay records while the heap lives, so reading the
            // owner word of one that moved on is safe; it then names another
            // cache or none. While this cache owns a record, its fields are
            // this cache's to read: a record reused since for another span
            // of this cache is checked for the class and the index, and any
            // free object of such a span is as good as the one freed.
            let s = SpanRef(UnsafeMutableRawPointer(bitPattern: entry & (1 &<< 48 &- 1)).unsafelyUnwrapped)
            let idx = Int(truncatingIfNeeded: entry &>> 48)
            guard s.owner.pointee.load(ordering: .relaxed) & ~1 == owner, s.spanClass == spanClass,
                  idx < s.nelems, partition == nil || s.partition == partition! else { continue }
            let w = idx &>> 6
            let bit: UInt64 = 1 &<< UInt64(truncatingIfNeeded: idx & 63)
            let a = s.allocBits[w].load(ordering: .relaxed)
            if a & bit != 0 { continue }  // allocated again from the word since
            s.allocBits[w].store(a | bit, ordering: .relaxed)
            freedCount = k
            mallocs.pointee.store(mallocs.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
            // A spare with room this fills stays on its list: the next
            // refill that meets it moves it to the full spares.
            if s.cachedState != .current { s.liveCount = s.liveCount &+ 1 }
            return UnsafeMutableRawPointer(bitPattern: s.base &+ UInt(idx &* s.objectSize))
        }
        freedCount = 0
        return nil
    }

    @usableFromInline @inline(never)
    func promote(_ s: SpanRef) {
        removeSpare(s)
        pushSpare(s)
    }

    /// Makes `s`, owned by this cache and taken off any spare list, the span
    /// the entry allocates from, at its word `w`.
    func adopt(_ s: SpanRef, word w: Int) {
        span = s
        elemSize = s.elemSize
        checkOut(s, word: w)
    }

    /// Makes allocBits word `w` of `s` the one the entry allocates from.
    func checkOut(_ s: SpanRef, word w: Int) {
        windowBase = s.base + UInt(w * 64 * s.elemSize)
        s.scanWord = w + 1
        word.pointee.store(UInt(bitPattern: s.allocBits.address(w)), ordering: .relaxed)
    }

    /// Frees object `idx` of `s`, which this cache owns. Returns false if the
    /// object is not allocated, or another thread has already freed it.
    @inlinable @inline(__always)
    func freeOwned(_ s: SpanRef, index idx: Int) -> Bool {
        let w = idx &>> 6
        let bit: UInt64 = 1 &<< UInt64(truncatingIfNeeded: idx & 63)
        let a = s.allocBits[w].load(ordering: .relaxed)
        if a & bit == 0 || s.remoteBits[w].load(ordering: .relaxed) & bit != 0 { return false }
        s.allocBits[w].store(a & ~bit, ordering: .relaxed)
        frees.pointee.store(frees.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        return true
    }
}
