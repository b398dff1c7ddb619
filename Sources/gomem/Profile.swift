// `gomem profile WORKLOAD`: one run of a gomem bench workload on a fresh
// GoHeap heap with heap profiling on, the profile written for go tool pprof.
// It shows what a profile of a known program looks like (which frames are
// allocation sites, how sampled counts are scaled) without writing one.
import ArgumentParser
import Foundation
import GoHeap

struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Run one gomem bench workload on GoHeap with heap profiling on and write the profile for go tool pprof.",
        discussion: """
            The profile is pprof's gzipped profile.proto, shaped like a Go heap \
            profile: alloc_objects, alloc_space, inuse_objects and inuse_space, \
            scaled by the sampling probability as Go scales them. Every workload \
            frees what it allocates, so the in-use values end at 0; look at what \
            was allocated:

              go tool pprof -sample_index=alloc_space -top heap.pb.gz
            """)

    @Argument(help: ArgumentHelp("The workload: a number 1-\(WorkloadSpec.keys.count) or a name (\(WorkloadSpec.keys.map(\.1).joined(separator: ", "))). Workloads 7 and 8 profile the GoHeap container.", valueName: "workload"))
    var workload: String

    @Option(help: ArgumentHelp("Bytes allocated per sample on average, 1 (every allocation) to 1073741824. Default: 524288, Go's MemProfileRate.", valueName: "bytes"))
    var rate: String?

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("The profile file to write.", valueName: "file.pb.gz"))
    var output: String = "heap.pb.gz"

    @Flag(help: "The workload's --quick size (as gomem bench --quick).")
    var quick = false

    func parsedRate() throws -> Int {
        guard let rate else { return Heap.defaultHeapProfileRate }
        return try NumberArgument.parse(rate, name: "--rate", range: 1...(1 << 30),
                                        why: "1 samples every allocation; past 1 GiB almost nothing is sampled")
    }

    func workloadID() throws -> Int {
        if let k = WorkloadSpec.keys.first(where: { $0.1 == workload }) { return k.0 }
        if workload.first?.isNumber == true || workload.first == NumberArgument.minusMark {
            return try NumberArgument.parse(workload, name: "workload", range: 1...WorkloadSpec.keys.count,
                                            why: "or a name: \(WorkloadSpec.keys.map(\.1).joined(separator: ", "))")
        }
        throw ValidationError("workload must be a workload number or name; got '\(NumberArgument.shown(workload))'; choose from \(WorkloadSpec.keys.map { "\($0.0) \($0.1)" }.joined(separator: ", "))")
    }

    func validate() throws {
        _ = try parsedRate()
        _ = try workloadID()
        try OutputFile.check(output, option: "-o/--output")
    }

    func run() throws {
        let rate = try parsedRate()
        let id = try workloadID()
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        let specs = WorkloadSpec.all(quick: quick, heap: heap, allocators: [.goheap(GoHeapAllocator(heap: heap))])
        guard let spec = specs.first(where: { $0.id == id }),
              let contender = spec.contenders.first(where: { $0.name == spec.baseline }) else {
            throw ValidationError("workload \(id) has no GoHeap contender")
        }
        heap.startHeapProfile(rate: rate)
        let result = contender.run()
        heap.stopHeapProfile()
        try heap.writeHeapProfile(to: output)
        let records = heap.heapProfileRecords()
        let samples = records.reduce(0) { $0 + $1.allocObjects }
        print("wrote \(output): workload \(spec.id) (\(spec.key)), \(spec.ops) ops in \(String(format: "%.2f", Double(result.nanos) / 1e9)) s, \(plural(samples, "sample")) at \(rate) bytes per sample, \(plural(records.count, "site"))")
        print("read it with: go tool pprof -sample_index=alloc_space -top \(output)")
    }
}
