// Heap: the public face of the allocator, and the top of the data path.
//
//   allocate -> MCache (thread's window: lock-free) -> MCentral (per class lock)
//            -> MHeap (heap lock: pages, large and huge objects) -> Arena -> OS
//
// What this tier owns: argument checks, choosing the path for a request (small
// class, large page run, huge page run), the free path, statistics, and the
// background scavenger. Small requests with ordinary alignment go straight to
// the calling thread's cache; everything else goes through `allocateSlow`.
//
// Free path. The page map finds the span of any pointer in O(1). For a small
// object, if this thread's cache owns the span the free clears a bit in the
// span's allocBits: no lock, no atomic RMW. Otherwise it is a remote free: a
// check that the object is allocated, an atomic OR into the span's remoteBits
// (which also detects a second remote free exactly), an atomic increment of
// remotePending flag (only if not raised yet), and, only for the first remote
// free into a span parked in its
// mcentral's full list, that mcentral's lock to move it to the partial list.
// No global lock is involved. Large and huge objects are freed under the heap
// lock, as in Go. Every fast-path operation on the cache is bracketed by
// enter()/leave() so the heap can take an idle cache's spans back (MCache.swift).
//
// Thread caches live in a C thread-local array indexed by the heap's slot, so a
// process may have up to 64 heaps alive at once, each with its own caches.

import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a heap you create behaves. `Heap.shared` uses the defaults.
public struct HeapConfiguration: Sendable, Equatable {
    /// Soft limit on the bytes the heap keeps resident (the analogue of
    /// GOMEMLIMIT). Before growing past it the heap returns free pages to the
    /// OS. Allocation never fails because of it. nil: no limit.
    public var memoryLimit: Int?
    /// Objects of at least this many bytes take the huge-page path: placed on a
    /// 2 MiB boundary in memory advised MADV_HUGEPAGE. nil disables the path.
    public var hugeThreshold: Int?
    /// Where the heap's pages live on a NUMA machine.
    public var numaPolicy: NUMAPolicy
    /// Return pages that stayed free for a whole scavenger period to the OS in
    /// the background.
    public var backgroundScavenging: Bool
    /// Period of the background scavenger.
    public var scavengePeriod: Duration
    /// How long a free page run must stay free before the background
    /// scavenger returns it. A program that frees and reallocates in bursts
    /// keeps its pages instead of faulting them back in every burst.
    public var scavengeDelay: Duration

    public init(memoryLimit: Int? = nil, hugeThreshold: Int? = 2 << 20,
                numaPolicy: NUMAPolicy = .local, backgroundScavenging: Bool = true,
                scavengePeriod: Duration = .seconds(1), scavengeDelay: Duration = .seconds(5)) {
        self.memoryLimit = memoryLimit
        self.hugeThreshold = hugeThreshold
        self.numaPolicy = numaPolicy
        self.backgroundScavenging = backgroundScavenging
        self.scavengePeriod = scavengePeriod
        self.scavengeDelay = scavengeDelay
    }

    public static var `default`: HeapConfiguration { HeapConfiguration() }
}

/// The path an allocation of a given size takes.
public enum AllocationPath: Sendable, Equatable, CustomStringConvertible {
    /// A small object of a size class, from the thread's cache.
    case small(sizeClass: Int, spanClass: Int)
    /// A run of whole pages (objects over 32 KiB, or stricter alignment than any class gives).
    case large(pages: Int)
    /// A page run on a 2 MiB boundary in huge-page arenas.
    case huge(pages: Int)

    public var description: String {
        switch self {
        case .small(let c, let sc): return "small: size class \(c), span class \(sc)"
        case .large(let p): return "large: \(p) pages"
        case .huge(let p): return "huge: \(p) pages, 2 MiB aligned, MADV_HUGEPAGE"
        }
    }
}

/// A Go-runtime-style memory allocator with explicit free.
public final class Heap: @unchecked Sendable {
    /// The process-wide heap with the default configuration.
    public static let shared = Heap(configuration: .default)

    /// Size of a transparent huge page (2 MiB on x86-64).
    public static let hugePageBytes: Int = {
        let n = OS.hugePageSize
        return n > 0 ? n : 2 << 20
    }()

    /// The kernel's transparent-huge-page mode ("always", "madvise", "never"),
    /// or "" when the kernel has no THP. The huge path needs "always" or "madvise".
    public static var transparentHugePageMode: String { String(cString: goheap_os_thp_mode()) }

    public let configuration: HeapConfiguration

    @usableFromInline let slot: Int
    @usableFromInline let pageMap: PageMap
    let epoch: Int
    /// The partitions (one per NUMA node where there are several) and how
    /// allocations choose one (Partition.swift).
    let plan: PartitionPlan
    var partitions: [Partition] { plan.partitions }
    let hugeThreshold: Int
    let zeroedBytes = Atomic<Int>(0)
    let zeroSkippedBytes = Atomic<Int>(0)
    let zeroReleasedBytes = Atomic<Int>(0)
    /// Frees, per span class, by threads that had no cache for this heap.
    let uncachedFrees: UnsafeMutablePointer<Atomic<Int>>
    /// Slow-path operations of threads without a cache for this heap, counted
    /// only by heaps that scavenge from their slow paths rather than from the
    /// background thread (threads with a cache count in it).
    let slowPathTicks = Atomic<Int>(0)
    /// Heap-profile samples and their sites (HeapProfiler.swift).
    let profiler = HeapProfiler()

    /// Creates a heap. Its address space is reserved lazily, 64 MiB at a time.
    /// At most 64 heaps can be alive at once.
    public init(configuration: HeapConfiguration = .default) {
        if let l = configuration.memoryLimit, l < 0 {
            heapFatal("Heap(configuration:): memoryLimit \(l) is negative")
        }
        if configuration.scavengePeriod <= .zero || configuration.scavengeDelay < .zero {
            heapFatal("Heap(configuration:): scavengePeriod \(configuration.scavengePeriod) must be positive and scavengeDelay \(configuration.scavengeDelay) not negative")
        }
        if let h = configuration.hugeThreshold, h <= SizeClasses.maxSmallSize {
            heapFatal("Heap(configuration:): hugeThreshold \(h) must exceed the largest small object (\(SizeClasses.maxSmallSize) bytes)")
        }
        self.configuration = configuration
        self.hugeThreshold = configuration.hugeThreshold ?? Int.max
        guard let pm = PageMap.create() else {
            heapFatal("Heap(configuration:): could not reserve address space for the page map (errno \(goheap_os_errno()))")
        }
        pageMap = pm
        uncachedFrees = .allocate(capacity: SizeClasses.spanClassCount)
        for i in 0..<SizeClasses.spanClassCount { (uncachedFrees + i).initialize(to: Atomic(0)) }
        goheap_tls_install(threadExitHook)
        ForkHandlers.install()
        // The slot is claimed in the same critical section that finds it free
        // (the registration's heap reference and locks are filled in once they
        // exist), so two heaps created at once can never share a slot and its
        // caches. The slot also picks the heap's window of address space.
        let (slot, epoch, startScavenger) = registry.withLock { r -> (Int, Int, Bool) in
            guard let free = r.slots.firstIndex(where: { $0 == nil }) else {
                heapFatal("Heap(configuration:): \(GOHEAP_MAX_HEAPS) heaps are alive already; release one first")
            }
            let e = r.nextEpoch
            r.nextEpoch += 1
            r.slots[free] = HeapRegistration(heap: nil, epoch: e, locks: [])
            // A heap that wants no background thread (the malloc library's)
            // scavenges from its slow paths instead (Scavenger.swift).
            let start = configuration.backgroundScavenging && !r.scavengerRunning
            if start { r.scavengerRunning = true }
            return (free, e, start)
        }
        self.slot = slot
        self.epoch = epoch
        plan = PartitionPlan.make(policy: configuration.numaPolicy, pageMap: PageMapOwner(pm),
                                  softLimit: configuration.memoryLimit ?? 0, heapSlot: slot)
        // mcentral and mheap locks are never nested, so any order serves fork.
        // The profiler's lock too: a thread recording a sample at fork time
        // would leave it held in the child. It nests inside no heap lock.
        let locks = plan.partitions.flatMap { $0.locks } + [profiler.lock]
        registry.withLock { r in r.slots[slot]?.locks = locks }
        registry.withLock { r in r.slots[slot]?.heap = self }
        if startScavenger { Scavenger.start() }
        #if !hasFeature(Embedded)
        HeapProfileEnvironment.apply(to: self)
        #endif
    }

    deinit {
        registry.withLock { r in
            if let reg = r.slots[slot], reg.epoch == epoch {
                for c in reg.caches { c.markDead() }
            }
            r.slots[slot] = nil
        }
        uncachedFrees.deallocate()
        plan.table.deallocate()
        // MHeap's deinit unmaps the arenas and metadata.
    }

    // MARK: allocation

    /// Allocates `byteCount` bytes aligned to `alignment` (a power of two).
    /// Requests up to 32 KiB get a size-class object, whose address is a
    /// multiple of its class's natural alignment; larger requests, and
    /// alignments no class provides, get whole pages. Traps with a message on
    /// invalid arguments or when the OS refuses memory.
    ///
    /// - Parameters:
    ///   - byteCount: Bytes to allocate, 0 through 2^47. Zero bytes still get a
    ///     distinct 8-byte object.
    ///   - alignment: A power of two. Up to 8 every class qualifies; larger
    ///     alignments pick the smallest class whose objects are that aligned,
    ///     or whole pages.
    ///   - noscan: True when the memory will hold no references
    ///     (trivially destructible contents): it is served from the noscan span
    ///     class of its size, as Go does.
    @inlinable @inline(__always)
    public func allocate(byteCount: Int, alignment: Int = 8, noscan: Bool = false) -> UnsafeMutableRawPointer {
        if byteCount <= SizeClasses.maxSmallSize && byteCount >= 0 && alignment <= 8 && alignment > 0
            && alignment & (alignment - 1) == 0 {
            let spc = SizeClasses.classIndex(byteCount) &<< 1 | (noscan ? 1 : 0)
            if let p = MCacheRef.popCurrentThread(slot: slot, spanClass: spc) { return p }
            if let p = allocateSmallSlow(spanClass: spc) { return p }
            outOfMemory(byteCount, "allocate(byteCount:alignment:)")
        }
        return allocateSlow(byteCount: byteCount, alignment: alignment, noscan: noscan, zeroed: false,
                            trap: true, function: "allocate(byteCount:alignment:)")!
    }

    /// Like ``allocate(byteCount:alignment:noscan:)``, with the memory zeroed.
    /// Pages that come fresh from the OS (or were released to it) are known to
    /// be zero and are not written.
    public func allocateZeroed(byteCount: Int, alignment: Int = 8, noscan: Bool = false) -> UnsafeMutableRawPointer {
        allocateSlow(byteCount: byteCount, alignment: alignment, noscan: noscan, zeroed: true,
                     trap: true, function: "allocateZeroed(byteCount:alignment:)")!
    }

    /// Like ``allocate(byteCount:alignment:noscan:)``, but returns nil instead of
    /// trapping when the OS refuses memory or the size is beyond any heap.
    /// Invalid arguments (negative size, bad alignment) still trap.
    public func tryAllocate(byteCount: Int, alignment: Int = 8, noscan: Bool = false,
                            zeroed: Bool = false) -> UnsafeMutableRawPointer? {
        if byteCount > heapMaxAllocation { return nil }
        return allocateSlow(byteCount: byteCount, alignment: alignment, noscan: noscan, zeroed: zeroed,
                            trap: false, function: "tryAllocate(byteCount:alignment:)")
    }

    /// Which path a request takes, without allocating.
    public func path(forByteCount byteCount: Int, alignment: Int = 8, noscan: Bool = false) -> AllocationPath {
        checkByteCount(byteCount, in: "path(forByteCount:alignment:)")
        checkAlignment(alignment, in: "path(forByteCount:alignment:)")
        if byteCount <= SizeClasses.maxSmallSize {
            var c = SizeClasses.classIndex(byteCount)
            if alignment > 8 { c = SizeClasses.alignedClass(from: c, alignment: alignment) }
            if c != 0 { return .small(sizeClass: c, spanClass: SizeClasses.spanClass(sizeClass: c, noscan: noscan)) }
        }
        let pages = (byteCount + SizeClasses.pageSize - 1) >> SizeClasses.pageShift
        return byteCount >= hugeThreshold ? .huge(pages: max(pages, 1)) : .large(pages: max(pages, 1))
    }

    @usableFromInline @inline(never)
    func allocateSlow(byteCount: Int, alignment: Int, noscan: Bool, zeroed: Bool, trap: Bool,
                      function: StaticString) -> UnsafeMutableRawPointer? {
        checkByteCount(byteCount, in: function)
        checkAlignment(alignment, in: function)
        let path = path(forByteCount: byteCount, alignment: alignment, noscan: noscan)
        switch path {
        case .small(let c, let spc):
            var p = MCacheRef.popCurrentThread(slot: slot, spanClass: spc)
            if p == nil { p = allocateSmallSlow(spanClass: spc) }
            guard let p else {
                if trap { outOfMemory(byteCount, function) }
                return nil
            }
            if zeroed { memset(p, 0, SizeClasses.classSize[c]) }
            return p
        case .large, .huge:
            Scavenger.restartIfWanted()
            scavengeFromSlowPath()
            let huge: Bool
            if case .huge = path { huge = true } else { huge = false }
            let target = plan.current()
            var (s, err) = plan.table.mheap(target) {
                $0.allocLarge(bytes: max(byteCount, 1), alignment: alignment, huge: huge, noscan: noscan)
            }
            if s == nil {
                // This node's partition cannot get memory: the nearest that can.
                for q in plan.fallbackOrder[target] {
                    (s, err) = partitions[q].mheap.allocLarge(bytes: max(byteCount, 1), alignment: alignment,
                                                              huge: huge, noscan: noscan)
                    if s != nil {
                        partitions[q].fallbacks.wrappingAdd(1, ordering: .relaxed)
                        break
                    }
                }
            }
            guard let s else {
                if trap { outOfMemory(byteCount, function, errno: err) }
                return nil
            }
            if profiler.rate.load(ordering: .relaxed) != 0 { profileLarge(s) }
            if zeroed {
                let (z, k, r) = plan.table.mheap(s.partition) { $0.zeroDirtyPages(of: s) }
                zeroedBytes.wrappingAdd(z, ordering: .relaxed)
                zeroSkippedBytes.wrappingAdd(k, ordering: .relaxed)
                zeroReleasedBytes.wrappingAdd(r, ordering: .relaxed)
            }
            return UnsafeMutableRawPointer(bitPattern: s.base)!
        }
    }

    /// An object of `spanClass` when the calling thread's allocation word
    /// for it is empty (or it has no cache yet, or a sample is due).
    @usableFromInline @inline(never)
    func allocateSmallSlow(spanClass spc: Int) -> UnsafeMutableRawPointer? {
        // First the objects this thread freed into its spares (MCache.swift),
        // unless the slow path has something to do: a cache to build or
        // rebuild, a sample point, a flush request.
        if let raw = goheap_tls_slots()[slot] {
            let c = MCacheRef(raw)
            let e = c.entry(spc)
            if e.freedCount > 0 && c.isLive(epoch: epoch) && !e.sampleDue
                && c.flushRequested.pointee.load(ordering: .relaxed) == 0 {
                c.refills.pointee.store(c.refills.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
                c.enter()
                let p = e.popFreed(spanClass: spc, owner: c.address,
                                   partition: plan.table.count == 1 ? nil : plan.current())
                c.leave()
                if let p { return p }
            }
        }
        return refillAndAllocate(spanClass: spc)
    }

    /// Refills the calling thread's window for `spanClass` and pops an object.
    /// The cache's lock keeps a reclaimer out while the entry changes.
    @inline(never)
    func refillAndAllocate(spanClass spc: Int) -> UnsafeMutableRawPointer? {
        Scavenger.restartIfWanted()
        scavengeFromSlowPath()
        let c = currentCache()
        let e = c.entry(spc)
        if e.sampleDue { return allocateSampled(spanClass: spc) }  // HeapProfiler.swift
        c.lock.lock()
        defer { c.lock.unlock() }
        c.refills.pointee.store(c.refills.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        if c.flushRequested.pointee.load(ordering: .relaxed) != 0 { c.releaseAll(to: plan.table) }
        let target = plan.current()
        if let s = e.span, s.partition == target, let p = e.popUnsampled() { return p }
        if c.refill(spc, table: plan.table, target: target) { return e.popUnsampled() }
        // This node's partition cannot get memory: the nearest that can.
        for q in plan.fallbackOrder[target] where c.refill(spc, table: plan.table, target: q) {
            partitions[q].fallbacks.wrappingAdd(1, ordering: .relaxed)
            return e.popUnsampled()
        }
        return nil
    }

    @usableFromInline @inline(never)
    func outOfMemory(_ byteCount: Int, _ function: StaticString, errno: Int32 = 0) -> Never {
        let s = stats
        heapFatal("out of memory: \(function) could not obtain \(SizeClasses.roundUp(byteCount: byteCount)) bytes for a request of \(byteCount) bytes from the OS (mmap errno \(errno)); heap holds \(s.heapSys) bytes of arenas, \(s.heapInUse) in use")
    }

    // MARK: the calling thread's cache

    /// The calling thread's cache for this heap, created (or rebuilt after a
    /// heap that used the same slot died) on first use. Takes the registry
    /// lock, so callers must not hold the cache's lock.
    @inline(never)
    func currentCache() -> MCacheRef {
        let slots = goheap_tls_slots()!
        if let raw = slots[slot] {
            let c = MCacheRef(raw)
            if c.isLive(epoch: epoch) { return c }
            c.reset(epoch: epoch)
            registry.withLock { r in r.slots[slot]?.caches.append(c) }
            armNewCache(c)
            return c
        }
        let c = MCacheRef.create(epoch: epoch)
        registry.withLock { r in r.slots[slot]?.caches.append(c) }
        slots[slot] = c.raw
        goheap_tls_arm_current_thread()
        armNewCache(c)
        return c
    }

    /// Returns the calling thread's cached spans to their mcentrals, so that
    /// empty ones can go back to the page heap. Statistics are unaffected.
    public func flushThreadCache() {
        guard let raw = goheap_tls_slots()[slot] else { return }
        let c = MCacheRef(raw)
        guard c.isLive(epoch: epoch) else { return }
        c.lock.lock()
        c.releaseAll(to: plan.table)
        c.lock.unlock()
    }

    // MARK: free

    /// Frees memory returned by this heap's allocate calls. Any thread may free
    /// any pointer. Traps with a message naming the address and its span on a
    /// double free, an interior pointer, or a pointer this heap never returned.
    ///
    /// The local small-object case is inlined into the caller; everything
    /// else (remote, taking a span back, large and huge, errors) is out of line.
    @inlinable @inline(__always)
    public func deallocate(_ pointer: UnsafeMutableRawPointer) {
        let addr = UInt(bitPattern: pointer)
        // No state check: only a small span checked out by this thread's
        // cache has this cache as its owner, and the record of any other
        // span (large, free, unused) is readable and fails that compare.
        if let s = pageMap.spanUnbounded(of: addr), let idx = s.objectIndex(of: addr),
           let raw = goheap_tls_slots()[slot] {
            let c = MCacheRef(raw)
            c.enter()
            if s.owner.pointee.load(ordering: .relaxed) == UInt(bitPattern: raw) {
                let e = c.entry(s.spanClass)
                let ok = e.freeOwned(s, index: idx)
                let emptied = ok && s.cachedState != .current && e.noteSpareFree(s, index: idx)
                c.leave()
                if _fastPath(ok && !emptied) { return }
                ownedFreeAftermath(s, index: idx, addr: addr, valid: ok, cache: c)
                return
            }
            c.leave()
            deallocateNotOwned(s, index: idx, addr: addr)
            return
        }
        deallocateSlow(addr)
    }

    /// A free whose span and object index the fast path found, in a span
    /// this thread's cache does not own: a remote free, a free that takes a
    /// full span back, or (not a small span) whatever deallocateSlow finds.
    /// The index is exact (the object-start check passed), so it is not
    /// looked up again.
    @usableFromInline @inline(never)
    func deallocateNotOwned(_ s: SpanRef, index idx: Int, addr: UInt) {
        guard s.state == .small else { return deallocateSlow(addr) }
        if s.mayHoldProfiledObjects, freeProfiled(s, addr: addr) { return }
        if let raw = goheap_tls_slots()[slot], s.lastOwner == UInt(bitPattern: raw) {
            reclaimingFree(s, index: idx, addr: addr)
            return
        }
        remoteFree(s, index: idx, addr: addr)
    }

    /// Every free that is not a valid local free of a small object.
    @usableFromInline @inline(never)
    func deallocateSlow(_ addr: UInt) {
        guard let s = pageMap.span(of: addr) else { invalidFree(addr) }
        if s.mayHoldProfiledObjects, freeProfiled(s, addr: addr) { return }
        if s.state == .small {
            guard let idx = s.objectIndex(of: addr) else { invalidFree(addr) }
            if let raw = goheap_tls_slots()[slot], s.lastOwner == UInt(bitPattern: raw) {
                reclaimingFree(s, index: idx, addr: addr)
                return
            }
            remoteFree(s, index: idx, addr: addr)
            return
        }
        if s.state == .large, s.base == addr, plan.table.mheap(s.partition, { $0.freeLarge(at: addr) }) {
            scavengeFromSlowPath()
            return
        }
        invalidFree(addr)
    }

    /// After a local free: a double free, or a spare emptied by it.
    @usableFromInline @inline(never)
    func ownedFreeAftermath(_ s: SpanRef, index idx: Int, addr: UInt, valid: Bool, cache c: MCacheRef) {
        if !valid { doubleFree(addr, s, idx) }
        giveBackEmptySpare(s, cache: c)
    }

    /// A spare span whose last object this thread just freed goes back
    /// (to the page heap, through its mcentral).
    func giveBackEmptySpare(_ s: SpanRef, cache c: MCacheRef) {
        c.spansHeld.pointee.wrappingSubtract(1, ordering: .relaxed)
        plan.table.central(s.partition, s.spanClass) { $0.uncacheSpan(s, allocated: 0) }
    }

    /// A free into a span this thread's cache filled and filed: take the span
    /// back from its mcentral and free locally, or free remotely if it moved on.
    @inline(never)
    func reclaimingFree(_ s: SpanRef, index idx: Int, addr: UInt) {
        let spc = s.spanClass
        let c = currentCache()
        c.lock.lock()
        let r = plan.table.central(s.partition, spc) { c.reclaimAndFree(s, index: idx, central: $0) }
        c.lock.unlock()
        guard let r else {
            remoteFree(s, index: idx, addr: addr)
            return
        }
        if !r.valid { doubleFree(addr, s, idx) }
        if r.emptied { plan.table.central(s.partition, spc) { $0.uncacheSpan(s, allocated: 0) } }
    }

    /// A free of an object in a span this thread's cache does not own.
    @inline(never)
    func remoteFree(_ s: SpanRef, index idx: Int, addr: UInt) {
        let w = idx >> 6
        let bit: UInt64 = 1 << UInt64(idx & 63)
        // Read while the object is still ours: once the OR lands, the owner may
        // collect it, empty the span and reuse the record for another class.
        let spc = s.spanClass
        if s.allocBits[w].load(ordering: .acquiring) & bit == 0 { doubleFree(addr, s, idx) }
        let (old, _) = s.remoteBits[w].bitwiseOr(bit, ordering: .sequentiallyConsistent)
        if old & bit != 0 { doubleFree(addr, s, idx) }
        // Only the first remote free since the last collection raises the flag
        // (one atomic RMW per free in the steady state, the OR above).
        if s.remotePending.pointee.load(ordering: .sequentiallyConsistent) == 0
            && s.remotePending.pointee.exchange(1, ordering: .sequentiallyConsistent) == 0
            && s.location.pointee.load(ordering: .sequentiallyConsistent) == SpanLocation.full.rawValue {
            plan.table.central(s.partition, spc) { $0.noteRemoteFree(s) }
        }
        // Never create a cache to count a free (a thread past its exit hook
        // would leak one per free).
        if let raw = goheap_tls_slots()[slot], MCacheRef(raw).isLive(epoch: epoch) {
            let f = MCacheRef(raw).entry(spc).frees
            f.pointee.store(f.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        } else {
            uncachedFrees[spc].wrappingAdd(1, ordering: .relaxed)
        }
    }

    @inline(never)
    func doubleFree(_ addr: UInt, _ s: SpanRef, _ idx: Int) -> Never {
        heapFatal("double free of \(hex(addr)): object \(idx) of span \(s.describe()) is not allocated")
    }

    @inline(never)
    func invalidFree(_ addr: UInt) -> Never {
        heapFatal("invalid free of \(hex(addr)): " + describeForeign(addr))
    }

    /// Why an address is not the start of a live object of this heap.
    func describeForeign(_ addr: UInt) -> String {
        guard let a = pageMap.arena(of: addr) else {
            return "the address is not in any arena of this heap (pointer from another allocator or heap?)"
        }
        let page = addr & ~UInt(SizeClasses.pageSize - 1)
        guard let raw = a.spans[ArenaRef.pageIndex(addr)] else {
            return "page \(hex(page)) of arena \(hex(a.base)) holds no live object (double free of a large object, or a stale pointer)"
        }
        let s = SpanRef(raw)
        switch s.state {
        case .small:
            let off = Int(addr - s.base)
            let idx = off / s.elemSize
            return "interior pointer: object \(idx) of span \(s.describe()) starts at \(hex(s.base + UInt(idx * s.elemSize)))"
        case .large:
            return "interior pointer: the large object of span \(s.describe()) starts at \(hex(s.base))"
        case .free, .unused, .scavenging:
            return "page \(hex(page)) is free (span \(s.describe())): double free, or a stale pointer"
        }
    }

    /// Resizes an allocation, as C's realloc: the first min(old usable size,
    /// `byteCount`) bytes are kept, and the old pointer must not be used
    /// afterwards, even when the result equals it. A small object that still
    /// fits its class stays where it is; a page run grows in place when the
    /// pages after it are free and it stays on its path (large, or huge), so
    /// the old and the new block are never both resident; otherwise the bytes
    /// move to a new allocation. Traps like
    /// ``deallocate(_:)-(UnsafeMutableRawPointer)`` on a pointer that is not a live allocation.
    public func reallocate(_ pointer: UnsafeMutableRawPointer, byteCount: Int, alignment: Int = 8,
                           noscan: Bool = false) -> UnsafeMutableRawPointer {
        resize(pointer, byteCount: byteCount, alignment: alignment, noscan: noscan, trap: true,
               function: "reallocate(_:byteCount:alignment:)")!
    }

    /// reallocate's work. Without `trap`, a failed move returns nil and leaves
    /// the old block as it was (C's realloc contract). A page run asked to
    /// shrink below half its size moves to a smaller block, so that a huge
    /// buffer trimmed to a few bytes does not keep its pages.
    func resize(_ pointer: UnsafeMutableRawPointer, byteCount: Int, alignment: Int, noscan: Bool,
                trap: Bool, function: StaticString) -> UnsafeMutableRawPointer? {
        checkByteCount(byteCount, in: function)
        checkAlignment(alignment, in: function)
        let addr = UInt(bitPattern: pointer)
        let aligned = addr & UInt(alignment - 1) == 0
        guard let s = pageMap.span(of: addr) else { invalidFree(addr) }
        let old: Int
        switch s.state {
        case .small:
            guard let idx = s.objectIndex(of: addr) else { invalidFree(addr) }
            if !s.isLive(index: idx) { doubleFree(addr, s, idx) }
            old = s.elemSize
            // C's realloc (no trap) moves a block shrunk below half its class
            // to a smaller one, as glibc's gives the tail back, so programs
            // that shrink buffers to fit do not keep the larger size.
            if byteCount <= old && aligned && alignment <= 8 && (trap || byteCount > old / 2 || old <= 16) {
                return pointer
            }
        case .large where s.base == addr:
            old = s.elemSize
            if byteCount <= old && aligned && (trap || byteCount >= old / 2) { return pointer }
            // In place only while the block stays on its path: a run that
            // reaches the huge threshold moves to huge-page arenas.
            let pages = (byteCount + SizeClasses.pageSize - 1) >> SizeClasses.pageShift
            if byteCount > old && aligned && (s.pool == .huge) == (byteCount >= hugeThreshold)
                && plan.table.mheap(s.partition, { $0.growInPlace(s, toPages: pages) }) { return pointer }
        default:
            invalidFree(addr)
        }
        let q: UnsafeMutableRawPointer
        if trap {
            q = allocate(byteCount: byteCount, alignment: alignment, noscan: noscan)
        } else {
            guard let t = tryAllocate(byteCount: byteCount, alignment: alignment, noscan: noscan) else { return nil }
            q = t
        }
        memcpy(q, pointer, min(old, byteCount))
        deallocate(pointer)
        return q
    }

    /// The usable size of an allocation: its class size, or its whole pages.
    /// Traps like ``deallocate(_:)-(UnsafeMutableRawPointer)`` on pointers that are not live allocations.
    public func usableSize(of pointer: UnsafeRawPointer) -> Int {
        let addr = UInt(bitPattern: pointer)
        guard let s = pageMap.span(of: addr) else { invalidPointer(addr) }
        switch s.state {
        case .small:
            guard let idx = s.objectIndex(of: addr) else { invalidPointer(addr) }
            if !s.isLive(index: idx) {
                heapFatal("usableSize(of:) of \(hex(addr)): object \(idx) of span \(s.describe()) is not allocated (freed already?)")
            }
            return s.elemSize
        case .large where s.base == addr:
            return s.elemSize
        default:
            invalidPointer(addr)
        }
    }

    /// True if `pointer` lies in a live span of this heap.
    public func owns(_ pointer: UnsafeRawPointer) -> Bool {
        guard let s = pageMap.span(of: UInt(bitPattern: pointer)) else { return false }
        return s.state == .small || s.state == .large
    }

    /// The path a live allocation took (for tools and tests).
    public func path(of pointer: UnsafeRawPointer) -> AllocationPath {
        let addr = UInt(bitPattern: pointer)
        guard let s = pageMap.span(of: addr) else { invalidPointer(addr) }
        switch s.state {
        case .small: return .small(sizeClass: s.spanClass >> 1, spanClass: s.spanClass)
        case .large: return s.pool == .huge ? .huge(pages: s.npages) : .large(pages: s.npages)
        default: invalidPointer(addr)
        }
    }

    @inline(never)
    func invalidPointer(_ addr: UInt) -> Never {
        heapFatal("usableSize(of:) of \(hex(addr)): " + describeForeign(addr))
    }

    // MARK: returning memory

    /// Returns every free page to the OS now: flushes the calling thread's
    /// cache, takes back the spans other threads' caches hold (a thread busy
    /// in the allocator at that moment gives them back on its next refill),
    /// collects remote frees in all spans parked in mcentrals, gives empty
    /// spans back to the page heap, and releases all free pages with
    /// MADV_DONTNEED. Returns the bytes released.
    @discardableResult
    public func releaseFreeMemory() -> Int {
        flushThreadCache()
        reclaimCaches(idleMillis: nil, now: OS.monotonicMillis())
        var released = 0
        for p in partitions {
            for c in p.centrals { _ = c.sweep() }
            released += p.mheap.release(olderThan: nil)
        }
        return released
    }

    /// Changes the soft memory limit (nil: none).
    public func setMemoryLimit(_ bytes: Int?) {
        if let b = bytes, b < 0 { heapFatal("setMemoryLimit(_:): limit \(b) is negative") }
        // Each partition gets an equal share (one partition on one node).
        let share = bytes.map { max(1, $0 / partitions.count) } ?? 0
        for p in partitions { p.mheap.setSoftLimit(share) }
    }

    /// One period of background scavenging: return empty spans to the page
    /// heap, then release runs that have been free for scavengeDelay.
    func scavengeTick(now: Int) {
        guard partitions[0].mheap.backgroundRunDue(now: now, periodMillis: Self.millis(configuration.scavengePeriod))
        else { return }
        reclaimCaches(idleMillis: Self.millis(configuration.scavengeDelay), now: now)
        for p in partitions {
            for c in p.centrals { _ = c.sweep() }
            _ = p.mheap.release(olderThan: now - Self.millis(configuration.scavengeDelay))
        }
    }

    static func millis(_ d: Duration) -> Int {
        let (s, a) = d.components
        return Int(s) * 1000 + Int(a / 1_000_000_000_000_000)
    }
}
