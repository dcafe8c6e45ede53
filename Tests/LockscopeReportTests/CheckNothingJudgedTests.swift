import Foundation
import LockscopeCore
import XCTest

/// `lockscope check` on profiles with too few contentions to judge: it passes and says so, and with
/// --fail-if-nothing-judged it fails (exit 1), the JUnit file saying why.
final class CheckNothingJudgedTests: XCTestCase {
    func testFailIfNothingJudged() throws {
        let directory = try scratchDirectory()
        let path = directory + "/p.json"
        try ReaderFixtures.rich().write(to: path)
        let base = ["check", path, "--baseline", path, "--min-contentions", "1000000000"]
        let quiet = try LockscopeRun.run(base, in: directory)
        XCTAssertEqual(quiet.status, 0, quiet.stderr)
        XCTAssertTrue(quiet.output.hasPrefix("PASSED: nothing to judge"), quiet.output)
        let strict = try LockscopeRun.run(base + ["--fail-if-nothing-judged", "--junit", directory + "/junit.xml"], in: directory)
        XCTAssertEqual(strict.status, 1, strict.stderr)
        XCTAssertTrue(strict.output.hasPrefix("FAILED: nothing to judge"), strict.output)
        XCTAssertTrue(strict.output.contains("--fail-if-nothing-judged"), strict.output)
        let junit = try String(contentsOfFile: directory + "/junit.xml", encoding: .utf8)
        XCTAssertTrue(junit.contains(#"name="something judged" time="0">"#), junit)
        // Its own failure type, not a regression's: the one failure in the file.
        XCTAssertEqual(junit.components(separatedBy: "<failure ").count, 2, junit)
        XCTAssertTrue(junit.contains(#"<failure type="nothing-judged" message="nothing judged: "#), junit)
        // A judged check is unaffected by the flag.
        let judged = try LockscopeRun.run(["check", path, "--baseline", path, "--min-contentions", "1", "--fail-if-nothing-judged"],
                                          in: directory)
        XCTAssertEqual(judged.status, 0, judged.output + judged.stderr)
    }
}
