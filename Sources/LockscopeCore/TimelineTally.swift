/// The recording second by second, counted as events arrive: every wait by (second, lock, process),
/// every mount syscall and container start by second. A wait or syscall counts in the second in which
/// it ended, so the bins add up exactly to the profile's totals. `ProfileBuilder` turns it into the
/// profile's `Timeline` once locks have names and the mount issuers are known (their waits are not
/// victims' waits).
struct TimelineTally: ~Copyable {
    static let binNs: UInt64 = 1_000_000_000
    /// Most (second, lock, process) entries kept; past it new processes' waits are kept without their
    /// process (as `unknownProcess`, never a victim's), so memory stays bounded on long recordings.
    static let maxEntries = 1 << 20
    /// The process key of waits inside mount syscalls (their issuers are never victims).
    static let inMountSyscall: UInt32 = 0
    static let unknownProcess = UInt32.max

    /// CLOCK_MONOTONIC at the start of the recording; the first event's time when nobody set it.
    var originNs: UInt64?
    private(set) var waits = FlatTable<TimelineKey, Aggregator.Tally>(empty: .init())
    /// Mount syscalls and container starts, by second.
    private(set) var syscalls: [UInt32: (ops: UInt64, started: UInt64)] = [:]

    init() {}

    @inline(__always)
    private mutating func bin(_ endNs: UInt64) -> UInt32 {
        let origin = originNs ?? {
            originNs = endNs
            return endNs
        }()
        return endNs <= origin ? 0 : UInt32(truncatingIfNeeded: min((endNs - origin) / Self.binNs, UInt64(UInt32.max)))
    }

    /// A wait on `lock` (an aggregator lock index) that ended at `endNs`; `pid` is `inMountSyscall` for
    /// a wait inside a mount syscall.
    @inline(__always)
    mutating func wait(endNs: UInt64, lock: Int, pid: UInt32, ns: UInt64) {
        let second = bin(endNs)
        var key = TimelineKey(bin: second, lock: lock, pid: pid)
        if waits.index(of: key) == nil, waits.count >= Self.maxEntries {
            key = TimelineKey(bin: second, lock: lock, pid: Self.unknownProcess)
        }
        let slot = waits.index(of: key, adding: .init())
        waits[slot].add(ns)
    }

    mutating func syscall(endNs: UInt64, startedContainer: Bool) {
        let second = bin(endNs)
        syscalls[second, default: (0, 0)].ops += 1
        if startedContainer { syscalls[second, default: (0, 0)].started += 1 }
    }

    /// The profile's timeline: `lockClass` sorts an aggregator lock index into namespace_sem, mount_lock
    /// or other; `isVictim` says whether a process's waits on a lock are a victim's. Nil when nothing
    /// was recorded.
    func timeline(durationNs: UInt64, lockClass: (Int) -> TimelineLockClass,
                  isVictim: (_ pid: UInt32, _ lock: Int) -> Bool) -> Timeline? {
        var last: UInt32? = syscalls.keys.max()
        waits.forEachEntry { last = max(last ?? 0, $0.key.bin) }
        guard var binCount = last.map({ Int($0) + 1 }) else { return nil }
        binCount = max(binCount, Int((durationNs + Self.binNs - 1) / Self.binNs))
        var bins = (0..<binCount).map { TimelineBin(startNs: UInt64($0) * Self.binNs) }
        for (second, counts) in syscalls {
            bins[Int(second)].mountOps += counts.ops
            bins[Int(second)].containersStarted += counts.started
        }
        waits.forEachEntry { slot in
            let index = Int(slot.key.bin)
            let tally = slot.value
            switch lockClass(slot.key.lock) {
            case .namespaceSem: bins[index].namespaceSemWaitNs &+= tally.totalNs
            case .mountLock: bins[index].mountLockWaitNs &+= tally.totalNs
            case .other: bins[index].otherWaitNs &+= tally.totalNs
            }
            let pid = slot.key.pid
            if pid != Self.inMountSyscall, pid != Self.unknownProcess, isVictim(pid, slot.key.lock) {
                bins[index].victimWaitNs &+= tally.totalNs
                bins[index].victimMaxWaitNs = max(bins[index].victimMaxWaitNs, tally.maxNs)
            }
        }
        return Timeline(binNs: Self.binNs, bins: bins)
    }
}

/// Which series of the timeline a lock's waits go to.
public enum TimelineLockClass: Sendable {
    case namespaceSem, mountLock, other

    /// namespace_sem or mount_lock: the locks whose waits make a process that mounts nothing a victim.
    public var isMountLock: Bool { self != .other }

    /// namespace_sem with its wait_lock, mount_lock, or anything else, by profile name (with or
    /// without the ` (kind)` a profile adds when kinds share a name).
    public init(lockName: String) {
        func names(_ base: String) -> Bool {
            lockName == base || lockName.hasPrefix(base + ".") || lockName.hasPrefix(base + " (")
        }
        self = names(LockNamer.namespaceSem) ? .namespaceSem : names(LockNamer.mountLock) ? .mountLock : .other
    }
}

/// (second, lock, process): bin << 32 | (lock + 1), and the pid.
struct TimelineKey: FlatTableKey {
    var binAndLock: UInt64
    var pid: UInt32

    init(bin: UInt32, lock: Int, pid: UInt32) {
        binAndLock = UInt64(bin) << 32 | UInt64(UInt32(truncatingIfNeeded: lock + 1))
        self.pid = pid
    }

    private init(binAndLock: UInt64, pid: UInt32) {
        self.binAndLock = binAndLock
        self.pid = pid
    }

    static let unused = TimelineKey(binAndLock: 0, pid: 0)
    var hashWord: UInt64 { binAndLock &* 31 &+ UInt64(pid) }
    var bin: UInt32 { UInt32(truncatingIfNeeded: binAndLock >> 32) }
    var lock: Int { Int(UInt32(truncatingIfNeeded: binAndLock)) - 1 }
}
