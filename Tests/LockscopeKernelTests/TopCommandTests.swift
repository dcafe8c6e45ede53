import Foundation
import LockscopeTestSupport
import XCTest

/// `lockscope top` in a real terminal (a detached tmux session on a private server) while a mount
/// storm runs, and with its output in a pipe.
final class TopCommandTests: XCTestCase {
    /// A tmux server of this test's own, killed at the end.
    private struct Tmux {
        let socket = "lockscope-top-\(UUID().uuidString.prefix(8))"

        /// Runs a tmux command and waits for it with waitpid(2), its output through a file: Foundation's
        /// Process did not notice the `new-session` client exit (it stayed a zombie, the test hung).
        @discardableResult
        func run(_ arguments: [String]) throws -> String {
            let outputPath = NSTemporaryDirectory() + "\(socket)-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: outputPath) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            let argv = ["tmux", "-L", socket] + arguments
            var cArguments = argv.map { strdup($0) } + [nil]
            defer { cArguments.forEach { free($0) } }
            var pid: pid_t = 0
            let spawned = posix_spawnp(&pid, "tmux", &actions, nil, &cArguments, environ)
            guard spawned == 0 else { throw NSError(domain: NSPOSIXErrorDomain, code: Int(spawned)) }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            return (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        }

        /// What the pane shows now (empty when tmux cannot say).
        func pane(_ target: String) -> String { (try? run(["capture-pane", "-p", "-t", target])) ?? "" }

        /// Polls the pane until `condition` holds (true) or `seconds` pass (false).
        func wait(_ target: String, seconds: Double, until condition: (String) -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if condition(pane(target)) { return true }
                Thread.sleep(forTimeInterval: 0.25)
            }
            return condition(pane(target))
        }
    }

    private func requireTmux() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux") else {
            if ProcessInfo.processInfo.environment["LOCKSCOPE_REQUIRE_BPF"] == "1" {
                XCTFail("the top test needs tmux (apt-get install tmux), and LOCKSCOPE_REQUIRE_BPF=1")
            }
            throw XCTSkip("the top test needs tmux")
        }
    }

    /// A mount storm for as long as the test runs; stopped (SIGTERM: it cleans up) at the end.
    private func startStorm() throws {
        let storm = Process()
        storm.executableURL = URL(fileURLWithPath: try LockscopeBinary.path())
        storm.arguments = ["stress", "--containers", "16", "--layers", "20", "--parallel", "4", "--rounds", "4000"]
        storm.standardOutput = FileHandle.nullDevice
        storm.standardError = FileHandle.nullDevice
        try storm.run()
        addTeardownBlock {
            storm.terminate()
            storm.waitUntilExit()
        }
    }

    /// The pane shows `top`'s header and at least one lock row under the table heading.
    private static func showsALockRow(_ pane: String) -> Bool {
        let lines = pane.split(separator: "\n", omittingEmptySubsequences: false)
        guard let heading = lines.firstIndex(where: { $0.hasPrefix("wait/s") && $0.hasSuffix("lock") }),
              heading + 1 < lines.count else { return false }
        let row = lines[heading + 1]
        return row.split(separator: " ").count >= 5 && !row.contains("no lock waited")
    }

    /// The terminal's settings as `stty -a` printed them after `top` exited: canonical input and
    /// echo back on.
    private static func restoredSettings(_ pane: String) -> Bool {
        let words = Set(pane.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == ";" }).map(String.init))
        return words.contains("icanon") && words.contains("echo") && !words.contains("-icanon") && !words.contains("-echo")
    }

    func testTopInATerminal() throws {
        try requireBPF()
        try requireTmux()
        let binary = try LockscopeBinary.path()
        let tmux = Tmux()
        addTeardownBlock { _ = try? tmux.run(["kill-server"]) }
        try startStorm()
        // After top, the shell reports its status and the terminal's settings, then waits to be read.
        try tmux.run(["new-session", "-d", "-s", "top", "-x", "120", "-y", "40",
                      "sh -c '\(binary) top --locks all --rows 5; echo top-exit=$?; stty -a; sleep 120'"])

        XCTAssertTrue(tmux.wait("top", seconds: 60) { $0.hasPrefix("lockscope top: ") && Self.showsALockRow($0) },
                      "no lock row: \(tmux.pane("top"))")
        let first = tmux.pane("top")
        // The key help on a line of its own, whatever the hostname's length (a long one cuts the header).
        XCTAssertTrue(first.contains("\nkeys: w wait, c contentions, m max, q quit\n"), first)
        XCTAssertTrue(first.contains("\nwaits ") && first.contains("  mount syscalls ") && first.contains("  dropped "), first)
        XCTAssertTrue(first.contains("\nwait/s*  contended/s "), first)

        try tmux.run(["send-keys", "-t", "top", "c"])
        XCTAssertTrue(tmux.wait("top", seconds: 5) { $0.contains("contended/s*") },
                      "the sort did not change: \(tmux.pane("top"))")
        XCTAssertFalse(tmux.pane("top").contains("wait/s*"))
        try tmux.run(["send-keys", "-t", "top", "m"])
        XCTAssertTrue(tmux.wait("top", seconds: 5) { $0.contains("max*") })

        try tmux.run(["send-keys", "-t", "top", "q"])
        XCTAssertTrue(tmux.wait("top", seconds: 30) { $0.contains("top-exit=") }, tmux.pane("top"))
        let after = tmux.pane("top")
        XCTAssertTrue(after.contains("top-exit=0"), after)
        XCTAssertTrue(Self.restoredSettings(after), "the terminal was left raw: \(after)")
        // The alternate screen is gone: the shell's screen shows no refresh of top.
        XCTAssertFalse(after.contains("lockscope top: "), after)

        // Ctrl-C (SIGINT from the terminal) restores the terminal the same way. The shell survives the
        // SIGINT (its trap is reset to the default in top) to report what top left.
        try tmux.run(["new-window", "-t", "top", "-n", "interrupted",
                      "sh -c 'trap : INT; \(binary) top --locks all; echo top-exit=$?; stty -a; sleep 120'"])
        XCTAssertTrue(tmux.wait("top:interrupted", seconds: 60) { $0.hasPrefix("lockscope top: ") },
                      tmux.pane("top:interrupted"))
        try tmux.run(["send-keys", "-t", "top:interrupted", "C-c"])
        XCTAssertTrue(tmux.wait("top:interrupted", seconds: 30) { $0.contains("top-exit=") }, tmux.pane("top:interrupted"))
        let interrupted = tmux.pane("top:interrupted")
        XCTAssertTrue(interrupted.contains("top-exit=0"), interrupted)
        XCTAssertTrue(Self.restoredSettings(interrupted), "the terminal was left raw: \(interrupted)")
    }

    /// Standard output not a terminal: plain blocks, one a second, no escape sequences, no key help;
    /// `--duration` ends it.
    func testTopWithoutATerminalPrintsBlocks() throws {
        try requireBPF()
        try startStorm()
        let top = Process()
        top.executableURL = URL(fileURLWithPath: try LockscopeBinary.path())
        top.arguments = ["top", "--locks", "all", "--duration", "4"]
        let out = Pipe(), err = Pipe()
        top.standardOutput = out
        top.standardError = err
        top.standardInput = FileHandle.nullDevice
        try top.run()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        top.waitUntilExit()
        XCTAssertEqual(top.terminationStatus, 0, stderr)
        XCTAssertTrue(stderr.hasPrefix("lockscope: attached (locks: all); refreshing every second for 4.00 s\n"), stderr)
        XCTAssertFalse(stdout.contains("\u{1B}"), stdout)
        // Each block starts with the header and ends with a blank line (the view has blank lines of its own).
        let lines = stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let headers = lines.indices.filter { lines[$0].hasPrefix("lockscope top: ") }
        XCTAssertGreaterThanOrEqual(headers.count, 3, stdout)
        XCTAssertLessThanOrEqual(headers.count, 5, stdout)
        for index in headers {
            XCTAssertTrue(lines[index].hasSuffix(", sorted by wait"), String(lines[index]))
            XCTAssertTrue(lines[index + 1].hasPrefix("waits "), String(lines[index + 1]))
            if index > 0 { XCTAssertEqual(lines[index - 1], "", "a blank line between blocks") }
        }
        XCTAssertTrue(stdout.hasSuffix("\n\n"), stdout)
    }
}
