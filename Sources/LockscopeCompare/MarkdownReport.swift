import Foundation
import LockscopeCore

/// Markdown for a pull-request comment or `$GITHUB_STEP_SUMMARY`: a headline verdict, the regressions
/// and improvements in a table, the full comparison folded away, then the budget. `diff` prints it to
/// the terminal, so each line has its control characters escaped.
public enum MarkdownReport {
    /// The command whose report it is, which names the headline.
    public enum Command: Sendable {
        case check, diff
    }

    public static func render(_ result: CheckResult, for command: Command = .check) -> String {
        let verdict = switch command {
        case .check: result.passed ? "✅ lockscope check passed" : "❌ lockscope check failed"
        case .diff: result.passed ? "✅ lockscope diff" : "❌ lockscope diff"
        }
        var lines = ["### \(verdict): \(CheckReport.summary(result))", ""]
        if let comparison = result.comparison { lines += comparisonLines(comparison) }
        if let budget = result.budget { lines += budgetLines(budget) }
        return lines.map(TerminalText.escaped).joined(separator: "\n")
    }

    private static func comparisonLines(_ comparison: Comparison) -> [String] {
        let settings = comparison.settings
        var lines = ["Current \(code(comparison.currentSource)) against baseline \(code(comparison.baseSource)); "
                     + "a change counts when it exceeds both limits, with at least \(settings.minContentions) contentions.", ""]
        let noun = settings.grouping == .lock ? "Lock" : "Lock in container"
        let header = ["| \(noun) | Metric | Base | Current | Change | Limit | Verdict |",
                      "| --- | --- | ---: | ---: | ---: | --- | --- |"]
        let changes = comparison.regressions + comparison.improvements
        if !changes.isEmpty {
            lines += header
            lines += changes.map { subject, metric in
                "| \(code(subject.subject.label)) | \(metric.metric.title) | \(value(metric.base, metric)) | "
                    + "\(value(metric.current, metric)) | \(CheckReport.changeText(metric)) | "
                    + "\(metric.limit.describe(for: metric.metric)) | \(verdictCell(metric.verdict)) |"
            }
            lines.append("")
        }
        let tally = [Verdict.regressed, .improved, .unchanged, .notEnoughData].map { verdict in
            "\(comparison.subjects.filter { $0.verdict == verdict }.count) \(verdict.label)"
        }
        lines += ["\(Units.count(comparison.subjects.count, CheckReport.subjectNoun(comparison))): "
                  + tally.joined(separator: ", ") + ".", ""]
        if !comparison.subjects.isEmpty {
            lines += ["<details><summary>All comparisons</summary>", "",
                      "| \(noun) | Contentions | Metric | Base | Current | Delta | Change | Verdict |",
                      "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |"]
            for subject in comparison.subjects {
                let contentions = "\(subject.baseContentions) → \(subject.currentContentions)"
                for metric in subject.metrics {
                    lines.append("| \(code(subject.subject.label)) | \(contentions) | \(metric.metric.title) | "
                                 + "\(value(metric.base, metric)) | \(value(metric.current, metric)) | "
                                 + "\(HumanUnits.formatDelta(metric.delta, metric.metric.quantity)) | "
                                 + "\(CheckReport.changeText(metric)) | \(verdictCell(metric.verdict)) |")
                }
            }
            lines += ["", "</details>", ""]
        }
        lines += victimLines(comparison)
        lines += comparison.notes.map { "> **Note:** \(escape($0))." }
        if !comparison.notes.isEmpty { lines.append("") }
        return lines
    }

    /// Victims listed before the rest are counted.
    static let listedVictims = 5

    /// The victims (processes that waited without mounting) by name, and the container starts' lock wait.
    private static func victimLines(_ comparison: Comparison) -> [String] {
        var lines: [String] = []
        if !comparison.victims.isEmpty {
            lines += ["#### Victims: processes that waited without mounting", "",
                      "| Process | Base total wait | Current total wait | Change | Current longest wait |",
                      "| --- | ---: | ---: | ---: | ---: |"]
            for victim in comparison.victims.prefix(listedVictims) {
                let (base, current) = (Double(victim.baseTotalWaitNs), Double(victim.currentTotalWaitNs))
                lines.append("| \(code(victim.process)) | \(HumanUnits.format(base, .latency)) | \(HumanUnits.format(current, .latency)) | "
                             + "\(DiffTable.changeText(base: base, current: current)) | "
                             + "\(HumanUnits.format(Double(victim.currentMaxWaitNs), .latency)) |")
            }
            if comparison.victims.count > listedVictims {
                lines.append("| \(comparison.victims.count - listedVictims) more | | | | |")
            }
            lines.append("")
        }
        if let starts = comparison.containerStarts {
            let (base, current) = (starts.base.meanLockWaitNs, starts.current.meanLockWaitNs)
            lines += ["Container starts (\(starts.base.starts) → \(starts.current.starts)): lock wait per start "
                      + "\(HumanUnits.format(base, .latency)) → \(HumanUnits.format(current, .latency)) "
                      + "(\(DiffTable.changeText(base: base, current: current))), longest "
                      + "\(HumanUnits.format(Double(starts.base.maxLockWaitNs), .latency)) → "
                      + "\(HumanUnits.format(Double(starts.current.maxLockWaitNs), .latency)).", ""]
        }
        return lines
    }

    private static func budgetLines(_ budget: BudgetEvaluation) -> [String] {
        var lines = ["#### Budget \(code(budget.source)): \(budget.exceededCount) of "
                     + "\(Units.count(budget.limitCount, "limit")) exceeded", "",
                     "| Lock | Metric | Value | Budget | Result |", "| --- | --- | ---: | ---: | --- |"]
        for finding in budget.locks {
            let quantity = finding.metric.quantity
            let result = switch finding.status {
            case .within: "✅ within"
            case .exceeded: "❌ exceeded"
            case .notEnoughData: "➖ not enough data (\(finding.contentions) contentions)"
            case .absent: "➖ not in profile"
            }
            lines.append("| \(code(finding.lock)) | \(finding.metric.title) | \(HumanUnits.format(finding.value, quantity)) | "
                         + "\(HumanUnits.format(finding.limit, quantity)) | \(result) |")
        }
        for finding in budget.mounts {
            lines.append("| container \(code(ContainerName.short(finding.container))) (\(finding.runtime)) | mount ops | "
                         + "\(finding.ops) | \(CheckReport.formatCount(finding.limit)) | "
                         + "\(finding.exceeded ? "❌ exceeded" : "✅ within") |")
        }
        lines.append("")
        lines += budget.notes.map { "> **Note:** \(escape($0))." }
        if !budget.notes.isEmpty { lines.append("") }
        return lines
    }

    private static func value(_ value: Double, _ metric: MetricComparison) -> String {
        HumanUnits.format(value, metric.metric.quantity)
    }

    private static func verdictCell(_ verdict: Verdict) -> String {
        switch verdict {
        case .regressed: "❌ regressed"
        case .improved: "✅ improved"
        case .unchanged: "unchanged"
        case .notEnoughData: "➖ not enough data"
        }
    }

    /// Text as an inline code span that is safe in a table cell.
    static func code(_ text: String) -> String {
        let fence = text.contains("`") ? "``" : "`"
        return fence + text.replacingOccurrences(of: "|", with: "\\|") + fence
    }

    /// Text with the characters that markdown or a table would interpret escaped.
    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if "\\`*_[]<>|#".contains(character) { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}
