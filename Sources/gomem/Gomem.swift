// gomem: GoHeap's command-line tool.
import ArgumentParser
import Foundation
import GoHeap
import GoCollections

@main
struct Gomem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gomem",
        abstract: "GoHeap, a Go-runtime-style allocator: benchmarks and explanations.",
        subcommands: [Bench.self, Explain.self, Trace.self, SizeClassTable.self, NUMAReport.self])
}

struct SizeClassTable: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sizeclasses", abstract: "Print Go's size class table as GoHeap uses it.")

    func run() {
        print("class  bytes/obj  bytes/span  objects  tail waste  max waste  min align")
        for c in SizeClasses.table {
            print(String(format: "%5d  %9d  %10d  %7d  %10d  %8.2f%%  %9d",
                         c.index, c.size, c.spanBytes, c.objects, c.tailWaste, c.maxWaste * 100, c.minAlignment))
        }
    }
}

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain the path, usable size and waste of an allocation of BYTES, or what make, appends and a bulk append of COUNT elements of ELEM-SIZE bytes allocate.",
        usage: "gomem explain BYTES [--alignment A]\n       gomem explain --elem-size S --count N")

    @Argument(help: "Requested bytes.")
    var bytes: Int?

    @Option(help: "Alignment (a power of two).")
    var alignment: Int = 8

    @Option(help: "Element size of a slice, in bytes.")
    var elemSize: Int?

    @Option(help: "Number of elements.")
    var count: Int?

    @Option(help: "Start from make([]T, FROM) (length = capacity = FROM) instead of a nil slice.")
    var from: Int?

    func validate() throws {
        switch (bytes, elemSize, count) {
        case (let b?, nil, nil):
            if b < 0 { throw ValidationError("BYTES must not be negative, got \(b)") }
        case (nil, let s?, let n?):
            if s < 0 { throw ValidationError("--elem-size must not be negative, got \(s)") }
            if n < 0 { throw ValidationError("--count must not be negative, got \(n)") }
            if s > 0 && n > heapMaxAllocation / s { throw ValidationError("--count \(n) of \(s)-byte elements exceeds the largest allocation") }
        default:
            throw ValidationError("give either BYTES, or both --elem-size and --count")
        }
        if alignment <= 0 || alignment & (alignment - 1) != 0 {
            throw ValidationError("--alignment must be a positive power of two, got \(alignment)")
        }
        if let f = from {
            guard let n = count else { throw ValidationError("--from needs --elem-size and --count") }
            if f < 0 || f > n { throw ValidationError("--from must be between 0 and --count, got \(f)") }
        }
    }

    func run() {
        if let bytes { explainBytes(bytes) } else if let f = from, f > 0 {
            explainGrowth(size: elemSize!, from: f, to: count!)
        } else {
            explainSlice(size: elemSize!, count: count!)
        }
    }

    func usable(_ path: AllocationPath) -> Int {
        switch path {
        case .small(let c, _): return SizeClasses.size(ofClass: c)
        case .large(let p), .huge(let p): return p * SizeClasses.pageSize
        }
    }

    func explainBytes(_ bytes: Int) {
        let path = Heap.shared.path(forByteCount: bytes, alignment: alignment)
        let u = usable(path)
        print("request:  \(bytes) bytes, alignment \(alignment)")
        print("path:     \(path)")
        print("usable:   \(u) bytes (Go's roundupsize: \(SizeClasses.roundUp(byteCount: bytes)))")
        let waste = u - bytes
        print("waste:    \(waste) bytes (\(String(format: "%.1f", bytes == 0 ? 0 : Double(waste) * 100 / Double(u)))% of the block)")
        if case .small(let c, _) = path {
            let row = SizeClasses.table[c - 1]
            print("span:     \(row.spanBytes) bytes (\(row.pages) page(s)) holding \(row.objects) objects, \(row.tailWaste) bytes tail waste")
        }
    }

    /// make([]T, m), then grown to n elements: in one append, or one at a time.
    func explainGrowth(size: Int, from m: Int, to n: Int) {
        print("make([]T, \(m)) of \(size)-byte elements (capacity \(m)), grown to \(n) elements")
        if n == m { print("no growth: the slice already holds \(n)"); return }
        let bulk = SliceGrowth.grow(oldCapacity: m, needed: n, elementSize: size)
        print("append(s, \(n - m) elements...): 1 growth to capacity \(bulk.capacity) (\(bulk.byteCount) bytes), \(m * size) bytes copied")
        var cap = m, growths = 0, copied = 0, len = m
        while len < n {
            if len == cap {
                let d = SliceGrowth.grow(oldCapacity: cap, needed: len + 1, elementSize: size)
                growths += 1
                copied += len * size
                cap = d.capacity
            }
            len = min(n, cap)
        }
        print("\(n - m) appends one by one: \(growths) growths, \(copied) bytes copied, final capacity \(cap)")
    }

    func explainSlice(size: Int, count n: Int) {
        print("slice of \(n) elements of \(size) bytes (\(n * size) bytes of data)")
        // make([]T, 0, n) / make([]T, n): exact capacity, the allocation rounded.
        let makeBytes = SliceGrowth.makeBytes(count: n, elementSize: size)
        let makeAlloc = makeBytes == 0 ? 0 : SizeClasses.roundUp(byteCount: makeBytes)
        let makePath = makeBytes == 0 ? "no allocation" : "\(Heap.shared.path(forByteCount: makeBytes))"
        print("make([]T, 0, \(n)):  1 allocation of \(makeAlloc) bytes (\(makePath)), capacity \(n), 0 bytes copied")
        // n appends one by one from a nil slice.
        var cap = 0, growths = 0, copied = 0, allocated = 0
        var len = 0
        while len < n {
            if len == cap {
                let d = SliceGrowth.grow(oldCapacity: cap, needed: len + 1, elementSize: size)
                growths += 1
                copied += len * size
                allocated += d.byteCount
                cap = d.capacity
            }
            len = min(n, cap)  // the appends up to the capacity do not grow
        }
        print("\(n) appends one by one: \(growths) growths, \(allocated) bytes allocated in total, \(copied) bytes copied, final capacity \(cap)")
        let bulk = SliceGrowth.grow(oldCapacity: 0, needed: n, elementSize: size)
        print("append(nil, \(n) elements...): 1 growth, \(bulk.byteCount) bytes, capacity \(bulk.capacity), 0 bytes copied")
        if size > 0 && makeAlloc > 0 {
            let full = makeAlloc / size
            print("capacity that fills the \(makeAlloc)-byte block with no waste: make([]T, 0, \(full)) (\(makeAlloc - full * size) bytes left over)")
        }
    }
}

struct NUMAReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "numa", abstract: "Show the NUMA topology and the policy a default heap uses.")

    func run() {
        if let why = NUMA.unavailableReason {
            print("libnuma:  not available: \(why)")
        } else {
            print("libnuma:  loaded (libnuma.so.1)")
        }
        let nodes = NUMA.nodeCount
        print("nodes:    \(nodes), CPUs: \(NUMA.cpuCount)")
        for n in 0...NUMA.maxNode {
            let cpus = NUMA.cpus(ofNode: n)
            let mem = NUMA.memory(ofNode: n).map { "\($0.total >> 20) MiB total, \($0.free >> 20) MiB free" } ?? "unknown memory"
            print("node \(n):   cpus \(cpus.map(String.init).joined(separator: " ")); \(mem)")
        }
        let header = (0...NUMA.maxNode).map { String(format: "%5d", $0) }.joined()
        print("distances:    \(header)")
        for a in 0...NUMA.maxNode {
            let row = (0...NUMA.maxNode).map { b in String(format: "%5d", NUMA.distance(from: a, to: b) ?? -1) }.joined()
            print(String(format: "  node %3d: ", a) + row)
        }
        if let here = NUMA.currentCPU() { print("this thread: cpu \(here.cpu), node \(here.node)") }
        print("default heap policy: \(Heap.shared.configuration.numaPolicy)")
        print("THP mode: \(Heap.transparentHugePageMode); huge-object threshold \(Heap.shared.configuration.hugeThreshold.map(String.init) ?? "off") bytes")
    }
}
