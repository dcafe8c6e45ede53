import CLockscopeBPF
import Foundation

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
    /// Kernel frames kept per stack, after the tracing frames (`record --max-stack`).
    public var maxStackDepth = Int(LOCKSCOPE_MAX_STACK_DEPTH)
    /// The frames of a user stack, by its id in the reader's `UserStackTable`, innermost first
    /// (`UserStackSymbolizer`); nil when the id is unknown.
    public var userFrames: (Int32) -> [String]?

    public init(stackAddresses: @escaping (Int32) -> [UInt64]?, symbols: Kallsyms?, layout: KernelLockLayout = .init(),
                container: @escaping (UInt64) -> Container, hostname: String, kernel: String, startedAt: String,
                durationNs: UInt64, drops: Drops, recording: Recording, selection: LockSelection = .all,
                maxStackDepth: Int = Int(LOCKSCOPE_MAX_STACK_DEPTH),
                userFrames: @escaping (Int32) -> [String]? = { _ in nil }) {
        self.stackAddresses = stackAddresses
        self.userFrames = userFrames
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
        self.maxStackDepth = maxStackDepth
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

/// Builds a `Profile` from what an `Aggregator` recorded (`Aggregator.Drained`): names the locks,
/// symbolizes their stacks, resolves cgroups to containers, rolls CPUs up into sockets, NUMA nodes and
/// LLCs, and merges locks that share a name. Everything the per-event path kept as raw ids becomes a
/// name here, once.
struct ProfileBuilder {
    /// Most stacks kept per lock; the rest are summed into one `[other stacks]` entry, so a lock's
    /// stacks always add up to its totals.
    static let maxStacksPerLock = 100
    /// Most owner-blame rows kept per lock.
    static let maxOwnersPerLock = 50
    /// Most addresses listed per lock name (`LockProfile.byAddress`); the rest are summed into one
    /// `[other addresses]` row.
    static let maxAddressesPerLock = 64
    /// Most threads listed (`Profile.threads`); the rest are summed into one `[other threads]` row.
    static let maxThreads = 256

    /// Frames that name where an event had no stack, or where stacks were summed away.
    static let noStackFrame = "[no stack]"
    static let otherStacksFrame = "[other stacks]"

    private let inputs: ProfileInputs
    private var symbolizer: Symbolizer
    private var containers: ContainerTable
    /// Set by `build`: the recording's topology and process names.
    private var topology: Topology?
    private var processNames: [UInt32: Comm] = [:]
    /// User stacks' frames once named, by id.
    private var userFramesByID: [Int32: [String]] = [:]

    init(inputs: ProfileInputs) {
        self.inputs = inputs
        symbolizer = Symbolizer(inputs: inputs)
        containers = ContainerTable(resolve: inputs.container)
    }

    private struct GroupKey: Hashable {
        var name: LockName
        var kind: LockKind
    }

    /// Names the locks (cheap enough to run once a second for the status line and for teaching the
    /// kernel filter the addresses of namespace_sem and mount_lock).
    mutating func lockNames(_ locks: [Aggregator.LockSummary]) -> [UInt64: LockName] {
        let candidates = locks.compactMap { lock -> LockCandidate? in
            if Aggregator.isOtherLocks(lock.address) { return nil }  // named below, not by its call paths
            let heaviest = lock.stacks.max { $0.value.totalNs < $1.value.totalNs }?.key
            return LockCandidate(
                address: lock.address, kind: lock.kind, contentions: lock.contentions,
                stacks: lock.stacks.map { (frames: symbolizer.frames($0.key), count: $0.value.count) },
                topCaller: heaviest.flatMap { symbolizer.caller($0) }, outerLocks: lock.outerLocks)
        }
        var names = LockNamer(symbols: inputs.symbols, layout: inputs.layout).names(for: candidates)
        for lock in locks where Aggregator.isOtherLocks(lock.address) {
            names[lock.address] = LockName(Aggregator.otherLocksName, .caller)
        }
        return names
    }

    /// The profile of `recorded`, whose locks are named by `names`; each lock's part of `recorded` is
    /// released as soon as its entry is built.
    mutating func build(_ recorded: consuming Aggregator.Drained, names: [UInt64: LockName]) -> Profile {
        topology = recorded.topology
        processNames = recorded.processNames
        containers.attributed = recorded.attributed.map(\.container)
        var victims = VictimTally(issuers: recorded.issuers)
        // Locks of one kind that share a name (per-object locks named after one caller) are one entry;
        // different kinds behind one caller name keep apart, told apart by their kind.
        var groups: [GroupKey: [Int]] = [:]
        for (lock, entry) in recorded.locks.enumerated() {
            guard let name = names[entry.address], inputs.selection.keeps(name.name) else { continue }
            groups[GroupKey(name: name, kind: entry.kind), default: []].append(lock)
        }
        let kindsByName = Dictionary(grouping: groups.keys, by: \.name.name)
        var lockProfiles: [LockProfile] = []
        var byContainerAll: [String: WaitAccumulator] = [:]
        var threadTotals: [UInt32: Aggregator.Tally] = [:]
        for (key, group) in groups {
            var name = key.name
            if kindsByName[name.name]!.count > 1 { name.name += " (\(key.kind.rawValue))" }
            let hottest = group.max { recorded.totalNs(ofLock: $0) < recorded.totalNs(ofLock: $1) }!
            var merged = recorded.lockState(hottest)
            var instances = [instance(recorded.locks[hottest].address, merged.total)]
            for lock in group where lock != hottest {
                let state = recorded.lockState(lock)
                instances.append(instance(recorded.locks[lock].address, state.total))
                merged.merge(state)
            }
            for lock in group { recorded.release(lock) }
            var lock = buildLock(name: name, address: recorded.locks[hottest].address, state: merged)
            lock.instances = group.count
            lock.byAddress = Self.cappedInstances(instances)
            for (tid, tally) in merged.byThread { threadTotals[tid, default: .init()].merge(tally) }
            for (task, accumulator) in merged.byTask {
                byContainerAll[containers.id(task.cgroupID),
                               default: WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)].merge(accumulator)
            }
            if MountLockClass(lockName: key.name.name).isMountLock {
                let members = Set(group.map { Int32(truncatingIfNeeded: $0) })
                victims.add(lock: lock.name, state: merged, holders: recorded.victimHolders.filter { members.contains($0.key.lock) },
                            builder: &self, issuerPods: recorded.issuerPods)
            }
            lockProfiles.append(lock)
        }
        lockProfiles.sort { ($0.stats.totalWaitNs, $0.name) > ($1.stats.totalWaitNs, $1.name) }

        let containerSummaries = byContainerAll.map { id, accumulator in
            let container = containers.container(id: id)
            return ContainerSummary(id: id, runtime: container.runtime, podUid: container.podUid,
                                    cgroup: container.cgroup, pod: container.pod, attribution: container.attribution,
                                    contentions: accumulator.count,
                                    totalWaitNs: accumulator.totalNs, p99WaitNs: accumulator.value(atPercentile: 99))
        }.sorted { ($0.totalWaitNs, $0.id) > ($1.totalWaitNs, $1.id) }

        return Profile(hostname: inputs.hostname, kernel: inputs.kernel, startedAt: inputs.startedAt,
                       durationNs: inputs.durationNs, events: recorded.events, drops: inputs.drops,
                       recording: inputs.recording, topology: topology, containers: containerSummaries,
                       mounts: mountSummary(recorded.syscalls, byCgroup: recorded.syscallsByCgroup,
                                            starts: starts(recorded.attributed, originNs: recorded.originNs, names: names),
                                            unlinked: recorded.unlinked),
                       locks: lockProfiles, victims: recorded.syscalls.isEmpty ? nil : victims.victims(),
                       timeline: recorded.timeline, threads: Self.threads(threadTotals, names: recorded.threadNames))
    }

    /// One address's row (its data symbol when kallsyms has one).
    private func instance(_ address: UInt64, _ total: WaitAccumulator) -> InstanceStats {
        let other = Aggregator.isOtherLocks(address)
        return InstanceStats(address: other ? "0x0" : "0x" + String(address, radix: 16),
                             symbol: other ? nil : inputs.symbols?.dataObject(at: address).map { $0.offset == 0 ? $0.name : $0.nameWithOffset },
                             contentions: total.count, totalWaitNs: total.totalNs, maxWaitNs: total.maxNs)
    }

    /// Heaviest first, past `maxAddressesPerLock` the rest summed into `[other addresses]`.
    static func cappedInstances(_ instances: [InstanceStats]) -> [InstanceStats] {
        let sorted = instances.sorted { ($0.totalWaitNs, $1.address) > ($1.totalWaitNs, $0.address) }
        guard sorted.count > maxAddressesPerLock else { return sorted }
        let rest = sorted[(maxAddressesPerLock - 1)...]
        return Array(sorted[..<(maxAddressesPerLock - 1)]) + [InstanceStats(
            address: InstanceStats.otherAddresses, addresses: rest.map(\.addresses).reduce(0, +),
            contentions: rest.map(\.contentions).saturatedSum(), totalWaitNs: rest.map(\.totalWaitNs).saturatedSum(),
            maxWaitNs: rest.map(\.maxWaitNs).max() ?? 0)]
    }

    /// Every thread's waits on the kept locks, heaviest first; past `maxThreads` (and the threads the
    /// aggregator summed per lock past its cap) in one `[other threads]` row.
    static func threads(_ totals: [UInt32: Aggregator.Tally], names: [UInt32: Aggregator.ThreadName]) -> [ThreadStats] {
        var other = totals[Aggregator.otherThreads] ?? Aggregator.Tally()
        var named = totals.filter { $0.key != Aggregator.otherThreads }
            .sorted { ($0.value.totalNs, $1.key) > ($1.value.totalNs, $0.key) }
        if named.count > maxThreads {
            for (_, tally) in named[maxThreads...] { other.merge(tally) }
            named = Array(named[..<maxThreads])
        }
        var rows = named.map { tid, tally in
            ThreadStats(tid: Int32(bitPattern: tid), pid: names[tid].map { Int32(bitPattern: $0.pid) },
                        comm: names[tid]?.comm.string ?? "?", contentions: tally.count, totalWaitNs: tally.totalNs,
                        maxWaitNs: tally.maxNs)
        }
        if other.count > 0 {
            rows.append(ThreadStats(tid: nil, pid: nil, comm: ThreadStats.otherThreads, contentions: other.count,
                                    totalWaitNs: other.totalNs, maxWaitNs: other.maxNs))
        }
        return rows
    }

    /// Each attributed container's start, by container id.
    private func starts(_ attributed: [MountAttribution.AttributedContainer], originNs: UInt64?,
                        names: [UInt64: LockName]) -> [String: ContainerStart] {
        var starts: [String: ContainerStart] = [:]
        for entry in attributed where entry.firstBeginNs != .max {
            var byLock: [String: Aggregator.Tally] = [:]
            for (address, tally) in entry.waitByLock {
                byLock[names[address]?.name ?? Aggregator.otherLocksName, default: .init()].merge(tally)
            }
            let shares = byLock.map { LockWaitShare(lock: $0.key, contentions: $0.value.count, totalWaitNs: $0.value.totalNs,
                                                    maxWaitNs: $0.value.maxNs) }
                .sorted { ($0.totalWaitNs, $1.lock) > ($1.totalWaitNs, $0.lock) }
            let origin = min(originNs ?? entry.firstBeginNs, entry.firstBeginNs)
            starts[entry.container.id] = ContainerStart(
                firstSyscallNs: entry.firstBeginNs - origin,
                setupNs: entry.rootfsMountedNs.map { $0 >= entry.firstBeginNs ? $0 - entry.firstBeginNs : 0 },
                inSyscallsNs: entry.inSyscallsNs, lockWaitNs: shares.map(\.totalWaitNs).saturatedSum(), byLock: shares)
        }
        return starts
    }

    /// The container id of a cgroup id (for `VictimTally`).
    mutating func containerID(_ cgroupID: UInt64) -> String { containers.id(cgroupID) }
    func processName(_ pid: UInt32) -> String { "\(processNames[pid]?.string ?? "?")[\(pid)]" }

    private mutating func buildLock(name: LockName, address: UInt64, state: Aggregator.LockState) -> LockProfile {
        let (read, write) = state.readWrite
        return LockProfile(
            name: name.name, identity: name.identity, kind: state.kind,
            address: Aggregator.isOtherLocks(address) ? "0x0" : "0x" + String(address, radix: 16),
            stats: state.total.stats, read: read.stats,
            write: write.stats, stacks: stacks(of: state),
            byCpu: keyed(state.byCPU.map { (String($0), $1) }, numeric: true),
            bySocket: rollUp(state.byCPU) { topology?.cpu(Int($0))?.socket },
            byNode: rollUp(state.byCPU) { topology?.cpu(Int($0))?.node },
            byLlc: rollUp(state.byCPU) { topology?.cpu(Int($0))?.llc },
            byContainer: keyed(merge(state.byTask.lazy.map { ($0.key, $0.value) }) { containers.id($0.cgroupID) }, numeric: false),
            byProcess: keyed(capped(merge(state.byTask.lazy.map { ($0.key, $0.value) }) { task in
                task.pid == Aggregator.otherProcesses
                    ? Aggregator.otherProcessesKey : "\(processNames[task.pid]?.string ?? "?")[\(task.pid)]"
            }), numeric: false),
            handoffs: zip(Handoff.allCases, state.handoffs).compactMap { handoff, accumulator in
                accumulator.count > 0 ? HandoffStats(handoff: handoff, stats: accumulator.stats) : nil
            },
            owners: owners(of: state))
    }

    /// A user stack's frames, innermost first; nil without one.
    private mutating func userFrames(_ id: Int32) -> [String]? {
        guard id >= 0 else { return nil }
        if let known = userFramesByID[id] { return known }
        let frames = inputs.userFrames(id) ?? [ProfileBuilder.unknownUserStackFrame]
        userFramesByID[id] = frames
        return frames
    }

    /// A user stack id the reader's table does not have (it keeps every one: not expected).
    static let unknownUserStackFrame = "[unknown user stack]"

    private mutating func stacks(of state: Aggregator.LockState) -> [StackProfile] {
        // Stack ids that symbolize to the same frames (different return offsets, or the same user call path in
        // two processes) are one stack.
        var byFrames: [StackIdentity: StackSummary] = [:]
        var framesByID: [Int32: [String]] = [:]
        for (key, tally) in state.contexts {
            if framesByID[key.stackID] == nil {
                framesByID[key.stackID] = key.stackID < 0 ? [ProfileBuilder.noStackFrame] : symbolizer.frames(key.stackID)
            }
            let context = StackContext(cpu: Int(key.cpu), container: containers.id(key.cgroupID), count: 0,
                                       totalWaitNs: 0)
            let frames = StackIdentity(frames: framesByID[key.stackID]!, userFrames: userFrames(key.userStack))
            byFrames[frames, default: StackSummary()].add(tally, context: context)
        }
        var sorted = byFrames.sorted {
            ($0.value.tally.totalNs, $0.key.frames.count, $0.key.userFrames?.count ?? 0)
                > ($1.value.tally.totalNs, $1.key.frames.count, $1.key.userFrames?.count ?? 0)
        }
        if sorted.count > ProfileBuilder.maxStacksPerLock {
            var rest = StackSummary()
            for entry in sorted[(ProfileBuilder.maxStacksPerLock - 1)...] { rest.merge(entry.value) }
            sorted = Array(sorted[..<(ProfileBuilder.maxStacksPerLock - 1)])
                + [(StackIdentity(frames: [ProfileBuilder.otherStacksFrame], userFrames: nil), rest)]
        }
        return sorted.map { frames, stack in
            StackProfile(
                frames: frames.frames, userFrames: frames.userFrames,
                count: stack.tally.count, totalWaitNs: stack.tally.totalNs, maxWaitNs: stack.tally.maxNs,
                contexts: stack.contexts.map { key, tally in
                    StackContext(cpu: key.cpu, container: key.container, count: tally.count, totalWaitNs: tally.totalNs)
                }.sorted { ($0.totalWaitNs, $0.cpu, $0.container) > ($1.totalWaitNs, $1.cpu, $1.container) })
        }
    }

    private mutating func owners(of state: Aggregator.LockState) -> [OwnerBlame]? {
        guard state.kind.hasOwner else { return nil }
        // Several cgroups can be one container: rows are per (waiter container, owner container, owner).
        struct RowKey: Hashable {
            var waiterContainer: String
            var ownerContainer: String
            var ownerPid: UInt32
        }
        var byKey: [RowKey: OwnerBlame] = [:]
        for (key, tally) in state.owners {
            let known = key.ownerPid != 0
            let other = key.ownerPid == Aggregator.otherProcesses
            let rowKey = RowKey(waiterContainer: containers.id(key.waiterCgroupID),
                                ownerContainer: known ? containers.id(key.ownerCgroupID) : "unknown",
                                ownerPid: key.ownerPid)
            if byKey[rowKey] == nil {
                byKey[rowKey] = OwnerBlame(
                    waiterContainer: rowKey.waiterContainer, ownerContainer: rowKey.ownerContainer,
                    ownerPid: Int32(bitPattern: key.ownerPid),
                    ownerComm: other ? Aggregator.otherProcessesKey
                        : known ? processNames[key.ownerPid]?.string ?? "?" : "unknown",
                    contentions: 0, totalWaitNs: 0)
            }
            byKey[rowKey]!.contentions += tally.count
            byKey[rowKey]!.totalWaitNs += tally.totalNs
        }
        var rows = Array(byKey.values)
        rows.sort { ($0.totalWaitNs, $0.ownerPid, $1.waiterContainer, $1.ownerContainer)
            > ($1.totalWaitNs, $1.ownerPid, $0.waiterContainer, $0.ownerContainer) }
        return Array(rows.prefix(ProfileBuilder.maxOwnersPerLock))
    }

    private mutating func mountSummary(_ syscalls: [MountSyscall: Aggregator.SyscallState],
                                       byCgroup: [UInt64: [MountSyscall: Aggregator.SyscallState]],
                                       starts: [String: ContainerStart], unlinked: UInt64) -> MountSummary? {
        guard !syscalls.isEmpty else { return nil }
        func syscallStats(_ states: [MountSyscall: Aggregator.SyscallState]) -> [SyscallStats] {
            states.sorted { $0.key.rawValue < $1.key.rawValue }.map {
                SyscallStats(syscall: $0.key.name, stats: $0.value.latency.stats, errors: $0.value.errors)
            }
        }
        var byContainer: [String: [MountSyscall: Aggregator.SyscallState]] = [:]
        for (cgroup, states) in byCgroup {
            let id = containers.id(cgroup)
            for (syscall, state) in states {
                byContainer[id, default: [:]][syscall, default: Aggregator.SyscallState(precision: WaitAccumulator.breakdownPrecision)]
                    .merge(state)
            }
        }
        let containerRows = byContainer.map { id, states in
            let container = containers.container(id: id)
            return ContainerMounts(id: id, runtime: container.runtime, pod: container.pod, attribution: container.attribution,
                                   ops: states.values.reduce(0) { $0 + $1.latency.count }, bySyscall: syscallStats(states),
                                   start: starts[id])
        }.sorted { ($0.ops, $0.id) > ($1.ops, $1.id) }
        return MountSummary(totalOps: syscalls.values.reduce(0) { $0 + $1.latency.count },
                            bySyscall: syscallStats(syscalls), byContainer: containerRows, unlinked: unlinked)
    }

    private func rollUp(_ byCPU: [UInt32: WaitAccumulator], _ group: (UInt32) -> Int?) -> [KeyedStats] {
        guard topology != nil else { return [] }
        return keyed(merge(byCPU.lazy.map { ($0.key, $0.value) }) { group($0).map(String.init) ?? "unknown" }, numeric: true)
    }

    private func merge<Entries: Sequence, Key>(_ entries: Entries, into group: (Key) -> String)
        -> [(String, WaitAccumulator)] where Entries.Element == (Key, WaitAccumulator) {
        var merged: [String: WaitAccumulator] = [:]
        for (key, accumulator) in entries {
            merged[group(key), default: WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)].merge(accumulator)
        }
        return merged.map { ($0.key, $0.value) }
    }

    /// The `maxProcessesPerLock` heaviest processes, the others (locks merged under one name can have
    /// more) summed into `[other processes]`.
    private func capped(_ processes: [(String, WaitAccumulator)]) -> [(String, WaitAccumulator)] {
        var named = processes.filter { $0.0 != Aggregator.otherProcessesKey }
        guard named.count > Aggregator.maxProcessesPerLock else { return processes }
        var other = processes.first { $0.0 == Aggregator.otherProcessesKey }?.1
            ?? WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)
        named.sort { ($0.1.totalNs, $1.0) > ($1.1.totalNs, $0.0) }
        for (_, accumulator) in named[Aggregator.maxProcessesPerLock...] { other.merge(accumulator) }
        return Array(named[..<Aggregator.maxProcessesPerLock]) + [(Aggregator.otherProcessesKey, other)]
    }

    /// Numeric keys (CPUs, sockets) sort by number; others by total wait, heaviest first.
    private func keyed(_ entries: [(String, WaitAccumulator)], numeric: Bool) -> [KeyedStats] {
        let sorted = numeric
            ? entries.sorted { (Int($0.0) ?? .max, $0.0) < (Int($1.0) ?? .max, $1.0) }
            : entries.sorted { ($0.1.totalNs, $1.0) > ($1.1.totalNs, $0.0) }
        return sorted.map { KeyedStats(key: $0.0, stats: $0.1.stats) }
    }
}

extension Aggregator.Tally {
    mutating func merge(_ other: Aggregator.Tally) {
        count += other.count
        totalNs &+= other.totalNs
        maxNs = max(maxNs, other.maxNs)
    }
}

/// One symbolized stack of a lock while the profile is built: its tally and its contexts.
struct StackSummary {
    var tally = Aggregator.Tally()
    var contexts: [StackContext: Aggregator.Tally] = [:]

    mutating func add(_ tally: Aggregator.Tally, context: StackContext) {
        self.tally.merge(tally)
        contexts[context, default: .init()].merge(tally)
    }

    mutating func merge(_ other: StackSummary) {
        tally.merge(other.tally)
        for (key, value) in other.contexts { contexts[key, default: .init()].merge(value) }
    }
}

extension Aggregator.SyscallState {
    mutating func merge(_ other: Aggregator.SyscallState) {
        latency.merge(other.latency)
        errors += other.errors
    }
}

extension Aggregator.LockState {
    /// Adds another address's waits (locks merged under one name).
    mutating func merge(_ other: Aggregator.LockState) {
        total.merge(other.total)
        read.merge(other.read)
        write.merge(other.write)
        for (key, value) in other.contexts { contexts[key, default: .init()].merge(value) }
        for (cpu, value) in other.byCPU {
            byCPU[cpu, default: WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)].merge(value)
        }
        for (key, value) in other.byTask {
            byTask[key, default: WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)].merge(value)
        }
        if handoffs.isEmpty {
            handoffs = other.handoffs
        } else {
            for (index, value) in other.handoffs.enumerated() { handoffs[index].merge(value) }
        }
        for (key, value) in other.owners { owners[key, default: .init()].merge(value) }
        for (key, value) in other.outerLocks { outerLocks[key, default: 0] += value }
        for (key, value) in other.byThread { byThread[key, default: .init()].merge(value) }
    }
}

/// The victims, gathered lock by lock while the profile is built: every process that issued no mount
/// syscall and waited on namespace_sem or mount_lock, with those waits by lock and the holders it
/// waited behind.
struct VictimTally {
    /// Most victims listed, heaviest first, and holders listed per victim.
    static let maxVictims = 50
    static let maxHoldersPerVictim = 5

    let issuers: Set<UInt32>
    private var entries: [UInt32: Entry] = [:]

    private struct Entry {
        var process = ""
        var container = ""
        var total = WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)
        var byLock: [String: WaitAccumulator] = [:]
        var holders: [String: (container: String, tally: Aggregator.Tally)] = [:]
    }

    init(issuers: Set<UInt32>) { self.issuers = issuers }

    private func isVictim(_ pid: UInt32) -> Bool {
        pid != 0 && pid != Aggregator.otherProcesses && !issuers.contains(pid)
    }

    /// One lock's waits, and the mount issuers that held it while victims waited (`holders`); a holder's
    /// container is its pod when it is a shim that named one.
    mutating func add(lock: String, state: Aggregator.LockState,
                      holders: [Aggregator.VictimHolderKey: (ownerCgroupID: UInt64, tally: Aggregator.Tally)],
                      builder: inout ProfileBuilder, issuerPods: [UInt32: String]) {
        for (task, accumulator) in state.byTask where isVictim(task.pid) {
            var entry = entries[task.pid] ?? Entry(process: builder.processName(task.pid))
            entry.container = builder.containerID(task.cgroupID)
            entry.total.merge(accumulator)
            entry.byLock[lock, default: WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)].merge(accumulator)
            entries[task.pid] = entry
        }
        for (key, holder) in holders where entries[key.waiterPid] != nil {
            let process = builder.processName(key.ownerPid)
            let container = issuerPods[key.ownerPid].map { "pod:" + $0 } ?? builder.containerID(holder.ownerCgroupID)
            var tally = entries[key.waiterPid]!.holders[process] ?? (container, .init())
            tally.tally.merge(holder.tally)
            entries[key.waiterPid]!.holders[process] = tally
        }
    }

    /// The heaviest victims, with their locks and holders, heaviest first.
    func victims() -> [Victim] {
        entries.values.map { entry in
            Victim(process: entry.process, container: entry.container, contentions: entry.total.count,
                   totalWaitNs: entry.total.totalNs, maxWaitNs: entry.total.maxNs,
                   byLock: entry.byLock.map {
                       LockWaitShare(lock: $0.key, contentions: $0.value.count, totalWaitNs: $0.value.totalNs,
                                     maxWaitNs: $0.value.maxNs)
                   }.sorted { ($0.totalWaitNs, $1.lock) > ($1.totalWaitNs, $0.lock) },
                   holders: entry.holders.map {
                       Holder(process: $0.key, container: $0.value.container, contentions: $0.value.tally.count,
                              totalWaitNs: $0.value.tally.totalNs)
                   }.sorted { ($0.totalWaitNs, $1.process) > ($1.totalWaitNs, $0.process) }
                    .prefix(Self.maxHoldersPerVictim).map { $0 })
        }.sorted { ($0.totalWaitNs, $1.process) > ($1.totalWaitNs, $0.process) }
            .prefix(Self.maxVictims).map { $0 }
    }
}
