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
        version: gomemVersion,
        subcommands: [Bench.self, Explain.self, Trace.self, Plot.self, Profile.self, SizeClassTable.self, NUMAReport.self,
                      PairLoop.self])

    /// ArgumentParser's main, with negative numbers passed on as values (see
    /// NumberArgument) and `gomem help TOPIC` checked: ArgumentParser shows
    /// the root help for any unknown topic.
    static func main() {
        let args = NumberArgument.protectNegativeNumbers(Array(CommandLine.arguments.dropFirst()))
        do {
            try checkHelpTopic(args)
            var command = try parseAsRoot(args)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            let text = NumberArgument.shown(fullMessage(for: error))
            if !text.isEmpty {
                if code == .success {
                    print(text)
                } else {
                    FileHandle.standardError.write(Data((text + "\n").utf8))
                }
            }
            Foundation.exit(code.rawValue)
        }
    }

    /// `gomem help A B`: every word must name a subcommand of the one before.
    static func checkHelpTopic(_ args: [String]) throws {
        guard args.first == "help" else { return }
        var command: ParsableCommand.Type = Gomem.self
        var path = "gomem"
        for word in args.dropFirst() where !word.hasPrefix("-") {
            let subcommands = command.configuration.subcommands
            guard let next = subcommands.first(where: { name(of: $0) == word }) else {
                let names = subcommands.map(name(of:))
                throw ValidationError(names.isEmpty
                    ? "unknown help topic '\(NumberArgument.shown(word))': \(path) has no subcommands"
                    : "unknown help topic '\(NumberArgument.shown(word))': \(path) has the subcommands \(names.joined(separator: ", "))")
            }
            command = next
            path += " " + word
        }
    }

    /// Every gomem command names itself in its configuration.
    static func name(of command: ParsableCommand.Type) -> String {
        command.configuration.commandName ?? command._commandName
    }
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
        commandName: "explain",
        abstract: "Explain the path, usable size and waste of an allocation of BYTES, or what make, appends and a bulk append of COUNT elements of ELEM-SIZE bytes allocate.",
        usage: """
            gomem explain BYTES [--alignment A]
            gomem explain --elem-size S --count N [--from F]
            """)

    @Argument(help: ArgumentHelp("Requested bytes, 0 to 2^47 (140737488355328).", valueName: "BYTES"))
    var bytes: String?

    @Option(help: ArgumentHelp("Alignment: a power of two, 1 to 2^47.", valueName: "A"))
    var alignment: String = "8"

    @Option(help: ArgumentHelp("Element size of a slice, in bytes: 0 to 2^47.", valueName: "S"))
    var elemSize: String?

    @Option(help: ArgumentHelp("Number of elements: 0 to 2^47, and N × S at most 2^47 bytes.", valueName: "N"))
    var count: String?

    @Option(help: ArgumentHelp("Start from make([]T, F) (length = capacity = F) instead of a nil slice; 0 to N.", valueName: "F"))
    var from: String?

    /// What to explain, with every number read and checked.
    enum Request {
        case bytes(Int, alignment: Int)
        case slice(elementSize: Int, count: Int, from: Int)
    }

    func request() throws -> Request {
        let limit = 0...Limits.largestAllocation
        let why = Limits.largestAllocationWhy
        let align = try NumberArgument.parse(alignment, name: "--alignment", range: 1...Limits.largestAllocation, why: why)
        if align & (align - 1) != 0 {
            throw ValidationError("--alignment must be a power of two from 1 to \(Limits.largestAllocation) (\(why)); got \(align), which is not a power of two")
        }
        switch (bytes, elemSize, count) {
        case (let b?, nil, nil):
            if from != nil { throw ValidationError("--from needs --elem-size and --count, not BYTES") }
            return .bytes(try NumberArgument.parse(b, name: "BYTES", range: limit, why: why), alignment: align)
        case (nil, let s?, let n?):
            if alignment != "8" { throw ValidationError("--alignment goes with BYTES, not with --elem-size and --count") }
            let size = try NumberArgument.parse(s, name: "--elem-size", range: limit, why: why)
            let n = try NumberArgument.parse(n, name: "--count", range: limit, why: why)
            let (total, overflow) = size.multipliedReportingOverflow(by: n)
            if overflow || total > Limits.largestAllocation {
                throw ValidationError("--count × --elem-size must be at most \(Limits.largestAllocation) bytes (\(why)); got \(n) × \(size) = \(overflow ? "more than \(Int.max)" : String(total)) bytes; with --elem-size \(size), --count can be at most \(Limits.largestAllocation / size)")
            }
            let f = try from.map { try NumberArgument.parse($0, name: "--from", range: 0...n, why: "the slice starts with --from elements and grows to --count") } ?? 0
            return .slice(elementSize: size, count: n, from: f)
        case (_?, _, _):
            throw ValidationError("give either BYTES, or --elem-size and --count, not both")
        case (nil, nil, nil):
            throw ValidationError("give either BYTES, or both --elem-size and --count")
        case (nil, nil, _?):
            throw ValidationError("--count needs --elem-size")
        case (nil, _?, nil):
            throw ValidationError("--elem-size needs --count")
        }
    }

    func validate() throws { _ = try request() }

    func run() throws {
        switch try request() {
        case .bytes(let b, let a): explainBytes(b, alignment: a)
        case .slice(let size, let n, let f) where f > 0: explainGrowth(size: size, from: f, to: n)
        case .slice(let size, let n, _): explainSlice(size: size, count: n)
        }
    }

    /// AllocationPath's description, with "1 page" for one page.
    func describe(_ path: AllocationPath) -> String {
        switch path {
        case .small: return "\(path)"
        case .large(let p): return "large: \(plural(p, "page"))"
        case .huge(let p): return "huge: \(plural(p, "page")), 2 MiB aligned, MADV_HUGEPAGE"
        }
    }

    func usable(_ path: AllocationPath) -> Int {
        switch path {
        case .small(let c, _): return SizeClasses.size(ofClass: c)
        case .large(let p), .huge(let p): return p * SizeClasses.pageSize
        }
    }

    func explainBytes(_ bytes: Int, alignment: Int) {
        let path = Heap.shared.path(forByteCount: bytes, alignment: alignment)
        let u = usable(path)
        print("request:  \(plural(bytes, "byte")), alignment \(alignment)")
        if bytes == 0 {
            print("Go:       no allocation: new and make of 0 bytes return runtime.zerobase, one address shared by all of them")
            print("GoHeap:   allocate(byteCount: 0) still returns a block of its own:")
        }
        // Go's roundupsize(0) is 0 (class 0); every other size rounds as GoHeap does.
        print("path:     \(describe(path))")
        print("usable:   \(plural(u, "byte")) (Go's roundupsize: \(bytes == 0 ? 0 : SizeClasses.roundUp(byteCount: bytes)))")
        let waste = u - bytes
        print("waste:    \(plural(waste, "byte")) (\(String(format: "%.1f", u == 0 ? 0 : Double(waste) * 100 / Double(u)))% of the block)")
        if case .small(let c, _) = path {
            let row = SizeClasses.table[c - 1]
            print("span:     \(plural(row.spanBytes, "byte")) (\(plural(row.pages, "page"))) holding \(plural(row.objects, "object")), \(plural(row.tailWaste, "byte")) tail waste")
        }
    }

    /// make([]T, m), then grown to n elements: in one append, or one at a time.
    func explainGrowth(size: Int, from m: Int, to n: Int) {
        print("make([]T, \(m)) of \(size)-byte elements (capacity \(m)), grown to \(plural(n, "element"))")
        if n == m { print("no growth: the slice already holds \(plural(n, "element"))"); return }
        if let bulk = SlicePlan.growth(oldCapacity: m, needed: n, elementSize: size) {
            print("append(s, \(plural(n - m, "element"))...): 1 growth to capacity \(bulk.capacity) (\(SlicePlan.bytes(bulk.byteCount))), \(plural(m * size, "byte")) copied")
        } else {
            print("append(s, \(plural(n - m, "element"))...): \(SlicePlan.tooLarge)")
        }
        let one = SlicePlan.appendOneByOne(size: size, from: m, to: n)
        print("\(plural(n - m, "append")) one by one: \(one.summary(includeAllocated: false))")
    }

    func explainSlice(size: Int, count n: Int) {
        print("slice of \(plural(n, "element")) of \(plural(size, "byte")) (\(plural(n * size, "byte")) of data)")
        // make([]T, 0, n) / make([]T, n): exact capacity, the allocation rounded.
        // Go allocates nothing for 0 bytes: makeslice returns runtime.zerobase.
        let makeBytes = SliceGrowth.makeBytes(count: n, elementSize: size)
        let makeAlloc = makeBytes == 0 ? 0 : SizeClasses.roundUp(byteCount: makeBytes)
        if makeBytes == 0 {
            print("make([]T, 0, \(n)):  no allocation (0 bytes: Go returns runtime.zerobase), capacity \(n)")
        } else {
            print("make([]T, 0, \(n)):  1 allocation of \(makeAlloc) bytes (\(describe(Heap.shared.path(forByteCount: makeBytes)))), capacity \(n), 0 bytes copied")
        }
        if n == 0 {
            // append(s) with nothing to add returns s: a nil slice stays nil.
            print("0 appends: no growth, no allocation; a nil slice stays nil (capacity 0)")
            print("append(nil, 0 elements...): no allocation; the result is a nil slice")
            return
        }
        let one = SlicePlan.appendOneByOne(size: size, from: 0, to: n)
        print("\(plural(n, "append")) one by one: \(one.summary(includeAllocated: true))")
        if let bulk = SlicePlan.growth(oldCapacity: 0, needed: n, elementSize: size) {
            print("append(nil, \(plural(n, "element"))...): 1 growth, \(SlicePlan.bytes(bulk.byteCount)), capacity \(bulk.capacity), 0 bytes copied")
        } else {
            print("append(nil, \(plural(n, "element"))...): \(SlicePlan.tooLarge)")
        }
        if size > 0 && makeAlloc > 0 {
            let full = makeAlloc / size
            print("capacity that fills the \(makeAlloc)-byte block with no waste: make([]T, 0, \(full)) (\(plural(makeAlloc - full * size, "byte")) left over)")
        }
    }
}

/// Slice growth for explain, without ever asking SliceGrowth for a growth it
/// would trap on (beyond GoHeap's largest allocation).
enum SlicePlan {
    static let tooLarge = "no further growth: it would need more than \(Limits.largestAllocation) bytes (\(Limits.largestAllocationWhy))"

    static func bytes(_ n: Int) -> String { n == 0 ? "0 bytes: no allocation" : plural(n, "byte") }

    /// SliceGrowth.grow, or nil when Go's rule asks for more than GoHeap's
    /// largest allocation. The capacity before rounding is go1.19's
    /// growslice, the rule SliceGrowth.grow applies.
    static func growth(oldCapacity old: Int, needed: Int, elementSize size: Int) -> SliceGrowthDecision? {
        if size > 0 {
            var newcap = old
            let doublecap = old &+ old
            if needed > doublecap || doublecap < 0 {
                newcap = needed
            } else if old < SliceGrowth.threshold {
                newcap = doublecap
            } else {
                while 0 < newcap && newcap < needed { newcap &+= (newcap &+ 3 &* SliceGrowth.threshold) / 4 }
                if newcap <= 0 { newcap = needed }
            }
            let (bytes, overflow) = newcap.multipliedReportingOverflow(by: size)
            if overflow || bytes > Limits.largestAllocation { return nil }
        }
        return SliceGrowth.grow(oldCapacity: old, needed: needed, elementSize: size)
    }

    struct OneByOne {
        var growths = 0, allocated = 0, copied = 0, capacity = 0
        /// The length at which a growth would exceed the largest allocation.
        var failedAt: Int?
        let size: Int

        func summary(includeAllocated: Bool) -> String {
            var parts = [plural(growths, "growth")]
            if includeAllocated {
                parts.append(size == 0 ? "0 bytes allocated (zero-size elements never allocate)" : "\(plural(allocated, "byte")) allocated in total")
            }
            parts.append("\(plural(copied, "byte")) copied")
            if let len = failedAt {
                return parts.joined(separator: ", ") + " up to length \(len), then \(SlicePlan.tooLarge)"
            }
            return (parts + ["final capacity \(capacity)"]).joined(separator: ", ")
        }
    }

    /// append(s, x) from length = capacity = m until the slice holds n.
    static func appendOneByOne(size: Int, from m: Int, to n: Int) -> OneByOne {
        var r = OneByOne(capacity: m, size: size)
        if size == 0 {
            // Every append past the capacity "grows" it to the new length, with
            // no allocation (growslice returns runtime.zerobase); no loop, as n
            // may be 2^47.
            r.growths = n - m
            r.capacity = n
            return r
        }
        var len = m
        while len < n {
            if len == r.capacity {
                guard let d = growth(oldCapacity: r.capacity, needed: len + 1, elementSize: size) else {
                    r.failedAt = len
                    return r
                }
                r.growths += 1
                r.copied += len * size
                r.allocated += d.byteCount
                r.capacity = d.capacity
            }
            len = min(n, r.capacity)  // the appends up to the capacity do not grow
        }
        return r
    }
}

struct NUMAReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "numa", abstract: "Show the NUMA topology and the policy a default heap uses, or check page placement (--check).",
        discussion: """
            --check allocates small, large and huge blocks from threads pinned to \
            nodes, writes to every page, and prints the share of each block kind's \
            4 KiB pages on each node:
              a  one thread per node, all at once: >= 99 % on the thread's node
              b  A (node 0) allocates, frees and exits, then B (node 1): B >= 99 % local
              c  threads on nodes 0 and 1 take turns on one heap: >= 99 % local
              d  .bind(node: k) used from another node: 100 % on node k
              e  .interleave, 64 MiB of huge blocks: each node within 5 points of even
              f  a heap bound to a missing node is refused, naming it and the nodes
            On one node it only checks d for node 0. Boot with numa_balancing=disable \
            so the kernel does not move pages during the check. scripts/numa-ci.sh \
            runs it in emulated 2- and 4-node machines.
            """)

    @Flag(help: "Check where GoHeap puts pages: a table of cases a to f.")
    var check = false

    @Flag(help: "With --check: exit with status 1 when a case fails (otherwise the table is only printed).")
    var assert = false

    @Option(help: ArgumentHelp("Create a heap bound to node N and allocate from it; exits 0 only if the heap accepted N (case f of --check runs this).", valueName: "N"))
    var checkInvalidNode: String?

    func validate() throws {
        if assert && !check { throw ValidationError("--assert goes with --check") }
        if let n = checkInvalidNode {
            if check { throw ValidationError("--check-invalid-node runs on its own, not with --check") }
            _ = try NumberArgument.parse(n, name: "--check-invalid-node", range: 0...1_000_000, why: "a node number")
        }
    }

    func run() throws {
        if let n = checkInvalidNode {
            runInvalidNodeChild(try NumberArgument.parse(n, name: "--check-invalid-node", range: 0...1_000_000))
            return
        }
        if check {
            var c = PlacementCheck(machine: .current())
            c.run()
            if assert && !c.failedCases.isEmpty { throw ExitCode(1) }
            return
        }
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
        printPartitions(Heap.shared)
    }

    /// Per-partition statistics of a heap: one row per node where the machine
    /// has several.
    func printPartitions(_ heap: Heap) {
        let nodes = heap.stats.nodes
        print("partitions of the shared heap: \(nodes.count)")
        print("| node | policy | obtained MiB | in use MiB | released MiB | released total MiB | fallbacks |")
        print("|------|--------|-------------:|-----------:|-------------:|------------------:|----------:|")
        for n in nodes {
            let mib = { (b: Int) in String(format: "%.1f", Double(b) / 1_048_576) }
            print("| \(n.node.map(String.init) ?? "-") | \(n.policy) | \(mib(n.heapSys)) | \(mib(n.heapInUse)) | \(mib(n.heapReleased)) | \(mib(n.releasedTotal)) | \(n.fallbacks) |")
        }
    }
}
