import ArgumentParser
import Foundation
import LockscopeCore
import LockscopeExport
import LockscopeKernel
import LockscopeReport
import Synchronization

/// `lockscope record`: attach, watch, stop, write the profile, print the report.
struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Record kernel lock contention for a duration, until Ctrl-C, or for a command's lifetime.",
        discussion: """
            Prints "lockscope: attached ..." on stderr once the BPF programs are attached, so a script knows \
            it is safe to start the workload. With a COMMAND (after --), records until it exits and exits \
            with its status.
            """)

    @Option(name: .shortAndLong, help: "Stop after this long (e.g. 30, 30s, 500ms, 2m).")
    var duration: String?

    @Option(name: .shortAndLong, help: "Where to write the profile (JSON).")
    var output = "lockscope.json"

    @Option(help: "Which locks: mount (namespace_sem, mount_lock and every lock contended in a mount-family syscall), all, or NAME,...")
    var locks = "mount"

    @Option(name: .customLong("lock-addr"), help: "Keep only this lock address (hex; repeatable).")
    var lockAddresses: [String] = []

    @Option(name: .customLong("pid"), help: "Keep only this process id (repeatable).")
    var pids: [Int32] = []

    @Option(name: .customLong("container"), help: "Keep only containers whose id starts with this (repeatable).")
    var containers: [String] = []

    @Option(name: .customLong("min-wait"), help: "Drop waits shorter than this (e.g. 10us, 1ms).")
    var minWait: String = "0"

    @Option(name: .customLong("kinds"), help: "Keep only these lock kinds: spinlock,rwlock,rwsem,mutex,rtmutex,percpu-rwsem.")
    var kinds: String?

    @Option(name: .customLong("ringbuf-size"), help: "Ring buffer size (power of two, e.g. 8M, 256K).")
    var ringBufferSize = "8M"

    @Option(help: "Rows in the printed report.")
    var top = 10

    @Option(help: "Also write folded stacks (for flamegraph.pl, inferno, speedscope) to this file.")
    var folded: String?

    @Option(help: "Also write an interactive flame graph (SVG) to this file.")
    var flamegraph: String?

    @Flag(help: "No status line while recording.")
    var quiet = false

    @Flag(name: .customLong("no-report"), help: "Do not print the report at the end.")
    var noReport = false

    @Argument(parsing: .postTerminator, help: "The command to profile (after --).")
    var command: [String] = []

    func run() throws {
        // Everything that can be refused is refused before anything is attached.
        let plan = try RecordPlan(command: self)
        for path in [output, folded, flamegraph].compactMap({ $0 }) { try AtomicFile.checkWritable(path) }
        try requireBPFPrivileges()

        let recorder = try Recorder(options: plan.options)
        StopSignal.install()
        try recorder.attach()
        let hooks = recorder.syscallHooks.map { "; mount syscalls through \($0.rawValue)" } ?? ""
        let attachedLine = "lockscope: attached (\(plan.describe)\(hooks)); recording" +
            (plan.durationNs.map { " for \(Units.duration($0))" } ?? "") +
            (command.isEmpty ? ", Ctrl-C to stop" : " while `\(command.joined(separator: " "))` runs")
        FileHandle.standardError.write(Data((attachedLine + "\n").utf8))

        var child: ChildProcess?
        if !command.isEmpty {
            do { child = try ChildProcess(command) } catch {
                _ = recorder.finish()
                throw error
            }
        }
        let deadline = plan.durationNs.map { monotonicNs() + $0 }
        let status = StatusLine(enabled: !quiet && isatty(STDERR_FILENO) != 0)
        recorder.run(shouldStop: {
            if StopSignal.requested { child?.forward(StopSignal.signal); return true }
            if let deadline, monotonicNs() >= deadline { return true }
            if let child, child.hasExited { return true }
            return false
        }, status: status.show)
        status.clear()

        let profile = recorder.finish()
        try profile.write(to: output)
        if let folded { try AtomicFile.write(Data(FoldedExporter.render(profile).utf8), to: folded) }
        if let flamegraph { try AtomicFile.write(Data(FlameGraphSVG.render(profile).utf8), to: flamegraph) }
        if profile.dropped > 0 || profile.drops.stackFailed > 0 {
            FileHandle.standardError.write(Data("lockscope: warning: \(Units.lossSummary(profile))\n".utf8))
        }
        FileHandle.standardError.write(Data("lockscope: wrote \(output)\n".utf8))
        if !noReport {
            print(ReportRenderer(profile: profile, options: ReportOptions(top: top)).render(), terminator: "")
        }
        if let child {
            let code = child.waitForExit()
            if code != 0 { throw ExitCode(code) }
        }
    }
}

/// The validated options of a recording.
struct RecordPlan {
    var options = RecordOptions()
    var durationNs: UInt64?
    var describe: String

    init(command: RecordCommand) throws {
        if let text = command.duration {
            guard let ns = Units.parseDuration(text), ns > 0 else {
                throw UserError("bad --duration '\(text)': give a positive duration like 30, 30s, 500ms or 2m")
            }
            durationNs = ns
        }
        guard let minWait = Units.parseDuration(command.minWait, defaultUnit: 1) else {
            throw UserError("bad --min-wait '\(command.minWait)': give a duration like 10us or 1ms")
        }
        guard let ringBytes = Units.parseSize(command.ringBufferSize), ringBytes >= 4096,
              ringBytes & (ringBytes - 1) == 0, ringBytes <= 1 << 30 else {
            throw UserError("bad --ringbuf-size '\(command.ringBufferSize)': give a power of two from 4K to 1G, like 8M")
        }
        var bpf = BPFOptions()
        bpf.minWaitNs = minWait
        bpf.ringBufferBytes = ringBytes
        if let kinds = command.kinds {
            for name in kinds.split(separator: ",") {
                guard let kind = LockKind(rawValue: String(name)) else {
                    throw UserError("unknown lock kind '\(name)': use \(LockKind.allCases.map(\.rawValue).joined(separator: ","))")
                }
                bpf.kinds.insert(kind)
            }
        }
        bpf.pids = command.pids.map { UInt32(bitPattern: $0) }
        for text in command.lockAddresses {
            let digits = text.hasPrefix("0x") ? String(text.dropFirst(2)) : text
            guard let address = UInt64(digits, radix: 16), address != 0 else {
                throw UserError("bad --lock-addr '\(text)': give a kernel address in hex, like 0xffffffff83a1c2e0")
            }
            bpf.lockAddresses.append(address)
        }

        let selection = try LockSelectionParser.parse(command.locks)
        options.selection = selection
        switch selection {
        case .all: break
        case .mount:
            bpf.filterByMountPath = true
            bpf.filterByLockAddress = true
        case .names(let names):
            let inferable = names.allSatisfy { LockSelectionParser.mountLockNames.contains($0) }
            if inferable { bpf.filterByMountPath = true; bpf.filterByLockAddress = true }
        }
        if !bpf.lockAddresses.isEmpty {
            // Explicit addresses narrow the recording to exactly those locks.
            bpf.filterByLockAddress = true
            bpf.filterByMountPath = false
            options.selection = .all
        }
        if !command.containers.isEmpty {
            guard let resolver = try? CgroupResolver() else {
                throw UserError("--container needs cgroup v2, and no cgroup2 mount was found: mount cgroup2 or drop --container")
            }
            for prefix in command.containers {
                let ids = resolver.cgroupIDs(matchingContainerPrefix: prefix)
                guard !ids.isEmpty else {
                    throw UserError("no running container id starts with '\(prefix)': check `lockscope record --container` against the container's full id")
                }
                bpf.cgroupIDs += ids
            }
        }
        options.bpf = bpf
        options.recording = Recording(locks: command.locks, lockAddresses: command.lockAddresses, minWaitNs: minWait,
                                      pids: command.pids, containers: command.containers, command: command.command)
        describe = "locks: \(command.locks)" + (command.lockAddresses.isEmpty ? "" : ", addresses: \(command.lockAddresses.joined(separator: ","))")
    }
}

/// Parses `--locks`.
enum LockSelectionParser {
    static let mountLockNames: Set<String> = [LockNamer.namespaceSem, LockNamer.mountLock,
                                              "\(LockNamer.namespaceSem).wait_lock"]

    static func parse(_ text: String) throws -> LockSelection {
        switch text {
        case "mount": return .mount
        case "all": return .all
        default:
            let names = Set(text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) })
            guard !names.isEmpty else { throw UserError("empty --locks: use mount, all, or lock names") }
            let symbols = try? Kallsyms.load()
            for name in names where !isKnown(name, symbols: symbols) {
                throw UserError("unknown lock name '\(name)': use mount, all, namespace_sem, mount_lock, a kernel data symbol, or a caller name like func+0x1c")
            }
            return .names(names)
        }
    }

    private static func isKnown(_ name: String, symbols: Kallsyms?) -> Bool {
        if mountLockNames.contains(name) { return true }
        let base = name.split(separator: "+").first.map(String.init) ?? name
        let function = base.hasSuffix(".wait_lock") ? String(base.dropLast(".wait_lock".count)) : base
        return symbols?.hasSymbol(named: function) ?? false
    }
}

/// Refuses early, with one line, when BPF cannot be used at all.
func requireBPFPrivileges() throws {
    if geteuid() == 0 { return }
    let capabilities = Capabilities.effective()
    if capabilities.contains(.bpf) && capabilities.contains(.perfmon) { return }
    throw UserError("recording needs root, or the CAP_BPF and CAP_PERFMON capabilities: run with sudo")
}

/// SIGINT/SIGTERM ask the recording to stop; the poll loop sees the flag within 100 ms.
enum StopSignal {
    private static let received = Atomic<Int32>(0)

    static func install() {
        for signal in [SIGINT, SIGTERM] {
            Glibc.signal(signal) { number in StopSignal.received.store(number, ordering: .relaxed) }
        }
    }

    static var requested: Bool { received.load(ordering: .relaxed) != 0 }
    static var signal: Int32 { received.load(ordering: .relaxed) }
}

/// The profiled command.
final class ChildProcess {
    private let process = Process()

    init(_ arguments: [String]) throws {
        let path = arguments[0].contains("/") ? arguments[0] : ChildProcess.search(arguments[0])
        guard let path, FileManager.default.isExecutableFile(atPath: path) else {
            throw UserError("cannot run '\(arguments[0])': not found or not executable")
        }
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = Array(arguments.dropFirst())
        try process.run()
    }

    var hasExited: Bool { !process.isRunning }

    func forward(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// The exit status, or 128 + signal like a shell.
    func waitForExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    private static func search(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// One status line on stderr, rewritten in place about once a second.
struct StatusLine {
    let enabled: Bool

    func show(_ status: RecordStatus) {
        guard enabled else { return }
        var line = "\u{1B}[2K\r\(Units.duration(status.elapsedNs)) events \(status.events) dropped \(status.dropped)"
        if let top = status.topLock { line += "  top: \(top.name) \(Units.duration(top.totalWaitNs))" }
        FileHandle.standardError.write(Data(line.utf8))
    }

    func clear() {
        if enabled { FileHandle.standardError.write(Data("\u{1B}[2K\r".utf8)) }
    }
}
