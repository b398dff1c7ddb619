// The page map: address -> span in O(1), and "is this address ours at all".
//
// Two levels, as in Go on linux/amd64: a flat first level indexed by the 22
// arena bits of a 48-bit address (4 Mi entries, 32 MiB of address space that
// the kernel backs only where entries are written), pointing at the arena's
// metadata, whose second level has one span entry per 8 KiB page.
//
// Invariants: every page of an in-use span (small or large) maps to that span;
// the first and last page of a free run map to the free run's record (so a
// freed neighbour can find it to coalesce); all other pages map to nothing.
// An address whose arena entry is empty was never handed out by this heap.
//
// Locking: entries are written under the heap lock and read without it (see
// Arena.swift for why that is safe for legitimate pointers).

/// Owns a page map shared by several page heaps; unmaps it with the last one.
final class PageMapOwner: @unchecked Sendable {
    let pageMap: PageMap
    init(_ pageMap: PageMap) { self.pageMap = pageMap }
    deinit { pageMap.destroy() }
}

@usableFromInline
struct PageMap: @unchecked Sendable {
    @usableFromInline let l1: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    static let l1Bytes = (1 << ArenaGeometry.l1Bits) * 8

    /// Reserves the first level. Returns nil if the OS refuses 32 MiB of address space.
    static func create() -> PageMap? {
        let (p, _) = OS.reserve(bytes: l1Bytes, alignment: 4096)
        guard let p else { return nil }
        return PageMap(l1: p.bindMemory(to: UnsafeMutableRawPointer?.self, capacity: 1 << ArenaGeometry.l1Bits))
    }

    func destroy() { OS.unmap(UnsafeMutableRawPointer(l1), bytes: Self.l1Bytes) }

    /// The arena holding `addr`, or nil if the address is not in this heap.
    @inlinable @inline(__always)
    func arena(of addr: UInt) -> ArenaRef? {
        let i = addr >> UInt(ArenaGeometry.arenaShift)
        if i >= UInt(1 << ArenaGeometry.l1Bits) { return nil }
        return l1[Int(bitPattern: i)].map(ArenaRef.init)
    }

    /// The span record for the page holding `addr`, or nil.
    @inlinable @inline(__always)
    func span(of addr: UInt) -> SpanRef? {
        guard let a = arena(of: addr) else { return nil }
        return a.spans[ArenaRef.pageIndex(addr)].map(SpanRef.init)
    }

    /// The span record a free's fast path starts from, or nil. Unlike
    /// span(of:) it does not bound the address: bits above 48 are masked off,
    /// so an address outside the 48-bit space may alias a span of ours. The
    /// caller must then reject it, and does: the object-start check fails
    /// for an address that far from the span's base (the offset exceeds what
    /// any object index times any class size reaches), and the slow path
    /// checks again with span(of:).
    @inlinable @inline(__always)
    func spanUnbounded(of addr: UInt) -> SpanRef? {
        let i = (addr >> UInt(ArenaGeometry.arenaShift)) & UInt(1 << ArenaGeometry.l1Bits - 1)
        guard let a = l1[Int(bitPattern: i)] else { return nil }
        return ArenaRef(a).spans[ArenaRef.pageIndex(addr)].map(SpanRef.init)
    }

    func register(_ a: ArenaRef) {
        l1[Int(bitPattern: a.base >> UInt(ArenaGeometry.arenaShift))] = a.raw
    }

    /// Points every page of [base, base + npages pages) at `span` (or clears them).
    /// Runs may cross arena boundaries when arenas are contiguous.
    func set(_ span: SpanRef?, base: UInt, npages: Int) {
        forEachArenaPiece(base: base, npages: npages) { arena, first, count in
            let p = arena.spans + first
            if let span {
                p.update(repeating: span.raw, count: count)
            } else {
                p.update(repeating: nil, count: count)
            }
        }
    }

    /// Sets only the first and last page entries (free-run boundary tags).
    func setEnds(_ span: SpanRef, base: UInt, npages: Int) {
        setOne(span, at: base)
        setOne(span, at: base + UInt((npages - 1) << SizeClasses.pageShift))
    }

    func setOne(_ span: SpanRef?, at addr: UInt) {
        arena(of: addr)!.spans[ArenaRef.pageIndex(addr)] = span?.raw
    }

    /// Calls body(arena, firstPageIndex, pageCount) for each arena a run touches.
    func forEachArenaPiece(base: UInt, npages: Int, _ body: (ArenaRef, Int, Int) -> Void) {
        var addr = base
        var left = npages
        while left > 0 {
            let a = arena(of: addr)!
            let first = ArenaRef.pageIndex(addr)
            let n = min(left, ArenaGeometry.pagesPerArena - first)
            body(a, first, n)
            left -= n
            addr += UInt(n << SizeClasses.pageShift)
        }
    }

    /// Dirty pages in [base, base + npages pages). Here rather than on the
    /// heap state so a caller holding that state inout does not copy it.
    func dirtyCount(base: UInt, npages: Int) -> Int {
        var d = 0
        forEachArenaPiece(base: base, npages: npages) { a, first, count in
            d += a.dirtyCount(first: first, count: count)
        }
        return d
    }

    /// The free run whose boundary page is `addr`, if it is in `pool`.
    func freeNeighbour(at addr: UInt, pool: ArenaPool) -> SpanRef? {
        guard let a = arena(of: addr), a.pool == pool,
              let raw = a.spans[ArenaRef.pageIndex(addr)] else { return nil }
        let r = SpanRef(raw)
        return r.state == .free ? r : nil
    }
}
