import Foundation
import LockscopeCore

/// `lockscope diff`'s table: per subject a heading with its contentions and verdict, then one row per
/// metric with base, current, delta, percent change and verdict. Fits 80 columns. Each line has its
/// control characters escaped (lock names come from the profiles).
public enum DiffTable {
    static let width = 80
    private static let labelWidth = 17, valueWidth = 10, deltaWidth = 11, changeWidth = 8
    /// Where the verdict column starts.
    private static let verdictColumn = labelWidth + 1 + valueWidth + 1 + valueWidth + 1 + deltaWidth + 1 + changeWidth + 2

    public static func render(_ comparison: Comparison) -> String {
        let settings = comparison.settings
        var lines = ["Current \(comparison.currentSource) against baseline \(comparison.baseSource)"]
        let limits = settings.metrics.map { "\($0.rawValue) \(settings.limit(for: $0).describe(for: $0))" }
        lines += wrap(limits.map { $0 + "," } + ["at least \(settings.minContentions) contentions."], prefix: "Limits: ")
        lines.append("")
        lines.append("".padding(toLength: labelWidth, withPad: " ", startingAt: 0) + " " + right("base", valueWidth) + " "
                     + right("current", valueWidth) + " " + right("delta", deltaWidth) + " " + right("change", changeWidth)
                     + "  verdict")
        for subject in comparison.subjects {
            let heading = CheckReport.subjectHeading(subject)
            let gap = max(2, verdictColumn - heading.count)
            lines.append(heading + String(repeating: " ", count: gap) + subject.verdict.label)
            guard subject.verdict != .notEnoughData else { continue }
            for metric in subject.metrics {
                let quantity = metric.metric.quantity
                lines.append("  " + metric.metric.title.padding(toLength: labelWidth - 2, withPad: " ", startingAt: 0)
                             + " " + right(HumanUnits.format(metric.base, quantity), valueWidth)
                             + " " + right(HumanUnits.format(metric.current, quantity), valueWidth)
                             + " " + right(HumanUnits.formatDelta(metric.delta, quantity), deltaWidth)
                             + " " + right(CheckReport.changeText(metric), changeWidth)
                             + "  " + metric.verdict.label)
            }
        }
        if comparison.subjects.isEmpty { lines.append("No lock contention in either profile.") }
        lines += victimLines(comparison.victims)
        if let starts = comparison.containerStarts { lines += startLines(starts) }
        lines.append("")
        let tally = [Verdict.regressed, .improved, .unchanged, .notEnoughData].map { verdict in
            "\(comparison.subjects.filter { $0.verdict == verdict }.count) \(verdict.label)"
        }
        lines.append(tally.joined(separator: ", ") + ".")
        for note in comparison.notes { lines += wrap(note.split(separator: " ").map(String.init), prefix: "Note: ") }
        return lines.map(TerminalText.escaped).joined(separator: "\n") + "\n"
    }

    /// Victim names listed before the rest are counted.
    static let listedVictims = 10

    /// The victims' total wait, base against current, by process name (shown, not judged).
    private static func victimLines(_ victims: [VictimComparison]) -> [String] {
        guard !victims.isEmpty else { return [] }
        var lines = ["", "victims (waited, never mounted): total wait by process name"]
        for victim in victims.prefix(listedVictims) {
            lines.append(row(victim.process, Double(victim.baseTotalWaitNs), Double(victim.currentTotalWaitNs)))
        }
        if victims.count > listedVictims {
            lines.append("  ... \(victims.count - listedVictims) more (diff --format json lists all)")
        }
        return lines
    }

    /// The container starts' lock wait, base against current.
    private static func startLines(_ starts: StartComparison) -> [String] {
        var lines = ["", "container starts (\(starts.base.starts) → \(starts.current.starts)): lock wait in their mount syscalls"]
        lines.append(row("per start", starts.base.meanLockWaitNs, starts.current.meanLockWaitNs))
        lines.append(row("longest", Double(starts.base.maxLockWaitNs), Double(starts.current.maxLockWaitNs)))
        if let base = starts.base.meanWaitShare, let current = starts.current.meanWaitShare {
            lines.append("  " + "share of set-up".padding(toLength: labelWidth - 2, withPad: " ", startingAt: 0)
                         + " " + right(String(format: "%.1f%%", base * 100), valueWidth)
                         + " " + right(String(format: "%.1f%%", current * 100), valueWidth)
                         + " " + right(String(format: "%+.1f pt", (current - base) * 100), deltaWidth))
        }
        return lines
    }

    /// A row of two durations in the metric rows' columns: base, current, delta and change.
    private static func row(_ label: String, _ base: Double, _ current: Double) -> String {
        "  " + label.padding(toLength: labelWidth - 2, withPad: " ", startingAt: 0)
            + " " + right(HumanUnits.format(base, .latency), valueWidth)
            + " " + right(HumanUnits.format(current, .latency), valueWidth)
            + " " + right(HumanUnits.formatDelta(current - base, .latency), deltaWidth)
            + " " + right(changeText(base: base, current: current), changeWidth)
    }

    /// `-83%`, `+12%`, `new` from nothing, `0%` from nothing to nothing.
    static func changeText(base: Double, current: Double) -> String {
        base == 0 ? (current == 0 ? "0%" : "new") : HumanUnits.formatPercent((current - base) / base * 100)
    }

    private static func right(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }

    /// Words joined by spaces into lines of at most 80 columns (`TerminalText.wrap`).
    static func wrap(_ words: [String], prefix: String) -> [String] {
        TerminalText.wrap(words, prefix: prefix, width: width)
    }
}
