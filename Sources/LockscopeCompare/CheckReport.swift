import Foundation
import LockscopeCore

/// The human explanation `lockscope check` prints: a headline verdict, then what regressed, by how
/// much and against which limit, what improved, what was not judged, and the budget. Lock names and
/// container ids come from the profiles: each line has its control characters escaped (`TerminalText`).
public enum CheckReport {
    /// Not-enough-data subjects listed by name before the rest are counted.
    static let listedSubjects = 10

    public static func render(_ result: CheckResult) -> String {
        var lines = [headline(result), ""]
        if let comparison = result.comparison { lines += comparisonLines(comparison) }
        if let budget = result.budget {
            if result.comparison != nil { lines.append("") }
            lines += budgetLines(budget)
        }
        return lines.map(TerminalText.escaped).joined(separator: "\n") + "\n"
    }

    /// `FAILED: 2 regressions in 1 lock; 1 budget limit exceeded` or `PASSED: no regression in 6 locks`.
    public static func headline(_ result: CheckResult) -> String {
        (result.passed ? "PASSED: " : "FAILED: ") + summary(result)
    }

    /// The headline without its verdict: what failed, or else what passed.
    static func summary(_ result: CheckResult) -> String {
        var failures: [String] = []
        var passes: [String] = []
        if let comparison = result.comparison {
            let regressions = comparison.regressions
            let regressedSubjects = comparison.subjects.filter { $0.verdict == .regressed }.count
            if regressions.isEmpty {
                let judged = comparison.subjects.filter { $0.verdict != .notEnoughData }.count
                let improved = comparison.subjects.filter { $0.verdict == .improved }.count
                if judged == 0 {
                    passes.append("nothing to judge (no \(subjectNoun(comparison)) with \(comparison.settings.minContentions) contentions)")
                } else {
                    passes.append("no regression in \(Units.count(judged, subjectNoun(comparison)))"
                                  + (improved > 0 ? " (\(improved) improved)" : ""))
                }
            } else {
                failures.append("\(Units.count(regressions.count, "regression")) in \(Units.count(regressedSubjects, subjectNoun(comparison)))")
            }
        }
        if let budget = result.budget {
            if budget.passed && result.nothingJudged {
                passes.append("nothing to judge in the budget (\(Units.count(budget.limitCount, "limit")), "
                              + "none on a lock with enough contentions)")
            } else if budget.passed {
                passes.append("within budget (\(Units.count(budget.limitCount, "limit")))")
            } else {
                failures.append("\(Units.count(budget.exceededCount, "budget limit")) exceeded")
            }
        }
        // Nothing judged means nothing failed either: the gate said nothing about this profile.
        if result.nothingJudged && result.failIfNothingJudged {
            failures.append(passes.joined(separator: "; ") + ", and --fail-if-nothing-judged is given")
        }
        return (failures.isEmpty ? passes : failures).joined(separator: "; ")
    }

    private static func comparisonLines(_ comparison: Comparison) -> [String] {
        let settings = comparison.settings
        var lines = ["Current \(comparison.currentSource) against baseline \(comparison.baseSource), "
                     + "\(Units.count(comparison.subjects.count, subjectNoun(comparison))), "
                     + "judged with at least \(settings.minContentions) contentions."]
        for (title, verdict) in [("Regressed:", Verdict.regressed), ("Improved:", .improved)] {
            let subjects = comparison.subjects.filter { $0.metrics.contains { $0.verdict == verdict } }
            guard !subjects.isEmpty else { continue }
            lines.append(title)
            for subject in subjects {
                lines.append("  " + subjectHeading(subject))
                for metric in subject.metrics where metric.verdict == verdict {
                    lines.append("    " + explanation(metric))
                }
            }
        }
        let unchanged = comparison.subjects.filter { $0.verdict == .unchanged }
        if !unchanged.isEmpty {
            lines.append("Within limits: \(Units.count(unchanged.count, subjectNoun(comparison))).")
        }
        let unjudged = comparison.subjects.filter { $0.verdict == .notEnoughData }
        if !unjudged.isEmpty {
            let listed = unjudged.prefix(listedSubjects).map {
                "\($0.subject.label) (\($0.baseContentions) → \($0.currentContentions))"
            }
            let more = unjudged.count > listedSubjects ? ", and \(unjudged.count - listedSubjects) more" : ""
            lines.append("Not enough data (fewer than \(settings.minContentions) contentions): "
                         + listed.joined(separator: ", ") + more + ".")
        }
        lines += comparison.notes.map { "Note: \($0)." }
        return lines
    }

    private static func budgetLines(_ budget: BudgetEvaluation) -> [String] {
        var lines = ["Budget \(budget.source): \(budget.exceededCount) of \(Units.count(budget.limitCount, "limit")) exceeded."]
        for finding in budget.locks where finding.status == .exceeded {
            lines.append("  " + explanation(finding))
        }
        for finding in budget.mounts where finding.exceeded {
            lines.append("  " + explanation(finding))
        }
        let unjudged = budget.locks.filter { $0.status == .notEnoughData }
        if !unjudged.isEmpty {
            lines.append("  Not judged (too few contentions): " + unjudged.map {
                "\($0.lock) \($0.metric.rawValue) (\($0.contentions) of \(budget.requiredContentions(for: $0.metric)))"
            }.joined(separator: ", ") + ".")
        }
        lines += budget.notes.map { "Note: \($0)." }
        return lines
    }

    /// `namespace_sem (1000 → 20000 contentions)`, `alloc_vfsmnt+0x6e (new: 300 contentions, none in the baseline)`.
    static func subjectHeading(_ subject: SubjectComparison) -> String {
        let counts = switch subject.presence {
        case .both, .neither: "\(subject.baseContentions) → \(subject.currentContentions) contentions"
        case .onlyInCurrent: "new: \(Units.count(subject.currentContentions, "contention")), none in the baseline"
        case .onlyInBaseline: "gone: \(Units.count(subject.baseContentions, "contention")) in the baseline, none now"
        }
        return "\(subject.subject.label) (\(counts))"
    }

    /// `p99 wait        100 us → 2.00 ms (+1.90 ms, +1900%), over the limit of +20% and 10.0 us`.
    static func explanation(_ metric: MetricComparison) -> String {
        metric.metric.title.padding(toLength: 16, withPad: " ", startingAt: 0) + change(metric) + ", " + limitPhrase(metric)
    }

    /// `100 us → 2.00 ms (+1.90 ms, +1900%)`.
    static func change(_ metric: MetricComparison) -> String {
        let quantity = metric.metric.quantity
        return "\(HumanUnits.format(metric.base, quantity)) → \(HumanUnits.format(metric.current, quantity)) "
            + "(\(HumanUnits.formatDelta(metric.delta, quantity)), \(changeText(metric)))"
    }

    /// `over the limit of +20% and 10.0 us`, or for an improvement `better by more than 20% and 10.0 us`.
    static func limitPhrase(_ metric: MetricComparison) -> String {
        guard metric.verdict == .improved else { return "over the limit of \(metric.limit.describe(for: metric.metric))" }
        return "better by more than \(HumanUnits.formatPercent(metric.limit.maxChangePercent, signed: false)) "
            + "and \(HumanUnits.format(metric.limit.minDelta, metric.metric.quantity))"
    }

    /// `+1900%`, or `new` from a baseline of 0.
    static func changeText(_ metric: MetricComparison) -> String {
        if let percent = metric.changePercent { return HumanUnits.formatPercent(percent) }
        return metric.current == 0 ? "0%" : "new"
    }

    /// `namespace_sem p99 wait is 2.10 ms, over its budget of 2.00 ms`.
    static func explanation(_ finding: BudgetFinding) -> String {
        let quantity = finding.metric.quantity
        return "\(finding.lock) \(finding.metric.title) is \(HumanUnits.format(finding.value, quantity)), "
            + "over its budget of \(HumanUnits.format(finding.limit, quantity))"
    }

    /// `container 4f2a9c01b3d7 (docker) made 40 mount ops, over its budget of 10`.
    static func explanation(_ finding: MountOpsFinding) -> String {
        "container \(ContainerName.short(finding.container)) (\(finding.runtime)) made \(finding.ops) mount ops, "
            + "over its budget of \(formatCount(finding.limit))"
    }

    /// `10`, `7.5`.
    static func formatCount(_ value: Double) -> String {
        value == value.rounded() ? String(format: "%.0f", value) : String(value)
    }

    /// What a row is called: `lock`, or `lock-container pair`.
    static func subjectNoun(_ comparison: Comparison) -> String {
        comparison.settings.grouping == .lock ? "lock" : "lock-container pair"
    }
}
