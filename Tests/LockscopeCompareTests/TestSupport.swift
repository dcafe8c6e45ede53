import Foundation
import LockscopeCore
import XCTest
@testable import LockscopeCompare

/// The fixtures directory (profiles written by Fixtures/make-fixtures.py, budgets and broken files by hand).
let fixturesDirectory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path

func fixture(_ name: String) -> String { "\(fixturesDirectory)/\(name)" }

func loadFixture(_ name: String) throws -> Profile { try Profile.load(path: fixture(name)) }

/// A comparison of two fixtures, sourced by their file names.
func compareFixtures(_ base: String, _ current: String,
                     settings: ComparisonSettings = ComparisonSettings()) throws -> Comparison {
    try Comparison(base: loadFixture(base), current: loadFixture(current), baseSource: base, currentSource: current,
                   settings: settings)
}

/// Runs a check the way the CLI does: its exit status, with `UserError`s as status 2 and their message.
func exitStatus(_ request: CheckRequest) -> (status: Int32, error: String?) {
    do {
        return (try Check.run(request).exitStatus, nil)
    } catch let error as UserError {
        return (2, error.description)
    } catch {
        XCTFail("unexpected error \(error)")
        return (-1, nil)
    }
}

/// A file of `text` fixed to drop the fixtures directory, for golden comparisons.
func withoutFixturePaths(_ text: String) -> String {
    text.replacingOccurrences(of: fixturesDirectory + "/", with: "")
}

/// Wait statistics with the given figures (p90 equal to p99, one histogram bucket).
func waits(_ contentions: UInt64, total: UInt64, p50: UInt64, p99: UInt64, p999: UInt64? = nil,
           max: UInt64? = nil) -> WaitStats {
    WaitStats(contentions: contentions, totalWaitNs: total, minWaitNs: p50, maxWaitNs: max ?? p999 ?? p99,
              p50WaitNs: p50, p90WaitNs: p99, p99WaitNs: p99, p999WaitNs: p999 ?? p99,
              histogram: [HistogramBucket(lowerNs: 1024, upperNs: 2048, count: contentions)])
}

/// A profile of `durationNs` with the given locks, each optionally split by container.
func makeProfile(durationNs: UInt64 = 10_000_000_000, kernel: String = "6.18.0",
                 locks: [(name: String, stats: WaitStats, byContainer: [KeyedStats])]) -> Profile {
    Profile(hostname: "test", kernel: kernel, startedAt: "2025-06-01T12:00:00Z", durationNs: durationNs, events: 0,
            drops: Drops(), recording: Recording(), topology: nil, containers: [], mounts: nil,
            locks: locks.map {
                LockProfile(name: $0.name, identity: .caller, kind: .spinlock, address: "0xffff888000000000",
                            stats: $0.stats, byContainer: $0.byContainer)
            })
}

/// A fresh scratch directory, removed after the test.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let path = NSTemporaryDirectory() + "lockscope-compare-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}
