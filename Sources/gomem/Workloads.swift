// The allocator workloads of gomem bench. Every workload is generic over the
// allocator, does its setup (sizes, shuffles) outside the timed region, and
// touches each block so allocators cannot win by handing out untouched memory.
import Synchronization
import GoHeap
#if canImport(Glibc)
import Glibc
#endif

@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Deterministic generator so every allocator sees the same sizes.
struct Rng {
    var s: UInt64
    @inline(__always) mutating func next() -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    @inline(__always) mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// Starts `count` pthreads running body(index) and waits for all of them.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Box: @unchecked Sendable {
        let f: @Sendable (Int) -> Void
        let i: Int
        init(_ f: @escaping @Sendable (Int) -> Void, _ i: Int) { self.f = f; self.i = i }
    }
    var ts: [pthread_t] = []
    for i in 0..<count {
        var t = pthread_t()
        let box = Unmanaged.passRetained(Box(body, i)).toOpaque()
        pthread_create(&t, nil, { arg in
            let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            b.f(b.i)
            return nil
        }, box)
        ts.append(t)
    }
    for t in ts { pthread_join(t, nil) }
}

/// A sense-reversing spin barrier for a fixed number of threads.
final class SpinBarrier: @unchecked Sendable {
    private let count: Int
    private let arrived = Atomic<Int>(0)
    private let generation = Atomic<Int>(0)
    init(_ count: Int) { self.count = count }
    func wait() {
        let gen = generation.load(ordering: .acquiring)
        if arrived.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue == count {
            arrived.store(0, ordering: .relaxed)
            generation.store(gen + 1, ordering: .releasing)
        } else {
            while generation.load(ordering: .acquiring) == gen { sched_yield() }
        }
    }
}

/// Every block's address is stored here once, so the optimizer cannot pair a
/// known malloc with its free and delete both (LLVM does that for glibc).
let escapeSink = Atomic<UInt>(0)

@inline(__always)
func escape(_ p: UnsafeMutableRawPointer) {
    escapeSink.store(UInt(bitPattern: p), ordering: .relaxed)
}

enum Workloads {
    /// 1. allocate + free immediately, sizes cycling 16, 32, ... 512 bytes.
    static func hotPair<A: BenchAllocator>(_ a: A, ops: Int) -> UInt64 {
        var sizes = [Int](repeating: 0, count: 32)
        for i in 0..<32 { sizes[i] = (i + 1) * 16 }
        return sizes.withUnsafeBufferPointer { sz in
            for i in 0..<1024 {  // warm the caches
                let p = a.alloc(sz[i & 31])
                escape(p)
                a.free(p)
            }
            let t0 = monotonicNanos()
            for i in 0..<ops {
                let p = a.alloc(sz[i & 31])
                p.storeBytes(of: UInt8(truncatingIfNeeded: i), as: UInt8.self)
                escape(p)
                a.free(p)
            }
            return monotonicNanos() - t0
        }
    }

    /// 2. `count` random 8...263-byte allocations, then all freed in shuffled order.
    static func batch<A: BenchAllocator>(_ a: A, count: Int, seed: UInt64 = 42) -> UInt64 {
        var rng = Rng(s: seed)
        let sizes = (0..<count).map { _ in 8 + rng.below(256) }
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
        let ptrs = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: count)
        defer { ptrs.deallocate() }
        return sizes.withUnsafeBufferPointer { sz in
            order.withUnsafeBufferPointer { ord in
                let t0 = monotonicNanos()
                for i in 0..<count {
                    let p = a.alloc(sz[i])
                    p.storeBytes(of: UInt8(truncatingIfNeeded: i), as: UInt8.self)
                    ptrs[i] = p
                }
                for i in 0..<count { a.free(ptrs[ord[i]]!) }
                return monotonicNanos() - t0
            }
        }
    }

    /// 3. one thread allocates (16...256 B) and hands every block through a
    /// ring buffer to a second thread, which frees it: all frees are
    /// cross-thread. With several pairs (workload 10) each pair has its own
    /// ring; `count` is per pair. The rings and the barrier yield the CPU
    /// while they wait, so more threads than CPUs still make progress.
    static func producerConsumer<A: BenchAllocator>(_ a: A, count: Int, pairs: Int = 1) -> UInt64 {
        let rings = (0..<pairs).map { _ in SPSCRing(capacity: 4096) }
        let start = SpinBarrier(2 * pairs)
        let t0 = monotonicNanos()
        runThreads(2 * pairs) { t in
            let ring = rings[t / 2]
            start.wait()
            if t % 2 == 0 {
                var rng = Rng(s: 7 &+ UInt64(t))
                for i in 0..<count {
                    let p = a.alloc(16 + rng.below(241))
                    p.storeBytes(of: UInt8(truncatingIfNeeded: i), as: UInt8.self)
                    ring.push(UInt(bitPattern: p))
                }
            } else {
                for _ in 0..<count { a.free(UnsafeMutableRawPointer(bitPattern: ring.pop())!) }
            }
        }
        return monotonicNanos() - t0
    }

    /// 4. larson-style: each thread replaces random slots of its array with new
    /// blocks of mixed sizes; after every round the arrays move one thread
    /// along the ring, so most frees hit blocks another thread allocated.
    static func larson<A: BenchAllocator>(_ a: A, threads: Int, rounds: Int, slots: Int) -> UInt64 {
        let arrays = (0..<threads).map { _ in UnsafeMutablePointer<UInt>.allocate(capacity: slots) }
        defer { arrays.forEach { $0.deallocate() } }
        let addrs = arrays.map { UInt(bitPattern: $0) }
        let barrier = SpinBarrier(threads)
        let t0 = monotonicNanos()
        runThreads(threads) { t in
            var rng = Rng(s: UInt64(t) &* 977 &+ 1)
            let mine = UnsafeMutablePointer<UInt>(bitPattern: addrs[t])!
            for i in 0..<slots { mine[i] = UInt(bitPattern: a.alloc(16 + rng.below(1009))) }
            barrier.wait()
            for r in 0..<rounds {
                let arr = UnsafeMutablePointer<UInt>(bitPattern: addrs[(t + r) % threads])!
                for _ in 0..<slots {
                    let i = rng.below(slots)
                    a.free(UnsafeMutableRawPointer(bitPattern: arr[i])!)
                    let n = 16 + rng.below(1009)
                    let p = a.alloc(n)
                    p.storeBytes(of: UInt8(truncatingIfNeeded: n), as: UInt8.self)
                    arr[i] = UInt(bitPattern: p)
                }
                barrier.wait()
            }
            if t == 0 {
                for k in 0..<threads {
                    let arr = UnsafeMutablePointer<UInt>(bitPattern: addrs[k])!
                    for i in 0..<slots { a.free(UnsafeMutableRawPointer(bitPattern: arr[i])!) }
                }
            }
        }
        return monotonicNanos() - t0
    }

    /// 5. and 6. objects of `minBytes...maxBytes` with a small working set; each
    /// new block has every 4 KiB page touched once when `touchAll`, else its
    /// first and last byte.
    static func sized<A: BenchAllocator>(_ a: A, count: Int, minBytes: Int, maxBytes: Int, live: Int,
                                         touchAll: Bool) -> UInt64 {
        var rng = Rng(s: 99)
        let sizes = (0..<count).map { _ in minBytes + rng.below(maxBytes - minBytes + 1) }
        var slots = [UnsafeMutableRawPointer?](repeating: nil, count: live)
        let t0 = monotonicNanos()
        for i in 0..<count {
            let k = i % live
            if let old = slots[k] { a.free(old) }
            let n = sizes[i]
            let p = a.alloc(n)
            if touchAll {
                var off = 0
                while off < n { p.storeBytes(of: 1, toByteOffset: off, as: UInt8.self); off += 4096 }
            } else {
                p.storeBytes(of: 1, as: UInt8.self)
                p.storeBytes(of: 1, toByteOffset: n - 1, as: UInt8.self)
            }
            slots[k] = p
        }
        for p in slots { if let p { a.free(p) } }
        return monotonicNanos() - t0
    }
}

/// Single-producer single-consumer ring of addresses.
final class SPSCRing: @unchecked Sendable {
    private let buf: UnsafeMutablePointer<UInt>
    private let mask: Int
    private let head = Atomic<Int>(0)  // next slot to write
    private let tail = Atomic<Int>(0)  // next slot to read
    init(capacity: Int) {
        buf = .allocate(capacity: capacity)
        mask = capacity - 1
    }
    deinit { buf.deallocate() }
    func push(_ v: UInt) {
        let h = head.load(ordering: .relaxed)
        while h - tail.load(ordering: .acquiring) > mask { sched_yield() }
        buf[h & mask] = v
        head.store(h + 1, ordering: .releasing)
    }
    func pop() -> UInt {
        let t = tail.load(ordering: .relaxed)
        while head.load(ordering: .acquiring) == t { sched_yield() }
        let v = buf[t & mask]
        tail.store(t + 1, ordering: .releasing)
        return v
    }
}
