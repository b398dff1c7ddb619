import Testing
import Foundation
import TestSupport

/// gomem run as a user runs it: the tests check shapes and formats, never timings.
@Suite struct GomemTests {
    static func gomem(_ args: String...) throws -> (status: Int32, signaled: Bool, output: String) {
        try TestHelper.runExecutable("gomem", args, stderrSeparately: true)
    }

    static func fixture(_ name: String) throws -> String {
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Resources") else {
            throw CocoaError(.fileNoSuchFile)
        }
        return try String(contentsOf: url, encoding: .utf8)
    }

    /// `gomem bench --quick` end to end: eight tables of the right shape, a row
    /// per contender (or a "skipped" line naming the package), baselines at 1.00.
    @Test func benchQuickTablesHaveTheirShape() throws {
        let r = try Self.gomem("bench", "--quick", "--repetitions", "1")
        #expect(r.status == 0 && !r.signaled, "\(r.output)")
        let lines = r.output.split(separator: "\n").map(String.init)
        let titles = lines.filter { $0.hasPrefix("## ") }
        #expect(titles.count == 8, "\(titles)")
        for (i, t) in titles.enumerated() { #expect(t.hasPrefix("## \(i + 1). ")) }
        // Every table: header, separator, rows with as many cells as the header.
        var tables: [[[String]]] = []
        var current: [[String]] = []
        for l in lines {
            if l.hasPrefix("|") {
                current.append(l.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) })
            } else if !current.isEmpty {
                tables.append(current)
                current = []
            }
        }
        if !current.isEmpty { tables.append(current) }
        #expect(tables.count == 8)
        for (i, t) in tables.enumerated() {
            let header = t[0]
            #expect(header.first == "contender" && header.contains("ns/op") && header.contains("peak RSS +MiB"))
            #expect(t[1].allSatisfy { $0.allSatisfy { $0 == "-" || $0 == ":" } }, "separator row of table \(i + 1)")
            for row in t.dropFirst(2) {
                #expect(row.count == header.count, "table \(i + 1) row \(row)")
                #expect(Double(row[1]) != nil, "ns/op is a number: \(row)")
            }
            #expect(t.dropFirst(2).first?.last == "1.00", "the baseline comes first at 1.00")
        }
        let allocatorRows = Set(tables[0].dropFirst(2).map { $0[0] })
        #expect(allocatorRows.isSuperset(of: ["GoHeap", "glibc"]))
        for name in ["jemalloc", "mimalloc", "tcmalloc"] {
            #expect(allocatorRows.contains(name) || r.output.contains("skipped \(name): "), "\(name) neither measured nor reported skipped")
        }
        let sliceRows = Set(tables[6].dropFirst(2).map { $0[0] })
        let mapRows = Set(tables[7].dropFirst(2).map { $0[0] })
        #expect(sliceRows.isSuperset(of: ["GrowableArray", "Swift Array"]))
        #expect(mapRows.isSuperset(of: ["IncrementalMap", "Swift Dictionary"]))
        // Real Go's rows when a Go toolchain is present, else a line saying why not.
        if r.output.contains("skipped Go rows: ") {
            #expect(!sliceRows.contains("Go slice") && !mapRows.contains("Go map"))
        } else {
            #expect(sliceRows.contains("Go slice") && mapRows.contains("Go map"))
        }
        #expect(tables[7][0].contains("worst insert us") && tables[7][0].contains("p99.99 insert ns"))
    }

    @Test func benchJSONIsMachineReadable() throws {
        let r = try Self.gomem("bench", "--quick", "--json", "--repetitions", "1", "--workload", "1", "slice-append")
        #expect(r.status == 0, "\(r.output)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any]
        let workloads = obj?["workloads"] as? [[String: Any]]
        #expect(workloads?.map { $0["key"] as? String } == ["hot-pair", "slice-append"])
        let results = workloads?.first?["results"] as? [[String: Any]]
        #expect(results?.first?["allocator"] as? String == "GoHeap")
        #expect(results?.allSatisfy { ($0["nsPerOp"] as? Double ?? -1) > 0 } == true)
    }

    @Test(arguments: [
        ["bench", "--workload", "nine"], ["bench", "--repetitions", "0"], ["explain"], ["explain", "-5"],
        ["explain", "64", "--alignment", "24"], ["explain", "--elem-size", "8"], ["trace", "slice"],
        ["trace", "slice", "--elem-size", "-1"], ["trace", "map", "--kv", "str:str"], ["no-such-command"],
        ["explain", "--elem-size", "1", "--count", "5", "--from", "9"], ["explain", "64", "--from", "2"],
    ])
    func badArgumentsExitWithUsage(args: [String]) throws {
        let r = try TestHelper.runExecutable("gomem", args)
        #expect(r.status == 64, "\(args): exit \(r.status)")
        #expect(r.output.contains("Usage:") || r.output.contains("USAGE:"), "\(args): \(r.output)")
        #expect(r.output.contains("Error:"), "\(args): \(r.output)")
    }

    /// `gomem trace slice` prints exactly Go's lines for every size in slices.txt.
    @Test func traceSliceEqualsTheOracle() throws {
        let oracle = try Self.fixture("slices.txt").split(separator: "\n").map(String.init)
        let sizes = Array(Set(oracle.map { Int($0.split(separator: " ")[0])! })).sorted()
        #expect(sizes.count == 17)
        for size in sizes {
            let r = try Self.gomem("trace", "slice", "--elem-size", "\(size)")
            #expect(r.status == 0)
            let mine = r.output.split(separator: "\n").map(String.init)
            #expect(mine == oracle.filter { $0.hasPrefix("\(size) ") }, "element size \(size)")
        }
    }

    /// `gomem trace map` prints Go's grow and hint lines.
    @Test func traceMapEqualsTheOracle() throws {
        let oracle = try Self.fixture("maps.txt").split(separator: "\n").map(String.init)
        let r = try Self.gomem("trace", "map", "--inserts", "1000000")
        #expect(r.status == 0)
        let mine = r.output.split(separator: "\n").map(String.init)
        for kv in ["i64:i64", "str:int"] {
            let expected = oracle.filter { ($0.hasPrefix("grow \(kv) ") && Int($0.split(separator: " ")[2])! <= 1_000_000) || $0.hasPrefix("hint \(kv) ") }
            #expect(mine.filter { !$0.hasPrefix("maxdrain") && $0.contains(" \(kv) ") } == expected, "\(kv)")
        }
        #expect(mine.contains { $0.hasPrefix("maxdrain i64:i64 ") })
    }

    @Test func explainAndTables() throws {
        let e = try Self.gomem("explain", "--elem-size", "8", "--count", "100")
        #expect(e.output.contains("make([]T, 0, 100):  1 allocation of 896 bytes"))
        #expect(e.output.contains("100 appends one by one: 8 growths, 2040 bytes allocated in total, 1016 bytes copied, final capacity 128"))
        #expect(e.output.contains("append(nil, 100 elements...): 1 growth, 896 bytes, capacity 112"))
        // Claim 6 of docs/claims.md: cap 1024 []byte plus 1025 bytes, as Go gives it.
        let g = try Self.gomem("explain", "--elem-size", "1", "--count", "2049", "--from", "1024")
        #expect(g.output.contains("append(s, 1025 elements...): 1 growth to capacity 2304 (2304 bytes), 1024 bytes copied"), "\(g.output)")
        let b = try Self.gomem("explain", "2097152")
        #expect(b.output.contains("huge: 256 pages"))
        let t = try Self.gomem("sizeclasses")
        #expect(t.output.split(separator: "\n").count == 68)
        let n = try Self.gomem("numa")
        #expect(n.output.contains("nodes:") && n.output.contains("default heap policy"))
    }
}
