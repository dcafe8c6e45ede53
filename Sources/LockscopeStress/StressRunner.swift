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

/// The image layers a run's containers share: layer n in `directory(n)` (n = 0 … L-1), holding a file
/// `layer-<n>` and a file `layer` with its number (the top layer's shows through the overlay).
enum LayerStore {
    static let numberFile = "layer"

    static func create(count: Int, directory: (Int) -> String) throws {
        for layer in 0..<count {
            let layerDirectory = directory(layer)
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

/// What one worker process of a run stands for.
private enum Job {
    /// A container that mounts its own root (`--runtime simple`).
    case container(ContainerPlan)
    /// A pod whose shim mounts its containers' roots (`--runtime containerd`).
    case pod(PodPlan)
}

/// One run's state: its scratch directory and cgroups, the running workers and what finished ones reported.
private final class Storm {
    /// Container (simple) or pod (containerd) k's root maps to host id idRangeBase + k × 65536.
    private static let idRangeBase: UInt32 = 100_000
    /// Where `--runtime containerd` puts its shims and readers, below the run's cgroup, as systemd names them.
    static let runtimeCgroupName = "system.slice/containerd.service"
    static let readersCgroupName = "system.slice/kubelet.service"

    private let options: StressOptions
    private let watcher: SignalWatcher
    private let scratchDirectory: String
    private let cgroupParent: String?
    private let cgroups: CgroupTree?
    /// The run's scratch directory and cgroup parent, which everything else goes below.
    private let files: RunFiles
    private var running: [pid_t: (worker: WorkerProcess, job: Job)] = [:]
    private var readers: [WorkerProcess] = []
    private var readerReports: [ReaderReport] = []
    /// The readers' process ids, in launch order.
    private var readerPIDs: [Int32] = []
    /// Ended containers by their index.
    private var finished: [Int: StressContainer] = [:]
    /// Ended shims by their pod's index.
    private var finishedShims: [Int: StressShim] = [:]
    private var mountOpsBySyscall = Dictionary(uniqueKeysWithValues: StressSyscall.allCases.map { ($0.rawValue, 0) })
    private var firstLaunch: ContinuousClock.Instant?
    private var lastExit: ContinuousClock.Instant?

    private var layersDirectory: String { "\(scratchDirectory)/layers" }
    private var containersDirectory: String { "\(scratchDirectory)/containers" }
    /// containerd's directories, with the scratch directory standing in for `/`.
    private var layout: ContainerdLayout { ContainerdLayout(root: scratchDirectory) }
    private var runtimeCgroup: String? { cgroupParent.map { "\($0)/\(Self.runtimeCgroupName)" } }
    private var readersCgroup: String? { cgroupParent.map { "\($0)/\(Self.readersCgroupName)" } }

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

    /// Creates the layers, starts the readers and runs every round, stopping early on a stop signal.
    func run() throws -> StressResult {
        switch options.runtime {
        case .simple:
            try LayerStore.create(count: options.layers) { "\(self.layersDirectory)/\($0)" }
            try makeDirectories([containersDirectory])
        case .containerd:
            // The image's layers are snapshots 1 … L, the bottom one first.
            try LayerStore.create(count: options.layers) { self.layout.layer(snapshot: $0 + 1) }
            try makeDirectories([layout.tasks, layout.temporary])
            if let runtimeCgroup { try cgroups?.create(runtimeCgroup) }
        }
        try startReaders()
        for round in 0..<options.rounds {
            try run(round: round)
        }
        stopReaders()
        return result()
    }

    /// Creates each of `paths` and any missing parents.
    private func makeDirectories(_ paths: [String]) throws {
        for path in paths {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw StressError.setupFailed("cannot create \(path): \(error.localizedDescription)")
            }
        }
    }

    /// The round's workers: one per container, or one shim per pod.
    private func jobs(round: Int) -> [Job] {
        let first = round * options.containers
        switch options.runtime {
        case .simple:
            return (first..<first + options.containers).map { index in
                .container(ContainerPlan(index: index, round: round, style: options.cgroupStyle, parent: cgroupParent))
            }
        case .containerd:
            let size = options.containersPerPod
            return stride(from: first, to: first + options.containers, by: size).map { start in
                .pod(PodPlan(index: start / size, round: round, containerIndices: start..<start + size, parent: cgroupParent))
            }
        }
    }

    /// Keeps up to `parallel` workers running until the round's are done or a stop signal arrives.
    private func run(round: Int) throws {
        var pending = jobs(round: round)[...]
        while true {
            watcher.checkForStop()
            guard watcher.stopSignal == nil else { return }
            while running.count < options.parallel, let job = pending.popFirst() {
                try launch(job)
            }
            if running.isEmpty { return }
            watcher.wait(milliseconds: 100)
            for (pid, entry) in running {
                guard let end = entry.worker.reapIfEnded() else { continue }
                running[pid] = nil
                lastExit = .now
                let report = entry.worker.readOutput().split(separator: "\n").last.map(String.init) ?? ""
                switch entry.job {
                case .container(let plan): record(plan, report: report, end: end)
                case .pod(let pod): record(pod, report: report, end: end, pid: pid)
                }
            }
        }
    }

    private func launch(_ job: Job) throws {
        let worker: WorkerProcess
        switch job {
        case .container(let plan): worker = try launch(plan)
        case .pod(let pod): worker = try launch(pod)
        }
        firstLaunch = firstLaunch ?? .now
        running[worker.pid] = (worker, job)
    }

    /// Starts `--readers` processes in the readers' cgroup.
    private func startReaders() throws {
        guard options.readers > 0 else { return }
        if let readersCgroup { try cgroups?.create(readersCgroup) }
        let spec = ReaderSpec(cgroupDirectory: readersCgroup.flatMap { cgroup in cgroups.map { $0.root + cgroup } }, parentPID: getpid())
        let encodedSpec = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
        for _ in 0..<options.readers {
            readers.append(try WorkerProcess.spawn(executable: options.workerExecutable,
                                                   arguments: StressWorker.readerArguments + [encodedSpec], withInput: true))
        }
    }

    /// Tells the readers to stop (their stdin closes), and collects their reports.
    private func stopReaders() {
        for reader in readers {
            if let inputFD = reader.inputFD { close(inputFD) }
        }
        for reader in readers {
            readerPIDs.append(reader.pid)
            let line = reader.readOutput().split(separator: "\n").last.map(String.init) ?? ""
            var status: Int32 = 0
            while waitpid(reader.pid, &status, 0) == -1, errno == EINTR {}
            readerReports.append((try? JSONDecoder().decode(ReaderReport.self, from: Data(line.utf8)))
                ?? ReaderReport(error: "reader \(reader.pid) printed no report (wait status \(status))"))
        }
        readers = []
    }

    private func launch(_ plan: ContainerPlan) throws -> WorkerProcess {
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
        return try WorkerProcess.spawn(executable: options.workerExecutable,
                                       arguments: StressWorker.subcommandArguments + [encodedSpec])
    }

    /// Creates the pod's cgroups, its containers' active snapshots and task directories (what
    /// kubelet and the containerd daemon would have made), then starts its shim in the runtime's
    /// cgroup with $TMPDIR in the scratch directory.
    private func launch(_ pod: PodPlan) throws -> WorkerProcess {
        var containers: [ShimSpec.Container] = []
        for plan in pod.containers {
            if let cgroup = plan.cgroup { try cgroups?.create(cgroup) }
            let snapshot = options.layers + 1 + plan.index
            try makeDirectories(["\(layout.snapshots)/\(snapshot)/fs", "\(layout.snapshots)/\(snapshot)/work", layout.rootfs(container: plan.id)])
            containers.append(ShimSpec.Container(
                id: plan.id, snapshot: snapshot,
                cgroupDirectory: plan.cgroup.flatMap { cgroup in cgroups.map { $0.root + cgroup } },
                failAfterMountOps: options.injectedFailure.flatMap { $0.container == plan.index ? $0.afterMountOps : nil }))
        }
        let commandLine = ContainerdShim.commandLine(firstTaskID: pod.containers[0].id)
        let spec = ShimSpec(
            strategy: options.strategy, layers: options.layers, root: scratchDirectory,
            runtimeCgroupDirectory: runtimeCgroup.flatMap { cgroup in cgroups.map { $0.root + cgroup } },
            commandLine: commandLine,
            idRangeStart: Self.idRangeBase + UInt32(pod.index) * StressWorker.idRangeLength,
            containers: containers, parentPID: getpid())
        let encodedSpec = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
        let environment = ProcessInfo.processInfo.environment
            .filter { $0.key != "TMPDIR" && $0.key != StressWorker.specVariable }.map { "\($0.key)=\($0.value)" }
            + ["TMPDIR=\(layout.temporary)", "\(StressWorker.specVariable)=\(encodedSpec)"]
        return try WorkerProcess.spawn(executable: options.workerExecutable,
                                       arguments: StressWorker.shimArguments(toFill: ArgumentArea.bytes(commandLine).count),
                                       argv0: commandLine[0], environment: environment)
    }

    /// Why a worker that reported `error` (nil: none) ended as it did, or why it has no report.
    private static func failure(reportError error: String??, end: WorkerProcess.End) -> String? {
        let endDescription: String? = switch end {
        case .exited(code: 0): nil
        case .exited(let code): "worker exited with status \(code)"
        case .killed(let signal): "worker killed by signal \(signal) (\(String(cString: strsignal(signal))))"
        case .reapedElsewhere: "worker was reaped by someone else in this process"
        }
        guard let error else { return "worker printed no report (\(endDescription ?? "it exited with status 0"))" }
        return error ?? endDescription
    }

    private func add(_ counts: [String: Int]) {
        for (syscall, count) in counts {
            mountOpsBySyscall[syscall, default: 0] += count
        }
    }

    /// The container `plan` as it ended.
    private func container(_ plan: ContainerPlan, joinedCgroup: String?, mountOpsBySyscall: [String: Int]?,
                           setupNanoseconds: UInt64?, error: String?) -> StressContainer {
        StressContainer(
            id: plan.id, runtime: plan.runtime, podUID: plan.podUID, cgroup: plan.cgroup,
            joinedCgroup: joinedCgroup, round: plan.round,
            mountOps: mountOpsBySyscall?.values.reduce(0, +) ?? 0,
            setupMilliseconds: setupNanoseconds.map { Self.milliseconds(nanoseconds: $0) },
            error: error)
    }

    /// Adds an ended worker's report (or why it has none) to the run's totals.
    private func record(_ plan: ContainerPlan, report line: String, end: WorkerProcess.End) {
        let report = try? JSONDecoder().decode(WorkerReport.self, from: Data(line.utf8))
        add(report?.mountOpsBySyscall ?? [:])
        finished[plan.index] = container(plan, joinedCgroup: report?.joinedCgroup, mountOpsBySyscall: report?.mountOpsBySyscall,
                                         setupNanoseconds: report?.setupNanoseconds, error: Self.failure(reportError: report.map(\.error), end: end))
    }

    /// Adds an ended shim's report (or why it has none) to the run's totals: the shim, and each of its containers.
    private func record(_ pod: PodPlan, report line: String, end: WorkerProcess.End, pid: pid_t) {
        let report = try? JSONDecoder().decode(ShimReport.self, from: Data(line.utf8))
        let shimError = Self.failure(reportError: report.map(\.error), end: end)
        add(report?.mountOpsBySyscall ?? [:])
        let containerReports = Dictionary((report?.containers ?? []).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        finishedShims[pod.index] = StressShim(
            pid: pid, podUID: pod.podUID, firstTaskID: pod.containers[0].id, comm: report?.comm,
            commandLine: report?.commandLine ?? [], joinedCgroup: report?.joinedCgroup,
            mountOpsBySyscall: report?.mountOpsBySyscall ?? [:],
            usernsChildren: pod.containers.compactMap { containerReports[$0.id] }.map {
                StressUsernsChild(comm: $0.usernsChildComm, commandLine: $0.usernsChildCommandLine, ownUserNamespace: $0.usernsChildInOwnUserNamespace)
            },
            error: report?.error)
        for plan in pod.containers {
            let container = containerReports[plan.id]
            // A container the shim reported on failed only if it says so; the others failed with the shim.
            let error: String? = if let container { container.error } else { shimError ?? "the shim reported nothing for this container" }
            add(container?.mountOpsBySyscall ?? [:])
            var finishedContainer = self.container(plan, joinedCgroup: container?.processCgroup, mountOpsBySyscall: container?.mountOpsBySyscall,
                                                   setupNanoseconds: container?.setupNanoseconds, error: error)
            finishedContainer.shimPID = pid
            finishedContainer.rootfs = layout.rootfs(container: plan.id)
            finishedContainer.mountOpsBySyscall = container?.mountOpsBySyscall ?? [:]
            finishedContainer.mountCgroup = container?.mountCgroup
            finished[plan.index] = finishedContainer
        }
    }

    /// Stops and reaps any worker still running, then removes the cgroups and the scratch directory
    /// (its marker last). Returns what could not be removed.
    func cleanUp() -> [String] {
        let workers = running.values.map(\.worker) + readers
        for worker in workers { kill(worker.pid, SIGTERM) }
        for worker in workers {
            var status: Int32 = 0
            while waitpid(worker.pid, &status, 0) == -1, errno == EINTR {}
            close(worker.outputFD)
            if let inputFD = worker.inputFD { close(inputFD) }
        }
        running = [:]
        readers = []
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
            mountOpsPerContainer: options.strategy.mountOps(layers: options.layers, runtime: options.runtime),
            mountOpsBySyscall: mountOpsBySyscall,
            setupP50Milliseconds: percentile(50),
            setupP90Milliseconds: percentile(90),
            setupP99Milliseconds: percentile(99),
            setupMaxMilliseconds: setups.last ?? 0,
            wallMilliseconds: Self.milliseconds(nanoseconds: wallNanoseconds),
            failures: finished.values.filter { $0.error != nil }.count,
            containerList: finished.keys.sorted().compactMap { finished[$0] },
            runtime: options.runtime,
            containersPerPod: options.runtime == .containerd ? options.containersPerPod : nil,
            runtimeCgroup: options.runtime == .containerd ? runtimeCgroup : nil,
            shims: options.runtime == .containerd ? finishedShims.keys.sorted().compactMap { finishedShims[$0] } : nil,
            mountOpsPerShim: options.runtime == .containerd ? StressRuntime.shimMountOpsBySyscall.values.reduce(0, +) : nil,
            readers: readersSummary())
    }

    /// The readers' latency, all reads together; nil without readers.
    private func readersSummary() -> StressReaders? {
        guard options.readers > 0 else { return nil }
        var latency = LatencyHistogram()
        for report in readerReports { latency.add(report.latency) }
        return StressReaders(
            processes: options.readers, pids: readerPIDs, cgroup: readersCgroup, reads: latency.count,
            p50Milliseconds: Self.milliseconds(nanoseconds: latency.percentile(50)),
            p99Milliseconds: Self.milliseconds(nanoseconds: latency.percentile(99)),
            maxMilliseconds: Self.milliseconds(nanoseconds: latency.maxNanoseconds),
            errors: readerReports.compactMap(\.error))
    }

    static func milliseconds(nanoseconds: UInt64) -> Double {
        (Double(nanoseconds) / 1_000).rounded() / 1_000
    }
}
