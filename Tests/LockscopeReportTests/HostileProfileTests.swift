import Foundation
import LockscopeCore
import XCTest

/// Every command that reads profiles, run as users run it, on profiles made to break it: it answers
/// (status 0, 1 for a failed check, or 2 with one line), and never traps, hangs or prints raw control characters.
final class HostileProfileTests: XCTestCase {
    /// Every reader command on `profile`, against `other` where it takes two.
    private func readerCommands(_ profile: String, other: String, directory: String) -> [(arguments: [String], statuses: Set<Int32>)] {
        let budget = directory + "/budget.json"
        FileManager.default.createFile(atPath: budget, contents: Data("""
            {"schema": "lockscope.budget/1", "locks": {"*": {"p99_wait_ns": 1000, "total_wait_ns_per_sec": 5, "contentions_per_sec": 1}},
             "mounts": {"ops_per_container": 10}}
            """.utf8))
        return [
            (["report", profile, "--by", "cpu", "--by", "socket", "--by", "node", "--by", "llc", "--by", "container",
              "--by", "process", "--by", "handoff", "--by", "owner", "--mounts"], [0]),
            (["report", profile, "--format", "json", "--mounts", "--sort", "p99"], [0]),
            (["report", profile, "--format", "csv", "--sort", "count"], [0]),
            (["export", profile, "--format", "folded", "--group", "socket,container,cpu,lock"], [0]),
            (["export", profile, "--format", "folded", "--weight", "count"], [0]),
            (["export", profile, "--format", "csv"], [0]),
            (["export", profile, "--format", "speedscope", "--group", "container"], [0]),
            (["export", profile, "--format", "pprof", "--group", "cpu", "-o", directory + "/out.pb.gz"], [0]),
            (["flamegraph", profile, "-o", directory + "/out.svg", "--group", "container,lock", "--color", "container"], [0]),
            (["flamegraph", profile, "-o", directory + "/out.svg", "--weight", "count", "--icicle"], [0]),
            (["check", profile, "--baseline", other, "--budget", budget, "--min-contentions", "1",
              "--junit", directory + "/junit.xml", "--markdown", directory + "/check.md"], [0, 1]),
            (["check", other, "--baseline", profile, "--by", "container", "--min-contentions", "1"], [0, 1]),
            (["diff", other, profile, "--min-contentions", "1"], [0]),
            (["diff", profile, other, "--format", "markdown", "--min-contentions", "1"], [0]),
            (["diff", profile, profile, "--format", "json", "--by", "container"], [0]),
        ]
    }

    /// The three profiles that crashed every reader (events + dropped past 2^64, two locks of 2^63 ns,
    /// everything at 2^64-1): every reader answers.
    func testCraftedProfilesNeverTrapAnyReader() throws {
        let directory = try scratchDirectory()
        let rich = directory + "/rich.json"
        try ReaderFixtures.rich().write(to: rich)
        for (name, profile) in ReaderFixtures.crafted {
            let path = "\(directory)/\(name).json"
            try profile.write(to: path)
            for (arguments, statuses) in readerCommands(path, other: rich, directory: directory) {
                let run = try LockscopeRun.run(arguments, in: directory)
                XCTAssertFalse(run.signaled, "\(name): \(arguments) died of signal \(run.status): \(run.stderr)")
                XCTAssertTrue(statuses.contains(run.status), "\(name): \(arguments) exited \(run.status): \(run.stderr)")
            }
        }
        let report = try LockscopeRun.run(["report", "\(directory)/events-overflow.json"], in: directory)
        XCTAssertTrue(report.output.contains("for 5.00 s, 18446744073709551615 events\ndropped 1 events (0.0%)\n"), report.output)
        let diff = try LockscopeRun.run(["diff", rich, "\(directory)/everything-max.json", "--metric", "total,p99"], in: directory)
        XCTAssertTrue(diff.output.contains("""
            namespace_sem (100 → 18446744073709551615 contentions)        regressed
              p99 wait            300 us 18446744074 s +18446744074 s ×61489146912365  regressed
              total wait        600 us/s 18446744073709549568 s/s +18446744073709549568 s/s ×30744573456182583230464  regressed
            """), diff.output)
        // 2^63 ns less the 1.6 ms its stacks hold: the rest waited without a stack.
        let folded = try LockscopeRun.run(["export", "\(directory)/two-locks-2^63.json", "--format", "folded"], in: directory)
        XCTAssertTrue(folded.output.contains("[lock] namespace_sem;[no stack] 9223372036853175808\n"), folded.output)
    }
}
