import Foundation
import LockscopeCore
import LockscopeReport
import XCTest

/// `lockscope sweep`'s table, warnings and `--compare` (text and JSON), on sweeps built here.
final class SweepReportTests: XCTestCase {
    private let one = Placement(name: "cpus:0", cpus: [0])

    private func run(_ p99: Double, spin: Double = 0, cpus: [Int] = [0], waits: UInt64 = 10) -> SweepRun {
        SweepRun(values: [.setupP99: p99, .namespaceSemSpin: spin], cpusSeen: cpus, waitsChecked: waits, failures: 0)
    }

    private func sweep(_ points: [SweepPoint], host: String) -> Sweep {
        Sweep(hostname: host, kernel: "k", startedAt: "t", topology: nil, confinement: .cpusetV1, workload: "w",
              placements: [one], points: points)
    }

    func testTheTableMarksPointsThatWereNotShownConfined() {
        let points = [SweepPoint(placement: one, parallel: 1, runs: [run(1), run(2, waits: 0)]),
                      SweepPoint(placement: one, parallel: 2, runs: [run(1, spin: 2.5), run(2, cpus: [0, 1])]),
                      SweepPoint(placement: one, parallel: 4, runs: [run(1), run(3)])]
        let lines = SweepReport.table(sweep(points, host: "h")).split(separator: "\n").map(String.init)
        XCTAssertTrue(lines[0].contains("cpuset-v1 confinement, 2 runs a point"), lines[0])
        XCTAssertTrue(lines[1].contains("namespace_sem spin ms"), lines[1])
        XCTAssertTrue(lines[2].hasSuffix("0 (unverified)"), lines[2])
        XCTAssertTrue(lines[3].hasSuffix("0,1 (outside the placement!)"), lines[3])
        XCTAssertTrue(lines[3].contains("1.2 [0.0-2.5]"), lines[3])
        XCTAssertTrue(lines[4].hasSuffix(" 0"), lines[4])
        XCTAssertEqual(SweepReport.warning(points[1], placement: one),
                       "warning: cpus:0 parallel 2: the storm's containers waited on CPU 1, outside the placement (0); the confinement did not hold")
        XCTAssertEqual(SweepReport.warning(points[0], placement: one),
                       "warning: cpus:0 parallel 1: a run recorded no wait of the storm's containers, so its placement (0) is unverified")
        XCTAssertNil(SweepReport.warning(points[2], placement: one))
    }

    func testCompareShowsEveryMetricFlagsChangesOutsideBothSpreadsAndListsUnmatchedPoints() throws {
        let directory = NSTemporaryDirectory() + "lockscope-sweep-compare-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let before = sweep([SweepPoint(placement: one, parallel: 1, runs: [run(10), run(11), run(12)]),
                            SweepPoint(placement: one, parallel: 2, runs: [run(10), run(11), run(12)])], host: "a")
        let after = sweep([SweepPoint(placement: one, parallel: 2, runs: [run(11.5), run(13), run(14)]),
                           SweepPoint(placement: one, parallel: 8, runs: [run(1), run(1), run(1)])], host: "b")
        for (name, value) in [("a", before), ("b", after)] {
            try Profile.makeEncoder().encode(value).write(to: URL(fileURLWithPath: "\(directory)/\(name).json"))
        }
        let text = try LockscopeRun.run(["sweep", "--compare", "a.json", "b.json"], in: directory)
        XCTAssertEqual(text.status, 0, text.stderr)
        let lines = text.output.split(separator: "\n").map(String.init)
        // One row per metric of the one common point, p99 flagged higher (13 outside 10-12, 11 outside 11.5-14).
        let rows = lines.filter { $0.hasPrefix("  cpus:0") }
        XCTAssertEqual(rows.count, SweepMetric.allCases.count, text.output)
        let p99 = try XCTUnwrap(rows.first { $0.contains("set-up p99") })
        XCTAssertTrue(p99.contains("11.0 [10.0-12.0]") && p99.contains("13.0 [11.5-14.0]") && p99.contains("×1.18") && p99.hasSuffix("higher"), p99)
        XCTAssertEqual(rows.filter { $0.hasSuffix("higher") || $0.hasSuffix("lower") }.count, 1, text.output)
        XCTAssertTrue(lines.contains("only before: cpus:0 parallel 1"), text.output)
        XCTAssertTrue(lines.contains("only after: cpus:0 parallel 8"), text.output)

        let json = try LockscopeRun.run(["sweep", "--compare", "a.json", "b.json", "--json"], in: directory)
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        XCTAssertEqual(object["schema"] as? String, "lockscope.sweep-comparison/1")
        let row = try XCTUnwrap((object["rows"] as? [[String: Any]])?.first)
        let metrics = try XCTUnwrap(row["metrics"] as? [[String: Any]])
        XCTAssertEqual(metrics.count, SweepMetric.allCases.count)
        XCTAssertEqual(metrics.first { $0["metric"] as? String == "setup_p99_ms" }?["change"] as? String, "higher")
        XCTAssertEqual((object["only_before"] as? [[String: Any]])?.first?["parallel"] as? Int, 1)
        XCTAssertEqual((object["only_after"] as? [[String: Any]])?.first?["parallel"] as? Int, 8)
    }
}
