import ArgumentParser
import CLockscopeBPF
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

    @Option(name: .shortAndLong, parsing: .unconditional, help: "Stop after this long (e.g. 30, 30s, 500ms, 2m).",
            transform: RecordArgument.positiveDuration)
    var duration: UInt64?

    @Option(name: .shortAndLong, help: "Where to write the profile (JSON).")
    var output = "lockscope.json"

    @OptionGroup var fileMode: FileModeOption

    @Option(help: LockChoice.help, transform: RecordArgument.locks)
    var locks = LockChoice.mount

    @Option(name: .customLong("lock-addr"), help: "Keep only this lock address (hex; repeatable).",
            transform: RecordArgument.lockAddress)
    var lockAddresses: [UInt64] = []

    @Option(name: .customLong("pid"), parsing: .unconditionalSingleValue, help: "Keep only this process id (repeatable).",
            transform: RecordArgument.runningPid)
    var pids: [Int32] = []

    @Option(name: .customLong("tid"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("Keep only these threads' waits (perf --tid): thread ids, comma-separated or repeated.", valueName: "TID,..."),
            transform: RecordArgument.threadIDs)
    var tids: [[Int32]] = []

    @Option(name: .customLong("cpu"), parsing: .unconditional,
            help: ArgumentHelp("Keep only waits that began on these CPUs (perf -C), e.g. 0,2-3.", valueName: "LIST"),
            transform: RecordArgument.cpus)
    var cpus: CPUList?

    @Option(name: .customLong("callstack-filter"), parsing: .unconditional,
            help: ArgumentHelp("Keep only waits whose kernel stack has a function whose name contains one of these (perf -S).",
                               valueName: "NAME,..."),
            transform: CallstackFilter.init(parsing:))
    var callstackFilter: CallstackFilter?

    @Option(name: .customLong("max-stack"), parsing: .unconditional,
            help: "Kernel frames kept per stack, 1 to \(StackDepth.maximum) (perf --max-stack); the kernel's walk stops there too.",
            transform: RecordArgument.maxStack)
    var maxStack = StackDepth.maximum

    @Option(name: .customLong("container"), help: "Keep only containers whose id starts with this (repeatable).",
            transform: RecordArgument.nonEmpty(what: "a container id prefix"))
    var containers: [String] = []

    @Option(name: .customLong("min-wait"), parsing: .unconditional, help: "Drop waits shorter than this (e.g. 10us, 1ms).",
            transform: RecordArgument.duration)
    var minWait: UInt64 = 0

    @Option(name: .customLong("kinds"), help: "Keep only these lock kinds: \(LockKind.allCases.map(\.rawValue).joined(separator: ",")).",
            transform: RecordArgument.kinds)
    var kinds: Set<LockKind>?

    @Option(name: .customLong("ringbuf-size"), help: "Ring buffer size (power of two, e.g. 8M, 256K).",
            transform: RecordArgument.ringBufferSize)
    var ringBufferSize = 8 << 20

    @Option(name: .customLong("cgroup-names"),
            help: "How many cgroup names the kernel keeps between reads (once a second); least recently used go first.",
            transform: RecordArgument.cgroupNames)
    var cgroupNames = Int(LOCKSCOPE_MAX_CGROUPS)

    @Option(name: .customLong("spin-hz"), parsing: .unconditional,
            help: "On-CPU samples per second on each CPU, to see spinning no tracepoint reports (0: off; at most \(SpinSampler.maxHz)).",
            transform: RecordArgument.spinHz)
    var spinHz = SpinSampler.defaultHz

    @Option(name: .customLong("user-stacks"),
            help: "Which waits get the waiter's user-space stack (frame-pointer walk): mount (waits inside mount-family syscalls: the issuer's call path), all, or none.",
            transform: RecordArgument.userStacks)
    var userStacks = UserStackMode.mount

    @Option(parsing: .unconditional, help: "Rows in the printed report (0: all).", transform: RecordArgument.top)
    var top = 10

    @Option(name: .customLong("kill-after"), parsing: .unconditional,
            help: "After a stop signal, how long COMMAND has to exit before it gets SIGKILL.",
            transform: RecordArgument.positiveDuration)
    var killAfter: UInt64 = 5_000_000_000

    @Option(help: "Also write folded stacks (for flamegraph.pl, inferno, speedscope) to this file.")
    var folded: String?

    @Option(help: "Also write an interactive flame graph (SVG) to this file.")
    var flamegraph: String?

    @Flag(help: "Write the profile (and --folded, --flamegraph) with addresses, host name, container ids, cgroup paths and commands replaced by stable pseudonyms, as `lockscope redact` does.")
    var redact = false

    @Option(name: .customLong("key-file"),
            help: ArgumentHelp("With --redact: the secret that keys the pseudonyms. Default: \(Redactor.defaultKeyFile).", valueName: "FILE"))
    var keyFile: String = Redactor.defaultKeyFile

    @Flag(help: "No status line while recording.")
    var quiet = false

    @Flag(name: .customLong("no-report"), help: "Do not print the report at the end.")
    var noReport = false

    @Argument(parsing: .postTerminator, help: "The command to profile (after --).")
    var command: [String] = []

    func run() throws {
        // Everything that can be refused is refused before anything is attached.
        let plan = try RecordPlan(command: self)
        let outputs = [output, folded, flamegraph].compactMap { $0 }
        for path in outputs { try AtomicFile.checkWritable(path) }
        let executable = command.isEmpty ? nil : try ChildProcess.resolve(command)
        let redactor = redact ? try Redactor(keyFile: keyFile) : nil
        try Privileges.current().requireForRecording()

        let recorder = try Recorder(options: plan.options)
        StopSignal.install()
        try recorder.attach()
        let hooks = (recorder.syscallHooks.map { "; mount syscalls through \($0.rawValue)" } ?? "")
            + (recorder.mountedTraceFS ? " (tracefs mounted at \(TraceFS.path))" : "")
        let sampling = recorder.sampler.map { "; sampling \($0.cpus.count) CPUs at \($0.hz) Hz" } ?? ""
        let attachedLine = "lockscope: attached (\(plan.describe)\(hooks)\(sampling)); recording" +
            (duration.map { " for \(Units.duration($0))" } ?? "") +
            (command.isEmpty ? ", Ctrl-C to stop" : " while `\(command.joined(separator: " "))` runs")
        FileHandle.standardError.write(Data((attachedLine + "\n").utf8))

        var child: ChildProcess?
        if let executable {
            do { child = try ChildProcess(executable: executable, arguments: command, killAfterNs: killAfter) } catch {
                _ = recorder.finish()
                throw error
            }
        }
        let deadline = duration.map { monotonicNs() + $0 }
        let status = StatusLine(enabled: !quiet && isatty(STDERR_FILENO) != 0)
        recorder.run(shouldStop: {
            child?.supervise()
            if StopSignal.requested { return true }
            if let deadline, monotonicNs() >= deadline {
                // The recording is over: the command gets SIGTERM, like timeout(1), and --kill-after.
                child?.stop()
                return true
            }
            if let child, child.hasExited { return true }
            return false
        }, status: status.show)
        status.clear()

        let recorded = recorder.finish()
        let profile = redactor?.redact(recorded) ?? recorded
        // A file that cannot be written (a full disk, say) loses that file only: the others, the report
        // and the command's status still come.
        var failedWrites = 0
        func write(_ path: String, _ body: () throws -> Void) {
            do {
                try body()
                FileHandle.standardError.write(Data("lockscope: wrote \(path)\n".utf8))
            } catch {
                failedWrites += 1
                FileHandle.standardError.write(Data("lockscope: \(error)\n".utf8))
            }
        }
        write(output) { try profile.write(to: output, mode: fileMode.mode) }
        if let folded { write(folded) { try AtomicFile.write(Data(FoldedExporter.render(profile).utf8), to: folded, mode: fileMode.mode) } }
        if let flamegraph {
            write(flamegraph) { try AtomicFile.write(Data(FlameGraphSVG.render(profile).utf8), to: flamegraph, mode: fileMode.mode) }
        }
        if let losses = profile.lossWarning {
            FileHandle.standardError.write(Data("lockscope: warning: \(losses)\n".utf8))
        }
        if !noReport {
            print(ReportRenderer(profile: profile, options: ReportOptions(top: top)).render(), terminator: "")
        }
        let code = child?.waitForExit() ?? 0
        if code != 0 { throw ExitCode(code) }
        if failedWrites > 0 { throw ExitCode(2) }
    }
}

/// Parsers for record's option values: each says what to give instead of a bad value.
enum RecordArgument {
    static func duration(_ text: String) throws -> UInt64 {
        guard let ns = Units.parseDuration(text, defaultUnit: 1) else {
            throw ValidationError("give a duration like 10us or 1ms")
        }
        return ns
    }

    static func positiveDuration(_ text: String) throws -> UInt64 {
        guard let ns = Units.parseDuration(text), ns > 0 else {
            throw ValidationError("give a positive duration like 30, 30s, 500ms or 2m")
        }
        return ns
    }

    static func lockAddress(_ text: String) throws -> UInt64 {
        let digits = text.hasPrefix("0x") ? String(text.dropFirst(2)) : text
        guard let address = UInt64(digits, radix: 16), address != 0 else {
            throw ValidationError("give a kernel address in hex, like 0xffffffff83a1c2e0")
        }
        return address
    }

    static func runningPid(_ text: String) throws -> Int32 {
        guard let pid = Int32(text), pid > 0 else { throw ValidationError("give a process id, a whole number from 1") }
        guard kill(pid, 0) == 0 || errno == EPERM else {
            throw ValidationError("no process has this id: give the id of a running process")
        }
        return pid
    }

    /// Thread ids, comma-separated (perf's --tid takes a list).
    static func threadIDs(_ text: String) throws -> [Int32] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let tids = parts.compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
        guard !parts.isEmpty, tids.count == parts.count else {
            throw ValidationError("give thread ids, whole numbers from 1, comma-separated, like 1234,1240")
        }
        return tids
    }

    static func maxStack(_ text: String) throws -> Int {
        guard let depth = Int(text), (1...StackDepth.maximum).contains(depth) else {
            throw ValidationError("give a number of frames from 1 to \(StackDepth.maximum)")
        }
        return depth
    }

    static func nonEmpty(what: String) -> (String) throws -> String {
        { text in
            guard !text.isEmpty else { throw ValidationError("give \(what)") }
            return text
        }
    }

    static func kinds(_ text: String) throws -> Set<LockKind> {
        let names = text.split(separator: ",").map(String.init)
        let all = LockKind.allCases.map(\.rawValue).joined(separator: ",")
        guard !names.isEmpty else { throw ValidationError("give one or more of \(all)") }
        return try Set(names.map { name in
            guard let kind = LockKind(rawValue: name) else { throw ValidationError("unknown lock kind '\(name)': use \(all)") }
            return kind
        })
    }

    static func ringBufferSize(_ text: String) throws -> Int {
        guard let bytes = Units.parseSize(text), bytes >= 4096, bytes & (bytes - 1) == 0, bytes <= 1 << 30 else {
            throw ValidationError("give a power of two from 4K to 1G, like 8M")
        }
        return bytes
    }

    static func cgroupNames(_ text: String) throws -> Int {
        guard let count = Int(text), (1...1 << 20).contains(count) else {
            throw ValidationError("give a number of names from 1 to 1048576")
        }
        return count
    }

    static func spinHz(_ text: String) throws -> Int {
        guard let hz = Int(text), (0...SpinSampler.maxHz).contains(hz) else {
            throw ValidationError("give samples per second from 0 (off) to \(SpinSampler.maxHz), like 997")
        }
        return hz
    }

    static func userStacks(_ text: String) throws -> UserStackMode {
        guard let mode = UserStackMode(rawValue: text) else {
            throw ValidationError("give mount (waits inside mount syscalls), all, or none")
        }
        return mode
    }

    /// `--locks`: mount, all, or lock names this kernel can have (checked against kallsyms).
    static func locks(_ text: String) throws -> LockChoice {
        do { return LockChoice(text: text, selection: try LockSelectionParser.parse(text)) } catch let error as UserError {
            throw ValidationError(error.description)
        }
    }

    /// `--cpu`: a CPU list of this machine's online CPUs.
    static func cpus(_ text: String) throws -> CPUList {
        do { return try CPUList(parsing: text, online: CPUList.online()) } catch let error as UserError {
            throw ValidationError(error.description)
        }
    }

    static func top(_ text: String) throws -> Int {
        guard let rows = Int(text), rows >= 0 else { throw ValidationError("give a number of rows, or 0 for all") }
        return rows
    }
}

/// The validated options of a recording.
struct RecordPlan {
    var options = RecordOptions()
    var describe: String

    init(command: RecordCommand) throws {
        var bpf = BPFOptions()
        bpf.minWaitNs = command.minWait
        bpf.ringBufferBytes = command.ringBufferSize
        bpf.kinds = command.kinds ?? []
        bpf.pids = command.pids.map { UInt32(bitPattern: $0) }
        bpf.lockAddresses = command.lockAddresses
        bpf.cgroupNamesCapacity = UInt32(command.cgroupNames)
        let tids = command.tids.flatMap { $0 }
        bpf.tids = tids.map { UInt32(bitPattern: $0) }
        let cpus = command.cpus
        bpf.cpus = cpus
        bpf.maxStackDepth = command.maxStack
        options.callstackFilter = command.callstackFilter
        bpf.userStacks = command.userStacks

        let selection = command.locks.selection
        options.selection = selection
        switch selection {
        case .all: break
        case .mount:
            bpf.filterByMountPath = true
            bpf.filterByLockAddress = true
            bpf.learnKernelDataLocks = true
        case .names(let names):
            let inferable = names.allSatisfy { LockSelectionParser.mountLockNames.contains($0) }
            if inferable { bpf.filterByMountPath = true; bpf.filterByLockAddress = true; bpf.learnKernelDataLocks = true }
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
        options.spinHz = command.spinHz
        let addresses = command.lockAddresses.map { "0x" + String($0, radix: 16) }
        options.recording = Recording(locks: command.locks.text, lockAddresses: addresses, minWaitNs: command.minWait,
                                      pids: command.pids, containers: command.containers, command: command.command,
                                      userStacks: command.userStacks.rawValue)
        options.recording.cpus = cpus?.text
        options.recording.tids = tids.isEmpty ? nil : tids
        options.recording.callstackFilter = command.callstackFilter?.names
        options.recording.maxStack = command.maxStack == StackDepth.maximum ? nil : command.maxStack
        describe = "locks: \(command.locks.text)" + (addresses.isEmpty ? "" : ", addresses: \(addresses.joined(separator: ","))")
            + (cpus.map { ", CPUs: \(CPUList.describe($0.cpus))" } ?? "")
            + (tids.isEmpty ? "" : ", threads: \(tids.map(String.init).joined(separator: ","))")
            + (command.callstackFilter.map { ", stacks with: \($0.names.joined(separator: ","))" } ?? "")
    }
}

/// `--locks` as given and what it selects.
struct LockChoice {
    let text: String
    let selection: LockSelection

    static let mount = LockChoice(text: "mount", selection: .mount)
    static let help = ArgumentHelp(
        "Which locks: mount (namespace_sem, mount_lock and every lock contended in a mount-family syscall), all, or NAME,...",
        valueName: "mount|all|NAME,...")
}

/// Parses `--locks`.
enum LockSelectionParser {
    static let mountLockNames = LockNamer.mountLockNames

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
