import Foundation
import LockscopeCore
import XCTest
@testable import LockscopeCompare

/// Locks are matched across profiles by a name that does not depend on what else was contended.
/// The case from `make demo`: a mutex named after its caller, and in one profile only a spinlock
/// behind the same caller name, which makes that profile write `caller+0xa1 (mutex)`.
final class LockIdentityTests: XCTestCase {
    private let caller = "some_driver_op+0xa1"

    private func lock(_ name: String, _ kind: LockKind, _ stats: WaitStats) -> LockProfile {
        LockProfile(name: name, identity: .caller, kind: kind, address: "0xffffffff830f60b8", stats: stats)
    }

    private func profile(_ locks: [LockProfile]) -> Profile {
        Profile(hostname: "test", kernel: "6.18.0", startedAt: "2026-12-01T12:00:00Z", durationNs: 10_000_000_000,
                events: 0, drops: Drops(), recording: Recording(), topology: nil, containers: [], mounts: nil, locks: locks)
    }

    /// Baseline: the mutex alone, so its name has no kind. Current: the mutex 25 times as contended,
    /// and a spinlock with the same caller name, so both names carry their kind.
    private var profiles: (base: Profile, current: Profile) {
        let base = profile([lock(caller, .mutex, waits(89, total: 9_000_000, p50: 50_000, p99: 400_000))])
        let current = profile([
            lock("\(caller) (mutex)", .mutex, waits(2252, total: 900_000_000, p50: 200_000, p99: 12_000_000)),
            lock("\(caller) (spinlock)", .spinlock, waits(94, total: 60_000, p50: 600, p99: 13_000)),
        ])
        return (base, current)
    }

    func testDiffMatchesTheMutexAcrossProfilesWhateverElseWasContended() throws {
        let (base, current) = profiles
        let comparison = try Comparison(base: base, current: current, baseSource: "base.json", currentSource: "current.json",
                                        settings: ComparisonSettings())
        let rows = Dictionary(uniqueKeysWithValues: comparison.subjects.map { ($0.subject.lock, $0) })
        XCTAssertEqual(Set(rows.keys), ["\(caller) (mutex)", "\(caller) (spinlock)"])
        let mutex = try XCTUnwrap(rows["\(caller) (mutex)"])
        XCTAssertEqual(mutex.presence, .both)
        XCTAssertEqual(mutex.baseContentions, 89)
        XCTAssertEqual(mutex.currentContentions, 2252)
        XCTAssertEqual(mutex.verdict, .regressed)
        XCTAssertEqual(rows["\(caller) (spinlock)"]?.presence, .onlyInCurrent)
        XCTAssertFalse(comparison.subjects.contains { $0.presence == .onlyInBaseline }, "nothing is gone")
        // The same the other way round: the mutex improved, the spinlock is gone.
        let reverse = try Comparison(base: current, current: base, baseSource: "current.json", currentSource: "base.json",
                                     settings: ComparisonSettings())
        XCTAssertEqual(reverse.subjects.first { $0.subject.lock == "\(caller) (mutex)" }?.verdict, .improved)
        XCTAssertFalse(reverse.subjects.contains { $0.presence == .onlyInCurrent }, "nothing is new")
    }

    func testCheckAgainstABaselineJudgesTheMutexNotANewLock() throws {
        let directory = try temporaryDirectory(self)
        let (base, current) = profiles
        try base.write(to: "\(directory)/base.json")
        try current.write(to: "\(directory)/current.json")
        let request = CheckRequest(currentPath: "\(directory)/current.json", baselinePath: "\(directory)/base.json")
        let result = try Check.run(request)
        let text = CheckReport.render(result)
        XCTAssertTrue(text.contains("\(caller) (mutex)"), text)
        XCTAssertFalse(text.contains("gone"), text)
        XCTAssertFalse(text.contains("(mutex) (new"), text)
        XCTAssertEqual(result.exitStatus, 1, "the mutex regressed: \(text)")
    }

    /// A budget or --locks names a lock by its name alone (covering each kind) or with its kind.
    func testBudgetsAndLockFiltersNameALockWithOrWithoutItsKind() throws {
        let (_, current) = profiles
        let budget = try Budget.decode(Data("""
            {"schema": "lockscope.budget/1", "locks": {"\(caller)": {"contentions_per_sec": 100}}}
            """.utf8), source: "budget.json")
        let evaluation = try BudgetEvaluation(budget: budget, source: "budget.json", profile: current,
                                              profileSource: "current.json", minContentions: 1, lockNames: nil)
        XCTAssertEqual(evaluation.locks.map(\.lock).sorted(), ["\(caller) (mutex)", "\(caller) (spinlock)"])
        XCTAssertEqual(evaluation.locks.first { $0.lock == "\(caller) (mutex)" }?.status, .exceeded)
        XCTAssertEqual(evaluation.locks.first { $0.lock == "\(caller) (spinlock)" }?.status, .within)

        let (base, _) = profiles
        let onlyMutex = try Comparison(base: base, current: current, baseSource: "base.json", currentSource: "current.json",
                                       settings: ComparisonSettings(lockNames: ["\(caller) (mutex)"]))
        XCTAssertEqual(onlyMutex.subjects.map(\.subject.lock), ["\(caller) (mutex)"])
        let both = try Comparison(base: base, current: current, baseSource: "base.json", currentSource: "current.json",
                                  settings: ComparisonSettings(lockNames: [caller]))
        XCTAssertEqual(Set(both.subjects.map(\.subject.lock)), ["\(caller) (mutex)", "\(caller) (spinlock)"])
    }

    func testMatchNameDropsOnlyTheLocksOwnKind() {
        XCTAssertEqual(lock("\(caller) (mutex)", .mutex, .empty).matchName, caller)
        XCTAssertEqual(lock("\(caller) (mutex)", .spinlock, .empty).matchName, "\(caller) (mutex)")
        XCTAssertEqual(lock("namespace_sem", .rwsem, .empty).matchName, "namespace_sem")
    }
}
