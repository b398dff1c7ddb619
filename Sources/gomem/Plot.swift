// gomem plot: SVG charts of how a slice and a map grow, and (through
// `gomem bench --svg`) of the benchmark's time ratios.
import ArgumentParser
import Foundation
import GoCollections
import GoHeap

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw SVG charts: a slice's capacity as it grows (Go's rule against Swift's Array), a map's buckets and evacuation.",
        discussion: """
            The chart goes to stdout, or to the file named by -o. Every plotted \
            point is also in the SVG as data attributes (data-len, data-old, \
            data-new on a slice growth; data-insert, data-b on a map growth), so \
            a chart can be checked against `gomem trace`. `gomem bench --svg FILE` \
            draws the benchmark's time ratios.
            """,
        subcommands: [SlicePlot.self, MapPlot.self])
}

/// The ranges of gomem plot's arguments.
enum PlotLimits {
    /// `plot slice`: the Swift Array side really allocates the slice (and,
    /// while it grows, the old and the new array).
    static let sliceMaxBytes = 1 << 28
    static let sliceMaxBytesWhy = "256 MiB: the chart really fills a Swift Array that large"
    static let maxElementSize = 1 << 16
    static let maxElementSizeWhy = "a Swift Array element takes at least 1 byte; 64 KiB covers the element sizes of Go's traces, up to 33000"
    static let defaultMaxLength = 1_000_000
    static let defaultInserts = 1_000_000
}

/// An output file named on the command line, checked before any work.
enum OutputFile {
    /// Throws a ValidationError unless `path` names a file gomem can create
    /// or replace: not empty, not a directory, in an existing writable directory.
    static func check(_ path: String, option: String) throws {
        let shown = NumberArgument.shown(path)
        if path.isEmpty { throw ValidationError("\(option) must name a file to write; got an empty name") }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { throw ValidationError("\(option) must name a file to write; got '\(shown)', which is a directory") }
            if access(path, W_OK) != 0 { throw ValidationError("\(option) must name a file gomem can write; got '\(shown)', which is not writable") }
            return
        }
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        if !FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) || !isDirectory.boolValue {
            throw ValidationError("\(option) must name a file in an existing directory; got '\(shown)', and the directory \(dir) does not exist")
        }
        if access(dir, W_OK) != 0 {
            throw ValidationError("\(option) must name a file in a writable directory; got '\(shown)', and \(dir) is not writable")
        }
    }

    struct WriteFailed: Error, CustomStringConvertible {
        let path: String, reason: String
        var description: String { "cannot write \(path): \(reason)" }
    }

    /// Writes `text` to `path`, or to stdout when `path` is nil.
    static func write(_ text: String, to path: String?) throws {
        guard let path else {
            FileHandle.standardOutput.write(Data(text.utf8))
            return
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw WriteFailed(path: path, reason: (error as NSError).localizedDescription)
        }
    }
}

// MARK: - slice

struct SlicePlot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slice",
        abstract: "Capacity against length of a slice of ELEM-SIZE-byte elements, appended one at a time: Go's rule against Swift's Array.",
        discussion: """
            Go: the capacities of go1.19's append (GoCollections' SliceGrowth, \
            the rule `gomem trace slice` replays; exact, checked against Go's \
            traces). Swift Array: measured, not modelled: a real Array whose \
            element is a struct of exactly ELEM-SIZE bytes, with its capacity \
            read after every append that grew it. Swift asks for twice the old \
            capacity and keeps whatever glibc's malloc_usable_size adds, so its \
            steps are not always exact doublings. Both axes are logarithmic; a \
            second panel shows each growth's factor (new capacity / old).
            """)

    @Option(help: ArgumentHelp("Element size in bytes: 1 to 65536 (64 KiB).", valueName: "S"))
    var elemSize: String

    @Option(help: ArgumentHelp("Append up to this length: 2 to 268435456 / S (the Swift Array is really filled). Default: 1000000, or 268435456 / S if smaller.", valueName: "N"))
    var maxLen: String?

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write the SVG to this file instead of stdout.", valueName: "file.svg"))
    var output: String?

    func parsed() throws -> (elementSize: Int, maxLength: Int) {
        let size = try NumberArgument.parse(elemSize, name: "--elem-size", range: 1...PlotLimits.maxElementSize,
                                            why: PlotLimits.maxElementSizeWhy)
        let most = PlotLimits.sliceMaxBytes / size
        guard let text = maxLen else { return (size, min(PlotLimits.defaultMaxLength, most)) }
        let n = try NumberArgument.parse(text, name: "--max-len", range: 2...PlotLimits.sliceMaxBytes, why: PlotLimits.sliceMaxBytesWhy)
        if n > most {
            throw ValidationError("--max-len × --elem-size must be at most \(PlotLimits.sliceMaxBytes) bytes (\(PlotLimits.sliceMaxBytesWhy)); got \(n) × \(size) = \(n * size) bytes; with --elem-size \(size), --max-len can be at most \(most)")
        }
        return (size, n)
    }

    func validate() throws {
        _ = try parsed()
        if let output { try OutputFile.check(output, option: "-o/--output") }
    }

    func run() throws {
        let (size, n) = try parsed()
        let go = SliceCurves.go(elementSize: size, maxLength: n)
        let swift = SliceCurves.swiftArray(elementSize: size, maxLength: n)
        try OutputFile.write(SliceChart(elementSize: size, maxLength: n, go: go, swift: swift).svg(), to: output)
        if let output {
            print("wrote \(output): \(size)-byte elements up to length \(n); Go: \(plural(go.count, "growth")) to capacity \(go.last?.new ?? 0); Swift Array: \(plural(swift.count, "growth")) to capacity \(swift.last?.new ?? 0)")
        }
    }
}

/// One growth: the append at length `length` raised the capacity from `old` to `new`.
struct CapacityStep: Equatable {
    let length: Int
    let old: Int
    let new: Int
}

enum SliceCurves {
    /// Go's capacities when appending one element at a time to a nil slice
    /// until it holds `maxLength`: SliceGrowth.grow at every full append,
    /// the decision GrowableArray and `gomem trace slice` make.
    static func go(elementSize size: Int, maxLength: Int) -> [CapacityStep] {
        var steps: [CapacityStep] = []
        var len = 0, cap = 0
        while len < maxLength {
            if len == cap {
                let d = SliceGrowth.grow(oldCapacity: cap, needed: len + 1, elementSize: size)
                steps.append(CapacityStep(length: len, old: cap, new: d.capacity))
                cap = d.capacity
            }
            len = min(maxLength, cap)  // the appends up to the capacity do not grow
        }
        return steps
    }

    /// A real Swift Array of `size`-byte elements, appended one at a time;
    /// its capacity read after every append that grew it.
    static func swiftArray(elementSize size: Int, maxLength: Int) -> [CapacityStep] {
        ElementOfSize.with(size: size, ArrayGrowth(maxLength: maxLength))
    }

    struct ArrayGrowth: ElementTypeBody {
        let maxLength: Int
        func run<T>(_: T.Type) -> [CapacityStep] {
            // T is a plain aggregate of bytes: all zeros is a valid value.
            let raw = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<T>.stride, alignment: 16)
            defer { raw.deallocate() }
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.stride)
            let element = raw.load(as: T.self)
            var a: [T] = []
            var steps: [CapacityStep] = []
            while a.count < maxLength {
                if a.count == a.capacity {
                    let len = a.count, old = a.capacity
                    a.append(element)
                    steps.append(CapacityStep(length: len, old: old, new: a.capacity))
                } else {
                    // Fill up to the capacity: no growth.
                    a.append(contentsOf: repeatElement(element, count: min(a.capacity, maxLength) - a.count))
                }
            }
            return steps
        }
    }
}

/// Code that runs with a type known only at run time.
protocol ElementTypeBody {
    associatedtype Result
    func run<T>(_: T.Type) -> Result
}

/// A struct of exactly `size` bytes (stride `size`, alignment 1), built at
/// run time by nesting `Pair`s of bytes, so a Swift Array of it stores
/// `size`-byte elements as a slice of Go would.
enum ElementOfSize {
    struct Pair<A, B> {
        var a: A
        var b: B
    }

    static func with<Body: ElementTypeBody>(size: Int, _ body: Body) -> Body.Result {
        precondition(size >= 1)
        // The binary digits of size after the leading 1: each doubles the
        // type, and a 1 adds one byte.
        var bits: [Bool] = []
        var s = size
        while s > 1 { bits.append(s & 1 == 1); s >>= 1 }
        return build(UInt8.self, bits.reversed()[...], body)
    }

    private static func build<T, Body: ElementTypeBody>(_: T.Type, _ bits: ArraySlice<Bool>, _ body: Body) -> Body.Result {
        guard let bit = bits.first else { return body.run(T.self) }
        let rest = bits.dropFirst()
        return bit ? build(Pair<Pair<T, T>, UInt8>.self, rest, body) : build(Pair<T, T>.self, rest, body)
    }

    /// The stride of the type `with(size:)` builds (for tests and checks).
    static func stride(ofSize size: Int) -> Int {
        struct Stride: ElementTypeBody { func run<T>(_: T.Type) -> Int { MemoryLayout<T>.stride } }
        return with(size: size, Stride())
    }
}

enum Palette {
    static let go = "#007d9c"
    static let swift = "#e8562f"
    static let evacuation = "#7b3fa0"
}

struct SliceChart {
    let elementSize: Int
    let maxLength: Int
    let go: [CapacityStep]
    let swift: [CapacityStep]

    func svg() -> String {
        let width = 920.0
        var doc = SVGDocument(width: width, height: 788,
                              title: "Slice growth of \(elementSize)-byte elements up to length \(maxLength): Go's append against Swift's Array")
        doc.text("Slice growth, \(elementSize)-byte elements: Go's append against Swift's Array",
                 x: 40, y: 32, cssClass: "title")
        doc.text("Capacity after appending one element at a time to an empty slice, up to length \(maxLength).",
                 x: 40, y: 52, cssClass: "subtitle")
        doc.text("Go: go1.19's growslice (GoCollections' SliceGrowth, exact). Swift: a real Array of a \(elementSize)-byte struct, measured (with glibc's malloc).",
                 x: 40, y: 68, cssClass: "subtitle")
        doc.legend([LegendItem(label: "Go slice (go1.19 append)", color: Palette.go, mark: .lineAndDot),
                    LegendItem(label: "Swift Array (measured)", color: Palette.swift, mark: .lineAndDot),
                    LegendItem(label: "capacity = length", color: "#999", mark: .dashed)],
                   x: 90, y: 96, maxX: width - 30)

        // Top: capacity against length, log-log, as steps.
        let maxCap = max(go.map(\.new).max() ?? 1, swift.map(\.new).max() ?? 1, maxLength)
        let top = Panel(x: Axis(scale: .log, lower: 1, upper: Double(max(maxLength, 10)), start: 90, end: width - 30),
                        y: Axis(scale: .log, lower: 1, upper: Double(max(maxCap, 10)) * 1.25, start: 420, end: 116),
                        xTitle: "length (elements appended)", yTitle: "capacity (elements)")
        top.draw(into: &doc)
        top.clip(id: "clip-capacity", into: &doc)
        doc.add(SVG.element("path", [("d", SVG.path([(top.x.position(1), top.y.position(1)),
                                                     (top.x.position(top.x.upper), top.y.position(top.x.upper))])),
                                     ("class", "ref"), ("clip-path", "url(#clip-capacity)")]))
        drawSteps(swift, name: "swift", label: "Swift Array", color: Palette.swift, width: 4, panel: top, into: &doc)
        drawSteps(go, name: "go", label: "Go", color: Palette.go, width: 2, panel: top, into: &doc)

        // Bottom: the factor of each growth against the capacity it grew from.
        let factors = (go + swift).filter { $0.old > 0 }.map { Double($0.new) / Double($0.old) }
        let maxFactor = max(2.5, ((factors.max() ?? 2) * 4).rounded(.up) / 4 + 0.25)
        let maxOld = max(go.map(\.old).max() ?? 1, swift.map(\.old).max() ?? 1, 10)
        let bottom = Panel(x: Axis(scale: .log, lower: 1, upper: Double(maxOld) * 1.25, start: 90, end: width - 30),
                           y: Axis(scale: .linear, lower: 1, upper: maxFactor, start: 690, end: 500),
                           xTitle: "capacity before the growth (elements)", yTitle: "new / old capacity",
                           yTickFormat: { SVG.trimmed($0) + "×" })
        doc.text("Growth factor of each growth", x: 90, y: 488, cssClass: "group")
        bottom.draw(into: &doc)
        if Double(SliceGrowth.threshold) < bottom.x.upper {
            let p = bottom.x.position(Double(SliceGrowth.threshold))
            doc.line(x1: p, y1: bottom.top, x2: p, y2: bottom.bottom, cssClass: "ref")
            doc.text("256: Go doubles below, then +(cap + 768)/4", x: p + 5, y: bottom.top + 14, cssClass: "note")
        }
        drawFactors(swift, name: "swift", color: Palette.swift, panel: bottom, into: &doc)
        drawFactors(go, name: "go", color: Palette.go, panel: bottom, into: &doc)
        doc.text("Go's factor slides from 2 toward 1.25 after 256 elements, then rounding up to a size class (whole 8 KiB pages above 32 KiB)",
                 x: 40, y: 752, cssClass: "note")
        doc.text("moves it about. Where the two lines coincide, Go's is drawn over Swift's. `gomem trace slice --elem-size \(elementSize)` lists Go's steps.",
                 x: 40, y: 768, cssClass: "note")
        return doc.rendered()
    }

    /// The capacity as a step function of the length, with a dot where each
    /// growth happened (at the length after the append that grew it).
    func drawSteps(_ steps: [CapacityStep], name: String, label: String, color: String, width: Double, panel: Panel,
                   into doc: inout SVGDocument) {
        var d = ""
        for (i, s) in steps.enumerated() {
            let x = panel.x.position(Double(s.length + 1)), y = panel.y.position(Double(s.new))
            d += i == 0 ? "M\(SVG.num(x)) \(SVG.num(y))" : " H\(SVG.num(x)) V\(SVG.num(y))"
        }
        d += " H\(SVG.num(panel.x.position(Double(maxLength))))"
        var parts = [SVG.element("path", [("d", d), ("stroke", color), ("stroke-width", SVG.num(width)), ("fill", "none"),
                                          ("stroke-linejoin", "round"), ("clip-path", "url(#clip-capacity)")])]
        for s in steps {
            let tip = "\(label): the append at length \(s.length) grew the capacity from \(s.old) to \(s.new)"
            parts.append(SVG.element("circle", [("cx", SVG.num(panel.x.position(Double(s.length + 1)))),
                                                ("cy", SVG.num(panel.y.position(Double(s.new)))), ("r", SVG.num(width / 2 + 1.6)),
                                                ("fill", color), ("data-len", String(s.length)),
                                                ("data-old", String(s.old)), ("data-new", String(s.new))],
                                     content: "<title>\(SVG.escape(tip))</title>"))
        }
        doc.add("<g class=\"series\" data-series=\"\(name)\" data-element-size=\"\(elementSize)\">" + parts.joined() + "</g>")
    }

    func drawFactors(_ steps: [CapacityStep], name: String, color: String, panel: Panel, into doc: inout SVGDocument) {
        let points = steps.filter { $0.old > 0 }.map { s in
            (s, panel.x.position(Double(s.old)), panel.y.position(Double(s.new) / Double(s.old)))
        }
        var parts = [SVG.element("path", [("d", SVG.path(points.map { ($0.1, $0.2) })), ("stroke", color),
                                          ("stroke-width", "1.2"), ("fill", "none"), ("stroke-opacity", "0.6")])]
        for (s, x, y) in points {
            let tip = String(format: "%@ → %@: ×%.3f", String(s.old), String(s.new), Double(s.new) / Double(s.old))
            parts.append(SVG.element("circle", [("cx", SVG.num(x)), ("cy", SVG.num(y)), ("r", "2.6"), ("fill", color)],
                                     content: "<title>\(SVG.escape(tip))</title>"))
        }
        doc.add("<g class=\"factors\" data-series=\"\(name)-factor\">" + parts.joined() + "</g>")
    }
}

// MARK: - map

struct MapPlot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "Buckets (2^B) and evacuation progress against inserts for an IncrementalMap<Int, Int>.",
        discussion: """
            Keys 1, 2, 3... are inserted into an empty IncrementalMap<Int, Int> \
            (Go's hmap on GoHeap); after every insert its debugState gives B and, \
            while the map grows, how many old buckets are evacuated (Go's \
            nevacuate) out of how many. Top panel: 2^B against inserts (log-log), \
            the same growths as `gomem trace map --kv i64:i64`. Middle panel: \
            the share of old buckets evacuated against inserts. Bottom panel: \
            each growth's evacuation from its own first insert to its last. The \
            evacuation ramps depend on the process's hash seed; the growths do not.
            """)

    @Option(help: ArgumentHelp("Distinct keys to insert, 10 to 10000000 (default 1000000).", valueName: "N"))
    var inserts: String?

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write the SVG to this file instead of stdout.", valueName: "file.svg"))
    var output: String?

    func parsedInserts() throws -> Int {
        try inserts.map { try NumberArgument.parse($0, name: "--inserts", range: 10...Limits.mapMaxInserts, why: Limits.mapMaxInsertsWhy) }
            ?? PlotLimits.defaultInserts
    }

    func validate() throws {
        _ = try parsedInserts()
        if let output { try OutputFile.check(output, option: "-o/--output") }
    }

    func run() throws {
        let n = try parsedInserts()
        let history = MapHistory.record(inserts: n)
        try OutputFile.write(MapChart(history: history).svg(), to: output)
        if let output {
            print("wrote \(output): \(n) inserts, \(plural(history.growths.count, "growth")) to 2^\(history.growths.last?.b ?? 0) buckets, longest evacuation \(plural(history.maxDrain, "insert"))")
        }
    }
}

/// What an IncrementalMap<Int, Int> did as keys 1...n went in.
struct MapHistory {
    struct Growth { let insert: Int, b: Int }
    /// One growth's evacuation: (insert, evacuated / old buckets) samples.
    struct Evacuation {
        let oldBuckets: Int
        var points: [(insert: Int, fraction: Double)]
        var finished: Bool
        var start: Int { points.first?.insert ?? 0 }
        var end: Int { points.last?.insert ?? 0 }
        var summary: String {
            "growth from \(oldBuckets) buckets at insert \(start): "
                + (finished ? "evacuated by insert \(end), \(plural(end - start, "insert")) later" : "still under way at insert \(end)")
        }
    }
    let inserts: Int
    var growths: [Growth] = []
    var evacuations: [Evacuation] = []
    var maxDrain = 0

    static func record(inserts n: Int) -> MapHistory {
        var h = MapHistory(inserts: n)
        var m = IncrementalMap<Int, Int>()
        var b = 0
        var growing = false
        for i in 1...n {
            m[i] = i
            let s = m.debugState
            if s.bucketShift != b { h.growths.append(Growth(insert: i, b: s.bucketShift)) }
            b = s.bucketShift
            if s.isGrowing {
                let f = Double(s.evacuatedBuckets) / Double(max(1, s.oldBucketCount))
                if !growing {
                    h.evacuations.append(Evacuation(oldBuckets: s.oldBucketCount, points: [(i, 0), (i, f)], finished: false))
                } else if let last = h.evacuations[h.evacuations.count - 1].points.last, f - last.fraction >= 0.01 {
                    h.evacuations[h.evacuations.count - 1].points.append((i, f))
                }
            } else if growing {
                h.evacuations[h.evacuations.count - 1].points.append((i, 1))
                h.evacuations[h.evacuations.count - 1].finished = true
            }
            growing = s.isGrowing
        }
        if growing {
            let s = m.debugState
            h.evacuations[h.evacuations.count - 1].points.append((n, Double(s.evacuatedBuckets) / Double(max(1, s.oldBucketCount))))
        }
        h.maxDrain = m.growthStatistics.maxDrainInserts
        return h
    }
}

struct MapChart {
    let history: MapHistory

    func svg() -> String {
        let width = 920.0
        let n = history.inserts
        var doc = SVGDocument(width: width, height: 860,
                              title: "IncrementalMap<Int, Int> growth over \(n) inserts: buckets and evacuation")
        doc.text("Map growth: IncrementalMap<Int, Int> (Go's hmap on GoHeap), \(n) inserts", x: 40, y: 32, cssClass: "title")
        doc.text("Keys 1, 2, 3... into an empty map. A new key grows the map when count + 1 > 6.5 × 2^B; the old buckets then move",
                 x: 40, y: 52, cssClass: "subtitle")
        doc.text("to the new array a little on every later insert (Go's incremental evacuation), so no insert rehashes the whole table.",
                 x: 40, y: 68, cssClass: "subtitle")
        doc.legend([LegendItem(label: "buckets (2^B)", color: Palette.go, mark: .lineAndDot),
                    LegendItem(label: "inserts ÷ 6.5 (load factor)", color: "#999", mark: .dashed),
                    LegendItem(label: "old buckets evacuated / old bucket count (Go's nevacuate)", color: Palette.evacuation, mark: .line)],
                   x: 90, y: 96, maxX: width - 30)

        // Top: 2^B against inserts, log-log, as steps.
        let maxB = history.growths.map(\.b).max() ?? 0
        let inserts = Axis(scale: .log, lower: 1, upper: Double(n), start: 90, end: width - 30)
        let top = Panel(x: inserts, y: Axis(scale: .log, lower: 1, upper: Double(1 << maxB) * 2, start: 380, end: 116),
                        xTitle: "inserts (distinct keys)", yTitle: "buckets (2^B)")
        top.draw(into: &doc)
        top.clip(id: "clip-buckets", into: &doc)
        // Growth trigger: 6.5 entries per bucket.
        doc.add(SVG.element("path", [("d", SVG.path([(top.x.position(6.5), top.y.position(1)),
                                                     (top.x.position(Double(n)), top.y.position(Double(n) / 6.5))])),
                                     ("class", "ref"), ("clip-path", "url(#clip-buckets)")]))
        var d = "M\(SVG.num(top.x.position(1))) \(SVG.num(top.y.position(1)))"
        for g in history.growths {
            d += " H\(SVG.num(top.x.position(Double(g.insert)))) V\(SVG.num(top.y.position(Double(1 << g.b))))"
        }
        d += " H\(SVG.num(top.x.position(Double(n))))"
        var parts = [SVG.element("path", [("d", d), ("stroke", Palette.go), ("stroke-width", "2"), ("fill", "none"),
                                          ("clip-path", "url(#clip-buckets)")])]
        for g in history.growths {
            let tip = "insert \(g.insert): B = \(g.b), \(1 << g.b) buckets"
            parts.append(SVG.element("circle", [("cx", SVG.num(top.x.position(Double(g.insert)))),
                                                ("cy", SVG.num(top.y.position(Double(1 << g.b)))), ("r", "2.8"),
                                                ("fill", Palette.go), ("data-insert", String(g.insert)), ("data-b", String(g.b))],
                                     content: "<title>\(SVG.escape(tip))</title>"))
        }
        doc.add("<g class=\"series\" data-series=\"buckets\">" + parts.joined() + "</g>")

        // Middle: each growth's evacuation against inserts, on the same axis.
        let percent = { (v: Double) in "\(Int((v * 100).rounded()))%" }
        doc.text("Evacuation against inserts", x: 90, y: 446, cssClass: "group")
        let middle = Panel(x: inserts, y: Axis(scale: .linear, lower: 0, upper: 1, start: 560, end: 456),
                           xTitle: "inserts (distinct keys)", yTitle: "evacuated", yTickFormat: percent)
        middle.draw(into: &doc)
        middle.clip(id: "clip-evacuation", into: &doc)
        var ramps: [String] = []
        for e in history.evacuations {
            let pts = e.points.map { (middle.x.position(Double($0.insert)), middle.y.position($0.fraction)) }
            ramps.append(SVG.element("path", [("d", SVG.path(pts)), ("stroke", Palette.evacuation), ("stroke-width", "1.8"),
                                              ("fill", "none"), ("data-start", String(e.start)), ("data-end", String(e.end)),
                                              ("data-old-buckets", String(e.oldBuckets)),
                                              ("data-finished", String(e.finished)), ("clip-path", "url(#clip-evacuation)")],
                                     content: "<title>\(SVG.escape(e.summary))</title>"))
        }
        doc.add("<g class=\"series\" data-series=\"evacuation\">" + ramps.joined() + "</g>")

        // Bottom: every evacuation from its own start, so their lengths compare.
        let longest = max(10, history.evacuations.map { $0.end - $0.start + 1 }.max() ?? 10)
        doc.text("Each evacuation from the insert that started its growth (darker: larger tables)", x: 90, y: 626, cssClass: "group")
        let bottom = Panel(x: Axis(scale: .log, lower: 1, upper: Double(longest) * 1.3, start: 90, end: width - 30),
                           y: Axis(scale: .linear, lower: 0, upper: 1, start: 740, end: 636),
                           xTitle: "inserts since the growth started", yTitle: "evacuated", yTickFormat: percent)
        bottom.draw(into: &doc)
        bottom.clip(id: "clip-drain", into: &doc)
        var drains: [String] = []
        let count = history.evacuations.count
        for (i, e) in history.evacuations.enumerated() {
            let pts = e.points.map { (bottom.x.position(Double($0.insert - e.start + 1)), bottom.y.position($0.fraction)) }
            let shade = count > 1 ? Double(i) / Double(count - 1) : 1
            drains.append(SVG.element("path", [("d", SVG.path(pts)), ("stroke", Self.purple(shade)), ("stroke-width", "1.8"),
                                               ("fill", "none"), ("data-old-buckets", String(e.oldBuckets)),
                                               ("data-inserts", String(e.end - e.start)), ("clip-path", "url(#clip-drain)")],
                                      content: "<title>\(SVG.escape(e.summary))</title>"))
        }
        doc.add("<g class=\"series\" data-series=\"drain\">" + drains.joined() + "</g>")
        let finished = history.evacuations.filter(\.finished)
        let worst = finished.map { Double($0.end - $0.start) / Double($0.oldBuckets) }.max() ?? 0
        doc.text("Every finished evacuation took fewer inserts than its old bucket count (at most \(Int((worst * 100).rounded()))% of it; the longest, \(plural(history.maxDrain, "insert"))),",
                 x: 40, y: 800, cssClass: "note")
        doc.text("so it ends long before the next growth. Growths are exact (`gomem trace map --kv i64:i64`); evacuation depends on the hash seed.",
                 x: 40, y: 816, cssClass: "note")
        return doc.rendered()
    }

    /// From light (0) to dark (1) purple.
    static func purple(_ t: Double) -> String {
        let light = (205.0, 180.0, 228.0), dark = (74.0, 20.0, 110.0)
        let mix = { (a: Double, b: Double) in Int((a + (b - a) * t).rounded()) }
        return String(format: "#%02x%02x%02x", mix(light.0, dark.0), mix(light.1, dark.1), mix(light.2, dark.2))
    }
}
