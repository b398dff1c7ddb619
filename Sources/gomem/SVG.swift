// A small SVG writer for gomem plot and gomem bench --svg: a document of
// escaped elements, axes (linear or log10) with ticks and grid lines, and a
// legend. No dependency: the charts are plain text, readable on GitHub (white
// background, system sans-serif fonts) and in any browser.
import Foundation

/// An SVG document under construction: a fixed size, a title, and elements
/// added in drawing order.
struct SVGDocument {
    let width: Double
    let height: Double
    /// The document's <title>, shown by browsers and screen readers.
    let title: String
    private(set) var elements: [String] = []

    init(width: Double, height: Double, title: String) {
        self.width = width
        self.height = height
        self.title = title
    }

    mutating func add(_ element: String) { elements.append(element) }

    /// Text at (x, y); `anchor` is start, middle or end.
    mutating func text(_ s: String, x: Double, y: Double, anchor: String = "start", cssClass: String? = nil,
                       rotate: Bool = false, fill: String? = nil) {
        var attrs: [(String, String)] = [("x", SVG.num(x)), ("y", SVG.num(y))]
        if anchor != "start" { attrs.append(("text-anchor", anchor)) }
        if let c = cssClass { attrs.append(("class", c)) }
        if let f = fill { attrs.append(("fill", f)) }
        if rotate { attrs.append(("transform", "rotate(-90 \(SVG.num(x)) \(SVG.num(y)))")) }
        add(SVG.element("text", attrs, content: SVG.escape(s)))
    }

    mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, cssClass: String) {
        add(SVG.element("line", [("x1", SVG.num(x1)), ("y1", SVG.num(y1)), ("x2", SVG.num(x2)), ("y2", SVG.num(y2)),
                                 ("class", cssClass)]))
    }

    /// The whole document: XML declaration, root element, style, background.
    func rendered() -> String {
        let style = """
            text { font-family: 'DejaVu Sans', 'Helvetica Neue', Helvetica, Arial, sans-serif; font-size: 12px; fill: #222; }
            .title { font-size: 17px; font-weight: bold; }
            .subtitle { font-size: 12px; fill: #555; }
            .axis-title { font-size: 13px; fill: #333; }
            .tick { font-size: 11px; fill: #555; }
            .note { font-size: 11px; fill: #555; }
            .group { font-size: 13px; font-weight: bold; }
            .value { font-size: 11px; fill: #333; }
            .frame { fill: none; stroke: #888; stroke-width: 1; }
            .grid { stroke: #e3e3e3; stroke-width: 1; }
            .grid-minor { stroke: #f2f2f2; stroke-width: 1; }
            .ref { stroke: #999; stroke-width: 1; stroke-dasharray: 4 3; fill: none; }
            .one { stroke: #444; stroke-width: 1.2; }
            """
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(SVG.num(width))\" height=\"\(SVG.num(height))\" "
            + "viewBox=\"0 0 \(SVG.num(width)) \(SVG.num(height))\" role=\"img\">\n"
        out += "<title>\(SVG.escape(title))</title>\n"
        out += "<style>\n\(style)\n</style>\n"
        out += "<rect x=\"0\" y=\"0\" width=\"\(SVG.num(width))\" height=\"\(SVG.num(height))\" fill=\"#ffffff\"/>\n"
        for e in elements { out += e + "\n" }
        out += "</svg>\n"
        return out
    }
}

enum SVG {
    /// Text and attribute values with XML's five special characters escaped.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }

    /// A coordinate with at most two decimals and no trailing zeros.
    static func num(_ v: Double) -> String {
        let r = (v * 100).rounded() / 100
        if r == r.rounded() && abs(r) < 1e15 { return String(Int(r)) }
        var s = String(format: "%.2f", r)
        while s.hasSuffix("0") { s.removeLast() }
        return s
    }

    /// `<name a="v" ...>content</name>`, or self-closing without content.
    /// Attribute values are escaped here; `content` must already be markup.
    static func element(_ name: String, _ attributes: [(String, String)], content: String? = nil) -> String {
        let attrs = attributes.map { " \($0.0)=\"\(escape($0.1))\"" }.joined()
        guard let content else { return "<\(name)\(attrs)/>" }
        return "<\(name)\(attrs)>\(content)</\(name)>"
    }

    /// 1, 10, 100, 1k, 10k, 100k, 1M, 10M: short labels for log-axis ticks.
    static func compact(_ v: Double) -> String {
        let units: [(Double, String)] = [(1e9, "G"), (1e6, "M"), (1e3, "k")]
        for (scale, suffix) in units where abs(v) >= scale {
            return trimmed(v / scale) + suffix
        }
        return trimmed(v)
    }

    /// 0.5, 2, 1.25: up to three decimals, no trailing zeros.
    static func trimmed(_ v: Double) -> String {
        var s = String(format: "%.3f", v)
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }

    /// A polyline path through points ("M x y L x y ...").
    static func path(_ points: [(Double, Double)]) -> String {
        points.enumerated().map { i, p in "\(i == 0 ? "M" : "L")\(num(p.0)) \(num(p.1))" }.joined(separator: " ")
    }
}

/// One axis: a domain of values mapped onto a pixel range, linear or log10.
struct Axis {
    enum Scale { case linear, log }
    let scale: Scale
    let lower: Double
    let upper: Double
    /// Pixel positions of `lower` and `upper` (for a y axis, start > end).
    let start: Double
    let end: Double

    func position(_ v: Double) -> Double {
        let f: Double
        switch scale {
        case .linear: f = (v - lower) / (upper - lower)
        case .log: f = (log10(max(v, lower)) - log10(lower)) / (log10(upper) - log10(lower))
        }
        return start + f * (end - start)
    }

    /// Major ticks with labels, and unlabelled minor ticks (log axes: 2...9
    /// times each power of ten; with few decades, 2 and 5 are labelled too).
    func ticks() -> (major: [(value: Double, label: String)], minor: [Double]) {
        switch scale {
        case .linear:
            let step = Self.niceStep((upper - lower) / 5)
            var major: [(Double, String)] = []
            var v = (lower / step).rounded(.up) * step
            while v <= upper + step * 1e-9 {
                major.append((v, SVG.compact(v)))
                v += step
            }
            return (major, [])
        case .log:
            var major: [(Double, String)] = [], minor: [Double] = []
            let decades = log10(upper) - log10(lower)
            var p = pow(10, log10(lower).rounded(.down))
            while p <= upper * (1 + 1e-9) {
                for m in 1...9 {
                    let v = p * Double(m)
                    guard v >= lower * (1 - 1e-9) && v <= upper * (1 + 1e-9) else { continue }
                    if m == 1 || (decades < 2.5 && (m == 2 || m == 5)) {
                        major.append((v, SVG.compact(v)))
                    } else {
                        minor.append(v)
                    }
                }
                p *= 10
            }
            return (major, minor)
        }
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0 else { return 1 }
        let p = pow(10, log10(raw).rounded(.down))
        for m in [1.0, 2, 5, 10] where m * p >= raw * (1 - 1e-9) { return m * p }
        return 10 * p
    }
}

/// A rectangular plot area with an x and a y axis: grid, ticks, labels and
/// axis titles are drawn by ``draw(into:)``; series are drawn by the caller
/// with the axes' `position`.
struct Panel {
    let x: Axis
    let y: Axis
    let xTitle: String
    let yTitle: String
    var xTickFormat: (Double) -> String = SVG.compact
    var yTickFormat: (Double) -> String = SVG.compact

    var left: Double { x.start }
    var right: Double { x.end }
    var top: Double { y.end }
    var bottom: Double { y.start }

    func draw(into doc: inout SVGDocument) {
        let xt = x.ticks(), yt = y.ticks()
        for v in xt.minor { let p = x.position(v); doc.line(x1: p, y1: top, x2: p, y2: bottom, cssClass: "grid-minor") }
        for v in yt.minor { let p = y.position(v); doc.line(x1: left, y1: p, x2: right, y2: p, cssClass: "grid-minor") }
        for t in xt.major {
            let p = x.position(t.value)
            doc.line(x1: p, y1: top, x2: p, y2: bottom, cssClass: "grid")
            doc.line(x1: p, y1: bottom, x2: p, y2: bottom + 4, cssClass: "frame")
            doc.text(xTickFormat(t.value), x: p, y: bottom + 16, anchor: "middle", cssClass: "tick")
        }
        for t in yt.major {
            let p = y.position(t.value)
            doc.line(x1: left, y1: p, x2: right, y2: p, cssClass: "grid")
            doc.line(x1: left - 4, y1: p, x2: left, y2: p, cssClass: "frame")
            doc.text(yTickFormat(t.value), x: left - 7, y: p + 4, anchor: "end", cssClass: "tick")
        }
        doc.add(SVG.element("rect", [("x", SVG.num(left)), ("y", SVG.num(top)), ("width", SVG.num(right - left)),
                                     ("height", SVG.num(bottom - top)), ("class", "frame")]))
        doc.text(xTitle, x: (left + right) / 2, y: bottom + 36, anchor: "middle", cssClass: "axis-title")
        doc.text(yTitle, x: left - 48, y: (top + bottom) / 2, anchor: "middle", cssClass: "axis-title", rotate: true)
    }

    /// A clip path id for this panel's area, so lines never leave it.
    func clip(id: String, into doc: inout SVGDocument) {
        doc.add("<clipPath id=\"\(id)\">" + SVG.element("rect", [("x", SVG.num(left)), ("y", SVG.num(top - 3)),
                                                                 ("width", SVG.num(right - left + 3)),
                                                                 ("height", SVG.num(bottom - top + 6))]) + "</clipPath>")
    }
}

/// One legend entry: a swatch (line, line with a dot, dashed line or bar) and its label.
struct LegendItem {
    enum Mark { case line, lineAndDot, dashed, bar }
    let label: String
    let color: String
    let mark: Mark
}

extension SVGDocument {
    /// Legend items in one row from (x, y), wrapping at `maxX`; returns the
    /// y below the last row.
    @discardableResult
    mutating func legend(_ items: [LegendItem], x: Double, y: Double, maxX: Double) -> Double {
        var cx = x, cy = y
        var parts: [String] = []
        for item in items {
            // Text width estimated at 6.6 px per character of 12 px text.
            let w = 30 + Double(item.label.count) * 6.6 + 18
            if cx + w > maxX && cx > x { cx = x; cy += 20 }
            switch item.mark {
            case .bar:
                parts.append(SVG.element("rect", [("x", SVG.num(cx)), ("y", SVG.num(cy - 9)), ("width", "22"), ("height", "11"),
                                                  ("fill", item.color)]))
            case .line, .lineAndDot, .dashed:
                var attrs = [("d", "M\(SVG.num(cx)) \(SVG.num(cy - 4)) h22"), ("stroke", item.color), ("stroke-width", "2.2"),
                             ("fill", "none")]
                if item.mark == .dashed { attrs.append(("stroke-dasharray", "4 3")); attrs[2].1 = "1.2" }
                parts.append(SVG.element("path", attrs))
                if item.mark == .lineAndDot {
                    parts.append(SVG.element("circle", [("cx", SVG.num(cx + 11)), ("cy", SVG.num(cy - 4)), ("r", "3"),
                                                        ("fill", item.color)]))
                }
            }
            parts.append(SVG.element("text", [("x", SVG.num(cx + 28)), ("y", SVG.num(cy))], content: SVG.escape(item.label)))
            cx += w
        }
        add("<g class=\"legend\">" + parts.joined() + "</g>")
        return cy + 20
    }
}
