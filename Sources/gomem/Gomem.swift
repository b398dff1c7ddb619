// gomem: GoHeap's command-line tool.
import ArgumentParser
import Foundation
import GoHeap

@main
struct Gomem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gomem",
        abstract: "GoHeap, a Go-runtime-style allocator: benchmarks and explanations.",
        subcommands: [Bench.self, Explain.self, SizeClassTable.self, NUMAReport.self])
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
        abstract: "Explain which path an allocation of BYTES takes, its usable size and waste.")

    @Argument(help: "Requested bytes.")
    var bytes: Int

    @Option(help: "Alignment (a power of two).")
    var alignment: Int = 8

    func validate() throws {
        if bytes < 0 { throw ValidationError("BYTES must not be negative, got \(bytes)") }
        if alignment <= 0 || alignment & (alignment - 1) != 0 {
            throw ValidationError("--alignment must be a positive power of two, got \(alignment)")
        }
    }

    func run() {
        let path = Heap.shared.path(forByteCount: bytes, alignment: alignment)
        let usable: Int
        switch path {
        case .small(let c, _): usable = SizeClasses.size(ofClass: c)
        case .large(let p), .huge(let p): usable = p * SizeClasses.pageSize
        }
        print("request:  \(bytes) bytes, alignment \(alignment)")
        print("path:     \(path)")
        print("usable:   \(usable) bytes (Go's roundupsize: \(SizeClasses.roundUp(byteCount: bytes)))")
        let waste = usable - bytes
        print("waste:    \(waste) bytes (\(String(format: "%.1f", bytes == 0 ? 0 : Double(waste) * 100 / Double(usable)))% of the block)")
        if case .small(let c, _) = path {
            let row = SizeClasses.table[c - 1]
            print("span:     \(row.spanBytes) bytes (\(row.pages) page(s)) holding \(row.objects) objects, \(row.tailWaste) bytes tail waste")
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
