/// The parts of a profile about what the mount storm was *for* and who suffered from it: how each
/// container's waits were attributed, each container's start, the victims, and a per-second timeline.
/// They are filled from the mount-family syscalls' paths (`MountAttribution`).

/// How a container's mount syscalls, and the lock waits inside them, were tied to it.
public enum Attribution: String, Codable, Sendable, CaseIterable {
    /// The waiter's own cgroup names the container (the process runs inside it).
    case cgroup
    /// The syscall's paths name it: the overlay mounted on `.../io.containerd.runtime.v2.task/<ns>/<id>/rootfs`,
    /// and the idmap syscalls linked to that overlay through the `ovl-idmapped` directory they share.
    case mountPath = "mount-path"
    /// Only the issuing process says whom it works for: a containerd shim's `-id` names the pod.
    case issuer
}

/// One container's start, from its first mount syscall until its root filesystem was mounted.
public struct ContainerStart: Codable, Sendable, Equatable {
    /// The first mount syscall for the container began this long after the recording started.
    public var firstSyscallNs: UInt64
    /// From the first mount syscall's start until the overlay was mounted on its rootfs; nil when the
    /// rootfs was not mounted during the recording.
    public var setupNs: UInt64?
    /// Time spent inside the set-up's mount syscalls (those that ended by the time the overlay was
    /// mounted: not the unmounts after it; latencies summed, so concurrent ones overlap).
    public var inSyscallsNs: UInt64
    /// Lock wait inside those syscalls.
    public var lockWaitNs: UInt64
    /// That wait by lock, most first.
    public var byLock: [LockWaitShare]

    public init(firstSyscallNs: UInt64, setupNs: UInt64?, inSyscallsNs: UInt64, lockWaitNs: UInt64,
                byLock: [LockWaitShare]) {
        self.firstSyscallNs = firstSyscallNs
        self.setupNs = setupNs
        self.inSyscallsNs = inSyscallsNs
        self.lockWaitNs = lockWaitNs
        self.byLock = byLock
    }

    /// The share of the set-up that was lock wait (0...1, capped: concurrent syscalls of one container
    /// can wait longer in sum than the set-up took); nil without a set-up time.
    public var waitShare: Double? {
        guard let setupNs, setupNs > 0 else { return nil }
        return min(1, Double(lockWaitNs) / Double(setupNs))
    }
}

/// Wait on one lock (by its profile name), as part of something larger.
public struct LockWaitShare: Codable, Sendable, Equatable {
    public var lock: String
    public var contentions: UInt64
    public var totalWaitNs: UInt64
    public var maxWaitNs: UInt64

    public init(lock: String, contentions: UInt64, totalWaitNs: UInt64, maxWaitNs: UInt64) {
        self.lock = lock
        self.contentions = contentions
        self.totalWaitNs = totalWaitNs
        self.maxWaitNs = maxWaitNs
    }
}

/// A process that issued no mount-family syscall during the recording but waited on namespace_sem or
/// mount_lock: a mount table reader (systemd, kubelet, cadvisor), a health check. Its waits on them are
/// what the storm cost others.
public struct Victim: Codable, Sendable, Equatable {
    /// `comm[pid]`, as in `by_process`.
    public var process: String
    public var container: String
    public var contentions: UInt64
    public var totalWaitNs: UInt64
    public var maxWaitNs: UInt64
    /// Its waits by lock, most first.
    public var byLock: [LockWaitShare]
    /// The mount-issuing processes (shims, runtimes) that held the lock when it began waiting, where
    /// the owner could be read (mutexes and rwsem writers), most first.
    public var holders: [Holder]

    public init(process: String, container: String, contentions: UInt64, totalWaitNs: UInt64, maxWaitNs: UInt64,
                byLock: [LockWaitShare], holders: [Holder]) {
        self.process = process
        self.container = container
        self.contentions = contentions
        self.totalWaitNs = totalWaitNs
        self.maxWaitNs = maxWaitNs
        self.byLock = byLock
        self.holders = holders
    }
}

/// A lock holder a victim waited behind.
public struct Holder: Codable, Sendable, Equatable {
    /// `comm[pid]` of the holder.
    public var process: String
    /// The holder's container: for a runtime shim that names its pod (containerd's `-id`), the pod,
    /// `pod:<sandbox id>`, since one shim mounts for every container of its pod; else its cgroup's
    /// container (`host`, a service's cgroup path, or a container id).
    public var container: String
    public var contentions: UInt64
    public var totalWaitNs: UInt64

    public init(process: String, container: String, contentions: UInt64, totalWaitNs: UInt64) {
        self.process = process
        self.container = container
        self.contentions = contentions
        self.totalWaitNs = totalWaitNs
    }
}

/// The recording second by second.
public struct Timeline: Codable, Sendable, Equatable {
    /// Width of a bin (one second).
    public var binNs: UInt64
    /// Consecutive bins from the start of the recording, none left out (empty seconds are zeros).
    public var bins: [TimelineBin]

    public init(binNs: UInt64, bins: [TimelineBin]) {
        self.binNs = binNs
        self.bins = bins
    }
}

/// One second of the recording. A wait or syscall is in the bin in which it ended.
public struct TimelineBin: Codable, Sendable, Equatable {
    /// Offset of the bin from the start of the recording.
    public var startNs: UInt64
    /// Containers whose root filesystem was mounted.
    public var containersStarted: UInt64
    /// Mount-family syscalls that completed.
    public var mountOps: UInt64
    /// Wait on namespace_sem (with its wait_lock), on mount_lock, and on every other lock.
    public var namespaceSemWaitNs: UInt64
    public var mountLockWaitNs: UInt64
    public var otherWaitNs: UInt64
    /// Wait on namespace_sem and mount_lock, and the longest, of processes that had issued no mount
    /// syscall so far (`Victim`; a process that mounts later counts here until it does).
    public var victimWaitNs: UInt64
    public var victimMaxWaitNs: UInt64

    public init(startNs: UInt64, containersStarted: UInt64 = 0, mountOps: UInt64 = 0, namespaceSemWaitNs: UInt64 = 0,
                mountLockWaitNs: UInt64 = 0, otherWaitNs: UInt64 = 0, victimWaitNs: UInt64 = 0,
                victimMaxWaitNs: UInt64 = 0) {
        self.startNs = startNs
        self.containersStarted = containersStarted
        self.mountOps = mountOps
        self.namespaceSemWaitNs = namespaceSemWaitNs
        self.mountLockWaitNs = mountLockWaitNs
        self.otherWaitNs = otherWaitNs
        self.victimWaitNs = victimWaitNs
        self.victimMaxWaitNs = victimMaxWaitNs
    }

    /// Every lock's wait in the bin.
    public var totalWaitNs: UInt64 { namespaceSemWaitNs.addingSaturated(mountLockWaitNs).addingSaturated(otherWaitNs) }
}
