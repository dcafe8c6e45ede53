import Foundation
import LockscopeCore

/// The victims of two profiles side by side: their total wait, matched by process name without the
/// pid (`systemd[1]` and `kubelet[1190]` are `systemd` and `kubelet`; pids change between recordings).
/// Several victims of one name in a profile are added up. Shown, not judged: victims are what a storm
/// cost, not a limit of their own.
public struct VictimComparison: Codable, Sendable, Equatable {
    public var process: String
    /// Victims of that name in each profile.
    public var baseProcesses: Int
    public var currentProcesses: Int
    public var baseTotalWaitNs: UInt64
    public var currentTotalWaitNs: UInt64
    public var baseMaxWaitNs: UInt64
    public var currentMaxWaitNs: UInt64

    /// The change of total wait in percent of the baseline; nil when the baseline had none.
    public var changePercent: Double?

    public var deltaNs: Double { Double(currentTotalWaitNs) - Double(baseTotalWaitNs) }

    private enum CodingKeys: String, CodingKey {
        case process, baseProcesses = "base_processes", currentProcesses = "current_processes",
             baseTotalWaitNs = "base_total_wait_ns", currentTotalWaitNs = "current_total_wait_ns",
             baseMaxWaitNs = "base_max_wait_ns", currentMaxWaitNs = "current_max_wait_ns", changePercent = "change_percent"
    }

    /// `systemd[1]` → `systemd`; a name without a pid as it is.
    static func name(_ process: String) -> String {
        guard let match = process.wholeMatch(of: /(.+)\[[0-9]+\]/) else { return process }
        return String(match.1)
    }

    /// Every victim name of either profile, most total wait in either first, then by name; empty when
    /// neither profile lists victims.
    static func match(base: [Victim], current: [Victim]) -> [VictimComparison] {
        var rows: [String: VictimComparison] = [:]
        func add(_ victims: [Victim], isBase: Bool) {
            for victim in victims {
                let name = name(victim.process)
                var row = rows[name] ?? VictimComparison(process: name, baseProcesses: 0, currentProcesses: 0, baseTotalWaitNs: 0,
                                                         currentTotalWaitNs: 0, baseMaxWaitNs: 0, currentMaxWaitNs: 0,
                                                         changePercent: nil)
                if isBase {
                    row.baseProcesses += 1
                    row.baseTotalWaitNs = row.baseTotalWaitNs.addingSaturated(victim.totalWaitNs)
                    row.baseMaxWaitNs = max(row.baseMaxWaitNs, victim.maxWaitNs)
                } else {
                    row.currentProcesses += 1
                    row.currentTotalWaitNs = row.currentTotalWaitNs.addingSaturated(victim.totalWaitNs)
                    row.currentMaxWaitNs = max(row.currentMaxWaitNs, victim.maxWaitNs)
                }
                rows[name] = row
            }
        }
        add(base, isBase: true)
        add(current, isBase: false)
        for (name, row) in rows where row.baseTotalWaitNs > 0 {
            rows[name]?.changePercent = row.deltaNs / Double(row.baseTotalWaitNs) * 100
        }
        return rows.values.sorted { a, b in
            let (x, y) = (max(a.baseTotalWaitNs, a.currentTotalWaitNs), max(b.baseTotalWaitNs, b.currentTotalWaitNs))
            return x != y ? x > y : a.process < b.process
        }
    }
}

/// The container starts of two profiles: their lock wait per start and the worst start's, compared
/// when both profiles recorded starts (containers are not matched one to one: their ids change).
public struct StartComparison: Codable, Sendable, Equatable {
    public struct Side: Codable, Sendable, Equatable {
        public var starts: Int
        /// Lock wait inside the starts' mount syscalls, per start.
        public var meanLockWaitNs: Double
        /// The start that waited longest.
        public var maxLockWaitNs: UInt64
        /// The mean share of set-up that was lock wait, over the starts with a set-up time; nil without any.
        public var meanWaitShare: Double?

        private enum CodingKeys: String, CodingKey {
            case starts, meanLockWaitNs = "mean_lock_wait_ns", maxLockWaitNs = "max_lock_wait_ns", meanWaitShare = "mean_wait_share"
        }

        /// Nil when the profile recorded no start.
        init?(_ profile: Profile) {
            let starts = (profile.mounts?.byContainer ?? []).compactMap(\.start)
            guard !starts.isEmpty else { return nil }
            self.starts = starts.count
            meanLockWaitNs = starts.reduce(0) { $0 + Double($1.lockWaitNs) } / Double(starts.count)
            maxLockWaitNs = starts.map(\.lockWaitNs).max() ?? 0
            let shares = starts.compactMap(\.waitShare)
            meanWaitShare = shares.isEmpty ? nil : shares.reduce(0, +) / Double(shares.count)
        }
    }

    public var base: Side
    public var current: Side

    /// Nil unless both profiles recorded container starts.
    init?(base: Profile, current: Profile) {
        guard let base = Side(base), let current = Side(current) else { return nil }
        self.base = base
        self.current = current
    }
}
