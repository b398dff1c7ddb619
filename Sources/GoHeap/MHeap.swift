// The mheap: every page of the heap, and the objects too big for a size class.
//
// What this tier owns: the arenas (via ArenaReserver), two page allocators
// (normal arenas, and huge arenas advised MADV_HUGEPAGE as a whole), the span
// record pool, large objects (> 32 KiB: a page run of exactly roundUp(bytes)),
// huge objects (>= the huge threshold, 2 MiB by default: a page run placed on a
// 2 MiB boundary in a huge arena, so the kernel can back it with transparent
// huge pages), and returning free pages to the OS (scavenging).
//
// Invariants:
//   - Every page of every arena is in exactly one span: in use (small/large) or
//     a free run filed in its pool's PageAllocator. Free runs never touch: a
//     freed span merges with free neighbours in the same pool at once.
//   - freePages/cleanFreePages of each pool equal the sum over its filed runs
//     of their pages / their clean pages. "Clean" pages read as zero and are not
//     resident: fresh from mmap, or released with MADV_DONTNEED.
//   - A page's dirty bit is only changed while the page is free (or when it
//     leaves use), so the owner of an in-use span may read its bits unlocked.
//
// Locking: one mutex (as Go's mheap.lock) guards all of the above. It is taken
// to get or return a span of pages, never on the small-object fast paths. The
// page map is readable without it. Releasing pages to the OS (Scavenger.swift)
// makes its madvise calls without the lock, on bounded pieces taken out of the
// index. Nothing here calls up into mcentral or mcache; sweeping spans still
// held by mcentrals is driven from Heap.

import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Byte and object counters kept under the heap lock.
struct MHeapCounters {
    var largeAllocs = 0, largeFrees = 0, largeBytesAllocated = 0, largeBytesFreed = 0
    var hugeAllocs = 0, hugeFrees = 0, hugeBytesAllocated = 0, hugeBytesFreed = 0
    var releasedBytesTotal = 0
    /// Free runs the scavenger and the memory limit looked at (for tests: the
    /// work of finding pages to release must not grow with the heap's clean runs).
    var runsVisitedForRelease = 0
    var spansAllocated = 0, spansFreed = 0
}

/// Everything the heap lock protects.
struct MHeapState: ~Copyable {
    let pageMap: PageMap
    var normal = PageAllocator()
    var huge = PageAllocator()
    var spans = SpanPool()
    var reserver: ArenaReserver
    var arenas: [ArenaRef] = []
    var arenaPages = 0
    var softLimit: Int
    /// Dirty pages of pieces taken out of the index to be released.
    var releasingPages = 0
    /// When the background scavenger last ran for this heap (monotonic ms).
    var lastScavenge = 0
    var lastErrno: Int32 = 0
    var counters = MHeapCounters()

    init(pageMap: PageMap, numa: NUMAPolicy, softLimit: Int, hint: UInt) {
        self.pageMap = pageMap
        self.reserver = ArenaReserver(numa: numa, hint: hint)
        self.softLimit = softLimit
    }

    var freePages: Int { normal.freePages + huge.freePages }
    var cleanFreePages: Int { normal.cleanFreePages + huge.cleanFreePages }
    /// Pages that may be resident: in use, or free but not yet released.
    var retainedPages: Int { arenaPages - cleanFreePages }

    mutating func withPool<R>(_ p: ArenaPool, _ body: (inout PageAllocator) -> R) -> R {
        switch p {
        case .normal: return body(&normal)
        case .huge: return body(&huge)
        }
    }

    // MARK: allocation

    /// Takes `n` pages aligned to `alignPages` pages from `pool`, growing the
    /// heap if needed. The returned record describes exactly the pages; its
    /// page map entries are not yet set.
    mutating func allocPages(_ n: Int, alignPages: Int, pool: ArenaPool) -> SpanRef? {
        let need = alignPages > 1 ? n + alignPages - 1 : n
        var run = withPool(pool) { $0.find(atLeast: need) }
        if run == nil {
            guard grow(atLeast: need, pool: pool) else { return nil }
            run = withPool(pool) { $0.find(atLeast: need) }
        }
        guard let run else { return nil }
        return carve(run, pages: n, alignPages: alignPages, pool: pool)
    }

    /// Cuts `n` pages out of a filed free run, refiling what is left on either side.
    mutating func carve(_ run: SpanRef, pages n: Int, alignPages: Int, pool: ArenaPool) -> SpanRef? {
        let pageBytes = UInt(SizeClasses.pageSize)
        var start = run.base
        if alignPages > 1 {
            let a = UInt(alignPages) * pageBytes
            start = (run.base + a - 1) & ~(a - 1)
        }
        let headPages = Int((start - run.base) / pageBytes)
        let tailPages = run.npages - headPages - n
        heapAssert(tailPages >= 0, "carve: run too small")
        // Take records first so failure leaves the index untouched.
        let head = headPages > 0 ? spans.take() : nil
        let tail = tailPages > 0 ? spans.take() : nil
        if (headPages > 0 && head == nil) || (tailPages > 0 && tail == nil) {
            if let head { spans.give(head) }
            if let tail { spans.give(tail) }
            return nil
        }
        let oldBase = run.base
        withPool(pool) { $0.remove(run) }
        // A run is usually all clean (fresh, or released) or all dirty (freed
        // and reused soon after); only a mixed one needs its bits counted.
        let dirty: Int, headDirty: Int
        if run.dirtyPages == 0 || run.dirtyPages == run.npages {
            let all = run.dirtyPages != 0
            dirty = all ? n : 0
            headDirty = all ? headPages : 0
        } else {
            dirty = pageMap.dirtyCount(base: start, npages: n)
            headDirty = headPages > 0 ? pageMap.dirtyCount(base: oldBase, npages: headPages) : 0
        }
        let tailDirty = run.dirtyPages - dirty - headDirty
        withPool(pool) {
            $0.freePages -= n
            $0.cleanFreePages -= n - dirty
        }
        if let head {
            file(head, base: oldBase, npages: headPages, pool: pool, dirty: headDirty)
        }
        if let tail {
            file(tail, base: start + UInt(n) * pageBytes, npages: tailPages, pool: pool, dirty: tailDirty)
        }
        run.base = start
        run.npages = n
        run.pool = pool
        run.dirtyPages = 0
        run.next = nil
        run.prev = nil
        return run
    }

    /// Files a record as a free run without coalescing (its neighbours are in
    /// use, or out of the index being released).
    mutating func file(_ s: SpanRef, base: UInt, npages: Int, pool: ArenaPool, dirty: Int) {
        s.base = base
        s.npages = npages
        s.pool = pool
        s.state = .free
        s.dirtyPages = dirty
        pageMap.setEnds(s, base: base, npages: npages)
        withPool(pool) { $0.insert(s) }
    }

    /// Reserves new arenas big enough for `pages` and files them as one free run.
    mutating func grow(atLeast pages: Int, pool: ArenaPool) -> Bool {
        let count = max(1, (pages + ArenaGeometry.pagesPerArena - 1) / ArenaGeometry.pagesPerArena)
        let (made, err) = reserver.reserve(count: count, pool: pool)
        guard let made, let s = spans.take() else {
            lastErrno = err
            if let made { ArenaReserver.unmapAll(made) }
            return false
        }
        for a in made {
            pageMap.register(a)
            arenas.append(a)
        }
        let n = count * ArenaGeometry.pagesPerArena
        arenaPages += n
        withPool(pool) {
            $0.freePages += n
            $0.cleanFreePages += n
        }
        s.base = made[0].base
        s.npages = n
        s.pool = pool
        s.dirtyPages = 0
        coalesceAndFile(s)
        return true
    }

    // MARK: freeing

    /// Returns an in-use span's pages. Its page map entries are cleared, its
    /// pages marked dirty, the chunks it touches marked freed now, and it
    /// merges with free neighbours.
    mutating func freePages(_ s: SpanRef) {
        pageMap.set(nil, base: s.base, npages: s.npages)
        let now = OS.monotonicMillis()
        pageMap.forEachArenaPiece(base: s.base, npages: s.npages) { a, first, count in
            a.setDirty(first: first, count: count, true)
            let c0 = first / ArenaGeometry.chunkPages, c1 = (first + count - 1) / ArenaGeometry.chunkPages
            for c in c0...c1 { a.chunkFreedAt[c] = now }
        }
        let n = s.npages
        withPool(s.pool) { $0.freePages += n }
        s.owner.pointee.store(0, ordering: .relaxed)
        s.location.pointee.store(SpanLocation.none.rawValue, ordering: .relaxed)
        s.dirtyPages = n
        coalesceAndFile(s)
    }

    /// Files an unfiled run (base, npages, pool, dirtyPages set), merged with
    /// free neighbours first.
    mutating func coalesceAndFile(_ s: SpanRef) {
        let pool = s.pool
        let pageBytes = UInt(SizeClasses.pageSize)
        if s.base >= pageBytes, let left = pageMap.freeNeighbour(at: s.base - pageBytes, pool: pool) {
            withPool(pool) { $0.remove(left) }
            pageMap.setOne(nil, at: s.base - pageBytes)
            s.base = left.base
            s.npages += left.npages
            s.dirtyPages += left.dirtyPages
            spans.give(left)
        }
        if let right = pageMap.freeNeighbour(at: s.limit, pool: pool) {
            withPool(pool) { $0.remove(right) }
            pageMap.setOne(nil, at: right.base)
            s.npages += right.npages
            s.dirtyPages += right.dirtyPages
            spans.give(right)
        }
        file(s, base: s.base, npages: s.npages, pool: pool, dirty: s.dirtyPages)
    }

    /// Unmaps everything (heap teardown).
    mutating func destroy() {
        ArenaReserver.unmapAll(arenas)
        spans.unmapAll()
        normal.deallocate()
        huge.deallocate()
    }
}

/// The mheap of one partition: the heap lock and what it guards, plus the
/// lock-free page map (shared by a heap's partitions: it is indexed by address).
final class MHeap: @unchecked Sendable {
    let pageMap: PageMap
    let locked: Locked<MHeapState>
    /// The partition this page heap belongs to; every span it makes records it.
    let partition: Int
    /// Keeps the shared page map alive until the last partition is gone.
    private let pageMapOwner: PageMapOwner

    init(pageMap owner: PageMapOwner, numa: NUMAPolicy, softLimit: Int, partition: Int, heapSlot: Int) {
        pageMapOwner = owner
        pageMap = owner.pageMap
        self.partition = partition
        // Each heap (16 GiB) and each of its partitions (1 GiB) starts reserving
        // in its own window of address space, so its arenas stay contiguous
        // and a page run at the end of them can grow in place. All windows
        // lie between 768 GiB and 1.75 TiB, below the 2 TiB that
        // ThreadSanitizer leaves to programs; a window that fills up (or is
        // taken) only means the next reservation goes wherever mmap puts it.
        let window = UInt(heapSlot & 63) * 16 + UInt(partition & 15)
        let hint = UInt(0x00c0_0000_0000) + window << 30
        locked = Locked(MHeapState(pageMap: owner.pageMap, numa: numa, softLimit: softLimit, hint: hint))
    }

    /// A fresh span for small objects of `spanClass`, its pages mapped to it.
    func allocSmallSpan(spanClass: Int) -> SpanRef? {
        let npages = SizeClasses.classPages[spanClass >> 1]
        let (s, over) = locked.withLock { h -> (SpanRef?, [SpanRef]) in
            guard let s = h.allocPages(npages, alignPages: 1, pool: .normal) else { return (nil, []) }
            s.initSmall(spanClass: spanClass)
            s.partition = partition
            h.pageMap.set(s, base: s.base, npages: npages)
            h.counters.spansAllocated += 1
            return (s, h.takePiecesOverLimit())
        }
        if !over.isEmpty { enforceLimit(first: over) }
        return s
    }

    /// Returns an empty small-object span's pages.
    func freeSmallSpan(_ s: SpanRef) {
        locked.withLock { h in
            h.counters.spansFreed += 1
            h.freePages(s)
        }
    }

    /// A page run for one object of `bytes` bytes (rounded up to pages),
    /// aligned to `alignment`; on the huge path it sits on a 2 MiB boundary in
    /// a huge arena. Returns nil and the errno if the OS refused memory.
    func allocLarge(bytes: Int, alignment: Int, huge: Bool, noscan: Bool) -> (SpanRef?, Int32) {
        let npages = (bytes + SizeClasses.pageSize - 1) >> SizeClasses.pageShift
        var alignPages = max(1, alignment >> SizeClasses.pageShift)
        if huge { alignPages = max(alignPages, Heap.hugePageBytes >> SizeClasses.pageShift) }
        let (s, err, over) = locked.withLock { h -> (SpanRef?, Int32, [SpanRef]) in
            guard let s = h.allocPages(npages, alignPages: alignPages, pool: huge ? .huge : .normal) else {
                return (nil, h.lastErrno, [])
            }
            s.state = .large
            s.partition = partition
            s.spanClass = noscan ? 1 : 0
            s.elemSize = npages << SizeClasses.pageShift
            s.nelems = 1
            h.pageMap.set(s, base: s.base, npages: npages)
            if huge {
                h.counters.hugeAllocs += 1
                h.counters.hugeBytesAllocated += s.elemSize
            } else {
                h.counters.largeAllocs += 1
                h.counters.largeBytesAllocated += s.elemSize
            }
            return (s, 0, h.takePiecesOverLimit())
        }
        if !over.isEmpty { enforceLimit(first: over) }
        return (s, err)
    }

    /// Grows the large object of span `s` to `pages` pages in place, taking
    /// the pages right after it from the free run that starts there. False if
    /// they are not free (or not in the same pool), which leaves everything as is.
    func growInPlace(_ s: SpanRef, toPages pages: Int) -> Bool {
        locked.withLock { h -> Bool in
            guard s.state == .large, pages > s.npages else { return false }
            let extra = pages - s.npages
            var right = h.pageMap.freeNeighbour(at: s.limit, pool: s.pool)
            let have = right?.npages ?? 0
            if have < extra {
                // At the end of the reserved address space: reserve more right
                // after it (the next reservation's hint), then look again.
                guard s.limit + UInt(have << SizeClasses.pageShift) == h.reserver.hint,
                      h.grow(atLeast: extra - have, pool: s.pool) else { return false }
                right = h.pageMap.freeNeighbour(at: s.limit, pool: s.pool)
            }
            guard let right, right.npages >= extra,
                  let piece = h.carve(right, pages: extra, alignPages: 1, pool: s.pool)
            else { return false }
            h.spans.give(piece)
            let grown = (pages - s.npages) << SizeClasses.pageShift
            s.npages = pages
            s.elemSize = pages << SizeClasses.pageShift
            h.pageMap.set(s, base: s.base, npages: pages)
            if s.pool == .huge { h.counters.hugeBytesAllocated += grown } else { h.counters.largeBytesAllocated += grown }
            return true
        }
    }

    /// Frees the large object starting at `addr`, whose span the caller looked
    /// up without the lock; the lookup is repeated under the lock so two racing
    /// frees of one object cannot both succeed.
    func freeLarge(at addr: UInt) -> Bool {
        locked.withLock { h -> Bool in
            guard let s = h.pageMap.span(of: addr), s.state == .large, s.base == addr else { return false }
            if s.pool == .huge {
                h.counters.hugeFrees += 1
                h.counters.hugeBytesFreed += s.elemSize
            } else {
                h.counters.largeFrees += 1
                h.counters.largeBytesFreed += s.elemSize
            }
            h.freePages(s)
            return true
        }
    }

    /// Dirty runs at least this long are zeroed by returning them to the OS
    /// (MADV_DONTNEED: the next touch maps a zero page) instead of memset, so
    /// no single allocation pays for clearing a huge block up front; the cost
    /// moves to the first touch of each page, spread over its users.
    static let releaseToZeroPages = 256  // 2 MiB

    /// Zeroes the dirty pages of an in-use large span; clean pages already read
    /// as zero. Needs no lock: see the invariants above.
    /// Returns (memset, skipped because clean, released to zero) bytes.
    func zeroDirtyPages(of s: SpanRef) -> (Int, Int, Int) {
        var zeroed = 0, skipped = 0, released = 0
        pageMap.forEachArenaPiece(base: s.base, npages: s.npages) { a, first, count in
            var p = first
            let end = first + count
            while p < end {
                let dirty = a.isDirty(page: p)
                var q = p + 1
                while q < end && a.isDirty(page: q) == dirty { q += 1 }
                let bytes = (q - p) << SizeClasses.pageShift
                if dirty {
                    let addr = UnsafeMutableRawPointer(bitPattern: a.base + UInt(p << SizeClasses.pageShift))!
                    if q - p >= Self.releaseToZeroPages && OS.release(addr, bytes: bytes) {
                        released += bytes
                    } else {
                        memset(addr, 0, bytes)
                        zeroed += bytes
                    }
                } else {
                    skipped += bytes
                }
                p = q
            }
        }
        return (zeroed, skipped, released)
    }


    deinit { locked.withLock { $0.destroy() } }
}
