import LockscopeCore

/// `lockscope top`: totals since the recording started, read at one instant. Two readings a second
/// apart give the last second (`LiveWindow`).
public struct LiveSample: Sendable, Equatable {
    public var elapsedNs: UInt64
    /// Waits recorded (each an event or a drop) and mount-family syscalls completed.
    public var waits: UInt64
    public var mountSyscalls: UInt64
    public var dropped: UInt64
    /// Every lock's totals.
    public var locks: [LiveLock]
    /// Waits by container, when the source breaks them down.
    public var containers: [LiveContainer]?
    /// Mount-family syscalls by name, when the source breaks them down.
    public var mountsBySyscall: [String: UInt64]?

    public init(elapsedNs: UInt64, waits: UInt64, mountSyscalls: UInt64, dropped: UInt64, locks: [LiveLock],
                containers: [LiveContainer]? = nil, mountsBySyscall: [String: UInt64]? = nil) {
        self.elapsedNs = elapsedNs
        self.waits = waits
        self.mountSyscalls = mountSyscalls
        self.dropped = dropped
        self.locks = locks
        self.containers = containers
        self.mountsBySyscall = mountsBySyscall
    }

    /// Everything a profile built so far holds: every lock, container and mount syscall.
    public init(profile: Profile, elapsedNs: UInt64) {
        self.init(elapsedNs: elapsedNs, waits: profile.locks.map(\.stats.contentions).saturatedSum(),
                  mountSyscalls: profile.mounts?.totalOps ?? 0, dropped: profile.dropped,
                  locks: profile.locks.map { LiveLock(name: $0.name, kind: $0.kind, stats: $0.stats) },
                  containers: profile.containers.map {
                      LiveContainer(id: $0.id, pod: $0.pod, contentions: $0.contentions, totalWaitNs: $0.totalWaitNs)
                  },
                  mountsBySyscall: profile.mounts.map { mounts in
                      Dictionary(mounts.bySyscall.map { ($0.syscall, $0.stats.contentions) }, uniquingKeysWith: { $0.addingSaturated($1) })
                  })
    }
}

/// One lock's totals so far. `contentions` and the longest wait are unknown (nil) when the source
/// only reports the wait.
public struct LiveLock: Sendable, Equatable {
    public var name: String
    public var kind: LockKind?
    public var contentions: UInt64?
    public var totalWaitNs: UInt64
    public var maxWaitNs: UInt64?
    public var histogram: [HistogramBucket]

    public init(name: String, kind: LockKind?, contentions: UInt64?, totalWaitNs: UInt64, maxWaitNs: UInt64?,
                histogram: [HistogramBucket] = []) {
        self.name = name
        self.kind = kind
        self.contentions = contentions
        self.totalWaitNs = totalWaitNs
        self.maxWaitNs = maxWaitNs
        self.histogram = histogram
    }

    public init(name: String, kind: LockKind, stats: WaitStats) {
        self.init(name: name, kind: kind, contentions: stats.contentions, totalWaitNs: stats.totalWaitNs,
                  maxWaitNs: stats.maxWaitNs, histogram: stats.histogram)
    }

    var key: String { kind.map { "\(name) (\($0.rawValue))" } ?? name }
}

/// One container's waits so far.
public struct LiveContainer: Sendable, Equatable {
    public var id: String
    public var pod: String?
    public var contentions: UInt64
    public var totalWaitNs: UInt64

    public init(id: String, pod: String?, contentions: UInt64, totalWaitNs: UInt64) {
        self.id = id
        self.pod = pod
        self.contentions = contentions
        self.totalWaitNs = totalWaitNs
    }
}

/// The order of the lock rows; each has its key in `top`.
public enum LiveSort: String, CaseIterable, Sendable {
    case wait, contentions, max

    /// The key that selects it.
    public var key: Character {
        switch self {
        case .wait: "w"
        case .contentions: "c"
        case .max: "m"
        }
    }

    public init?(key: Character) {
        guard let sort = LiveSort.allCases.first(where: { $0.key == key }) else { return nil }
        self = sort
    }
}

/// The last interval between two samples, per second.
public struct LiveWindow: Sendable, Equatable {
    /// One lock's waits in the interval. `maxWaitNs` is exact when the lock's longest wait ever
    /// happened in it (`maxIsExact`), else the top of the highest histogram bucket that grew.
    public struct LockRow: Sendable, Equatable {
        public var name: String
        public var kind: LockKind?
        public var contentions: UInt64?
        public var waitNs: UInt64
        public var maxWaitNs: UInt64?
        public var maxIsExact: Bool
    }

    public struct ContainerRow: Sendable, Equatable {
        public var id: String
        public var pod: String?
        public var contentions: UInt64
        public var waitNs: UInt64
    }

    public var elapsedNs: UInt64
    /// The interval's length (at least 1 ns).
    public var intervalNs: UInt64
    public var waits: UInt64
    public var mountSyscalls: UInt64
    public var dropped: UInt64
    public var droppedSoFar: UInt64
    /// Locks that waited in the interval, in no particular order (`sorted(by:)` orders them).
    public var locks: [LockRow]
    public var containers: [ContainerRow]?
    public var mountsBySyscall: [(syscall: String, count: UInt64)]?

    public static func == (a: LiveWindow, b: LiveWindow) -> Bool {
        a.elapsedNs == b.elapsedNs && a.intervalNs == b.intervalNs && a.waits == b.waits && a.locks == b.locks
            && a.mountSyscalls == b.mountSyscalls && a.dropped == b.dropped && a.containers == b.containers
            && a.mountsBySyscall?.map(\.syscall) == b.mountsBySyscall?.map(\.syscall)
            && a.mountsBySyscall?.map(\.count) == b.mountsBySyscall?.map(\.count)
    }

    /// What happened between `previous` (nil: the start of the recording) and `current`. A count that
    /// went down (it cannot, unless the source started over) counts as zero.
    public init(from previous: LiveSample?, to current: LiveSample) {
        func delta(_ now: UInt64, _ before: UInt64?) -> UInt64 { now - Swift.min(now, before ?? 0) }
        elapsedNs = current.elapsedNs
        intervalNs = Swift.max(1, delta(current.elapsedNs, previous?.elapsedNs))
        waits = delta(current.waits, previous?.waits)
        mountSyscalls = delta(current.mountSyscalls, previous?.mountSyscalls)
        dropped = delta(current.dropped, previous?.dropped)
        droppedSoFar = current.dropped
        let before = Dictionary((previous?.locks ?? []).map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        locks = current.locks.compactMap { lock in
            let earlier = before[lock.key]
            let contentions = lock.contentions.map { delta($0, earlier?.contentions) }
            let waitNs = delta(lock.totalWaitNs, earlier?.totalWaitNs)
            guard waitNs > 0 || (contentions ?? 0) > 0 else { return nil }
            let (maxWaitNs, exact) = LiveWindow.longestWait(lock, since: earlier)
            return LockRow(name: lock.name, kind: lock.kind, contentions: contentions, waitNs: waitNs,
                           maxWaitNs: maxWaitNs, maxIsExact: exact)
        }
        containers = current.containers.map { containers in
            let before = Dictionary((previous?.containers ?? []).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            return containers.compactMap { container in
                let row = ContainerRow(id: container.id, pod: container.pod,
                                       contentions: delta(container.contentions, before[container.id]?.contentions),
                                       waitNs: delta(container.totalWaitNs, before[container.id]?.totalWaitNs))
                return row.contentions > 0 || row.waitNs > 0 ? row : nil
            }.sorted { ($0.waitNs, $1.id) > ($1.waitNs, $0.id) }
        }
        mountsBySyscall = current.mountsBySyscall.map { calls in
            calls.map { ($0.key, delta($0.value, previous?.mountsBySyscall?[$0.key])) }.filter { $0.1 > 0 }
                .sorted { ($0.1, $1.0) > ($1.1, $0.0) }
        }
    }

    /// The longest wait in the interval: the lock's maximum when it rose (exact), else the top of the
    /// highest bucket whose count grew (a bound); nil when the source does not say.
    private static func longestWait(_ lock: LiveLock, since earlier: LiveLock?) -> (UInt64?, Bool) {
        guard let maxWaitNs = lock.maxWaitNs else { return (nil, false) }
        guard let earlier, let earlierMax = earlier.maxWaitNs else { return (maxWaitNs, true) }
        if maxWaitNs > earlierMax { return (maxWaitNs, true) }
        let counts = Dictionary(earlier.histogram.map { ($0.lowerNs, $0.count) }, uniquingKeysWith: +)
        let grown = lock.histogram.last { $0.count > counts[$0.lowerNs, default: 0] }
        return (grown.map { Swift.min($0.upperNs, maxWaitNs) }, false)
    }

    /// `count` in the interval as a rate per second.
    public func perSecond(_ count: UInt64) -> Double { Double(count) * 1e9 / Double(intervalNs) }

    /// The lock rows in `sort`'s order, most first (unknown values last), then by name.
    public func sortedLocks(by sort: LiveSort) -> [LockRow] {
        func value(_ row: LockRow) -> UInt64 {
            switch sort {
            case .wait: row.waitNs
            case .contentions: row.contentions ?? 0
            case .max: row.maxWaitNs ?? 0
            }
        }
        return locks.sorted { (value($0), $0.waitNs, $1.name) > (value($1), $1.waitNs, $0.name) }
    }
}

/// The text of one refresh of `lockscope top`: a header, the locks that waited in the last second,
/// the containers (and pods) that waited, the mount syscalls per second.
public struct LiveView {
    public var window: LiveWindow
    public var sort: LiveSort
    public var hostname: String
    /// Lock and container rows at most.
    public var rows: Int
    /// The key help is shown when keys work (a terminal).
    public var interactive: Bool

    public init(window: LiveWindow, sort: LiveSort, hostname: String, rows: Int, interactive: Bool) {
        self.window = window
        self.sort = sort
        self.hostname = hostname
        self.rows = rows
        self.interactive = interactive
    }

    public func render() -> [String] {
        // The key help has a line of its own: a long hostname would push it off a narrow screen.
        var lines = [header] + (interactive ? ["keys: w wait, c contentions, m max, q quit"] : [])
        lines.append("waits \(Units.rate(window.perSecond(window.waits)))  mount syscalls \(Units.rate(window.perSecond(window.mountSyscalls)))"
                     + "  dropped \(Units.rate(window.perSecond(window.dropped))) (\(window.droppedSoFar) so far)")
        lines.append("")
        lines += lockTable
        if let containers = window.containers {
            lines.append("")
            lines += containerTable(containers)
        }
        if let calls = window.mountsBySyscall, !calls.isEmpty {
            lines.append("")
            lines.append("mount syscalls/s: " + calls.map { "\(shown($0.syscall)) \(Units.rate(window.perSecond($0.count)))" }
                .joined(separator: ", "))
        }
        return lines
    }

    private var header: String {
        return "lockscope top: \(shown(hostname)), \(Units.duration(window.elapsedNs / 1_000_000_000 * 1_000_000_000)) in, "
            + "last \(Units.duration(window.intervalNs)), sorted by \(sort.rawValue)"
    }

    /// The column heading of `column`, with `*` on the sorted one.
    private func heading(_ title: String, _ column: LiveSort) -> String { column == sort ? title + "*" : title }

    private var lockTable: [String] {
        let locks = window.sortedLocks(by: sort)
        guard !locks.isEmpty else { return ["no lock waited in the last second"] }
        var table = [[heading("wait/s", .wait), heading("contended/s", .contentions), heading("max", .max), "kind", "lock"]]
        for lock in locks.prefix(rows) {
            let max = lock.maxWaitNs.map { (lock.maxIsExact ? "" : "<=") + Units.duration($0) } ?? "-"
            table.append([Units.duration(roundedFrom: window.perSecond(lock.waitNs)),
                          lock.contentions.map { Units.rate(window.perSecond($0)) } ?? "-", max,
                          lock.kind?.rawValue ?? "-", lock.name])
        }
        var lines = TextTable.render(table, rightAligned: 0..<3).split(separator: "\n").map(String.init)
        if locks.count > rows { lines.append("... \(locks.count - rows) more locks") }
        return lines
    }

    private func containerTable(_ containers: [LiveWindow.ContainerRow]) -> [String] {
        guard !containers.isEmpty else { return ["no container waited in the last second"] }
        var table = [["wait/s", "contended/s", "container", "pod"]]
        for container in containers.prefix(rows) {
            table.append([Units.duration(roundedFrom: window.perSecond(container.waitNs)),
                          Units.rate(window.perSecond(container.contentions)), ContainerName.short(container.id),
                          container.pod.map(ContainerName.short) ?? "-"])
        }
        var lines = TextTable.render(table, rightAligned: 0..<2).split(separator: "\n").map(String.init)
        if containers.count > rows { lines.append("... \(containers.count - rows) more containers") }
        return lines
    }
}
