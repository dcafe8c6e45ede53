import Foundation
import LockscopeCore
import LockscopeKernel
import LockscopeTestSupport
import XCTest

/// `lockscope record` under attack and under stress: planted symlinks, signals, a command that will
/// not stop, a full disk, reduced capabilities, and a kernel table of cgroup names that overflows.
final class RecordHardeningTests: XCTestCase {
    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "lockscope-hardening-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func mode(of path: String) -> mode_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }

    private func isSymlink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK
    }

    /// The attack from the report: while root records to DIR/out.json, a user links the temporary name
    /// the old code used (DIR/.out.json.tmp-PID) to a victim. The victim keeps its bytes, the profile
    /// lands in out.json as a 0600 regular file, and nothing else is left in DIR.
    func testSymlinkPlantedAtATemporaryNameLeavesTheVictimUntouched() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        chmod(directory, 0o1777)
        let victim = try temporaryDirectory() + "/victim"
        try Data("secret\n".utf8).write(to: URL(fileURLWithPath: victim))
        chmod(victim, 0o600)
        let recorder = try LockscopeProcess(["record", "-o", "\(directory)/out.json", "--quiet", "--no-report", "-d", "1"],
                                            directory: try temporaryDirectory())
        let planted = "\(directory)/.out.json.tmp-\(recorder.pid)"
        XCTAssertEqual(symlink(victim, planted), 0)
        // The destination itself planted as a link too: it must be replaced, not followed.
        XCTAssertEqual(symlink(victim, "\(directory)/out.json"), 0)
        XCTAssertEqual(recorder.waitForExit(), 0, recorder.stderr)
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "secret\n")
        XCTAssertEqual(mode(of: victim), 0o600)
        XCTAssertFalse(isSymlink("\(directory)/out.json"))
        XCTAssertEqual(mode(of: "\(directory)/out.json"), 0o600)
        XCTAssertNoThrow(try Profile.load(path: "\(directory)/out.json"))
        XCTAssertTrue(isSymlink(planted), "the planted link was not touched")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory).sorted(),
                       [".out.json.tmp-\(recorder.pid)", "out.json"])
    }

    /// Profiles are private by default whatever the umask, `--mode` sets exactly what it says, and
    /// recording over a user's 0600 file keeps it 0600.
    func testProfilesArePrivateUnlessAskedOtherwise() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let output = "\(directory)/p.json"
        let previous = umask(0)
        defer { umask(previous) }
        let first = try LockscopeProcess(["record", "-o", output, "--quiet", "--no-report", "-d", "0.2"], directory: directory)
        XCTAssertEqual(first.waitForExit(), 0, first.stderr)
        XCTAssertEqual(mode(of: output), 0o600)
        umask(0o077)
        let shared = try LockscopeProcess(["record", "-o", output, "--mode", "0644", "--quiet", "--no-report", "-d", "0.2"],
                                          directory: directory)
        XCTAssertEqual(shared.waitForExit(), 0, shared.stderr)
        XCTAssertEqual(mode(of: output), 0o644)
    }

    /// SIGHUP (a closed terminal, a logout) ends the recording like SIGTERM: a complete profile is written.
    func testHangupWritesAValidProfile() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let output = "\(directory)/p.json"
        let recorder = try LockscopeProcess(["record", "-o", output, "--quiet", "--no-report"], directory: directory)
        XCTAssertTrue(recorder.waitUntilAttached(), recorder.stderr)
        recorder.signal(SIGHUP)
        XCTAssertEqual(recorder.waitForExit(), 0, recorder.stderr)
        XCTAssertTrue(recorder.stderr.contains("lockscope: wrote \(output)"), recorder.stderr)
        XCTAssertNoThrow(try Profile.load(path: output))
    }

    /// A command that ignores SIGTERM is killed once `--kill-after` has passed, and lockscope exits
    /// with its status (137: killed by SIGKILL), having written the profile.
    func testCommandIgnoringSIGTERMIsKilledAfterTheGracePeriod() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let output = "\(directory)/p.json"
        let marker = "\(directory)/child-started"
        let recorder = try LockscopeProcess(
            ["record", "-o", output, "--quiet", "--no-report", "--kill-after", "1s", "--",
             "/bin/sh", "-c", "trap '' TERM; touch \(marker); while true; do sleep 0.05; done"], directory: directory)
        XCTAssertTrue(recorder.waitUntilAttached(), recorder.stderr)
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: marker) { Thread.sleep(forTimeInterval: 0.02) }
        let sent = Date()
        recorder.signal(SIGTERM)
        XCTAssertEqual(recorder.waitForExit(), 128 + SIGKILL, recorder.stderr)
        let waited = Date().timeIntervalSince(sent)
        XCTAssertGreaterThanOrEqual(waited, 1.0)
        XCTAssertLessThan(waited, 10.0)
        XCTAssertTrue(recorder.stderr.contains("did not exit within 1.00 s of SIGTERM"), recorder.stderr)
        XCTAssertNoThrow(try Profile.load(path: output))
    }

    /// When `--duration` ends first, the command is stopped like timeout(1) does: SIGTERM, and lockscope
    /// exits with its status (143) instead of waiting for it for ever.
    func testDurationEndingFirstStopsTheCommand() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let started = Date()
        let recorder = try LockscopeProcess(["record", "-o", "\(directory)/p.json", "--quiet", "--no-report", "-d", "1",
                                             "--", "/bin/sleep", "100"], directory: directory)
        XCTAssertEqual(recorder.waitForExit(), 128 + SIGTERM, recorder.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 30)
        XCTAssertNoThrow(try Profile.load(path: "\(directory)/p.json"))
    }

    /// The command stays in the terminal's foreground process group: it can read the terminal (the old
    /// code put it in a group of its own, where reading stopped it and lockscope waited for ever).
    func testCommandCanReadTheTerminal() throws {
        try requireBPF()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else {
            throw XCTSkip("needs script(1) from util-linux for a pseudo-terminal")
        }
        let directory = try temporaryDirectory()
        let binary = try LockscopeBinary.path()
        let inner = "\(binary) record -o \(directory)/p.json --quiet --no-report -- /bin/sh -c 'read line; echo got:$line'"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qec", inner, "/dev/null"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // Typed ahead: the terminal holds the line until the command reads it.
        input.fileHandleForWriting.write(Data("hello\n".utf8))
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let hung = process.isRunning
        if hung { process.terminate() }
        process.waitUntilExit()
        XCTAssertFalse(hung, "the recording did not end within 60 s")
        let text = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("got:hello"), text)
        XCTAssertNoThrow(try Profile.load(path: "\(directory)/p.json"))
    }

    /// A full disk loses the profile only: the report is still printed, the failure is said in one
    /// line, and lockscope exits with the command's status (or 2 when the command succeeded).
    func testFullDiskStillPrintsTheReportAndReturnsTheCommandsStatus() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let full = "\(directory)/full"
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        guard "size=4k".withCString({ mount("tmpfs", full, "tmpfs", 0, $0) }) == 0 else { throw XCTSkip("cannot mount a tmpfs here") }
        defer { umount(full) }
        FileManager.default.createFile(atPath: "\(full)/fill", contents: Data(repeating: 0, count: 4096))
        for (command, expected) in [("exit 3", Int32(3)), ("exit 0", Int32(2))] {
            let recorder = try LockscopeProcess(["record", "-o", "\(full)/p.json", "--quiet", "--", "/bin/sh", "-c", command],
                                                directory: directory)
            XCTAssertEqual(recorder.waitForExit(), expected, recorder.stderr)
            XCTAssertTrue(recorder.stderr.contains("lockscope: cannot write \(full)/p.json: No space left on device; free some space or choose another path"),
                          recorder.stderr)
            XCTAssertTrue(recorder.stdout.hasPrefix("lockscope report: host "), recorder.stdout)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: full), ["fill"])
        }
    }

    /// With CAP_BPF and CAP_PERFMON but not CAP_SYSLOG, kallsyms shows no addresses (kptr_restrict 0
    /// still needs perf_event_paranoid <= 1): record says exactly that before attaching; with
    /// CAP_SYSLOG added, an unprivileged user records.
    func testCapabilitiesNeededAreTheOnesTheDocsName() throws {
        try requireBPF()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("needs setpriv") }
        let privileges = Privileges.current()
        let directory = try temporaryDirectory()
        chmod(directory, 0o777)
        func asNobody(_ capabilities: String) -> [String] {
            ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "--inh-caps=-all,\(capabilities)", "--ambient-caps=-all,\(capabilities)"]
        }
        let output = "\(directory)/p.json"
        let without = try LockscopeProcess(["record", "-o", output, "-d", "1", "--quiet", "--no-report"],
                                           prefix: asNobody("+bpf,+perfmon"), directory: directory)
        let status = without.waitForExit()
        if privileges.kptrRestrict == 0, (privileges.perfEventParanoid ?? 2) <= 1 {
            XCTAssertEqual(status, 0, without.stderr)
        } else {
            XCTAssertEqual(status, 2, without.stderr)
            XCTAssertTrue(without.stderr.hasPrefix("lockscope: recording needs CAP_SYSLOG"), without.stderr)
            XCTAssertFalse(without.stderr.contains("attached"))
        }
        let with = try LockscopeProcess(["record", "-o", output, "-d", "1", "--quiet", "--no-report"],
                                        prefix: asNobody("+bpf,+perfmon,+syslog"), directory: directory)
        XCTAssertEqual(with.waitForExit(), 0, with.stderr)
        XCTAssertNoThrow(try Profile.load(path: output))
    }

    /// A long run's churn of cgroups, compressed: with room for 4 names between reads, a 60-container
    /// storm makes the kernel evict names. The profile counts the evictions and the names never
    /// learned, and the end-of-recording warning names both with the profile's values.
    func testCgroupNameEvictionsAreCountedAndNamedInTheWarning() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let output = "\(directory)/p.json"
        let binary = try LockscopeBinary.path()
        let recorder = try LockscopeProcess(
            ["record", "-o", output, "--quiet", "--no-report", "--locks", "all", "--cgroup-names", "4", "--",
             binary, "stress", "--containers", "60", "--layers", "4", "--parallel", "8"], directory: directory)
        XCTAssertEqual(recorder.waitForExit(), 0, recorder.stderr)
        let drops = try Profile.load(path: output).drops
        XCTAssertGreaterThan(drops.cgroupNamesEvicted, 0)
        let warning = recorder.stderr.split(separator: "\n").first { $0.hasPrefix("lockscope: warning: dropped ") }
        XCTAssertNotNil(warning, recorder.stderr)
        XCTAssertTrue(warning?.contains("cgroup_names_evicted \(drops.cgroupNamesEvicted)") ?? false, recorder.stderr)
        if drops.cgroupNamesLost > 0 {
            XCTAssertTrue(warning?.contains("cgroup_names_lost \(drops.cgroupNamesLost)") ?? false, recorder.stderr)
        }
        // With the default room, the same storm loses no name: every container is named.
        let roomy = try LockscopeProcess(
            ["record", "-o", output, "--quiet", "--no-report", "--locks", "all", "--",
             binary, "stress", "--containers", "60", "--layers", "4", "--parallel", "8"], directory: directory)
        XCTAssertEqual(roomy.waitForExit(), 0, roomy.stderr)
        let profile = try Profile.load(path: output)
        XCTAssertEqual(profile.drops.cgroupNamesEvicted, 0)
        XCTAssertEqual(profile.drops.cgroupNamesLost, 0)
        XCTAssertFalse(profile.containers.contains { $0.id.hasPrefix("cgroup:") })
        XCTAssertFalse(roomy.stderr.contains("cgroup_names"), roomy.stderr)
    }

    /// `record --redact` writes no kernel address, host name, container id or cgroup path of the
    /// recording: checked against what stress itself says it created.
    func testRedactedRecordingHoldsNoAddressHostOrContainer() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let output = "\(directory)/p.json"
        let recorder = try LockscopeProcess(
            ["record", "--redact", "-o", output, "--quiet", "--no-report", "--locks", "all", "--",
             try LockscopeBinary.path(), "stress", "--containers", "6", "--layers", "4", "--json"], directory: directory)
        XCTAssertEqual(recorder.waitForExit(), 0, recorder.stderr)
        let text = try String(contentsOfFile: output, encoding: .utf8)
        let stress = try JSONSerialization.jsonObject(with: Data(recorder.stdout.utf8)) as? [String: Any]
        let created = (stress?["container_list"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        XCTAssertEqual(created.count, 6)
        for id in created { XCTAssertFalse(text.contains(id.prefix(12)), "container \(id) in the redacted profile") }
        XCTAssertFalse(text.contains((stress?["cgroup_parent"] as? String) ?? "/lockscope-stress-"))
        // As a JSON value (a short host name like `vm` also stands inside kernel words like `vmalloc`).
        XCTAssertFalse(text.contains("\"\(ProcessInfo.processInfo.hostName)\""))
        XCTAssertFalse(text.contains("\"\(KernelInfo.read().hostname)\""))
        XCTAssertNil(text.range(of: "0x[0-9a-f]{6,}", options: .regularExpression), "a kernel address is left")
        let profile = try Profile.load(path: output)
        XCTAssertEqual(profile.recording.redacted, true)
        XCTAssertGreaterThan(profile.locks.count, 0)
        XCTAssertTrue(profile.locks.contains { $0.name == "rq_lock" || $0.name == "namespace_sem" || $0.name == "mount_lock" },
                      "lock names stay: \(profile.locks.map(\.name))")
    }

    /// Every command that writes files writes them 0600 whatever the umask, or exactly `--mode`.
    func testEveryWriterIsPrivateByDefaultAndExactWithMode() throws {
        let directory = try temporaryDirectory()
        let stats = WaitStats(contentions: 3, totalWaitNs: 3_000, minWaitNs: 500, maxWaitNs: 1_500, p50WaitNs: 1_000,
                              p90WaitNs: 1_500, p99WaitNs: 1_500, p999WaitNs: 1_500,
                              histogram: [HistogramBucket(lowerNs: 512, upperNs: 2048, count: 3)])
        let profile = Profile(hostname: "h", kernel: "6.18.0", startedAt: "2026-12-01T12:00:00Z", durationNs: 1_000_000_000,
                              events: 3, drops: Drops(), recording: Recording(), topology: nil, containers: [], mounts: nil,
                              locks: [LockProfile(name: "namespace_sem", identity: .inferred, kind: .rwsem,
                                                  address: "0xffffffff82f490a0", stats: stats,
                                                  stacks: [StackProfile(frames: ["down_write", "path_umount"], count: 3,
                                                                        totalWaitNs: 3_000, maxWaitNs: 1_500, contexts: [])])])
        let input = "\(directory)/in.json"
        try profile.write(to: input)
        let key = "\(directory)/key"
        try Data("a secret".utf8).write(to: URL(fileURLWithPath: key))
        let writers: [(arguments: [String], outputs: [String])] = [
            (["export", input, "--format", "folded", "-o", "\(directory)/out.folded"], ["out.folded"]),
            (["export", input, "--format", "pprof", "-o", "\(directory)/out.pb.gz"], ["out.pb.gz"]),
            (["flamegraph", input, "-o", "\(directory)/out.svg"], ["out.svg"]),
            (["check", input, "--baseline", input, "--junit", "\(directory)/out.xml", "--markdown", "\(directory)/out.md"],
             ["out.xml", "out.md"]),
            (["redact", input, "-o", "\(directory)/out.json", "--key-file", key], ["out.json"]),
        ]
        let previous = umask(0)
        defer { umask(previous) }
        for (mode, extra) in [(mode_t(0o600), [String]()), (0o640, ["--mode", "0640"])] {
            for writer in writers {
                let run = try LockscopeRun.run(writer.arguments + extra)
                XCTAssertEqual(run.status, 0, "\(writer.arguments): \(run.stderr)")
                for output in writer.outputs {
                    XCTAssertEqual(self.mode(of: "\(directory)/\(output)"), mode, "\(writer.arguments + extra)")
                }
            }
        }
    }
}
