// fork() while the heap is busy, and the background scavenger in a child.
//
// fork-stress [--children 200] [--timeout-ms 10000] [--max-failures 200]
//             [--workers 3] [--no-scavenger]:
//   three threads allocate and free continuously (small, large and huge
//   sizes, blocks handed between them so frees are cross-thread, with an
//   occasional releaseFreeMemory and flushThreadCache), the background
//   scavenger runs every few milliseconds, and the main thread forks children
//   one after another, once the child's work has run in the parent and every
//   worker has done 200 iterations (so no child waits on a Swift runtime
//   first-use lock a worker held: see forkChildWork). Each child allocates and frees small, large and huge
//   objects (and frees blocks the parent's main thread allocated before the
//   fork), starts a thread that allocates, reads stats, calls
//   releaseFreeMemory, and leaves with _exit(0). A child that has not
//   finished after the timeout is killed and counted as hung. Prints
//   "fork: N/N children ok", or the failures and exits 1. Stops early after
//   --max-failures failed children. `--workers 0 --no-scavenger` is the
//   control: nothing else runs at the fork, so no lock can be held.
//
// fork-scavenger: a heap with a 20 ms scavenger period is in use when the
//   process forks; the child allocates about 10 MiB, frees it, and waits (up
//   to 10 s) for the background scavenger to release it, without calling
//   releaseFreeMemory. The child's only thread is the one that called fork,
//   so the scavenger must have been restarted in the child.
import GoHeap
import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a child ended, as text; nil if it exited 0.
func describeChildStatus(_ status: Int32) -> String? {
    // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift cannot import.
    let sig = status & 0x7f
    if sig == 0 {
        let code = (status >> 8) & 0xff
        return code == 0 ? nil : "exit status \(code)"
    }
    return "killed by signal \(sig)\(sig == SIGABRT ? " (SIGABRT)" : sig == SIGSEGV ? " (SIGSEGV)" : "")"
}

/// Waits for `pid` up to `timeoutMs`; kills it if it is still running.
/// Returns nil if it exited 0, else what happened.
func waitForChild(_ pid: pid_t, timeoutMs: Int) -> String? {
    let start = nowMillis()
    var status: Int32 = 0
    while true {
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { return describeChildStatus(status) }
        if r < 0 { return "waitpid failed: errno \(errno)" }
        if nowMillis() - start > timeoutMs {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            return "hung: still running after \(timeoutMs) ms, killed"
        }
        usleep(500)
    }
}

/// A forked child: its work, then _exit (3 if a block read back wrong bytes).
func forkChildBody(_ heap: Heap, _ parentBlocks: [UInt], _ n: Int) -> Never {
    _exit(forkChildWork(heap, parentBlocks, n) ? 0 : 3)
}

/// The child's work; true if every block read back what was written. Uses
/// only the heap, pthreads and raw writes: none of the test's own Swift locks,
/// which a parent thread may have held at the fork.
///
/// The parent runs it once before its workers start. The Swift runtime
/// instantiates generic metadata (the `Array` types here) on first use under
/// a lock of its own; had a worker thread held that lock at the fork, a child
/// doing that first use would wait forever for a thread it does not have
/// (seen under ASan: the child stuck in `swift_getGenericMetadata`). Done once
/// in the parent, every later use is a lock-free cache hit.
func forkChildWork(_ heap: Heap, _ parentBlocks: [UInt], _ n: Int) -> Bool {
    var bad = false
    var ps: [UnsafeMutableRawPointer] = []
    ps.reserveCapacity(400)
    for i in 0..<300 {
        let size = [8, 16, 48, 100, 256, 1000, 4000, 20_000, 32768][i % 9]
        let p = heap.allocate(byteCount: size)
        p.storeBytes(of: UInt8(truncatingIfNeeded: i), as: UInt8.self)
        p.storeBytes(of: UInt8(truncatingIfNeeded: i), toByteOffset: size - 1, as: UInt8.self)
        ps.append(p)
    }
    for size in [40_000, 300_000, 1 << 20, (3 << 20) + n * 8192] {
        let p = heap.allocate(byteCount: size)
        memset(p, 0x5A, 64)
        memset(p + size - 64, 0x5A, 64)
        ps.append(p)
    }
    let z = heap.allocateZeroed(byteCount: 5000)
    if z.load(fromByteOffset: 4992, as: UInt64.self) != 0 { bad = true }
    ps.append(z)
    for (i, p) in ps.prefix(300).enumerated() {
        if p.load(as: UInt8.self) != UInt8(truncatingIfNeeded: i) { bad = true }
    }
    for p in ps { heap.deallocate(p) }
    // Blocks the parent's main thread allocated before forking.
    for a in parentBlocks { heap.deallocate(UnsafeMutableRawPointer(bitPattern: a)!) }
    // A thread of the child's own: a new thread cache, and a thread exit.
    let t = spawnThread {
        var qs: [UnsafeMutableRawPointer] = []
        for i in 0..<200 { qs.append(heap.allocate(byteCount: 16 + (i * 40) % 3000)) }
        qs.append(heap.allocate(byteCount: 100_000))
        qs.append(heap.allocate(byteCount: 2 << 20))
        for q in qs { heap.deallocate(q) }
    }
    joinThread(t)
    _ = heap.stats  // takes the registry lock and the heap lock
    heap.releaseFreeMemory()
    return !bad
}

final class ForkStressShared: @unchecked Sendable {
    let heap: Heap
    let stop = Atomic<Bool>(false)
    /// Workers that have finished their first 200 iterations.
    let warmedUp = Atomic<Int>(0)
    let queue = SharedState([UInt]())
    init(heap: Heap) { self.heap = heap }
}

func forkStressWorker(_ sh: ForkStressShared, _ t: Int) {
    var rng = HelperRNG(seed: 0xF0_4C + UInt64(t))
    var mine: [(UInt, Int)] = []
    let heap = sh.heap
    var iterations = 0
    while !sh.stop.load(ordering: .relaxed) {
        iterations += 1
        if iterations == 200 { sh.warmedUp.add(1, ordering: .releasing) }
        let x = rng.below(1000)
        let n: Int
        if x < 700 { n = rng.inRange(0...2048) }
        else if x < 900 { n = rng.inRange(2049...32768) }
        else if x < 985 { n = rng.inRange(32769...(1 << 20)) }
        else { n = rng.inRange((2 << 20)...(6 << 20)) }
        let p = heap.allocate(byteCount: n)
        p.storeBytes(of: UInt8(truncatingIfNeeded: n), as: UInt8.self)
        if rng.chance(1, 3) {
            let a = UInt(bitPattern: p)
            sh.queue.withLock { $0.append(a) }
        } else {
            mine.append((UInt(bitPattern: p), n))
        }
        if mine.count > 64 || (!mine.isEmpty && rng.chance(1, 2)) {
            let i = rng.below(mine.count)
            let (a, m) = mine.remove(at: i)
            let q = UnsafeMutableRawPointer(bitPattern: a)!
            if q.load(as: UInt8.self) != UInt8(truncatingIfNeeded: m) {
                writeStderr("fork-stress: block \(hexString(a)) of \(m) bytes overwritten in the parent")
                abort()
            }
            heap.deallocate(q)
        }
        if rng.chance(1, 2) {
            let taken = sh.queue.withLock { q -> [UInt] in
                defer { q.removeAll(keepingCapacity: true) }
                return q
            }
            for a in taken { heap.deallocate(UnsafeMutableRawPointer(bitPattern: a)!) }
        }
        if rng.chance(1, 500) { heap.releaseFreeMemory() }
        if rng.chance(1, 200) { heap.flushThreadCache() }
    }
    for (a, _) in mine { heap.deallocate(UnsafeMutableRawPointer(bitPattern: a)!) }
}

func runForkStress() -> Never {
    let children = intArgument("children", default: 200)
    let timeoutMs = intArgument("timeout-ms", default: 10_000)
    let maxFailures = intArgument("max-failures", default: children)
    startWatchdog(seconds: intArgument("watchdog", default: 900), what: "fork-stress (parent)")
    let workerCount = intArgument("workers", default: 3)
    let heap = Heap(configuration: HeapConfiguration(
        backgroundScavenging: !flagArgument("no-scavenger"), scavengePeriod: .milliseconds(5), scavengeDelay: .zero))
    let sh = ForkStressShared(heap: heap)
    // Warm the runtime's metadata caches for the child's code (see
    // forkChildWork), and let the workers get past their own first uses before
    // the first fork: what this test probes is GoHeap's locks, not Swift's.
    if !forkChildWork(heap, [], 0) {
        say("fork: the warm-up pass in the parent read back wrong bytes")
        exit(1)
    }
    let workers = (0..<workerCount).map { t in spawnThread { forkStressWorker(sh, t) } }
    while sh.warmedUp.load(ordering: .acquiring) < workerCount { usleep(1000) }
    var failures: [String] = []
    var ok = 0
    var rng = HelperRNG(seed: 77)
    var started = 0
    for i in 0..<children {
        // The main thread allocates too, so the child inherits a live cache.
        var parentBlocks: [UInt] = []
        for k in 0..<rng.inRange(1...20) {
            let n = k == 0 && rng.chance(1, 4) ? 70_000 : rng.inRange(8...4000)
            parentBlocks.append(UInt(bitPattern: heap.allocate(byteCount: n)))
        }
        if rng.chance(1, 2) { usleep(UInt32(rng.inRange(0...2000))) }
        started += 1
        let pid = fork()
        if pid == 0 { forkChildBody(heap, parentBlocks, i) }
        for a in parentBlocks { heap.deallocate(UnsafeMutableRawPointer(bitPattern: a)!) }
        if pid < 0 {
            failures.append("child \(i): fork failed, errno \(errno)")
        } else if let why = waitForChild(pid, timeoutMs: timeoutMs) {
            failures.append("child \(i): \(why)")
        } else {
            ok += 1
        }
        if failures.count >= maxFailures { break }
    }
    sh.stop.store(true, ordering: .relaxed)
    for w in workers { joinThread(w) }
    let rest = sh.queue.withLock { $0 }
    for a in rest { heap.deallocate(UnsafeMutableRawPointer(bitPattern: a)!) }
    for f in failures { say("fork: \(f)") }
    if started < children { say("fork: stopped after \(failures.count) failed children") }
    say("fork: \(ok)/\(children) children ok")
    exit(ok == children ? 0 : 1)
}

func runForkScavenger() -> Never {
    let waitMs = intArgument("wait-ms", default: 10_000)
    startWatchdog(seconds: intArgument("watchdog", default: 120), what: "fork-scavenger (parent)")
    let heap = Heap(configuration: HeapConfiguration(scavengePeriod: .milliseconds(20), scavengeDelay: .milliseconds(40)))
    // Use the heap in the parent, so its scavenger is known to be running there.
    var ps: [UnsafeMutableRawPointer] = []
    for i in 0..<2000 { ps.append(heap.allocate(byteCount: 16 + i % 1000)) }
    for p in ps { heap.deallocate(p) }
    usleep(100_000)
    let pid = fork()
    if pid == 0 {
        var blocks: [UnsafeMutableRawPointer] = []
        for i in 0..<20_000 {
            let n = i % 10 == 0 ? 50_000 : 300
            let p = heap.allocate(byteCount: n)
            memset(p, 1, min(n, 4096))
            blocks.append(p)
        }
        for p in blocks { heap.deallocate(p) }
        heap.flushThreadCache()
        let before = heap.stats.releasedTotal
        let start = nowMillis()
        while nowMillis() - start < waitMs {
            usleep(20_000)
            let s = heap.stats
            if s.releasedTotal > before && s.heapInUse == 0 {
                writeStderr("fork-scavenger child: background scavenger released \(s.releasedTotal - before) bytes after \(nowMillis() - start) ms")
                _exit(0)
            }
        }
        let s = heap.stats
        writeStderr("fork-scavenger child: no background release in \(waitMs) ms: releasedTotal \(s.releasedTotal) (was \(before) after the frees), heapInUse \(s.heapInUse), heapReleased \(s.heapReleased) of heapSys \(s.heapSys)")
        _exit(1)
    }
    if pid < 0 {
        say("fork-scavenger: fork failed, errno \(errno)")
        exit(1)
    }
    if let why = waitForChild(pid, timeoutMs: waitMs + 10_000) {
        say("fork-scavenger: child failed: \(why)")
        exit(1)
    }
    say("fork-scavenger: child ok")
    exit(0)
}
