// mcentral: the spans of one span class that no thread has checked out.
//
// A span a cache filled comes here full, remembering that cache (lastOwner);
// that cache's first local free into it takes it back under this lock, from
// the full list or from the partial list a remote free moved it to, so a
// thread freeing what it allocated frees locally rather than remotely. A span
// another cache checks out forgets its filler: the filler's frees into it
// are remote from then on, with no lock taken to find that out.
//
// What this tier owns: two lists per span class, as Go has: "partial" spans
// with at least one free object (or uncollected remote frees), and "full"
// spans with none. An mcache takes a span from here (partial first, else a
// fresh one from the mheap) and gives it back when it has used it up.
//
// A full span can regain free objects only through remote frees, since no
// cache owns it. The first remote free after a collection (it raises the
// remotePending flag, 0 -> 1) checks whether the span is in the full list and, if so, moves it to
// the partial list under this lock. To close the race with a span being put
// into the full list at the same moment, both sides use sequentially
// consistent operations in opposite order: the freer raises remotePending then
// reads location; the mcentral writes location = full then reads
// remotePending. At least one of them sees the other.
//
// Locking: one mutex per span class; never held while calling the mheap, so
// the lock order is simply mcentral, then (separately) mheap.

import Synchronization

/// The lists of one span class.
struct MCentralLists: ~Copyable {
    var partial: SpanRef?  // doubly linked, most recent first, for removal on reclaim
    var full: SpanRef?  // doubly linked, for removal on remote free and reclaim
    var partialCount = 0
    var fullCount = 0
}

final class MCentral: @unchecked Sendable {
    let spanClass: Int
    let lists = Locked(MCentralLists())
    /// The partition's mheap, which outlives its mcentrals. Unmanaged, so
    /// that calling it costs no reference counting (Partition.swift).
    private let heap: Unmanaged<MHeap>

    init(spanClass: Int, heap: MHeap) {
        self.spanClass = spanClass
        self.heap = .passUnretained(heap)
    }

    /// A span with free objects for the cache `owner`: taken from the partial
    /// list with its remote frees collected, or fresh from the mheap. nil only
    /// when the OS refuses memory.
    func cacheSpan(owner: UInt) -> SpanRef? {
        let s = lists.withLock { l -> SpanRef? in
            guard let s = l.partial else { return nil }
            removePartial(s, &l)
            s.location.pointee.store(SpanLocation.cached.rawValue, ordering: .sequentiallyConsistent)
            s.owner.pointee.store(s.ownerWord(owner), ordering: .releasing)
            // Its filler's frees into it are remote from now on: without
            // this, each one would take two locks to find the span gone.
            s.lastOwner = 0
            return s
        }
        if let s {
            s.collectRemoteFrees()
            return s
        }
        guard let fresh = heap._withUnsafeGuaranteedRef({ $0.allocSmallSpan(spanClass: spanClass) }) else { return nil }
        fresh.location.pointee.store(SpanLocation.cached.rawValue, ordering: .sequentiallyConsistent)
        fresh.owner.pointee.store(fresh.ownerWord(owner), ordering: .releasing)
        return fresh
    }

    /// Takes back a span from its cache, which has collected its remote frees;
    /// `allocated` is the live object count. Empty spans go back to the mheap.
    /// `lastOwner` is the cache giving up a full span it may take back on its
    /// next local free into it (0 for none).
    func uncacheSpan(_ s: SpanRef, allocated: Int, lastOwner: UInt = 0) {
        s.lastOwner = lastOwner
        if allocated == 0 {
            s.owner.pointee.store(0, ordering: .releasing)
            heap._withUnsafeGuaranteedRef { $0.freeSmallSpan(s) }
            return
        }
        let isFull = allocated == s.nelems
        lists.withLock { l in
            s.owner.pointee.store(0, ordering: .releasing)
            if isFull {
                s.location.pointee.store(SpanLocation.full.rawValue, ordering: .sequentiallyConsistent)
                if s.remotePending.pointee.load(ordering: .sequentiallyConsistent) == 0 {
                    pushFull(s, &l)
                    return
                }
            }
            pushPartial(s, &l)
        }
    }

    /// Gives a span back to the cache that filled it, on that cache's first
    /// local free into it: from the full list, or from the partial list where
    /// a remote free moved it (the cache collects those frees). False if the
    /// span moved on meanwhile (another cache has it, or it was freed).
    func reclaim(_ s: SpanRef, owner: UInt) -> Bool {
        lists.withLock { l -> Bool in
            let at = s.location.pointee.load(ordering: .sequentiallyConsistent)
            guard at == SpanLocation.full.rawValue || at == SpanLocation.partial.rawValue,
                  s.owner.pointee.load(ordering: .relaxed) == 0, s.lastOwner == owner,
                  s.state == .small, s.spanClass == spanClass else { return false }
            if at == SpanLocation.full.rawValue { removeFull(s, &l) } else { removePartial(s, &l) }
            s.location.pointee.store(SpanLocation.cached.rawValue, ordering: .sequentiallyConsistent)
            s.owner.pointee.store(s.ownerWord(owner), ordering: .releasing)
            return true
        }
    }

    /// Called by a remote freer that raised remotePending (0 -> 1) and saw the span
    /// in the full list: move it to the partial list so it can be reused.
    func noteRemoteFree(_ s: SpanRef) {
        lists.withLock { l in
            guard s.location.pointee.load(ordering: .sequentiallyConsistent) == SpanLocation.full.rawValue,
                  s.spanClass == spanClass, s.state == .small else { return }
            removeFull(s, &l)
            pushPartial(s, &l)
        }
    }

    /// Collects remote frees in every span here and returns empty spans to the
    /// mheap. Returns the number of spans released.
    func sweep() -> Int {
        let empties = lists.withLock { l -> [SpanRef] in
            var empties: [SpanRef] = []
            var keep: [SpanRef] = []
            var s = l.partial
            while let x = s {
                s = x.next
                x.collectRemoteFrees()
                if x.allocatedCount() == 0 { empties.append(x) } else { keep.append(x) }
            }
            l.partial = nil
            l.partialCount = 0
            for x in keep.reversed() { pushPartial(x, &l) }
            var f = l.full
            while let x = f {
                f = x.next
                if x.remotePending.pointee.load(ordering: .acquiring) == 0 { continue }
                x.collectRemoteFrees()
                removeFull(x, &l)
                if x.allocatedCount() == 0 { empties.append(x) } else { pushPartial(x, &l) }
            }
            for x in empties { x.location.pointee.store(SpanLocation.none.rawValue, ordering: .relaxed) }
            return empties
        }
        heap._withUnsafeGuaranteedRef { h in for s in empties { h.freeSmallSpan(s) } }
        return empties.count
    }

    /// Span counts for statistics.
    var counts: (partial: Int, full: Int) { lists.withLock { ($0.partialCount, $0.fullCount) } }

    private func pushPartial(_ s: SpanRef, _ l: inout MCentralLists) {
        s.location.pointee.store(SpanLocation.partial.rawValue, ordering: .sequentiallyConsistent)
        s.prev = nil
        s.next = l.partial
        l.partial?.prev = s
        l.partial = s
        l.partialCount += 1
    }

    private func pushFull(_ s: SpanRef, _ l: inout MCentralLists) {
        s.prev = nil
        s.next = l.full
        l.full?.prev = s
        l.full = s
        l.fullCount += 1
    }

    private func removeFull(_ s: SpanRef, _ l: inout MCentralLists) {
        unlink(s, head: &l.full, count: &l.fullCount)
    }

    private func removePartial(_ s: SpanRef, _ l: inout MCentralLists) {
        unlink(s, head: &l.partial, count: &l.partialCount)
    }

    /// Takes `s` out of the doubly linked list at `head` (either list).
    private func unlink(_ s: SpanRef, head: inout SpanRef?, count: inout Int) {
        if let p = s.prev { p.next = s.next } else { head = s.next }
        s.next?.prev = s.prev
        s.next = nil
        s.prev = nil
        count -= 1
    }
}
