import Foundation
import LockscopeCore
import XCTest

/// Folded stacks carry no unit: `export --format folded` says on stderr how to draw them with flamegraph.pl.
final class FoldedCommandLineTests: XCTestCase {
    func testFoldedPrintsTheFlamegraphCommandWithItsUnit() throws {
        let directory = try scratchDirectory()
        let path = directory + "/p.json"
        try ReaderFixtures.rich().write(to: path)
        let wait = try LockscopeRun.run(["export", path, "--format", "folded", "-o", directory + "/my storm.folded"], in: directory)
        XCTAssertEqual(wait.status, 0, wait.stderr)
        XCTAssertEqual(wait.stderr, "lockscope: draw it with: flamegraph.pl --countname=ns --title='Lock wait time' "
                                    + "'\(directory)/my storm.folded' > '\(directory)/my storm.svg'\n")
        let count = try LockscopeRun.run(["export", path, "--format", "folded", "--weight", "count"], in: directory)
        XCTAssertEqual(count.status, 0, count.stderr)
        XCTAssertEqual(count.stderr, "lockscope: draw it with: flamegraph.pl --countname=contentions --title='Lock contentions' "
                                     + "contention.folded > contention.svg\n")
        XCTAssertFalse(count.output.contains("flamegraph.pl"), "the hint stays off the folded lines")
        let csv = try LockscopeRun.run(["export", path, "--format", "csv"], in: directory)
        XCTAssertEqual(csv.stderr, "")
        let help = try LockscopeRun.run(["export", "--help"], in: directory)
        XCTAssertTrue(help.output.replacingOccurrences(of: "\n", with: " ").contains("--countname=ns"), help.output)
    }
}
