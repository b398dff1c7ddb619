// gomem trace: replay Go's slice and map growth with the real containers and
// print it in the line formats of ../shared/oracle/go1.19/{slices,maps}.txt,
// so the output can be diffed against Go's.
import ArgumentParser
import GoCollections
import GoHeap

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Print slice or map growth in the oracle's line formats (diff it against Go's).",
        subcommands: [SliceTrace.self, MapTrace.self])
}

struct SliceTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slice",
        abstract: "Capacity trajectories of a slice of ELEM-SIZE-byte elements: one, bulk0, make1, makek lines.")

    @Option(help: ArgumentHelp("Element size in bytes: 0 to 1073741824 (1 GiB).", valueName: "elem-size"))
    var elemSize: String

    @Option(help: ArgumentHelp("Append one at a time until the slice holds this many bytes: 1 to 1073741824 (1 GiB), which the trace really allocates (elements of size 0: 100 appends).", valueName: "max-bytes"))
    var maxBytes: String = String(64 << 20)

    func parsed() throws -> (elementSize: Int, maxBytes: Int) {
        (try NumberArgument.parse(elemSize, name: "--elem-size", range: 0...Limits.traceMaxElementSize, why: Limits.traceMaxElementSizeWhy),
         try NumberArgument.parse(maxBytes, name: "--max-bytes", range: 1...Limits.traceMaxBytes, why: Limits.traceMaxBytesWhy))
    }

    func validate() throws { _ = try parsed() }

    /// Cases that would allocate more than this are decided by the growth
    /// core alone (the same decision the container makes) instead of really
    /// allocating gigabytes.
    static let allocationBudget = 1 << 30

    func run() throws {
        let (size, maxBytes) = try parsed()
        for line in Self.lines(elementSize: size, maxBytes: maxBytes) { print(line) }
    }

    static func lines(elementSize size: Int, maxBytes: Int) -> [String] {
        var out: [String] = []
        let r = RawGrowableArray(elementSize: size)
        let limit = size == 0 ? 100 : maxBytes / size
        while r.count < limit {
            let room = min(r.capacity - r.count, limit - r.count)
            if room > 0 { r.append(count: room); continue }
            let len = r.count
            if let e = r.append(count: 1) { out.append("\(size) one \(len) \(e.oldCapacity) \(e.newCapacity)") }
        }
        for k in [1, 3, 5, 7, 9, 13, 17, 100, 255, 256, 257, 511, 1000, 1023, 1024, 1025, 4097, 10000] {
            out.append("\(size) bulk0 \(k) 0 \(appendCapacity(size: size, length: 0, capacity: 0, adding: k))")
        }
        for n in [1, 5, 100, 255, 256, 257, 1000, 1024, 1025, 3000, 100000] {
            out.append("\(size) make1 \(n) \(n) \(appendCapacity(size: size, length: n, capacity: n, adding: 1))")
        }
        for n in [10, 300, 5000] {
            for k in [1, 2, 50, 400, 9000] {
                out.append("\(size) makek \(n)+\(k) \(n) \(appendCapacity(size: size, length: n, capacity: n, adding: k))")
            }
        }
        return out
    }

    /// Capacity after `append(make([]T, length, capacity), k elements...)`.
    static func appendCapacity(size: Int, length: Int, capacity: Int, adding k: Int) -> Int {
        if (capacity + k) * size > allocationBudget {
            return length + k > capacity
                ? SliceGrowth.grow(oldCapacity: capacity, needed: length + k, elementSize: size).capacity : capacity
        }
        let s = capacity == 0 ? RawGrowableArray(elementSize: size)
                              : RawGrowableArray(elementSize: size, length: length, capacity: capacity)
        s.append(count: k)
        return s.capacity
    }
}

struct MapTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "Map growth of IncrementalMap in maps.txt's format: grow, hint and maxdrain lines for i64:i64 and str:int.")

    @Option(help: ArgumentHelp("Distinct keys to insert, 1 to 10000000.", valueName: "inserts"))
    var inserts: String = "3000000"

    @Option(help: "Key and value types: i64:i64, str:int or all.")
    var kv: String = "all"

    func parsedInserts() throws -> Int {
        try NumberArgument.parse(inserts, name: "--inserts", range: 1...Limits.mapMaxInserts, why: Limits.mapMaxInsertsWhy)
    }

    func validate() throws {
        _ = try parsedInserts()
        if !["i64:i64", "str:int", "all"].contains(kv) {
            throw ValidationError("--kv must be i64:i64, str:int or all; got '\(NumberArgument.shown(kv))'")
        }
    }

    func run() throws {
        let n = try parsedInserts()
        if kv == "all" || kv == "i64:i64" { trace("i64:i64", n, Int64.self) { Int64($0) } }
        if kv == "all" || kv == "str:int" { trace("str:int", n, String.self) { "key-\($0)" } }
    }

    func trace<K: Hashable>(_ name: String, _ inserts: Int, _: K.Type, _ key: (Int) -> K) {
        var m = IncrementalMap<K, Int>()
        var b = 0
        for i in 1...inserts {
            m[key(i)] = i
            let nb = m.debugState.bucketShift
            if nb != b { print("grow \(name) \(i) \(nb)") }
            b = nb
        }
        print("maxdrain \(name) \(m.growthStatistics.maxDrainInserts)")
        for hint in [0, 1, 8, 9, 13, 14, 26, 27, 52, 53, 100, 1000, 6656, 6657, 100000, 1048576] {
            print("hint \(name) \(hint) \(IncrementalMap<K, Int>(minimumCapacity: hint).debugState.bucketShift)")
        }
    }
}
