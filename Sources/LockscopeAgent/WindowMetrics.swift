import LockscopeCore

/// The bounds of `lockscope_lock_wait_seconds`: a fixed power-of-two series, 2^10 ns (1.024 µs) to
/// 2^34 ns (17.2 s), in seconds. They are bounds of the profile's own power-of-two histogram buckets, so
/// every profile bucket falls in exactly one Prometheus bucket: a bucket `le` = 2^k ns counts the
/// waits shorter than 2^k ns (those under 1.024 µs in the first), waits of 2^34 ns and more only in +Inf.
public enum WaitBuckets {
    public static let firstPower = 10
    public static let lastPower = 34
    public static let boundsNs: [UInt64] = (firstPower...lastPower).map { 1 << UInt64($0) }
    public static let boundsSeconds: [Double] = boundsNs.map { Double($0) / 1e9 }

    /// The index in `boundsNs` of the Prometheus bucket that holds a profile bucket `[lower, upper)`;
    /// `boundsNs.count` for +Inf only.
    public static func index(ofBucketUpTo upperNs: UInt64) -> Int {
        if upperNs <= boundsNs[0] { return 0 }
        return boundsNs.firstIndex { $0 >= upperNs } ?? boundsNs.count
    }
}

/// One (lock, kind)'s waits in a window: the profile's power-of-two buckets (merged when several locks
/// share the label) and the exact total.
public struct WaitHistogram: Equatable, Sendable {
    /// Count by the profile bucket's lower bound (its upper is twice that, 1 for the lowest).
    public var buckets: [UInt64: UInt64] = [:]
    public var totalWaitNs: UInt64 = 0

    public var count: UInt64 { buckets.values.reduce(0, +) }

    /// Per `WaitBuckets` bucket (not cumulative; the last is +Inf).
    public var counts: [UInt64] {
        var counts = [UInt64](repeating: 0, count: WaitBuckets.boundsNs.count + 1)
        for (lower, count) in buckets { counts[WaitBuckets.index(ofBucketUpTo: Self.upper(lower))] += count }
        return counts
    }

    static func upper(_ lower: UInt64) -> UInt64 { lower == 0 ? 1 : (lower >= 1 << 63 ? .max : lower * 2) }

    mutating func add(_ stats: WaitStats) {
        for bucket in stats.histogram { buckets[bucket.lowerNs, default: 0] += bucket.count }
        totalWaitNs = totalWaitNs.addingSaturated(stats.totalWaitNs)
    }

    /// A value to record `count` times.
    public struct Observation: Equatable, Sendable {
        public var seconds: Double
        public var count: UInt64
    }

    /// Values to record one by one into a Prometheus histogram (whose API takes observations, not
    /// counts) so that both its bucket counts and its `_sum` come out as this window's: the profile
    /// bucket's count of values inside each profile bucket, all at the same fraction of their bucket's
    /// width, chosen so that the values add up to `totalWaitNs` (kept within 1%...99% of the width, so no
    /// value lands on a bound; the sum is then as near as that allows).
    public func observations() -> [Observation] {
        let sorted = buckets.filter { $0.value > 0 }.sorted { $0.key < $1.key }
        var lowest = 0.0, width = 0.0
        for (lower, count) in sorted {
            lowest += Double(count) * Double(lower)
            width += Double(count) * (Double(Self.upper(lower)) - Double(lower))
        }
        let fraction = width > 0 ? min(max((Double(totalWaitNs) - lowest) / width, 0.01), 0.99) : 0.5
        return sorted.map { lower, count in
            let ns = Double(lower) + fraction * (Double(Self.upper(lower)) - Double(lower))
            return Observation(seconds: ns / 1e9, count: count)
        }
    }
}

/// What one window's profile adds to each metric: the pure half of the agent's metrics, tested without
/// a kernel or a registry. Keys are label values, already capped (`LabelCaps`).
public struct WindowMetrics: Equatable, Sendable {
    public struct LockKey: Hashable, Sendable, Comparable {
        public var lock: String
        public var kind: String
        public static func < (a: Self, b: Self) -> Bool { (a.lock, a.kind) < (b.lock, b.kind) }
    }

    public struct ContainerKey: Hashable, Sendable {
        public var container: String
        public var pod: String
    }

    public struct ContainerSyscallKey: Hashable, Sendable {
        public var container: ContainerKey
        public var syscall: String
    }

    public struct ContainerLockKey: Hashable, Sendable {
        public var container: ContainerKey
        public var lock: String
    }

    /// `lockscope_lock_wait_seconds` and `lockscope_lock_contentions_total`.
    public var lockWaits: [LockKey: WaitHistogram] = [:]
    /// `lockscope_mount_syscalls_total`, by syscall.
    public var mountSyscalls: [String: UInt64] = [:]
    /// `lockscope_container_mount_syscalls_total`.
    public var containerMountSyscalls: [ContainerSyscallKey: UInt64] = [:]
    /// `lockscope_container_lock_wait_seconds_total`, in nanoseconds.
    public var containerLockWaitNs: [ContainerLockKey: UInt64] = [:]
    /// `lockscope_events_dropped_total`, by the profile's drop key (every key, 0 included).
    public var dropped: [String: UInt64] = [:]
    /// `lockscope_cardinality_overflow_total`: label values summed under `other` in this window, by table.
    public var overflow: [String: UInt64] = [:]
    /// Containers idle long enough to be let go: their series leave /metrics.
    public var expiredContainers: [ContainerKey] = []

    public init() {}
}

/// The most distinct values a label takes at once. Values are admitted first come, first served; past
/// `capacity` the new ones are summed under `other`, and each such value is counted once per window in
/// `lockscope_cardinality_overflow_total{table}`. With `idleWindows`, a value not seen for that many
/// windows is let go (its series leave /metrics) and makes room: containers come and go for as long as the
/// agent runs. Without it a value, once admitted, stays (locks: the kernel's are few and lasting).
public struct LabelTable: Sendable {
    public static let other = "other"
    public let name: String
    public let capacity: Int
    public let idleWindows: Int?
    /// Each admitted value and the window it was last seen in.
    private var lastSeen: [String: Int] = [:]
    private var window = 0

    public init(name: String, capacity: Int, idleWindows: Int? = nil) {
        self.name = name
        self.capacity = capacity
        self.idleWindows = idleWindows
    }

    /// The label value for `value`: itself when admitted (or room is left), else nil (`other`).
    mutating func label(_ value: String) -> String? {
        if lastSeen[value] != nil || lastSeen.count < capacity {
            lastSeen[value] = window
            return value
        }
        return nil
    }

    /// Ends the window: returns the values let go for having been idle `idleWindows` windows.
    mutating func endWindow() -> [String] {
        defer { window += 1 }
        guard let idleWindows else { return [] }
        let idle = lastSeen.filter { window - $0.value >= idleWindows }.map(\.key)
        for value in idle { lastSeen[value] = nil }
        return idle
    }

    public var count: Int { lastSeen.count }
}

/// Maps each window's profile to metric increments, with the label caps kept across windows.
public struct MetricsMapper: Sendable {
    public private(set) var locks: LabelTable
    public private(set) var containers: LabelTable

    public static let locksTable = "locks"
    public static let containersTable = "containers"

    /// `containerIdleWindows`: windows after which a container that neither waited nor mounted is let go.
    public init(maxLocks: Int, maxContainers: Int, containerIdleWindows: Int? = nil) {
        locks = LabelTable(name: Self.locksTable, capacity: maxLocks)
        containers = LabelTable(name: Self.containersTable, capacity: maxContainers, idleWindows: containerIdleWindows)
    }

    /// A container's key in the table: a container and its pod are one series key, capped together.
    private static func tableKey(_ key: WindowMetrics.ContainerKey) -> String { key.container + "\u{0}" + key.pod }

    public mutating func map(_ profile: Profile) -> WindowMetrics {
        var metrics = WindowMetrics()
        var overflowed: [String: Set<String>] = [:]
        func lockLabel(_ name: String) -> String {
            if let label = locks.label(name) { return label }
            overflowed[Self.locksTable, default: []].insert(name)
            return LabelTable.other
        }
        let pods = Dictionary(profile.containers.map { ($0.id, $0.pod ?? "") }, uniquingKeysWith: { a, _ in a })
        func containerKey(_ id: String, pod: String) -> WindowMetrics.ContainerKey {
            let key = WindowMetrics.ContainerKey(container: id, pod: pod)
            if containers.label(Self.tableKey(key)) != nil { return key }
            overflowed[Self.containersTable, default: []].insert(Self.tableKey(key))
            return .init(container: LabelTable.other, pod: LabelTable.other)
        }
        for lock in profile.locks {
            let label = lockLabel(lock.name)
            metrics.lockWaits[.init(lock: label, kind: lock.kind.rawValue), default: WaitHistogram()].add(lock.stats)
            for slice in lock.byContainer {
                let key = WindowMetrics.ContainerLockKey(container: containerKey(slice.key, pod: pods[slice.key] ?? ""), lock: label)
                metrics.containerLockWaitNs[key, default: 0] += slice.stats.totalWaitNs
            }
        }
        if let mounts = profile.mounts {
            for syscall in mounts.bySyscall { metrics.mountSyscalls[syscall.syscall, default: 0] += syscall.stats.contentions }
            for row in mounts.byContainer {
                let container = containerKey(row.id, pod: row.pod ?? pods[row.id] ?? "")
                for syscall in row.bySyscall {
                    metrics.containerMountSyscalls[.init(container: container, syscall: syscall.syscall), default: 0]
                        += syscall.stats.contentions
                }
            }
        }
        for key in Drops.CodingKeys.allCases { metrics.dropped[key.profileKey] = profile.drops.value(of: key) }
        for table in [Self.locksTable, Self.containersTable] { metrics.overflow[table] = UInt64(overflowed[table]?.count ?? 0) }
        _ = locks.endWindow()
        metrics.expiredContainers = containers.endWindow().map { key in
            let parts = key.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false)
            return WindowMetrics.ContainerKey(container: String(parts[0]), pod: parts.count > 1 ? String(parts[1]) : "")
        }
        return metrics
    }
}
