import Foundation
import LockscopeCore

/// A profile's timeline as a standalone SVG (no script, no fetches): four panels over the seconds of
/// the recording, sharing the time axis.
///
/// 1. lock wait per second, stacked: namespace_sem, mount_lock, every other lock;
/// 2. the victims' wait per second and their longest wait;
/// 3. mount syscalls per second;
/// 4. containers started per second, as bars.
///
/// Each panel has its own y axis with its unit, a legend and grid lines; every second has a hover
/// tooltip with all of its values. Each series is one `<path class="series" data-series=...>` (the
/// names of `TimelineSeries`), which the tests and `scripts/check-timeline-svg.sh` look for. A
/// recording of more seconds than the plot has pixels (`maxColumns`) is drawn with its seconds merged
/// evenly, as the terminal chart does (`Timeline.values(of:binsPerColumn:)`), so the file stays small
/// however long the recording; the subtitle says so.
public enum TimelineSVG {
    public struct Options: Sendable, Equatable {
        /// The heading; nil for "Lock contention over time".
        public var title: String?

        public init(title: String? = nil) {
            self.title = title
        }
    }

    /// How a panel draws its series.
    enum Style {
        /// Areas stacked in the order given, the first at the bottom, each a step per second.
        case stackedSteps
        /// A line through the middle of each second.
        case lines
        /// A bar per second.
        case bars
    }

    struct Panel {
        var name: String
        var title: String
        var style: Style
        var series: [TimelineSeries]
    }

    static let panels = [
        Panel(name: "wait", title: "Lock wait per second", style: .stackedSteps,
              series: [.namespaceSemWait, .mountLockWait, .otherWait]),
        Panel(name: "victims", title: "Victims: wait per second and longest wait", style: .lines,
              series: [.victimWait, .victimMaxWait]),
        Panel(name: "mounts", title: "Mount syscalls per second", style: .lines, series: [.mountOps]),
        Panel(name: "starts", title: "Containers started per second", style: .bars, series: [.containersStarted]),
    ]

    static func color(_ series: TimelineSeries) -> String {
        switch series {
        case .namespaceSemWait: "#d9534f"
        case .mountLockWait: "#f0a030"
        case .otherWait: "#a0a0a0"
        case .victimWait: "#5b7fd6"
        case .victimMaxWait: "#1d2f6f"
        case .mountOps: "#2e8b57"
        case .containersStarted: "#8e44ad"
        }
    }

    // Geometry.
    static let imageWidth = 1000.0
    static let left = 90.0, right = 30.0
    static let headerHeight = 64.0
    /// Room above each plot for its title and legend, and below it for the time labels.
    static let panelTop = 30.0, panelBottom = 34.0
    static let plotHeight = 120.0
    static let footerHeight = 24.0
    static let fontSize = 12.0
    /// Width of one character of the monospace font at `fontSize` (DejaVu Sans Mono: 7.22), rounded up.
    static let charWidth = 7.3
    static var plotWidth: Double { imageWidth - left - right }
    /// Columns drawn at most: one a pixel.
    static var maxColumns: Int { Int(plotWidth) }
    static var panelHeight: Double { panelTop + plotHeight + panelBottom }
    static var imageHeight: Double { headerHeight + Double(panels.count) * panelHeight + footerHeight }

    /// The SVG, or a `UserError` when the profile has no timeline of two seconds or more.
    public static func render(_ profile: Profile, source: String, options: Options = Options()) throws -> String {
        guard let timeline = profile.timeline else {
            throw UserError("\(source) has no timeline: it was recorded before lockscope kept one; record it again")
        }
        guard timeline.bins.count >= 2 else {
            throw UserError("\(source)'s timeline has \(Units.count(timeline.bins.count, "second")): nothing to draw over time; record for longer")
        }
        let columns = Columns(timeline)
        let seconds = columns.totalSeconds
        let title = options.title ?? "Lock contention over time"
        // The recording's own duration: its last second may be partial, while the time axis spans whole seconds.
        var subtitle = "\(profile.hostname), kernel \(profile.kernel), recorded \(profile.startedAt) for \(Units.duration(profile.durationNs))"
        if columns.binsPerColumn > 1 {
            subtitle += "; a point is \(XScale.seconds(columns.secondsPerColumn)), averaged (longest wait: the longest)"
        }
        var svg = """
        <?xml version="1.0" encoding="UTF-8" standalone="no"?>
        <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(Int(imageWidth))" height="\(Int(imageHeight))" \
        viewBox="0 0 \(Int(imageWidth)) \(Int(imageHeight))" data-columns="\(columns.count)" data-seconds-per-column="\(fixed(columns.secondsPerColumn))">
        <title>\(XMLText.escape(title))</title>
        <style>
        text { font-family: monospace; font-size: \(Int(fontSize))px; fill: #000; }
        .title { font-size: 17px; text-anchor: middle; }
        .subtitle, .note { fill: #555; }
        .subtitle { text-anchor: middle; }
        .tick, .unit { fill: #444; }
        .axis { stroke: #444; stroke-width: 1; }
        .grid line { stroke: #ddd; stroke-width: 1; }
        .bins rect { fill: #000; fill-opacity: 0; }
        .bins rect:hover { fill-opacity: 0.06; }
        </style>
        <rect x="0" y="0" width="\(Int(imageWidth))" height="\(Int(imageHeight))" fill="#fcfcfa"/>
        <text class="title" x="\(Int(imageWidth / 2))" y="26">\(XMLText.escape(title))</text>
        <text class="subtitle" x="\(Int(imageWidth / 2))" y="46">\(XMLText.escape(subtitle))</text>

        """
        let xScale = XScale(seconds: seconds)
        for (index, panel) in panels.enumerated() {
            svg += self.panel(panel, columns: columns, top: headerHeight + Double(index) * panelHeight, x: xScale)
        }
        svg += hoverColumns(columns, x: xScale)
        svg += "<text class=\"note\" x=\"\(Int(left))\" y=\"\(Int(imageHeight - 8))\">A wait or syscall counts in the second it "
            + "ended; victims are processes that waited without issuing mount syscalls.</text>\n"
        return svg + "</svg>\n"
    }

    // MARK: Panels

    private static func panel(_ panel: Panel, columns: Columns, top: Double, x: XScale) -> String {
        let values = panel.series.map { columns.values[$0] ?? [] }
        // Stacked series reach the sum of their values; the others their own peak.
        let highest: Double = switch panel.style {
        case .stackedSteps: values.isEmpty ? 0 : (0..<columns.count).map { column in values.map { $0[column] }.reduce(0, +) }.max() ?? 0
        case .lines, .bars: values.flatMap { $0 }.max() ?? 0
        }
        // A panel of waits per second and longest waits labels its axis in plain time (its legend says which is which).
        let quantity = panel.series.allSatisfy { $0.quantity == panel.series[0].quantity } ? panel.series[0].quantity : .longestWait
        let y = YScale(highest: highest, quantity: quantity, top: top + panelTop, height: plotHeight)
        let plotTop = top + panelTop, base = plotTop + plotHeight
        var out = "<g class=\"panel\" data-panel=\"\(panel.name)\">\n"
        out += "<text class=\"panel-title\" x=\"\(fixed(left))\" y=\"\(fixed(top + 16))\">\(XMLText.escape(panel.title))</text>\n"
        out += legend(panel, x: left + Double(panel.title.count + 3) * charWidth, y: top + 16)
        // Grid and y axis.
        out += "<g class=\"grid\">"
        for tick in y.ticks.dropFirst() {
            out += "<line x1=\"\(fixed(left))\" y1=\"\(fixed(y(tick)))\" x2=\"\(fixed(left + plotWidth))\" y2=\"\(fixed(y(tick)))\"/>"
        }
        out += "</g>\n<g class=\"y-axis\"><line class=\"axis\" x1=\"\(fixed(left))\" y1=\"\(fixed(plotTop))\" x2=\"\(fixed(left))\" y2=\"\(fixed(base))\"/>"
        for tick in y.ticks {
            out += "<text class=\"tick\" x=\"\(fixed(left - 6))\" y=\"\(fixed(y(tick) + 4))\" text-anchor=\"end\">\(y.label(tick))</text>"
        }
        out += "<text class=\"unit\" x=\"\(fixed(left - 6))\" y=\"\(fixed(plotTop - 8))\" text-anchor=\"end\">\(XMLText.escape(y.unit))</text></g>\n"
        // Time axis.
        out += "<g class=\"x-axis\"><line class=\"axis\" x1=\"\(fixed(left))\" y1=\"\(fixed(base))\" x2=\"\(fixed(left + plotWidth))\" y2=\"\(fixed(base))\"/>"
        for tick in x.ticks {
            out += "<line class=\"axis\" x1=\"\(fixed(x(tick)))\" y1=\"\(fixed(base))\" x2=\"\(fixed(x(tick)))\" y2=\"\(fixed(base + 4))\"/>"
            out += "<text class=\"tick\" x=\"\(fixed(x(tick)))\" y=\"\(fixed(base + 17))\" text-anchor=\"middle\">\(x.label(tick))</text>"
        }
        out += "</g>\n"
        // Series, drawn last so they sit above the grid.
        var below = [Double](repeating: 0, count: columns.count)
        for (series, seriesValues) in zip(panel.series, values) {
            let d: String
            switch panel.style {
            case .stackedSteps:
                let above = zip(below, seriesValues).map { $0 + $1 }
                d = stepArea(lower: below, upper: above, columns: columns, x: x, y: y)
                below = above
            case .lines:
                d = line(seriesValues, columns: columns, x: x, y: y)
            case .bars:
                d = bars(seriesValues, columns: columns, x: x, y: y)
            }
            let paint = panel.style == .lines
                ? "fill=\"none\" stroke=\"\(color(series))\" stroke-width=\"2\"\(series.quantity == .longestWait ? " stroke-dasharray=\"6 3\"" : "")"
                : "fill=\"\(color(series))\" fill-opacity=\"0.85\""
            out += "<path class=\"series\" data-series=\"\(series.rawValue)\" data-peak=\"\(fixed(seriesValues.max() ?? 0))\" "
                + "d=\"\(d)\" \(paint)/>\n"
        }
        return out + "</g>\n"
    }

    private static func legend(_ panel: Panel, x start: Double, y: Double) -> String {
        var out = "<g class=\"legend\">"
        var x = start
        for series in panel.series {
            let swatch = panel.style == .lines
                ? "<line x1=\"\(fixed(x))\" y1=\"\(fixed(y - 4))\" x2=\"\(fixed(x + 14))\" y2=\"\(fixed(y - 4))\" stroke=\"\(color(series))\" stroke-width=\"2\"\(series.quantity == .longestWait ? " stroke-dasharray=\"4 2\"" : "")/>"
                : "<rect x=\"\(fixed(x))\" y=\"\(fixed(y - 10))\" width=\"14\" height=\"10\" fill=\"\(color(series))\"/>"
            let label = legendLabel(series)
            out += "<g class=\"legend-item\" data-series=\"\(series.rawValue)\">\(swatch)"
                + "<text x=\"\(fixed(x + 19))\" y=\"\(fixed(y))\">\(XMLText.escape(label))</text></g>"
            x += 19 + Double(label.count + 3) * charWidth
        }
        return out + "</g>\n"
    }

    static func legendLabel(_ series: TimelineSeries) -> String {
        switch series {
        case .victimWait: "victim wait per second"
        case .victimMaxWait: "longest victim wait"
        default: series.label
        }
    }

    /// Areas between `lower` and `upper`, flat over each column: along the top left to right, back
    /// along the bottom.
    private static func stepArea(lower: [Double], upper: [Double], columns: Columns, x: XScale, y: YScale) -> String {
        var d = ""
        for (index, value) in upper.enumerated() {
            d += (index == 0 ? "M\(fixed(x(columns.start(index)))) \(fixed(y(value)))" : "V\(fixed(y(value)))") + "H\(fixed(x(columns.end(index))))"
        }
        for (index, value) in lower.enumerated().reversed() {
            d += "V\(fixed(y(value)))H\(fixed(x(columns.start(index))))"
        }
        return d + "Z"
    }

    /// A line through the middle of each column.
    private static func line(_ values: [Double], columns: Columns, x: XScale, y: YScale) -> String {
        values.enumerated().map { index, value in
            (index == 0 ? "M" : "L") + "\(fixed(x((columns.start(index) + columns.end(index)) / 2))) \(fixed(y(value)))"
        }.joined()
    }

    /// A rectangle per column with a value, a fifth of the column's width left free on each side; the
    /// baseline alone when there are none (the path still spans the time axis).
    private static func bars(_ values: [Double], columns: Columns, x: XScale, y: YScale) -> String {
        let base = y(0)
        var d = ""
        for (index, value) in values.enumerated() where value > 0 {
            let (start, end) = (columns.start(index), columns.end(index))
            let (left, right) = (x(start + (end - start) * 0.2), x(start + (end - start) * 0.8))
            d += "M\(fixed(left)) \(fixed(base))V\(fixed(y(value)))H\(fixed(right))V\(fixed(base))Z"
        }
        return d.isEmpty ? "M\(fixed(x(0))) \(fixed(base))H\(fixed(x(columns.totalSeconds)))" : d
    }

    /// A transparent column over every panel per column drawn, its tooltip every value of it as drawn.
    private static func hoverColumns(_ columns: Columns, x: XScale) -> String {
        var out = "<g class=\"bins\">\n"
        let top = headerHeight + panelTop, height = Double(panels.count) * panelHeight - panelTop - panelBottom
        for index in 0..<columns.count {
            let (start, end) = (columns.start(index), columns.end(index))
            var lines = ["\(XScale.seconds(start))–\(XScale.seconds(end))"]
            for series in TimelineSeries.allCases {
                lines.append("\(legendLabel(series)): \(series.format(columns.values[series]?[index] ?? 0))")
            }
            out += "<rect x=\"\(fixed(x(start)))\" y=\"\(fixed(top))\" width=\"\(fixed(x(end) - x(start)))\" "
                + "height=\"\(fixed(height))\"><title>\(XMLText.escape(lines.joined(separator: "\n")))</title></rect>\n"
        }
        return out + "</g>\n"
    }

    /// The timeline as drawn: a column per bin, or bins merged evenly into at most `maxColumns`.
    struct Columns {
        let binsPerColumn: Int
        let secondsPerColumn: Double
        let totalSeconds: Double
        let count: Int
        /// Every series, a value per column (per second, or the longest wait).
        let values: [TimelineSeries: [Double]]

        init(_ timeline: Timeline) {
            let merged = timeline.binsPerColumn(fitting: TimelineSVG.maxColumns)
            binsPerColumn = merged
            secondsPerColumn = Double(merged) * timeline.binSeconds
            totalSeconds = Double(timeline.bins.count) * timeline.binSeconds
            count = (timeline.bins.count + merged - 1) / merged
            values = Dictionary(uniqueKeysWithValues: TimelineSeries.allCases.map { ($0, timeline.values(of: $0, binsPerColumn: merged)) })
        }

        func start(_ column: Int) -> Double { Double(column) * secondsPerColumn }
        /// The last column ends with the recording.
        func end(_ column: Int) -> Double { Swift.min(totalSeconds, Double(column + 1) * secondsPerColumn) }
    }

    /// `value` with two decimals (never negative), as the flame graph writes coordinates.
    static func fixed(_ value: Double) -> String { FlameGraphSVG.fixed(value) }
}

/// Seconds to x: the recording spans the plot's width; ticks every 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10,
/// 15, 30 min or hours, at most 10 of them.
struct XScale {
    let seconds: Double
    let step: Double

    init(seconds: Double) {
        let span = Swift.max(seconds, 1)
        let steps: [Double] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]
        self.seconds = span
        step = steps.first { span / $0 <= 10 } ?? (span / 10 / 3600).rounded(.up) * 3600
    }

    func callAsFunction(_ time: Double) -> Double {
        TimelineSVG.left + time / seconds * TimelineSVG.plotWidth
    }

    var ticks: [Double] { stride(from: 0, through: seconds + 1e-9, by: step).map { $0 } }

    func label(_ time: Double) -> String { Self.seconds(time) }

    /// `45 s`, `1.5 s`, `12 min`, `1 h 30 min`.
    static func seconds(_ time: Double) -> String {
        if time < 120 || time.truncatingRemainder(dividingBy: 60) != 0 {
            return time == time.rounded() ? "\(Int(time)) s" : String(format: "%.1f s", time)
        }
        let minutes = Int(time / 60)
        if minutes < 60 { return "\(minutes) min" }
        return minutes % 60 == 0 ? "\(minutes / 60) h" : "\(minutes / 60) h \(minutes % 60) min"
    }
}

/// Values to y in a panel: from 0 up to a round number at or above the highest value, ticks at a
/// round step (1, 2, 2.5 or 5 times a power of ten of the unit, counts at least 1), durations in the unit
/// that suits the top.
struct YScale {
    let top: Double
    let height: Double
    let maximum: Double
    let step: Double
    /// Nanoseconds per unit of the labels (1 for counts).
    let divisor: Double
    let unit: String

    init(highest: Double, quantity: TimelineSeries.Quantity, top: Double, height: Double) {
        self.top = top
        self.height = height
        let floor: Double = quantity == .count ? 1 : 1_000  // an empty panel still gets an axis
        let rough = Swift.max(highest, floor) / 4
        let magnitude = pow(10, (log10(rough)).rounded(.down))
        let round = [1, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
        step = quantity == .count ? Swift.max(1, round) : round  // no quarter of a container
        maximum = (Swift.max(highest, floor) / step).rounded(.up) * step
        switch quantity {
        case .count:
            (divisor, unit) = (1, "per s")
        case .waitPerSecond, .longestWait:
            let (scale, name): (Double, String) = maximum >= 1e9 ? (1e9, "s") : maximum >= 1e6 ? (1e6, "ms") : maximum >= 1e3 ? (1e3, "us") : (1, "ns")
            (divisor, unit) = (scale, quantity == .waitPerSecond ? "\(name) per s" : name)
        }
    }

    func callAsFunction(_ value: Double) -> Double {
        top + height - Swift.min(value, maximum) / maximum * height
    }

    var ticks: [Double] { stride(from: 0, through: maximum + step / 2, by: step).map { $0 } }

    /// A tick's value in the unit: `0`, `250`, `1.5`, `0.25`.
    func label(_ value: Double) -> String {
        let scaled = value / divisor
        if scaled == scaled.rounded() { return String(format: "%.0f", scaled) }
        var text = String(format: "%.2f", scaled)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }
}
