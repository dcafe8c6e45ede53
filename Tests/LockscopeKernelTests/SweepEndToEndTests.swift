import Foundation
import LockscopeCore
import LockscopeTestSupport
import XCTest

/// `lockscope sweep` on this machine: parallelism 1-16 in the placements "all" and "one CPU", the
/// confinement checked from what was recorded, not assumed.
final class SweepEndToEndTests: XCTestCase {
    func testASweepRunsEveryPointAndItsWaitsStayOnThePlacementsCPUs() throws {
        try requireBPF()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-sweep-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = directory.appendingPathComponent("sweep.json").path
        let svg = directory.appendingPathComponent("sweep.svg").path
        let run = try LockscopeRun.run(["sweep", "--parallel", "1,2,4,8,16", "--cpus", "0", "--runs", "1",
                                        "--containers", "16", "--layers", "4", "-o", json, "--svg", svg])
        XCTAssertEqual(run.status, 0, run.stderr)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let sweep = try decoder.decode(Sweep.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        // Where a cgroup v1 cpuset hierarchy is mounted (this machine: hybrid), the storm is confined with a cpuset child.
        let plan = ConfinementPlan.current()
        XCTAssertEqual(sweep.confinement, plan.method)
        if MountTable.current().mounts.contains(where: { $0.mountPoint == "/sys/fs/cgroup/cpuset" && $0.filesystemType == "cgroup" }) {
            XCTAssertEqual(sweep.confinement, .cpusetV1, plan.reason)
            XCTAssertTrue(run.stderr.contains("confining the storm's workers with cpuset-v1"), run.stderr)
        }
        XCTAssertEqual(sweep.placements.map(\.name), ["all", "cpus:0"])
        XCTAssertEqual(sweep.points.map(\.parallel), [1, 2, 4, 8, 16, 1, 2, 4, 8, 16])
        XCTAssertTrue(sweep.points.allSatisfy { $0.runs.count == 1 && $0.runs[0].failures == 0 })
        // Confined to CPU 0: every wait of the storm's containers was taken on CPU 0, and every point recorded some...
        let oneCPU = sweep.points(of: "cpus:0")
        // A run with no contended wait of the storm's containers (possible at low parallelism) shows nothing:
        // that point is unverified, never confined; every other point is confined.
        for point in sweep.points {
            let silent = point.runs.contains { $0.waitsChecked == 0 }
            XCTAssertEqual(point.check, silent ? .unverified : .confined, "\(point.placement) \(point.parallel): \(point.runs)")
        }
        XCTAssertGreaterThanOrEqual(oneCPU.filter { $0.check == .confined }.count, 3, "\(oneCPU.map(\.runs))")
        XCTAssertEqual(Set(oneCPU.flatMap(\.cpusSeen)), [0], "no waits recorded on CPU 0")
        // ...while unconfined, the same storms waited on both CPUs: the confinement did something.
        XCTAssertEqual(Set(sweep.points(of: "all").flatMap(\.cpusSeen)), [0, 1])
        XCTAssertFalse(run.stderr.contains("outside the placement"), run.stderr)
        // Every run carries the sampled spin of both locks (this small storm rarely spins on 2 CPUs: how the
        // values are read from a profile is tested on a recording that did, SweepRunFromProfileTests).
        XCTAssertTrue(sweep.points.allSatisfy { $0.runs.allSatisfy {
            $0.values[SweepMetric.namespaceSemSpin.rawValue] != nil && $0.values[SweepMetric.mountLockSpin.rawValue] != nil } })
        XCTAssertTrue(run.stdout.split(separator: "\n").contains { $0.hasPrefix("  cpus:0 ") && $0.split(separator: " ")[1] == "16" },
                      run.stdout)
        XCTAssertTrue(run.stdout.contains("namespace_sem spin ms"), run.stdout)
        XCTAssertTrue(try String(contentsOfFile: svg, encoding: .utf8).contains("data-series=\"cpus:0\""))
        // No cpuset child is left behind.
        if let parent = plan.cpusetParent {
            let left = try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.hasPrefix(CPUSetV1Child.namePrefix) }
            XCTAssertEqual(left, [])
        }

        let compared = try LockscopeRun.run(["sweep", "--compare", json, json])
        XCTAssertEqual(compared.status, 0, compared.stderr)
        // The same sweep against itself: every point, every metric, unchanged.
        XCTAssertEqual(compared.stdout.components(separatedBy: "×1.00").count - 1, SweepMetric.allCases.count * sweep.points.count,
                       compared.stdout)
        XCTAssertFalse(compared.stdout.contains("higher") || compared.stdout.contains("lower") || compared.stdout.contains("only before") || compared.stdout.contains("only after"),
                       compared.stdout)
        let comparedJSON = try LockscopeRun.run(["sweep", "--compare", json, json, "--json"])
        XCTAssertEqual(comparedJSON.status, 0, comparedJSON.stderr)
        let comparison = try decoder.decode(SweepComparison.self, from: Data(comparedJSON.stdout.utf8))
        XCTAssertEqual(comparison.rows.count, sweep.points.count)
        XCTAssertTrue(comparison.rows.allSatisfy { $0.metrics.count == SweepMetric.allCases.count && $0.metrics.allSatisfy { $0.change == .unchanged } })
        XCTAssertEqual(comparison.onlyBefore.count + comparison.onlyAfter.count, 0)
    }

    /// The cgroup v1 cpuset child: the thread that joins it (only it) is confined to its CPUs, as is what it
    /// spawns; it is gone afterwards.
    func testACpusetChildConfinesTheThreadThatJoinsItAndWhatItStarts() throws {
        try requireBPF()
        let plan = ConfinementPlan.current()
        guard let parent = plan.cpusetParent else { throw XCTSkip("no cgroup v1 cpuset here: \(plan.reason)") }
        let child = try CPUSetV1Child(parent: parent, cpus: [0])
        XCTAssertEqual(try String(contentsOfFile: child.path + "/cpuset.cpus", encoding: .utf8), "0\n")
        XCTAssertEqual(try String(contentsOfFile: child.path + "/cpuset.mems", encoding: .utf8),
                       try String(contentsOfFile: parent + "/cpuset.mems", encoding: .utf8))
        final class Seen: @unchecked Sendable { var thread = "", spawned = "", tasks = 0, error: Error? }
        let seen = Seen()
        let thread = Thread {
            do {
                try child.joinCurrentThread()
                seen.thread = Self.allowedCPUs(try String(contentsOfFile: "/proc/thread-self/status", encoding: .utf8))
                seen.tasks = child.tasks.count
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/bin/cat")
                process.arguments = ["/proc/self/status"]
                let pipe = Pipe()
                process.standardOutput = pipe
                try process.run()
                let output = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                seen.spawned = Self.allowedCPUs(String(decoding: output, as: UTF8.self))
                try child.leaveCurrentThread()
            } catch {
                seen.error = error
            }
        }
        thread.start()
        while !thread.isFinished { usleep(10_000) }
        if let error = seen.error { throw error }
        XCTAssertEqual(seen.thread, "0")
        XCTAssertEqual(seen.tasks, 1, "only the joining thread")
        XCTAssertEqual(seen.spawned, "0")
        // What is left are threads of this process the joined thread started (Foundation's for Process):
        // remove() moves them back to the parent; no process is left in it.
        XCTAssertTrue(child.tasks.allSatisfy { FileManager.default.fileExists(atPath: "/proc/self/task/\($0)") }, "\(child.tasks)")
        try child.remove()
        XCTAssertFalse(FileManager.default.fileExists(atPath: child.path))

        // A child whose sweep was SIGKILLed (its pid gone) is removed by the next; a live sweep's is not.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        let abandoned = "\(parent)/\(CPUSetV1Child.namePrefix)\(process.processIdentifier)-1"
        let live = try CPUSetV1Child(parent: parent, cpus: [0])
        XCTAssertEqual(mkdir(abandoned, 0o755), 0)
        CPUSetV1Child.removeAbandoned(in: parent)
        XCTAssertFalse(FileManager.default.fileExists(atPath: abandoned))
        XCTAssertTrue(FileManager.default.fileExists(atPath: live.path))
        try live.remove()
    }

    private static func allowedCPUs(_ status: String) -> String {
        status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }
            .map { $0.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces) } ?? "?"
    }

    /// Bad input is one line and exit 2, before anything is recorded.
    func testBadSweepInputIsOneLine() throws {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-not-a-sweep-\(getpid()).json")
        try Data("{\"schema\": \"lockscope.profile/1\"}".utf8).write(to: profile)
        defer { try? FileManager.default.removeItem(at: profile) }
        for (arguments, message) in [(["--cpus", "7-9"], "is not online"), (["--placements", "numa"], "unknown placement 'numa'"),
                                     (["--parallel", "0,2"], "positive numbers"), (["--compare", profile.path], "two sweep files"),
                                     (["--compare", profile.path, profile.path], "is a lockscope.profile/1 file, not lockscope.sweep/2"),
                                     (["--compare", profile.path, profile.path, "--svg", "x.svg"], "-o and --svg are for running a sweep")] {
            let bad = try LockscopeRun.run(["sweep"] + arguments)
            XCTAssertEqual(bad.status, 2, "\(arguments)")
            XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
            XCTAssertTrue(bad.stderr.contains(message), "\(arguments): \(bad.stderr)")
        }
    }
}
