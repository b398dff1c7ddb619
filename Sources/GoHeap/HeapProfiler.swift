// Heap profiling: which call stacks allocate, and how much of it is still in
// use. Go's heap profile (runtime.MemProfileRate, mprof.go), rebuilt for a
// heap with explicit free.
//
// Sampling. An allocation is sampled with the probability that a Poisson
// process of one point per `rate` bytes (on average) puts a point inside its
// bytes: 1 - exp(-size/rate). Go keeps one countdown per P across all sizes;
// here each cache entry (one span class of one thread) keeps its own, drawn
// from the same exponential distribution. Poisson processes are memoryless,
// so sampling each class's stream of bytes on its own gives the same law as
// sampling the merged stream, and the profile's scaling (count divided by
// the sampling probability, as pprof's protomem does) is unbiased either way.
// With rate 1 every allocation is sampled.
//
// Where it hooks in, and what it costs:
//   - Small objects. The countdown is kept in objects: an entry diverts the
//     allocation made when its `mallocs` counter reaches `sampleAt` to the
//     slow path (`CacheEntry.pop` returns nil, as for a full word). The fast
//     path already bumps `mallocs`, so the check is a load of `sampleAt`, a
//     compare with `mallocs` in memory and a branch: 3 instructions (105 ->
//     108 per allocate+free pair, scripts/callgrind-pair.sh; 108.8 with
//     profiling on at 512 KiB, stacks included). Deciding at refill time
//     instead would add nothing to the fast path, but a cache hands a freed
//     object out again without ever refilling (workload 1 never leaves the
//     fast path), so a refill-time countdown would never see those bytes.
//     Profiling off: `sampleAt` is Int.max and the compare never fires.
//   - Large and huge objects take the slow path anyway and are sampled there
//     with the same probability.
//   - Frees. A span holding live sampled objects says so twice: a count in
//     its record (`profiledObjects`, read by any freer), and bit 0 of its
//     `owner` word while a cache owns it. The tagged owner never equals the
//     cache's address, so the owner's local free of any object in such a span
//     fails the fast path's owner compare (an existing instruction) and
//     reaches `deallocateSlow`, which looks the address up in the sample
//     table and then frees locally as the fast path would. Remote, large and
//     huge frees are slow paths already; they check the count. Spans without
//     samples pay nothing. Only the owner, under its cache lock, sets the tag
//     (after raising the count), and a cache that checks a span out tags it
//     if the count is not zero, so a sampled object is never freed unseen.
//     A tag left behind after a remote freer freed the span's last sample is
//     cleared by the owner's next local free into the span.
//
// Recording never allocates from a heap: the sample table (address ->
// bucket), the buckets (stack and size -> counts) and snapshots live in
// memory mapped from the OS, under the profiler's own lock. Lock order:
// registry, a cache's lock, then the profiler lock; stacks are captured
// (frame pointers, or glibc's backtrace) outside every lock, and the
// unwinder is loaded when profiling starts, so the capture does not call malloc.
//
// Counts are cumulative per bucket, as in Go: stopping profiling stops
// sampling; frees of objects sampled earlier are still counted.

import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Per-heap profiling state. Every mutable field is guarded by `lock`.
final class HeapProfiler: @unchecked Sendable {
    /// Bytes between samples on average; 0 while sampling is off.
    let rate = Atomic<Int>(0)
    /// The last rate profiling ran at (the profile's scaling needs it after a stop).
    let lastRate = Atomic<Int>(0)
    /// A splitmix64 counter for large objects (any thread).
    let largeRandom = Atomic<UInt64>(0x2545_F491_4F6C_DD1D)
    let lock = LockRef.allocate()

    /// Frames kept per sample (Go keeps 32 below its runtime frames; a few of
    /// ours are GoHeap's own, removed when the profile is written).
    static let maxFrames = 40
    // Bucket record layout (bytes): chain link, hash, object size, depth,
    // allocs, frees, alloc bytes, free bytes, then the frames.
    static let nextOff = 0, hashOff = 8, sizeOff = 16, depthOff = 24
    static let allocsOff = 32, freesOff = 40, allocBytesOff = 48, freeBytesOff = 56, framesOff = 64
    static let recordBytes = framesOff + maxFrames * 8

    // Buckets: records in one mapped region, chained from a power-of-two head array.
    @exclusivity(unchecked) var records: UnsafeMutableRawPointer?
    @exclusivity(unchecked) var recordCount = 0
    @exclusivity(unchecked) var recordCapacity = 0
    @exclusivity(unchecked) var heads: UnsafeMutablePointer<Int>?  // record index + 1, 0: empty
    @exclusivity(unchecked) var headCount = 0
    // Live sampled objects: open addressing with linear probing, (address, record index).
    @exclusivity(unchecked) var table: UnsafeMutablePointer<UInt>?
    @exclusivity(unchecked) var tableCapacity = 0
    @exclusivity(unchecked) var tableCount = 0

    init() {}

    deinit {
        if let r = records { OS.unmap(r, bytes: recordCapacity * Self.recordBytes) }
        if let h = heads { OS.unmap(UnsafeMutableRawPointer(h), bytes: headCount * 8) }
        if let t = table { OS.unmap(UnsafeMutableRawPointer(t), bytes: tableCapacity * 16) }
        lock.raw.deallocate()
    }

    // MARK: random sample points

    /// Natural logarithm of x in (0, 1], from the standard library alone
    /// (no libm, so Embedded Swift builds it too): x = m * 2^e with m in
    /// [1, 2), ln m = 2 atanh((m - 1)/(m + 1)), whose series converges fast.
    static func ln(_ x: Double) -> Double {
        let e = Double(Int(x.exponent))
        let m = x.significand
        let z = (m - 1) / (m + 1)
        let z2 = z * z
        var term = z
        var sum = 0.0
        var k = 1.0
        while k < 40 {
            sum += term / k
            term *= z2
            k += 2
        }
        return 2 * sum + e * 0.693_147_180_559_945_3
    }

    /// One step of splitmix64.
    static func mix(_ s: UInt64) -> UInt64 {
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Bytes to the next sample point: exponential with mean `rate`.
    static func exponentialBytes(rate: Int, random r: UInt64) -> Double {
        let u = (Double(r >> 11) + 1) * 0x1p-53  // (0, 1]
        return -ln(u) * Double(rate)
    }

    /// Allocations of `size`-byte objects until the one that holds the next
    /// sample point (1: the very next).
    static func objectsToNextSample(rate: Int, size: Int, random r: UInt64) -> Int {
        if rate <= 1 { return 1 }
        let bytes = exponentialBytes(rate: rate, random: r)
        // Rounded up without libm's ceil (the malloc library links only libc).
        let q = bytes / Double(size)
        if !(q < 0x1p52) { return 1 << 52 }
        let t = Int(q)
        let k = Double(t) < q ? t + 1 : t
        return k < 1 ? 1 : k
    }

    // MARK: arming caches (cache lock held)

    /// Points the entry's countdown at its next sample, or switches it off.
    static func arm(_ c: MCacheRef, spanClass spc: Int, rate: Int) {
        let e = c.entry(spc)
        guard rate > 0 else {
            e.sampleAt.pointee.store(Int.max, ordering: .relaxed)
            return
        }
        var s = c.profileRandom
        if s == 0 { s = UInt64(UInt(bitPattern: c.raw)) ^ UInt64(bitPattern: goheap_wall_clock_ns()) }
        s &+= 0x9E37_79B9_7F4A_7C15
        c.profileRandom = s
        let size = SizeClasses.classSize[spc >> 1]
        let k = objectsToNextSample(rate: rate, size: size, random: mix(s))
        // pop diverts when mallocs (before its increment) >= sampleAt.
        e.sampleAt.pointee.store(e.mallocs.pointee.load(ordering: .relaxed) &+ (k - 1), ordering: .relaxed)
    }

    static func armAll(_ c: MCacheRef, rate: Int) {
        for spc in 0..<SizeClasses.spanClassCount { arm(c, spanClass: spc, rate: rate) }
    }

    /// Should a large object of `size` bytes be sampled?
    func sampleLarge(size: Int, rate: Int) -> Bool {
        if rate <= 1 { return true }
        let s = largeRandom.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        return Self.exponentialBytes(rate: rate, random: Self.mix(s)) < Double(size)
    }

    // MARK: recording

    /// Captures the caller's stack (no lock may be held) and records a sampled
    /// allocation of `size` bytes at `addr`.
    @inline(never)
    func record(_ addr: UInt, size: Int) {
        withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: Self.maxFrames + 1) { buf in
            // Frame pointers first (Swift keeps them on Linux): a DWARF unwind
            // costs about 18,000 instructions a sample, 9 per allocation at
            // the default rate. backtrace() only if the walk finds nothing,
            // skipping its frame 0 (the shim's own) to keep one layout.
            var n = Int(goheap_frame_pointer_backtrace(buf.baseAddress! + 1, Int32(Self.maxFrames)))
            if n < 2 { n = max(0, Int(goheap_backtrace(buf.baseAddress, Int32(Self.maxFrames + 1))) - 1) }
            let depth = n
            var h = UInt64(size) &* 0x9E37_79B9_7F4A_7C15
            for i in 0..<depth {
                h = Self.mix(h ^ UInt64(UInt(bitPattern: buf[i + 1])))
            }
            lock.lock()
            defer { lock.unlock() }
            let r = findOrAddBucket(hash: h, size: size, frames: buf.baseAddress! + 1, depth: depth)
            bump(r, count: Self.allocsOff, bytes: Self.allocBytesOff, size: size)
            insertSample(addr, record: r)
        }
    }

    /// Counts the free of `addr` if it was sampled and is still recorded.
    func removeSample(_ addr: UInt) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let t = table, tableCount > 0 else { return false }
        let mask = tableCapacity - 1
        var i = Self.slot(addr, mask)
        while t[2 * i] != 0 {
            if t[2 * i] == addr {
                let r = Int(t[2 * i + 1])
                let size = recordField(r, Self.sizeOff)
                bump(r, count: Self.freesOff, bytes: Self.freeBytesOff, size: size)
                deleteSlot(i)
                return true
            }
            i = (i + 1) & mask
        }
        return false
    }

    static func slot(_ addr: UInt, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: mix(UInt64(addr)) & UInt64(mask))
    }

    func recordField(_ r: Int, _ off: Int) -> Int {
        records!.load(fromByteOffset: r * Self.recordBytes + off, as: Int.self)
    }

    func setRecordField(_ r: Int, _ off: Int, _ v: Int) {
        records!.storeBytes(of: v, toByteOffset: r * Self.recordBytes + off, as: Int.self)
    }

    func bump(_ r: Int, count: Int, bytes: Int, size: Int) {
        setRecordField(r, count, recordField(r, count) + 1)
        setRecordField(r, bytes, recordField(r, bytes) + size)
    }

    /// Memory straight from the OS (never from a heap), or a fatal error.
    static func map(_ bytes: Int) -> UnsafeMutableRawPointer {
        let (p, err) = OS.reserve(bytes: bytes, alignment: OS.pageSize)
        guard let p else { heapFatal("heap profile: could not map \(bytes) bytes (errno \(err))") }
        return p
    }

    static func roundToPages(_ bytes: Int) -> Int {
        let page = OS.pageSize
        return (bytes + page - 1) / page * page
    }

    func findOrAddBucket(hash: UInt64, size: Int, frames: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
                         depth: Int) -> Int {
        if let h = heads {
            var link = h[Int(truncatingIfNeeded: hash) & (headCount - 1)]
            while link != 0 {
                let r = link - 1
                if recordField(r, Self.hashOff) == Int(truncatingIfNeeded: hash)
                    && recordField(r, Self.sizeOff) == size && recordField(r, Self.depthOff) == depth
                    && memcmp(records! + r * Self.recordBytes + Self.framesOff, frames, depth * 8) == 0 {
                    return r
                }
                link = recordField(r, Self.nextOff)
            }
        }
        if recordCount == recordCapacity { growRecords() }
        let r = recordCount
        recordCount += 1
        let base = records! + r * Self.recordBytes
        memset(base, 0, Self.recordBytes)
        memcpy(base + Self.framesOff, frames, depth * 8)
        setRecordField(r, Self.hashOff, Int(truncatingIfNeeded: hash))
        setRecordField(r, Self.sizeOff, size)
        setRecordField(r, Self.depthOff, depth)
        if recordCount > headCount { rehashBuckets(headCount == 0 ? 256 : headCount * 2) }
        else { link(r) }
        return r
    }

    func link(_ r: Int) {
        let b = recordField(r, Self.hashOff) & (headCount - 1)
        setRecordField(r, Self.nextOff, heads![b])
        heads![b] = r + 1
    }

    func growRecords() {
        let newCapacity = recordCapacity == 0
            ? Self.roundToPages(256 * Self.recordBytes) / Self.recordBytes : recordCapacity * 2
        let p = Self.map(newCapacity * Self.recordBytes)
        if let old = records {
            memcpy(p, old, recordCount * Self.recordBytes)
            OS.unmap(old, bytes: recordCapacity * Self.recordBytes)
        }
        records = p
        recordCapacity = newCapacity
    }

    func rehashBuckets(_ n: Int) {
        if let h = heads { OS.unmap(UnsafeMutableRawPointer(h), bytes: headCount * 8) }
        heads = Self.map(Self.roundToPages(n * 8)).bindMemory(to: Int.self, capacity: n)
        headCount = n
        for r in 0..<recordCount { link(r) }
    }

    func insertSample(_ addr: UInt, record r: Int) {
        if (tableCount + 1) * 2 > tableCapacity { growTable() }
        let t = table!
        let mask = tableCapacity - 1
        var i = Self.slot(addr, mask)
        while t[2 * i] != 0 && t[2 * i] != addr { i = (i + 1) & mask }
        if t[2 * i] == 0 { tableCount += 1 }
        t[2 * i] = addr
        t[2 * i + 1] = UInt(r)
    }

    func growTable() {
        let old = table, oldCapacity = tableCapacity
        let n = oldCapacity == 0 ? 4096 : oldCapacity * 2
        table = Self.map(n * 16).bindMemory(to: UInt.self, capacity: 2 * n)
        tableCapacity = n
        tableCount = 0
        guard let old else { return }
        for i in 0..<oldCapacity where old[2 * i] != 0 { insertSample(old[2 * i], record: Int(old[2 * i + 1])) }
        OS.unmap(UnsafeMutableRawPointer(old), bytes: oldCapacity * 16)
    }

    /// Backward-shift deletion: later entries of the probe run move up, so
    /// lookups never need tombstones.
    func deleteSlot(_ start: Int) {
        let t = table!
        let mask = tableCapacity - 1
        var hole = start
        var j = start
        while true {
            j = (j + 1) & mask
            let a = t[2 * j]
            if a == 0 { break }
            let home = Self.slot(a, mask)
            // Move entry j into the hole unless its home lies cyclically in (hole, j].
            let inRange = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j)
            if !inRange {
                t[2 * hole] = a
                t[2 * hole + 1] = t[2 * j + 1]
                hole = j
            }
        }
        t[2 * hole] = 0
        t[2 * hole + 1] = 0
        tableCount -= 1
    }

    // MARK: snapshot

    /// Every bucket with its counts, copied under the lock into OS memory
    /// (nothing is allocated while the lock is held), then into Swift values.
    func snapshot() -> [HeapProfileRecord] {
        while true {
            lock.lock()
            let n = recordCount
            lock.unlock()
            if n == 0 { return [] }
            let want = n + 64
            let bytes = Self.roundToPages(want * Self.recordBytes)
            let copy = Self.map(bytes)
            lock.lock()
            let m = recordCount
            if m <= want { memcpy(copy, records!, m * Self.recordBytes) }
            lock.unlock()
            if m > want {
                OS.unmap(copy, bytes: bytes)
                continue
            }
            var out: [HeapProfileRecord] = []
            out.reserveCapacity(m)
            for r in 0..<m {
                let b = copy + r * Self.recordBytes
                let depth = b.load(fromByteOffset: Self.depthOff, as: Int.self)
                var frames: [UInt] = []
                frames.reserveCapacity(depth)
                for i in 0..<depth { frames.append(b.load(fromByteOffset: Self.framesOff + 8 * i, as: UInt.self)) }
                out.append(HeapProfileRecord(
                    stack: frames, objectSize: b.load(fromByteOffset: Self.sizeOff, as: Int.self),
                    allocObjects: b.load(fromByteOffset: Self.allocsOff, as: Int.self),
                    allocBytes: b.load(fromByteOffset: Self.allocBytesOff, as: Int.self),
                    freeObjects: b.load(fromByteOffset: Self.freesOff, as: Int.self),
                    freeBytes: b.load(fromByteOffset: Self.freeBytesOff, as: Int.self)))
            }
            OS.unmap(copy, bytes: bytes)
            return out
        }
    }
}

/// One allocation site of a heap profile: a call stack and an object size,
/// with the sampled (unscaled) counts of objects allocated there.
public struct HeapProfileRecord: Sendable, Equatable {
    /// Return addresses, innermost first, as captured: the first few are
    /// GoHeap's own frames (the writer of the pprof file drops them).
    public var stack: [UInt]
    /// Bytes per object: the size class's size, or the page-rounded size.
    public var objectSize: Int
    public var allocObjects: Int
    public var allocBytes: Int
    public var freeObjects: Int
    public var freeBytes: Int
    public var inUseObjects: Int { allocObjects - freeObjects }
    public var inUseBytes: Int { allocBytes - freeBytes }
}

extension Heap {
    /// Go's default MemProfileRate: one sample per 512 KiB allocated, on average.
    public static let defaultHeapProfileRate = 512 * 1024

    /// Starts sampling this heap's allocations for a heap profile: on average
    /// one sample per `rate` bytes allocated (1: every allocation), with
    /// its call stack. Calling it again changes the rate. Costs nothing
    /// measurable until started; see docs/architecture.md.
    public func startHeapProfile(rate: Int = Heap.defaultHeapProfileRate) {
        if rate <= 0 { heapFatal("startHeapProfile(rate:): rate \(rate) must be positive") }
        // The first backtrace loads the unwinder (dlopen, malloc): do it now,
        // outside every heap lock.
        withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: 4) { buf in
            _ = goheap_backtrace(buf.baseAddress, 4)
        }
        profiler.lastRate.store(rate, ordering: .relaxed)
        profiler.rate.store(rate, ordering: .relaxed)
        rearmCaches(rate: rate)
    }

    /// Stops sampling. What was recorded stays, and frees of sampled objects
    /// are still counted (as in Go).
    public func stopHeapProfile() {
        profiler.rate.store(0, ordering: .relaxed)
        rearmCaches(rate: 0)
    }

    /// Bytes between samples on average, or 0 when profiling is off.
    public var heapProfileRate: Int { profiler.rate.load(ordering: .relaxed) }

    /// Every allocation site sampled so far, with unscaled counts.
    public func heapProfileRecords() -> [HeapProfileRecord] { profiler.snapshot() }

    func rearmCaches(rate: Int) {
        registry.withLock { r in
            guard let reg = r.slots[slot], reg.epoch == epoch else { return }
            for c in reg.caches {
                c.lock.lock()
                HeapProfiler.armAll(c, rate: rate)
                c.lock.unlock()
            }
        }
    }

    /// A new or rebuilt cache starts with profiling in the heap's state.
    func armNewCache(_ c: MCacheRef) {
        let rate = profiler.rate.load(ordering: .relaxed)
        if rate == 0 { return }
        c.lock.lock()
        HeapProfiler.armAll(c, rate: rate)
        c.lock.unlock()
    }

    /// The allocation `allocate` diverted because it is a sample point.
    @inline(never)
    func allocateSampled(spanClass spc: Int) -> UnsafeMutableRawPointer? {
        let c = currentCache()
        c.lock.lock()
        c.entry(spc).sampleAt.pointee.store(Int.max, ordering: .relaxed)
        c.lock.unlock()
        guard let p = allocateSmallSlow(spanClass: spc) else { return nil }
        let addr = UInt(bitPattern: p)
        c.lock.lock()
        let rate = profiler.rate.load(ordering: .relaxed)
        // Raise the count and tag the owner while the span is certainly this
        // cache's (the lock keeps reclaimers out). If a reclaimer took it
        // between the refill and here, the object goes unsampled: rare, and it
        // keeps the rule that a span owned untagged has no live samples.
        var sampled = false
        if rate > 0, let s = pageMap.span(of: addr), s.owner.pointee.load(ordering: .relaxed) & ~1 == c.address {
            s.profiledObjects.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent)
            s.owner.pointee.store(c.address | 1, ordering: .relaxed)
            sampled = true
        }
        HeapProfiler.arm(c, spanClass: spc, rate: rate)
        c.lock.unlock()
        if sampled { profiler.record(addr, size: SizeClasses.classSize[spc >> 1]) }
        return p
    }

    /// A large or huge object just allocated (span `s`): sample it or not.
    func profileLarge(_ s: SpanRef) {
        let rate = profiler.rate.load(ordering: .relaxed)
        guard rate > 0, profiler.sampleLarge(size: s.elemSize, rate: rate) else { return }
        s.profiledObjects.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent)
        profiler.record(s.base, size: s.elemSize)
    }

    /// A free into a span that has (or had) sampled objects, from
    /// deallocateSlow. Counts the free if the object was sampled; then frees
    /// locally when this thread's cache owns the span under the profiling tag.
    /// Returns false when the caller's usual path should free the object.
    @inline(never)
    func freeProfiled(_ s: SpanRef, addr: UInt) -> Bool {
        if s.profiledObjects.pointee.load(ordering: .sequentiallyConsistent) != 0 && profiler.removeSample(addr) {
            s.profiledObjects.pointee.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        }
        guard s.state == .small, let raw = goheap_tls_slots()[slot], let idx = s.objectIndex(of: addr) else {
            return false
        }
        let me = UInt(bitPattern: raw)
        var o = s.owner.pointee.load(ordering: .relaxed)
        guard o == me | 1 else { return false }
        // No sample left: untag (compare-and-swap, so a reclaimer's 0 stays).
        if s.profiledObjects.pointee.load(ordering: .sequentiallyConsistent) == 0 {
            _ = s.owner.pointee.compareExchange(expected: o, desired: me, ordering: .relaxed)
        }
        // The fast path's local free, with the owner compared without the tag.
        let c = MCacheRef(raw)
        c.enter()
        o = s.owner.pointee.load(ordering: .relaxed)
        guard o & ~1 == me else {
            c.leave()
            return false
        }
        let e = c.entry(s.spanClass)
        let ok = e.freeOwned(s, index: idx)
        let emptied = ok && s.cachedState != .current && e.noteSpareFree(s, index: idx)
        c.leave()
        if !ok || emptied { ownedFreeAftermath(s, index: idx, addr: addr, valid: ok, cache: c) }
        return true
    }
}

extension CacheEntry {
    /// True when the entry's next allocation is a sample point.
    var sampleDue: Bool {
        mallocs.pointee.load(ordering: .relaxed) >= sampleAt.pointee.load(ordering: .relaxed)
    }
}

extension SpanRef {
    /// Live sampled objects in this span (any thread; see HeapProfiler).
    var profiledObjects: UnsafeMutablePointer<Atomic<Int>> {
        @inline(__always) get { (raw + Self.profiledObjectsOff).assumingMemoryBound(to: Atomic<Int>.self) }
    }

    /// True when a free must look at the profile: the span has sampled
    /// objects, or its owner word still carries the profiling tag.
    @inline(__always)
    var mayHoldProfiledObjects: Bool {
        (owner.pointee.load(ordering: .relaxed) & 1) | UInt(bitPattern: profiledObjects.pointee.load(ordering: .relaxed)) != 0
    }

    /// The owner word for cache `cache`: tagged while sampled objects live here.
    func ownerWord(_ cache: UInt) -> UInt {
        cache | (profiledObjects.pointee.load(ordering: .sequentiallyConsistent) != 0 ? 1 : 0)
    }
}
