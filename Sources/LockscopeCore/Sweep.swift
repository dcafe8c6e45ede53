import Foundation

/// What a sweep measures at each point, from the storm's own report and the recording made during it.
public enum SweepMetric: String, CaseIterable, Codable, Sendable {
    case setupP50 = "setup_p50_ms"
    case setupP99 = "setup_p99_ms"
    case namespaceSemWait = "namespace_sem_wait_ms"
    case mountLockWait = "mount_lock_wait_ms"
    case mountOpsPerSecond = "mount_ops_per_second"

    public var label: String {
        switch self {
        case .setupP50: "set-up p50"
        case .setupP99: "set-up p99"
        case .namespaceSemWait: "namespace_sem wait"
        case .mountLockWait: "mount_lock wait"
        case .mountOpsPerSecond: "mount ops/s"
        }
    }

    /// The unit the value is in.
    public var unit: String { self == .mountOpsPerSecond ? "/s" : "ms" }
}

/// One storm of a sweep, at one parallelism in one placement.
public struct SweepRun: Codable, Sendable, Equatable {
    /// The values of every `SweepMetric`, by raw value.
    public var values: [String: Double]
    /// The CPUs on which the storm's containers' lock waits were taken (from the recorded per-CPU
    /// contexts): the evidence that the placement held.
    public var cpusSeen: [Int]
    public var failures: Int

    public init(values: [SweepMetric: Double], cpusSeen: [Int], failures: Int) {
        self.values = Dictionary(uniqueKeysWithValues: values.map { ($0.key.rawValue, $0.value) })
        self.cpusSeen = cpusSeen.sorted()
        self.failures = failures
    }

    public func value(_ metric: SweepMetric) -> Double { values[metric.rawValue] ?? 0 }
}

/// A metric over a point's runs: the median and the spread.
public struct Spread: Codable, Sendable, Equatable {
    public var median: Double
    public var min: Double
    public var max: Double

    public init(median: Double, min: Double, max: Double) {
        (self.median, self.min, self.max) = (median, min, max)
    }

    public init(_ values: [Double]) {
        let sorted = values.sorted()
        if sorted.isEmpty {
            (median, min, max) = (0, 0, 0)
        } else {
            let middle = sorted.count / 2
            median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
            (min, max) = (sorted.first!, sorted.last!)
        }
    }
}

/// The storms at one parallelism in one placement.
public struct SweepPoint: Codable, Sendable, Equatable {
    public var placement: String
    public var parallel: Int
    public var runs: [SweepRun]
    /// Every metric's median and spread over the runs, by raw value.
    public var summary: [String: Spread]
    /// Whether every run's waits were taken on the placement's CPUs only.
    public var confined: Bool

    public init(placement: Placement, parallel: Int, runs: [SweepRun]) {
        self.placement = placement.name
        self.parallel = parallel
        self.runs = runs
        summary = Dictionary(uniqueKeysWithValues: SweepMetric.allCases.map { metric in
            (metric.rawValue, Spread(runs.map { $0.value(metric) }))
        })
        let allowed = Set(placement.cpus)
        confined = runs.allSatisfy { Set($0.cpusSeen).isSubset(of: allowed) }
    }

    public func spread(_ metric: SweepMetric) -> Spread { summary[metric.rawValue] ?? Spread([]) }
}

/// A placement × parallelism sweep: `lockscope sweep`'s result.
public struct Sweep: Codable, Sendable, Equatable {
    public static let currentSchema = "lockscope.sweep/1"

    public var schema = Sweep.currentSchema
    public var hostname: String
    public var kernel: String
    public var startedAt: String
    public var topology: Topology?
    /// How the storm's workers were confined to a placement's CPUs: `affinity` (sched_setaffinity on
    /// the thread that starts them, which every worker inherits).
    public var confinement: String
    /// The storm at every point: `lockscope stress` with these options and the point's `--parallel`.
    public var workload: String
    public var placements: [Placement]
    public var points: [SweepPoint]

    public init(hostname: String, kernel: String, startedAt: String, topology: Topology?, confinement: String,
                workload: String, placements: [Placement], points: [SweepPoint]) {
        self.hostname = hostname
        self.kernel = kernel
        self.startedAt = startedAt
        self.topology = topology
        self.confinement = confinement
        self.workload = workload
        self.placements = placements
        self.points = points
    }

    /// The default parallelism levels: 1, 2, 4, ... up to four times the CPUs.
    public static func defaultParallelism(cpus: Int) -> [Int] {
        var levels = [1]
        while levels.last! * 2 <= max(4 * cpus, 1) { levels.append(levels.last! * 2) }
        return levels
    }

    public func points(of placement: String) -> [SweepPoint] {
        points.filter { $0.placement == placement }.sorted { $0.parallel < $1.parallel }
    }
}
