// gomem bench --svg: the benchmark's time ratios as a bar chart.
import Foundation

/// gomem bench --svg: one horizontal bar per contender and workload, from 1
/// (the baseline) to the contender's time ratio, on a log scale.
enum BenchChart {
    /// Fixed colours for the contenders gomem bench knows, so charts from
    /// different runs compare at a glance.
    static let colors: [String: String] = [
        "GoHeap": Palette.go, "GrowableArray": Palette.go, "IncrementalMap": Palette.go,
        "IncrementalMap, no THP": "#56b4e9", "glibc": "#7f7f7f", "jemalloc": "#e69f00", "mimalloc": "#009e73",
        "tcmalloc": "#cc79a7", "Swift Array": Palette.swift, "Swift Dictionary": Palette.swift,
        "Go slice": "#2c3e74", "Go map": "#2c3e74",
    ]
    static let spare = ["#d55e00", "#0072b2", "#8c564b", "#bcbd22", "#17becf", "#9467bd"]

    /// `programs`: the report is gomem bench --programs' (wall time per run of
    /// a program under each allocator, GoHeap the baseline).
    static func svg(_ report: BenchReport, programs: Bool = false) -> String {
        let width = 920.0
        let rowHeight = 20.0, groupHeight = 26.0
        var names: [String] = []
        for w in report.workloads { for r in w.results where !names.contains(r.allocator) { names.append(r.allocator) } }
        var color: [String: String] = [:]
        var spareIndex = 0
        for n in names {
            if let c = colors[n] { color[n] = c } else { color[n] = spare[spareIndex % spare.count]; spareIndex += 1 }
        }
        let ratios = report.workloads.flatMap { $0.results.map(\.ratioToGoHeap) }.filter { $0 > 0 && $0.isFinite }
        let lower = min(ratios.min() ?? 1, 1) / 2.5, upper = max(ratios.max() ?? 1, 1) * 2.5

        let legendTop = 96.0
        // Legend rows: estimated as the legend lays them out.
        var probe = SVGDocument(width: width, height: 0, title: "")
        let items = names.map { LegendItem(label: $0, color: color[$0]!, mark: .bar) }
        let plotTop = probe.legend(items, x: 60, y: legendTop, maxX: width - 30) + 8
        let rows = report.workloads.reduce(0.0) { $0 + groupHeight + Double($1.results.count) * rowHeight }
        let plotBottom = plotTop + rows + 6
        let skippedLines = Double(report.skipped.count)
        let height = plotBottom + 50 + skippedLines * 15 + (skippedLines > 0 ? 20 : 0)

        let name = programs ? "gomem bench --programs" : "gomem bench"
        var doc = SVGDocument(width: width, height: height, title: "\(name): time of each contender relative to the baseline")
        doc.text("\(name): time relative to the baseline (log scale)", x: 40, y: 32, cssClass: "title")
        doc.text(programs ? "Median wall time of a program run under each allocator (LD_PRELOAD) ÷ under GoHeap's. Right of 1: GoHeap is faster."
                          : "Median time per operation ÷ the baseline's (GoHeap, or the GoHeap container). Right of 1: the baseline is faster.",
                 x: 40, y: 52, cssClass: "subtitle")
        let reps = Set(report.workloads.map(\.repetitions)).sorted()
        let noun = programs ? "round" : "repetition"
        let repsText = reps.count == 1 ? plural(reps[0], noun) : reps.map(String.init).joined(separator: " or ") + " \(noun)s"
        doc.text("\(report.machine), \(report.date), median of \(repsText) (interleaved). Shared machines vary: compare ratios, not runs.",
                 x: 40, y: 68, cssClass: "subtitle")
        doc.legend(items, x: 60, y: legendTop, maxX: width - 30)

        let axis = Axis(scale: .log, lower: lower, upper: upper, start: 250, end: width - 30)
        let panel = Panel(x: axis, y: Axis(scale: .linear, lower: 0, upper: 1, start: plotBottom, end: plotTop),
                          xTitle: "contender's time ÷ baseline's time", yTitle: "",
                          xTickFormat: { SVG.trimmed($0) + "×" })
        // Grid and x ticks only: the y axis is the list of contenders.
        let ticks = axis.ticks()
        for v in ticks.minor { let p = axis.position(v); doc.line(x1: p, y1: plotTop, x2: p, y2: plotBottom, cssClass: "grid-minor") }
        for t in ticks.major {
            let p = axis.position(t.value)
            doc.line(x1: p, y1: plotTop, x2: p, y2: plotBottom, cssClass: "grid")
            doc.text(panel.xTickFormat(t.value), x: p, y: plotBottom + 16, anchor: "middle", cssClass: "tick")
        }
        doc.text(panel.xTitle, x: (axis.start + axis.end) / 2, y: plotBottom + 36, anchor: "middle", cssClass: "axis-title")

        let one = axis.position(1)
        var y = plotTop
        for w in report.workloads {
            // A band behind the workload's title, over the grid lines.
            doc.add(SVG.element("rect", [("x", "30"), ("y", SVG.num(y + 3)), ("width", SVG.num(axis.end - 30)),
                                         ("height", SVG.num(groupHeight - 4)), ("fill", "#f4f6f8")]))
            doc.text("\(w.id). \(w.title)", x: 40, y: y + 19, cssClass: "group")
            y += groupHeight
            doc.line(x1: one, y1: y, x2: one, y2: y + Double(w.results.count) * rowHeight, cssClass: "one")
            var bars: [String] = []
            for m in w.results {
                let mid = y + rowHeight / 2
                let r = m.ratioToGoHeap
                let p = axis.position(r)
                let c = color[m.allocator]!
                bars.append(SVG.element("text", [("x", SVG.num(axis.start - 10)), ("y", SVG.num(mid + 4)), ("text-anchor", "end")],
                                        content: SVG.escape(m.allocator)))
                let label = String(format: "%.2f×", r) + (m.allocator == w.baseline ? " (baseline)" : "")
                var shapes: [String] = []
                if m.allocator == w.baseline {
                    shapes.append(SVG.element("path", [("d", "M\(SVG.num(one)) \(SVG.num(mid - 6)) l6 6 l-6 6 l-6 -6 z"), ("fill", c)]))
                    shapes.append(SVG.element("text", [("x", SVG.num(one + 10)), ("y", SVG.num(mid + 4)), ("class", "value")],
                                              content: SVG.escape(label)))
                } else {
                    shapes.append(SVG.element("rect", [("x", SVG.num(min(one, p))), ("y", SVG.num(mid - 6)),
                                                       ("width", SVG.num(max(1, abs(p - one)))), ("height", "12"), ("fill", c)]))
                    let tx = r >= 1 ? p + 5 : p - 5
                    shapes.append(SVG.element("text", [("x", SVG.num(tx)), ("y", SVG.num(mid + 4)), ("class", "value")]
                                              + (r >= 1 ? [] : [("text-anchor", "end")]), content: SVG.escape(label)))
                }
                let tip = (programs ? "\(m.allocator), \(w.key): \(String(format: "%.3f", m.nsPerOp / 1e9)) s per run, "
                                    : "\(m.allocator), workload \(w.id) (\(w.key)): \(String(format: "%.2f", m.nsPerOp)) ns/op, ") +
                    String(format: "%.2f", r) + " × \(w.baseline)'s time"
                bars.append(SVG.element("g", [("class", "bar"), ("data-workload", String(w.id)), ("data-key", w.key),
                                              ("data-contender", m.allocator), ("data-ratio", "\(r)"),
                                              ("data-ns-per-op", "\(m.nsPerOp)")],
                                        content: "<title>\(SVG.escape(tip))</title>" + shapes.joined()))
                y += rowHeight
            }
            doc.add("<g class=\"workload\" data-workload=\"\(w.id)\">" + bars.joined() + "</g>")
        }
        doc.line(x1: axis.start, y1: plotBottom, x2: axis.end, y2: plotBottom, cssClass: "frame")
        var fy = plotBottom + 60
        for (name, why) in report.skipped.sorted(by: { $0.key < $1.key }) {
            doc.text("skipped \(name): \(why)", x: 40, y: fy, cssClass: "note")
            fy += 15
        }
        return doc.rendered()
    }
}
