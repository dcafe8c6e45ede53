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

/// On-CPU samples: the folded hint names their graph and unit, and grouping them by CPU, socket or
/// container (which sampled stacks do not keep) is refused with one line and status 2, nothing written.
final class SampledStacksCommandLineTests: XCTestCase {
    func testSampledStacksHintAndGroupingRefusal() throws {
        let directory = try scratchDirectory()
        let path = directory + "/p.json"
        var profile = ReaderFixtures.rich()
        let period: UInt64 = 1_003_009
        profile.locks[0].spin = SpinProfile(
            periodNs: period, time: SampledTime(samples: 3, periodNs: period), spinFunctionSamples: 3, pauseSamples: 0,
            insideWaitSamples: 1, byCpu: [KeyedSamples(key: "1", samples: 3)], bySocket: [], byContainer: [], byProcess: [],
            stacks: [SampledStack(frames: ["osq_lock", "down_write"], samples: 3, sampleClass: .spinFunction)])
        profile.cpuSamples = CPUSampleProfile(
            hz: 997, periodNs: period, counters: SampleCounters(), byClass: [KeyedSamples(key: "spin_function", samples: 3)],
            unattributedSpin: 0,
            stacks: [SampledStack(frames: ["osq_lock", "down_write"], samples: 3, sampleClass: .spinFunction, process: "umount")])
        try profile.write(to: path)

        let cpu = try LockscopeRun.run(["export", path, "--format", "folded", "--samples", "cpu"], in: directory)
        XCTAssertEqual(cpu.status, 0, cpu.stderr)
        XCTAssertEqual(cpu.stderr, "lockscope: draw it with: flamegraph.pl --countname=ns --title='On-CPU time (sampled)' "
                                   + "contention.folded > contention.svg\n")
        let count = try LockscopeRun.run(["export", path, "--format", "folded", "--samples", "spin", "--weight", "count"], in: directory)
        XCTAssertEqual(count.status, 0, count.stderr)
        XCTAssertEqual(count.stderr, "lockscope: draw it with: flamegraph.pl --countname=samples "
                                     + "--title='Spinning on locks, on CPU (sampled)' contention.folded > contention.svg\n")

        for (command, group) in [(["export", path, "--format", "folded"], "cpu"), (["flamegraph", path, "-o", directory + "/s.svg"], "container"),
                                 (["export", path, "--format", "pprof", "-o", directory + "/s.pb.gz"], "lock,socket")] {
            let refused = try LockscopeRun.run(command + ["--samples", "spin", "--group", group], in: directory)
            let dimension = group.split(separator: ",").last!
            XCTAssertEqual(refused.status, 2, refused.stderr)
            XCTAssertEqual(refused.stderr, "lockscope: --samples spin stacks are not kept per \(dimension): group them by lock only "
                                           + "(--group lock); report --by \(dimension) has each lock's spin samples by \(dimension)\n")
            XCTAssertEqual(refused.output, "")
        }
        let cpuByCPU = try LockscopeRun.run(["flamegraph", path, "-o", directory + "/c.svg", "--samples", "cpu", "--group", "cpu"], in: directory)
        XCTAssertEqual(cpuByCPU.status, 2)
        XCTAssertEqual(cpuByCPU.stderr, "lockscope: --samples cpu stacks are not kept per cpu: group them by lock only (--group lock)\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/s.svg"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/c.svg"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/s.pb.gz"))
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
