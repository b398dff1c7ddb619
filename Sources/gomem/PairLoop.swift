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

    func validate() throws {
        guard (1...1_000_000_000).contains(ops) else {
            throw ValidationError("--ops \(ops) is outside 1...1,000,000,000")
        }
        guard (1...100).contains(repetitions) else {
            throw ValidationError("--repetitions \(repetitions) is outside 1...100")
        }
        guard Self.workloads.contains(workload) else {
            throw ValidationError("--workload \(workload) is not one of \(Self.workloads.joined(separator: ", "))")
        }
    }

    static let workloads = ["hot-pair", "batch", "larson", "larson-8", "large", "huge"]

    func run() throws {
        reexecWithRoomForStaticTLS()
        let (found, skipped) = loadCompetitors(heap: Heap(configuration: HeapConfiguration(backgroundScavenging: false)))
        guard let c = found.first(where: { $0.name.lowercased() == allocator.lowercased() }) else {
            let why = skipped.first { $0.name.lowercased() == allocator.lowercased() }?.reason
                ?? "known: \(found.map(\.name).joined(separator: ", "))"
            throw ValidationError("--allocator \(allocator) is not available (\(why))")
        }
        let threads = max(2, ProcessInfo.processInfo.activeProcessorCount)
        for _ in 0..<repetitions {
            let ns: UInt64
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
    }
}
