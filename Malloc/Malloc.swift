// The malloc library's Swift half: C entry points over one process-wide heap.
//
// This file is compiled only into libgoheap-malloc.so, together with the
// sources of the GoHeap module, in Embedded Swift (no Swift runtime in the host
// process: see scripts/build-malloc.sh). The C half (malloc.c) owns the ABI:
// it checks C's argument rules, sets errno, keeps GoHeap from re-entering
// itself, and forwards pointers GoHeap never handed out to the next allocator.
// Everything here may assume:
//   - goheap_swift_init ran once, before any other entry point, and the heap
//     it made lives until the process ends (it is never released, so the
//     entry points reach it with no reference counting);
//   - the calling thread's re-entry counter is raised, so a malloc made by
//     Swift code below (the runtime allocating a class or an array) never
//     comes back here.
// Entry points return nil where C expects NULL; they never trap on memory
// exhaustion. They do trap, with GoHeap's message naming the address and its
// span, on a double or invalid free of a pointer inside the heap's arenas.

import CShims
import Synchronization

/// The process's heap (an unretained Heap), set once by goheap_swift_init.
nonisolated(unsafe) var mallocHeap: UnsafeMutableRawPointer? = nil
/// Copies of the two heap fields the fast paths need, so that they read two
/// globals rather than go through the heap object.
nonisolated(unsafe) var mallocSlot = 0
nonisolated(unsafe) var mallocPageMap = PageMap(l1: UnsafeMutablePointer(bitPattern: 8)!)

@inline(__always)
func withMallocHeap<R>(_ body: (Heap) -> R) -> R {
    Unmanaged<Heap>.fromOpaque(mallocHeap.unsafelyUnwrapped)._withUnsafeGuaranteedRef(body)
}

/// The byte count to ask the heap for, for a C request of n bytes: every
/// block over 8 bytes must be 16-byte aligned, as glibc's are. Go's classes
/// above 16 bytes are all multiples of 16 but one, 24 bytes, so 17–24 byte
/// requests take the 32-byte class.
@inline(__always)
func cRequestSize(_ n: Int) -> Int { UInt(bitPattern: n &- 17) < 8 ? 32 : n }

extension Heap {
    /// malloc (see cRequestSize for the alignment C requires).
    @inline(__always)
    func cAllocate(_ n: Int) -> UnsafeMutableRawPointer? {
        let m = cRequestSize(n)
        if UInt(bitPattern: m) <= UInt(SizeClasses.maxSmallSize) {
            // C memory holds no Swift references: one (noscan) span class per size.
            let spc = SizeClasses.classIndex(m) &<< 1 | 1
            if let p = MCacheRef.popCurrentThread(slot: slot, spanClass: spc) { return p }
            return allocateSmallSlow(spanClass: spc)
        }
        if n < 0 || n > heapMaxAllocation { return nil }
        return tryAllocate(byteCount: n, alignment: 8, noscan: true)
    }

    @inline(__always)
    func cFree(_ p: UnsafeMutableRawPointer) -> Bool {
        // Outside every arena of the heap: not ours (the caller forwards it).
        // Inside: ours, and a bad pointer is reported, never forwarded.
        if pageMap.arena(of: UInt(bitPattern: p)) == nil { return false }
        deallocate(p)
        return true
    }
}

// Fast paths. They run without the re-entry counter raised (the C side does
// not pay for it), so they must never allocate, take a lock or make a system
// call: they pop from or push to this thread's cache, and report anything
// else for the guarded full entry points to do.

/// A small block from this thread's cache, or nil: the caller then calls
/// goheap_swift_malloc, which refills, samples, or serves a large request.
@_cdecl("goheap_swift_malloc_fast")
public func goheapSwiftMallocFast(_ n: Int) -> UnsafeMutableRawPointer? {
    let m = cRequestSize(n)
    guard UInt(bitPattern: m) <= UInt(SizeClasses.maxSmallSize) else { return nil }
    return MCacheRef.popCurrentThread(slot: mallocSlot, spanClass: SizeClasses.classIndex(m) &<< 1 | 1)
}

/// 1: freed. 0: not done (the caller calls goheap_swift_free, which does it
/// or reports the error). -1: not in the heap's arenas (foreign).
/// Only a valid free by the owning thread that leaves its span in place is
/// done here; nothing is changed otherwise.
@_cdecl("goheap_swift_free_fast")
public func goheapSwiftFreeFast(_ p: UnsafeMutableRawPointer) -> Int32 {
    let addr = UInt(bitPattern: p)
    guard let a = mallocPageMap.arena(of: addr) else { return -1 }
    guard let sr = a.spans[ArenaRef.pageIndex(addr)] else { return 0 }
    let s = SpanRef(sr)
    guard s.state == .small, let idx = s.objectIndex(of: addr), let raw = goheap_tls_slots()[mallocSlot] else { return 0 }
    let c = MCacheRef(raw)
    c.enter()
    defer { c.leave() }
    guard s.owner.pointee.load(ordering: .relaxed) == UInt(bitPattern: raw) else { return 0 }
    let spare = s.cachedState != .current
    // The last live object of a spare: its span goes back, on the slow path.
    if spare && s.liveCount == 1 { return 0 }
    let e = c.entry(s.spanClass)
    guard e.freeOwned(s, index: idx) else { return 0 }
    if spare { _ = e.noteSpareFree(s, index: idx) }
    return 1
}

@_cdecl("goheap_swift_malloc")
public func goheapSwiftMalloc(_ n: Int) -> UnsafeMutableRawPointer? {
    withMallocHeap { $0.cAllocate(n) }
}

/// True when the pointer was ours and is now free; false when it is foreign.
@_cdecl("goheap_swift_free")
public func goheapSwiftFree(_ p: UnsafeMutableRawPointer) -> Bool {
    withMallocHeap { $0.cFree(p) }
}

/// Whether an address lies in the heap's arenas.
@_cdecl("goheap_swift_owns")
public func goheapSwiftOwns(_ p: UnsafeRawPointer) -> Bool {
    withMallocHeap { $0.pageMap.arena(of: UInt(bitPattern: p)) != nil }
}

/// n zeroed bytes (the caller checked calloc's multiplication).
@_cdecl("goheap_swift_calloc")
public func goheapSwiftCalloc(_ n: Int) -> UnsafeMutableRawPointer? {
    if n < 0 || n > heapMaxAllocation { return nil }
    let m = cRequestSize(n)
    return withMallocHeap { $0.tryAllocate(byteCount: m, alignment: 8, noscan: true, zeroed: true) }
}

/// n bytes aligned to `alignment` (a power of two the caller checked).
@_cdecl("goheap_swift_memalign")
public func goheapSwiftMemalign(_ alignment: Int, _ n: Int) -> UnsafeMutableRawPointer? {
    if n < 0 || n > heapMaxAllocation { return nil }
    let m = cRequestSize(n)
    return withMallocHeap { $0.tryAllocate(byteCount: m, alignment: max(alignment, 16), noscan: true) }
}

/// realloc of a pointer of ours to n > 0 bytes: nil (old block intact) when
/// memory is exhausted.
///
/// Heap.resize keeps a small block in place only for alignments up to 8, so
/// asking it for 16 would move every small block on every realloc, even one
/// that still fits its class. Alignment 8 is enough here: a block that stays
/// keeps its address, which is 16-byte aligned already when it was made for
/// more than 8 bytes, and a new block for m > 8 bytes comes from a class
/// that is a multiple of 16 (24 is never asked for) or a page run, as in
/// cAllocate. Only a block that is not 16-byte aligned (an 8-byte class
/// block) growing past 8 bytes asks for 16, to be safe; it moves anyway.
@_cdecl("goheap_swift_realloc")
public func goheapSwiftRealloc(_ p: UnsafeMutableRawPointer, _ n: Int) -> UnsafeMutableRawPointer? {
    if n < 0 || n > heapMaxAllocation { return nil }
    let m = cRequestSize(n)
    let alignment = m > 8 && UInt(bitPattern: p) & 15 != 0 ? 16 : 8
    return withMallocHeap {
        $0.resize(p, byteCount: m, alignment: alignment, noscan: true, trap: false, function: "realloc")
    }
}

@_cdecl("goheap_swift_usable_size")
public func goheapSwiftUsableSize(_ p: UnsafeRawPointer) -> Int {
    withMallocHeap { $0.usableSize(of: p) }
}

/// Creates the process's heap. memoryLimit < 0: none; hugeThreshold <= 0:
/// no huge-page path; numaKind 0 local, 1 first touch, 2 bind, 3 preferred,
/// 4 interleave.
@_cdecl("goheap_swift_init")
public func goheapSwiftInit(_ memoryLimit: Int, _ hugeThreshold: Int, _ numaKind: Int, _ numaNode: Int,
                            _ background: Bool) {
    var policy = NUMAPolicy.local
    switch numaKind {
    case 1: policy = .firstTouch
    case 2: policy = .bind(node: numaNode)
    case 3: policy = .preferred(node: numaNode)
    case 4: policy = .interleave
    default: break
    }
    if let n = policy.node, !NUMA.nodes.contains(n) {
        mallocWarn("GOHEAP_NUMA names node \(n), which this machine does not have (nodes \(NUMA.describe(NUMA.nodes))); using node-local placement")
        policy = .local
    }
    let threshold = hugeThreshold > SizeClasses.maxSmallSize ? hugeThreshold : nil
    let config = HeapConfiguration(memoryLimit: memoryLimit >= 0 ? memoryLimit : nil, hugeThreshold: threshold,
                                   numaPolicy: policy, backgroundScavenging: background)
    let heap = Heap(configuration: config)
    mallocSlot = heap.slot
    mallocPageMap = heap.pageMap
    mallocHeap = Unmanaged.passRetained(heap).toOpaque()
}

/// Fills `out` with the counters goheap.h's struct goheap_stats lists, in its order.
@_cdecl("goheap_swift_stats")
public func goheapSwiftStats(_ out: UnsafeMutablePointer<Int>) {
    let s = withMallocHeap { $0.stats }
    let values = [s.heapAlloc, s.totalAlloc, s.mallocs, s.frees, s.heapSys, s.heapInUse, s.heapIdle,
                  s.heapReleased, s.releasedTotal, s.metadataSys, s.largeAllocs + s.hugeAllocs,
                  s.largeBytesInUse + s.hugeBytesInUse, s.threadCaches,
                  s.nodes.reduce(0) { $0 + $1.fallbacks }]
    for (i, v) in values.enumerated() { out[i] = v }
}

/// Returns every free page to the OS; the bytes released.
@_cdecl("goheap_swift_release")
public func goheapSwiftRelease() -> Int {
    withMallocHeap { $0.releaseFreeMemory() }
}

/// Sets the soft memory limit (< 0: none).
@_cdecl("goheap_swift_set_memory_limit")
public func goheapSwiftSetMemoryLimit(_ bytes: Int) {
    withMallocHeap { $0.setMemoryLimit(bytes >= 0 ? bytes : nil) }
}

/// Pins the calling thread's allocations to a node (< 0: back to the policy).
/// 0, or EINVAL for a node the machine does not have.
@_cdecl("goheap_swift_set_allocation_node")
public func goheapSwiftSetAllocationNode(_ node: Int) -> Int32 {
    do {
        try NUMA.setAllocationNode(node >= 0 ? node : nil)
        return 0
    } catch {
        return error.errno
    }
}

/// The NUMA node count the heap sees.
@_cdecl("goheap_swift_node_count")
public func goheapSwiftNodeCount() -> Int { NUMA.nodes.count }

func mallocWarn(_ message: String) {
    var m = "goheap: " + message + "\n"
    m.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
