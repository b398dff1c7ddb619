// The scavenger: returning free pages to the OS.
//
// What this tier owns: choosing which free pages to release, releasing them
// without the heap lock, the soft memory limit, and the background thread.
//
// Aging. Free memory is aged in 512 KiB chunks, as Go scavenges a chunk at a
// time: each arena records, per chunk, when a page of it was last freed. The
// background scavenger releases the dirty free pages of chunks not freed into
// for scavengeDelay, so old free pages go back to the OS whatever happens next
// to them; a run that keeps merging with fresh frees no longer hides the old
// pages it holds.
//
// Pieces. Releasing works on pieces of at most 4 MiB (eight chunks) cut out
// of free runs under the heap lock: a piece leaves the index marked
// .scavenging (no allocation takes it, no neighbour merges with it), what is
// left of its run stays filed, the madvise calls run without the lock, and the
// piece is refiled and merged back. So releasing a 1 GiB run never hides more
// than one batch (16 MiB) of it from concurrent allocations, and no
// allocation waits for the kernel to drop hundreds of MB.
//
// Finding work. Each page allocator keeps its runs with dirty pages on a list,
// so neither the scavenger nor the memory limit walks clean runs.
//
// Memory limit. After an allocation that leaves the heap's retained pages
// (in use, or free but not released) over the soft limit, the allocating
// thread takes pieces worth the excess from the dirty list under the lock it
// already holds, and releases them after dropping it: work proportional to
// what must be released, and no madvise under the heap lock.
//
// Without the thread. A heap made with backgroundScavenging: false (the
// malloc library's) starts no thread: every 64th slow-path operation reads
// the clock and, once a period has passed, does the period's work itself.
//
// Locking: pieces are cut and refiled under the heap lock; everything else
// here runs without it.

import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension MHeapState {
    /// The most pages one piece spans, and the dirty pages one batch takes.
    static let maxPiecePages = 8 * ArenaGeometry.chunkPages
    static let batchPages = (16 << 20) >> SizeClasses.pageShift

    /// The first stretch of `run` made of consecutive chunks that have dirty
    /// pages and were last freed into at or before `cutoff` (any age if nil),
    /// at most `maxPages` long.
    func eligiblePiece(in run: SpanRef, olderThan cutoff: Int?, maxPages: Int) -> (start: UInt, pages: Int)? {
        let chunkBytes = UInt(ArenaGeometry.chunkBytes)
        let limit = run.limit
        var addr = run.base
        var start: UInt = 0
        var pages = 0
        while addr < limit {
            let end = min((addr & ~(chunkBytes - 1)) + chunkBytes, limit)
            let a = pageMap.arena(of: addr)!
            let first = ArenaRef.pageIndex(addr)
            let count = Int((end - addr) >> UInt(SizeClasses.pageShift))
            let oldEnough = cutoff.map { a.chunkFreedAt[first / ArenaGeometry.chunkPages] <= $0 } ?? true
            if oldEnough && a.dirtyCount(first: first, count: count) > 0 {
                if pages == 0 { start = addr }
                let take = min(count, maxPages - pages)
                pages += take
                if take < count || pages == maxPages { break }
            } else if pages > 0 {
                break
            }
            addr = end
        }
        return pages > 0 ? (start, pages) : nil
    }

    /// Cuts [start, start + pages) out of the filed run `run`, refiling what is
    /// left on either side. Returns the piece, unfiled and marked .scavenging,
    /// and the record of the right remainder; nil if no record could be had.
    mutating func splitOut(_ run: SpanRef, start: UInt, pages: Int) -> (piece: SpanRef, right: SpanRef?)? {
        let pool = run.pool
        let pageShift = UInt(SizeClasses.pageShift)
        let runBase = run.base, runDirty = run.dirtyPages
        let leftPages = Int((start - runBase) >> pageShift)
        let rightPages = run.npages - leftPages - pages
        guard let piece = spans.take() else { return nil }
        var right: SpanRef?
        if rightPages > 0 {
            guard let r = spans.take() else {
                spans.give(piece)
                return nil
            }
            right = r
        }
        withPool(pool) { $0.remove(run) }
        let rightBase = start + UInt(pages) << pageShift
        let pieceDirty = pageMap.dirtyCount(base: start, npages: pages)
        // Count the shorter side; the other follows from the run's total.
        let leftDirty = leftPages <= rightPages
            ? pageMap.dirtyCount(base: runBase, npages: leftPages)
            : runDirty - pieceDirty - pageMap.dirtyCount(base: rightBase, npages: rightPages)
        if leftPages > 0 {
            file(run, base: runBase, npages: leftPages, pool: pool, dirty: leftDirty)
        } else {
            spans.give(run)
        }
        if let right {
            file(right, base: rightBase, npages: rightPages, pool: pool, dirty: runDirty - pieceDirty - leftDirty)
        }
        piece.base = start
        piece.npages = pages
        piece.pool = pool
        piece.state = .scavenging
        piece.dirtyPages = pieceDirty
        pageMap.setEnds(piece, base: start, npages: pages)
        releasingPages += pieceDirty
        return (piece, right)
    }

    /// Takes pieces holding up to about `budgetPages` dirty pages out of the
    /// index, oldest-filed runs first.
    mutating func takePieces(olderThan cutoff: Int?, budgetPages: Int) -> [SpanRef] {
        var taken: [SpanRef] = []
        var got = 0
        for pool in [ArenaPool.normal, .huge] {
            // Runs filed while we walk land after `stop`; the walk ends there.
            let stop = withPool(pool) { $0.lastDirty }
            var r = withPool(pool) { $0.dirtyHead }
            while let run = r, got < budgetPages {
                r = run == stop ? nil : run.dirtyNext
                counters.runsVisitedForRelease += 1
                var current: SpanRef? = run
                while let c = current, got < budgetPages {
                    let maxPages = min(Self.maxPiecePages, max(budgetPages - got, 16))
                    guard let (start, pages) = eligiblePiece(in: c, olderThan: cutoff, maxPages: maxPages),
                          let (piece, right) = splitOut(c, start: start, pages: pages)
                    else { break }
                    taken.append(piece)
                    got += piece.dirtyPages
                    current = right
                }
            }
        }
        return taken
    }

    /// Pieces worth the pages by which retained memory exceeds the soft limit
    /// (pieces already out for release count as released).
    mutating func takePiecesOverLimit() -> [SpanRef] {
        guard softLimit > 0 else { return [] }
        let over = (retainedPages - releasingPages) << SizeClasses.pageShift - softLimit
        guard over > 0 else { return [] }
        let pages = (over + SizeClasses.pageSize - 1) >> SizeClasses.pageShift
        return takePieces(olderThan: nil, budgetPages: min(pages, Self.batchPages))
    }

    /// Puts pieces back after their release. `cleaned` holds the pages each
    /// release made clean, or nil where it failed (those pages stay dirty).
    mutating func refileReleased(_ pieces: [SpanRef], cleaned: [Int?]) {
        var total = 0
        for (p, c) in zip(pieces, cleaned) {
            releasingPages -= p.dirtyPages
            if let c {
                pageMap.forEachArenaPiece(base: p.base, npages: p.npages) { a, first, count in
                    a.setDirty(first: first, count: count, false)
                }
                withPool(p.pool) { $0.cleanFreePages += c }
                p.dirtyPages = 0
                total += c << SizeClasses.pageShift
            }
            coalesceAndFile(p)
        }
        counters.releasedBytesTotal += total
    }
}

extension MHeap {
    /// Releases the dirty pages of free chunks last freed into at or before
    /// `cutoff` (all of them if nil), a batch of pieces at a time. Returns the
    /// bytes released.
    func release(olderThan cutoff: Int?) -> Int {
        var released = 0
        // Bounded: other threads may keep freeing dirty pages while this runs.
        for round in 0..<4096 {
            let (pieces, othersOut) = locked.withLock { h in
                (h.takePieces(olderThan: cutoff, budgetPages: MHeapState.batchPages), h.releasingPages)
            }
            if pieces.isEmpty {
                // A full release must not return while another thread (the
                // background scavenger, a memory limit) still has pieces out:
                // wait for them to come back, then look again.
                guard cutoff == nil, othersOut > 0, round < 4000 else { break }
                if round < 100 { sched_yield() } else { usleep(100) }
                continue
            }
            released += releasePieces(pieces)
        }
        return released
    }

    /// madvise(MADV_DONTNEED) on pieces taken out of the index, without the
    /// heap lock, then refiles them. Returns the bytes made clean.
    @discardableResult
    func releasePieces(_ pieces: [SpanRef]) -> Int {
        var cleaned: [Int?] = []
        var bytes = 0
        for r in pieces {
            var c = 0
            var ok = true
            pageMap.forEachArenaPiece(base: r.base, npages: r.npages) { a, first, count in
                let d = a.dirtyCount(first: first, count: count)
                if d == 0 { return }
                let addr = UnsafeMutableRawPointer(bitPattern: a.base + UInt(first << SizeClasses.pageShift))!
                if OS.release(addr, bytes: count << SizeClasses.pageShift) { c += d } else { ok = false }
            }
            cleaned.append(ok ? c : nil)
            if ok { bytes += c << SizeClasses.pageShift }
        }
        locked.withLock { $0.refileReleased(pieces, cleaned: cleaned) }
        return bytes
    }

    /// Releases until retained memory is within the soft limit, starting with
    /// `first`, pieces already taken by the caller.
    func enforceLimit(first: [SpanRef] = []) {
        var pieces = first
        for _ in 0..<4096 {
            if pieces.isEmpty { pieces = locked.withLock { $0.takePiecesOverLimit() } }
            if pieces.isEmpty { return }
            releasePieces(pieces)
            pieces = []
        }
    }

    func setSoftLimit(_ bytes: Int) {
        locked.withLock { $0.softLimit = bytes }
        enforceLimit()
    }

    /// True (and the clock noted) if `period` ms passed since the last background run.
    func backgroundRunDue(now: Int, periodMillis: Int) -> Bool {
        locked.withLock { h in
            if now - h.lastScavenge < periodMillis { return false }
            h.lastScavenge = now
            return true
        }
    }
}

extension Heap {
    /// A heap configured without background scavenging (the malloc library's:
    /// a thread of its own is unwelcome in an arbitrary host process) does the
    /// same periodic work from its slow paths: every 64th refill or large
    /// operation reads the clock, and the period's work runs when it is due.
    /// A program that stops allocating keeps its pages until it resumes or
    /// calls releaseFreeMemory.
    @inline(__always)
    func scavengeFromSlowPath() {
        if configuration.backgroundScavenging { return }
        // Counted per thread where the thread has a cache: one shared counter
        // was a cache line every thread's slow path wrote (9% of a 2-thread
        // larson run went to that one locked add).
        // A cache left in the slot by a dead heap is not this heap's: its
        // count would bring this heap's first check early.
        let n: Int
        if let raw = goheap_tls_slots()[slot], case let c = MCacheRef(raw), c.isLive(epoch: epoch) {
            n = c.slowTicks &+ 1
            c.slowTicks = n
        } else {
            n = slowPathTicks.wrappingAdd(1, ordering: .relaxed).newValue
        }
        if n & 63 != 0 { return }
        scavengeTick(now: OS.monotonicMillis())
    }
}

/// The background scavenger: one thread for all heaps that ask for it. Each
/// period it sweeps mcentrals and releases page runs that stayed free for a
/// whole period.
enum Scavenger {
    /// Set in a fork child: the thread did not survive the fork.
    static let restartWanted = Atomic<Bool>(false)

    @inline(__always)
    static func restartIfWanted() {
        if restartWanted.load(ordering: .relaxed) { restart() }
    }

    @inline(never)
    static func restart() {
        guard restartWanted.exchange(false, ordering: .relaxed) else { return }
        let start = registry.withLock { r -> Bool in
            if r.scavengerRunning { return false }
            r.scavengerRunning = true
            return true
        }
        if start { self.start() }
    }

    static func start() {
        _ = goheap_start_detached_thread({ _ in
            Scavenger.run()
            return nil
        }, nil)
    }

    /// Scavenges every heap that wants it once; returns the shortest period.
    static func tick() -> Duration {
        // Strong references are taken under the registry lock but filtered
        // and dropped outside it: if one of them is a heap's last, its deinit
        // (which takes the registry lock) must not run inside the lock.
        let all = registry.withLock { r -> [Heap] in r.slots.compactMap { $0?.heap } }
        let heaps = all.filter { $0.configuration.backgroundScavenging }
        let now = OS.monotonicMillis()
        for h in heaps { h.scavengeTick(now: now) }
        return heaps.map { $0.configuration.scavengePeriod }.min() ?? .seconds(1)
    }

    static func run() {
        goheap_asymmetric_fence_prepare()
        while true {
            // Strong references live only for the tick, never across the sleep.
            let period = tick()
            let (s, a) = period.components
            goheap_sleep_ns(UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, a / 1_000_000_000)))
        }
    }
}
