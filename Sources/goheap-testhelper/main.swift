// Test helper, run as a subprocess by the test suite. Not for users.
//  - misuse scenarios: misuse GoHeap on purpose, one way per argument, so tests
//    can check that each stops the process with a clear message;
//  - measurements that need a process of their own (resident memory, huge
//    pages), so tests running in parallel do not disturb them;
//  - the fault suite: a model-checked multi-threaded fuzz (Fuzz.swift),
//    fork() while threads use the heap (ForkScenarios.swift), and heaps
//    destroyed while their threads exit or the scavenger holds them
//    (DeinitRace.swift);
//  - heap profiles with a known answer for go tool pprof (ProfileScenarios.swift).
import GoHeap
import CShims
import TestSupport
import GoCollections
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
let scenario = CommandLine.arguments.dropFirst().first ?? ""

func onOtherThread(_ body: @escaping @Sendable () -> Void) {
    final class Box { let f: @Sendable () -> Void; init(_ f: @escaping @Sendable () -> Void) { self.f = f } }
    var t = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    pthread_create(&t, nil, { arg in
        Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().f()
        return nil
    }, box)
    pthread_join(t, nil)
}

/// Resident set size of this process in bytes (the shim reads /proc/self/statm).
func residentBytes() -> Int {
    var size = 0, rss = 0
    return goheap_os_statm(&size, &rss) ? rss : 0
}

/// The pointer with this address.
func ptr(_ a: UInt) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: a)! }

switch scenario {
case "fuzz":
    runFuzz()
case "fuzz-model-selftest":
    runModelSelfTest()
case "fork-stress":
    runForkStress()
case "fork-scavenger":
    runForkScavenger()
case "heap-deinit-race":
    runHeapDeinitRace()
case "heap-drop-during-scavenge":
    runHeapDropDuringScavenge()

// Cross-thread double frees, both orders. Markers on stdout (flushed) show
// where the process stopped: a double free must stop it at the second free
// unless the scenario says otherwise.
case "double-free-remote-then-local":
    // Another thread frees the object first (a remote free, pending in the
    // span), then the owning thread frees it again from its window.
    let a = UInt(bitPattern: heap.allocate(byteCount: 200))
    onOtherThread { heap.deallocate(ptr(a)) }
    say("first free done (remote)")
    heap.deallocate(ptr(a))
    say("past second free")
case "double-free-remote-then-local-old-word":
    // As above, for an object in a word the owner's window has moved past.
    var ps: [UnsafeMutableRawPointer] = []
    for _ in 0..<300 { ps.append(heap.allocate(byteCount: 24)) }
    let a = UInt(bitPattern: ps[0])
    onOtherThread { heap.deallocate(ptr(a)) }
    say("first free done (remote)")
    heap.deallocate(ptr(a))
    say("past second free")
case "double-free-local-then-remote":
    // The owner frees the object, then another thread frees it again: the
    // remote freer finds the allocation bit clear and stops at once. (Should
    // that ever regress to detection at collection time, the flush and the
    // span's worth of allocations below make the owner collect.)
    let a = UInt(bitPattern: heap.allocate(byteCount: 200))
    let keep = heap.allocate(byteCount: 200)
    heap.deallocate(ptr(a))
    say("first free done (local)")
    onOtherThread { heap.deallocate(ptr(a)) }
    say("past second free")
    heap.flushThreadCache()
    var ps: [UnsafeMutableRawPointer] = []
    for _ in 0..<100 { ps.append(heap.allocate(byteCount: 200)) }
    say("past collection")
    _ = keep
case "double-free-local-then-remote-old-word":
    var ps: [UnsafeMutableRawPointer] = []
    for _ in 0..<300 { ps.append(heap.allocate(byteCount: 24)) }
    let a = UInt(bitPattern: ps[0])
    heap.deallocate(ptr(a))
    say("first free done (local)")
    onOtherThread { heap.deallocate(ptr(a)) }
    say("past second free")
case "double-free-after-flush":
    // Thread A (main) frees an object of a span it has cached, flushes its
    // cache (the span goes back to its mcentral, a neighbour keeps it alive),
    // then thread B frees the object again.
    let a = UInt(bitPattern: heap.allocate(byteCount: 48))
    let keep = heap.allocate(byteCount: 48)
    heap.deallocate(ptr(a))
    heap.flushThreadCache()
    say("first free and flush done")
    onOtherThread { heap.deallocate(ptr(a)) }
    say("past second free")
    _ = keep
case "double-free-after-flush-empty-span":
    // As above, but the object was alone in its span: the flush gives the
    // span's pages back to the page heap.
    let a = UInt(bitPattern: heap.allocate(byteCount: 48))
    heap.deallocate(ptr(a))
    heap.flushThreadCache()
    say("first free and flush done")
    onOtherThread { heap.deallocate(ptr(a)) }
    say("past second free")
case "double-free-after-owner-exit":
    // Thread A allocates and frees an object, then exits (its cache goes back
    // to the mcentrals); the main thread frees the object again.
    let box = SharedState<UInt>(0)
    onOtherThread {
        let p = heap.allocate(byteCount: 48)
        _ = heap.allocate(byteCount: 48)  // keeps the span in use
        heap.deallocate(p)
        box.withLock { $0 = UInt(bitPattern: p) }
    }
    say("first free done (thread exited)")
    heap.deallocate(ptr(box.withLock { $0 }))
    say("past second free")
case "double-free-remote-then-filler-takes-back":
    // The filler of a span it filed in the mcentral takes it back on its
    // next free into it, here from the partial list where another thread's
    // free of the same object moved it: the take-back must still see that
    // the object was freed.
    let objs = (0..<96).map { _ in UInt(bitPattern: heap.allocate(byteCount: 1024, noscan: true)) }
    let a = objs[65]  // in the ninth span, the first one this producer filed
    onOtherThread { heap.deallocate(ptr(a)) }
    say("first free done (remote, span now partial)")
    heap.deallocate(ptr(a))
    say("past second free")
case "double-free-remote-then-local-reuse":
    // The reviewers' case: a remote free, then a local free of the same object
    // (both accepted), then the owner reuses the object, flushes its cache
    // (collecting the pending remote free) and allocates more. If the double
    // free is not caught, the live object is handed out a second time.
    let a = UInt(bitPattern: heap.allocate(byteCount: 200))
    onOtherThread { heap.deallocate(ptr(a)) }
    say("first free done (remote)")
    heap.deallocate(ptr(a))
    say("past second free")
    var live = Set<UInt>()
    let again = UInt(bitPattern: heap.allocate(byteCount: 200))
    live.insert(again)
    say("reallocated \(again == a ? "the same object" : "another object")")
    heap.flushThreadCache()
    for _ in 0..<4000 {
        let q = UInt(bitPattern: heap.allocate(byteCount: 200))
        if !live.insert(q).inserted {
            say("DUPLICATE: live object 0x\(String(q, radix: 16)) was handed out twice")
            exit(2)
        }
    }
    say("no duplicate handed out")

// usableSize(of:) and frees of memory that is no longer allocated.
case "usable-size-freed-small":
    let a = UInt(bitPattern: heap.allocate(byteCount: 48))
    let keep = heap.allocate(byteCount: 48)
    heap.deallocate(ptr(a))
    say("freed")
    let n = heap.usableSize(of: ptr(a))
    say("usableSize of the freed object returned \(n)")
    _ = keep
case "usable-size-freed-small-remote":
    let a = UInt(bitPattern: heap.allocate(byteCount: 48))
    let keep = heap.allocate(byteCount: 48)
    onOtherThread { heap.deallocate(ptr(a)) }
    say("freed")
    let n = heap.usableSize(of: ptr(a))
    say("usableSize of the freed object returned \(n)")
    _ = keep
case "usable-size-freed-large":
    let keep = heap.allocate(byteCount: 40_000)
    let p = heap.allocate(byteCount: 100_000)
    heap.deallocate(p)
    say("freed")
    let n = heap.usableSize(of: p)
    say("usableSize of the freed object returned \(n)")
    _ = keep
case "usable-size-freed-huge":
    let p = heap.allocate(byteCount: 3 << 20)
    heap.deallocate(p)
    say("freed")
    let n = heap.usableSize(of: p)
    say("usableSize of the freed object returned \(n)")
case "free-inside-freed-large":
    let keep = heap.allocate(byteCount: 40_000)
    let p = heap.allocate(byteCount: 100_000)
    heap.deallocate(p)
    say("freed")
    heap.deallocate(p + 16384)
    say("past free inside the freed span")
    _ = keep
case "free-inside-freed-small-span":
    // Every object of a span freed and the span returned to the page heap;
    // then a pointer into it is freed.
    var ps: [UnsafeMutableRawPointer] = []
    for _ in 0..<128 { ps.append(heap.allocate(byteCount: 64)) }
    for p in ps { heap.deallocate(p) }
    heap.releaseFreeMemory()
    say("freed and released")
    heap.deallocate(ps[5])
    say("past free inside the freed span")
case "double-free-small":
    let p = heap.allocate(byteCount: 48)
    heap.deallocate(p)
    heap.deallocate(p)
case "double-free-most-recent":
    var ps: [UnsafeMutableRawPointer] = []
    for _ in 0..<300 { ps.append(heap.allocate(byteCount: 24)) }
    heap.deallocate(ps[299])
    heap.deallocate(ps[299])
case "double-free-old-span":
    // The object's span is no longer the thread's current one.
    var ps: [UnsafeMutableRawPointer] = []
    for _ in 0..<5000 { ps.append(heap.allocate(byteCount: 16)) }
    heap.deallocate(ps[3])
    heap.deallocate(ps[3])
case "double-free-remote":
    let p = UInt(bitPattern: heap.allocate(byteCount: 200))
    onOtherThread { heap.deallocate(UnsafeMutableRawPointer(bitPattern: p)!) }
    onOtherThread { heap.deallocate(UnsafeMutableRawPointer(bitPattern: p)!) }
case "double-free-large":
    let p = heap.allocate(byteCount: 100_000)
    heap.deallocate(p)
    heap.deallocate(p)
case "double-free-huge":
    let p = heap.allocate(byteCount: 4 << 20)
    heap.deallocate(p)
    heap.deallocate(p)
case "interior-pointer":
    let p = heap.allocate(byteCount: 64)
    heap.deallocate(p + 8)
case "interior-pointer-large":
    let p = heap.allocate(byteCount: 100_000)
    heap.deallocate(p + 8192)
case "foreign-malloc":
    _ = heap.allocate(byteCount: 8)
    heap.deallocate(malloc(32)!)
case "foreign-above-48-bits":
    // The free fast path masks the page-map index to 48 bits: this address
    // aliases a live object of this thread's own span, and must still be refused.
    let p = heap.allocate(byteCount: 64)
    heap.deallocate(UnsafeMutableRawPointer(bitPattern: UInt(bitPattern: p) | (1 << 52))!)
case "foreign-other-heap":
    let other = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
    let p = other.allocate(byteCount: 32)
    heap.deallocate(p)
case "negative-size":
    _ = heap.allocate(byteCount: -5)
case "bad-alignment":
    _ = heap.allocate(byteCount: 16, alignment: 24)
case "zero-alignment":
    _ = heap.allocate(byteCount: 16, alignment: 0)
case "too-large":
    _ = heap.allocate(byteCount: Int.max)
case "out-of-memory":
    // Cap the address space so mmap fails, then ask for more than the cap.
    var lim = rlimit(rlim_cur: 3 << 30, rlim_max: 3 << 30)
    setrlimit(Int32(RLIMIT_AS.rawValue), &lim)
    if heap.tryAllocate(byteCount: 8 << 30) != nil { print("tryAllocate should have failed"); exit(3) }
    print("tryAllocate returned nil")
    fflush(nil)
    _ = heap.allocate(byteCount: 8 << 30)
case "rss-release":
    // Peak and post-release resident growth of this process, in bytes.
    let base = residentBytes()
    var blocks: [UnsafeMutableRawPointer] = []
    var rng = SystemRandomNumberGenerator()
    for i in 0..<300_000 {
        let n = i % 100 == 0 ? Int.random(in: 40_000...300_000, using: &rng) : Int.random(in: 8...2000, using: &rng)
        let p = heap.allocate(byteCount: n)
        memset(p, 7, n)
        blocks.append(p)
    }
    for _ in 0..<40 {
        let p = heap.allocate(byteCount: 4 << 20)
        memset(p, 7, 4 << 20)
        blocks.append(p)
    }
    let peak = residentBytes() - base
    blocks.shuffle(using: &rng)
    for p in blocks { heap.deallocate(p) }
    let released = heap.releaseFreeMemory()
    let after = residentBytes() - base
    let s = heap.stats
    print("peak \(peak) after \(after) released \(released) heapReleased \(s.heapReleased) heapSys \(s.heapSys) heapInUse \(s.heapInUse)")
    exit(0)
case "thp":
    // Allocates and touches a huge object, then prints the smaps block of the
    // mapping that holds it.
    let n = 8 << 20
    let p = heap.allocate(byteCount: n)
    memset(p, 1, n)
    let addr = UInt(bitPattern: p)
    guard let block = smapsBlock(containing: addr) else { print("no smaps entry for the object"); exit(2) }
    print("object \(String(addr, radix: 16))")
    for line in block { print(line) }
    exit(0)
case "slice-overflow":
    var g = GrowableArray<InlineArray<1000, UInt8>>()
    g.reserveCapacity(1 << 50)
case "growth-rss":
    // Slices growing to 64 MiB one after another, as the oracle tests do.
    for size in [1, 2, 3, 4, 5, 8] {
        let r = RawGrowableArray(elementSize: size, heap: heap)
        while r.count < (64 << 20) / size { r.append(count: max(1, r.capacity - r.count)) }
        let s = heap.stats
        print("size \(size): rss \(residentBytes() >> 20) MiB heapSys \(s.heapSys >> 20) inUse \(s.heapInUse >> 20) idle \(s.heapIdle >> 20) released \(s.heapReleased >> 20)")
    }
    exit(0)
case "usable-size-foreign":
    var x = 0
    _ = heap.usableSize(of: &x)
case "numa-bind-missing-node":
    _ = Heap(configuration: HeapConfiguration(numaPolicy: .bind(node: 7)))
case "numa-prefer-missing-node":
    _ = Heap(configuration: HeapConfiguration(numaPolicy: .preferred(node: 4096)))
// Heap profiles with a known top site (scripts/pprof-check.sh): written to
// the file named by the next argument, or, without one, by GOHEAP_MEMPROFILE at exit.
case "profile-planted":
    runProfilePlanted(path: CommandLine.arguments.dropFirst(2).first)
default:
    print("unknown scenario '\(scenario)'")
    exit(64)
}
print("no error was detected")
exit(0)
