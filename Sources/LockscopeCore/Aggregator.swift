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
/// CPU, cgroup id, pid); symbolizing, naming, container lookup and roll-ups happen once, in `profile(_:)`.
///
/// It is built for millions of events a second over thousands of keys, where the cost is memory
/// latency: every structure an event touches is a likely cache miss. So each event updates few of
/// them: the lock's total (percentiles within 1%), one table of (stack, CPU, cgroup) tallies from
/// which stacks and their contexts are summed, one histogram per CPU and one per (cgroup, process),
/// from which containers and processes are summed (breakdowns keep percentiles within 6.25%, at a
/// tenth of the memory), and the hand-off class. Task names stay 16 raw bytes until the profile.
public struct Aggregator {
    /// Processes kept apart per lock; waits of later ones are summed per container under
    /// `[other processes]`, so memory stays bounded however many processes come and go.
    public static let maxProcessesPerLock = 64
    /// Lock addresses kept apart. Per-object locks (inodes, dentries...) can bring new addresses for as
    /// long as a recording runs; past this many, waits on new addresses are summed per kind under
    /// `[other locks]`.
    public static let maxLockAddresses = 4096
    public static let otherLocksName = "[other locks]"

    /// Where `[other locks]` of a kind are kept: a small number no lock address can be.
    static func otherLocksAddress(_ kind: LockKind) -> UInt64 { UInt64(kind.filterBit) }
    static func isOtherLocks(_ address: UInt64) -> Bool { address < 1 << 16 }

    public private(set) var waitEvents: UInt64 = 0
    public private(set) var syscallEvents: UInt64 = 0
    let topology: Topology?
    private let handoffTable: HandoffTable?
    var locks: [UInt64: LockState] = [:]
    /// The first `comm` seen for each pid, waiter or owner (written only when a lock first sees the pid).
    var processNames: [UInt32: Comm] = [:]
    var syscalls: [MountSyscall: SyscallState] = [:]
    var syscallsByCgroup: [UInt64: [MountSyscall: SyscallState]] = [:]

    public init(topology: Topology?) {
        self.topology = topology
        handoffTable = topology.map(HandoffTable.init)
    }

    /// Where one wait happened: the stack, the CPU that took the lock, and the waiter's cgroup.
    struct ContextKey: Hashable {
        var stackID: Int32
        var cpu: UInt32
        var cgroupID: UInt64

        /// Two words instead of three fields: this is hashed on every event.
        func hash(into hasher: inout Hasher) {
            hasher.combine(UInt64(UInt32(bitPattern: stackID)) << 32 | UInt64(cpu))
            hasher.combine(cgroupID)
        }
    }

    /// A waiting process and its cgroup; `pid` is `Aggregator.otherProcesses` for the processes past the cap.
    struct TaskKey: Hashable {
        var cgroupID: UInt64
        var pid: UInt32
    }

    /// The pid under which processes past `maxProcessesPerLock` (or owners past `maxOwnerKeysPerLock`) are summed.
    static let otherProcesses = UInt32.max
    /// Distinct (waiter cgroup, owner cgroup, owner pid) keys kept per lock; later owners are summed per
    /// waiter cgroup, so owner churn over a long recording cannot grow memory.
    static let maxOwnerKeysPerLock = 1024
    /// Cgroups kept apart per lock, and for mount-syscall accounting; waits from later ones are summed
    /// under `[other containers]`, so container churn over a long rollout cannot grow memory.
    public static let maxCgroupsPerLock = 4096
    /// The cgroup id under which cgroups past `maxCgroupsPerLock` are summed (real ids are inode numbers).
    static let otherCgroups = UInt64.max

    struct Tally {
        var count: UInt64 = 0
        var totalNs: UInt64 = 0
        var maxNs: UInt64 = 0

        mutating func add(_ ns: UInt64) {
            count += 1
            totalNs &+= ns
            if ns > maxNs { maxNs = ns }
        }
    }

    struct OwnerKey: Hashable {
        var waiterCgroupID: UInt64
        var ownerCgroupID: UInt64
        var ownerPid: UInt32
    }

    struct LockState {
        var kind: LockKind
        var total = WaitAccumulator(precision: .two)
        /// Only for kinds with a shared mode; for the others every wait is a write wait (`total`).
        var read = WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)
        var write = WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)
        var contexts: [ContextKey: Tally] = [:]
        var byCPU = CPUBreakdown()
        var byTask: [TaskKey: WaitAccumulator] = [:]
        /// Distinct pids in `byTask` (not counting the `otherProcesses` entries).
        var processes = 0
        /// Cgroups kept apart (looked up only when `byTask` meets a new (cgroup, pid)).
        var cgroups: Set<UInt64> = []
        var lastCPU: UInt32?
        /// Indexed by `Handoff.allCases` position; empty until the first hand-off.
        var handoffs: [WaitAccumulator] = []
        var owners: [OwnerKey: Tally] = [:]
        var outerLocks: [UInt64: UInt64] = [:]

        init(kind: LockKind) { self.kind = kind }
    }

    struct SyscallState {
        var latency: WaitAccumulator
        var errors: UInt64 = 0

        init(precision: SignificantDigits = .two) { latency = WaitAccumulator(precision: precision) }
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
        let new: (waiter: Bool, owner: Bool)
        if let index = locks.index(forKey: event.lockAddress) {
            new = locks.values[index].record(event, kind: kind, handoffTable: handoffTable)  // in place
        } else {
            let address = locks.count < Aggregator.maxLockAddresses ? event.lockAddress : Aggregator.otherLocksAddress(kind)
            new = locks[address, default: LockState(kind: kind)].record(event, kind: kind, handoffTable: handoffTable)
        }
        if new.waiter, processNames[event.pid] == nil { processNames[event.pid] = event.comm }
        if new.owner, processNames[event.ownerPid] == nil { processNames[event.ownerPid] = event.ownerComm }
    }

    public mutating func record(_ event: SyscallEvent) {
        syscallEvents += 1
        syscalls[event.syscall, default: SyscallState()].record(event)
        var cgroup = event.cgroupID
        if syscallsByCgroup[cgroup] == nil, syscallsByCgroup.count >= Aggregator.maxCgroupsPerLock {
            cgroup = Aggregator.otherCgroups
        }
        syscallsByCgroup[cgroup, default: [:]][event.syscall,
                                                default: SyscallState(precision: WaitAccumulator.breakdownPrecision)]
            .record(event)
    }
}

/// Per-CPU waits inside one lock: CPU ids are small, so an array indexed by CPU finds each
/// accumulator without hashing (ids past `maxCPUID`, which no kernel has, are searched for).
struct CPUBreakdown {
    /// `positions[cpu]` is the CPU's index in `accumulators`, or -1.
    private var positions: [Int32] = []
    private(set) var cpus: [UInt32] = []
    private(set) var accumulators: [WaitAccumulator] = []

    private func position(of cpu: UInt32) -> Int? {
        let slot = Int(cpu)
        if slot < positions.count { return positions[slot] >= 0 ? Int(positions[slot]) : nil }
        return slot > maxCPUID ? cpus.firstIndex(of: cpu) : nil
    }

    mutating func record(_ ns: UInt64, cpu: UInt32) {
        if let position = position(of: cpu) {
            accumulators[position].record(ns)
        } else {
            var accumulator = WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)
            accumulator.record(ns)
            add(accumulator, cpu: cpu)
        }
    }

    private mutating func add(_ accumulator: WaitAccumulator, cpu: UInt32) {
        let slot = Int(cpu)
        if slot <= maxCPUID {
            if slot >= positions.count { positions += repeatElement(-1, count: slot + 1 - positions.count) }
            positions[slot] = Int32(cpus.count)
        }
        cpus.append(cpu)
        accumulators.append(accumulator)
    }

    var entries: Zip2Sequence<[UInt32], [WaitAccumulator]> { zip(cpus, accumulators) }

    mutating func merge(_ other: CPUBreakdown) {
        for (cpu, accumulator) in other.entries {
            if let position = position(of: cpu) {
                accumulators[position].merge(accumulator)
            } else {
                add(accumulator, cpu: cpu)
            }
        }
    }
}

/// The hand-off class between every pair of known CPUs, worked out once from the topology so the
/// per-event path is one table read.
struct HandoffTable {
    private let topology: Topology
    private let size: Int
    private let classes: [UInt8]
    /// Beyond this many CPU ids the table would be too big to stay in cache; pairs are worked out per event.
    static let maxCPUs = 1024

    init(_ topology: Topology) {
        self.topology = topology
        size = min((topology.cpus.map(\.id).max() ?? -1) + 1, Self.maxCPUs)
        var classes = [UInt8](repeating: 0, count: size * size)
        let all = Handoff.allCases
        for from in 0..<size {
            for to in 0..<size {
                classes[from * size + to] = UInt8(all.firstIndex(of: topology.handoff(from: from, to: to))!)
            }
        }
        self.classes = classes
    }

    /// The position of the hand-off from `previous` to `current` in `Handoff.allCases`.
    func position(from previous: UInt32, to current: UInt32) -> Int {
        let from = Int(previous), to = Int(current)
        if from < size, to < size { return Int(classes[from * size + to]) }
        return Handoff.allCases.firstIndex(of: topology.handoff(from: from, to: to))!
    }
}

extension LockKind {
    /// Whether waits can be for shared (read) access.
    var hasSharedMode: Bool { self == .rwsem || self == .rwlock || self == .percpuRwsem }
}

extension Aggregator.LockState {
    /// Returns whether the waiter's pid, and the owner's, are new to this lock (their names are wanted).
    mutating func record(_ event: WaitEvent, kind: LockKind,
                         handoffTable: HandoffTable?) -> (waiter: Bool, owner: Bool) {
        let ns = event.waitNs
        total.record(ns)
        if kind.hasSharedMode {
            if event.isRead { read.record(ns) } else { write.record(ns) }
        }
        byCPU.record(ns, cpu: event.cpu)
        var newWaiter = false
        var task = Aggregator.TaskKey(cgroupID: event.cgroupID, pid: event.pid)
        if let index = byTask.index(forKey: task) {
            byTask.values[index].record(ns)  // in place, one hash lookup
        } else {
            if !cgroups.contains(task.cgroupID) {
                if cgroups.count < Aggregator.maxCgroupsPerLock {
                    cgroups.insert(task.cgroupID)
                } else {
                    task = Aggregator.TaskKey(cgroupID: Aggregator.otherCgroups, pid: Aggregator.otherProcesses)
                }
            }
            if task.pid != Aggregator.otherProcesses {  // a (cgroup, pid) this lock has not seen
                if processes < Aggregator.maxProcessesPerLock {
                    processes += 1
                    newWaiter = true
                } else {
                    task.pid = Aggregator.otherProcesses
                }
            }
            byTask[task, default: WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)].record(ns)
        }
        let cgroup = task.cgroupID
        contexts[Aggregator.ContextKey(stackID: event.stackID, cpu: event.cpu, cgroupID: cgroup), default: .init()]
            .add(ns)
        if let handoffTable, let previous = lastCPU {
            if handoffs.isEmpty {
                handoffs = Array(repeating: WaitAccumulator(precision: WaitAccumulator.breakdownPrecision),
                                 count: Handoff.allCases.count)
            }
            handoffs[handoffTable.position(from: previous, to: event.cpu)].record(ns)
        }
        lastCPU = event.cpu
        var newOwner = false
        if kind == .mutex || kind == .rwsem {
            var key = Aggregator.OwnerKey(waiterCgroupID: cgroup, ownerCgroupID: event.ownerCgroupID,
                                          ownerPid: event.ownerPid)
            if let index = owners.index(forKey: key) {
                owners.values[index].add(ns)
            } else {
                if owners.count >= Aggregator.maxOwnerKeysPerLock {
                    key.ownerCgroupID = Aggregator.otherCgroups
                    key.ownerPid = Aggregator.otherProcesses
                } else {
                    newOwner = event.ownerPid != 0
                }
                owners[key, default: .init()].add(ns)
            }
        }
        if event.outerLockAddress != 0 { outerLocks[event.outerLockAddress, default: 0] += 1 }
        return (newWaiter, newOwner)
    }

    /// Read and write waits as the profile shows them: a kind without a shared mode only has writes.
    var readWrite: (read: WaitAccumulator, write: WaitAccumulator) {
        kind.hasSharedMode ? (read, write) : (WaitAccumulator(precision: WaitAccumulator.breakdownPrecision), total)
    }

    /// Each stack's tally, summed over its contexts.
    var stackTallies: [Int32: Aggregator.Tally] {
        var tallies: [Int32: Aggregator.Tally] = [:]
        for (key, tally) in contexts { tallies[key.stackID, default: .init()].merge(tally) }
        return tallies
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
