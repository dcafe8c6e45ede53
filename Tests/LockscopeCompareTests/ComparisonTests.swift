import LockscopeCore
import XCTest
@testable import LockscopeCompare

final class ComparisonTests: XCTestCase {
    /// Verdicts per metric in `Metric.defaultMetrics` order.
    private func verdicts(_ comparison: Comparison, _ lock: String) -> [Verdict] {
        comparison.subjects.first { $0.subject.lock == lock }?.metrics.map(\.verdict) ?? []
    }

    private func subject(_ comparison: Comparison, _ lock: String) throws -> SubjectComparison {
        try XCTUnwrap(comparison.subjects.first { $0.subject.lock == lock })
    }

    func testRegressionOnEveryMetricWithTotalsAndRatesPerSecond() throws {
        let comparison = try compareFixtures("base.json", "regressed.json")
        let namespaceSem = try subject(comparison, "namespace_sem")
        XCTAssertEqual(namespaceSem.presence, .both)
        XCTAssertEqual(namespaceSem.verdict, .regressed)
        XCTAssertEqual(namespaceSem.baseContentions, 2000)
        XCTAssertEqual(namespaceSem.currentContentions, 40000)
        // The candidate recorded 20 s and the baseline 10 s: total and rate are per second.
        XCTAssertEqual(namespaceSem.metrics.map(\.metric), Metric.defaultMetrics)
        XCTAssertEqual(namespaceSem.metrics.map(\.base), [20_000, 500_000, 1_000_000, 2_000_000, 40_000_000, 200])
        XCTAssertEqual(namespaceSem.metrics.map(\.current), [200_000, 10_000_000, 20_000_000, 40_000_000, 400_000_000, 2000])
        XCTAssertEqual(namespaceSem.metrics.map(\.changePercent), [900, 1900, 1900, 1900, 900, 900])
        XCTAssertEqual(namespaceSem.metrics.map(\.verdict), Array(repeating: .regressed, count: 6))
        XCTAssertFalse(comparison.passed)
        XCTAssertEqual(comparison.regressions.count, 10)
        XCTAssertEqual(comparison.improvements.count, 0)
    }

    func testNoiseUnderEitherLimitIsUnchanged() throws {
        let comparison = try compareFixtures("base.json", "regressed.json")
        // mount_lock p99: +22.5% exceeds the relative limit, but +9 us stays under the 10 us floor.
        let mountLock = try subject(comparison, "mount_lock")
        XCTAssertEqual(mountLock.metrics[1].delta, 9_000)
        XCTAssertEqual(mountLock.metrics[1].changePercent, 22.5)
        XCTAssertEqual(mountLock.verdict, .unchanged)
        // exp_funnel_lock p50: +150 us exceeds the floor, but +15% stays under the relative limit.
        let funnel = try subject(comparison, "exp_funnel_lock+0x1f3")
        XCTAssertEqual(funnel.metrics[0].delta, 150_000)
        XCTAssertEqual(funnel.metrics[0].changePercent ?? 0, 15, accuracy: 1e-9)
        XCTAssertEqual(funnel.verdict, .unchanged)
    }

    func testTooFewContentionsInBothProfilesIsNotJudged() throws {
        let comparison = try compareFixtures("base.json", "regressed.json")
        // ilookup5+0x4a: 20 then 40 contentions, p50 5 us → 900 us.
        XCTAssertEqual(verdicts(comparison, "ilookup5+0x4a"), Array(repeating: .notEnoughData, count: 6))
        XCTAssertEqual(try subject(comparison, "ilookup5+0x4a").verdict, .notEnoughData)

        // Judged from 20 contentions, except p99 (which needs 100 waits a side) and p99.9 (1000).
        var settings = ComparisonSettings()
        settings.minContentions = 20
        XCTAssertEqual(verdicts(try compareFixtures("base.json", "regressed.json", settings: settings), "ilookup5+0x4a"),
                       [.regressed, .notEnoughData, .notEnoughData, .regressed, .regressed, .unchanged])
        XCTAssertEqual(settings.requiredContentions(for: .p50), 20)
        XCTAssertEqual(settings.requiredContentions(for: .p99), 100)
        XCTAssertEqual(settings.requiredContentions(for: .p999), 1000)
        XCTAssertEqual(settings.requiredContentions(for: .rate), 20)
    }

    func testNewContentionRegressesOnMetricsOverTheirFloors() throws {
        let comparison = try compareFixtures("base.json", "regressed.json")
        let new = try subject(comparison, "alloc_vfsmnt+0x6e")
        XCTAssertEqual(new.presence, .onlyInCurrent)
        XCTAssertEqual(new.baseContentions, 0)
        XCTAssertEqual(new.metrics.map(\.changePercent), Array(repeating: nil, count: 6))
        // p50 5 us and max 90 us stay under their floors (10 us, 100 us).
        XCTAssertEqual(new.metrics.map(\.verdict), [.unchanged, .regressed, .regressed, .unchanged, .regressed, .regressed])
        XCTAssertEqual(new.verdict, .regressed)
    }

    func testHeadingsCountNewAndVanishedContentions() throws {
        var new = try subject(try compareFixtures("base.json", "regressed.json"), "alloc_vfsmnt+0x6e")
        XCTAssertEqual(CheckReport.subjectHeading(new),
                       "alloc_vfsmnt+0x6e (new: \(new.currentContentions) contentions, none in the baseline)")
        new.currentContentions = 1
        XCTAssertEqual(CheckReport.subjectHeading(new), "alloc_vfsmnt+0x6e (new: 1 contention, none in the baseline)")
        var gone = new
        (gone.presence, gone.baseContentions, gone.currentContentions) = (.onlyInBaseline, 1, 0)
        XCTAssertEqual(CheckReport.subjectHeading(gone), "alloc_vfsmnt+0x6e (gone: 1 contention in the baseline, none now)")
    }

    func testImprovementsAndVanishedLocks() throws {
        let comparison = try compareFixtures("base.json", "improved.json")
        XCTAssertTrue(comparison.passed)
        // p50 20 us → 10 us: -50%, but a delta of exactly the 10 us floor does not count.
        XCTAssertEqual(verdicts(comparison, "namespace_sem"), [.unchanged, .improved, .improved, .improved, .improved, .improved])
        XCTAssertEqual(try subject(comparison, "namespace_sem").verdict, .improved)
        let gone = try subject(comparison, "exp_funnel_lock+0x1f3")
        XCTAssertEqual(gone.presence, .onlyInBaseline)
        XCTAssertEqual(gone.metrics.map(\.changePercent), Array(repeating: -100, count: 6))
        XCTAssertEqual(gone.verdict, .improved)
        XCTAssertEqual(try subject(comparison, "ilookup5+0x4a").verdict, .notEnoughData)
        XCTAssertEqual(try subject(comparison, "mount_lock").verdict, .unchanged)
        XCTAssertEqual(comparison.improvements.count, 11)
    }

    func testNoiseFixturePassesWithNotes() throws {
        let comparison = try compareFixtures("base.json", "noise.json")
        XCTAssertTrue(comparison.passed)
        // Heaviest first: ilookup5+0x4a waited 400 us/s in noise.json, the run-queue locks 320 us/s.
        XCTAssertEqual(comparison.subjects.map(\.subject.lock),
                       ["exp_funnel_lock+0x1f3", "namespace_sem", "mount_lock", "ilookup5+0x4a", "raw_spin_rq_lock_nested+0x2a"])
        XCTAssertEqual(comparison.subjects.map(\.verdict), [.unchanged, .unchanged, .unchanged, .notEnoughData, .unchanged])
        XCTAssertEqual(comparison.notes, [
            "noise.json lost 2.3% of its events: its contention counts, totals and rates read low",
            "the profiles come from different kernels (6.18.0-lockscope and 6.19.0-lockscope): locks named caller+0xoff may not match between them",
        ])
    }

    func testAProfileAgainstItselfIsUnchanged() throws {
        let comparison = try compareFixtures("regressed.json", "regressed.json")
        XCTAssertTrue(comparison.passed)
        XCTAssertTrue(comparison.subjects.allSatisfy { $0.metrics.allSatisfy { $0.delta == 0 } })
        XCTAssertEqual(comparison.notes, [])
    }

    func testNothingToJudgePasses() throws {
        let profile = makeProfile(locks: [("lock", waits(10, total: 1_000_000, p50: 1_000, p99: 2_000), [])])
        let comparison = try Comparison(base: profile, current: profile, baseSource: "a", currentSource: "b",
                                        settings: ComparisonSettings())
        XCTAssertEqual(CheckReport.headline(CheckResult(comparison: comparison)),
                       "PASSED: nothing to judge (no lock with 50 contentions)")
    }

    func testDistributionMetricsNeedEnoughWaitsOnBothSides() throws {
        // 30 waits in the baseline, 5000 now: the rate is judged, the percentiles of 30 waits are not.
        let base = makeProfile(locks: [("lock", waits(30, total: 3_000_000, p50: 1_000, p99: 2_000), [])])
        let current = makeProfile(locks: [("lock", waits(5000, total: 500_000_000, p50: 90_000, p99: 900_000), [])])
        let comparison = try Comparison(base: base, current: current, baseSource: "a", currentSource: "b",
                                        settings: ComparisonSettings())
        XCTAssertEqual(verdicts(comparison, "lock"),
                       [.notEnoughData, .notEnoughData, .notEnoughData, .notEnoughData, .regressed, .regressed])
    }

    func testLimitsAndFloorsFromOptions() throws {
        let looser = try ComparisonSettings.parse(maxRegressions: ["p99=1900"], minDeltas: ["total=400ms/s"])
        let comparison = try compareFixtures("base.json", "regressed.json", settings: looser)
        // +1900% is not over a 1900% limit; +360 ms/s is under a 400 ms/s floor.
        XCTAssertEqual(verdicts(comparison, "namespace_sem"), [.regressed, .unchanged, .regressed, .regressed, .unchanged, .regressed])
    }

    func testMetricAndLockSelection() throws {
        let settings = try ComparisonSettings.parse(metrics: ["rate,p99"], locks: ["mount_lock", "namespace_sem,no_such_lock"])
        let comparison = try compareFixtures("base.json", "regressed.json", settings: settings)
        XCTAssertEqual(comparison.subjects.map(\.subject.lock), ["namespace_sem", "mount_lock", "no_such_lock"])
        XCTAssertEqual(comparison.subjects[0].metrics.map(\.metric), [.p99, .rate])
        let missing = comparison.subjects[2]
        XCTAssertEqual(missing.presence, .neither)
        XCTAssertEqual(missing.verdict, .notEnoughData)
    }

    func testByContainerMatchesContainersByID() throws {
        let settings = try ComparisonSettings.parse(grouping: "container")
        let comparison = try compareFixtures("base.json", "regressed.json", settings: settings)
        let containerA = "4f2a9c01b3d7" + String(repeating: "0", count: 52)
        XCTAssertEqual(comparison.subjects.map(\.subject), [Subject(lock: "namespace_sem", container: containerA),
                                                            Subject(lock: "namespace_sem", container: "host")])
        XCTAssertEqual(comparison.subjects.map(\.subject.label), ["namespace_sem in 4f2a9c01b3d7", "namespace_sem in host"])
        XCTAssertEqual(comparison.subjects[0].metrics[1].base, 600_000)
        XCTAssertEqual(comparison.subjects[0].metrics[1].current, 10_000_000)
        XCTAssertEqual(comparison.subjects.map(\.verdict), [.regressed, .unchanged])
    }

    func testByContainerComparesOnlyContainersRecordedInBoth() throws {
        let stats = waits(100, total: 1_000_000, p50: 1_000, p99: 2_000)
        let base = makeProfile(locks: [("lock", stats, [KeyedStats(key: "host", stats: stats), KeyedStats(key: "old", stats: stats)])])
        let current = makeProfile(locks: [("lock", stats, [KeyedStats(key: "host", stats: stats), KeyedStats(key: "new", stats: stats)]),
                                          ("other", stats, [KeyedStats(key: "host", stats: stats)])])
        let comparison = try Comparison(base: base, current: current, baseSource: "a.json", currentSource: "b.json",
                                        settings: try ComparisonSettings.parse(grouping: "container"))
        XCTAssertEqual(comparison.subjects.map(\.subject.label), ["lock in host", "other in host"])
        XCTAssertEqual(comparison.subjects.map(\.presence), [.both, .onlyInCurrent])
        XCTAssertEqual(comparison.notes, ["2 containers recorded in only one of the profiles are not compared: containers are matched by id"])
    }

    func testByContainerRefusesProfilesWithoutACommonContainer() {
        let base = makeProfile(locks: [("lock", waits(100, total: 1, p50: 1, p99: 1), [KeyedStats(key: "aaa", stats: waits(100, total: 1, p50: 1, p99: 1))])])
        let current = makeProfile(locks: [("lock", waits(100, total: 1, p50: 1, p99: 1), [KeyedStats(key: "bbb", stats: waits(100, total: 1, p50: 1, p99: 1))])])
        XCTAssertThrowsError(try Comparison(base: base, current: current, baseSource: "a.json", currentSource: "b.json",
                                            settings: try ComparisonSettings.parse(grouping: "container"))) {
            XCTAssertEqual($0 as? UserError, UserError("--by container: a.json and b.json have no container id in common (containers are matched by id, and ids change when containers are recreated); compare --by lock instead"))
        }
    }

    func testZeroDurationIsRefused() {
        let empty = makeProfile(durationNs: 0, locks: [])
        XCTAssertThrowsError(try Comparison(base: empty, current: empty, baseSource: "a.json", currentSource: "b.json",
                                            settings: ComparisonSettings())) {
            XCTAssertEqual($0 as? UserError, UserError("a.json has a recording duration of 0 ns, so totals and rates per second cannot be computed; record it again"))
        }
    }

    func testLocksSharingANameAreMerged() throws {
        let parts = try loadFixture("base.json").locks.filter { $0.name == "raw_spin_rq_lock_nested+0x2a" }.map(\.stats)
        XCTAssertEqual(parts.count, 2)
        let merged = WaitStats.merged(parts)
        XCTAssertEqual(merged.contentions, 400)
        XCTAssertEqual(merged.totalWaitNs, 3_200_000)
        XCTAssertEqual(merged.minWaitNs, 1_000)
        XCTAssertEqual(merged.maxWaitNs, 32_000)
        // 400 waits: 270 in [2048, 4096), 30 in [8192, 16384), 100 in [16384, 32768).
        XCTAssertEqual(merged.histogram.map(\.count), [270, 30, 100])
        // Rank 200 is 200/270 into the first bucket: 2048 + 1517.
        XCTAssertEqual(merged.p50WaitNs, 3_565)
        // Rank 360 is 60/100 into the last bucket: 16384 + 9830.
        XCTAssertEqual(merged.p90WaitNs, 26_214)
        // Ranks 396 and 400 interpolate to 32113 and 32768, above the parts' own p99 (30 us) and p99.9 (31 us).
        XCTAssertEqual(merged.p99WaitNs, 30_000)
        XCTAssertEqual(merged.p999WaitNs, 31_000)
        XCTAssertEqual(WaitStats.merged([parts[0]]), parts[0])
    }

    func testHistogramPercentile() {
        let histogram = [HistogramBucket(lowerNs: 1000, upperNs: 2000, count: 99), HistogramBucket(lowerNs: 4000, upperNs: 8000, count: 1)]
        XCTAssertEqual(histogram.percentile(0.99), 2000)
        XCTAssertEqual(histogram.percentile(0.999), 8000)
        XCTAssertEqual(histogram.percentile(0.5), 1505)
        XCTAssertNil([HistogramBucket]().percentile(0.5))
    }
}
