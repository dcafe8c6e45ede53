import ArgumentParser
import Foundation
import LockscopeAgent
import LockscopeCore
import LockscopeExport
import LockscopeKernel

/// `lockscope agent`: records continuously in windows and serves them over HTTP until stopped.
struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Record continuously and serve Prometheus metrics, Go-style pprof lock profiles and a health check over HTTP.",
        discussion: """
            Runs until SIGTERM or SIGINT (or --duration). Every --window the profile recorded since the last \
            one is added to the metrics on /metrics, and becomes the profile served on /debug/pprof/mutex and \
            /debug/pprof/block; /healthz answers 200 while recording. Prints "lockscope: attached ..." on stderr \
            once recording and listening. On a stop signal: detaches, writes the window under way to \
            --output-dir (if given), closes the server, exits 0. See docs/cli.md and docs/fleet.md.
            """)

    @Option(help: "Where to listen: HOST:PORT (default: 127.0.0.1:9464, loopback only; 0.0.0.0:9464 to be scraped from other hosts; port 0: any free port, printed).",
            transform: AgentArgument.listen)
    var listen = AgentArgument.Listen(host: "127.0.0.1", port: 9464)

    @Option(parsing: .unconditional, help: "How long each window records (e.g. 60s, 2m; default: 60s, at least 1s): the pprof profile's span and how often metrics grow.",
            transform: AgentArgument.window)
    var window: UInt64 = 60_000_000_000

    @Option(help: LockChoice.help, transform: RecordArgument.locks)
    var locks = LockChoice.mount

    @Option(name: .customLong("max-containers"), parsing: .unconditional,
            help: "Most container/pod label values at once; the rest are summed under container=\"other\", pod=\"other\" and counted (default: 100).",
            transform: AgentArgument.count(what: "container labels"))
    var maxContainers = 100

    @Option(name: .customLong("forget-containers-after"), parsing: .unconditional,
            help: "Let a container's series go after it neither waited nor mounted for this long, making room for new ones (e.g. 10m; default: 10m, at least one window).",
            transform: AgentArgument.window)
    var forgetContainersAfter: UInt64 = 600_000_000_000

    @Option(name: .customLong("max-locks"), parsing: .unconditional,
            help: "Most lock label values over the agent's life; the rest are summed under lock=\"other\" and counted (default: 200).",
            transform: AgentArgument.count(what: "lock labels"))
    var maxLocks = 200

    @Option(name: .customLong("output-dir"), help: "Also write each finished window's profile there, as lockscope-<UTC time>.json.")
    var outputDirectory: String?

    @Option(parsing: .unconditional, help: "With --output-dir: keep at most this many window files, the oldest removed (default: 10).",
            transform: AgentArgument.count(what: "files"))
    var keep = 10

    @OptionGroup var fileMode: FileModeOption

    @Flag(name: .customLong("no-bpf-stats"),
          help: "Do not turn on the kernel's BPF run-time statistics (which lockscope_bpf_program_* need). While on, every BPF program on the machine, not only lockscope's, pays two clock reads per run (some tens of ns).")
    var noBPFStats = false

    @Option(name: .shortAndLong, parsing: .unconditional, help: "Stop after this long (for tests and benchmarks).",
            transform: RecordArgument.positiveDuration)
    var duration: UInt64?

    func validate() throws {
        if let outputDirectory {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: outputDirectory, isDirectory: &isDirectory), isDirectory.boolValue,
                  access(outputDirectory, W_OK) == 0 else {
                throw ValidationError("--output-dir \(outputDirectory) is not a writable directory: create it or give another")
            }
        }
    }

    func run() throws {
        // No on-CPU samples (they add up over the whole recording, not per window) and no user stacks (the
        // symbolizer keeps every process's mappings, which a long-running agent must not): docs/cli.md.
        let plan = try RecordPlan(command: try RecordCommand.parse(["--locks", locks.text, "--spin-hz", "0", "--user-stacks", "none"]))
        try Privileges.current().requireForRecording()
        let recorder = try Recorder(options: plan.options)
        let statistics = noBPFStats ? nil : try BPFRunStatistics()
        StopSignal.install()
        let state = AgentState(metrics: AgentMetrics(version: LockscopeVersion.current))
        let server = AgentServer(host: listen.host, port: listen.port, state: state)
        let port: Int
        switch server.waitUntilListening() {
        case .port(let bound): port = bound
        case .failed(let reason):
            FileHandle.standardError.write(Data("lockscope: cannot listen on \(listen): \(reason): give another --listen\n".utf8))
            throw ExitCode(1)
        }
        do {
            try recorder.attach()
        } catch {
            // Served until stopped, so that the health check says why.
            state.failed("attach failed: \(error)")
            FileHandle.standardError.write(Data("lockscope: \(error)\n".utf8))
            while !StopSignal.requested { usleep(100_000) }
            server.shutdown()
            throw ExitCode(1)
        }
        state.polled()
        let address = listen.host.contains(":") ? "[\(listen.host)]:\(port)" : "\(listen.host):\(port)"
        FileHandle.standardError.write(Data(("lockscope: attached (\(plan.describe)); serving http://\(address) "
            + "(/metrics, /debug/pprof/mutex, /healthz), a window every \(Units.duration(window))"
            + (duration.map { " for \(Units.duration($0))" } ?? "") + "\n").utf8))

        // Idle windows, rounded up: a container is forgotten no sooner than asked.
        let idleWindows = Int((max(forgetContainersAfter, window) + window - 1) / window)
        var mapper = MetricsMapper(maxLocks: maxLocks, maxContainers: maxContainers, containerIdleWindows: idleWindows)
        let output = outputDirectory.map { WindowFiles(directory: $0, keep: keep, mode: fileMode.mode) }
        let deadline = duration.map { monotonicNs() + $0 }
        var stopping = false
        // Windows end on a fixed schedule, whatever taking one costs.
        var windowEnd = monotonicNs()
        while !stopping {
            windowEnd += window
            if windowEnd <= monotonicNs() { windowEnd = monotonicNs() + window }
            recorder.run(shouldStop: {
                state.polled()
                let now = monotonicNs()
                if StopSignal.requested || deadline.map({ now >= $0 }) == true { stopping = true }
                return stopping || now >= windowEnd
            }, status: { _ in })
            let profile = recorder.takeWindow(last: stopping)
            let ended = Date()
            state.metrics.add(mapper.map(profile), endedAt: ended)
            if statistics != nil { state.metrics.addProgramRuns(recorder.programRuns().map { ($0.program, $0.runTimeNs, $0.runs) }) }
            do {
                state.publish(pprof: try PprofExporter.render(profile, grouping: .none))
            } catch {
                FileHandle.standardError.write(Data("lockscope: the window's pprof profile: \(error)\n".utf8))
            }
            output?.write(profile, endedAt: ended)
            // The window's tables are freed now; glibc keeps freed heap for reuse, which a window with more
            // stacks or containers than the last raises step by step. Give it back (measured: make soak).
            HeapTrim.trim()
            state.polled()
        }
        server.shutdown()
        withExtendedLifetime(statistics) {}
    }
}

/// The window profiles written to --output-dir, the oldest removed past --keep.
struct WindowFiles {
    let directory: String
    let keep: Int
    let mode: mode_t
    static let prefix = "lockscope-"

    static func name(endedAt date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss.SSS'Z'"
        return prefix + formatter.string(from: date) + ".json"
    }

    /// A file that cannot be written is said on stderr; the agent goes on.
    func write(_ profile: Profile, endedAt date: Date) {
        let path = (directory as NSString).appendingPathComponent(Self.name(endedAt: date))
        do {
            try profile.write(to: path, mode: mode)
        } catch {
            FileHandle.standardError.write(Data("lockscope: \(error)\n".utf8))
        }
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix(Self.prefix) && $0.hasSuffix(".json") }.sorted()
        for old in files.dropLast(keep) {
            try? FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(old))
        }
    }
}

/// Parsers for agent's option values.
enum AgentArgument {
    struct Listen: CustomStringConvertible {
        var host: String
        var port: Int
        var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    static func listen(_ text: String) throws -> Listen {
        let bad = ValidationError("give HOST:PORT, like 127.0.0.1:9464, 0.0.0.0:9464 or [::1]:9464")
        guard let colon = text.lastIndex(of: ":") else { throw bad }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { throw bad }
        return Listen(host: host, port: port)
    }

    static func window(_ text: String) throws -> UInt64 {
        guard let ns = Units.parseDuration(text), ns >= 1_000_000_000 else {
            throw ValidationError("give a window of 1s or more, like 60s or 2m")
        }
        return ns
    }

    static func count(what: String) -> (String) throws -> Int {
        { text in
            guard let count = Int(text), count > 0 else { throw ValidationError("give a number of \(what) from 1") }
            return count
        }
    }
}

/// glibc's `malloc_trim(0)`: gives the heap's free memory back to the kernel. Looked up at run time
/// (Glibc's Swift module leaves out malloc.h); does nothing on a C library without it.
enum HeapTrim {
    private typealias Trim = @convention(c) (Int) -> Int32
    private static let function: Trim? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim")
        .map { unsafeBitCast($0, to: Trim.self) }

    static func trim() { _ = function?(0) }
}
