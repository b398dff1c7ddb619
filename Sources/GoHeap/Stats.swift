// Statistics, shaped like Go's runtime.MemStats.
//
// Small-object counts are kept per thread cache and per span class (relaxed
// counters the owning thread bumps with a plain load and store) and summed on
// read, together with the totals of caches whose threads have exited. Large
// and huge objects are counted under the heap lock. Reading stats takes the
// registry lock and the heap lock briefly; allocating never does.

import Synchronization

/// One size class's counters, like an entry of MemStats.BySize.
public struct SizeClassStats: Sendable, Equatable {
    public let sizeClass: Int
    /// Bytes per object.
    public let size: Int
    public var mallocs: Int
    public var frees: Int
    /// Noscan mallocs among `mallocs`.
    public var noscanMallocs: Int
    public var liveObjects: Int { mallocs - frees }
}

/// A snapshot of a heap's statistics.
public struct HeapStats: Sendable, Equatable {
    /// Bytes in live objects (small objects at their class size, large ones at
    /// their page-rounded size). Go: HeapAlloc.
    public var heapAlloc: Int
    /// Cumulative bytes allocated. Go: TotalAlloc.
    public var totalAlloc: Int
    /// Cumulative allocations and frees (small, large and huge). Go: Mallocs, Frees.
    public var mallocs: Int
    public var frees: Int
    /// Live objects. Go: HeapObjects.
    public var heapObjects: Int { mallocs - frees }
    /// Bytes of arenas reserved from the OS. Go: HeapSys.
    public var heapSys: Int
    /// Bytes in spans that hold objects. Go: HeapInuse.
    public var heapInUse: Int
    /// Bytes in free page runs. Go: HeapIdle.
    public var heapIdle: Int
    /// Free bytes returned to the OS (or never touched). Go: HeapReleased.
    public var heapReleased: Int
    /// Bytes that may be resident: in use plus idle-but-not-released.
    public var heapRetained: Int { heapSys - heapReleased }
    /// Bytes of heap metadata (span records, arena tables, thread caches).
    public var metadataSys: Int
    /// Per size class, classes 1...67 (index 0 is class 1).
    public var bySize: [SizeClassStats]
    /// Large objects (> 32 KiB, below the huge threshold).
    public var largeAllocs: Int
    public var largeFrees: Int
    public var largeBytesInUse: Int
    /// Huge objects (>= the huge threshold).
    public var hugeAllocs: Int
    public var hugeFrees: Int
    public var hugeBytesInUse: Int
    /// Cumulative bytes released to the OS by scavenging.
    public var releasedTotal: Int
    /// Bytes zeroed by allocateZeroed on the page path with memset, bytes it
    /// skipped because the pages were known to be zero already, and bytes of
    /// long dirty runs it zeroed by returning them to the OS (MADV_DONTNEED).
    public var zeroedBytes: Int
    public var zeroSkippedBytes: Int
    public var zeroReleasedBytes: Int
    /// Spans of small objects currently taken from the page heap.
    public var smallSpansInUse: Int
    /// Threads with a live cache for this heap.
    public var threadCaches: Int
    /// Per partition: one per NUMA node where the machine has several (and
    /// one more for a heap whose policy is not node-local).
    public var nodes: [NodeStats]
}

/// The pages of one heap partition (Partition.swift).
public struct NodeStats: Sendable, Equatable {
    /// The node its arenas prefer; nil for the partition that follows the
    /// heap's own policy (and for the only partition on a one-node machine).
    public var node: Int?
    /// The placement policy of its arenas.
    public var policy: String
    /// Bytes of arenas obtained from the OS.
    public var heapSys: Int
    /// Bytes in spans that hold objects.
    public var heapInUse: Int
    /// Free bytes returned to the OS (or never touched).
    public var heapReleased: Int
    /// Cumulative bytes released to the OS.
    public var releasedTotal: Int
    /// Allocations served here because the partition they were meant for
    /// could not get memory.
    public var fallbacks: Int
}

extension Heap {
    /// A consistent-enough snapshot: each counter is exact, but counters move
    /// while other threads allocate.
    public var stats: HeapStats {
        var mallocs = [Int](repeating: 0, count: SizeClasses.spanClassCount)
        var frees = mallocs
        var caches = 0
        registry.withLock { r in
            guard let reg = r.slots[slot], reg.epoch == epoch else { return }
            caches = reg.caches.count
            for spc in 0..<SizeClasses.spanClassCount {
                mallocs[spc] = reg.retiredMallocs[spc]
                frees[spc] = reg.retiredFrees[spc]
            }
            for spc in 0..<SizeClasses.spanClassCount {
                frees[spc] += uncachedFrees[spc].load(ordering: .relaxed)
            }
            for c in reg.caches {
                for spc in 0..<SizeClasses.spanClassCount {
                    let e = c.entry(spc)
                    mallocs[spc] += e.mallocs.pointee.load(ordering: .relaxed)
                    frees[spc] += e.frees.pointee.load(ordering: .relaxed)
                }
            }
        }
        var bySize: [SizeClassStats] = []
        var heapAlloc = 0, totalAlloc = 0, nm = 0, nf = 0
        for c in 1..<SizeClasses.count {
            let m = mallocs[c << 1] + mallocs[c << 1 | 1]
            let f = frees[c << 1] + frees[c << 1 | 1]
            let size = SizeClasses.classSize[c]
            bySize.append(SizeClassStats(sizeClass: c, size: size, mallocs: m, frees: f, noscanMallocs: mallocs[c << 1 | 1]))
            heapAlloc += (m - f) * size
            totalAlloc += m * size
            nm += m
            nf += f
        }
        var k = MHeapCounters()
        var sys = 0, inUse = 0, idle = 0, released = 0, meta = 0
        var nodes: [NodeStats] = []
        let page = SizeClasses.pageSize
        for p in partitions {
            let n = p.mheap.locked.withLock { h -> NodeStats in
                let c = h.counters
                k.largeAllocs += c.largeAllocs; k.largeFrees += c.largeFrees
                k.largeBytesAllocated += c.largeBytesAllocated; k.largeBytesFreed += c.largeBytesFreed
                k.hugeAllocs += c.hugeAllocs; k.hugeFrees += c.hugeFrees
                k.hugeBytesAllocated += c.hugeBytesAllocated; k.hugeBytesFreed += c.hugeBytesFreed
                k.releasedBytesTotal += c.releasedBytesTotal
                k.spansAllocated += c.spansAllocated; k.spansFreed += c.spansFreed
                meta += h.spans.bytesObtained + h.arenas.count * ArenaRef.blockBytes
                return NodeStats(node: p.node, policy: p.policy.description, heapSys: h.arenaPages * page,
                                 heapInUse: (h.arenaPages - h.freePages) * page,
                                 heapReleased: h.cleanFreePages * page,
                                 releasedTotal: c.releasedBytesTotal,
                                 fallbacks: p.fallbacks.load(ordering: .relaxed))
            }
            sys += n.heapSys
            inUse += n.heapInUse
            idle += n.heapSys - n.heapInUse
            released += n.heapReleased
            nodes.append(n)
        }
        let largeLive = k.largeBytesAllocated - k.largeBytesFreed
        let hugeLive = k.hugeBytesAllocated - k.hugeBytesFreed
        return HeapStats(
            heapAlloc: heapAlloc + largeLive + hugeLive,
            totalAlloc: totalAlloc + k.largeBytesAllocated + k.hugeBytesAllocated,
            mallocs: nm + k.largeAllocs + k.hugeAllocs,
            frees: nf + k.largeFrees + k.hugeFrees,
            heapSys: sys,
            heapInUse: inUse,
            heapIdle: idle,
            heapReleased: released,
            metadataSys: meta + PageMap.l1Bytes / 1024 + caches * MCacheRef.blockBytes,
            bySize: bySize,
            largeAllocs: k.largeAllocs, largeFrees: k.largeFrees, largeBytesInUse: largeLive,
            hugeAllocs: k.hugeAllocs, hugeFrees: k.hugeFrees, hugeBytesInUse: hugeLive,
            releasedTotal: k.releasedBytesTotal,
            zeroedBytes: zeroedBytes.load(ordering: .relaxed),
            zeroSkippedBytes: zeroSkippedBytes.load(ordering: .relaxed),
            zeroReleasedBytes: zeroReleasedBytes.load(ordering: .relaxed),
            smallSpansInUse: k.spansAllocated - k.spansFreed,
            threadCaches: caches,
            nodes: nodes)
    }
}
