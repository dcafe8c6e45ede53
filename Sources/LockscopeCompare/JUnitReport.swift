import LockscopeCore
import Foundation

/// JUnit XML that CI systems show as test results: one test case per subject and metric (and per
/// budget limit); a regression or an exceeded budget is a `<failure>` (its `type` says which:
/// `regression`, `budget-exceeded`, or `nothing-judged` for the check that judged nothing), a metric
/// that could not be judged is `<skipped>`.
///
/// Attributes follow junit-10.xsd, the schema Jenkins' xunit plugin validates against (GitLab reads the
/// same): `<testsuites>` carries `name`, `time`, `tests`, `failures`, `errors` (no `skipped`); each
/// `<testsuite>` `name`, `tests`, `failures`, `errors`, `skipped`, `time`, `timestamp` (when the check
/// ran, UTC, `yyyy-MM-ddTHH:mm:ss` as Ant writes it); each `<testcase>` `classname`,
/// `name` and `time`. When nothing was judged, a last suite `lockscope check` holds the test case
/// `something judged`: skipped, or failed with `--fail-if-nothing-judged`.
public enum JUnitReport {
    public static func render(_ result: CheckResult) -> String {
        var suites: [Suite] = []
        if let comparison = result.comparison { suites.append(suite(comparison)) }
        if let budget = result.budget { suites.append(suite(budget)) }
        if result.nothingJudged {
            let message = "nothing judged: every metric and limit was skipped (too few contentions, or the locks are absent)"
            suites.append(Suite(name: "lockscope check", cases: [
                TestCase(className: "lockscope check", name: "something judged",
                         outcome: result.failIfNothingJudged ? .failed(.nothingJudged, message + ", and --fail-if-nothing-judged is given")
                             : .skipped(message))]))
        }
        let cases = suites.flatMap(\.cases)
        let time = seconds(result.seconds)
        let timestamp = Self.timestamp(result.startedAt)
        var lines = [#"<?xml version="1.0" encoding="UTF-8"?>"#,
                     "<testsuites name=\"lockscope check\" time=\"\(time)\" \(counts(cases, skipped: false))>"]
        for suite in suites {
            lines.append("  <testsuite name=\"\(escape(suite.name))\" \(counts(suite.cases, skipped: true)) "
                         + "time=\"\(time)\" timestamp=\"\(timestamp)\">")
            for testCase in suite.cases {
                let opening = "    <testcase classname=\"\(escape(testCase.className))\" name=\"\(escape(testCase.name))\" time=\"0\""
                switch testCase.outcome {
                case .passed:
                    lines.append(opening + "/>")
                case .failed(let type, let message):
                    lines += [opening + ">",
                              "      <failure type=\"\(type.rawValue)\" message=\"\(escape(message))\">\(escape(message))</failure>",
                              "    </testcase>"]
                case .skipped(let message):
                    lines += [opening + ">", "      <skipped message=\"\(escape(message))\"/>", "    </testcase>"]
                }
            }
            lines.append("  </testsuite>")
        }
        lines.append("</testsuites>")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Seconds with millisecond precision, as JUnit writers give `time`.
    static func seconds(_ value: Double) -> String {
        String(format: "%.3f", max(0, value.isFinite ? value : 0))
    }

    /// Ant's JUnit timestamp: ISO 8601 date and time in UTC, without a zone.
    static func timestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return formatter.string(from: date)
    }

    private struct Suite {
        var name: String
        var cases: [TestCase]
    }

    /// The `type` of a `<failure>`: what failed the check.
    enum FailureType: String {
        case regression
        case budgetExceeded = "budget-exceeded"
        case nothingJudged = "nothing-judged"
    }

    private struct TestCase {
        enum Outcome {
            case passed
            case failed(FailureType, String)
            case skipped(String)
        }

        var className: String
        var name: String
        var outcome: Outcome
    }

    private static func suite(_ comparison: Comparison) -> Suite {
        let settings = comparison.settings
        let cases = comparison.subjects.flatMap { subject in
            subject.metrics.map { metric in
                let outcome: TestCase.Outcome = switch metric.verdict {
                case .regressed:
                    .failed(.regression,
                            "\(metric.metric.title) regressed: \(CheckReport.change(metric)), \(CheckReport.limitPhrase(metric))")
                case .improved, .unchanged:
                    .passed
                case .notEnoughData:
                    .skipped("not enough data: \(subject.baseContentions) contentions in the baseline and "
                             + "\(subject.currentContentions) now; judged from \(settings.requiredContentions(for: metric.metric))")
                }
                return TestCase(className: subject.subject.label, name: metric.metric.title, outcome: outcome)
            }
        }
        return Suite(name: "\(comparison.currentSource) against baseline \(comparison.baseSource)", cases: cases)
    }

    private static func suite(_ budget: BudgetEvaluation) -> Suite {
        let lockCases = budget.locks.map { finding in
            let outcome: TestCase.Outcome = switch finding.status {
            case .within: .passed
            case .exceeded: .failed(.budgetExceeded, CheckReport.explanation(finding))
            case .notEnoughData:
                .skipped("not enough data: \(finding.contentions) contentions; judged from \(budget.requiredContentions(for: finding.metric))")
            case .absent: .skipped("not in the profile: no contention was recorded on \(finding.lock)")
            }
            return TestCase(className: finding.lock, name: "budget \(finding.metric.title)", outcome: outcome)
        }
        let mountCases = budget.mounts.map { finding in
            TestCase(className: "mounts", name: "mount ops in container \(finding.container)",
                     outcome: finding.exceeded ? .failed(.budgetExceeded, CheckReport.explanation(finding)) : .passed)
        }
        return Suite(name: "budget \(budget.source)", cases: lockCases + mountCases)
    }

    /// `tests`, `failures`, `errors`, and `skipped` where the schema allows it (on `<testsuite>` only).
    private static func counts(_ cases: [TestCase], skipped allowsSkipped: Bool) -> String {
        var failures = 0, skipped = 0
        for testCase in cases {
            switch testCase.outcome {
            case .passed: break
            case .failed: failures += 1
            case .skipped: skipped += 1
            }
        }
        return "tests=\"\(cases.count)\" failures=\"\(failures)\" errors=\"0\"" + (allowsSkipped ? " skipped=\"\(skipped)\"" : "")
    }

    static func escape(_ text: String) -> String { XMLText.escape(text) }
}
