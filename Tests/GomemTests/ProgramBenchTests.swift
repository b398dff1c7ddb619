import Testing
import Foundation
import TestSupport

/// `gomem bench --programs`, on its cheapest program: shapes, never timings.
@Suite struct ProgramBenchTests {
    /// The address-space limit for these runs: libgoheap-malloc.so reserves
    /// more than 4 GiB of address space when a program starts (under
    /// `ulimit -v 4194304` even /usr/bin/true dies with SIGILL), and the limit
    /// is inherited by the programs gomem runs.
    static let addressSpaceMiB = 64 << 10

    /// The cells of every markdown table in `text`.
    static func tables(_ text: String) -> [[[String]]] {
        var tables: [[[String]]] = []
        var current: [[String]] = []
        for l in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if l.hasPrefix("|") {
                current.append(l.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) })
            } else if !current.isEmpty {
                tables.append(current)
                current = []
            }
        }
        if !current.isEmpty { tables.append(current) }
        return tables
    }

    /// `--quick --only true`: one table, GoHeap first at 1.00, glibc measured,
    /// each anchor measured or reported skipped, and the startup line. The
    /// first run may build libgoheap-malloc.so (scripts/build-malloc.sh).
    @Test func quickStartupTableHasItsShape() throws {
        let r = try GomemTests.guarded(["bench", "--programs", "--quick", "--only", "true"], seconds: 600,
                                       addressSpaceMiB: Self.addressSpaceMiB)
        #expect(!r.timedOut && !r.signaled && r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let titles = r.stdout.split(separator: "\n").filter { $0.hasPrefix("## ") }
        #expect(titles.count == 1 && titles.first?.hasPrefix("## true: startup: ") == true, "\(titles)")
        let tables = Self.tables(r.stdout)
        #expect(tables.count == 1)
        guard let t = tables.first, t.count >= 4 else { Issue.record("no table: \(r.stdout)"); return }
        #expect(t[0] == ["allocator", "wall ms/run", "min-max wall ms/run", "CPU ms/run", "peak RSS MiB",
                         "x GoHeap wall", "x GoHeap CPU", "x GoHeap RSS"])
        #expect(t[1].allSatisfy { !$0.isEmpty && $0.allSatisfy { $0 == "-" || $0 == ":" } })
        let rows = t.dropFirst(2)
        #expect(rows.first?[0] == "GoHeap" && Array(rows.first?.suffix(3) ?? []) == ["1.00", "1.00", "1.00"], "\(rows)")
        for row in rows {
            #expect(row.count == t[0].count, "\(row)")
            #expect(Double(row[1]) != nil && Double(row[3]) != nil && Double(row[4]) != nil, "numbers: \(row)")
            #expect(row[2].split(separator: "-").count == 2, "min-max: \(row)")
        }
        let names = Set(rows.map { $0[0] })
        #expect(names.isSuperset(of: ["GoHeap", "glibc"]))
        for name in ["jemalloc", "mimalloc", "tcmalloc"] {
            #expect(names.contains(name) || r.stdout.contains("skipped \(name): "), "\(name) neither measured nor reported skipped")
        }
        #expect(r.stdout.contains("median of 2 interleaved rounds"))
        #expect(r.stdout.contains("startup: time added to one run of "), "\(r.stdout)")
        #expect(r.stdout.contains("> 1: GoHeap is faster"))
    }

    /// --json: the same run as a document, with the startup figures.
    @Test func jsonReport() throws {
        let r = try GomemTests.guarded(["bench", "--programs", "--quick", "--only", "true", "--rounds", "1", "--json"],
                                       seconds: 600, addressSpaceMiB: Self.addressSpaceMiB)
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let programs = obj?["programs"] as? [[String: Any]]
        #expect(programs?.map { $0["key"] as? String } == ["true"])
        #expect(programs?.first?["rounds"] as? Int == 1)
        let results = programs?.first?["results"] as? [[String: Any]]
        #expect(results?.first?["allocator"] as? String == "GoHeap")
        #expect(results?.allSatisfy { ($0["wallSeconds"] as? Double ?? -1) > 0 && ($0["peakRSSBytes"] as? Int ?? -1) > 0 } == true)
        #expect((obj?["startupAddedMilliseconds"] as? [String: Double])?["GoHeap"] != nil)
    }

    struct BadInput: CustomTestStringConvertible, Sendable {
        let args: [String]
        let reason: [String]
        init(_ args: [String], _ reason: String...) { self.args = args; self.reason = reason }
        var testDescription: String { "gomem " + args.map { $0.isEmpty ? "''" : $0 }.joined(separator: " ") }
    }

    static let badInputs: [BadInput] = [
        BadInput(["bench", "--programs", "--only", "perl"], "--only", "python, sort, clang, gcc, xthread, larson, true", "'perl'"),
        BadInput(["bench", "--programs", "--only", "true,,sort"], "--only", "empty name"),
        BadInput(["bench", "--programs", "--only", ""], "--only", "empty name"),
        BadInput(["bench", "--only", "true"], "--only goes with --programs"),
        BadInput(["bench", "--programs", "--workload", "1"], "--workload", "--only"),
        BadInput(["bench", "--programs", "--rounds", "0"], "--rounds", "from 1 to 20", "too small"),
        BadInput(["bench", "--programs", "--rounds", "-2"], "--rounds", "from 1 to 20", "negative"),
        BadInput(["bench", "--programs", "--rounds", "21"], "--rounds", "from 1 to 20", "too large"),
        BadInput(["bench", "--programs", "--rounds", "many"], "--rounds", "not a whole number"),
        BadInput(["bench", "--rounds", "3", "--repetitions", "3"], "--rounds and --repetitions"),
        BadInput(["bench", "--programs", "--goheap-malloc", "/no/such/libgoheap-malloc.so"], "--goheap-malloc", "does not exist", "scripts/build-malloc.sh"),
        BadInput(["bench", "--programs", "--goheap-malloc", "/"], "--goheap-malloc", "is a directory"),
        BadInput(["bench", "--goheap-malloc", "/tmp/x.so"], "--goheap-malloc goes with --programs"),
        BadInput(["bench", "--programs", "--svg", "/no/such/dir/p.svg"], "--svg", "does not exist"),
    ]

    /// Checked before anything runs: exit status 64, one line saying why, and the usage.
    @Test(arguments: badInputs)
    func badInputExitsWithReason(_ input: BadInput) throws {
        let r = try GomemTests.guarded(input.args)
        #expect(!r.timedOut && r.status == 64, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.isEmpty)
        let reasons = r.stderr.split(separator: "\n").filter { $0.hasPrefix("Error: ") }
        #expect(reasons.count == 1, "one reason line: \(r.stderr)")
        for word in input.reason { #expect(reasons.first?.contains(word) == true, "'\(word)' in \(r.stderr)") }
        #expect(r.stderr.contains("Usage: gomem bench"))
    }
}
