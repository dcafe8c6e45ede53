import Foundation
import LockscopeCore
import XCTest
@testable import LockscopeCompare

/// Victims and container starts in `diff` (table, markdown, JSON) and in `check --markdown`: the
/// containerd storm against a later recording where the storm was smaller and the pids changed.
final class MountStormDiffTests: XCTestCase {
    private func storm() throws -> Profile {
        try Profile.load(path: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../LockscopeExportTests/Fixtures/containerd-storm.json").standardized.path)
    }

    /// systemd waited less; kubelet ran as two processes with new pids (added up); the health check
    /// is gone and cadvisor is new; every start waited a quarter as long.
    private func later() throws -> Profile {
        var profile = try storm()
        var victims = try XCTUnwrap(profile.victims)
        victims[0].totalWaitNs = 400_000_000
        victims[0].maxWaitNs = 90_000_000
        victims[1].process = "kubelet[2201]"
        victims[1].totalWaitNs = 100_000_000
        var second = victims[1]
        second.process = "kubelet[2290]"
        second.totalWaitNs = 20_000_000
        second.maxWaitNs = 300_000_000
        var cadvisor = victims[1]
        cadvisor.process = "cadvisor[3001]"
        cadvisor.totalWaitNs = 5_000_000
        profile.victims = [victims[0], victims[1], second, cadvisor]
        for index in profile.mounts!.byContainer.indices { profile.mounts!.byContainer[index].start?.lockWaitNs /= 4 }
        return profile
    }

    private func comparison(_ base: Profile, _ current: Profile) throws -> Comparison {
        try Comparison(base: base, current: current, baseSource: "before.json", currentSource: "after.json",
                       settings: ComparisonSettings())
    }

    func testVictimsAreMatchedByNameWithoutThePid() throws {
        let victims = try comparison(try storm(), try later()).victims
        XCTAssertEqual(victims.map(\.process), ["systemd", "kubelet", "cadvisor", "healthcheck"])
        let kubelet = victims[1]
        XCTAssertEqual([kubelet.baseProcesses, kubelet.currentProcesses], [1, 2])
        XCTAssertEqual([kubelet.baseTotalWaitNs, kubelet.currentTotalWaitNs], [840_000_000, 120_000_000])
        XCTAssertEqual([kubelet.baseMaxWaitNs, kubelet.currentMaxWaitNs], [205_000_000, 300_000_000])
        XCTAssertEqual(try XCTUnwrap(kubelet.changePercent), -85.714, accuracy: 0.001)
        XCTAssertNil(victims[2].changePercent, "cadvisor is new")
        XCTAssertEqual(victims[3].currentTotalWaitNs, 0)
        XCTAssertEqual(VictimComparison.name("runc:[2:INIT][77]"), "runc:[2:INIT]")
        XCTAssertEqual(VictimComparison.name("[12]"), "[12]")
        XCTAssertEqual(VictimComparison.name("kworker/u8:2"), "kworker/u8:2")
    }

    func testTableShowsVictimsAndStarts() throws {
        let text = DiffTable.render(try comparison(try storm(), try later()))
        XCTAssertTrue(text.contains("""

            victims (waited, never mounted): total wait by process name
              systemd             2.31 s     400 ms     -1.91 s     -83%
              kubelet             840 ms     120 ms     -720 ms     -86%
              cadvisor              0 ns    5.00 ms    +5.00 ms      new
              healthcheck        3.20 ms       0 ns    -3.20 ms    -100%

            container starts (3 → 3): lock wait in their mount syscalls
              per start           1.10 s     276 ms     -828 ms     -75%
              longest             1.46 s     365 ms     -1.09 s     -75%
              share of set-up      40.9%      10.2%    -30.6 pt

            0 regressed, 0 improved, 2 unchanged, 1 not enough data.
            """), text)
        for line in text.split(separator: "\n") { XCTAssertLessThanOrEqual(line.count, 80, String(line)) }
    }

    func testWithoutVictimsOrStartsInOneProfileNothingIsAdded() throws {
        var old = try storm()
        old.victims = nil
        for index in old.mounts!.byContainer.indices { old.mounts!.byContainer[index].start = nil }
        let plain = try comparison(old, old)
        XCTAssertEqual(plain.victims, [])
        XCTAssertNil(plain.containerStarts)
        let text = DiffTable.render(plain)
        XCTAssertFalse(text.contains("victims") || text.contains("container starts"), text)
        // Starts are compared only when both profiles have them; victims of one profile still show.
        let half = try comparison(old, try later())
        XCTAssertNil(half.containerStarts)
        XCTAssertEqual(half.victims.map(\.baseTotalWaitNs), [0, 0, 0])
    }

    func testMarkdownListsTheTopVictimsAndTheStarts() throws {
        var current = try later()
        current.victims! += (1...4).map { Victim(process: "probe\($0)[\(900 + $0)]", container: "host", contentions: 1,
                                                 totalWaitNs: UInt64($0), maxWaitNs: UInt64($0), byLock: [], holders: []) }
        let markdown = MarkdownReport.render(CheckResult(comparison: try comparison(try storm(), current)), for: .diff)
        XCTAssertTrue(markdown.contains("""
            #### Victims: processes that waited without mounting

            | Process | Base total wait | Current total wait | Change | Current longest wait |
            | --- | ---: | ---: | ---: | ---: |
            | `systemd` | 2.31 s | 400 ms | -83% | 90.0 ms |
            | `kubelet` | 840 ms | 120 ms | -86% | 300 ms |
            | `cadvisor` | 0 ns | 5.00 ms | new | 205 ms |
            | `healthcheck` | 3.20 ms | 0 ns | -100% | 0 ns |
            | `probe4` | 0 ns | 4 ns | new | 4 ns |
            | 3 more | | | | |

            Container starts (3 → 3): lock wait per start 1.10 s → 276 ms (-75%), longest 1.46 s → 365 ms.
            """), markdown)
    }

    func testJSONCarriesVictimsAndStarts() throws {
        let json = try DiffJSON.render(try comparison(try storm(), try later()))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let victims = try XCTUnwrap(object["victims"] as? [[String: Any]])
        XCTAssertEqual(victims.count, 4)
        XCTAssertEqual(victims[1]["process"] as? String, "kubelet")
        XCTAssertEqual(victims[1]["current_total_wait_ns"] as? Int, 120_000_000)
        XCTAssertEqual(victims[1]["current_processes"] as? Int, 2)
        XCTAssertNil(victims[2]["change_percent"], "absent when the baseline had no wait")
        let starts = try XCTUnwrap(object["container_starts"] as? [String: Any])
        XCTAssertEqual((starts["base"] as? [String: Any])?["max_lock_wait_ns"] as? Int, 1_460_000_000)
        XCTAssertEqual((starts["current"] as? [String: Any])?["starts"] as? Int, 3)
    }
}
