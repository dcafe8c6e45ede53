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
            confined with a cgroup v1 cpuset child where the cpuset hierarchy is mounted, else with CPU \
            affinity (both inherited from the thread that starts them); each point reports the CPUs its \
            containers' waits were recorded on, so the confinement is checked, not assumed: a point that ran \
            outside its placement is reported on stderr and the command exits 1. Every point runs --runs \
            times; the table, JSON and chart give the median and the spread. With --compare A.json B.json, \
            compares two sweeps instead. Needs root.
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

    @Flag(help: "Print the sweep (or with --compare, the comparison) as JSON instead of the table.")
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
        guard compare.isEmpty || (output == nil && svg == nil) else {
            throw ValidationError("--compare prints the comparison (--json for JSON): -o and --svg are for running a sweep")
        }
    }

    func run() throws {
        if compare.count == 2 {
            let (before, after) = (try Self.load(compare[0]), try Self.load(compare[1]))
            let comparison = SweepComparison(before: before, after: after)
            if json {
                FileHandle.standardOutput.write(try Profile.makeEncoder().encode(comparison) + Data("\n".utf8))
            } else {
                print(SweepReport.comparison(comparison), terminator: "")
            }
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

        let confinement = ConfinementPlan.current()
        FileHandle.standardError.write(Data("lockscope: confining the storm's workers with \(confinement.method.rawValue): \(confinement.reason)\n".utf8))
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
                    runs.append(try Self.measure(stress, placement: placement, confinement: confinement))
                }
                let point = SweepPoint(placement: placement, parallel: level, runs: runs)
                FileHandle.standardError.write(Data(String(
                    format: "lockscope: %@ parallel %d: set-up p99 %.1f ms, namespace_sem %.1f ms (median of %d)\n",
                    placement.name, level, point.spread(.setupP99).median, point.spread(.namespaceSemWait).median, runs.count).utf8))
                if let warning = SweepReport.warning(point, placement: placement) {
                    FileHandle.standardError.write(Data("lockscope: \(warning)\n".utf8))
                }
                points.append(point)
            }
        }
        let sweep = Sweep(hostname: kernel.hostname, kernel: kernel.release, startedAt: startedAt, topology: topology,
                          confinement: confinement.method, workload: workload, placements: chosen, points: points)
        let data = try Profile.makeEncoder().encode(sweep)
        if let output { try AtomicFile.write(data, to: output, mode: fileMode.mode) }
        if let svg { try AtomicFile.write(Data(try SweepSVG.render(sweep).utf8), to: svg, mode: fileMode.mode) }
        if json {
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        } else {
            print(SweepReport.table(sweep), terminator: "")
        }
        // Everything is written; a point whose storm ran outside its placement fails the sweep.
        if points.contains(where: { $0.check == .outside }) { throw ExitCode(1) }
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
    static func measure(_ stress: StressOptions, placement: Placement, confinement: ConfinementPlan) throws -> SweepRun {
        var options = RecordOptions()
        options.selection = .mount
        options.bpf.filterByMountPath = true
        options.bpf.filterByLockAddress = true
        options.bpf.learnKernelDataLocks = true
        let cpuset = try confinement.cpusetParent.map { try CPUSetV1Child(parent: $0, cpus: placement.cpus) }
        let recorder: Recorder
        do {
            recorder = try Recorder(options: options)
            try recorder.attach()
        } catch {
            try? cpuset?.remove()
            throw error
        }
        let done = Finished()
        let thread = Thread {
            // Every worker the runner starts from this thread is born in its cpuset, or inherits its CPU affinity.
            done.set(Result {
                guard let cpuset else {
                    try CPUAffinity.confineCurrentThread(to: placement.cpus)
                    return try StressRunner(options: stress).run()
                }
                try cpuset.joinCurrentThread()
                defer { try? cpuset.leaveCurrentThread() }
                return try StressRunner(options: stress).run()
            })
        }
        thread.start()
        recorder.run(shouldStop: { done.isSet || StopSignal.requested }, status: { _ in })
        while !done.isSet { usleep(10_000) }
        let profile = recorder.finish()
        // Removed whether the storm succeeded or not (an interrupted one included); its error comes first.
        let removal = Result { try cpuset?.remove() }
        let run = SweepRun(stress: try done.get(), profile: profile)
        try removal.get()
        return run
    }

    static func load(_ path: String) throws -> Sweep {
        let data = try InputFile.read(path, label: "sweep", kind: "sweep", hint: "give a file `lockscope sweep -o` wrote")
        struct Schema: Decodable { var schema: String }
        do {
            // The schema first: a sweep of an older lockscope is named as such, not as a broken file.
            let schema = try Profile.makeDecoder().decode(Schema.self, from: data).schema
            guard schema == Sweep.currentSchema else {
                throw UserError("\(path) is a \(schema) file, not \(Sweep.currentSchema): give a file this lockscope's `sweep -o` wrote (rerun the sweep)")
            }
            return try Profile.makeDecoder().decode(Sweep.self, from: data)
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
    /// The run's values from what stress reported (set-up latency, mount ops, failures) and what was
    /// recorded while it ran (see `SweepRun.init(profile:containers:...)`).
    init(stress: StressResult, profile: Profile) {
        let containers = SweepRun.stormContainers(in: profile, ids: stress.containerList.map(\.id),
                                                  cgroups: stress.containerList.compactMap(\.cgroup))
        self.init(profile: profile, containers: containers, setupP50: stress.setupP50Milliseconds,
                  setupP99: stress.setupP99Milliseconds, mountOps: stress.mountOps, wallMilliseconds: stress.wallMilliseconds,
                  failures: stress.failures)
    }
}
