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

/// `export`/`flamegraph --callstack-filter`: only matching stacks, what it kept said on stderr, and csv refused.
final class CallstackFilterCommandLineTests: XCTestCase {
    func testExportsKeepOnlyMatchingStacksAndCSVRefusesTheFilter() throws {
        let directory = try scratchDirectory()
        let path = directory + "/p.json"
        let profile = ReaderFixtures.rich()
        try profile.write(to: path)
        let name = try XCTUnwrap(profile.locks.flatMap(\.stacks).flatMap(\.frames).first { !$0.hasPrefix("[") })
        let folded = try LockscopeRun.run(["export", path, "--format", "folded", "--callstack-filter", name], in: directory)
        XCTAssertEqual(folded.status, 0, folded.stderr)
        let lines = folded.output.split(separator: "\n")
        XCTAssertFalse(lines.isEmpty)
        XCTAssertTrue(lines.allSatisfy { $0.contains(name) }, folded.output)
        XCTAssertTrue(folded.stderr.hasPrefix("lockscope: --callstack-filter \(name) kept "), folded.stderr)

        let none = try LockscopeRun.run(["export", path, "--format", "folded", "--callstack-filter", "no_such_function"], in: directory)
        XCTAssertEqual(none.status, 0, none.stderr)
        XCTAssertEqual(none.output, "")
        XCTAssertTrue(none.stderr.hasPrefix("lockscope: --callstack-filter no_such_function kept 0 of "), none.stderr)

        let svg = try LockscopeRun.run(["flamegraph", path, "-o", directory + "/f.svg", "--callstack-filter", name], in: directory)
        XCTAssertEqual(svg.status, 0, svg.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/f.svg"))

        let csv = try LockscopeRun.run(["export", path, "--format", "csv", "--callstack-filter", name], in: directory)
        XCTAssertEqual(csv.status, 2)
        XCTAssertEqual(csv.stderr, "lockscope: --callstack-filter keeps stacks; csv's rows are per lock and dimension, which cannot be split by stack: drop it, or record with --callstack-filter\n")
        let bad = try LockscopeRun.run(["export", path, "--format", "folded", "--callstack-filter", ""], in: directory)
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("is not a list of function names"), bad.stderr)
    }
}
