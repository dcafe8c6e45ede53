import Foundation
import XCTest
@testable import LockscopeStress
import LockscopeTestSupport

/// `lockscope stress` as a person or a script runs it: the built binary, its output and exit codes.
final class StressCommandTests: XCTestCase {
    override func setUpWithError() throws {
        try requireRoot()
    }

    func testJSONOutputIsOneObjectWithEveryDocumentedField() throws {
        let run = try LockscopeRun.run(["stress", "--containers", "2", "--layers", "2", "--parallel", "2", "--strategy", "common-parent", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = run.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 1)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let fields = ["strategy", "containers", "layers", "parallel", "rounds", "mount_ops", "mount_ops_per_container",
                      "mount_ops_by_syscall", "setup_p50_ms", "setup_p90_ms", "setup_p99_ms", "setup_max_ms", "wall_ms",
                      "failures", "container_list"]
        XCTAssertEqual(Set(fields).subtracting(object.keys), [])
        XCTAssertEqual(object["mount_ops"] as? Int, 16)
        XCTAssertEqual(Set((object["mount_ops_by_syscall"] as? [String: Int] ?? [:]).keys),
                       ["mount", "umount2", "open_tree", "move_mount", "mount_setattr", "unshare"])
        let containers = try XCTUnwrap(object["container_list"] as? [[String: Any]])
        XCTAssertEqual(containers.count, 2)
        for container in containers {
            XCTAssertEqual(Set(["id", "runtime", "pod_uid", "cgroup"]).subtracting(container.keys), [])
        }
    }

    func testSummaryNamesTheRunAndItsCounts() throws {
        let run = try LockscopeRun.run(["stress", "--containers", "1", "--layers", "2", "--parallel", "1"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.hasPrefix("lockscope stress: 1 container × 2 layers, per-layer, parallel 1, 1 round, docker cgroups\n"), run.stdout)
        XCTAssertTrue(run.stdout.contains("mount ops       12 (12 per container): unshare 1, mount 2, open_tree 2, mount_setattr 2, move_mount 2, umount2 3"), run.stdout)
    }

    func testBadOptionExitsWithTwoAndOneLine() throws {
        let run = try LockscopeRun.run(["stress", "--layers", "0"])
        XCTAssertEqual(run.status, 2)
        XCTAssertEqual(run.stdout, "")
        XCTAssertEqual(run.stderr, "lockscope stress: --layers must be between 1 and 500 (overlayfs stacks at most 500 lower layers), got 0\n")
    }

    func testEveryStopSignalStopsTheWorkersAndRemovesEverything() throws {
        for (signal, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP"), (SIGQUIT, "SIGQUIT")] {
            let scratchParent = try makeScratchParent()
            defer { try? FileManager.default.removeItem(at: scratchParent) }
            let (process, stderr) = try startEndlessRun(in: scratchParent)

            // Wait until workers have started, then signal the parent only.
            let runName = try waitForRun(in: scratchParent, startedContainers: 3)
            let cgroup = try cgroupRoot() + "/" + runName
            XCTAssertTrue(FileManager.default.fileExists(atPath: cgroup))
            kill(process.processIdentifier, signal)
            process.waitUntilExit()

            let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertEqual(process.terminationReason, .exit, "\(name): \(message)")
            XCTAssertEqual(process.terminationStatus, 128 + signal, "\(name): \(message)")
            XCTAssertEqual(message, "lockscope stress: interrupted by \(name): the workers were stopped and all mounts, directories and cgroups removed\n")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratchParent.path), [], name)
            XCTAssertFalse(FileManager.default.fileExists(atPath: cgroup), "\(name): cgroup \(cgroup) left behind")
            XCTAssertEqual(workerProcesses(mentioning: runName), [], "\(name): workers left running")
        }
    }

    func testTheNextRunRemovesWhatASIGKILLedRunLeft() throws {
        // The parent alone (its workers die with it), and the parent with every worker, as killing
        // the whole process group does.
        for killsWorkersToo in [false, true] {
            let scratchParent = try makeScratchParent()
            defer { try? FileManager.default.removeItem(at: scratchParent) }
            let (process, _) = try startEndlessRun(in: scratchParent)
            let runName = try waitForRun(in: scratchParent, startedContainers: 3)
            let workers = killsWorkersToo ? workerProcesses(mentioning: runName) : []
            kill(process.processIdentifier, SIGKILL)
            for worker in workers { kill(pid_t(worker)!, SIGKILL) }
            process.waitUntilExit()

            let cgroup = try cgroupRoot() + "/" + runName
            let leftCgroups = try cgroupDirectories(below: cgroup)
            XCTAssertGreaterThanOrEqual(leftCgroups, 1, "the killed run left no cgroup to clean up")
            let next = try LockscopeRun.run(["stress", "--containers", "1", "--layers", "2", "--parallel", "1",
                                         "--scratch-parent", scratchParent.path])
            XCTAssertEqual(next.status, 0, next.stderr)
            XCTAssertEqual(next.stderr, "lockscope: removed \(leftCgroups) cgroups and \(scratchParent.path)/\(runName) "
                               + "left by an earlier run (pid \(process.processIdentifier), gone)\n")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratchParent.path), [])
            XCTAssertFalse(FileManager.default.fileExists(atPath: cgroup), "cgroup \(cgroup) left behind")
            XCTAssertEqual(workerProcesses(mentioning: runName), [], "workers left running")
        }
    }

    // MARK: Helpers

    private func makeScratchParent() throws -> URL {
        let scratchParent = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-stress-test-\(UUID())")
        try FileManager.default.createDirectory(at: scratchParent, withIntermediateDirectories: true)
        return scratchParent
    }

    /// Starts a run of more containers than a test waits for, and returns it with its stderr.
    private func startEndlessRun(in scratchParent: URL) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try LockscopeBinary.path())
        process.arguments = ["stress", "--containers", "10000", "--layers", "20", "--parallel", "2",
                             "--scratch-parent", scratchParent.path]
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = Pipe()
        try process.run()
        return (process, stderr)
    }

    /// How many cgroup directories `path` and its subtree hold.
    private func cgroupDirectories(below path: String) throws -> Int {
        let entries = try FileManager.default.subpathsOfDirectory(atPath: path)
        return 1 + entries.filter { entry in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: "\(path)/\(entry)", isDirectory: &isDirectory) && isDirectory.boolValue
        }.count
    }

    /// The run's name (its scratch directory's), once `startedContainers` work directories exist.
    private func waitForRun(in scratchParent: URL, startedContainers: Int) throws -> String {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let runName = try FileManager.default.contentsOfDirectory(atPath: scratchParent.path).first,
               let started = try? FileManager.default.contentsOfDirectory(atPath: "\(scratchParent.path)/\(runName)/containers"),
               started.count >= startedContainers {
                return runName
            }
            usleep(10_000)
        }
        throw TestSetupError(description: "the stress run did not start \(startedContainers) containers within 20 s")
    }

    /// Pids of processes whose command line mentions `text`.
    private func workerProcesses(mentioning text: String) -> [String] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.filter { pid in
            guard pid.allSatisfy(\.isNumber), let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: cmdline, as: UTF8.self).contains(text)
        }
    }
}
