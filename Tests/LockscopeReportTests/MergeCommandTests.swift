import Foundation
import LockscopeCore
import XCTest

/// `lockscope merge` as users run it, and the readers on what it writes.
final class MergeCommandTests: XCTestCase {
    /// The containerd storm recorded on node-b, and the same recording as if from node-c.
    private func twoHosts(in directory: String) throws -> Profile {
        let storm = try MountStormReportTests.fixture()
        var other = storm
        other.hostname = "node-c"
        try storm.write(to: directory + "/b.json")
        try other.write(to: directory + "/c.json")
        return storm
    }

    func testMergedProfileReadsInReportDiffCheckAndFlamegraph() throws {
        let directory = try scratchDirectory()
        let storm = try twoHosts(in: directory)
        let merge = try LockscopeRun.run(["merge", "b.json", "c.json", "-o", "fleet.json"], in: directory)
        XCTAssertEqual(merge.status, 0, merge.stderr)
        XCTAssertEqual(merge.output, "fleet.json: 2 hosts merged, \(storm.locks.count) locks\n")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: directory + "/fleet.json")[.posixPermissions] as? Int, 0o600)

        let fleet = try Profile.load(path: directory + "/fleet.json")
        XCTAssertEqual(fleet.hostname, "merged:2 hosts")
        for lock in storm.locks {
            let merged = try XCTUnwrap(fleet.locks.first { $0.name == lock.name && $0.kind == lock.kind }, lock.name)
            XCTAssertEqual(merged.stats.contentions, lock.stats.contentions * 2, lock.name)
            XCTAssertEqual(merged.stats.totalWaitNs, lock.stats.totalWaitNs * 2, lock.name)
            XCTAssertEqual(merged.byHost, [KeyedStats(key: "node-b", stats: lock.stats), KeyedStats(key: "node-c", stats: lock.stats)])
        }

        let report = try LockscopeRun.run(["report", "fleet.json", "--by", "host"], in: directory)
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssertTrue(report.output.hasPrefix("lockscope report: host merged:2 hosts, kernel "), report.output)
        let hostRows = report.output.split(separator: "\n").filter { $0.hasPrefix("  node-b ") || $0.hasPrefix("  node-c ") }
        XCTAssertEqual(hostRows.count, 2 * Swift.min(storm.locks.count, 10), report.output)
        XCTAssertTrue(hostRows.allSatisfy { $0.contains("50.0%") }, report.output)

        let diff = try LockscopeRun.run(["diff", "b.json", "fleet.json", "--format", "json"], in: directory)
        XCTAssertEqual(diff.status, 0, diff.stderr)
        let subjects = try XCTUnwrap((try JSONSerialization.jsonObject(with: diff.stdout) as? [String: Any])?["subjects"] as? [[String: Any]])
        let sem = try XCTUnwrap(subjects.first { ($0["subject"] as? [String: Any])?["lock"] as? String == "namespace_sem" })
        let base = try XCTUnwrap(storm.locks.first { $0.name == "namespace_sem" }).stats.contentions
        XCTAssertEqual((sem["base_contentions"] as? NSNumber)?.uint64Value, base)
        XCTAssertEqual((sem["current_contentions"] as? NSNumber)?.uint64Value, base * 2)

        let check = try LockscopeRun.run(["check", "fleet.json", "--baseline", "b.json"], in: directory)
        XCTAssertEqual(check.status, 1, "twice the wait in the same time is a regression: \(check.output) \(check.stderr)")
        let flamegraph = try LockscopeRun.run(["flamegraph", "fleet.json", "-o", "fleet.svg"], in: directory)
        XCTAssertEqual(flamegraph.status, 0, flamegraph.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/fleet.svg"))
    }

    /// Bad input: one line, status 2, nothing written.
    func testBadInputIsOneLineAndWritesNothing() throws {
        let directory = try scratchDirectory()
        _ = try twoHosts(in: directory)
        try Data("{\"schema\": \"lockscope.profile/1\"".utf8).write(to: URL(fileURLWithPath: directory + "/broken.json"))
        let cases: [([String], String)] = [
            (["merge", "b.json", "b.json", "-o", "out.json"],
             "lockscope: b.json and b.json are both from host node-b: give one profile per host (by_host and the host/cpu keys tell hosts apart by name)\n"),
            (["merge", "b.json", "missing.json", "-o", "out.json"], ""),
            (["merge", "b.json", "broken.json", "-o", "out.json"], ""),
            (["merge", "-o", "out.json"],
             "lockscope: give the profiles to merge, one per host: lockscope merge A.json B.json -o fleet.json\n"),
        ]
        for (arguments, message) in cases {
            let run = try LockscopeRun.run(arguments, in: directory)
            XCTAssertEqual(run.status, 2, "\(arguments)")
            XCTAssertEqual(run.stdout, Data(), "\(arguments)")
            XCTAssertEqual(run.stderr.filter { $0 == "\n" }.count, 1, run.stderr)
            XCTAssertTrue(run.stderr.hasPrefix("lockscope: "), run.stderr)
            if !message.isEmpty { XCTAssertEqual(run.stderr, message) }
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/out.json"), "\(arguments)")
        }
        let merged = try LockscopeRun.run(["merge", "b.json", "c.json", "-o", "fleet.json"], in: directory)
        XCTAssertEqual(merged.status, 0, merged.stderr)
        let again = try LockscopeRun.run(["merge", "fleet.json", "b.json", "-o", "out.json"], in: directory)
        XCTAssertEqual(again.status, 2)
        XCTAssertEqual(again.stderr, "lockscope: fleet.json is already a merge (its locks have by_host): merge the hosts' own profiles instead\n")
    }
}
