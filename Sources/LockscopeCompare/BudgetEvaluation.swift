import LockscopeCore

/// One budget limit of one lock, held against a profile.
public struct BudgetFinding: Sendable, Equatable {
    public enum Status: String, Sendable {
        case within, exceeded
        /// A percentile of too few waits (`minContentions`, and 100 for p99, 1000 for p99.9): not judged.
        case notEnoughData = "not_enough_data"
        /// The budget names the lock, but the profile has no contention on it: passes.
        case absent
    }

    public var lock: String
    public var metric: Metric
    /// In the metric's unit; 0 for an absent lock.
    public var value: Double
    public var limit: Double
    public var contentions: UInt64
    public var status: Status
}

/// One container's mount-family syscalls against `mounts.ops_per_container`.
public struct MountOpsFinding: Sendable, Equatable {
    public var container: String
    public var runtime: String
    public var ops: UInt64
    public var limit: Double
    public var exceeded: Bool { Double(ops) > limit }
}

/// A profile held to a budget.
///
/// Lock limits apply to locks matched by name (duplicates merged as in comparisons). Percentile
/// limits (p50, p99, p999) are not judged below `minContentions` waits, nor p99 below 100 and p999
/// below 1000 (`Metric.minimumSamples`); max, total and rate are exact and always judged. `ops_per_container` applies to each entry of `mounts.by_container` that is a
/// container: the host, plain cgroups and unknown (vanished) cgroups are not held to it.
public struct BudgetEvaluation: Sendable {
    /// Runtimes in `mounts.by_container` that are not one container.
    static let runtimesThatAreNotContainers: Set<String> = ["host", "cgroup", "unknown"]

    public var source: String
    /// Percentile limits of locks with fewer contentions (or fewer than `Metric.minimumSamples`) are not judged.
    public var minContentions: UInt64
    /// Every lock the budget names and, with a `*` entry, every contended lock; by name, then metric.
    public var locks: [BudgetFinding]
    /// By container id.
    public var mounts: [MountOpsFinding]
    /// Why some findings are what they are: locks the budget names that the profile lacks.
    public var notes: [String]

    /// Holds `profile` (read from `profileSource`) to `budget` (read from `source`). `lockNames`
    /// restricts the locks judged, as `--locks` does.
    public init(budget: Budget, source: String, profile: Profile, profileSource: String,
                minContentions: UInt64, lockNames: [String]?) throws {
        try profile.requireDuration(source: profileSource)
        self.source = source
        self.minContentions = minContentions
        let stats = Subject.stats(in: profile, grouping: .lock, labels: LockLabels([profile]))
        let spins = Subject.spin(in: profile, grouping: .lock, labels: LockLabels([profile]))
        let contended = Set(stats.keys.map(\.lock))
        // A budget names a lock by its label or, covering each of its kinds, by its name alone.
        let named = budget.locks.keys.filter { $0 != Budget.anyLock }
        func isNamed(_ label: String, in names: some Sequence<String>) -> Bool {
            names.contains { LockLabels.label(label, isNamed: $0) }
        }
        var names = contended.union(named.filter { key in !contended.contains { LockLabels.label($0, isNamed: key) } })
        if budget.locks[Budget.anyLock] == nil { names = names.filter { isNamed($0, in: named) } }
        if let lockNames { names = names.filter { isNamed($0, in: lockNames) } }
        locks = names.sorted().flatMap { name in
            let lockStats = stats[Subject(lock: name)]
            return budget.limits(forLock: name).sorted { $0.key < $1.key }.map { metric, limit in
                let spinNs = spins[Subject(lock: name)]?.ns ?? 0
                let value = lockStats.map { metric.value(of: $0, spinNs: spinNs, durationNs: profile.durationNs) } ?? 0
                let contentions = lockStats?.contentions ?? 0
                let status: BudgetFinding.Status
                if lockStats == nil {
                    status = .absent
                } else if metric.isPercentile && contentions < metric.requiredContentions(minContentions: minContentions) {
                    status = .notEnoughData
                } else {
                    status = value > limit ? .exceeded : .within
                }
                return BudgetFinding(lock: name, metric: metric, value: value, limit: limit, contentions: contentions,
                                     status: status)
            }
        }
        if let limit = budget.mountOpsPerContainer {
            guard let accounting = profile.mounts else {
                throw UserError("\(profileSource) has no mount accounting (no \"mounts\" section), so \(source) cannot check mounts.\(Budget.opsPerContainerKey): record with a lockscope that accounts mount syscalls, or remove \"mounts\" from the budget")
            }
            mounts = accounting.byContainer
                .filter { !BudgetEvaluation.runtimesThatAreNotContainers.contains($0.runtime) }
                .sorted { $0.id < $1.id }
                .map { MountOpsFinding(container: $0.id, runtime: $0.runtime, ops: $0.ops, limit: limit) }
        } else {
            mounts = []
        }
        let absent = Set(locks.filter { $0.status == .absent }.map(\.lock)).sorted()
        let known = contended.sorted()
        let knownList = known.count > 8 ? known.prefix(8).joined(separator: ", ") + ", …" : known.joined(separator: ", ")
        notes = absent.map { name in
            "\(name) is not in \(profileSource): no contention was recorded on it, so its limits pass (check the spelling; the profile's locks: \(known.isEmpty ? "none" : knownList))"
        }
    }

    /// The contentions a lock needs for a percentile limit to be judged.
    public func requiredContentions(for metric: Metric) -> UInt64 {
        metric.requiredContentions(minContentions: minContentions)
    }

    public var passed: Bool { !locks.contains { $0.status == .exceeded } && !mounts.contains(where: \.exceeded) }

    /// Lock limits and container limits exceeded.
    public var exceededCount: Int { locks.filter { $0.status == .exceeded }.count + mounts.filter(\.exceeded).count }

    /// Lock limits and container limits checked, absent and unjudged ones included.
    public var limitCount: Int { locks.count + mounts.count }
}
