// The page allocator: an index of free page runs for one arena pool.
//
// What this tier owns: finding a run of at least n free pages, however large
// the heap. Go 1.19 keeps radix-tree summaries over a bitmap of pages; we
// keep the free runs themselves in a two-level segregated-fit index (the TLSF
// scheme): the first level is floor(log2(pages)), the second splits each power
// of two into 8 equal steps, and a bitmap per level says which lists are
// non-empty. A request is rounded up to the next step, so any run in the list
// found fits, and the list is found with two count-trailing-zeros: O(1).
// One case is not O(1): when no rounded-up list has a run, the request's own
// list (runs of sizes within one step of it) is scanned for one that fits
// before the heap grows, so no request grows the heap while a fitting run
// exists. That scan is linear in the length of that one list.
//
// It also keeps the runs that have dirty pages (dirtyPages > 0) on a second
// list, in the order they were filed, so the scavenger and the memory limit
// find pages to release without walking clean runs.
//
// Coalescing is done by the mheap with boundary tags in the page map (the first
// and last page of each free run point at its record); this index only files
// and unfiles runs.
//
// Locking: used only under the heap lock.

struct PageAllocator: @unchecked Sendable {
    static let firstLevels = 48
    static let secondLevels = 8
    private var firstMap: UInt64 = 0
    private let secondMap: UnsafeMutablePointer<UInt8>
    private let heads: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    /// Free pages filed here, and how many of them are clean (released or never used).
    var freePages = 0
    var cleanFreePages = 0
    var runCount = 0
    /// Runs with dirty pages, oldest filing first.
    private(set) var dirtyHead: SpanRef?
    private var dirtyTail: SpanRef?

    init() {
        secondMap = .allocate(capacity: Self.firstLevels)
        secondMap.initialize(repeating: 0, count: Self.firstLevels)
        heads = .allocate(capacity: Self.firstLevels * Self.secondLevels)
        heads.initialize(repeating: nil, count: Self.firstLevels * Self.secondLevels)
    }

    func deallocate() {
        secondMap.deallocate()
        heads.deallocate()
    }

    /// The list a run of `n` pages is filed in.
    @inline(__always)
    static func list(of n: Int) -> (Int, Int) {
        let fl = Int.bitWidth - 1 - n.leadingZeroBitCount
        if fl < 3 { return (fl, n - (1 << fl)) }
        return (fl, (n >> (fl - 3)) - 8)
    }

    mutating func insert(_ s: SpanRef) {
        let (fl, sl) = Self.list(of: s.npages)
        let i = fl * Self.secondLevels + sl
        let head = heads[i].map(SpanRef.init)
        s.prev = nil
        s.next = head
        head?.prev = s
        heads[i] = s.raw
        secondMap[fl] |= 1 << UInt8(sl)
        firstMap |= 1 << UInt64(fl)
        runCount += 1
        if s.dirtyPages > 0 {
            s.dirtyNext = nil
            s.dirtyPrev = dirtyTail
            if let t = dirtyTail { t.dirtyNext = s } else { dirtyHead = s }
            dirtyTail = s
        }
    }

    mutating func remove(_ s: SpanRef) {
        let (fl, sl) = Self.list(of: s.npages)
        let i = fl * Self.secondLevels + sl
        if let p = s.prev { p.next = s.next } else { heads[i] = s.next?.raw }
        s.next?.prev = s.prev
        s.next = nil
        s.prev = nil
        if heads[i] == nil {
            secondMap[fl] &= ~(1 << UInt8(sl))
            if secondMap[fl] == 0 { firstMap &= ~(1 << UInt64(fl)) }
        }
        runCount -= 1
        if s.dirtyPages > 0 {
            if let p = s.dirtyPrev { p.dirtyNext = s.dirtyNext } else { dirtyHead = s.dirtyNext }
            if let n = s.dirtyNext { n.dirtyPrev = s.dirtyPrev } else { dirtyTail = s.dirtyPrev }
            s.dirtyNext = nil
            s.dirtyPrev = nil
        }
    }

    /// The last run on the dirty list now (a walk that files runs as it goes
    /// stops here, so it never revisits what it filed).
    var lastDirty: SpanRef? { dirtyTail }

    /// A free run of at least `n` pages, or nil. The run stays filed.
    func find(atLeast n: Int) -> SpanRef? {
        let (fl0, _) = Self.list(of: n)
        // Round up to the next step so every run in the list found is big enough.
        let rounded = fl0 < 3 ? n : n + (1 << (fl0 - 3)) - 1
        var (fl, sl) = Self.list(of: rounded)
        if fl < Self.firstLevels {
            var second = UInt64(secondMap[fl]) & (~0 << UInt64(sl))
            if second == 0 {
                let upper = fl + 1 < 64 ? firstMap & (~0 << UInt64(fl + 1)) : 0
                if upper != 0 {
                    fl = upper.trailingZeroBitCount
                    second = UInt64(secondMap[fl])
                }
            }
            if second != 0 {
                sl = second.trailingZeroBitCount
                return heads[fl * Self.secondLevels + sl].map(SpanRef.init)
            }
        }
        // Rounding may have skipped the one list that holds a fitting run.
        let (efl, esl) = Self.list(of: n)
        var s = heads[efl * Self.secondLevels + esl].map(SpanRef.init)
        while let r = s {
            if r.npages >= n { return r }
            s = r.next
        }
        return nil
    }
}
