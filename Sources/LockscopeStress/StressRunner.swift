import Foundation
import LockscopeCore
import Glibc

/// Runs a stress run: starts every container in its own worker process, at most `parallel` at a time,
/// collects what the workers report, and removes everything the run created, even when a worker
/// fails or SIGINT, SIGTERM, SIGHUP or SIGQUIT arrives (the workers are stopped; their mounts die
/// with their private mount namespaces). One run at a time per process: it owns the handlers of
/// those signals and of SIGCHLD while it runs, and must stay on the thread that called ``run()``
/// (workers die with that thread).
///
/// A run SIGKILLed before it could clean up leaves its marker (``RunMarker``) in its scratch
/// directory; the next run in the same scratch parent removes what it left once its owner is gone.
public struct StressRunner: Sendable {
    public let options: StressOptions
    /// Receives one line for each earlier run whose leftovers this run removed (or could not).
    public let notice: @Sendable (String) -> Void

    public init(options: StressOptions, notice: @escaping @Sendable (String) -> Void = StressRunner.printNotice) {
        self.options = options
        self.notice = notice
    }

    /// Prints `lockscope: <line>` on stderr.
    public static func printNotice(_ line: String) {
        FileHandle.standardError.write(Data("lockscope: \(line)\n".utf8))
    }

    public func run() throws -> StressResult {
        try options.validate()
        let cgroupRoot = try Self.checkEnvironment(for: options)
        RunFiles.removeAbandoned(in: options.scratchParent, cgroupRoot: MountTable.current().cgroup2MountPoint, notice: notice)
        let watcher = try SignalWatcher()
        defer { watcher.restore() }
        let storm = try Storm(options: options, cgroupRoot: cgroupRoot, watcher: watcher)
        let outcome = Result { try storm.run() }
        let leftovers = storm.cleanUp()
        guard leftovers.isEmpty else {
            throw StressError.setupFailed("could not remove \(leftovers.joined(separator: ", ")): remove them by hand")
        }
        if let signal = watcher.stopSignal { throw StressError.interrupted(signal: signal) }
        return try outcome.get()
    }

    /// Checks for root, user namespaces, overlayfs, the worker executable and (unless the style is
    /// `none`) a cgroup2 mount, which it returns.
    static func checkEnvironment(for options: StressOptions) throws -> String? {
        guard geteuid() == 0 else {
            throw StressError.unsupported("lockscope stress must run as root (it mounts filesystems and creates cgroups): rerun it with sudo")
        }
        let maxUserNamespaces = (try? String(contentsOfFile: "/proc/sys/user/max_user_namespaces", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        guard maxUserNamespaces > 0 else {
            throw StressError.unsupported("user namespaces are unavailable (user.max_user_namespaces is 0 or missing): raise it with sysctl or use a kernel with CONFIG_USER_NS")
        }
        guard overlayfsIsAvailable() else {
            throw StressError.unsupported("overlayfs is not available: use a kernel built with CONFIG_OVERLAY_FS or install its overlay module")
        }
        guard access(options.workerExecutable, X_OK) == 0 else {
            throw StressError.unsupported("the worker executable \(options.workerExecutable) is missing or not executable: build lockscope and pass its path")
        }
        guard options.cgroupStyle != .none else { return nil }
        guard let root = MountTable.current().cgroup2MountPoint else {
            throw StressError.unsupported("no cgroup2 filesystem is mounted: mount one (mount -t cgroup2 none /sys/fs/cgroup) or pass --cgroup-style none")
        }
        return root
    }
}

/// Whether overlayfs is registered, or is a module the kernel loads on the first overlay mount.
private func overlayfsIsAvailable() -> Bool {
    func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
    if read("/proc/filesystems").split(separator: "\n").contains(where: { $0.hasSuffix("\toverlay") }) { return true }
    let release = read("/proc/sys/kernel/osrelease").trimmingCharacters(in: .whitespacesAndNewlines)
    let modules = (try? FileManager.default.contentsOfDirectory(atPath: "/lib/modules/\(release)/kernel/fs/overlayfs")) ?? []
    return modules.contains { $0.hasPrefix("overlay.ko") }
}

/// The image layers a run's containers share: directories "0" … "L-1", each holding a file
/// `layer-<n>` and a file `layer` with its number (the top layer's shows through the overlay).
enum LayerStore {
    static let numberFile = "layer"

    static func create(in directory: String, count: Int) throws {
        for layer in 0..<count {
            let layerDirectory = "\(directory)/\(layer)"
            do {
                try FileManager.default.createDirectory(atPath: layerDirectory, withIntermediateDirectories: true)
                try writeText("\(layer)\n", to: "\(layerDirectory)/\(numberFile)", creating: true)
                try writeText("contents of layer \(layer)\n", to: "\(layerDirectory)/layer-\(layer)", creating: true)
            } catch {
                throw StressError.setupFailed("cannot create layer \(layerDirectory): \(error)")
            }
        }
    }
}

/// One run's state: its scratch directory and cgroups, the running workers and what finished ones reported.
private final class Storm {
    /// Container k's root maps to host id idRangeBase + k × 65536.
    private static let idRangeBase: UInt32 = 100_000

    private let options: StressOptions
    private let watcher: SignalWatcher
    private let scratchDirectory: String
    private let cgroupParent: String?
    private let cgroups: CgroupTree?
    /// The run's scratch directory and cgroup parent, which everything else goes below.
    private let files: RunFiles
    private var running: [pid_t: (worker: WorkerProcess, plan: ContainerPlan)] = [:]
    /// Ended containers by their index.
    private var finished: [Int: StressContainer] = [:]
    private var mountOpsBySyscall = Dictionary(uniqueKeysWithValues: StressSyscall.allCases.map { ($0.rawValue, 0) })
    private var firstLaunch: ContinuousClock.Instant?
    private var lastExit: ContinuousClock.Instant?

    private var layersDirectory: String { "\(scratchDirectory)/layers" }
    private var containersDirectory: String { "\(scratchDirectory)/containers" }

    /// Creates the run's scratch directory with its marker in it, then its cgroup parent, named alike.
    init(options: StressOptions, cgroupRoot: String?, watcher: SignalWatcher) throws {
        self.options = options
        self.watcher = watcher
        let runName = "\(RunFiles.namePrefix)\(ContainerPlan.randomHex(bytes: 4))"
        scratchDirectory = "\(options.scratchParent)/\(runName)"
        cgroups = cgroupRoot.map { CgroupTree(root: $0) }
        cgroupParent = cgroupRoot == nil ? nil : "/\(runName)"
        files = RunFiles(scratchDirectory: scratchDirectory, cgroups: cgroupRoot.map { ["\($0)/\(runName)"] } ?? [])
        guard mkdir(scratchDirectory, 0o700) == 0 else {
            throw StressError.setupFailed("cannot create the scratch directory \(scratchDirectory): \(String(cString: strerror(errno)))")
        }
        do {
            try RunMarker.forThisProcess(cgroups: files.cgroups).write(into: scratchDirectory)
            if let cgroups, let cgroupParent { try cgroups.createRunDirectory(cgroupParent) }
        } catch {
            // Not the cgroups: an existing directory of that name belongs to another run.
            _ = RunFiles(scratchDirectory: scratchDirectory, cgroups: []).remove()
            throw error
        }
    }

    /// Creates the layers and runs every round, stopping early on a stop signal.
    func run() throws -> StressResult {
        try LayerStore.create(in: layersDirectory, count: options.layers)
        guard mkdir(containersDirectory, 0o755) == 0 else {
            throw StressError.setupFailed("cannot create \(containersDirectory): \(String(cString: strerror(errno)))")
        }
        for round in 0..<options.rounds {
            try run(round: round)
        }
        return result()
    }

    /// Keeps up to `parallel` workers running until the round's containers are done or a stop signal arrives.
    private func run(round: Int) throws {
        let indices = round * options.containers..<(round + 1) * options.containers
        var nextIndex = indices.lowerBound
        while true {
            watcher.checkForStop()
            guard watcher.stopSignal == nil else { return }
            while running.count < options.parallel, nextIndex < indices.upperBound {
                try launch(ContainerPlan(index: nextIndex, round: round, style: options.cgroupStyle, parent: cgroupParent))
                nextIndex += 1
            }
            if running.isEmpty { return }
            watcher.wait(milliseconds: 100)
            for (pid, entry) in running {
                guard let end = entry.worker.reapIfEnded() else { continue }
                running[pid] = nil
                record(entry.plan, worker: entry.worker, end: end)
            }
        }
    }

    private func launch(_ plan: ContainerPlan) throws {
        if let cgroup = plan.cgroup { try cgroups?.create(cgroup) }
        let spec = WorkerSpec(
            strategy: options.strategy,
            layers: options.layers,
            layersDirectory: layersDirectory,
            containerDirectory: "\(containersDirectory)/\(plan.index)",
            cgroupDirectory: plan.cgroup.flatMap { cgroup in cgroups.map { $0.root + cgroup } },
            idRangeStart: Self.idRangeBase + UInt32(plan.index) * StressWorker.idRangeLength,
            failAfterMountOps: options.injectedFailure.flatMap { $0.container == plan.index ? $0.afterMountOps : nil },
            parentPID: getpid())
        let encodedSpec = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
        let worker = try WorkerProcess.spawn(executable: options.workerExecutable,
                                             arguments: StressWorker.subcommandArguments + [encodedSpec])
        firstLaunch = firstLaunch ?? .now
        running[worker.pid] = (worker, plan)
    }

    /// Adds an ended worker's report (or why it has none) to the run's totals.
    private func record(_ plan: ContainerPlan, worker: WorkerProcess, end: WorkerProcess.End) {
        lastExit = .now
        let lastLine = worker.readOutput().split(separator: "\n").last.map(String.init) ?? ""
        let report = try? JSONDecoder().decode(WorkerReport.self, from: Data(lastLine.utf8))
        let endDescription: String? = switch end {
        case .exited(code: 0): nil
        case .exited(let code): "worker exited with status \(code)"
        case .killed(let signal): "worker killed by signal \(signal) (\(String(cString: strsignal(signal))))"
        case .reapedElsewhere: "worker was reaped by someone else in this process"
        }
        for (syscall, count) in report?.mountOpsBySyscall ?? [:] {
            mountOpsBySyscall[syscall, default: 0] += count
        }
        finished[plan.index] = StressContainer(
            id: plan.id, runtime: plan.runtime, podUID: plan.podUID, cgroup: plan.cgroup,
            joinedCgroup: report?.joinedCgroup, round: plan.round,
            mountOps: report?.mountOpsBySyscall.values.reduce(0, +) ?? 0,
            setupMilliseconds: report?.setupNanoseconds.map { Self.milliseconds(nanoseconds: $0) },
            error: report.map { $0.error ?? endDescription } ?? "worker printed no report (\(endDescription ?? "it exited with status 0"))")
    }

    /// Stops and reaps any worker still running, then removes the cgroups and the scratch directory
    /// (its marker last). Returns what could not be removed.
    func cleanUp() -> [String] {
        for (_, entry) in running { kill(entry.worker.pid, SIGTERM) }
        for (_, entry) in running {
            var status: Int32 = 0
            while waitpid(entry.worker.pid, &status, 0) == -1, errno == EINTR {}
            close(entry.worker.outputFD)
        }
        running = [:]
        return files.remove().leftovers
    }

    private func result() -> StressResult {
        let setups = finished.values.compactMap(\.setupMilliseconds).sorted()
        /// Nearest-rank percentile; 0 when no container got its overlay mounted.
        func percentile(_ percent: Double) -> Double {
            setups.isEmpty ? 0 : setups[max(0, Int((percent / 100 * Double(setups.count)).rounded(.up)) - 1)]
        }
        var wallNanoseconds: UInt64 = 0
        if let firstLaunch, let lastExit { wallNanoseconds = UInt64((lastExit - firstLaunch) / .nanoseconds(1)) }
        return StressResult(
            strategy: options.strategy,
            containers: options.containers,
            layers: options.layers,
            parallel: options.parallel,
            rounds: options.rounds,
            cgroupStyle: options.cgroupStyle,
            cgroupParent: cgroupParent,
            scratchDirectory: scratchDirectory,
            mountOps: mountOpsBySyscall.values.reduce(0, +),
            mountOpsPerContainer: options.strategy.mountOps(layers: options.layers),
            mountOpsBySyscall: mountOpsBySyscall,
            setupP50Milliseconds: percentile(50),
            setupP90Milliseconds: percentile(90),
            setupP99Milliseconds: percentile(99),
            setupMaxMilliseconds: setups.last ?? 0,
            wallMilliseconds: Self.milliseconds(nanoseconds: wallNanoseconds),
            failures: finished.values.filter { $0.error != nil }.count,
            containerList: finished.keys.sorted().compactMap { finished[$0] })
    }

    static func milliseconds(nanoseconds: UInt64) -> Double {
        (Double(nanoseconds) / 1_000).rounded() / 1_000
    }
}
