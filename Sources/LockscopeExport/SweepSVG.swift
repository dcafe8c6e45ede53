import Foundation
import LockscopeCore

/// A placement × parallelism sweep as a standalone SVG (no script, no fetches): two panels against the
/// number of containers starting at once, one line per placement through the medians, with a band from
/// the lowest to the highest run.
///
/// 1. container set-up latency, p99 (ms);
/// 2. lock wait on namespace_sem and mount_lock (ms).
///
/// Parallelism levels are spaced evenly (they are usually powers of two). Each placement's line is a
/// `<path class="series" data-series=PLACEMENT>` and its band a `<path class="band">`, which
/// `scripts/check-timeline-svg.sh` checks in Chromium
/// (bands present, inside the plot, upper edge at or above the lower).
public enum SweepSVG {
    struct Panel {
        var name: String
        var title: String
        var metrics: [SweepMetric]
    }

    static let panels = [
        Panel(name: "setup", title: "Container set-up latency, p99", metrics: [.setupP99]),
        Panel(name: "wait", title: "Lock wait: namespace_sem + mount_lock", metrics: [.namespaceSemWait, .mountLockWait]),
    ]
    static let colors = ["#d9534f", "#5b7fd6", "#3c9a5f", "#f0a030", "#8e5bb5", "#4a4a4a"]

    static let imageWidth = 900.0
    static let left = 80.0, right = 190.0
    static let headerHeight = 76.0
    static let panelTop = 30.0, plotHeight = 200.0, panelBottom = 44.0
    static let fontSize = 12.0
    static var plotWidth: Double { imageWidth - left - right }
    static var panelHeight: Double { panelTop + plotHeight + panelBottom }
    static var imageHeight: Double { headerHeight + Double(panels.count) * panelHeight + 10 }

    public static func render(_ sweep: Sweep) throws -> String {
        let levels = Array(Set(sweep.points.map(\.parallel))).sorted()
        guard !levels.isEmpty else { throw UserError("the sweep has no points: nothing to draw") }
        func x(_ parallel: Int) -> Double {
            let index = Double(levels.firstIndex(of: parallel) ?? 0)
            return left + (levels.count == 1 ? plotWidth / 2 : index / Double(levels.count - 1) * plotWidth)
        }
        var svg = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(fixed(imageWidth))" height="\(fixed(imageHeight))" \
            viewBox="0 0 \(fixed(imageWidth)) \(fixed(imageHeight))" font-family="sans-serif" font-size="\(fixed(fontSize))" \
            data-columns="\(levels.count)">
            <rect width="100%" height="100%" fill="#ffffff"/>
            <text x="\(fixed(left))" y="24" font-size="17">\(XMLText.escape("Placement × parallelism sweep on \(sweep.hostname)"))</text>
            <text x="\(fixed(left))" y="44" fill="#555555">\(XMLText.escape(sweep.workload))</text>
            <text x="\(fixed(left))" y="62" fill="#555555">\(XMLText.escape(subtitle(sweep)))</text>

            """
        for (index, panel) in panels.enumerated() {
            svg += render(panel, sweep: sweep, levels: levels, x: x, top: headerHeight + Double(index) * panelHeight)
        }
        // A hover column per parallelism level, with every placement's medians.
        svg += "<g class=\"bins\">\n"
        let halfStep = levels.count == 1 ? plotWidth / 2 : plotWidth / Double(levels.count - 1) / 2
        for level in levels {
            let lines = sweep.placements.compactMap { placement -> String? in
                guard let point = sweep.points(of: placement.name).first(where: { $0.parallel == level }) else { return nil }
                let check = point.check == .confined ? "" : point.check == .outside ? " (ran outside the placement)" : " (placement unverified)"
                return String(format: "%@: set-up p99 %.1f ms, namespace_sem wait %.1f ms, mount_lock wait %.2f ms, "
                              + "namespace_sem spin %.1f ms, mount_lock spin %.2f ms%@", placement.name,
                              point.spread(.setupP99).median, point.spread(.namespaceSemWait).median,
                              point.spread(.mountLockWait).median, point.spread(.namespaceSemSpin).median,
                              point.spread(.mountLockSpin).median, check)
            }
            let start = Swift.max(left, x(level) - halfStep), end = Swift.min(left + plotWidth, x(level) + halfStep)
            svg += "<rect x=\"\(fixed(start))\" y=\"\(fixed(headerHeight))\" width=\"\(fixed(end - start))\" "
                + "height=\"\(fixed(Double(panels.count) * panelHeight))\" fill=\"#000000\" fill-opacity=\"0\">"
                + "<title>\(XMLText.escape((["parallel \(level)"] + lines).joined(separator: "\n")))</title></rect>\n"
        }
        return svg + "</g>\n</svg>\n"
    }

    static func subtitle(_ sweep: Sweep) -> String {
        "median of \(sweep.points.first?.runs.count ?? 0) runs, band from the lowest to the highest; "
            + "\(sweep.confinement.rawValue) confinement"
    }

    private static func render(_ panel: Panel, sweep: Sweep, levels: [Int], x: (Int) -> Double, top: Double) -> String {
        func value(_ point: SweepPoint, _ pick: (Spread) -> Double) -> Double {
            panel.metrics.map { pick(point.spread($0)) }.reduce(0, +)
        }
        let highest = sweep.points.map { value($0, \.max) }.max() ?? 0
        let plotTop = top + panelTop, base = top + panelTop + plotHeight
        let scale = AxisScale(highest: highest, top: plotTop, height: plotHeight)
        var out = "<g class=\"panel\" data-panel=\"\(panel.name)\">\n"
        out += "<text class=\"panel-title\" x=\"\(fixed(left))\" y=\"\(fixed(top + 18))\" font-weight=\"bold\">\(XMLText.escape(panel.title))</text>\n"
        out += "<g class=\"y-axis\"><line x1=\"\(fixed(left))\" y1=\"\(fixed(plotTop))\" x2=\"\(fixed(left))\" y2=\"\(fixed(base))\" stroke=\"#333333\"/>\n"
        for tick in scale.ticks {
            let y = scale(tick)
            out += "<line x1=\"\(fixed(left))\" y1=\"\(fixed(y))\" x2=\"\(fixed(left + plotWidth))\" y2=\"\(fixed(y))\" stroke=\"#e4e4e4\"/>"
                + "<text class=\"tick\" x=\"\(fixed(left - 6))\" y=\"\(fixed(y + 4))\" text-anchor=\"end\">\(scale.label(tick))</text>\n"
        }
        out += "<text class=\"unit\" x=\"\(fixed(left - 6))\" y=\"\(fixed(plotTop - 8))\" text-anchor=\"end\" fill=\"#555555\">ms</text></g>\n"
        out += "<g class=\"x-axis\"><line x1=\"\(fixed(left))\" y1=\"\(fixed(base))\" x2=\"\(fixed(left + plotWidth))\" y2=\"\(fixed(base))\" stroke=\"#333333\"/>\n"
        for level in levels {
            out += "<text class=\"tick\" x=\"\(fixed(x(level)))\" y=\"\(fixed(base + 16))\" text-anchor=\"middle\">\(level)</text>\n"
        }
        out += "<text x=\"\(fixed(left + plotWidth / 2))\" y=\"\(fixed(base + 34))\" text-anchor=\"middle\" "
            + "fill=\"#555555\">containers starting at once (--parallel)</text></g>\n"
        var legend = ""
        for (index, placement) in sweep.placements.enumerated() {
            let points = sweep.points(of: placement.name)
            guard !points.isEmpty else { continue }
            let color = colors[index % colors.count]
            let name = XMLText.escape(placement.name)
            let upper = points.map { "\(fixed(x($0.parallel))),\(fixed(scale(value($0, \.max))))" }
            let lower = points.reversed().map { "\(fixed(x($0.parallel))),\(fixed(scale(value($0, \.min))))" }
            out += "<path class=\"band\" data-series=\"\(name)\" d=\"M\(upper.joined(separator: " L")) L\(lower.joined(separator: " L")) Z\" "
                + "fill=\"\(color)\" fill-opacity=\"0.15\" stroke=\"none\"/>\n"
            let line = points.map { "\(fixed(x($0.parallel))),\(fixed(scale(value($0, \.median))))" }
            let peak = points.map { value($0, \.median) }.max() ?? 0
            // One level alone is a point: a short tick so that the line has a width.
            let path = points.count == 1 ? "M\(fixed(x(points[0].parallel) - 4)),\(fixed(scale(peak))) L\(fixed(x(points[0].parallel) + 4)),\(fixed(scale(peak)))"
                : "M\(line.joined(separator: " L"))"
            out += "<path class=\"series\" data-series=\"\(name)\" data-peak=\"\(fixed(peak))\" d=\"\(path)\" fill=\"none\" "
                + "stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            for point in points {
                out += "<circle cx=\"\(fixed(x(point.parallel)))\" cy=\"\(fixed(scale(value(point, \.median))))\" r=\"3\" fill=\"\(color)\"/>\n"
            }
            let legendY = plotTop + 14 + Double(index) * 18
            legend += "<g class=\"legend-item\" data-series=\"\(name)\"><rect x=\"\(fixed(left + plotWidth + 16))\" y=\"\(fixed(legendY - 9))\" "
                + "width=\"12\" height=\"10\" fill=\"\(color)\"/><text x=\"\(fixed(left + plotWidth + 34))\" y=\"\(fixed(legendY))\">\(name)</text></g>\n"
        }
        return out + legend + "</g>\n"
    }

    static func fixed(_ value: Double) -> String { FlameGraphSVG.fixed(value) }
}

/// A y axis from 0 to a round number above `highest` (milliseconds), with four or five ticks.
private struct AxisScale {
    let top: Double, height: Double, step: Double, maximum: Double

    init(highest: Double, top: Double, height: Double) {
        self.top = top
        self.height = height
        let rough = Swift.max(highest, 0.001) / 4
        let magnitude = pow(10, log10(rough).rounded(.down))
        step = [1, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
        maximum = (Swift.max(highest, 0.001) / step).rounded(.up) * step
    }

    func callAsFunction(_ value: Double) -> Double { top + height - Swift.min(value, maximum) / maximum * height }

    var ticks: [Double] { stride(from: 0, through: maximum + step / 2, by: step).map { $0 } }

    func label(_ value: Double) -> String {
        if value == value.rounded() { return String(format: "%.0f", value) }
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }
}
