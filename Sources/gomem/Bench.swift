// gomem bench: every workload, every allocator, interleaved repetitions.
import ArgumentParser
import Foundation
import GoHeap

/// Resident memory figures from /proc/self.
enum ProcMemory {
    /// Current resident set size in bytes.
    static func resident() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let f = s.split(separator: " ")
        return f.count > 1 ? (Int(f[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }
    /// Resets the peak-RSS high-water mark (Linux >= 4.0).
    static func resetPeak() {
        if let fd = fopen("/proc/self/clear_refs", "w") { fputs("5", fd); fclose(fd) }
    }
    /// Peak RSS (VmHWM) in bytes.
    static func peak() -> Int {
        guard let f = fopen("/proc/self/status", "r") else { return 0 }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, 256, f) != nil {
            let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if s.hasPrefix("VmHWM:") { return (Int(s.split(separator: " ")[1]) ?? 0) * 1024 }
        }
        return 0
    }
}

/// What one run of a contender measured: the timed operations' total, and
/// workload-specific extra figures (e.g. lookup time, worst latency).
struct RunResult {
    var nanos: UInt64
    var extras: [String: Double] = [:]
}

/// One contender in a workload: an allocator, or a container.
struct Contender {
    let name: String
    /// Runs the workload once.
    let run: () -> RunResult
    /// Called before each run (e.g. to return retained memory so peak RSS is fair).
    var prepare: () -> Void = {}
    /// Measures peak RSS in a fresh process (allocator workloads); nil: the
    /// largest rise in this process over the timed runs (containers).
    var peakRSSInChild: (() -> Int?)? = nil
}

/// A workload gomem bench knows.
struct WorkloadSpec {
    let id: Int
    let key: String
    let title: String
    let ops: Int  // operations per run (allocator workloads: one allocation and its free)
    let unit: String  // what one op is, for the table
    let baseline: String
    let contenders: [Contender]
    /// Extra columns (keys of RunResult.extras) and their headers, in order.
    var extraColumns: [(key: String, header: String)] = []

    static func all(quick: Bool, heap: Heap, allocators: [Competitor]) -> [WorkloadSpec] {
        let q = quick
        let threads = AllocatorWorkload.threads
        let z = AllocatorWorkload.Sizes(quick: q)
        let (hot, batch, pc, lr, ls, large, huge) = (z.hot, z.batch, z.pc, z.lr, z.ls, z.large, z.huge)
        let appends = q ? 10_000_000 : 100_000_000
        let mapKeys = q ? 1_000_000 : 10_000_000
        func on(_ key: String) -> [Contender] {
            let w = AllocatorWorkload.body(key: key, quick: q)!
            return allocators.map { c in
                Contender(name: c.name, run: { RunResult(nanos: dispatch(c, w)) },
                          peakRSSInChild: { AllocatorWorkload.peakRSSInChild(allocator: c.name, key: key, quick: q) })
            }
        }
        return [
            WorkloadSpec(id: 1, key: "hot-pair", title: "hot pair: allocate + free, sizes cycling 16-512 B",
                         ops: hot, unit: "alloc+free", baseline: "GoHeap", contenders: on("hot-pair")),
            WorkloadSpec(id: 2, key: "batch", title: "batch: \(batch) random 8-263 B allocations, freed in shuffled order",
                         ops: batch, unit: "alloc+free", baseline: "GoHeap", contenders: on("batch")),
            WorkloadSpec(id: 3, key: "producer-consumer", title: "producer/consumer: 2 threads, every free cross-thread, 16-256 B",
                         ops: pc, unit: "alloc+free", baseline: "GoHeap", contenders: on("producer-consumer")),
            WorkloadSpec(id: 4, key: "larson", title: "larson-style: \(threads) threads, 16-1024 B, blocks handed between threads",
                         ops: threads * lr * ls, unit: "alloc+free", baseline: "GoHeap", contenders: on("larson")),
            WorkloadSpec(id: 5, key: "large", title: "large: 64 KiB - 1 MiB, 16 live, first and last byte touched",
                         ops: large, unit: "alloc+free", baseline: "GoHeap", contenders: on("large")),
            WorkloadSpec(id: 6, key: "huge", title: "huge: 2-16 MiB, 4 live, every page touched",
                         ops: huge, unit: "alloc+free", baseline: "GoHeap", contenders: on("huge")),
            WorkloadSpec(id: 7, key: "slice-append", title: "\(appends / 1_000_000) M Int appends from empty: GrowableArray (Go's growth, GoHeap) vs Swift Array",
                         ops: appends, unit: "append", baseline: "GrowableArray",
                         contenders: ContainerWorkloads.appendContenders(count: appends, heap: heap)),
            WorkloadSpec(id: 8, key: "map", title: "\(mapKeys / 1_000_000) M random Int keys: IncrementalMap (Go's hmap, GoHeap) vs Swift Dictionary; ns/op is inserts",
                         ops: mapKeys, unit: "insert", baseline: "IncrementalMap",
                         contenders: ContainerWorkloads.mapContenders(count: mapKeys, heap: heap),
                         extraColumns: [("lookup", "lookup ns/op"), ("delete", "delete ns/op"),
                                        ("p9999", "p99.99 insert ns"), ("worst", "worst insert us")]),
            WorkloadSpec(id: 9, key: "larson-8", title: "larson-style, oversubscribed: 8 threads on \(ProcessInfo.processInfo.activeProcessorCount) CPUs, 16-1024 B",
                         ops: 8 * lr * ls / 4, unit: "alloc+free", baseline: "GoHeap", contenders: on("larson-8")),
            WorkloadSpec(id: 10, key: "producer-consumer-8", title: "producer/consumer, oversubscribed: 4 pairs (8 threads) on \(ProcessInfo.processInfo.activeProcessorCount) CPUs, 16-256 B",
                         ops: pc, unit: "alloc+free", baseline: "GoHeap", contenders: on("producer-consumer-8")),
        ]
    }
}

extension WorkloadSpec {
    /// A rough guess of one run's time, for the progress line's estimate of
    /// the time left before anything is measured: ns/op averaged over the
    /// contenders of the README's quick run (workload 8: its inserts, lookups,
    /// deletes and timed inserts together). RunProgress rescales it by what
    /// this machine measures.
    var estimatedSecondsPerRun: Double {
        let nsPerOp: [Int: Double] = [1: 40, 2: 200, 3: 190, 4: 50, 5: 800, 6: 1_300_000, 7: 27, 8: 900, 9: 60, 10: 250]
        return Double(ops) * (nsPerOp[id] ?? 100) / 1e9
    }

    /// Numbers and names, for argument validation.
    static let keys: [(Int, String)] = [(1, "hot-pair"), (2, "batch"), (3, "producer-consumer"), (4, "larson"),
                                        (5, "large"), (6, "huge"), (7, "slice-append"), (8, "map"),
                                        (9, "larson-8"), (10, "producer-consumer-8")]
}

/// The allocator workloads (1-6, 9, 10) at gomem bench's sizes, by key:
/// the bench times them in one process, and runs each once more in a fresh
/// process (`gomem pairloop --bench-sized --peak-rss`) for its peak RSS.
enum AllocatorWorkload {
    static let threads = max(2, ProcessInfo.processInfo.activeProcessorCount)
    static let keys = ["hot-pair", "batch", "producer-consumer", "larson", "large", "huge", "larson-8", "producer-consumer-8"]

    /// Each workload's size: the only place it is written, so the loop a
    /// child runs and the ops count the bench divides by cannot drift apart.
    struct Sizes {
        let hot, batch, pc, lr, ls, large, huge: Int
        init(quick q: Bool) {
            hot = q ? 2_000_000 : 20_000_000
            batch = q ? 200_000 : 1_000_000
            pc = q ? 200_000 : 2_000_000
            (lr, ls) = q ? (20, 2_000) : (100, 5_000)
            large = q ? 2_000 : 20_000
            huge = q ? 100 : 600
        }
    }

    static func body(key: String, quick: Bool) -> (any WorkloadBody)? {
        let z = Sizes(quick: quick)
        switch key {
        case "hot-pair": return HotPair(ops: z.hot)
        case "batch": return Batch(count: z.batch)
        case "producer-consumer": return ProducerConsumer(count: z.pc)
        case "larson": return Larson(threads: threads, rounds: z.lr, slots: z.ls)
        case "large": return Sized.large(count: z.large)
        case "huge": return Sized.huge(count: z.huge)
        case "larson-8": return Larson(threads: 8, rounds: z.lr, slots: z.ls / 4)
        case "producer-consumer-8": return ProducerConsumer(count: z.pc / 4, pairs: 4)
        default: return nil
        }
    }

    /// Peak RSS in bytes that one run adds to a fresh gomem process using
    /// `allocator`, or nil (with a note on stderr) if the child failed. A
    /// fresh process, because in the bench's own process each allocator keeps
    /// what earlier workloads made resident, and a delta from there says
    /// more about the order of workloads than about the allocator.
    static func peakRSSInChild(allocator: String, key: String, quick: Bool) -> Int? {
        let args = ["pairloop", "--allocator", allocator.lowercased(), "--workload", key, "--bench-sized", "--peak-rss"]
            + (quick ? ["--quick"] : [])
        let r = ChildRun.gomem(args, timeoutSeconds: 900)
        let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("peak RSS +") }
        guard r.launchError == nil, !r.timedOut, let line, let bytes = Int(line.split(separator: " ").last ?? "") else {
            FileHandle.standardError.write(Data("gomem bench: peak RSS of \(allocator) on \(key) in a child failed: \(r.launchError ?? (r.timedOut ? "timed out" : r.stderr.suffix(300).description))\n".utf8))
            return nil
        }
        return bytes
    }
}

/// A workload as a value with a generic entry point, so that `dispatch` can
/// call it with each competitor's concrete type and the loop is specialised.
protocol WorkloadBody {
    func run<A: BenchAllocator>(_ a: A) -> UInt64
}

struct HotPair: WorkloadBody {
    let ops: Int
    func run<A: BenchAllocator>(_ a: A) -> UInt64 { Workloads.hotPair(a, ops: ops) }
}
struct Batch: WorkloadBody {
    let count: Int
    func run<A: BenchAllocator>(_ a: A) -> UInt64 { Workloads.batch(a, count: count) }
}
struct ProducerConsumer: WorkloadBody {
    let count: Int
    var pairs = 1
    func run<A: BenchAllocator>(_ a: A) -> UInt64 { Workloads.producerConsumer(a, count: count, pairs: pairs) }
}
struct Larson: WorkloadBody {
    let threads: Int, rounds: Int, slots: Int
    func run<A: BenchAllocator>(_ a: A) -> UInt64 { Workloads.larson(a, threads: threads, rounds: rounds, slots: slots) }
}
struct Sized: WorkloadBody {
    let count: Int, minBytes: Int, maxBytes: Int, live: Int, touchAll: Bool
    /// Workload 5's blocks: 64 KiB - 1 MiB, 16 live, first and last byte touched.
    static func large(count: Int) -> Sized {
        Sized(count: count, minBytes: 64 << 10, maxBytes: 1 << 20, live: 16, touchAll: false)
    }
    /// Workload 6's blocks: 2-16 MiB, 4 live, every page touched.
    static func huge(count: Int) -> Sized {
        Sized(count: count, minBytes: 2 << 20, maxBytes: 16 << 20, live: 4, touchAll: true)
    }
    func run<A: BenchAllocator>(_ a: A) -> UInt64 {
        Workloads.sized(a, count: count, minBytes: minBytes, maxBytes: maxBytes, live: live, touchAll: touchAll)
    }
}

func dispatch<W: WorkloadBody>(_ c: Competitor, _ w: W) -> UInt64 {
    switch c {
    case .goheap(let a): return w.run(a)
    case .glibc(let a): return w.run(a)
    case .dl(let a): return w.run(a)
    case .jemalloc(let a): return w.run(a)
    }
}

struct Measurement: Codable {
    let allocator: String
    let nsPerOp: Double  // median over repetitions
    let minNsPerOp: Double
    let maxNsPerOp: Double
    let peakRSSDeltaBytes: Int
    let ratioToGoHeap: Double  // this contender's time / the baseline's (GoHeap or its container): > 1 means the baseline is faster
    var extras: [String: Double]? = nil
    /// Every repetition's ns/op, in the order they ran: what the median hides
    /// (a cold first run, a noisy neighbour on a shared machine).
    var nsPerOpByRepetition: [Double]? = nil
}

struct WorkloadReport: Codable {
    let id: Int
    let key: String
    let title: String
    let opsPerRun: Int
    let unit: String
    let baseline: String
    let repetitions: Int
    let results: [Measurement]
    var extraColumns: [String] = []
    var extraHeaders: [String] = []
}

struct BenchReport: Codable {
    let date: String
    let machine: String
    let skipped: [String: String]
    let workloads: [WorkloadReport]
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Compare GoHeap with glibc, jemalloc, mimalloc and tcmalloc on allocation workloads, in one process, or (--programs) as the C allocator of real programs.",
        discussion: """
            --programs runs real programs under each allocator instead, through \
            LD_PRELOAD (glibc: nothing preloaded; GoHeap: libgoheap-malloc.so): \
            \(ProgramSetup.keys.joined(separator: ", ")). Every round runs each \
            allocator once, in rotating order; the tables give the median wall \
            time, CPU time (user + sys, from wait4) and peak RSS (ru_maxrss) and \
            their ratios to GoHeap's. --quick: smaller inputs and 2 rounds. A \
            program that is not installed is reported as skipped.
            """)

    @Flag(help: "A run that finishes in under a minute (smaller workloads, 3 repetitions).")
    var quick = false

    @Flag(help: "Print the results as JSON on stdout instead of tables.")
    var json = false

    @Option(name: .customLong("workload"), parsing: .upToNextOption,
            help: "Workloads to run, by number or name (hot-pair, batch, producer-consumer, larson, large, huge, slice-append, map, larson-8, producer-consumer-8). Default: all.")
    var workloads: [String] = []

    @Option(help: ArgumentHelp("Repetitions per allocator (interleaved), 1 to \(Limits.maxRepetitions). Default: 5, or 3 with --quick.", valueName: "repetitions"))
    var repetitions: String?

    @Option(help: ArgumentHelp("Another name for --repetitions: interleaved rounds, 1 to \(Limits.maxRepetitions). Default: 5, or 3 with --quick (2 with --programs --quick).", valueName: "rounds"))
    var rounds: String?

    @Option(help: ArgumentHelp("Also draw the time ratios as an SVG bar chart in this file.", valueName: "file.svg"))
    var svg: String?

    @Flag(help: "Run real programs under each allocator through LD_PRELOAD instead of the in-process workloads (described above).")
    var programs = false

    @Option(help: ArgumentHelp("With --programs: the programs to run, comma-separated, from \(ProgramSetup.keys.joined(separator: ", ")). Default: all.", valueName: "a,b"))
    var only: [String] = []

    @Option(help: ArgumentHelp("With --programs: GoHeap's C allocator library. Default: the package's .build/malloc/libgoheap-malloc.so (built by scripts/build-malloc.sh when missing or stale), else one next to gomem.", valueName: "path"))
    var goheapMalloc: String?

    func parsedRepetitions() throws -> Int? {
        if repetitions != nil && rounds != nil {
            throw ValidationError("--rounds and --repetitions are two names for one option; give only one")
        }
        let name = rounds != nil ? "--rounds" : "--repetitions"
        return try (rounds ?? repetitions).map { try NumberArgument.parse($0, name: name, range: 1...Limits.maxRepetitions, why: Limits.maxRepetitionsWhy) }
    }

    /// --only's programs, in the order the user gave them.
    func parsedPrograms() throws -> [String] {
        let known = ProgramSetup.keys
        var chosen: [String] = []
        for word in only.flatMap({ $0.split(separator: ",", omittingEmptySubsequences: false) }) {
            let name = word.trimmingCharacters(in: .whitespaces)
            guard known.contains(name) else {
                throw ValidationError(name.isEmpty
                    ? "--only must list programs separated by commas, from \(known.joined(separator: ", ")); got an empty name in '\(NumberArgument.shown(only.joined(separator: ",")))'"
                    : "--only must list programs from \(known.joined(separator: ", ")); got '\(NumberArgument.shown(name))'")
            }
            if !chosen.contains(name) { chosen.append(name) }
        }
        return chosen
    }

    func validate() throws {
        _ = try parsedRepetitions()
        if let svg { try OutputFile.check(svg, option: "--svg") }
        if programs {
            if !workloads.isEmpty { throw ValidationError("--workload chooses the in-process workloads, not programs; with --programs, choose programs with --only") }
            _ = try parsedPrograms()
            if let goheapMalloc { try GoHeapMallocLibrary.check(goheapMalloc) }
            return
        }
        if !only.isEmpty { throw ValidationError("--only goes with --programs; choose in-process workloads with --workload") }
        if goheapMalloc != nil { throw ValidationError("--goheap-malloc goes with --programs (the in-process workloads call GoHeap directly)") }
        let known = WorkloadSpec.keys
        let choices = known.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
        for w in workloads where !known.contains(where: { String($0.0) == w || $0.1 == w }) {
            if let first = w.first, first.isNumber || first == "-" || first == NumberArgument.minusMark || first == "+" {
                _ = try NumberArgument.parse(w, name: "--workload", range: 1...known.count, why: "or a name: \(known.map(\.1).joined(separator: ", "))")
            }
            throw ValidationError("--workload must be a workload number or name; got '\(NumberArgument.shown(w))'; choose from \(choices)")
        }
    }

    func run() throws {
        if programs {
            // No re-exec: the anchors are preloaded into the programs, never loaded here.
            try ProgramBench(quick: quick, rounds: try parsedRepetitions() ?? (quick ? 2 : 5), only: try parsedPrograms(),
                             goheapMalloc: goheapMalloc, json: json, svg: svg).run()
            return
        }
        let reps = try parsedRepetitions() ?? (quick ? 3 : 5)
        reexecWithRoomForStaticTLS()
        let heap = Heap.shared
        let (allocators, skipped) = loadCompetitors(heap: heap)
        var specs = WorkloadSpec.all(quick: quick, heap: heap, allocators: allocators)
        if !workloads.isEmpty { specs = specs.filter { s in workloads.contains { $0 == String(s.id) || $0 == s.key } } }
        var reports: [WorkloadReport] = []
        let progress = RunProgress(plan: specs.map { s in
            (runs: s.contenders.count * reps + s.contenders.filter { $0.peakRSSInChild != nil }.count,
             seconds: s.estimatedSecondsPerRun)
        })
        for (index, spec) in specs.enumerated() {
            var times = [String: [Double]]()
            var extras = [String: [String: [Double]]]()
            var peaks = [String: Int]()
            let cs = spec.contenders
            for rep in 0..<reps {
                // Interleave: every contender once per repetition, in rotating order,
                // so drift on a shared machine hits all of them alike.
                for k in cs.indices {
                    let c = cs[(k + rep) % cs.count]
                    progress.start("[workload \(spec.id)] \(spec.key) rep \(rep + 1)/\(reps): \(c.name)")
                    c.prepare()
                    // Peak RSS here only for containers; allocators' comes from a child below.
                    let measuresHere = c.peakRSSInChild == nil
                    let before = measuresHere ? ProcMemory.resident() : 0
                    if measuresHere { ProcMemory.resetPeak() }
                    var r = c.run()
                    // A contender in another process (Go) reports its own peak.
                    let ownPeak = r.extras.removeValue(forKey: "peakRSS").map { Int($0) }
                    if measuresHere {
                        peaks[c.name] = max(peaks[c.name] ?? 0, ownPeak ?? max(0, ProcMemory.peak() - before))
                    }
                    times[c.name, default: []].append(Double(r.nanos) / Double(spec.ops))
                    for (k, v) in r.extras { extras[c.name, default: [:]][k, default: []].append(v) }
                    progress.finish(workload: index)
                }
            }
            // Peak RSS of an allocator: one more, untimed run in a fresh
            // process (see AllocatorWorkload.peakRSSInChild). A container's is
            // the largest over its timed runs, each after `prepare` returned
            // both allocators' free memory to the OS.
            for c in cs {
                guard let child = c.peakRSSInChild else { continue }
                progress.start("[workload \(spec.id)] \(spec.key) peak RSS in a fresh process: \(c.name)")
                peaks[c.name] = child()
                progress.finish(workload: index)
            }
            let median: ([Double]) -> Double = { v in let s = v.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
            let base = median(times[spec.baseline]!)
            let results = cs.map { c -> Measurement in
                let t = times[c.name]!
                // Extras are medians over repetitions, except worst cases: the worst seen.
                let ex = (extras[c.name] ?? [:]).mapValues { v in v }.reduce(into: [String: Double]()) { acc, kv in
                    acc[kv.key] = kv.key.hasPrefix("worst") ? kv.value.max()! : median(kv.value)
                }
                return Measurement(allocator: c.name, nsPerOp: median(t), minNsPerOp: t.min()!, maxNsPerOp: t.max()!,
                                   peakRSSDeltaBytes: peaks[c.name] ?? -1, ratioToGoHeap: median(t) / base,
                                   extras: ex.isEmpty ? nil : ex, nsPerOpByRepetition: t)
            }
            reports.append(WorkloadReport(id: spec.id, key: spec.key, title: spec.title, opsPerRun: spec.ops,
                                          unit: spec.unit, baseline: spec.baseline, repetitions: reps, results: results,
                                          extraColumns: spec.extraColumns.map(\.key), extraHeaders: spec.extraColumns.map(\.header)))
            if !json { printTable(reports.last!) }
        }
        progress.done()
        let report = BenchReport(date: ISO8601DateFormatter().string(from: Date()), machine: machineDescription(),
                                 skipped: Dictionary(uniqueKeysWithValues: skipped.map { ($0.name, $0.reason) }),
                                 workloads: reports)
        if let svg { try OutputFile.write(BenchChart.svg(report), to: svg) }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            for s in skipped { print("skipped \(s.name): \(s.reason)") }
            if case .failure(let why) = GoRunner.binary, specs.contains(where: { $0.id == 7 || $0.id == 8 }) {
                print("skipped Go rows: \(why.reason)")
            } else if specs.contains(where: { $0.id == 7 || $0.id == 8 }) {
                print("Go rows: the same loops in Benchmarks/go/bench.go, run as a child process (its own peak RSS)")
            }
            print("peak RSS +MiB = allocator workloads: what one more, untimed run adds to the peak resident set of a fresh gomem process using that allocator alone (gomem pairloop --bench-sized --peak-rss); containers: the largest rise over the timed runs, each after both allocators returned their free memory to the OS")
            print("x baseline = contender's median time / the baseline's (GoHeap, or the GoHeap container); > 1: the baseline is faster. \(machineDescription())")
            if let svg { print("bar chart of the ratios: \(svg)") }
        }
    }

    func printTable(_ r: WorkloadReport) {
        print("\n## \(r.id). \(r.title)")
        print("   \(r.opsPerRun) ops (\(r.unit)) per run, median of \(r.repetitions) interleaved repetitions")
        let header = ["contender", "ns/op", "min-max ns/op"] + r.extraHeaders + ["peak RSS +MiB", "x \(r.baseline) time"]
        var rows = [header]
        for m in r.results {
            let extra = r.extraColumns.map { k in m.extras?[k].map { String(format: "%.2f", $0) } ?? "-" }
            rows.append([m.allocator, String(format: "%.2f", m.nsPerOp),
                         String(format: "%.2f-%.2f", m.minNsPerOp, m.maxNsPerOp)] + extra +
                        [String(format: "%.1f", Double(m.peakRSSDeltaBytes) / 1048576),
                         String(format: "%.2f", m.ratioToGoHeap)])
        }
        let widths = (0..<header.count).map { c in rows.map { $0[c].count }.max()! }
        for (i, row) in rows.enumerated() {
            let cells = row.enumerated().map { c, s in c == 0 ? s.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                                                             : String(repeating: " ", count: widths[c] - s.count) + s }
            print("| " + cells.joined(separator: " | ") + " |")
            if i == 0 { print("|" + widths.enumerated().map { c, w in String(repeating: "-", count: w + 1) + (c == 0 ? "-" : ":") }.joined(separator: "|") + "|") }
        }
    }
}

/// Where a long run is, on stderr. On a terminal one line is rewritten in
/// place (\r and an erase-line escape); anywhere else (a pipe, a log file)
/// every step is a plain line of its own, with no control characters.
/// Each line ends with an estimate of the time left for the whole run.
final class RunProgress {
    /// Runs per workload, and a prior guess of one run's seconds.
    let plan: [(runs: Int, seconds: Double)]
    let interactive = isatty(STDERR_FILENO) == 1
    private var doneRuns: [Int]
    private var spent: [Double]
    private var runStart: UInt64 = 0
    private let start = monotonicNanos()

    init(plan: [(runs: Int, seconds: Double)]) {
        self.plan = plan
        doneRuns = plan.map { _ in 0 }
        spent = plan.map { _ in 0 }
    }

    /// Seconds left: the workloads under way at their own measured pace, the
    /// others at their prior guess scaled by how this machine compares with it.
    var secondsLeft: Double {
        var measured = 0.0, guessed = 0.0
        for (w, p) in plan.enumerated() where doneRuns[w] > 0 {
            measured += spent[w]
            guessed += Double(doneRuns[w]) * p.seconds
        }
        let scale = guessed > 0 ? measured / guessed : 1
        var left = 0.0
        for (w, p) in plan.enumerated() {
            let remaining = Double(p.runs - doneRuns[w])
            left += doneRuns[w] > 0 ? remaining * spent[w] / Double(doneRuns[w]) : remaining * p.seconds * scale
        }
        return left
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        if t < 60 { return "\(max(t, 1)) s" }
        if t < 3600 { return "\(t / 60) min \(t % 60) s" }
        return "\(t / 3600) h \(t % 3600 / 60) min"
    }

    func start(_ what: String) {
        runStart = monotonicNanos()
        show("\(what) (about \(Self.duration(secondsLeft)) left)")
    }

    func finish(workload: Int) {
        spent[workload] += Double(monotonicNanos() - runStart) / 1e9
        doneRuns[workload] += 1
    }

    func done() {
        let total = Self.duration(Double(monotonicNanos() - start) / 1e9)
        if interactive {
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        } else {
            show("done in \(total)")
        }
    }

    private func show(_ s: String) {
        let line = interactive ? "\r\u{1B}[K" + s : "gomem bench: " + s + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

func machineDescription() -> String {
    var u = utsname()
    uname(&u)
    let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    return "\(ProcessInfo.processInfo.activeProcessorCount) CPUs, Linux \(release)"
}

/// jemalloc's shared library uses initial-exec TLS, so a dlopen after start-up
/// fails with "cannot allocate memory in static TLS block" unless glibc
/// reserved room for it. Re-executing once with the glibc tunable that sets
/// that room is the least intrusive fix: nothing is preloaded, and glibc's
/// malloc stays the process's malloc.
func reexecWithRoomForStaticTLS() {
    let key = "GLIBC_TUNABLES"
    let tunable = "glibc.rtld.optional_static_tls=65536"
    let current = ProcessInfo.processInfo.environment[key] ?? ""
    if current.contains("optional_static_tls") { return }
    setenv(key, current.isEmpty ? tunable : current + ":" + tunable, 1)
    var argv = CommandLine.arguments.map { strdup($0) }
    argv.append(nil)
    execv("/proc/self/exe", argv)
    // exec failed: carry on; jemalloc will be reported as skipped.
}
