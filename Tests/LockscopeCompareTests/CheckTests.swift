import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import LockscopeCore
import XCTest
@testable import LockscopeCompare

final class CheckTests: XCTestCase {
    // MARK: Exit status

    func testExitStatusZeroWithinLimits() {
        for current in ["improved.json", "noise.json", "base.json"] {
            XCTAssertEqual(exitStatus(CheckRequest(currentPath: fixture(current), baselinePath: fixture("base.json"))).status, 0, current)
        }
        XCTAssertEqual(exitStatus(CheckRequest(currentPath: fixture("regressed.json"), baselinePath: fixture("regressed.json"))).status, 0)
        XCTAssertEqual(exitStatus(CheckRequest(currentPath: fixture("base.json"), budgetPath: fixture("budget.json"))).status, 0)
    }

    func testExitStatusOneOnARegressionOrAnExceededBudget() throws {
        XCTAssertEqual(exitStatus(CheckRequest(currentPath: fixture("regressed.json"), baselinePath: fixture("base.json"))).status, 1)
        XCTAssertEqual(exitStatus(CheckRequest(currentPath: fixture("regressed.json"), budgetPath: fixture("budget.json"))).status, 1)
        // Within the baseline's limits, over budget.
        XCTAssertEqual(exitStatus(CheckRequest(currentPath: fixture("regressed.json"), baselinePath: fixture("regressed.json"),
                                               budgetPath: fixture("budget.json"))).status, 1)
        // Only namespace_sem judged: within the baseline's limits and the budget.
        XCTAssertEqual(exitStatus(CheckRequest(currentPath: fixture("noise.json"), baselinePath: fixture("base.json"),
                                               budgetPath: fixture("budget.json"),
                                               settings: try ComparisonSettings.parse(locks: ["namespace_sem"]))).status, 0)
    }

    func testExitStatusTwoWithOneLineForUnusableInputs() {
        let unusable: [(String, String)] = [
            ("empty.json", "\(fixture("empty.json")) is empty: record a profile with `lockscope record -o \(fixture("empty.json"))`"),
            ("wrong-version.json", "\(fixture("wrong-version.json")) uses schema lockscope.profile/2; this lockscope reads lockscope.profile/1: use a lockscope that matches the profile"),
            ("not-a-profile.json", "\(fixture("not-a-profile.json")) is not a lockscope profile (no \"schema\" field)"),
        ]
        for (name, message) in unusable {
            for request in [CheckRequest(currentPath: fixture(name), baselinePath: fixture("base.json")),
                            CheckRequest(currentPath: fixture("base.json"), baselinePath: fixture(name))] {
                let (status, error) = exitStatus(request)
                XCTAssertEqual(status, 2, name)
                XCTAssertEqual(error, message)
            }
        }
        // The cause's wording comes from the parser or the platform: only its frame is fixed.
        let framed: [(String, String, String)] = [
            ("truncated.json", "\(fixture("truncated.json")) is not valid JSON (truncated or corrupted?): ", ""),
            ("missing.json", "cannot read \(fixture("missing.json")): ", "; check the path"),
        ]
        for (name, prefix, suffix) in framed {
            let (status, error) = exitStatus(CheckRequest(currentPath: fixture(name), baselinePath: fixture("base.json")))
            XCTAssertEqual(status, 2)
            XCTAssertTrue(error?.hasPrefix(prefix) ?? false, error ?? "")
            XCTAssertTrue(error?.hasSuffix(suffix) ?? false, error ?? "")
            XCTAssertFalse(error?.contains("\n") ?? true)
        }
    }

    func testExitStatusTwoForBadRequests() throws {
        XCTAssertEqual(exitStatus(CheckRequest(currentPath: fixture("base.json"))).error,
                       "check needs --baseline BASE, --budget FILE, or both")
        XCTAssertEqual(exitStatus(CheckRequest(currentPath: fixture("base.json"), budgetPath: fixture("budget-unknown-key.json"))).status, 2)
        // Output paths are checked before any input is read.
        let (status, error) = exitStatus(CheckRequest(currentPath: fixture("missing.json"), baselinePath: fixture("base.json"),
                                                      junitPath: "/nonexistent-dir/report.xml"))
        XCTAssertEqual(status, 2)
        XCTAssertEqual(error, "cannot write /nonexistent-dir/report.xml: directory /nonexistent-dir does not exist; create it or choose another path")
    }

    // MARK: Reports

    func testJUnitIsWellFormedWithOneTestCasePerLockAndMetric() throws {
        let directory = try temporaryDirectory(self)
        let request = CheckRequest(currentPath: fixture("regressed.json"), baselinePath: fixture("base.json"),
                                   budgetPath: fixture("budget.json"), junitPath: "\(directory)/junit.xml")
        XCTAssertEqual(try Check.run(request).exitStatus, 1)
        let junit = try JUnitSummary(contentsOf: "\(directory)/junit.xml")
        XCTAssertEqual(junit.rootAttributes["tests"], "45")
        XCTAssertEqual(junit.rootAttributes["failures"], "13")
        // Skipped: every metric of ilookup5+0x4a (20 and 40 contentions), and p99.9 of the run-queue
        // locks (400 and 800 waits, fewer than the 1000 a p99.9 needs).
        // junit-10.xsd has no `skipped` on <testsuites>: each suite counts its own.
        XCTAssertNil(junit.rootAttributes["skipped"])
        XCTAssertEqual(junit.suites.map { $0["skipped"] ?? "" }, ["7", "0"])
        XCTAssertNotNil(junit.rootAttributes["time"])
        XCTAssertTrue(junit.suites.allSatisfy { ($0["timestamp"] ?? "").count == 19 }, "\(junit.suites)")
        XCTAssertEqual(junit.suites.map { $0["name"] ?? "" },
                       ["\(fixture("regressed.json")) against baseline \(fixture("base.json"))", "budget \(fixture("budget.json"))"])
        XCTAssertEqual(junit.suites.map { $0["tests"] ?? "" }, ["36", "9"])
        XCTAssertEqual(junit.testCases, 45)
        XCTAssertEqual(junit.failures.count, 13)
        XCTAssertEqual(junit.skipped, 7)
        XCTAssertEqual(junit.failures.first, "p50 wait regressed: 20.0 us → 200 us (+180 us, +900%), over the limit of +20% and 10.0 us")
        XCTAssertEqual(junit.failures.last, "container 4f2a9c01b3d7 (docker) made 42 mount ops, over its budget of 10")
        // The comparison's failures are regressions, the budget's exceeded limits.
        let comparisonFailures = junit.failures.filter { $0.contains(" regressed: ") }.count
        XCTAssertGreaterThan(comparisonFailures, 0)
        XCTAssertLessThan(comparisonFailures, 13)
        XCTAssertEqual(junit.failureTypes, Array(repeating: "regression", count: comparisonFailures)
                       + Array(repeating: "budget-exceeded", count: 13 - comparisonFailures))
        XCTAssertEqual(junit.testCaseNames.prefix(2).map { $0 }, ["namespace_sem/p50 wait", "namespace_sem/p99 wait"])
    }

    func testJUnitEscapesNames() throws {
        let name = "weird<lock> & \"quoted\" 'x'\u{1}"
        let profile = makeProfile(locks: [(name, waits(100, total: 1_000_000, p50: 1_000, p99: 2_000), [])])
        let comparison = try Comparison(base: makeProfile(locks: []), current: profile, baseSource: "a&b.json",
                                        currentSource: "c.json", settings: ComparisonSettings())
        let xml = JUnitReport.render(CheckResult(comparison: comparison))
        let directory = try temporaryDirectory(self)
        try AtomicFile.write(Data(xml.utf8), to: "\(directory)/junit.xml")
        let junit = try JUnitSummary(contentsOf: "\(directory)/junit.xml")
        XCTAssertEqual(junit.testCaseNames.first, "weird<lock> & \"quoted\" 'x'\u{FFFD}/p50 wait")
        XCTAssertEqual(junit.suites.first?["name"], "c.json against baseline a&b.json")
        XCTAssertEqual(junit.testCases, 6)
    }

    func testMarkdownGolden() throws {
        let directory = try temporaryDirectory(self)
        let request = CheckRequest(currentPath: fixture("regressed.json"), baselinePath: fixture("base.json"),
                                   budgetPath: fixture("budget.json"), markdownPath: "\(directory)/report.md")
        _ = try Check.run(request)
        let markdown = try String(contentsOfFile: "\(directory)/report.md", encoding: .utf8)
        XCTAssertEqual(withoutFixturePaths(markdown), try String(contentsOfFile: fixture("golden/check.md"), encoding: .utf8))
    }

    func testMarkdownForAPassingCheck() throws {
        let result = try Check.run(CheckRequest(currentPath: fixture("improved.json"), baselinePath: fixture("base.json")))
        let markdown = withoutFixturePaths(MarkdownReport.render(result))
        XCTAssertTrue(markdown.hasPrefix("""
            ### ✅ lockscope check passed: no regression in 4 locks (2 improved)

            Current `improved.json` against baseline `base.json`; a change counts when it exceeds both limits, with at least 50 contentions.

            | Lock | Metric | Base | Current | Change | Limit | Verdict |
            | --- | --- | ---: | ---: | ---: | --- | --- |
            | `exp_funnel_lock+0x1f3` | p50 wait | 1.00 ms | 0 ns | -100% | +20% and 10.0 us | ✅ improved |
            """), markdown)
        XCTAssertEqual(MarkdownReport.code("a|b"), "`a\\|b`")
        XCTAssertEqual(MarkdownReport.escape("namespace_sem <x>"), "namespace\\_sem \\<x\\>")
    }

    func testCheckExplanationGolden() throws {
        let result = try Check.run(CheckRequest(currentPath: fixture("regressed.json"), baselinePath: fixture("base.json"),
                                                budgetPath: fixture("budget.json")))
        XCTAssertEqual(withoutFixturePaths(CheckReport.render(result)),
                       try String(contentsOfFile: fixture("golden/check.txt"), encoding: .utf8))
    }

    func testCheckExplanationWithNotesAndUnjudgedBudgetLimits() throws {
        let result = try Check.run(CheckRequest(currentPath: fixture("noise.json"), baselinePath: fixture("base.json")))
        XCTAssertEqual(withoutFixturePaths(CheckReport.render(result)), """
            PASSED: no regression in 4 locks

            Current noise.json against baseline base.json, 5 locks, judged with at least 50 contentions.
            Within limits: 4 locks.
            Not enough data (fewer than 50 contentions): ilookup5+0x4a (20 → 45).
            Note: noise.json lost 2.3% of its events: its contention counts, totals and rates read low.
            Note: the profiles come from different kernels (6.18.0-lockscope and 6.19.0-lockscope): locks named caller+0xoff may not match between them.

            """)
    }

    // MARK: Diff

    func testDiffTableGoldenFitsEightyColumns() throws {
        let table = try Diff.run(basePath: fixture("base.json"), currentPath: fixture("regressed.json"),
                                 settings: ComparisonSettings(), format: .table)
        XCTAssertEqual(withoutFixturePaths(table), try String(contentsOfFile: fixture("golden/diff.txt"), encoding: .utf8))
        let longest = withoutFixturePaths(table).split(separator: "\n").dropFirst().map(\.count).max() ?? 0
        XCTAssertLessThanOrEqual(longest, 80)
    }

    func testDiffJSON() throws {
        let json = try Diff.run(basePath: fixture("base.json"), currentPath: fixture("regressed.json"),
                                settings: try ComparisonSettings.parse(metrics: ["p99"]), format: .json)
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(document["schema"] as? String, "lockscope.diff/1")
        XCTAssertEqual(document["regressions"] as? Int, 2)
        XCTAssertEqual(document["min_contentions"] as? Int, 50)
        XCTAssertEqual(document["grouping"] as? String, "lock")
        let limits = try XCTUnwrap(document["limits"] as? [String: [String: Double]])
        XCTAssertEqual(limits, ["p99": ["max_change_percent": 20, "min_delta": 10_000]])
        let subjects = try XCTUnwrap(document["subjects"] as? [[String: Any]])
        XCTAssertEqual(subjects.count, 6)
        XCTAssertEqual(subjects[0]["subject"] as? [String: String], ["lock": "namespace_sem"])
        XCTAssertEqual(subjects[0]["verdict"] as? String, "regressed")
        XCTAssertEqual(subjects[0]["base_contentions"] as? Int, 2000)
        let metric = try XCTUnwrap((subjects[0]["metrics"] as? [[String: Any]])?.first)
        XCTAssertEqual(metric["metric"] as? String, "p99")
        XCTAssertEqual(metric["base"] as? Double, 500_000)
        XCTAssertEqual(metric["current"] as? Double, 10_000_000)
        XCTAssertEqual(metric["change_percent"] as? Double, 1900)
        XCTAssertEqual(subjects[3]["presence"] as? String, "only_in_current")
        XCTAssertEqual(subjects[4]["verdict"] as? String, "not_enough_data")
    }

    func testDiffMarkdownHeadline() throws {
        let markdown = try Diff.run(basePath: fixture("base.json"), currentPath: fixture("regressed.json"),
                                    settings: ComparisonSettings(), format: .markdown)
        XCTAssertEqual(markdown.split(separator: "\n").first, "### ❌ lockscope diff: 10 regressions in 2 locks")
    }
}

private struct MalformedXML: Error {
    var reason: String
}

/// What a test needs from a JUnit file, read with Foundation's XML parser (which fails on malformed XML).
private final class JUnitSummary: NSObject, XMLParserDelegate {
    var rootAttributes: [String: String] = [:]
    var suites: [[String: String]] = []
    var testCases = 0
    var testCaseNames: [String] = []
    var failures: [String] = []
    var failureTypes: [String] = []
    var skipped = 0

    init(contentsOf path: String) throws {
        super.init()
        let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: path)))
        parser.delegate = self
        guard parser.parse() else { throw MalformedXML(reason: parser.parserError.map { "\($0)" } ?? "unknown") }
    }

    func parser(_ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String]) {
        switch element {
        case "testsuites": rootAttributes = attributes
        case "testsuite": suites.append(attributes)
        case "testcase":
            testCases += 1
            testCaseNames.append("\(attributes["classname"] ?? "")/\(attributes["name"] ?? "")")
        case "failure":
            failures.append(attributes["message"] ?? "")
            failureTypes.append(attributes["type"] ?? "")
        case "skipped": skipped += 1
        default: break
        }
    }
}
