import LockscopeCore

/// The profile's timeline in the terminal: one sparkline row per series over the seconds of the
/// recording, each row scaled to its own peak (printed at its right), in 80 columns and without colour.
/// Up to `columns` seconds get a column each (stretched to several when few); a longer recording has
/// several seconds merged into each column, evenly (`Timeline.values(of:binsPerColumn:)`), and says so.
public struct TimelineChart {
    /// The series drawn, top to bottom.
    public static let series: [TimelineSeries] = [.containersStarted, .mountOps, .namespaceSemWait, .mountLockWait,
                                                   .victimMaxWait]
    /// Room for the chart: 80 columns less the indent, the label, the peak and the gaps between them.
    public static let columns = 46
    static let labelWidth = 18, peakWidth = 10
    /// Heights from lowest to highest; a zero is a blank.
    static let levels: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]

    public let timeline: Timeline

    public init(_ timeline: Timeline) {
        self.timeline = timeline
    }

    /// The chart, or nil when the timeline has fewer than two bins (nothing to see over time).
    public func render() -> String? {
        let bins = timeline.bins.count
        guard bins >= 2 else { return nil }
        let perColumn = timeline.binsPerColumn(fitting: Self.columns)
        let stretch = perColumn == 1 ? Swift.max(1, Self.columns / bins) : 1
        let seconds = Units.duration(roundedFrom: Double(bins) * timeline.binSeconds * 1e9)
        let bin = timeline.binNs == 1_000_000_000 ? "second" : Units.duration(roundedFrom: timeline.binSeconds * 1e9)
        var lines: [String]
        if perColumn == 1 {
            let width = stretch == 1 ? "a column" : "\(stretch) columns"
            lines = ["timeline over \(seconds), \(width) a \(bin); each row scaled to its peak (right)"]
        } else {
            let span = Units.duration(roundedFrom: Double(perColumn) * timeline.binSeconds * 1e9)
            let columns = Units.count((bins + perColumn - 1) / perColumn, "column")
            let text = "timeline over \(seconds), downsampled to \(columns) of \(span) (rates and waits averaged per"
                + " second, max wait the longest); each row scaled to its peak (right)"
            lines = TerminalText.wrap(text.split(separator: " ").map(String.init), prefix: "")
        }
        var chartWidth = 0
        for series in Self.series {
            let values = timeline.values(of: series, binsPerColumn: perColumn)
            let peak = values.max() ?? 0
            let row = values.map { String(repeating: Self.level($0, peak: peak), count: stretch) }.joined()
            chartWidth = row.count
            lines.append("  " + padded(series.label, Self.labelWidth) + "  " + padded(row, chartWidth) + "  "
                         + String(repeating: " ", count: Swift.max(0, Self.peakWidth - series.format(peak).count))
                         + series.format(peak))
        }
        let start = "0 s", end = seconds
        let gap = Swift.max(1, chartWidth - start.count - end.count)
        lines.append(String(repeating: " ", count: 2 + Self.labelWidth + 2) + start + String(repeating: " ", count: gap) + end)
        return lines.joined(separator: "\n") + "\n"
    }

    /// The block for `value` in a row whose highest value is `peak`: a blank for zero, else one of
    /// eight heights, the peak the full block.
    static func level(_ value: Double, peak: Double) -> Character {
        guard value > 0, peak > 0 else { return " " }
        let index = Int((value / peak * Double(levels.count)).rounded(.up)) - 1
        return levels[Swift.min(levels.count - 1, Swift.max(0, index))]
    }

    private func padded(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: Swift.max(0, width - text.count))
    }
}
