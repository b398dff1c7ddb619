// `gomem pairloop`: one allocator, one workload's loop and nothing else, so
// that scripts/callgrind-pair.sh can count its instructions under valgrind
// (the difference of two runs at N and 2N pairs is the cost of N pairs, loop
// included, with start-up and library loading cancelled out), and so that
// `perf record` sees one allocator alone. Default: workload 1's hot pair.
import ArgumentParser
import Foundation
import GoHeap

struct PairLoop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairloop",
        abstract: "Run only one workload's loop for one allocator (for instruction counts and profiles).",
        shouldDisplay: false)

    @Option(help: "goheap, glibc, jemalloc, mimalloc or tcmalloc.")
    var allocator: String = "goheap"

    @Option(help: "hot-pair (ops: pairs), batch (ops: objects), larson, larson-8 (ops: rounds of 5000 slots per thread), large, huge (ops: blocks).")
    var workload: String = "hot-pair"

    @Option(help: "Operations per run, 1 to 1,000,000,000 (see --workload).")
    var ops: Int = 1_000_000

    @Option(help: "Runs, one after another, 1 to 100.")
    var repetitions: Int = 1

    @Flag(help: "Run the workload at gomem bench's size instead of --ops (any workload gomem bench runs for allocators).")
    var benchSized = false

    @Flag(help: "With --bench-sized: gomem bench --quick's size.")
    var quick = false

    @Flag(help: "Also print the peak resident set the runs added to this process: 'peak RSS +<bytes>'.")
    var peakRSS = false

    func validate() throws {
        guard (1...1_000_000_000).contains(ops) else {
            throw ValidationError("--ops \(ops) is outside 1...1,000,000,000")
        }
        guard (1...100).contains(repetitions) else {
            throw ValidationError("--repetitions \(repetitions) is outside 1...100")
        }
        let known = benchSized ? AllocatorWorkload.keys : Self.workloads
        guard known.contains(workload) else {
            throw ValidationError("--workload \(workload) is not one of \(known.joined(separator: ", "))\(benchSized ? "" : " (with --bench-sized: \(AllocatorWorkload.keys.joined(separator: ", ")))")")
        }
        if quick && !benchSized { throw ValidationError("--quick goes with --bench-sized") }
    }

    static let workloads = ["hot-pair", "batch", "larson", "larson-8", "large", "huge"]

    func run() throws {
        reexecWithRoomForStaticTLS()
        // Bench-sized runs use the heap gomem bench uses; the others one
        // without a scavenger thread, whose instructions callgrind would count.
        let heap = benchSized ? Heap.shared : Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        let (found, skipped) = loadCompetitors(heap: heap)
        guard let c = found.first(where: { $0.name.lowercased() == allocator.lowercased() }) else {
            let why = skipped.first { $0.name.lowercased() == allocator.lowercased() }?.reason
                ?? "known: \(found.map(\.name).joined(separator: ", "))"
            throw ValidationError("--allocator \(allocator) is not available (\(why))")
        }
        let threads = AllocatorWorkload.threads
        // Resident set before: the runtime and every allocator loaded, none used.
        let before = ProcMemory.resident()
        ProcMemory.resetPeak()
        for _ in 0..<repetitions {
            let ns: UInt64
            if benchSized {
                ns = dispatch(c, AllocatorWorkload.body(key: workload, quick: quick)!)
                print("\(c.name) \(workload) bench-sized\(quick ? " quick" : "") \(ns) ns")
                continue
            }
            switch workload {
            case "batch": ns = dispatch(c, Batch(count: ops))
            case "larson": ns = dispatch(c, Larson(threads: threads, rounds: ops, slots: 5_000))
            case "larson-8": ns = dispatch(c, Larson(threads: 8, rounds: ops, slots: 1_250))
            case "large": ns = dispatch(c, Sized.large(count: ops))
            case "huge": ns = dispatch(c, Sized.huge(count: ops))
            default: ns = dispatch(c, HotPair(ops: ops))
            }
            print("\(c.name) \(workload) \(ops) ops \(ns) ns")
        }
        if peakRSS { print("peak RSS +\(max(0, ProcMemory.peak() - before))") }
    }
}
