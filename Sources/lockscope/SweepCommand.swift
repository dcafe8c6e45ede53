import ArgumentParser
import Foundation
import Glibc
import LockscopeCore
import LockscopeExport
import LockscopeKernel
import LockscopeReport
import LockscopeStress

/// `lockscope sweep`: the mount storm at a series of parallelism levels in each CPU placement the
/// machine offers, recorded at every point; a table, JSON and an SVG chart; or two sweeps compared.
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run the storm at each parallelism in each CPU placement, recording lock wait and set-up latency.",
        discussion: """
            Placements come from the topology: all CPUs, one socket, one thread per core (SMT siblings left \
            idle) and one last-level cache, where they differ, plus each --cpus list. The storm's workers are \
            confined with CPU affinity (inherited from the thread that starts them), and each point reports \
            the CPUs its containers' waits were recorded on, so the confinement is checked, not assumed. \
            Every point runs --runs times; the table, JSON and chart give the median and the spread. \
            With --compare A.json B.json, prints the medians of two sweeps side by side instead. Needs root.
            """)

    @Option(help: "Parallelism levels, comma-separated (default: 1, 2, 4, ... up to 4 × CPUs).", transform: SweepCommand.levels)
    var parallel: [Int]?

    @Option(help: "Placements from the topology to use, comma-separated: all, socket, core, llc (default: those that differ).")
    var placements: String?

    @Option(help: "An extra placement: a CPU list as cpuset.cpus writes it (0-3,8). Repeatable.")
    var cpus: [String] = []

    @Option(help: "Storms per point (the median and spread are over them).")
    var runs = 3

    @Option(help: "Containers per storm.")
    var containers = 32

    @Option(help: "Image layers per container.")
    var layers = 10

    @Option(help: "How layers are idmapped: per-layer or common-parent.")
    var strategy = StressStrategy.perLayer

    @Option(help: "Who makes the mounts: simple or containerd.")
    var runtime = StressRuntime.simple

    @Option(name: [.short, .customLong("output")], help: "Write the sweep as JSON to this file.")
    var output: String?

    @Option(help: "Write the chart (SVG) to this file.")
    var svg: String?

    @Option(parsing: .upToNextOption, help: "Compare two sweeps' JSON files (before, after) instead of running one.")
    var compare: [String] = []

    @Flag(help: "Print the sweep as JSON instead of the table.")
    var json = false

    @OptionGroup var fileMode: FileModeOption

    static func levels(_ text: String) throws -> [Int] {
        let levels = text.split(separator: ",").map { Int($0) }
        guard !levels.isEmpty, levels.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("give parallelism levels as positive numbers, comma-separated: 1,2,4,8")
        }
        return levels.map { $0! }
    }

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard compare.isEmpty || compare.count == 2 else { throw ValidationError("--compare takes two sweep files: before and after") }
    }

    func run() throws {
        if compare.count == 2 {
            let (before, after) = (try Self.load(compare[0]), try Self.load(compare[1]))
            print(SweepReport.comparison(before, after), terminator: "")
            return
        }
        let topology = try Topology.read()
        let chosen = try choosePlacements(topology)
        let levels = parallel ?? Sweep.defaultParallelism(cpus: topology.cpus.count)
        for path in [output, svg].compactMap({ $0 }) { try AtomicFile.checkWritable(path) }
        try Privileges.current().requireForRecording()
        var stress = StressOptions()
        stress.containers = containers
        stress.layers = layers
        stress.strategy = strategy
        stress.runtime = runtime
        if runtime == .containerd { stress.cgroupStyle = .kubepods }
        try stress.validate()
        let workload = "lockscope stress --runtime \(runtime.rawValue) --containers \(containers) --layers \(layers) --strategy \(strategy.rawValue)"

        let kernel = KernelInfo.read()
        let startedAt = ISO8601DateFormatter().string(from: Date())
        var points: [SweepPoint] = []
        StopSignal.install()
        for placement in chosen {
            for level in levels {
                var runs: [SweepRun] = []
                for _ in 0..<self.runs {
                    guard !StopSignal.requested else { throw ExitCode(130) }
                    stress.parallel = level
                    runs.append(try Self.measure(stress, placement: placement))
                }
                let point = SweepPoint(placement: placement, parallel: level, runs: runs)
                FileHandle.standardError.write(Data(String(
                    format: "lockscope: %@ parallel %d: set-up p99 %.1f ms, namespace_sem %.1f ms (median of %d)\n",
                    placement.name, level, point.spread(.setupP99).median, point.spread(.namespaceSemWait).median, runs.count).utf8))
                points.append(point)
            }
        }
        let sweep = Sweep(hostname: kernel.hostname, kernel: kernel.release, startedAt: startedAt, topology: topology,
                          confinement: "affinity", workload: workload, placements: chosen, points: points)
        let data = try Profile.makeEncoder().encode(sweep)
        if let output { try AtomicFile.write(data, to: output, mode: fileMode.mode) }
        if let svg { try AtomicFile.write(Data(try SweepSVG.render(sweep).utf8), to: svg, mode: fileMode.mode) }
        if json {
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        } else {
            print(SweepReport.table(sweep), terminator: "")
        }
    }

    private func choosePlacements(_ topology: Topology) throws -> [Placement] {
        let offered = Placement.offered(by: topology)
        var chosen = offered
        if let placements {
            let kinds = ["all": "all", "socket": "socket", "core": "one-thread-per-core", "llc": "llc"]
            chosen = []
            for name in placements.split(separator: ",").map(String.init) {
                guard let prefix = kinds[name] else {
                    throw UserError("unknown placement '\(name)': give all, socket, core or llc (or a CPU list with --cpus)")
                }
                guard let placement = offered.first(where: { $0.name.hasPrefix(prefix) }) else {
                    throw UserError("this machine offers no '\(name)' placement apart from the others: it offers \(offered.map(\.name).joined(separator: ", "))")
                }
                chosen.append(placement)
            }
        }
        for list in cpus { chosen.append(try Placement.cpuList(list, online: topology.cpus.map(\.id))) }
        return chosen
    }

    /// One storm, recorded as `record --locks mount` would, its workers confined to `placement`.
    static func measure(_ stress: StressOptions, placement: Placement) throws -> SweepRun {
        var options = RecordOptions()
        options.selection = .mount
        options.bpf.filterByMountPath = true
        options.bpf.filterByLockAddress = true
        options.bpf.learnKernelDataLocks = true
        let recorder = try Recorder(options: options)
        try recorder.attach()
        let done = Finished()
        let thread = Thread {
            // Every worker the runner starts from this thread inherits its CPU affinity.
            done.set(Result { try CPUAffinity.confineCurrentThread(to: placement.cpus); return try StressRunner(options: stress).run() })
        }
        thread.start()
        recorder.run(shouldStop: { done.isSet || StopSignal.requested }, status: { _ in })
        while !done.isSet { usleep(10_000) }
        let profile = recorder.finish()
        return SweepRun(stress: try done.get(), profile: profile)
    }

    static func load(_ path: String) throws -> Sweep {
        let data = try InputFile.read(path, label: "sweep", kind: "sweep", hint: "give a file `lockscope sweep -o` wrote")
        do {
            let sweep = try Profile.makeDecoder().decode(Sweep.self, from: data)
            guard sweep.schema == Sweep.currentSchema else {
                throw UserError("\(path) is a \(sweep.schema) file, not \(Sweep.currentSchema): give a file `lockscope sweep -o` wrote")
            }
            return sweep
        } catch let error as UserError {
            throw error
        } catch {
            throw UserError("\(path) is not a sweep `lockscope sweep -o` wrote: \(error.localizedDescription)")
        }
    }
}

/// The storm's result, handed from its thread to the polling loop.
private final class Finished: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<StressResult, Error>?

    func set(_ result: Result<StressResult, Error>) { lock.withLock { self.result = result } }
    var isSet: Bool { lock.withLock { result != nil } }
    func get() throws -> StressResult { try lock.withLock { result! }.get() }
}

extension SweepRun {
    /// The run's values from what stress reported and what was recorded while it ran: set-up latency
    /// from stress, lock wait from the profile (namespace_sem with its wait_lock, mount_lock), and the
    /// CPUs of every wait the profile attributes to one of the storm's containers.
    init(stress: StressResult, profile: Profile) {
        func wait(_ lock: MountLockClass) -> Double {
            Double(profile.locks.filter { MountLockClass(lockName: $0.name) == lock }
                .map(\.stats.totalWaitNs).saturatedSum()) / 1e6
        }
        let containers = Set(stress.containerList.map(\.id))
        var cpus = Set<Int>()
        for lock in profile.locks {
            for stack in lock.stacks {
                for context in stack.contexts where containers.contains(context.container) { cpus.insert(context.cpu) }
            }
        }
        let seconds = stress.wallMilliseconds / 1000
        self.init(values: [.setupP50: stress.setupP50Milliseconds, .setupP99: stress.setupP99Milliseconds,
                           .namespaceSemWait: wait(.namespaceSem), .mountLockWait: wait(.mountLock),
                           .mountOpsPerSecond: seconds > 0 ? Double(stress.mountOps) / seconds : 0],
                  cpusSeen: Array(cpus), failures: stress.failures)
    }
}
