// Test helper, run as a subprocess by the test suite. Not for users.
//  - misuse scenarios: misuse GoHeap on purpose, one way per argument, so tests
//    can check that each stops the process with a clear message;
//  - measurements that need a process of their own (resident memory, huge
//    pages), so tests running in parallel do not disturb them;
//  - the fault suite: a model-checked multi-threaded fuzz (Fuzz.swift).
import GoHeap
import CShims
import GoCollections
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

switch scenario {
case "fuzz":
    runFuzz()
case "fuzz-model-selftest":
    runModelSelfTest()
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
    guard let f = fopen("/proc/self/smaps", "r") else { print("no smaps"); exit(2) }
    var line = [CChar](repeating: 0, count: 4096)
    var inside = false
    print("object \(String(addr, radix: 16))")
    while fgets(&line, Int32(line.count), f) != nil {
        let text = String(cString: line)
        let head = text.split(separator: " ").first.map(String.init) ?? ""
        let range = head.split(separator: "-")
        if range.count == 2, let lo = UInt(range[0], radix: 16), let hi = UInt(range[1], radix: 16) {
            inside = lo <= addr && addr < hi
        }
        if inside { print(text, terminator: "") }
    }
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
default:
    print("unknown scenario '\(scenario)'")
    exit(64)
}
print("no error was detected")
exit(0)
