// `gomem pairloop`: one allocator, the hot-pair loop of workload 1 and nothing
// else, so that scripts/callgrind-pair.sh can count its instructions under
// valgrind (the difference of two runs at N and 2N pairs is the cost of N
// pairs, loop included, with start-up and library loading cancelled out).
import ArgumentParser
import GoHeap

struct PairLoop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairloop",
        abstract: "Run only workload 1's allocate+free loop for one allocator (for instruction counts).",
        shouldDisplay: false)

    @Option(help: "goheap, glibc, jemalloc, mimalloc or tcmalloc.")
    var allocator: String = "goheap"

    @Option(help: "Allocate+free pairs to run, 1 to 1,000,000,000.")
    var ops: Int = 1_000_000

    func validate() throws {
        guard (1...1_000_000_000).contains(ops) else {
            throw ValidationError("--ops \(ops) is outside 1...1,000,000,000")
        }
    }

    func run() throws {
        reexecWithRoomForStaticTLS()
        let (found, skipped) = loadCompetitors(heap: Heap(configuration: HeapConfiguration(backgroundScavenging: false)))
        guard let c = found.first(where: { $0.name.lowercased() == allocator.lowercased() }) else {
            let why = skipped.first { $0.name.lowercased() == allocator.lowercased() }?.reason
                ?? "known: \(found.map(\.name).joined(separator: ", "))"
            throw ValidationError("--allocator \(allocator) is not available (\(why))")
        }
        let ns = dispatch(c, HotPair(ops: ops))
        print("\(c.name) \(ops) pairs \(ns) ns")
    }
}
