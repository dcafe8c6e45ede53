import Foundation
import LockscopeCore
import LockscopeTestSupport
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
              "--by", "process", "--by", "handoff", "--by", "owner", "--by", "victim", "--mounts", "--top", "0"], [0]),
            (["report", profile, "--format", "json", "--mounts", "--by", "victim", "--sort", "p99"], [0]),
            (["report", profile, "--format", "csv", "--sort", "count"], [0]),
            (["export", profile, "--format", "folded", "--group", "socket,container,cpu,lock"], [0]),
            (["export", profile, "--format", "folded", "--weight", "count"], [0]),
            (["export", profile, "--format", "csv"], [0]),
            (["export", profile, "--format", "speedscope", "--group", "container"], [0]),
            (["export", profile, "--format", "pprof", "--group", "cpu", "-o", directory + "/out.pb.gz"], [0]),
            (["flamegraph", profile, "-o", directory + "/out.svg", "--group", "container,lock", "--color", "container"], [0]),
            (["flamegraph", profile, "-o", directory + "/out.svg", "--weight", "count", "--icicle"], [0]),
            // 2: a profile without a timeline is refused with one line.
            (["timeline", profile, "-o", directory + "/timeline.svg"], [0, 2]),
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
        let timeline = try LockscopeRun.run(["timeline", "\(directory)/everything-max.json", "-o", directory + "/max.svg"], in: directory)
        XCTAssertEqual(timeline.status, 0, timeline.stderr)
        let maxReport = try LockscopeRun.run(["report", "\(directory)/everything-max.json", "--by", "victim", "--mounts"], in: directory)
        XCTAssertTrue(maxReport.output.contains("  kubelet[2]  host       18446744073709551615  18446744074 s  18446744074 s\n"), maxReport.output)
        XCTAssertTrue(maxReport.output.contains("timeline over 55340232221 s, 15 columns a 18446744074 s;"), maxReport.output)
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

    /// A FIFO with no writer used to block every reader, and /dev/zero to fill memory: both, and a
    /// directory, are refused with one line within a second.
    func testInputsThatAreNotRegularFilesAreRefusedAtOnce() throws {
        let directory = try scratchDirectory()
        let fifo = directory + "/fifo.json"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let valid = directory + "/p.json"
        try ReaderFixtures.rich().write(to: valid)
        let hint = "give a profile written by `lockscope record -o FILE`"
        for (path, what) in [(fifo, "a FIFO (named pipe)"), ("/dev/zero", "a character device"), (directory, "a directory")] {
            for arguments in [["report", path], ["export", path, "--format", "folded"], ["flamegraph", path, "-o", directory + "/f.svg"],
                              ["check", path, "--baseline", valid], ["diff", valid, path]] {
                let run = try LockscopeRun.run(arguments, deadline: 5, in: directory)
                XCTAssertFalse(run.timedOut, "\(arguments) was still running after 5 s")
                XCTAssertLessThan(run.seconds, 1, "\(arguments)")
                XCTAssertEqual(run.status, 2, "\(arguments)")
                XCTAssertEqual(run.stderr, "lockscope: cannot read \(path): it is \(what), not a regular file; \(hint)\n", "\(arguments)")
            }
        }
        let budget = try LockscopeRun.run(["check", valid, "--budget", fifo], deadline: 5, in: directory)
        XCTAssertEqual(budget.stderr, "lockscope: cannot read budget \(fifo): it is a FIFO (named pipe), not a regular file; give a budget file (docs/budgets.md)\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/f.svg"))
        // Larger than the limit: refused before it is read.
        let small = try LockscopeRun.run(["report", valid], environment: [InputFile.maxSizeVariable: "1K"], in: directory)
        XCTAssertEqual(small.status, 2)
        XCTAssertTrue(small.stderr.hasPrefix("lockscope: cannot read \(valid): it is "), small.stderr)
        XCTAssertTrue(small.stderr.hasSuffix(" bytes, more than the 1 KiB a profile may have; if it is one, raise the limit with LOCKSCOPE_MAX_INPUT_SIZE (e.g. LOCKSCOPE_MAX_INPUT_SIZE=4K): reading a profile takes about twice its size in memory (docs/profile-format.md)\n"), small.stderr)
    }

    /// Values out of range, and documents that are not profiles, are one line naming the JSON path.
    func testBadValuesAreNamedByTheirPath() throws {
        let directory = try scratchDirectory()
        let path = directory + "/bad.json"
        let valid = directory + "/p.json"
        try ReaderFixtures.rich().write(to: valid)
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: try ReaderFixtures.rich(locks: 4).encoded()) as? [String: Any])
        let lockText = { (value: String) -> String in
            var locks = object["locks"] as! [[String: Any]]
            locks[3]["contentions"] = 424_242
            object["locks"] = locks
            let text = String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
            return text.replacingOccurrences(of: ":424242", with: ":" + value)
        }
        let cases: [(String, String)] = [
            (lockText("-1"), "bad.json: locks[3].contentions is -1: it must be a whole number from 0 to 2^64-1"),
            (lockText("2.5"), "bad.json: locks[3].contentions is 2.5: it must be a whole number from 0 to 2^64-1"),
            (lockText("18446744073709551616"), "bad.json: locks[3].contentions is 18446744073709551616: it must be a whole number from 0 to 2^64-1"),
            ("[]", "bad.json: the top level is an array, not a lockscope profile object"),
            ("42", "bad.json: the top level is 42, not a lockscope profile object"),
            (#"{"schema":1}"#, #"bad.json: schema is 1, not a string like "lockscope.profile/1": this is not a lockscope profile"#),
        ]
        for (text, message) in cases {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            for arguments in [["report", "bad.json"], ["check", "bad.json", "--baseline", valid], ["diff", valid, "bad.json"]] {
                let run = try LockscopeRun.run(arguments, in: directory)
                XCTAssertEqual(run.status, 2, "\(arguments)")
                XCTAssertEqual(run.stderr, "lockscope: \(message)\n", "\(arguments)")
                XCTAssertEqual(run.stdout, Data(), "\(arguments)")
            }
        }
        XCTAssertEqual(try LockscopeRun.run(["report", "bad.json"], in: directory).status, 2)
        try Data(lockText("18446744073709551615").utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try LockscopeRun.run(["report", "bad.json"], in: directory).status, 0, "2^64-1 is a count like any other")
    }

    /// Arguments reach lockscope as Strings, so a file name that is not UTF-8 cannot be opened: say that,
    /// not "No such file or directory" about a file that exists.
    func testAFileNameThatIsNotUTF8IsNotCalledMissing() throws {
        let directory = try scratchDirectory()
        let script = "printf '{}' > \"$(printf 'caf\\377.json')\" && exec \"$0\" report \"$(printf 'caf\\377.json')\""
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script, try LockscopeBinary.path()]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 2)
        XCTAssertEqual(stderr, "lockscope: cannot read caf\u{FFFD}.json: the file name is not valid UTF-8 (shown with \u{FFFD}), and lockscope can only open names that are; rename the file or give a symbolic link with a UTF-8 name\n")
    }

    /// Host, kernel, lock, frame, container, process and syscall names with escape sequences, NUL, DEL and
    /// C1 controls: the text outputs print them escaped; JSON and CSV carry them as their formats do.
    func testControlCharactersInProfileStringsNeverReachTheTerminalRaw() throws {
        let directory = try scratchDirectory()
        var profile = ReaderFixtures.rich()
        let hostname = "evil\u{1b}]0;owned\u{07}\u{1b}[2J"
        profile.hostname = hostname
        profile.kernel = "6.1\u{0}"
        profile.locks[0].name = "x\u{9b}31m\u{7f}y\ny"
        profile.locks[0].stacks[0].frames[2] = "path_\u{1b}[8mumount"
        profile.locks[0].byContainer[1].key = "host\r\u{1b}[1A"
        profile.locks[0].byProcess[0].key = "runc\u{202e}[1]"
        profile.locks[0].owners![0].ownerComm = "c\u{1b}d"
        profile.mounts!.bySyscall[0].syscall = "open\u{1b}_tree"
        profile.mounts!.byContainer[0].pod = "pod\u{1b}[5m"
        profile.mounts!.byContainer[0].start = ContainerStart(firstSyscallNs: 0, setupNs: 2_000, inSyscallsNs: 1_000, lockWaitNs: 500,
                                                              byLock: [LockWaitShare(lock: "ns\u{7}sem", contentions: 1, totalWaitNs: 500, maxWaitNs: 500)])
        profile.victims = [Victim(process: "probe\u{1b}[0m[7]", container: "ctr\u{0}", contentions: 1, totalWaitNs: 9, maxWaitNs: 9,
                                  byLock: [LockWaitShare(lock: "lk\u{1b}", contentions: 1, totalWaitNs: 9, maxWaitNs: 9)],
                                  holders: [Holder(process: "shim\u{202e}[3]", container: "c\u{9b}", contentions: 1, totalWaitNs: 9)])]
        let path = directory + "/evil.json", plain = directory + "/plain.json"
        try profile.write(to: path)
        try ReaderFixtures.rich().write(to: plain)
        let textCommands = [
            ["report", path, "--by", "cpu", "--by", "container", "--by", "process", "--by", "owner", "--by", "victim", "--mounts"],
            ["check", path, "--baseline", plain, "--min-contentions", "1"], ["check", plain, "--baseline", path],
            ["diff", plain, path], ["diff", path, plain, "--format", "markdown"],
        ]
        for arguments in textCommands {
            let run = try LockscopeRun.run(arguments, in: directory)
            XCTAssertTrue([0, 1].contains(run.status), "\(arguments): \(run.stderr)")
            let raw = run.output.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n") || (0x7F..<0xA0).contains($0.value) || $0 == "\u{202e}" }
            XCTAssertEqual(raw.map(\.value), [], "\(arguments) printed control characters raw")
        }
        let report = try LockscopeRun.run(textCommands[0], in: directory).output
        for line in [#"lockscope report: host evil\x1b]0;owned\x07\x1b[2J, kernel 6.1\x00"#,
                     #"call paths of x\x9b31m\x7fy\x0ay (recognised from its call paths, 0xffffffff83001000):"#,
                     #"  80.0% 80x  down_write <- path_\x1b[8mumount <- __x64_sys_umount"#,
                     #"  host\x0d\x1b[1A         50     1.50 ms  50.0%  30.0 us  300 us  300 us"#,
                     #"  runc\u{202e}[1]        100     3.00 ms  100.0%  30.0 us  300 us  300 us"#,
                     #"  3f2a9c1b3f2a  host   812  c\x1bd        100     3.00 ms"#,
                     #"  open\x1b_tree     40       1  10.0 us  30.0 us  30.0 us  400 us"#,
                     #"  probe\x1b[0m[7]  ctr\x00        1   9 ns  9 ns"#,
                     #"    locks: lk\x1b 9 ns (100.0%)"#,
                     #"    behind: shim\u{202e}[3] in c\x9b 9 ns"#,
                     #"  3f2a9c1b3f2a  pod\x1b[5m  2.00 us    1.00 us     500 ns  25.0%  ns\x07sem"#] {
            XCTAssertTrue(report.contains(line + "\n"), "missing \(line) in\n\(report)")
        }
        let diff = try LockscopeRun.run(["diff", plain, path], in: directory).output
        XCTAssertTrue(diff.contains(#"x\x9b31m\x7fy\x0ay (new: 100 contentions, none in the baseline)"#), diff)
        // JSON escapes them its own way and reads back the same; CSV quotes the field with a line break.
        let json = try LockscopeRun.run(["report", path, "--format", "json"], in: directory)
        let decoded = try XCTUnwrap(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        XCTAssertEqual(decoded["hostname"] as? String, hostname)
        XCTAssertTrue(json.output.contains(#""hostname":"evil\u001b]0;owned\u0007\u001b[2J""#), json.output)
        let csv = try LockscopeRun.run(["report", path, "--format", "csv"], in: directory).output
        XCTAssertTrue(csv.contains("\n\"x\u{9b}31m\u{7f}y\ny\",inferred,rwsem,"), csv)
    }

    /// A stack 100 000 frames deep waited in 81 containers: grouped by container, over 8 million frames to
    /// write or draw (the old binary drew them all, into gigabytes of SVG). Refused at once with one line;
    /// grouped by lock, the one path exports.
    func testAStackMultipliedByItsContainersIsRefused() throws {
        let directory = try scratchDirectory()
        var profile = ReaderFixtures.rich(locks: 1)
        let contexts = (0..<81).map { StackContext(cpu: 0, container: "c\($0)", count: 1, totalWaitNs: 1_000) }
        profile.locks[0].stacks = [StackProfile(frames: (0..<100_000).map { "f\($0)" }, count: 81, totalWaitNs: 81_000,
                                                maxWaitNs: 1_000, contexts: contexts)]
        profile.locks[0].stats = ReaderFixtures.stats(81, total: 81_000, max: 1_000)
        let path = directory + "/deep.json"
        try profile.write(to: path)
        let message = "lockscope: grouped by container,lock, the profile's call paths hold over 8000000 frames or 1 GiB of "
            + "frame names in all (each stack once per CPU and container it is split by), more than lockscope writes: "
            + "group by fewer dimensions, e.g. --group lock or none\n"
        for arguments in [["flamegraph", path, "-o", directory + "/deep.svg", "--group", "container,lock"],
                          ["export", path, "--format", "folded", "--group", "container,lock"],
                          ["export", path, "--format", "pprof", "--group", "container,lock", "-o", directory + "/deep.pb.gz"]] {
            let run = try LockscopeRun.run(arguments, deadline: 20, in: directory)
            XCTAssertFalse(run.timedOut, "\(arguments)")
            XCTAssertEqual(run.status, 2, "\(arguments)")
            XCTAssertEqual(run.stderr, message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/deep.svg"))
        let folded = try LockscopeRun.run(["export", path, "--format", "folded"], in: directory)
        XCTAssertEqual(folded.status, 0, folded.stderr)
        XCTAssertEqual(folded.output.split(separator: "\n").count, 1)
        XCTAssertTrue(folded.output.hasPrefix("[lock] namespace_sem;f99999;f99998;"))
        XCTAssertTrue(folded.output.hasSuffix(";f1;f0 81000\n"))
    }
}
