import Foundation
import LockscopeCore
import enum LockscopeTestSupport.ExternalTool
import XCTest

/// `report --format csv --top 0` and `export --format csv` read by Python's csv module, the reader a
/// pandas or spreadsheet user's script relies on: the same locks, with the same totals, under the same
/// `lock` column, both RFC 4180 (CRLF). Skipped without python3 unless LOCKSCOPE_REQUIRE_TOOLS=1 (CI).
final class ReportExportCSVTests: XCTestCase {
    /// Prints, as JSON, each file's rows keyed by lock and address (`name@address`: two locks may share a
    /// name): the report's rows and the export's `total` rows, with the columns both have; how many rows
    /// each file had (so that a key met twice shows); and whether each file's records all end in CRLF.
    static let reader = #"""
        import csv, json, sys
        shared = ["contentions", "total_wait_ns", "max_wait_ns", "mean_wait_ns", "p50_wait_ns", "p90_wait_ns",
                  "p99_wait_ns", "p999_wait_ns", "kind", "identity"]
        def rows(path, keep):
            with open(path, newline="") as f:
                raw = f.read()
            records = [r for r in csv.DictReader(raw.splitlines(keepends=True)) if keep(r)]
            return {"crlf": raw.endswith("\r\n") and raw.count("\n") == raw.count("\r\n"), "rows": len(records),
                    "locks": {r["lock"] + "@" + r["address"]: {k: r[k] for k in shared} for r in records}}
        print(json.dumps({"report": rows(sys.argv[1], lambda r: True),
                          "export": rows(sys.argv[2], lambda r: r["dimension"] == "total")}))
        """#

    func testReportTopZeroAgreesWithExportOnEveryLock() throws {
        guard let python = ExternalTool.path(of: "python3") else {
            if ExternalTool.required { throw ExternalTool.Failure("python3 is not installed: apt-get install python3") }
            throw XCTSkip("python3 is not installed")
        }
        let directory = try scratchDirectory()
        let path = directory + "/p.json"
        // More locks than report's default --top 10, one of them with a comma and a quote in its name, and
        // two with the same name at different addresses (as per-object locks named by their caller are).
        var profile = ReaderFixtures.rich(locks: 14)
        profile.locks[13].name = "weird, \"quoted\" lock"
        profile.locks[12].name = profile.locks[11].name
        profile.locks[12].stats.contentions = 77
        let twins = profile.locks[11...12].map { "\($0.name)@\($0.address)" }
        XCTAssertEqual(Set(twins).count, 2)
        try profile.write(to: path)
        let report = try LockscopeRun.run(["report", path, "--top", "0", "--format", "csv"], in: directory)
        XCTAssertEqual(report.status, 0, report.stderr)
        let export = try LockscopeRun.run(["export", path, "--format", "csv"], in: directory)
        XCTAssertEqual(export.status, 0, export.stderr)
        try report.stdout.write(to: URL(fileURLWithPath: directory + "/report.csv"))
        try export.stdout.write(to: URL(fileURLWithPath: directory + "/export.csv"))
        try Data(Self.reader.utf8).write(to: URL(fileURLWithPath: directory + "/read.py"))
        let read = try ExternalTool.run(python, [directory + "/read.py", directory + "/report.csv", directory + "/export.csv"])
        XCTAssertEqual(read.status, 0, read.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [String: [String: Any]])
        let reportLocks = try XCTUnwrap(object["report"]?["locks"] as? [String: [String: String]])
        let exportLocks = try XCTUnwrap(object["export"]?["locks"] as? [String: [String: String]])
        XCTAssertEqual(object["report"]?["rows"] as? Int, 14)
        XCTAssertEqual(object["export"]?["rows"] as? Int, 14)
        XCTAssertEqual(reportLocks.count, 14)
        XCTAssertEqual(reportLocks, exportLocks)
        let weird = "weird, \"quoted\" lock@\(profile.locks[13].address)"
        XCTAssertEqual(reportLocks[weird]?["contentions"], String(profile.locks[13].stats.contentions))
        XCTAssertEqual(reportLocks[twins[0]]?["contentions"], "100")
        XCTAssertEqual(reportLocks[twins[1]]?["contentions"], "77")
        XCTAssertEqual(object["report"]?["crlf"] as? Bool, true)
        XCTAssertEqual(object["export"]?["crlf"] as? Bool, true)
    }
}
