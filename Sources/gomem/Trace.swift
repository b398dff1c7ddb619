// gomem trace: replay Go's slice and map growth with the real containers and
// print it in the line formats of Go's reference traces (Tests/GomemTests/
// Resources/{slices,maps}.txt, recorded from go1.19.8), so the output can be
// diffed against Go's.
import ArgumentParser
import GoCollections
import GoHeap

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Print how a slice or a map grows, line for line in the format of Go's reference traces, so diff shows any difference from Go.",
        discussion: """
            Each output line is one fact: "the capacity became 1280 when the slice \
            held 1024 elements", "after the 6657th key the map had 2^11 buckets". \
            `gomem help trace slice` and `gomem help trace map` describe the lines.

            Go's reference traces were recorded by running small Go programs on \
            go1.19.8 linux/amd64 (Debian's golang-1.19-go). They are in \
            Tests/GomemTests/Resources/slices.txt and maps.txt; \
            scripts/oracle/gen-slices.sh records slice traces for more element \
            sizes in the same format (it needs golang-1.19-go), and \
            scripts/oracle/gen-maps.sh records the bytes make(map) allocates.
            """,
        subcommands: [SliceTrace.self, MapTrace.self])
}

struct SliceTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slice",
        abstract: "Capacities of a slice of ELEM-SIZE-byte elements as it grows (Go's slices.txt format).",
        discussion: """
            Every line starts with the element size, then what was done, then \
            numbers:
              SIZE one LEN OLD NEW    appending one element at a time to an empty
                                      slice: when it held LEN elements, the next
                                      append raised the capacity from OLD to NEW
                                      (a line only when the capacity changed; up
                                      to --max-bytes of elements)
              SIZE bulk0 K 0 NEW      appending K elements at once to an empty
                                      slice gives capacity NEW
              SIZE make1 N N NEW      make([]T, N), then one append: capacity NEW
              SIZE makek N+K N NEW    make([]T, N), then K elements appended at
                                      once: capacity NEW

            slices.txt has Go's lines for the element sizes 0 1 2 4 8 12 16 24 32 \
            48 64 96 128 256 1000 4096 33000; for these the output is identical:
              diff <(gomem trace slice --elem-size 24) \\
                   <(grep '^24 ' Tests/GomemTests/Resources/slices.txt)
            For other sizes, scripts/oracle/gen-slices.sh records Go's lines.
            """)

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
        abstract: "How IncrementalMap grows as keys are inserted, for map[int64]int64 and map[string]int (Go's maps.txt format).",
        discussion: """
            KV is i64:i64 (map[int64]int64, keys 1, 2, 3...) or str:int \
            (map[string]int, keys "key-1", "key-2"...). The lines, for each KV:
              grow KV COUNT B     after the COUNT-th distinct key the map had 2^B
                                  buckets
              maxdrain KV N       the most inserts any growth took until every
                                  entry had left the old buckets (a map grows
                                  incrementally: each insert moves a little)
              hint KV HINT B      make(map[K]V, HINT) starts with 2^B buckets

            With the default --inserts, the output differs from Go's maps.txt \
            only in the two maxdrain lines:
              gomem trace map | diff - Tests/GomemTests/Resources/maps.txt
            Every grow and hint line is exact. maxdrain changes from run to run, \
            in Go as here: an insert moves out the old bucket its key hashes to, \
            and the hash seed is random (Go draws one for every map, Swift's \
            Hasher one for every process). Expect about 69% of the old bucket \
            count of the last growth (maps.txt: 181553 of 262144 for i64:i64, \
            90836 of 131072 for str:int). SWIFT_DETERMINISTIC_HASHING=1 makes \
            gomem's own maxdrain repeat exactly; no setting makes Go's repeat.
            """)

    /// Keys inserted by default. maps.txt's last grow lines are at 1703937
    /// keys (i64:i64) and 851969 (str:int), and its maxdrain lines include
    /// the evacuation those growths start (at most 262144 and 131072 inserts):
    /// these counts reach that far and no further grow line.
    static let defaultInsertsI64 = 2_000_000
    static let defaultInsertsStr = 1_000_000

    @Option(help: ArgumentHelp("Distinct keys to insert, 1 to 10000000 (default: 2000000 for i64:i64 and 1000000 for str:int, which give the grow lines of Go's maps.txt).", valueName: "inserts"))
    var inserts: String?

    @Option(help: "Key and value types: i64:i64, str:int or all.")
    var kv: String = "all"

    func parsedInserts() throws -> Int? {
        try inserts.map { try NumberArgument.parse($0, name: "--inserts", range: 1...Limits.mapMaxInserts, why: Limits.mapMaxInsertsWhy) }
    }

    func validate() throws {
        _ = try parsedInserts()
        if !["i64:i64", "str:int", "all"].contains(kv) {
            throw ValidationError("--kv must be i64:i64, str:int or all; got '\(NumberArgument.shown(kv))'")
        }
    }

    func run() throws {
        let n = try parsedInserts()
        if kv == "all" || kv == "i64:i64" { trace("i64:i64", n ?? Self.defaultInsertsI64, Int64.self) { Int64($0) } }
        if kv == "all" || kv == "str:int" { trace("str:int", n ?? Self.defaultInsertsStr, String.self) { "key-\($0)" } }
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
