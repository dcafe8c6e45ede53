/// The recording second by second, counted as events arrive: every wait by (second, lock, whose), every
/// mount syscall and container start by second. A wait or syscall counts in the second in which it
/// ended, so the bins add up exactly to the profile's totals. `ProfileBuilder` turns it into the
/// profile's `Timeline` once locks have names.
///
/// Whose wait it was is decided when it arrives: inside a mount syscall, outside one by a process that
/// has issued mount syscalls, or outside one by a process that has not (yet): a victim's. (The
/// profile's `victims` list is decided at the end: a process that waits first and mounts later counts
/// as a victim here until its first mount syscall.) Keys are (second, lock, whose), so memory grows
/// with seconds × locks, whatever the number of processes.
struct TimelineTally: ~Copyable {
    static let binNs: UInt64 = 1_000_000_000

    /// Whose wait it was.
    enum Waiter: UInt32 {
        case inMountSyscall = 1, mountIssuer, victim
    }

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

    /// A wait on `lock` (an aggregator lock index) that ended at `endNs`.
    @inline(__always)
    mutating func wait(endNs: UInt64, lock: Int, waiter: Waiter, ns: UInt64) {
        let slot = waits.index(of: TimelineKey(bin: bin(endNs), lock: lock, waiter: waiter), adding: .init())
        waits[slot].add(ns)
    }

    mutating func syscall(endNs: UInt64, startedContainer: Bool) {
        let second = bin(endNs)
        syscalls[second, default: (0, 0)].ops += 1
        if startedContainer { syscalls[second, default: (0, 0)].started += 1 }
    }

    /// The profile's timeline: `lockClass` sorts an aggregator lock index into namespace_sem, mount_lock
    /// or other (victims' waits count on the first two only). Nil when nothing was recorded.
    func timeline(durationNs: UInt64, lockClass: (Int) -> MountLockClass) -> Timeline? {
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
            let lock = lockClass(slot.key.lock)
            switch lock {
            case .namespaceSem: bins[index].namespaceSemWaitNs &+= tally.totalNs
            case .mountLock: bins[index].mountLockWaitNs &+= tally.totalNs
            case .other: bins[index].otherWaitNs &+= tally.totalNs
            }
            if slot.key.waiter == .victim, lock.isMountLock {
                bins[index].victimWaitNs &+= tally.totalNs
                bins[index].victimMaxWaitNs = max(bins[index].victimMaxWaitNs, tally.maxNs)
            }
        }
        return Timeline(binNs: Self.binNs, bins: bins)
    }
}

/// Which of the two mount locks a lock is, by profile name: the timeline's series, the victims' locks, a sweep's wait.
public enum MountLockClass: Sendable {
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

/// (second, lock, whose): bin << 32 | (lock + 1), and the waiter class.
struct TimelineKey: FlatTableKey {
    var binAndLock: UInt64
    var waiterClass: UInt32

    init(bin: UInt32, lock: Int, waiter: TimelineTally.Waiter) {
        binAndLock = UInt64(bin) << 32 | UInt64(UInt32(truncatingIfNeeded: lock + 1))
        waiterClass = waiter.rawValue
    }

    private init(binAndLock: UInt64, waiterClass: UInt32) {
        self.binAndLock = binAndLock
        self.waiterClass = waiterClass
    }

    static let unused = TimelineKey(binAndLock: 0, waiterClass: 0)
    var hashWord: UInt64 { binAndLock &* 4 &+ UInt64(waiterClass) }
    var bin: UInt32 { UInt32(truncatingIfNeeded: binAndLock >> 32) }
    var lock: Int { Int(UInt32(truncatingIfNeeded: binAndLock)) - 1 }
    var waiter: TimelineTally.Waiter { TimelineTally.Waiter(rawValue: waiterClass)! }
}
