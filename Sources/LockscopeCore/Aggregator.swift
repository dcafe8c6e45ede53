import Histogram

/// What the profile builder needs from outside the event stream.
public struct ProfileInputs {
    /// Kernel stack addresses for a stack id (innermost first), nil if unknown.
    public var stackAddresses: (Int32) -> [UInt64]?
    public var symbols: Kallsyms?
    public var layout: KernelLockLayout
    /// The container a cgroup id belongs to.
    public var container: (UInt64) -> Container
    public var hostname: String
    public var kernel: String
    public var startedAt: String
    public var durationNs: UInt64
    public var drops: Drops
    public var recording: Recording
    /// Which locks to keep in the profile.
    public var selection: LockSelection

    public init(stackAddresses: @escaping (Int32) -> [UInt64]?, symbols: Kallsyms?, layout: KernelLockLayout = .init(),
                container: @escaping (UInt64) -> Container, hostname: String, kernel: String, startedAt: String,
                durationNs: UInt64, drops: Drops, recording: Recording, selection: LockSelection = .all) {
        self.stackAddresses = stackAddresses
        self.symbols = symbols
        self.layout = layout
        self.container = container
        self.hostname = hostname
        self.kernel = kernel
        self.startedAt = startedAt
        self.durationNs = durationNs
        self.drops = drops
        self.recording = recording
        self.selection = selection
    }
}

/// Which locks a profile keeps, by name (`--locks`).
public enum LockSelection: Sendable, Equatable {
    /// Everything recorded.
    case all
    /// namespace_sem, mount_lock and every lock contended on a mount-family syscall path (the kernel
    /// filter already kept only those).
    case mount
    /// Locks with these names (and their wait_locks).
    case names(Set<String>)

    public func keeps(_ name: String) -> Bool {
        switch self {
        case .all, .mount: return true
        case .names(let names):
            return names.contains(name) || names.contains { name.hasPrefix("\($0).") }
        }
    }
}

/// Turns the stream of kernel events into per-lock statistics, then into a `Profile`.
///
/// The per-event path only updates counters and histograms keyed by raw ids (lock address, stack id,
/// CPU, cgroup id); symbolizing, naming, container lookup and roll-ups happen once, in `profile(_:)`.
public struct Aggregator {
    public private(set) var waitEvents: UInt64 = 0
    public private(set) var syscallEvents: UInt64 = 0
    let topology: Topology?
    var locks: [UInt64: LockState] = [:]
    var syscalls: [MountSyscall: SyscallState] = [:]
    var syscallsByCgroup: [UInt64: [MountSyscall: SyscallState]] = [:]

    public init(topology: Topology?) {
        self.topology = topology
    }

    struct ContextKey: Hashable {
        var cpu: UInt32
        var cgroupID: UInt64
    }

    struct Tally {
        var count: UInt64 = 0
        var totalNs: UInt64 = 0

        mutating func add(_ ns: UInt64) {
            count += 1
            totalNs &+= ns
        }
    }

    struct StackState {
        var tally = Tally()
        var maxNs: UInt64 = 0
        var contexts: [ContextKey: Tally] = [:]
    }

    struct OwnerKey: Hashable {
        var waiterCgroupID: UInt64
        var ownerCgroupID: UInt64
        var ownerPid: UInt32
    }

    struct LockState {
        var kind: LockKind
        var total = WaitAccumulator(precision: .three)
        var read = WaitAccumulator(precision: .two)
        var write = WaitAccumulator(precision: .two)
        var stacks: [Int32: StackState] = [:]
        var byCPU: [UInt32: WaitAccumulator] = [:]
        var byCgroup: [UInt64: WaitAccumulator] = [:]
        var byProcess: [UInt32: WaitAccumulator] = [:]
        var processNames: [UInt32: String] = [:]
        var lastCPU: UInt32?
        var handoffs: [Handoff: WaitAccumulator] = [:]
        var owners: [OwnerKey: Tally] = [:]
        var ownerNames: [UInt32: String] = [:]
        var outerLocks: [UInt64: UInt64] = [:]

        init(kind: LockKind) { self.kind = kind }
    }

    struct SyscallState {
        var latency = WaitAccumulator(precision: .two)
        var errors: UInt64 = 0
    }

    public mutating func record(_ event: KernelEvent) {
        switch event {
        case .wait(let wait): record(wait)
        case .syscall(let syscall): record(syscall)
        }
    }

    public mutating func record(_ event: WaitEvent) {
        waitEvents += 1
        let kind = event.kind
        locks[event.lockAddress, default: LockState(kind: kind)].record(event, kind: kind, topology: topology)
    }

    public mutating func record(_ event: SyscallEvent) {
        syscallEvents += 1
        syscalls[event.syscall, default: SyscallState()].record(event)
        syscallsByCgroup[event.cgroupID, default: [:]][event.syscall, default: SyscallState()].record(event)
    }
}

extension Aggregator.LockState {
    mutating func record(_ event: WaitEvent, kind: LockKind, topology: Topology?) {
        let ns = event.waitNs
        total.record(ns)
        if event.isRead { read.record(ns) } else { write.record(ns) }
        stacks[event.stackID, default: Aggregator.StackState()]
            .record(ns, context: Aggregator.ContextKey(cpu: event.cpu, cgroupID: event.cgroupID))
        byCPU[event.cpu, default: WaitAccumulator(precision: .two)].record(ns)
        byCgroup[event.cgroupID, default: WaitAccumulator(precision: .two)].record(ns)
        byProcess[event.pid, default: WaitAccumulator(precision: .two)].record(ns)
        if processNames[event.pid] == nil { processNames[event.pid] = event.comm }
        if let topology {
            if let previous = lastCPU {
                handoffs[topology.handoff(from: Int(previous), to: Int(event.cpu)),
                         default: WaitAccumulator(precision: .two)].record(ns)
            }
        }
        lastCPU = event.cpu
        if kind == .mutex || kind == .rwsem {
            let key = Aggregator.OwnerKey(waiterCgroupID: event.cgroupID, ownerCgroupID: event.ownerCgroupID,
                                          ownerPid: event.ownerPid)
            owners[key, default: .init()].add(ns)
            if event.ownerPid != 0, ownerNames[event.ownerPid] == nil { ownerNames[event.ownerPid] = event.ownerComm }
        }
        if event.outerLockAddress != 0 { outerLocks[event.outerLockAddress, default: 0] += 1 }
    }
}

extension Aggregator.StackState {
    /// In place: a copy taken out of `stacks` would make every event copy the whole `contexts` table.
    mutating func record(_ ns: UInt64, context: Aggregator.ContextKey) {
        tally.add(ns)
        if ns > maxNs { maxNs = ns }
        contexts[context, default: .init()].add(ns)
    }
}

extension Aggregator.SyscallState {
    mutating func record(_ event: SyscallEvent) {
        latency.record(event.latencyNs)
        if event.ret < 0 { errors += 1 }
    }
}

extension Aggregator {
    /// The lock address with the most total wait so far.
    public func heaviestLock() -> (address: UInt64, totalNs: UInt64)? {
        locks.max { $0.value.total.totalNs < $1.value.total.totalNs }.map { ($0.key, $0.value.total.totalNs) }
    }
}
