import Foundation

/// What a sweep measures at each point, from the storm's own report and the recording made during it.
public enum SweepMetric: String, CaseIterable, Codable, Sendable {
    case setupP50 = "setup_p50_ms"
    case setupP99 = "setup_p99_ms"
    case namespaceSemWait = "namespace_sem_wait_ms"
    case mountLockWait = "mount_lock_wait_ms"
    case mountOpsPerSecond = "mount_ops_per_second"
    /// Sampled on-CPU spinning attributed to the lock (`record --spin-hz`), as estimated CPU time.
    case namespaceSemSpin = "namespace_sem_spin_ms"
    case mountLockSpin = "mount_lock_spin_ms"

    public var label: String {
        switch self {
        case .setupP50: "set-up p50"
        case .setupP99: "set-up p99"
        case .namespaceSemWait: "namespace_sem wait"
        case .mountLockWait: "mount_lock wait"
        case .mountOpsPerSecond: "mount ops/s"
        case .namespaceSemSpin: "namespace_sem spin"
        case .mountLockSpin: "mount_lock spin"
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
    /// How many waits of the storm's containers those CPUs come from: none leaves nothing checked.
    public var waitsChecked: UInt64
    /// Waits the recording summed under `[other containers]` (cgroups past the aggregator's cap, which may
    /// be the storm's), by the CPU they were taken on: those outside the placement cannot be checked.
    public var otherContainersWaitsByCpu: [String: UInt64]
    public var failures: Int

    public init(values: [SweepMetric: Double], cpusSeen: [Int], waitsChecked: UInt64,
                otherContainersWaitsByCPU: [Int: UInt64] = [:], failures: Int) {
        self.values = Dictionary(uniqueKeysWithValues: values.map { ($0.key.rawValue, $0.value) })
        self.cpusSeen = cpusSeen.sorted()
        self.waitsChecked = waitsChecked
        self.otherContainersWaitsByCpu = Dictionary(uniqueKeysWithValues: otherContainersWaitsByCPU.map { (String($0.key), $0.value) })
        self.failures = failures
    }

    /// Waits under `[other containers]` taken on a CPU outside `allowed`: they may be the storm's.
    public func uncheckedWaits(outside allowed: Set<Int>) -> UInt64 {
        otherContainersWaitsByCpu.filter { Int($0.key).map { !allowed.contains($0) } ?? true }.values.reduce(0, &+)
    }

    public func value(_ metric: SweepMetric) -> Double { values[metric.rawValue] ?? 0 }
}

extension SweepRun {
    /// A run from the storm's own figures and what was recorded while it ran, counting only the storm's
    /// `containers` (other processes on the machine may take the same locks meanwhile): lock wait (the
    /// containers' waits) and sampled spin (their samples, as estimated CPU time) on namespace_sem (with
    /// its wait_lock) and mount_lock; the CPUs of every wait of those containers, and the waits summed
    /// under `[other containers]` (past the aggregator's cap) by the CPU they were taken on.
    public init(profile: Profile, containers: Set<String>, setupP50: Double, setupP99: Double, mountOps: Int,
                wallMilliseconds: Double, failures: Int) {
        var wait: [MountLockClass: UInt64] = [:]
        var spin: [MountLockClass: UInt64] = [:]
        var cpus = Set<Int>()
        var checked: UInt64 = 0
        var others: [Int: UInt64] = [:]
        for lock in profile.locks {
            let lockClass = MountLockClass(lockName: lock.name)
            for stack in lock.stacks {
                for context in stack.contexts {
                    if containers.contains(context.container) {
                        cpus.insert(context.cpu)
                        checked &+= context.count
                        wait[lockClass, default: 0] = wait[lockClass, default: 0].addingSaturated(context.totalWaitNs)
                    } else if context.container == Aggregator.otherContainersKey {
                        others[context.cpu, default: 0] &+= context.count
                    }
                }
            }
            if let sampled = lock.spin {
                let samples = sampled.byContainer.filter { containers.contains($0.key) }.map(\.samples).saturatedSum()
                let (product, overflow) = samples.multipliedReportingOverflow(by: sampled.periodNs)
                spin[lockClass, default: 0] = spin[lockClass, default: 0].addingSaturated(overflow ? .max : product)
            }
        }
        func ms(_ ns: UInt64?) -> Double { Double(ns ?? 0) / 1e6 }
        let seconds = wallMilliseconds / 1000
        self.init(values: [.setupP50: setupP50, .setupP99: setupP99,
                           .namespaceSemWait: ms(wait[.namespaceSem]), .mountLockWait: ms(wait[.mountLock]),
                           .mountOpsPerSecond: seconds > 0 ? Double(mountOps) / seconds : 0,
                           .namespaceSemSpin: ms(spin[.namespaceSem]), .mountLockSpin: ms(spin[.mountLock])],
                  cpusSeen: Array(cpus), waitsChecked: checked, otherContainersWaitsByCPU: others, failures: failures)
    }

    /// The storm's containers in a profile: those it started (`ids`), and every container the profile
    /// found in a cgroup below the storm's own directories (the first component of the `cgroups` it
    /// made, `/lockscope-stress-<hex>`), such as the runtime's cgroup a containerd-shaped storm mounts from.
    public static func stormContainers(in profile: Profile, ids: [String], cgroups: [String]) -> Set<String> {
        let roots = Set(cgroups.compactMap { $0.split(separator: "/").first.map { "/\($0)/" } })
        return Set(ids).union(profile.containers.filter { summary in roots.contains { summary.cgroup.hasPrefix($0) } }.map(\.id))
    }
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

/// What the recording says of a point's placement.
public enum PlacementCheck: String, Codable, Sendable, Equatable {
    /// Every run recorded waits of the storm's containers, all on the placement's CPUs, and no wait
    /// that could be theirs (past the container cap) was taken outside it.
    case confined
    /// Nothing contradicts the placement, but a run recorded no wait of the storm's containers, or waits
    /// past the container cap were taken outside the placement: the confinement is not shown.
    case unverified
    /// A wait of the storm's containers was taken on a CPU outside the placement.
    case outside
}

/// The storms at one parallelism in one placement.
public struct SweepPoint: Codable, Sendable, Equatable {
    public var placement: String
    public var parallel: Int
    public var runs: [SweepRun]
    /// Every metric's median and spread over the runs, by raw value.
    public var summary: [String: Spread]
    /// Whether every run's waits were taken on the placement's CPUs only, from the recording.
    public var check: PlacementCheck
    /// Waits summed under `[other containers]` on CPUs outside the placement, over the runs: not checked.
    public var uncheckedWaits: UInt64

    public init(placement: Placement, parallel: Int, runs: [SweepRun]) {
        self.placement = placement.name
        self.parallel = parallel
        self.runs = runs
        summary = Dictionary(uniqueKeysWithValues: SweepMetric.allCases.map { metric in
            (metric.rawValue, Spread(runs.map { $0.value(metric) }))
        })
        let allowed = Set(placement.cpus)
        uncheckedWaits = runs.map { $0.uncheckedWaits(outside: allowed) }.reduce(0, &+)
        if !runs.allSatisfy({ Set($0.cpusSeen).isSubset(of: allowed) }) {
            check = .outside
        } else if runs.isEmpty || runs.contains(where: { $0.waitsChecked == 0 }) || uncheckedWaits > 0 {
            check = .unverified
        } else {
            check = .confined
        }
    }

    /// The CPUs of every run's checked waits.
    public var cpusSeen: [Int] { Set(runs.flatMap(\.cpusSeen)).sorted() }

    public func spread(_ metric: SweepMetric) -> Spread { summary[metric.rawValue] ?? Spread([]) }
}

/// A placement × parallelism sweep: `lockscope sweep`'s result.
public struct Sweep: Codable, Sendable, Equatable {
    public static let currentSchema = "lockscope.sweep/2"

    public var schema = Sweep.currentSchema
    public var hostname: String
    public var kernel: String
    public var startedAt: String
    public var topology: Topology?
    /// How the storm's workers were confined to a placement's CPUs: `cpuset-v1` (a cgroup v1 cpuset
    /// child the thread that starts them joins, which every worker inherits) or `affinity`
    /// (sched_setaffinity on that thread, inherited likewise). See `ConfinementPlan`.
    public var confinement: ConfinementMethod
    /// The storm at every point: `lockscope stress` with these options and the point's `--parallel`.
    public var workload: String
    public var placements: [Placement]
    public var points: [SweepPoint]

    public init(hostname: String, kernel: String, startedAt: String, topology: Topology?, confinement: ConfinementMethod,
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

/// Two sweeps compared point by point (`lockscope sweep --compare`): every metric's spread before and
/// after, a change flagged only when each median lies outside the other's spread, and the points only
/// one sweep has.
public struct SweepComparison: Codable, Sendable, Equatable {
    public static let currentSchema = "lockscope.sweep-comparison/1"

    /// Which way a metric moved: `unchanged` when either median lies inside the other's spread.
    public enum Change: String, Codable, Sendable, Equatable {
        case unchanged, higher, lower
    }

    public struct MetricChange: Codable, Sendable, Equatable {
        public var metric: String
        public var before: Spread
        public var after: Spread
        public var change: Change
    }

    public struct Row: Codable, Sendable, Equatable {
        public var placement: String
        public var parallel: Int
        public var metrics: [MetricChange]
    }

    public struct PointKey: Codable, Sendable, Equatable {
        public var placement: String
        public var parallel: Int
    }

    public struct Side: Codable, Sendable, Equatable {
        public var hostname: String
        public var startedAt: String
        public var runsPerPoint: Int
    }

    public var schema = SweepComparison.currentSchema
    public var before: Side
    public var after: Side
    public var rows: [Row]
    public var onlyBefore: [PointKey]
    public var onlyAfter: [PointKey]

    public init(before: Sweep, after: Sweep) {
        func side(_ sweep: Sweep) -> Side {
            Side(hostname: sweep.hostname, startedAt: sweep.startedAt, runsPerPoint: sweep.points.map(\.runs.count).max() ?? 0)
        }
        func sorted(_ points: [SweepPoint]) -> [SweepPoint] {
            points.sorted { ($0.placement, $0.parallel) < ($1.placement, $1.parallel) }
        }
        func matching(_ point: SweepPoint, in sweep: Sweep) -> SweepPoint? {
            sweep.points.first { $0.placement == point.placement && $0.parallel == point.parallel }
        }
        self.before = side(before)
        self.after = side(after)
        rows = sorted(before.points).compactMap { point in
            guard let later = matching(point, in: after) else { return nil }
            return Row(placement: point.placement, parallel: point.parallel, metrics: SweepMetric.allCases.map { metric in
                let (a, b) = (point.spread(metric), later.spread(metric))
                return MetricChange(metric: metric.rawValue, before: a, after: b, change: Self.change(a, b))
            })
        }
        onlyBefore = sorted(before.points).filter { matching($0, in: after) == nil }.map { PointKey(placement: $0.placement, parallel: $0.parallel) }
        onlyAfter = sorted(after.points).filter { matching($0, in: before) == nil }.map { PointKey(placement: $0.placement, parallel: $0.parallel) }
    }

    /// Higher or lower only when the after median lies outside the before spread and the before median
    /// outside the after spread: runs that overlap are not a change.
    public static func change(_ before: Spread, _ after: Spread) -> Change {
        if after.median > before.max && before.median < after.min { return .higher }
        if after.median < before.min && before.median > after.max { return .lower }
        return .unchanged
    }
}
