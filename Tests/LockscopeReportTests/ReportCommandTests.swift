import Foundation
import LockscopeCore
import XCTest

@testable import LockscopeReport

/// `lockscope report` as users run it.
final class ReportCommandTests: XCTestCase {
    /// `--top 0` shows every lock, in every format; a negative `--top` is one line and status 2.
    func testTopZeroShowsEveryLock() throws {
        let directory = try scratchDirectory()
        let path = directory + "/p.json"
        try ReaderFixtures.rich(locks: 12).write(to: path)
        let table = try LockscopeRun.run(["report", path, "--top", "0"], in: directory)
        XCTAssertEqual(table.status, 0, table.stderr)
        let rows = table.output.split(separator: "\n").filter { $0.hasSuffix("namespace_sem") || $0.contains("  lock_") }
        XCTAssertEqual(rows.count, 12, table.output)
        XCTAssertEqual(rows.first, "      100  12.0 ms  1.20 ms   120 us  1.20 ms  rwsem     namespace_sem")
        XCTAssertEqual(rows.last, "      100  1.00 ms   100 us  10.0 us   100 us  spinlock  lock_11+0x11")
        let csv = try LockscopeRun.run(["report", path, "--top", "0", "--format", "csv"], in: directory)
        XCTAssertEqual(csv.output.components(separatedBy: "\r\n").count, 1 + 12 + 1)
        let json = try LockscopeRun.run(["report", path, "--top", "0", "--format", "json"], in: directory)
        let locks = try XCTUnwrap((try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])?["locks"] as? [Any])
        XCTAssertEqual(locks.count, 12)
        let three = try LockscopeRun.run(["report", path, "--top", "3", "--format", "csv"], in: directory)
        XCTAssertEqual(three.output.components(separatedBy: "\r\n").count, 1 + 3 + 1)
        for (arguments, value) in [(["report", path, "--top", "-1"], -1), (["report", path, "--top=-5"], -5)] {
            let run = try LockscopeRun.run(arguments, in: directory)
            XCTAssertEqual(run.status, 2, "\(arguments)")
            XCTAssertEqual(run.stderr, "lockscope: --top \(value): give a number of locks, or 0 for all of them\n")
            XCTAssertEqual(run.stdout, Data())
        }
    }

    /// CSV and JSON cut at `--top` say so on stderr, and JSON counts the locks it holds and the profile's;
    /// the table (which lists its top locks by design) and an output that holds every lock say nothing.
    func testCutAtTopIsSaid() throws {
        let directory = try scratchDirectory()
        let path = directory + "/p.json"
        try ReaderFixtures.rich(locks: 14).write(to: path)
        for format in ["csv", "json"] {
            let cut = try LockscopeRun.run(["report", path, "--format", format], in: directory)
            XCTAssertEqual(cut.status, 0, cut.stderr)
            XCTAssertEqual(cut.stderr, "lockscope: 10 of 14 locks; --top 0 for all\n", format)
            let five = try LockscopeRun.run(["report", path, "--format", format, "--top", "5"], in: directory)
            XCTAssertEqual(five.stderr, "lockscope: 5 of 14 locks; --top 0 for all\n", format)
            for arguments in [["--top", "0"], ["--top", "14"], ["--top", "20"]] {
                let all = try LockscopeRun.run(["report", path, "--format", format] + arguments, in: directory)
                XCTAssertEqual(all.status, 0, all.stderr)
                XCTAssertEqual(all.stderr, "", "\(format) \(arguments)")
            }
        }
        let table = try LockscopeRun.run(["report", path], in: directory)
        XCTAssertEqual(table.stderr, "")
        let json = try LockscopeRun.run(["report", path, "--format", "json", "--top", "3"], in: directory)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        XCTAssertEqual(object["locks_total"] as? Int, 14)
        XCTAssertEqual(object["locks_shown"] as? Int, 3)
        XCTAssertEqual((object["locks"] as? [Any])?.count, 3)
        let all = try LockscopeRun.run(["report", path, "--format", "json", "--top", "0"], in: directory)
        let whole = try XCTUnwrap(try JSONSerialization.jsonObject(with: all.stdout) as? [String: Any])
        XCTAssertEqual(whole["locks_total"] as? Int, 14)
        XCTAssertEqual(whole["locks_shown"] as? Int, 14)
    }

    func testTopZeroSelectsEveryLockInTheRenderer() {
        let profile = ReaderFixtures.rich(locks: 12)
        for format in ReportFormat.allCases {
            XCTAssertEqual(ReportRenderer(profile: profile, options: ReportOptions(top: 0, format: format)).selectedLocks.count, 12)
        }
        XCTAssertEqual(ReportRenderer(profile: profile, options: ReportOptions(top: 5)).selectedLocks.count, 5)
    }

    /// `lockscope timeline`: the SVG written through AtomicFile with `--mode`; bad input is one line and status 2.
    func testTimelineWritesTheSVGAndRefusesWhatItCannotDraw() throws {
        let directory = try scratchDirectory()
        let storm = try MountStormReportTests.fixture()
        try storm.write(to: directory + "/storm.json")
        let run = try LockscopeRun.run(["timeline", "storm.json", "-o", "t.svg", "--title", "Node <b>"], in: directory)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, Data())
        let svg = try String(contentsOfFile: directory + "/t.svg", encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<?xml") && svg.hasSuffix("</svg>\n") && svg.contains(">Node &lt;b&gt;</text>"))
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: directory + "/t.svg")[.posixPermissions] as? Int, 0o600)
        XCTAssertEqual(try LockscopeRun.run(["timeline", "storm.json", "-o", "shared.svg", "--mode", "0644"], in: directory).status, 0)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: directory + "/shared.svg")[.posixPermissions] as? Int, 0o644)

        var old = storm
        old.timeline = nil
        try old.write(to: directory + "/old.json")
        for (arguments, message) in [
            (["timeline", "old.json", "-o", "x.svg"], "lockscope: old.json has no timeline: it was recorded before lockscope kept one; record it again\n"),
            (["timeline", "storm.json", "-o", "missing/x.svg"],
             "lockscope: cannot write missing/x.svg: directory \(directory)/missing does not exist; create it or choose another path\n"),
            (["timeline", "storm.json"], "lockscope: Missing expected argument '--output <output>' (see `lockscope timeline --help`)\n"),
        ] {
            let refused = try LockscopeRun.run(arguments, in: directory)
            XCTAssertEqual(refused.status, 2, "\(arguments)")
            XCTAssertEqual(refused.stderr, message, "\(arguments)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/x.svg"))

        let report = try LockscopeRun.run(["report", "storm.json", "--by", "victim", "--top", "1"], in: directory)
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssertTrue(report.output.contains("  systemd[1]  host          48  2.31 s  412 ms\n"), report.output)
    }
}
