import Foundation
import LockscopeCore
import XCTest
@testable import LockscopeCompare

final class BudgetTests: XCTestCase {
    private func evaluate(_ budget: String, against profile: String, lockNames: [String]? = nil) throws -> BudgetEvaluation {
        try BudgetEvaluation(budget: Budget.load(path: fixture(budget)), source: budget, profile: loadFixture(profile),
                             profileSource: profile, minContentions: 50, lockNames: lockNames)
    }

    private func decodingError(_ json: String) -> String? {
        do {
            _ = try Budget.decode(Data(json.utf8), source: "b.json")
            return nil
        } catch {
            return (error as? UserError)?.description
        }
    }

    func testDecodesTheDocumentedFormat() throws {
        let budget = try Budget.load(path: fixture("budget.json"))
        XCTAssertEqual(budget, Budget(locks: ["namespace_sem": [.p99: 2_000_000, .rate: 500], "*": [.max: 50_000_000]],
                                      mountOpsPerContainer: 10))
        XCTAssertEqual(budget.limits(forLock: "namespace_sem"), [.p99: 2_000_000, .rate: 500, .max: 50_000_000])
        XCTAssertEqual(budget.limits(forLock: "mount_lock"), [.max: 50_000_000])
        let everyMetric = try Budget.decode(Data(#"""
            {"schema": "lockscope.budget/1.3", "locks": {"x": {"p50_wait_ns": 1, "p99_wait_ns": 2, "p999_wait_ns": 3,
             "max_wait_ns": 4, "total_wait_ns_per_sec": 5, "contentions_per_sec": 6.5}}}
            """#.utf8), source: "b.json")
        XCTAssertEqual(everyMetric.locks["x"], [.p50: 1, .p99: 2, .p999: 3, .max: 4, .total: 5, .rate: 6.5])
        XCTAssertNil(everyMetric.mountOpsPerContainer)
    }

    func testFileErrorsNameTheKeyAndTheValidOnes() {
        let metrics = "p50_wait_ns, p99_wait_ns, p999_wait_ns, max_wait_ns, total_wait_ns_per_sec, contentions_per_sec, spin_ns_per_sec"
        let cases: [(String, String)] = [
            ("budget-unknown-metric.json", "\(fixture("budget-unknown-metric.json")): unknown key \"p99\" in locks.namespace_sem; valid keys: \(metrics)"),
            ("budget-unknown-key.json", "\(fixture("budget-unknown-key.json")): unknown key \"lock\"; valid keys: schema, locks, mounts"),
            ("budget-wrong-version.json", "\(fixture("budget-wrong-version.json")) uses schema lockscope.budget/2; this lockscope reads lockscope.budget/1: use a lockscope that matches the budget"),
            ("empty.json", "\(fixture("empty.json")) is empty: write a budget such as {\"schema\": \"lockscope.budget/1\", \"locks\": {\"namespace_sem\": {\"p99_wait_ns\": 2000000}}} (docs/budgets.md)"),
            ("missing.json", "cannot read budget \(fixture("missing.json")): No such file or directory; check the path"),
        ]
        for (name, message) in cases {
            XCTAssertThrowsError(try Budget.load(path: fixture(name)), name) {
                XCTAssertEqual(($0 as? UserError)?.description, message)
            }
        }
    }

    func testContentErrors() {
        XCTAssertEqual(decodingError(#"{"locks": {}}"#),
                       #"b.json is not a lockscope budget (no "schema" string): start it with "schema": "lockscope.budget/1""#)
        XCTAssertEqual(decodingError(#"{"schema": "lockscope.profile/1"}"#),
                       #"b.json is not a lockscope budget (schema "lockscope.profile/1"): expected "lockscope.budget/1""#)
        XCTAssertEqual(decodingError(#"[1]"#), "b.json is not a lockscope budget: expected a JSON object")
        XCTAssertEqual(decodingError(#"{"schema": "lockscope.budget/1"}"#),
                       #"b.json sets no limits: add "locks" or "mounts" (docs/budgets.md)"#)
        XCTAssertEqual(decodingError(#"{"schema": "lockscope.budget/1", "locks": []}"#),
                       "b.json: locks must be an object, not an array")
        XCTAssertEqual(decodingError(#"{"schema": "lockscope.budget/1", "locks": {"x": {}}}"#),
                       "b.json: locks.x sets no limit; give at least one of p50_wait_ns, p99_wait_ns, p999_wait_ns, max_wait_ns, total_wait_ns_per_sec, contentions_per_sec, spin_ns_per_sec")
        XCTAssertEqual(decodingError(#"{"schema": "lockscope.budget/1", "locks": {"x": {"p99_wait_ns": "2ms"}}}"#),
                       #"b.json: locks.x.p99_wait_ns must be a number at least 0, not "2ms""#)
        XCTAssertEqual(decodingError(#"{"schema": "lockscope.budget/1", "locks": {"x": {"p99_wait_ns": -5}}}"#),
                       "b.json: locks.x.p99_wait_ns must be a number at least 0, not -5")
        XCTAssertEqual(decodingError(#"{"schema": "lockscope.budget/1", "mounts": {"ops_per_container": true}}"#),
                       "b.json: mounts.ops_per_container must be a number at least 0, not true")
        XCTAssertEqual(decodingError(#"{"schema": "lockscope.budget/1", "mounts": {"ops": 10}}"#),
                       #"b.json: unknown key "ops" in mounts; valid keys: ops_per_container"#)
        XCTAssertTrue(decodingError(#"{"schema": "lockscope.budget/1", "locks": {"#)?.hasPrefix("b.json is not valid JSON: ") ?? false)
        XCTAssertFalse(decodingError(#"{"schema": "lockscope.budget/1", "locks": {"#)?.contains("\n") ?? true)
    }

    func testExceededLimitsAndMountOpsPerContainer() throws {
        let evaluation = try evaluate("budget.json", against: "regressed.json")
        XCTAssertFalse(evaluation.passed)
        XCTAssertEqual(evaluation.locks.map { "\($0.lock) \($0.metric.rawValue) \($0.value) \($0.status.rawValue)" }, [
            "alloc_vfsmnt+0x6e max 90000.0 within",
            "exp_funnel_lock+0x1f3 max 8000000.0 within",
            "ilookup5+0x4a max 1000000.0 within",
            "mount_lock max 150000.0 within",
            "namespace_sem p99 10000000.0 exceeded",
            "namespace_sem max 40000000.0 within",
            "namespace_sem rate 2000.0 exceeded",
            "raw_spin_rq_lock_nested+0x2a max 32000.0 within",
        ])
        // The host and the runner's plain cgroup are not containers.
        XCTAssertEqual(evaluation.mounts, [MountOpsFinding(container: "4f2a9c01b3d7" + String(repeating: "0", count: 52),
                                                           runtime: "docker", ops: 42, limit: 10)])
        XCTAssertEqual(evaluation.exceededCount, 3)
        XCTAssertEqual(evaluation.limitCount, 9)
        XCTAssertEqual(evaluation.notes, [])
    }

    func testWithinBudgetAndLimitEqualToValue() throws {
        XCTAssertTrue(try evaluate("budget.json", against: "base.json").passed)
        let exact = try BudgetEvaluation(budget: Budget(locks: ["namespace_sem": [.p99: 500_000]]), source: "b.json",
                                         profile: loadFixture("base.json"), profileSource: "base.json",
                                         minContentions: 50, lockNames: nil)
        XCTAssertEqual(exact.locks.map(\.status), [.within])
    }

    func testPercentilesOfFewWaitsAreNotJudgedButMaxIs() throws {
        let budget = Budget(locks: ["ilookup5+0x4a": [.p99: 1_000, .max: 1_000]])
        let evaluation = try BudgetEvaluation(budget: budget, source: "b.json", profile: loadFixture("base.json"),
                                              profileSource: "base.json", minContentions: 50, lockNames: nil)
        XCTAssertEqual(evaluation.locks.map(\.status), [.notEnoughData, .exceeded])
        XCTAssertEqual(evaluation.locks.map(\.contentions), [20, 20])
        XCTAssertEqual(CheckReport.render(CheckResult(budget: evaluation)), """
            FAILED: 1 budget limit exceeded

            Budget b.json: 1 of 2 limits exceeded.
              ilookup5+0x4a max wait is 9.00 us, over its budget of 1.00 us
              Not judged (too few contentions): ilookup5+0x4a p99 (20 of 100).

            """)
    }

    func testALockAbsentFromTheProfilePassesWithANote() throws {
        let evaluation = try evaluate("budget-misspelled-lock.json", against: "base.json")
        XCTAssertTrue(evaluation.passed)
        XCTAssertEqual(evaluation.locks.map(\.status), [.within, .within, .within, .absent])
        XCTAssertEqual(CheckReport.headline(CheckResult(budget: evaluation)), "PASSED: within budget (4 limits)")
        XCTAssertEqual(evaluation.notes, [
            "namespace_semaphore is not in base.json: no contention was recorded on it, so its limits pass (check the spelling; the profile's locks: exp_funnel_lock+0x1f3, ilookup5+0x4a, mount_lock, namespace_sem, raw_spin_rq_lock_nested+0x2a)",
        ])
    }

    func testLockSelectionRestrictsTheBudget() throws {
        let evaluation = try evaluate("budget.json", against: "regressed.json", lockNames: ["mount_lock"])
        XCTAssertEqual(evaluation.locks.map(\.lock), ["mount_lock"])
        XCTAssertEqual(evaluation.exceededCount, 1)
    }

    func testMountLimitsNeedMountAccounting() {
        XCTAssertThrowsError(try evaluate("budget.json", against: "improved.json")) {
            XCTAssertEqual(($0 as? UserError)?.description, "improved.json has no mount accounting (no \"mounts\" section), so budget.json cannot check mounts.ops_per_container: record with a lockscope that accounts mount syscalls, or remove \"mounts\" from the budget")
        }
    }
}
