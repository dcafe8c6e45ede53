import Foundation
import LockscopeCore
import LockscopeTestSupport
import XCTest

/// The `lockscope` binary as users run it: record around a command, refuse bad input before
/// attaching, and stop cleanly on signals.
final class CommandLineTests: XCTestCase {
    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `lockscope` with `arguments`; `interruptAfter` sends SIGINT after that many seconds.
    private func lockscope(_ arguments: [String], interruptAfter: Double? = nil, prefix: [String] = []) throws -> Run {
        let process = Process()
        let binary = try LockscopeBinary.path()
        process.executableURL = URL(fileURLWithPath: prefix.first ?? binary)
        process.arguments = prefix.isEmpty ? arguments : Array(prefix.dropFirst()) + [binary] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        if let interruptAfter {
            Thread.sleep(forTimeInterval: interruptAfter)
            process.interrupt()
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self))
    }

    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "lockscope-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// `record -- lockscope stress`: the profile shows namespace_sem, and per-container mount ops equal
    /// to what stress itself counted.
    func testRecordAroundStress() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let binary = try LockscopeBinary.path()
        // namespace_sem is held for microseconds and 2 CPUs rarely collide on it: storm until they do.
        var run = Run(status: -1, stdout: "", stderr: "")
        for _ in 0..<4 {
            run = try lockscope(["record", "-o", "\(directory)/p.json", "--quiet", "--no-report", "--",
                                 binary, "stress", "--strategy", "per-layer", "--containers", "200", "--layers", "50",
                                 "--parallel", "16", "--json"])
            if try Profile.load(path: "\(directory)/p.json").locks.contains(where: { $0.name == "namespace_sem" }) {
                break
            }
        }
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.hasPrefix("lockscope: attached"), run.stderr)
        struct StressJSON: Decodable {
            struct Container: Decodable { var id: String; var mountOps: Int }
            var mountOpsPerContainer: Int
            var containerList: [Container]
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let stress = try decoder.decode(StressJSON.self, from: Data(run.stdout.utf8))
        let profile = try Profile.load(path: "\(directory)/p.json")
        let namespaceSem = try XCTUnwrap(profile.locks.first { $0.name == "namespace_sem" }, "\(profile.locks.map(\.name))")
        XCTAssertGreaterThan(namespaceSem.stats.contentions, 0)
        let mounts = try XCTUnwrap(profile.mounts)
        let seen = Dictionary(mounts.byContainer.map { ($0.id, $0.ops) }, uniquingKeysWith: +)
        XCTAssertEqual(stress.containerList.count, 200)
        for container in stress.containerList {
            XCTAssertEqual(seen[container.id], UInt64(container.mountOps), container.id)
            XCTAssertEqual(container.mountOps, stress.mountOpsPerContainer)
        }
        let report = try lockscope(["report", "\(directory)/p.json", "--mounts"])
        XCTAssertEqual(report.status, 0)
        XCTAssertTrue(report.stdout.contains("mount ops per container: \(stress.mountOpsPerContainer).0 (200 containers)"),
                      report.stdout)
    }

    /// A host without tracefs mounted (here: a mount namespace of the test's own): `record` mounts it, as
    /// perf and bpftrace do, uses the per-syscall tracepoints, says so, and counts every mount syscall.
    func testRecordMountsTracefsWhenItIsMissing() throws {
        let unmount = "for m in /sys/kernel/tracing /sys/kernel/debug/tracing /sys/kernel/debug; do umount $m 2>/dev/null; done"
        let run = try recordStormInMountNamespace(setUp: unmount)
        XCTAssertTrue(run.stderr.contains("mount syscalls through per-syscall tracepoints (tracefs mounted at /sys/kernel/tracing)"),
                      run.stderr)
    }

    /// Where tracefs cannot be had (here: a /sys/kernel with BTF only, so there is nowhere to mount it),
    /// `record` falls back to raw_syscalls, says so, and still counts every mount syscall.
    func testRecordFallsBackToRawSyscallsWithoutTracefs() throws {
        let directory = try temporaryDirectory()
        let btfOnly = "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; "
            + "mkdir \(directory)/kernel && mount -t tmpfs -o size=64k,mode=0755 none \(directory)/kernel && "
            + "mkdir \(directory)/kernel/btf && mount --bind /sys/kernel/btf \(directory)/kernel/btf && "
            + "mount --move \(directory)/kernel /sys/kernel"
        let run = try recordStormInMountNamespace(setUp: btfOnly)
        XCTAssertTrue(run.stderr.contains("mount syscalls through raw_syscalls"), run.stderr)
        XCTAssertFalse(run.stderr.contains("tracefs mounted"), run.stderr)
    }

    /// Records a small storm from inside a mount namespace of its own after `setUp` (a shell command)
    /// changed what it sees of tracefs; checks every container's mount syscalls were counted and that
    /// the host's tracefs is as it was.
    private func recordStormInMountNamespace(setUp: String) throws -> Run {
        try requireBPF()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else {
            throw XCTSkip("needs unshare(1) to change tracefs in a mount namespace of the test's own")
        }
        let directory = try temporaryDirectory()
        let binary = try LockscopeBinary.path()
        let hostTracefs = "/sys/kernel/tracing/events/syscalls"
        let hostHadTracefs = FileManager.default.fileExists(atPath: hostTracefs)
        let inNamespace = ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                           "\(setUp); exec \"$0\" \"$@\""]
        let run = try lockscope(["record", "-o", "\(directory)/p.json", "--quiet", "--no-report", "--",
                                 binary, "stress", "--strategy", "per-layer", "--containers", "4", "--layers", "3",
                                 "--json"], prefix: inNamespace)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.hasPrefix("lockscope: attached"), run.stderr)
        struct StressJSON: Decodable {
            struct Container: Decodable { var id: String; var mountOps: Int }
            var containerList: [Container]
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let stress = try decoder.decode(StressJSON.self, from: Data(run.stdout.utf8))
        let mounts = try XCTUnwrap(try Profile.load(path: "\(directory)/p.json").mounts)
        let seen = Dictionary(mounts.byContainer.map { ($0.id, $0.ops) }, uniquingKeysWith: +)
        XCTAssertEqual(stress.containerList.count, 4)
        for container in stress.containerList {
            XCTAssertEqual(seen[container.id], UInt64(container.mountOps), container.id)
        }
        XCTAssertEqual(FileManager.default.fileExists(atPath: hostTracefs), hostHadTracefs, "the host's tracefs changed")
        return run
    }

    func testRecordExitsWithTheCommandsStatus() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let run = try lockscope(["record", "-o", "\(directory)/p.json", "--quiet", "--no-report", "--",
                                 "/bin/sh", "-c", "exit 3"])
        XCTAssertEqual(run.status, 3, run.stderr)
        XCTAssertNoThrow(try Profile.load(path: "\(directory)/p.json"))
    }

    /// Bad input is refused with one line and status 2 before anything is attached or written.
    func testBadInputIsRefusedBeforeAttaching() throws {
        let directory = try temporaryDirectory()
        let output = "\(directory)/p.json"
        let cases: [([String], String)] = [
            (["record", "--duration", "soon", "-o", output], "The value 'soon' is invalid for '--duration <duration>': give a positive duration"),
            (["record", "--duration", "0", "-o", output], "The value '0' is invalid for '--duration <duration>'"),
            (["record", "--duration", "-1", "-o", output], "The value '-1' is invalid for '--duration <duration>'"),
            (["record", "--locks", "no_such_lock", "-o", output], "unknown lock name 'no_such_lock'"),
            (["record", "-o", "\(directory)/missing/p.json"], "directory \(directory)/missing does not exist"),
            (["record", "-o", ""], "cannot write an empty path: give a file name"),
            (["record", "--ringbuf-size", "3000", "-o", output], "give a power of two from 4K to 1G"),
            (["record", "--kinds", "semaphore", "-o", output], "unknown lock kind 'semaphore'"),
            (["record", "--kinds", "", "-o", output], "The value '' is invalid for '--kinds <kinds>': give one or more of spinlock"),
            (["record", "--lock-addr", "zz", "-o", output], "The value 'zz' is invalid for '--lock-addr <lock-addr>'"),
            (["record", "--container", "zzzz", "-o", output], "no running container id starts with 'zzzz'"),
            (["record", "--container", "", "-o", output], "give a container id prefix"),
            (["record", "--min-wait", "fast", "-o", output], "The value 'fast' is invalid for '--min-wait <min-wait>'"),
            (["record", "--pid", "0", "-o", output], "The value '0' is invalid for '--pid <pid>': give a process id"),
            (["record", "--pid", "-1", "-o", output], "The value '-1' is invalid for '--pid <pid>': give a process id"),
            (["record", "--pid", "99999999", "-o", output], "no process has this id"),
            (["record", "--top", "-1", "-o", output], "give a number of rows, or 0 for all"),
            (["record", "--spin-hz", "-5", "-o", output], "give samples per second from 0 (off) to 10000, like 997"),
            (["record", "--spin-hz", "20000", "-o", output], "give samples per second from 0 (off) to 10000, like 997"),
            (["record", "--spin-hz", "fast", "-o", output], "The value 'fast' is invalid for '--spin-hz <spin-hz>'"),
            (["record", "--mode", "0999", "-o", output], "give octal permissions like 0600 or 0644"),
            (["record", "-o", output, "--", ""], "no command after --: give the command to profile"),
            (["record", "-o", output, "--", "/nonexistent/cmd"], "cannot run '/nonexistent/cmd': No such file or directory"),
            (["record", "-o", output, "--", "no-such-command-anywhere"], "cannot run 'no-such-command-anywhere': not found in PATH"),
            (["record", "-o", output, "--", "/"], "cannot run '/': it is a directory"),
            (["record", "--cpu", "4096", "-o", output], "CPU 4096 is not online on this machine: give CPUs from"),
            (["record", "--cpu", "0-", "-o", output], "'0-' is not a CPU list: write it as perf -C and cpuset.cpus do, e.g. 0,2-3"),
            (["record", "--cpu", "", "-o", output], "'' is not a CPU list"),
            (["record", "--tid", "12,x", "-o", output], "The value '12,x' is invalid for '--tid <TID,...>': give thread ids"),
            (["record", "--tid", "0", "-o", output], "give thread ids, whole numbers from 1"),
            (["record", "--callstack-filter", "a,,b", "-o", output], "'a,,b' is not a list of function names"),
            (["record", "--max-stack", "0", "-o", output], "give a number of frames from 1 to 48"),
            (["record", "--max-stack", "49", "-o", output], "give a number of frames from 1 to 48"),
            (["report", "\(directory)/none.json"], "cannot read \(directory)/none.json"),
            (["report", output, "--sort", "fastest"], "--sort"),
        ]
        for (arguments, message) in cases {
            let run = try lockscope(arguments)
            XCTAssertEqual(run.status, 2, "\(arguments): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(message), "\(arguments): \(run.stderr)")
            XCTAssertEqual(run.stderr.filter { $0 == "\n" }.count, 1, "one line: \(arguments): \(run.stderr)")
            XCTAssertFalse(run.stderr.contains("attached"), "\(arguments)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output), "\(arguments) wrote a file")
        }
    }

    func testWithoutPrivilegesRecordSaysWhatIsNeeded() throws {
        guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            throw XCTSkip("needs root and setpriv to drop to an unprivileged user")
        }
        let directory = try temporaryDirectory()
        chmod(directory, 0o777)
        let run = try lockscope(["record", "--duration", "1", "-o", "\(directory)/p.json"],
                                prefix: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                         "--inh-caps=-all", "--bounding-set=-all"])
        XCTAssertEqual(run.status, 2, run.stderr)
        XCTAssertTrue(run.stderr.hasPrefix("lockscope: recording needs CAP_BPF and CAP_PERFMON (to load and attach BPF programs)"), run.stderr)
        XCTAssertTrue(run.stderr.hasSuffix(": run as root (sudo), or grant what is missing\n"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory)/p.json"))
    }

    /// Ctrl-C at any moment: no lockscope program stays attached, and the output is a valid profile or absent.
    func testInterruptAtAnyMomentLeavesNothingAttached() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        for (index, delay) in [0.0, 0.05, 0.15, 0.3, 0.8, 1.5, 3.0].enumerated() {
            let output = "\(directory)/p\(index).json"
            let before = try lockscopePrograms()
            let run = try lockscope(["record", "-o", output, "--quiet", "--no-report"], interruptAfter: delay)
            XCTAssertTrue([0, 2, 130, Int32(SIGINT)].contains(run.status) || run.status == 128 + SIGINT,
                          "delay \(delay): status \(run.status) \(run.stderr)")
            if FileManager.default.fileExists(atPath: output) {
                XCTAssertNoThrow(try Profile.load(path: output), "delay \(delay)")
            }
            // The kernel frees a program shortly after its last file descriptor closes.
            var leaked = try lockscopePrograms().subtracting(before)
            for _ in 0..<20 where !leaked.isEmpty {
                Thread.sleep(forTimeInterval: 0.1)
                leaked = try lockscopePrograms().subtracting(before)
            }
            XCTAssertEqual(leaked, [], "delay \(delay)")
        }
    }

    /// Ids of loaded BPF programs named like lockscope's.
    private func lockscopePrograms() throws -> Set<Int> {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/bpftool")
        process.arguments = ["prog", "show", "--json"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let programs = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
        let ours: Set<String> = ["contention_begin", "contention_end", "syscall_enter", "syscall_exit", "spin_sample"]
        return Set(programs.filter { ours.contains($0["name"] as? String ?? "") }.compactMap { $0["id"] as? Int })
    }
}

/// The CI gate end to end: a common-parent recording as baseline, a per-layer recording as candidate.
final class CheckEndToEndTests: XCTestCase {
    private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try LockscopeBinary.path())
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    private func record(_ strategy: String, to path: String) throws {
        let binary = try LockscopeBinary.path()
        let result = try run(["record", "-o", path, "--quiet", "--no-report", "--", binary, "stress",
                              "--strategy", strategy, "--containers", "200", "--layers", "50", "--parallel", "48"])
        XCTAssertEqual(result.status, 0, result.output)
    }

    /// The gate on the lock per-layer idmapping multiplies: every temporary idmapped mount's umount
    /// waits for an expedited RCU grace period, serialised on rcu_state.exp_mutex (4L + 4 mount
    /// operations per container against 8). namespace_sem, held for microseconds, is mostly won by
    /// spinning on 2 CPUs (no contention event) and so collides too rarely here to gate on reliably.
    func testPerLayerFailsTheGateAgainstCommonParent() throws {
        try requireBPF()
        let directory = NSTemporaryDirectory() + "lockscope-check-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let base = "\(directory)/base.json", candidate = "\(directory)/candidate.json"
        let lock = "rcu_state.exp_mutex"
        try record("common-parent", to: base)
        // Storm until the candidate contends clearly more often (the rate's limits: +20% and 10/s), so
        // that the gate has a regression to find even on a loaded machine.
        let baseRate = try contentionsPerSecond(on: lock, in: base)
        var candidateRate = 0.0
        for _ in 0..<6 {
            try record("per-layer", to: candidate)
            candidateRate = try contentionsPerSecond(on: lock, in: candidate)
            if candidateRate >= max(baseRate * 1.5, baseRate + 15) { break }
        }
        XCTAssertGreaterThanOrEqual(candidateRate, baseRate + 15, "6 per-layer storms never contended clearly more than the baseline")
        let gate = try run(["check", candidate, "--baseline", base, "--locks", lock, "--min-contentions", "5",
                            "--junit", "\(directory)/junit.xml"])
        XCTAssertEqual(gate.status, 1, gate.output)
        XCTAssertTrue(gate.output.contains(lock), gate.output)
        XCTAssertTrue(try String(contentsOfFile: "\(directory)/junit.xml", encoding: .utf8).contains("<failure"))
        let same = try run(["check", candidate, "--baseline", candidate])
        XCTAssertEqual(same.status, 0, same.output)
    }

    private func contentionsPerSecond(on lock: String, in path: String) throws -> Double {
        let profile = try Profile.load(path: path)
        let contentions = profile.locks.first { $0.name == lock }?.stats.contentions ?? 0
        return Double(contentions) / max(Double(profile.durationNs) / 1e9, 1e-9)
    }
}
