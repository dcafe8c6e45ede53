import LockscopeCore
import XCTest
@testable import LockscopeCompare

/// `diff`/`check --metric spin` and a budget's `spin_ns_per_sec` judge sampled spinning per second.
final class SpinComparisonTests: XCTestCase {
    /// A 10 s recording with namespace_sem spun on for `samples` samples of 1 ms (no waits), in container c1.
    private func profile(samples: UInt64) -> Profile {
        let period: UInt64 = 1_000_000
        var lock = LockProfile(name: "namespace_sem", identity: .inferred, kind: .rwsem, address: "0x0", instances: 0,
                               stats: .empty)
        lock.spin = SpinProfile(periodNs: period, time: SampledTime(samples: samples, periodNs: period),
                                spinFunctionSamples: samples, pauseSamples: 0, insideWaitSamples: 0, byCpu: [], bySocket: [],
                                byContainer: [KeyedSamples(key: "c1", samples: samples)], byProcess: [], stacks: [])
        return Profile(hostname: "h", kernel: "k", startedAt: "t", durationNs: 10_000_000_000, events: 0, drops: Drops(),
                       recording: Recording(), topology: nil, containers: [], mounts: nil, locks: [lock])
    }

    private func spinMetric(_ base: UInt64, _ current: UInt64, grouping: Grouping = .lock) throws -> MetricComparison {
        var settings = ComparisonSettings(metrics: [.spin])
        settings.grouping = grouping
        let comparison = try Comparison(base: profile(samples: base), current: profile(samples: current), baseSource: "a",
                                        currentSource: "b", settings: settings)
        let row = try XCTUnwrap(comparison.subjects.first)
        XCTAssertEqual(row.subject.lock, "namespace_sem")
        XCTAssertEqual(row.subject.container, grouping == .container ? "c1" : nil)
        return try XCTUnwrap(row.metrics.first)
    }

    func testSpinPerSecondRegressesImprovesAndNeedsSamples() throws {
        // 400 samples of 1 ms in 10 s: 40 ms/s; 1000: 100 ms/s (+150%).
        let regressed = try spinMetric(400, 1000)
        XCTAssertEqual(regressed.base, 40_000_000)
        XCTAssertEqual(regressed.current, 100_000_000)
        XCTAssertEqual(regressed.verdict, .regressed)
        XCTAssertEqual(try spinMetric(1000, 400).verdict, .improved)
        XCTAssertEqual(try spinMetric(400, 420).verdict, .unchanged)
        // +25% from 400 samples: beyond the limits and beyond sampling error (one-sided p = 0.0005).
        XCTAssertEqual(try spinMetric(400, 500).verdict, .regressed)
        // +30% from 40 samples: beyond the limits, but equal rates give 52 of 92 one time in 8: the samples cannot tell.
        XCTAssertEqual(try spinMetric(40, 52).verdict, .notEnoughData)
        // 2 to 10 samples: told from sampling error (p = 0.019), but 0.8 ms/s more is within the 1 ms/s floor.
        XCTAssertEqual(try spinMetric(2, 10).verdict, .unchanged)
        XCTAssertEqual(try spinMetric(20, 60).verdict, .regressed)  // p = 4.3e-6
        XCTAssertEqual(try spinMetric(0, 0).verdict, .notEnoughData)
        XCTAssertEqual(try spinMetric(400, 1000, grouping: .container).verdict, .regressed)
        // Not judged unless asked for.
        XCTAssertFalse(ComparisonSettings().metrics.contains(.spin))
    }

    func testBudgetOnSpin() throws {
        let budget = Budget(locks: ["namespace_sem": [.spin: 50_000_000]])
        let within = try BudgetEvaluation(budget: budget, source: "b.json", profile: profile(samples: 400), profileSource: "p.json",
                                            minContentions: 50, lockNames: nil)
        XCTAssertEqual(within.locks.map(\.status), [.within])
        XCTAssertEqual(within.locks.first?.value, 40_000_000)
        let exceeded = try BudgetEvaluation(budget: budget, source: "b.json", profile: profile(samples: 600), profileSource: "p.json",
                                            minContentions: 50, lockNames: nil)
        XCTAssertEqual(exceeded.locks.map(\.status), [.exceeded])
    }
}
