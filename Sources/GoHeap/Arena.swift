// Arenas: the heap's address space, and the only tier that talks to the OS.
//
// What this tier owns: reserving 64 MiB-aligned arenas (one mmap each, or one
// mmap for a run of contiguous arenas when a single object needs more), the
// per-arena metadata that the page map points at, applying the heap's NUMA
// policy to fresh address space, and the madvise calls that return pages to
// the OS or ask for transparent huge pages.
//
// Arena metadata lives outside the arena itself, so an arena is 64 MiB of
// usable pages whose 2 MiB boundaries line up with huge pages. For each of its
// 8192 pages it holds the span that owns the page (the page map's second
// level) and a "dirty" bit: set when the page may hold non-zero bytes or be
// resident, clear when it is fresh from the OS or was released with
// MADV_DONTNEED (the kernel then hands back zeros). Zeroed allocation reads
// these bits to skip memset on clean pages; the scavenger reads them to find
// pages worth releasing. For each 512 KiB chunk it holds when a page of the
// chunk was last freed, which is how the scavenger ages free memory.
//
// Locking: arenas are created and their span and dirty entries written under
// the heap lock. Dirty words are atomics because zeroing reads the bits of a
// span it owns without the lock while the heap updates neighbouring pages.
// Span entries are read without a lock by free(), which is safe for any pointer
// the caller legitimately holds (its span was published before the pointer).

import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Arena geometry, matching Go on linux/amd64.
@usableFromInline
enum ArenaGeometry {
    @usableFromInline static let arenaShift = 26
    @usableFromInline static let arenaBytes = 1 << arenaShift  // 64 MiB
    @usableFromInline static let pagesPerArena = arenaBytes >> SizeClasses.pageShift  // 8192
    /// Arena index bits: 48-bit addresses / 64 MiB arenas = 2^22 entries.
    @usableFromInline static let l1Bits = 48 - arenaShift
    static let dirtyWords = pagesPerArena / 64
    /// The scavenger ages free memory in chunks of this many pages (512 KiB,
    /// one dirty-bit word): a chunk is released once none of its pages has been
    /// freed for scavengeDelay, whatever its run merges with meanwhile.
    static let chunkPages = 64
    static let chunkBytes = chunkPages << SizeClasses.pageShift
    static let chunksPerArena = pagesPerArena / chunkPages
}

/// Thin wrappers over the shim, with errors turned into values.
enum OS {
    static var pageSize: Int { Int(goheap_os_page_size()) }
    static var hugePageSize: Int { Int(goheap_os_huge_page_size()) }

    /// Reserves address space; returns nil and the errno on failure.
    static func reserve(bytes: Int, alignment: Int, hint: UInt = 0) -> (UnsafeMutableRawPointer?, Int32) {
        let p = goheap_os_reserve(bytes, alignment, UnsafeMutableRawPointer(bitPattern: hint))
        return (p, p == nil ? goheap_os_errno() : 0)
    }

    static func unmap(_ p: UnsafeMutableRawPointer, bytes: Int) {
        _ = goheap_os_unmap(p, bytes)
    }

    /// Drops the pages' physical memory; they read back as zeros.
    static func release(_ p: UnsafeMutableRawPointer, bytes: Int) -> Bool {
        goheap_os_release(p, bytes) == 0
    }

    /// Monotonic clock in milliseconds (ages of free page runs, idle caches).
    /// The coarse clock: a read of the kernel's last tick (1-4 ms old)
    /// instead of a timer read, because every large free stamps its pages
    /// with it, and ages are compared against delays of seconds.
    static func monotonicMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }

    static func adviseHuge(_ p: UnsafeMutableRawPointer, bytes: Int, huge: Bool) -> Bool {
        goheap_os_advise_huge(p, bytes, huge) == 0
    }
}

/// Which arenas a request may come from. Huge objects live in arenas advised
/// MADV_HUGEPAGE as a whole, so advising never splits a mapping per object.
@usableFromInline
enum ArenaPool: Int {
    case normal = 0
    case huge = 1
}

/// Handle to one arena's metadata block.
@usableFromInline
struct ArenaRef: Equatable, @unchecked Sendable {
    @usableFromInline let raw: UnsafeMutableRawPointer

    // Layout of the metadata block.
    static let spansOffset = 0
    static let dirtyOffset = ArenaGeometry.pagesPerArena * 8
    static let baseOffset = dirtyOffset + ArenaGeometry.dirtyWords * 8
    static let poolOffset = baseOffset + 8
    static let regionBytesOffset = poolOffset + 8
    static let chunkFreedAtOffset = regionBytesOffset + 8
    static let blockBytes = (chunkFreedAtOffset + ArenaGeometry.chunksPerArena * 8 + 4095) & ~4095

    @usableFromInline init(_ raw: UnsafeMutableRawPointer) { self.raw = raw }

    /// The span entry of every page in the arena.
    @inlinable var spans: UnsafeMutablePointer<UnsafeMutableRawPointer?> {
        @inline(__always) get { raw.assumingMemoryBound(to: UnsafeMutableRawPointer?.self) }
    }

    var dirty: UnsafeMutablePointer<Atomic<UInt64>> {
        @inline(__always) get { (raw + Self.dirtyOffset).assumingMemoryBound(to: Atomic<UInt64>.self) }
    }

    var base: UInt {
        get { raw.load(fromByteOffset: Self.baseOffset, as: UInt.self) }
        nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.baseOffset, as: UInt.self) }
    }

    var pool: ArenaPool {
        get { ArenaPool(rawValue: raw.load(fromByteOffset: Self.poolOffset, as: Int.self))! }
        nonmutating set { raw.storeBytes(of: newValue.rawValue, toByteOffset: Self.poolOffset, as: Int.self) }
    }

    /// Start and length of the mmap this arena came from (for unmapping); only
    /// the first arena of a mapping has a non-zero length.
    var regionBytes: Int {
        get { raw.load(fromByteOffset: Self.regionBytesOffset, as: Int.self) }
        nonmutating set { raw.storeBytes(of: newValue, toByteOffset: Self.regionBytesOffset, as: Int.self) }
    }

    /// When a page of chunk `i` was last freed (monotonic ms; heap lock).
    var chunkFreedAt: UnsafeMutablePointer<Int> {
        (raw + Self.chunkFreedAtOffset).assumingMemoryBound(to: Int.self)
    }

    /// Page index of an address inside this arena.
    @inlinable @inline(__always)
    static func pageIndex(_ addr: UInt) -> Int {
        Int(truncatingIfNeeded: (addr >> UInt(SizeClasses.pageShift)) & UInt(ArenaGeometry.pagesPerArena - 1))
    }

    // MARK: dirty bits

    /// Counts dirty pages in [first, first + count) of this arena.
    func dirtyCount(first: Int, count: Int) -> Int {
        var n = 0
        forEachWord(first: first, count: count) { w, mask in
            n += (dirty[w].load(ordering: .relaxed) & mask).nonzeroBitCount
        }
        return n
    }

    /// Marks [first, first + count) dirty (true) or clean (false).
    func setDirty(first: Int, count: Int, _ value: Bool) {
        forEachWord(first: first, count: count) { w, mask in
            let old = dirty[w].load(ordering: .relaxed)
            dirty[w].store(value ? old | mask : old & ~mask, ordering: .relaxed)
        }
    }

    func isDirty(page: Int) -> Bool {
        dirty[page >> 6].load(ordering: .relaxed) & (1 << UInt64(page & 63)) != 0
    }

    @inline(__always)
    private func forEachWord(first: Int, count: Int, _ body: (Int, UInt64) -> Void) {
        var p = first
        let end = first + count
        while p < end {
            let w = p >> 6, bit = p & 63
            let n = min(64 - bit, end - p)
            let mask: UInt64 = n == 64 ? ~0 : ((1 << UInt64(n)) - 1) << UInt64(bit)
            body(w, mask)
            p += n
        }
    }
}

/// Everything needed to set up and tear down arenas for one heap.
struct ArenaReserver {
    let numa: NUMAPolicy
    /// Where the next reservation should go, to keep arenas contiguous.
    var hint: UInt

    /// Reserves `count` contiguous arenas and creates their metadata.
    /// Returns nil (with errno) if the OS refuses.
    mutating func reserve(count: Int, pool: ArenaPool) -> ([ArenaRef]?, Int32) {
        let bytes = count * ArenaGeometry.arenaBytes
        let (mem, err) = OS.reserve(bytes: bytes, alignment: ArenaGeometry.arenaBytes, hint: hint)
        guard let mem else { return (nil, err) }
        var arenas: [ArenaRef] = []
        arenas.reserveCapacity(count)
        for i in 0..<count {
            let (meta, merr) = OS.reserve(bytes: ArenaRef.blockBytes, alignment: 4096)
            guard let meta else {
                for a in arenas { OS.unmap(a.raw, bytes: ArenaRef.blockBytes) }
                OS.unmap(mem, bytes: bytes)
                return (nil, merr)
            }
            let a = ArenaRef(meta)
            for w in 0..<ArenaGeometry.dirtyWords { (a.dirty + w).initialize(to: Atomic(0)) }
            a.base = UInt(bitPattern: mem) + UInt(i * ArenaGeometry.arenaBytes)
            a.pool = pool
            a.regionBytes = i == 0 ? bytes : 0
            arenas.append(a)
        }
        hint = UInt(bitPattern: mem) + UInt(bytes)
        if pool == .huge { _ = OS.adviseHuge(mem, bytes: bytes, huge: true) }
        numa.apply(to: mem, bytes: bytes)
        return (arenas, 0)
    }

    /// Unmaps arenas (heap teardown). Each mapping is released once, through
    /// its first arena.
    static func unmapAll(_ arenas: [ArenaRef]) {
        for a in arenas where a.regionBytes > 0 {
            OS.unmap(UnsafeMutableRawPointer(bitPattern: a.base)!, bytes: a.regionBytes)
        }
        for a in arenas { OS.unmap(a.raw, bytes: ArenaRef.blockBytes) }
    }
}
