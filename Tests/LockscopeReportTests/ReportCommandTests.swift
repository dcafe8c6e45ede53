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
        XCTAssertEqual(csv.output.split(separator: "\n").count, 1 + 12)
        let json = try LockscopeRun.run(["report", path, "--top", "0", "--format", "json"], in: directory)
        let locks = try XCTUnwrap((try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])?["locks"] as? [Any])
        XCTAssertEqual(locks.count, 12)
        let three = try LockscopeRun.run(["report", path, "--top", "3", "--format", "csv"], in: directory)
        XCTAssertEqual(three.output.split(separator: "\n").count, 1 + 3)
        for (arguments, value) in [(["report", path, "--top", "-1"], -1), (["report", path, "--top=-5"], -5)] {
            let run = try LockscopeRun.run(arguments, in: directory)
            XCTAssertEqual(run.status, 2, "\(arguments)")
            XCTAssertEqual(run.stderr, "lockscope: --top \(value): give a number of locks, or 0 for all of them\n")
            XCTAssertEqual(run.stdout, Data())
        }
    }

    func testTopZeroSelectsEveryLockInTheRenderer() {
        let profile = ReaderFixtures.rich(locks: 12)
        for format in ReportFormat.allCases {
            XCTAssertEqual(ReportRenderer(profile: profile, options: ReportOptions(top: 0, format: format)).selectedLocks.count, 12)
        }
        XCTAssertEqual(ReportRenderer(profile: profile, options: ReportOptions(top: 5)).selectedLocks.count, 5)
    }
}
