// Model-checked fuzz: `goheap-testhelper fuzz --seed S --ops N --threads T`.
//
// T worker threads run random sequences of allocate / allocateZeroed /
// tryAllocate / deallocate / usableSize / releaseFreeMemory /
// flushThreadCache over every size class (with emphasis on class boundaries),
// large (32 KiB–1 MiB) and huge (2–16 MiB) sizes, and alignments from 1 to
// 4096 plus a few larger powers of two. Workers live a random number of
// operations and exit; the supervisor (main thread) starts replacements, so
// threads are created and exit throughout the run. Blocks move between
// threads through a handoff queue under a lock: a worker hands some of its
// blocks to whoever takes them next, and an exiting worker hands over all of
// its blocks, so many frees are cross-thread and many land in spans whose
// owner has gone.
//
// A shadow model checks every result:
//   - on allocation: the path, usable size, size class and alignment equal
//     what the public size-class table predicts (computed here independently
//     and compared with heap.path(forByteCount:) and heap.path(of:)); the
//     block overlaps no live block (an ordered interval set under a lock);
//     allocateZeroed / tryAllocate(zeroed:) memory reads as zero;
//   - every block is filled with a pattern derived from its id (whole block up
//     to 64 KiB; head, tail and id-placed stripes above), verified on
//     usableSize checks and before every free;
//   - at quiescent points (all workers joined, every epoch): heap.stats
//     balances against the model: mallocs, frees, live objects, heapAlloc,
//     per size class counts, large and huge counts and bytes, no thread cache
//     left behind;
//   - at the end, after every block is freed and releaseFreeMemory: no page is
//     in use and every page is released.
// The run prints "fuzz: N ops, seed S, threads T: ok" and exits 0, or prints
// the first discrepancy ("fuzz: FAIL ...", with the worker's last operations
// and the command that reproduces the run) and exits 1. Heap fatal errors
// abort the process with their own message.
//
// Options: --seed S (default 1), --ops N (200000), --threads T (4),
// --no-scavenger (the background scavenger runs every 50 ms by default),
// --verbose (one line per epoch: live blocks, heap and resident sizes),
// --watchdog SECONDS (600; abort if the run hangs, 0 disables).
// Single-threaded runs are deterministic; with several threads the seed fixes
// each worker's choices but not the interleaving.
import GoHeap
import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

enum BlockKind: UInt8 { case small, large, huge }

/// One live allocation as the model knows it.
struct Block: Sendable {
    var addr: UInt
    var id: UInt64
    var requested: Int
    var usable: Int
    var alignment: Int
    var spanClass: Int  // small objects; -1 for page runs
    var kind: BlockKind
    var allocator: Int  // worker number
}

/// What the public size-class table predicts for a request.
struct SizeModel {
    /// Class (1...67) of a request of n bytes, n in 0...32768.
    let classOf: [UInt8]
    /// Bytes per object by class; index 0 unused.
    let classSize: [Int]
    let hugeThreshold: Int

    init(hugeThreshold: Int) {
        self.hugeThreshold = hugeThreshold
        let sizes = [0] + SizeClasses.table.map(\.size)
        classSize = sizes
        var t = [UInt8](repeating: 0, count: SizeClasses.maxSmallSize + 1)
        var c = 1
        for n in 0...SizeClasses.maxSmallSize {
            while sizes[c] < max(n, 1) { c += 1 }
            t[n] = UInt8(c)
        }
        classOf = t
    }

    func naturalAlignment(ofClass c: Int) -> Int {
        let s = classSize[c]
        return min(s & -s, SizeClasses.pageSize)
    }

    /// (path, kind, usable size, span class or -1, alignment every such block has).
    func expect(_ n: Int, alignment: Int, noscan: Bool) -> (AllocationPath, BlockKind, Int, Int, Int) {
        if n <= SizeClasses.maxSmallSize {
            var c = Int(classOf[n])
            if alignment > 8 {
                while c < classSize.count && naturalAlignment(ofClass: c) < alignment { c += 1 }
            }
            if c < classSize.count {
                let spc = c << 1 | (noscan ? 1 : 0)
                return (.small(sizeClass: c, spanClass: spc), .small, classSize[c], spc,
                        max(naturalAlignment(ofClass: c), alignment))
            }
        }
        let pages = max(1, (n + SizeClasses.pageSize - 1) / SizeClasses.pageSize)
        if n >= hugeThreshold {
            return (.huge(pages: pages), .huge, pages * SizeClasses.pageSize, -1, max(Heap.hugePageBytes, alignment))
        }
        return (.large(pages: pages), .large, pages * SizeClasses.pageSize, -1, max(SizeClasses.pageSize, alignment))
    }
}

// MARK: - the shadow model

struct Interval {
    var start: UInt
    var end: UInt
    var id: UInt64
}

/// Live blocks as disjoint intervals, plus the counters heap.stats must match.
/// Intervals up to 64 KiB sit in buckets keyed by start >> 16; longer ones in
/// one sorted array. Because live intervals are disjoint, a new interval can
/// only overlap its predecessor or its successor in each of the two sets.
struct ModelState {
    static let bucketShift: UInt = 16
    var small: [UInt: [Interval]] = [:]
    var bigs: [Interval] = []
    var liveCount = 0
    var liveBytes = 0
    var mallocs = [Int](repeating: 0, count: SizeClasses.spanClassCount)
    var frees = [Int](repeating: 0, count: SizeClasses.spanClassCount)
    var largeAllocs = 0, largeFrees = 0, hugeAllocs = 0, hugeFrees = 0
    var largeLiveBytes = 0, hugeLiveBytes = 0
    var totalMallocs = 0, totalFrees = 0

    /// First index in `a` whose start is >= s.
    static func lowerBound(_ a: [Interval], _ s: UInt) -> Int {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if a[mid].start < s { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    func overlapping(_ s: UInt, _ e: UInt) -> Interval? {
        let i = Self.lowerBound(bigs, s)
        if i < bigs.count && bigs[i].start < e { return bigs[i] }
        if i > 0 && bigs[i - 1].end > s { return bigs[i - 1] }
        let k = s >> Self.bucketShift
        // Predecessor among small intervals: in bucket k, else the last of bucket k-1.
        if let b = small[k] {
            let j = Self.lowerBound(b, s)
            if j > 0 {
                if b[j - 1].end > s { return b[j - 1] }
            } else if k > 0, let p = small[k - 1]?.last, p.end > s {
                return p
            }
            if j < b.count { return b[j].start < e ? b[j] : nil }
        } else if k > 0, let p = small[k - 1]?.last, p.end > s {
            return p
        }
        // Successor: the first small interval starting in [s, e), bucket by bucket.
        var key = k + 1
        let lastKey = (e - 1) >> Self.bucketShift
        while key <= lastKey {
            if let f = small[key]?.first { return f.start < e ? f : nil }
            key += 1
        }
        return nil
    }

    mutating func insert(_ b: Block) -> String? {
        let iv = Interval(start: b.addr, end: b.addr + UInt(b.usable), id: b.id)
        if let o = overlapping(iv.start, iv.end) {
            return "block #\(b.id) [\(hexString(iv.start)), \(hexString(iv.end))) (\(b.requested) B requested, usable \(b.usable)) overlaps live block #\(o.id) [\(hexString(o.start)), \(hexString(o.end)))"
        }
        if b.usable <= 1 << Self.bucketShift {
            let k = iv.start >> Self.bucketShift
            let j = Self.lowerBound(small[k] ?? [], iv.start)
            small[k, default: []].insert(iv, at: j)
        } else {
            bigs.insert(iv, at: Self.lowerBound(bigs, iv.start))
        }
        liveCount += 1
        liveBytes += b.usable
        totalMallocs += 1
        switch b.kind {
        case .small: mallocs[b.spanClass] += 1
        case .large: largeAllocs += 1; largeLiveBytes += b.usable
        case .huge: hugeAllocs += 1; hugeLiveBytes += b.usable
        }
        return nil
    }

    mutating func remove(_ b: Block) -> String? {
        let s = b.addr
        if b.usable <= 1 << Self.bucketShift {
            let k = s >> Self.bucketShift
            guard let arr = small[k] else { return "model: block #\(b.id) at \(hexString(s)) is not live" }
            let j = Self.lowerBound(arr, s)
            guard j < arr.count, arr[j].start == s, arr[j].id == b.id else {
                return "model: block #\(b.id) at \(hexString(s)) is not live"
            }
            if arr.count == 1 { small[k] = nil } else { small[k]!.remove(at: j) }
        } else {
            let j = Self.lowerBound(bigs, s)
            guard j < bigs.count, bigs[j].start == s, bigs[j].id == b.id else {
                return "model: block #\(b.id) at \(hexString(s)) is not live"
            }
            bigs.remove(at: j)
        }
        liveCount -= 1
        liveBytes -= b.usable
        totalFrees += 1
        switch b.kind {
        case .small: frees[b.spanClass] += 1
        case .large: largeFrees += 1; largeLiveBytes -= b.usable
        case .huge: hugeFrees += 1; hugeLiveBytes -= b.usable
        }
        return nil
    }
}

func hexString(_ v: UInt) -> String { "0x" + String(v, radix: 16) }

// MARK: - patterns

/// The byte a block is filled with, and the words at its ends.
@inline(__always) func patternByte(_ id: UInt64) -> UInt8 {
    UInt8(truncatingIfNeeded: (id &* 0x9E37_79B9_7F4A_7C15) >> 56)
}

/// Calls body(offset, length) for each region of a block that carries the
/// pattern: the whole block up to 64 KiB; above, 4 KiB at each end and six
/// 256-byte stripes placed by the block's id.
@inline(__always) func forEachPatternRegion(_ usable: Int, _ id: UInt64, _ body: (Int, Int) -> Void) {
    if usable <= 65536 {
        body(0, usable)
        return
    }
    body(0, 4096)
    body(usable - 4096, 4096)
    var h = id
    let span = (usable - 8192 - 256) / 8
    for _ in 0..<6 {
        h = h &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        body(4096 + Int((h >> 33) % UInt64(span)) * 8, 256)
    }
}

func fillPattern(_ b: Block) {
    let p = UnsafeMutableRawPointer(bitPattern: b.addr)!
    let byte = Int32(patternByte(b.id))
    forEachPatternRegion(b.usable, b.id) { off, len in memset(p + off, byte, len) }
    p.storeBytes(of: b.id, as: UInt64.self)
    if b.usable >= 16 { p.storeBytes(of: ~b.id, toByteOffset: b.usable - 8, as: UInt64.self) }
}

/// nil if the pattern is intact, else where it is not.
func checkPattern(_ b: Block) -> String? {
    let p = UnsafeMutableRawPointer(bitPattern: b.addr)!
    let head = p.load(as: UInt64.self)
    if head != b.id { return "word 0 holds \(hexString(UInt(head))), expected block id \(b.id)" }
    if b.usable >= 16 {
        let tail = p.load(fromByteOffset: b.usable - 8, as: UInt64.self)
        if tail != ~b.id { return "last word (offset \(b.usable - 8)) holds \(hexString(UInt(tail))), expected ~id" }
    }
    let byte = patternByte(b.id)
    let end = b.usable >= 16 ? b.usable - 8 : 8
    var bad: Int?
    forEachPatternRegion(b.usable, b.id) { off, len in
        if bad != nil { return }
        let lo = max(off, 8), hi = min(off + len, end)
        if hi <= lo { return }
        let q = p.assumingMemoryBound(to: UInt8.self)
        if q[lo] != byte || memcmp(p + lo, p + lo + 1, hi - lo - 1) != 0 {
            var i = lo
            while i < hi && q[i] == byte { i += 1 }
            bad = i
        }
    }
    if let bad {
        return "byte at offset \(bad) is \(p.load(fromByteOffset: bad, as: UInt8.self)), expected \(byte)"
    }
    return nil
}

/// nil if the block reads as zero (whole block up to 1 MiB; above, the first
/// and last word of every page and every pattern region).
func checkZero(_ addr: UInt, _ usable: Int, _ id: UInt64) -> String? {
    let p = UnsafeMutableRawPointer(bitPattern: addr)!
    let q = p.assumingMemoryBound(to: UInt8.self)
    func firstNonZero(_ lo: Int, _ hi: Int) -> Int? {
        if hi <= lo { return nil }
        if q[lo] == 0 && (hi - lo == 1 || memcmp(p + lo, p + lo + 1, hi - lo - 1) == 0) { return nil }
        var i = lo
        while i < hi && q[i] == 0 { i += 1 }
        return i
    }
    if usable <= 1 << 20 {
        if let i = firstNonZero(0, usable) { return "zeroed block has byte \(q[i]) at offset \(i)" }
        return nil
    }
    var off = 0
    while off < usable {
        if let i = firstNonZero(off, off + 8) ?? firstNonZero(off + SizeClasses.pageSize - 8, off + SizeClasses.pageSize) {
            return "zeroed block has byte \(q[i]) at offset \(i)"
        }
        off += SizeClasses.pageSize
    }
    var found: String?
    forEachPatternRegion(usable, id) { o, l in
        if found == nil, let i = firstNonZero(o, o + l) { found = "zeroed block has byte \(q[i]) at offset \(i)" }
    }
    return found
}

// MARK: - the run

final class FuzzContext: @unchecked Sendable {
    let heap: Heap
    let seed: UInt64
    let ops: Int
    let threads: Int
    let sizes: SizeModel
    let model = SharedState(ModelState())
    let queue = SharedState([Block]())
    let queueCount = Atomic<Int>(0)
    let opCounter = Atomic<Int>(0)
    let epochEnd = Atomic<Int>(0)
    let nextID = Atomic<UInt64>(1)
    /// Live huge blocks (at most 6, so a run stays within a few hundred MiB).
    let hugeLive = Atomic<Int>(0)
    let failed = Atomic<Bool>(false)
    let finished = Semaphore()
    // Summary counters.
    let allocs = Atomic<Int>(0), frees = Atomic<Int>(0), crossFrees = Atomic<Int>(0)
    let zeroedAllocs = Atomic<Int>(0), threadsStarted = Atomic<Int>(0)
    let releases = Atomic<Int>(0), flushes = Atomic<Int>(0), usableChecks = Atomic<Int>(0)
    let classesSeen = SharedState([Bool](repeating: false, count: SizeClasses.count))

    init(heap: Heap, seed: UInt64, ops: Int, threads: Int) {
        self.heap = heap
        self.seed = seed
        self.ops = ops
        self.threads = threads
        self.sizes = SizeModel(hugeThreshold: heap.configuration.hugeThreshold ?? Int.max)
    }

    /// Reports the first discrepancy and ends the process.
    func fail(_ msg: String, worker: Int = -1, trace: [String] = []) -> Never {
        if failed.exchange(true, ordering: .acquiringAndReleasing) {
            while true { sleep(1) }  // another thread is reporting
        }
        var text = "fuzz: FAIL (seed \(seed), ops \(ops), threads \(threads)"
        if worker >= 0 { text += ", worker \(worker)" }
        text += ", after \(opCounter.load(ordering: .relaxed)) ops): \(msg)"
        if !trace.isEmpty { text += "\n  last operations of this worker:\n    " + trace.joined(separator: "\n    ") }
        text += "\n  reproduce: goheap-testhelper fuzz --seed \(seed) --ops \(ops) --threads \(threads)"
        fflush(nil)
        writeStderr(text)
        _exit(1)
    }
}

/// One worker thread's state.
struct Worker {
    let ctx: FuzzContext
    let number: Int
    var rng: HelperRNG
    var own: [Block] = []
    var targetLive: Int
    var trace = [String](repeating: "", count: 12)
    var traceNext = 0

    init(ctx: FuzzContext, number: Int) {
        self.ctx = ctx
        self.number = number
        rng = HelperRNG(seed: ctx.seed &* 0x100_0000_01B3 &+ UInt64(truncatingIfNeeded: number) &* 0x9E37_79B9_7F4A_7C15)
        targetLive = 0
        targetLive = newTarget()
    }

    mutating func newTarget() -> Int {
        switch rng.below(4) {
        case 0: return rng.inRange(0...16)
        case 1: return rng.inRange(16...256)
        default: return rng.inRange(256...1500)
        }
    }

    mutating func note(_ s: String) {
        trace[traceNext] = s
        traceNext = (traceNext + 1) % trace.count
    }

    func fail(_ msg: String) -> Never {
        let ordered = (0..<trace.count).map { trace[(traceNext + $0) % trace.count] }.filter { !$0.isEmpty }
        ctx.fail(msg, worker: number, trace: ordered)
    }

    // MARK: sizes and alignments

    mutating func randomSize() -> Int {
        let sizes = ctx.sizes.classSize
        let x = rng.below(10_000)
        if x < 5000 {
            // A class boundary: the class size, one past the previous class, or near them.
            let c = rng.inRange(1...67)
            let size = sizes[c], prev = sizes[c - 1]
            switch rng.below(6) {
            case 0, 1: return size
            case 2: return prev + 1
            case 3: return max(prev + 1, size - 1)
            case 4: return rng.inRange((prev + 1)...size)
            default: return rng.chance(1, 8) ? 0 : min(size + 1, SizeClasses.maxSmallSize)
            }
        }
        if x < 8650 {
            // Log-uniform over 0...32768.
            let bits = rng.inRange(0...15)
            return rng.inRange((bits == 0 ? 0 : 1 << bits)...(2 << bits))
        }
        if x < 9985 {
            // Large: 32 KiB + 1 ... 1 MiB, often on or next to a page boundary.
            switch rng.below(4) {
            case 0: return SizeClasses.maxSmallSize + 1
            case 1:
                let pages = rng.inRange(5...128)
                return pages * SizeClasses.pageSize + rng.inRange(-1...1)
            default: return rng.inRange((SizeClasses.maxSmallSize + 1)...(1 << 20))
            }
        }
        // Huge: 2 MiB - 1 (still large), 2 MiB, 2 MiB + 1, up to 16 MiB.
        if ctx.hugeLive.load(ordering: .relaxed) >= 6 { return rng.inRange((SizeClasses.maxSmallSize + 1)...(1 << 20)) }
        switch rng.below(5) {
        case 0: return (2 << 20) - 1
        case 1: return 2 << 20
        case 2: return (2 << 20) + 1
        default: return rng.inRange((2 << 20)...(16 << 20))
        }
    }

    /// nil: use the default (the fast path's 8).
    mutating func randomAlignment() -> Int? {
        let x = rng.below(100)
        if x < 65 { return nil }
        if x < 97 { return 1 << rng.inRange(0...12) }
        return [8192, 16384, 65536, 1 << 21][rng.below(4)]
    }

    // MARK: operations

    mutating func allocate(zeroed: Bool, viaTry: Bool) {
        let n = randomSize()
        let align = randomAlignment()
        let noscan = rng.chance(1, 2)
        let alignment = align ?? 8
        let p: UnsafeMutableRawPointer
        if viaTry {
            if rng.chance(1, 64) {
                // Beyond any heap: nil, and nothing changes.
                let m = heapMaxAllocation + 1 + rng.below(1 << 20)
                note("tryAllocate(\(m)) expecting nil")
                if ctx.heap.tryAllocate(byteCount: m, alignment: alignment, noscan: noscan, zeroed: zeroed) != nil {
                    fail("tryAllocate(byteCount: \(m)) returned memory; expected nil")
                }
                return
            }
            guard let q = ctx.heap.tryAllocate(byteCount: n, alignment: alignment, noscan: noscan, zeroed: zeroed) else {
                fail("tryAllocate(byteCount: \(n), alignment: \(alignment), zeroed: \(zeroed)) returned nil")
            }
            p = q
        } else if zeroed {
            p = align == nil ? ctx.heap.allocateZeroed(byteCount: n, noscan: noscan)
                             : ctx.heap.allocateZeroed(byteCount: n, alignment: alignment, noscan: noscan)
        } else {
            p = align == nil ? ctx.heap.allocate(byteCount: n, noscan: noscan)
                             : ctx.heap.allocate(byteCount: n, alignment: alignment, noscan: noscan)
        }
        let addr = UInt(bitPattern: p)
        let id = ctx.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let what = "\(viaTry ? "tryAllocate" : zeroed ? "allocateZeroed" : "allocate")(\(n), alignment \(alignment), noscan \(noscan))"
        note("\(what) -> \(hexString(addr)) #\(id)")
        let (path, kind, usable, spc, natural) = ctx.sizes.expect(n, alignment: alignment, noscan: noscan)
        let block = Block(addr: addr, id: id, requested: n, usable: usable, alignment: alignment,
                          spanClass: spc, kind: kind, allocator: number)
        if addr % UInt(natural) != 0 {
            fail("\(what) returned \(hexString(addr)), not aligned to \(natural) (expected \(path))")
        }
        let heapPath = ctx.heap.path(forByteCount: n, alignment: alignment, noscan: noscan)
        if heapPath != path { fail("\(what): heap.path(forByteCount:) is \(heapPath), size-class table says \(path)") }
        // The model first: an overlap must be reported before the pattern is written.
        if let err = ctx.model.withLock({ $0.insert(block) }) { fail("\(what) returned \(hexString(addr)): \(err)") }
        let got = ctx.heap.usableSize(of: p)
        if got != usable { fail("\(what): usableSize(of: \(hexString(addr))) is \(got), expected \(usable) (\(path))") }
        if got < n { fail("\(what): usableSize \(got) below the request") }
        let pathOf = ctx.heap.path(of: p)
        if pathOf != path { fail("\(what): heap.path(of:) is \(pathOf), expected \(path)") }
        // Go's roundupsize(0) is 0 although a 0-byte request gets an 8-byte object.
        if alignment <= 8, n > 0, SizeClasses.roundUp(byteCount: n) != usable {
            fail("\(what): SizeClasses.roundUp(byteCount: \(n)) = \(SizeClasses.roundUp(byteCount: n)), usable \(usable)")
        }
        if zeroed, let err = checkZero(addr, usable, id) { fail("\(what) at \(hexString(addr)): \(err)") }
        fillPattern(block)
        own.append(block)
        if kind == .huge { ctx.hugeLive.wrappingAdd(1, ordering: .relaxed) }
        if case .small(let c, _) = path, !ctx.classesSeen.withLock({ $0[c] }) { ctx.classesSeen.withLock { $0[c] = true } }
        ctx.allocs.wrappingAdd(1, ordering: .relaxed)
        if zeroed { ctx.zeroedAllocs.wrappingAdd(1, ordering: .relaxed) }
    }

    /// Checks a block's pattern, takes it out of the model, then frees it.
    mutating func free(_ b: Block, from source: String) {
        note("free #\(b.id) \(hexString(b.addr)) (\(b.requested) B, \(source), allocated by worker \(b.allocator))")
        if let err = checkPattern(b) {
            fail("block #\(b.id) at \(hexString(b.addr)) (\(b.requested) B requested, usable \(b.usable), allocated by worker \(b.allocator)) was overwritten while live: \(err)")
        }
        // Out of the model before the heap may hand the address out again.
        if let err = ctx.model.withLock({ $0.remove(b) }) { fail(err) }
        ctx.heap.deallocate(UnsafeMutableRawPointer(bitPattern: b.addr)!)
        if b.kind == .huge { ctx.hugeLive.wrappingAdd(-1, ordering: .relaxed) }
        ctx.frees.wrappingAdd(1, ordering: .relaxed)
        if b.allocator != number { ctx.crossFrees.wrappingAdd(1, ordering: .relaxed) }
    }

    mutating func takeOwn() -> Block? {
        if own.isEmpty { return nil }
        let i = rng.below(own.count)
        own.swapAt(i, own.count - 1)
        let b = own.removeLast()
        return b
    }

    mutating func checkOne() {
        guard !own.isEmpty else { return }
        let b = own[rng.below(own.count)]
        note("usableSize #\(b.id) \(hexString(b.addr))")
        let p = UnsafeMutableRawPointer(bitPattern: b.addr)!
        let got = ctx.heap.usableSize(of: p)
        if got != b.usable { fail("usableSize(of: \(hexString(b.addr))) of live block #\(b.id) is \(got), was \(b.usable)") }
        if !ctx.heap.owns(p) { fail("owns(\(hexString(b.addr))) is false for live block #\(b.id)") }
        if let err = checkPattern(b) {
            fail("block #\(b.id) at \(hexString(b.addr)) (\(b.requested) B, allocated by worker \(b.allocator)) was overwritten while live: \(err)")
        }
        ctx.usableChecks.wrappingAdd(1, ordering: .relaxed)
    }

    mutating func step() {
        if rng.chance(1, 2000) { targetLive = newTarget() }
        let over = own.count > targetLive
        var x = rng.below(1000)
        if own.count > 2 * targetLive + 8 { x = 400 }  // far over target: free
        // Exiting workers hand over everything they hold: keep the queue bounded.
        if ctx.queueCount.load(ordering: .relaxed) > 1000 + 250 * ctx.threads && rng.chance(1, 2) { x = 800 }
        switch x {
        case 0..<300:
            if over && rng.chance(1, 2) { freeOwnOrAllocate() } else { allocate(zeroed: false, viaTry: false) }
        case 300..<350: allocate(zeroed: true, viaTry: false)
        case 350..<390: allocate(zeroed: rng.chance(1, 2), viaTry: true)
        case 390..<560: freeOwnOrAllocate()
        case 560..<720:
            // Hand a block to whoever takes it next.
            if let b = takeOwn() {
                note("hand over #\(b.id) \(hexString(b.addr))")
                ctx.queue.withLock { $0.append(b) }
                ctx.queueCount.wrappingAdd(1, ordering: .relaxed)
            } else {
                allocate(zeroed: false, viaTry: false)
            }
        case 720..<880:
            // Take a block someone handed over: usually free it, sometimes keep it.
            if ctx.queueCount.load(ordering: .relaxed) == 0 { freeOwnOrAllocate(); return }
            let pick = rng.next()
            let got = ctx.queue.withLock { q -> Block? in
                if q.isEmpty { return nil }
                let i = Int(pick % UInt64(q.count))
                q.swapAt(i, q.count - 1)
                return q.removeLast()
            }
            guard let b = got else { return }
            ctx.queueCount.wrappingAdd(-1, ordering: .relaxed)
            if rng.chance(1, 6) && !over {
                note("adopt #\(b.id) \(hexString(b.addr))")
                own.append(b)
            } else {
                free(b, from: "handed over")
            }
        case 880..<995: checkOne()
        case 995..<999:
            note("flushThreadCache")
            ctx.heap.flushThreadCache()
            ctx.flushes.wrappingAdd(1, ordering: .relaxed)
        default:
            if rng.chance(1, 4) {
                note("releaseFreeMemory")
                ctx.heap.releaseFreeMemory()
                ctx.releases.wrappingAdd(1, ordering: .relaxed)
            } else {
                note("flushThreadCache")
                ctx.heap.flushThreadCache()
                ctx.flushes.wrappingAdd(1, ordering: .relaxed)
            }
        }
    }

    mutating func freeOwnOrAllocate() {
        if let b = takeOwn() { free(b, from: "own") } else { allocate(zeroed: false, viaTry: false) }
    }

    /// Runs until the lifetime or the epoch's budget is used up, then hands
    /// every remaining block to the queue (they will be freed by other threads).
    mutating func run(lifetime: Int) {
        for _ in 0..<lifetime {
            let k = ctx.opCounter.wrappingAdd(1, ordering: .relaxed).oldValue
            if k >= ctx.epochEnd.load(ordering: .relaxed) {
                ctx.opCounter.wrappingAdd(-1, ordering: .relaxed)
                break
            }
            step()
        }
        if !own.isEmpty {
            let n = own.count
            let mine = own
            ctx.queue.withLock { $0.append(contentsOf: mine) }
            ctx.queueCount.wrappingAdd(n, ordering: .relaxed)
            own.removeAll()
        }
    }
}

/// At a quiescent point (every worker joined): heap.stats against the model.
func checkQuiescent(_ ctx: FuzzContext, _ when: String) {
    let s = ctx.heap.stats
    let m = ctx.model.withLock { st in st }
    var errors: [String] = []
    func eq(_ name: String, _ heap: Int, _ model: Int) {
        if heap != model { errors.append("\(name): heap.stats \(heap), model \(model)") }
    }
    eq("mallocs", s.mallocs, m.totalMallocs)
    eq("frees", s.frees, m.totalFrees)
    eq("mallocs - frees (heapObjects)", s.heapObjects, m.liveCount)
    eq("heapAlloc (sum of usable sizes of live blocks)", s.heapAlloc, m.liveBytes)
    eq("largeAllocs", s.largeAllocs, m.largeAllocs)
    eq("largeFrees", s.largeFrees, m.largeFrees)
    eq("hugeAllocs", s.hugeAllocs, m.hugeAllocs)
    eq("hugeFrees", s.hugeFrees, m.hugeFrees)
    eq("largeBytesInUse", s.largeBytesInUse, m.largeLiveBytes)
    eq("hugeBytesInUse", s.hugeBytesInUse, m.hugeLiveBytes)
    eq("threadCaches (every worker has exited)", s.threadCaches, 0)
    for c in 1..<SizeClasses.count {
        let row = s.bySize[c - 1]
        eq("size class \(c) mallocs", row.mallocs, m.mallocs[c << 1] + m.mallocs[c << 1 | 1])
        eq("size class \(c) frees", row.frees, m.frees[c << 1] + m.frees[c << 1 | 1])
        eq("size class \(c) noscan mallocs", row.noscanMallocs, m.mallocs[c << 1 | 1])
    }
    if s.heapInUse < m.liveBytes { errors.append("heapInUse \(s.heapInUse) below the live bytes \(m.liveBytes)") }
    if !errors.isEmpty { ctx.fail("stats do not balance \(when):\n    " + errors.joined(separator: "\n    ")) }
}

func runFuzz() -> Never {
    let seed = UInt64(truncatingIfNeeded: intArgument("seed", default: 1))
    let ops = intArgument("ops", default: 200_000)
    let threads = max(1, intArgument("threads", default: 4))
    let scavenger = !flagArgument("no-scavenger")
    let verbose = flagArgument("verbose")
    startWatchdog(seconds: intArgument("watchdog", default: 600), what: "fuzz --seed \(seed)")
    let heap = Heap(configuration: HeapConfiguration(
        backgroundScavenging: scavenger, scavengePeriod: .milliseconds(50), scavengeDelay: .milliseconds(20)))
    let ctx = FuzzContext(heap: heap, seed: seed, ops: ops, threads: threads)
    let epochOps = min(50_000, max(2_000, ops / 10))
    var workerNumber = 0
    var rng = HelperRNG(seed: seed ^ 0x5EED)
    var epochs = 0
    var done = 0
    while done < ops {
        let end = min(ops, done + epochOps)
        ctx.epochEnd.store(end, ordering: .relaxed)
        // Workers slots: each runs a worker with a random lifetime; when one
        // exits, a new one takes its place while the epoch has budget left.
        let flags = UnsafeMutablePointer<Atomic<Bool>>.allocate(capacity: threads)
        for i in 0..<threads { (flags + i).initialize(to: Atomic(false)) }
        nonisolated(unsafe) let sharedFlags = flags
        var slots = [pthread_t?](repeating: nil, count: threads)
        func start(_ slot: Int) {
            let number = workerNumber
            workerNumber += 1
            let perThread = max(1, (end - done) / threads)
            let lifetime = rng.chance(1, 8) ? rng.inRange(1...64) : rng.inRange(1...(2 * perThread))
            sharedFlags[slot].store(false, ordering: .relaxed)
            ctx.threadsStarted.wrappingAdd(1, ordering: .relaxed)
            slots[slot] = spawnThread {
                var w = Worker(ctx: ctx, number: number)
                w.run(lifetime: lifetime)
                sharedFlags[slot].store(true, ordering: .releasing)
                ctx.finished.signal()
            }
        }
        for i in 0..<threads { start(i) }
        var running = threads
        while running > 0 {
            ctx.finished.wait()
            for i in 0..<threads {
                guard let t = slots[i], sharedFlags[i].load(ordering: .acquiring) else { continue }
                joinThread(t)
                slots[i] = nil
                running -= 1
                if ctx.opCounter.load(ordering: .relaxed) < end {
                    start(i)
                    running += 1
                }
            }
        }
        flags.deinitialize(count: threads)
        flags.deallocate()
        done = ctx.opCounter.load(ordering: .relaxed)
        epochs += 1
        checkQuiescent(ctx, "after epoch \(epochs) (\(done) ops)")
        if verbose {
            let st = heap.stats
            let m = ctx.model.withLock { ($0.liveCount, $0.liveBytes) }
            var size = 0, rss = 0
            _ = goheap_os_statm(&size, &rss)
            say("epoch \(epochs): \(done) ops, live \(m.0) blocks \(m.1 >> 20) MiB, queue \(ctx.queueCount.load(ordering: .relaxed)), heapSys \(st.heapSys >> 20) MiB, heapInUse \(st.heapInUse >> 20) MiB, released \(st.heapReleased >> 20) MiB, rss \(rss >> 20) MiB")
        }
    }
    // Free everything still live, from the main thread (all cross-thread frees).
    var main = Worker(ctx: ctx, number: -1)
    let rest = ctx.queue.withLock { q -> [Block] in
        defer { q.removeAll() }
        return q
    }
    for b in rest { main.free(b, from: "left at the end") }
    let s = heap.stats
    if s.heapObjects != 0 || s.heapAlloc != 0 {
        ctx.fail("after freeing every block: heapObjects \(s.heapObjects), heapAlloc \(s.heapAlloc)")
    }
    let m = ctx.model.withLock { $0 }
    if s.mallocs != m.totalMallocs || s.frees != m.totalFrees {
        ctx.fail("after freeing every block: stats mallocs \(s.mallocs) frees \(s.frees), model \(m.totalMallocs) \(m.totalFrees)")
    }
    heap.releaseFreeMemory()
    let after = heap.stats
    if after.heapInUse != 0 || after.smallSpansInUse != 0 || after.heapReleased != after.heapSys {
        ctx.fail("after freeing every block and releaseFreeMemory: heapInUse \(after.heapInUse), smallSpansInUse \(after.smallSpansInUse), heapReleased \(after.heapReleased) of heapSys \(after.heapSys) (a span or page was lost)")
    }
    let seen = ctx.classesSeen.withLock { $0.dropFirst().filter { $0 }.count }
    say("fuzz: \(ctx.allocs.load(ordering: .relaxed)) allocations (\(ctx.zeroedAllocs.load(ordering: .relaxed)) zeroed), \(ctx.frees.load(ordering: .relaxed)) frees (\(ctx.crossFrees.load(ordering: .relaxed)) cross-thread), \(ctx.usableChecks.load(ordering: .relaxed)) usableSize checks, \(ctx.flushes.load(ordering: .relaxed)) flushes, \(ctx.releases.load(ordering: .relaxed)) releases, \(ctx.threadsStarted.load(ordering: .relaxed)) threads, \(epochs) epochs, \(seen)/67 size classes, \(m.hugeAllocs) huge, \(m.largeAllocs) large")
    say("fuzz: \(ops) ops, seed \(seed), threads \(threads): ok")
    exit(0)
}

/// `fuzz-model-selftest`: the interval set against a brute-force list, so an
/// overlap the heap might produce cannot slip past the model. Random blocks
/// of every length class (8 B to 16 MiB) in a small address range, so they
/// collide often; every insert's verdict is compared with a linear scan.
func runModelSelfTest() -> Never {
    var rng = HelperRNG(seed: UInt64(truncatingIfNeeded: intArgument("seed", default: 3)))
    var model = ModelState()
    var live: [Block] = []
    var overlaps = 0
    let base: UInt = 0x10_0000_0000
    for step in 0..<intArgument("ops", default: 60_000) {
        if live.isEmpty || rng.chance(11, 20) {
            let usable: Int
            switch rng.below(100) {
            case 0..<80: usable = rng.inRange(1...4096) * 8
            case 80..<98: usable = rng.inRange(4097...131_072) * 8
            default: usable = rng.inRange(1...2048) * 8192
            }
            let addr = base + UInt(rng.below(256 << 20) & ~7)
            let b = Block(addr: addr, id: UInt64(step), requested: usable, usable: usable, alignment: 8,
                          spanClass: 2, kind: .small, allocator: 0)
            let end = addr + UInt(usable)
            let brute = live.first { addr < $0.addr + UInt($0.usable) && $0.addr < end }
            let err = model.insert(b)
            if (err == nil) != (brute == nil) {
                say("fuzz-model-selftest: step \(step): [\(hexString(addr)), \(hexString(end))): model says \(err ?? "no overlap"), brute force says \(brute.map { "overlaps #\($0.id)" } ?? "no overlap")")
                exit(1)
            }
            if err == nil { live.append(b) } else { overlaps += 1 }
        } else {
            let i = rng.below(live.count)
            live.swapAt(i, live.count - 1)
            if let err = model.remove(live.removeLast()) {
                say("fuzz-model-selftest: step \(step): \(err)")
                exit(1)
            }
        }
        if model.liveCount != live.count {
            say("fuzz-model-selftest: step \(step): model holds \(model.liveCount) blocks, brute force \(live.count)")
            exit(1)
        }
    }
    say("fuzz-model-selftest: ok (\(overlaps) overlaps caught, \(live.count) live at the end)")
    exit(0)
}
