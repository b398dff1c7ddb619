import Testing
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// An SVG read back with Foundation's XMLParser: the parse fails on anything
/// that is not well-formed XML, and every element is kept with its attributes
/// and the text directly inside it.
struct ParsedSVG {
    struct Element {
        let name: String
        let attributes: [String: String]
        var text: String
        /// The data-series of the nearest enclosing group that has one.
        let series: String?
    }
    var elements: [Element] = []

    init(_ svg: String) throws {
        let collector = Collector()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = collector
        let ok = parser.parse()
        if !ok || parser.parserError != nil {
            throw ParseError(reason: "\(parser.parserError.map { "\($0)" } ?? "parse failed") at line \(parser.lineNumber)")
        }
        elements = collector.elements
    }

    struct ParseError: Error, CustomStringConvertible {
        let reason: String
        var description: String { "not well-formed XML: \(reason)" }
    }

    func all(_ name: String) -> [Element] { elements.filter { $0.name == name } }
    func inSeries(_ series: String, _ name: String) -> [Element] { all(name).filter { $0.series == series } }
    /// The text of every <text> element, in document order.
    var texts: [String] { all("text").map(\.text) }

    final class Collector: NSObject, XMLParserDelegate {
        var elements: [Element] = []
        var open: [Int] = []  // indices into elements
        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                    qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
            let series = attributeDict["data-series"] ?? open.last.flatMap { elements[$0].series }
            elements.append(Element(name: elementName, attributes: attributeDict, text: "", series: series))
            open.append(elements.count - 1)
        }
        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
            open.removeLast()
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if let i = open.last { elements[i].text += string }
        }
    }
}

/// gomem plot and gomem bench --svg: the charts are well-formed SVG, carry
/// their titles, legends and axis labels, and plot exactly the growths Go's
/// rule (GoCollections' SliceGrowth, as Go's traces record it) and
/// IncrementalMap decide.
@Suite struct PlotTests {
    static func run(_ args: [String], seconds: Double = 60) throws -> GomemTests.Run {
        let r = try GomemTests.guarded(args, seconds: seconds)
        #expect(!r.timedOut && r.status == 0 && !r.signaled, "gomem \(args.joined(separator: " ")): exit \(r.status): \(r.stderr.prefix(600))")
        return r
    }

    /// Go's "SIZE one LEN OLD NEW" lines from slices.txt with LEN < maxLength.
    static func oracleGrowths(elementSize: Int, below maxLength: Int) throws -> [[Int]] {
        var out: [[Int]] = []
        for line in try GomemTests.fixture("slices.txt").split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            guard f.count == 5, f[0] == String(elementSize), f[1] == "one" else { continue }
            let growth: [Int] = f[2...].map { Int($0)! }
            if growth[0] < maxLength { out.append(growth) }
        }
        return out
    }

    static func growths(_ svg: ParsedSVG, series: String) -> [[Int]] {
        svg.inSeries(series, "circle").compactMap { c in
            guard let len = c.attributes["data-len"].flatMap(Int.init), let old = c.attributes["data-old"].flatMap(Int.init),
                  let new = c.attributes["data-new"].flatMap(Int.init) else { return nil }
            return [len, old, new]
        }
    }

    @Test func parserRejectsMalformedXML() {
        #expect(throws: ParsedSVG.ParseError.self) { try ParsedSVG("<svg><g></svg>") }
        #expect(throws: ParsedSVG.ParseError.self) { try ParsedSVG("<svg a=\"1\" a=\"2\"/>") }
        #expect(throws: ParsedSVG.ParseError.self) { try ParsedSVG("<svg><text>a & b</text></svg>") }
    }

    /// The Go series is Go's trajectory exactly: for the element sizes of
    /// Go's slices.txt, every growth point is a line of the oracle.
    @Test(arguments: [8, 24, 1, 1000])
    func sliceChartPlotsGosGrowths(elementSize: Int) throws {
        // slices.txt appends one at a time up to 64 MiB of elements.
        let maxLength = min(100_000, (64 << 20) / elementSize)
        let r = try Self.run(["plot", "slice", "--elem-size", "\(elementSize)", "--max-len", "\(maxLength)"])
        let svg = try ParsedSVG(r.stdout)
        let go = Self.growths(svg, series: "go")
        #expect(!go.isEmpty)
        #expect(go == (try Self.oracleGrowths(elementSize: elementSize, below: maxLength)), "element size \(elementSize)")
        // Drawn where they belong: further right and no lower with every growth.
        let circles = svg.inSeries("go", "circle")
        let xs = circles.compactMap { $0.attributes["cx"].flatMap(Double.init) }
        let ys = circles.compactMap { $0.attributes["cy"].flatMap(Double.init) }
        #expect(xs.count == go.count && zip(xs, xs.dropFirst()).allSatisfy { $0 < $1 })
        #expect(zip(ys, ys.dropFirst()).allSatisfy { $0 >= $1 }, "SVG y grows downward: capacity never falls")
    }

    /// For a size Go's traces do not cover, the points are what GoCollections'
    /// growth core decides: `gomem trace slice` replays it with the container.
    @Test func sliceChartEqualsTheGrowthCoreForOtherSizes() throws {
        for size in [40, 72, 4000] {
            let maxLength = 50_000
            let svg = try ParsedSVG(try Self.run(["plot", "slice", "--elem-size", "\(size)", "--max-len", "\(maxLength)"]).stdout)
            let trace = try Self.run(["trace", "slice", "--elem-size", "\(size)", "--max-bytes", "\(size * maxLength)"]).stdout
            var expected: [[Int]] = []
            for line in trace.split(separator: "\n") {
                let f = line.split(separator: " ").map(String.init)
                if f.count == 5 && f[1] == "one" { expected.append(f[2...].map { Int($0)! }) }
            }
            #expect(!expected.isEmpty)
            #expect(Self.growths(svg, series: "go") == expected, "element size \(size)")
        }
    }

    /// Swift's series is a measured Array: it starts empty, at least doubles
    /// at every growth (Swift asks for twice the capacity; malloc may add a
    /// little), and ends holding the whole length.
    @Test func sliceChartMeasuresSwiftArray() throws {
        let svg = try ParsedSVG(try Self.run(["plot", "slice", "--elem-size", "24", "--max-len", "100000"]).stdout)
        let swift = Self.growths(svg, series: "swift")
        #expect(swift.first?[1] == 0 && swift.first?[0] == 0)
        for g in swift where g[1] > 0 { #expect(g[2] >= 2 * g[1], "\(g)") }
        for (a, b) in zip(swift, swift.dropFirst()) { #expect(b[0] == a[2] && b[1] == a[2], "grows when full: \(a) then \(b)") }
        #expect((swift.last?[2] ?? 0) >= 100_000)
    }

    @Test func sliceChartHasTitleLegendAndAxes() throws {
        let r = try Self.run(["plot", "slice", "--elem-size", "24", "--max-len", "5000"])
        #expect(r.stdout.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\""))
        let svg = try ParsedSVG(r.stdout)
        #expect(svg.all("title").first?.text.contains("24-byte elements") == true)
        let texts = svg.texts
        for label in ["Slice growth, 24-byte elements: Go's append against Swift's Array",
                      "Go slice (go1.19 append)", "Swift Array (measured)", "capacity = length",
                      "length (elements appended)", "capacity (elements)",
                      "capacity before the growth (elements)", "new / old capacity", "1k"] {
            #expect(texts.contains(label), "'\(label)' in \(texts)")
        }
        #expect(Set(svg.all("g").compactMap { $0.attributes["data-series"] }) == ["go", "swift", "go-factor", "swift-factor"])
        #expect(svg.inSeries("go-factor", "circle").count == Self.growths(svg, series: "go").count - 1, "no factor for 0 -> 1")
        #expect(svg.all("path").count >= 6)
    }

    /// The map chart's growth points are Go's: maps.txt's grow lines for
    /// map[int64]int64 (an Int key and value are the same sizes).
    @Test func mapChartPlotsGosGrowths() throws {
        let inserts = 100_000
        let r = try Self.run(["plot", "map", "--inserts", "\(inserts)"])
        let svg = try ParsedSVG(r.stdout)
        let plotted: [[Int]] = svg.inSeries("buckets", "circle").compactMap { c in
            guard let insert = c.attributes["data-insert"].flatMap(Int.init), let b = c.attributes["data-b"].flatMap(Int.init) else { return nil }
            return [insert, b]
        }
        var oracle: [[Int]] = []
        for line in try GomemTests.fixture("maps.txt").split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            guard f.count == 4, f[0] == "grow", f[1] == "i64:i64", let count = Int(f[2]), let b = Int(f[3]) else { continue }
            if count <= inserts { oracle.append([count, b]) }
        }
        #expect(!plotted.isEmpty && plotted == oracle)
        // Every evacuation that finished did so within its old bucket count of
        // inserts, and before the next growth.
        let ramps = svg.inSeries("evacuation", "path")
        #expect(!ramps.isEmpty)
        for p in ramps where p.attributes["data-finished"] == "true" {
            let start = Int(p.attributes["data-start"]!)!, end = Int(p.attributes["data-end"]!)!
            let old = Int(p.attributes["data-old-buckets"]!)!
            #expect(end > start && end - start <= old, "\(p.attributes)")
            #expect(!plotted.contains { $0[0] > start && $0[0] < end }, "no growth during an evacuation: \(p.attributes)")
        }
        let texts = svg.texts
        for label in ["buckets (2^B)", "inserts (distinct keys)", "inserts since the growth started", "evacuated",
                      "old buckets evacuated / old bucket count (Go's nevacuate)", "inserts ÷ 6.5 (load factor)"] {
            #expect(texts.contains(label), "'\(label)' in \(texts)")
        }
        #expect(texts.contains { $0.hasPrefix("Map growth: IncrementalMap<Int, Int>") })
    }

    /// -o writes the file and says so in one line; without it the SVG is stdout.
    @Test func outputFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gomem-plot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("map.svg").path
        let r = try Self.run(["plot", "map", "--inserts", "1000", "-o", file])
        #expect(r.stdout.hasPrefix("wrote \(file): 1000 inserts, 8 growths to 2^8 buckets"), "\(r.stdout)")
        #expect(r.stdout.split(separator: "\n").count == 1)
        let written = try String(contentsOfFile: file, encoding: .utf8)
        _ = try ParsedSVG(written)
        let slice = dir.appendingPathComponent("slice.svg").path
        let s = try Self.run(["plot", "slice", "--elem-size", "8", "--max-len", "1000", "--output", slice])
        #expect(s.stdout.hasPrefix("wrote \(slice): 8-byte elements up to length 1000; Go: "), "\(s.stdout)")
        _ = try ParsedSVG(try String(contentsOfFile: slice, encoding: .utf8))
    }

    /// gomem bench --svg: one bar per contender and workload, with the very
    /// ratios the JSON reports.
    @Test func benchSVGHasTheRatios() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gomem-bench-svg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("bench.svg").path
        let r = try GomemTests.guarded(["bench", "--quick", "--json", "--repetitions", "1", "--workload", "1", "--svg", file],
                                       seconds: 300, addressSpaceMiB: 1 << 30)
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let workloads = obj?["workloads"] as? [[String: Any]] ?? []
        #expect(workloads.count == 1)
        let svg = try ParsedSVG(try String(contentsOfFile: file, encoding: .utf8))
        let bars = svg.all("g").filter { $0.attributes["class"] == "bar" }
        let results = workloads.first?["results"] as? [[String: Any]] ?? []
        #expect(!results.isEmpty && bars.count == results.count)
        for (bar, result) in zip(bars, results) {
            #expect(bar.attributes["data-workload"] == "1" && bar.attributes["data-key"] == "hot-pair")
            #expect(bar.attributes["data-contender"] == result["allocator"] as? String)
            // JSONSerialization may round the last digit of a double.
            let plotted = bar.attributes["data-ratio"].flatMap(Double.init) ?? -1
            let reported = result["ratioToGoHeap"] as? Double ?? -2
            #expect(abs(plotted - reported) <= 1e-12 * reported, "\(plotted) vs \(reported)")
        }
        let texts = svg.texts
        #expect(texts.contains("gomem bench: time relative to the baseline (log scale)"))
        #expect(texts.contains("contender's time ÷ baseline's time"))
        #expect(texts.contains("1. hot pair: allocate + free, sizes cycling 16-512 B"))
        #expect(texts.contains("GoHeap") && texts.contains("glibc"), "contender labels and legend: \(texts)")
        #expect(texts.contains("1.00× (baseline)"))
    }
}
