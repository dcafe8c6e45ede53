import Foundation

extension Aggregator {
    /// Most stacks kept per lock; the rest are summed into one `[other stacks]` entry, so a lock's
    /// stacks always add up to its totals.
    public static let maxStacksPerLock = 100
    /// Most owner-blame rows kept per lock.
    public static let maxOwnersPerLock = 50

    /// Frames that name where an event had no stack, or where stacks were summed away.
    public static let noStackFrame = "[no stack]"
    public static let otherStacksFrame = "[other stacks]"
    /// The `by_process` entry that sums the processes beyond `maxProcessesPerLock`.
    public static let otherProcessesKey = "[other processes]"
    /// The container that sums the cgroups beyond `maxCgroupsPerLock`.
    public static let otherContainersKey = "[other containers]"

    struct GroupKey: Hashable {
        var name: LockName
        var kind: LockKind
    }

    /// Names every lock seen so far (cheap enough to run once a second for the status line and for
    /// teaching the kernel filter the addresses of namespace_sem and mount_lock).
    public func lockNames(_ inputs: ProfileInputs) -> [UInt64: LockName] {
        var symbolizer = Symbolizer(inputs: inputs)
        return lockNames(inputs, symbolizer: &symbolizer)
    }

    private func lockNames(_ inputs: ProfileInputs, symbolizer: inout Symbolizer) -> [UInt64: LockName] {
        let stackTallies = stackTallies()
        let candidates = lockEntries.indices.compactMap { lock -> LockCandidate? in
            let entry = lockEntries[lock]
            if Aggregator.isOtherLocks(entry.address) { return nil }  // named below, not by its call paths
            let stacks = stackTallies[lock]
            let heaviest = stacks.max { $0.value.totalNs < $1.value.totalNs }?.key
            return LockCandidate(
                address: entry.address, kind: entry.kind, contentions: contentions(ofLock: lock),
                stacks: stacks.map { (frames: symbolizer.frames($0.key), count: $0.value.count) },
                topCaller: heaviest.flatMap { symbolizer.caller($0) }, outerLocks: entry.outerLocks)
        }
        var names = LockNamer(symbols: inputs.symbols, layout: inputs.layout).names(for: candidates)
        for entry in lockEntries where Aggregator.isOtherLocks(entry.address) {
            names[entry.address] = LockName(Aggregator.otherLocksName, .caller)
        }
        return names
    }

    /// The profile of everything recorded so far.
    public func profile(_ inputs: ProfileInputs) -> Profile {
        var current = self
        current.finishPending()
        var tables = current.lockTables()
        return current.buildProfile(inputs, tables: &tables)
    }

    /// The same, at the end of a recording: the tables are released as the profile is built, so the
    /// peak is not both. Leaves the lock statistics empty.
    public mutating func takeProfile(_ inputs: ProfileInputs) -> Profile {
        finishPending()
        let names = lockNames(inputs)
        var tables = takeLockTables()
        let profile = buildProfile(inputs, names: names, tables: &tables)
        removeLocks()
        return profile
    }

    /// Builds the profile from `tables`, emptying each lock's part as it goes.
    private func buildProfile(_ inputs: ProfileInputs, names: [UInt64: LockName]? = nil,
                              tables: inout LockTables) -> Profile {
        var symbolizer = Symbolizer(inputs: inputs)
        let names = names ?? lockNames(inputs, symbolizer: &symbolizer)
        var containers = ContainerTable(resolve: inputs.container)

        // Locks of one kind that share a name (per-object locks named after one caller) are one entry;
        // different kinds behind one caller name keep apart, told apart by their kind.
        var groups: [GroupKey: [Int]] = [:]
        for (lock, entry) in lockEntries.enumerated() {
            guard let name = names[entry.address], inputs.selection.keeps(name.name) else { continue }
            groups[GroupKey(name: name, kind: entry.kind), default: []].append(lock)
        }
        let kindsByName = Dictionary(grouping: groups.keys, by: \.name.name)
        var lockProfiles: [LockProfile] = []
        var byContainerAll: [String: WaitAccumulator] = [:]
        for (key, group) in groups {
            var name = key.name
            if kindsByName[name.name]!.count > 1 { name.name += " (\(key.kind.rawValue))" }
            let hottest = group.max { totalNs(ofLock: $0) < totalNs(ofLock: $1) }!
            var merged = lockState(hottest, tables: tables)
            for lock in group where lock != hottest { merged.merge(lockState(lock, tables: tables)) }
            for lock in group { tables.removeLock(lock) }
            var lock = buildLock(name: name, address: lockEntries[hottest].address, state: merged,
                                 symbolizer: &symbolizer, containers: &containers)
            lock.instances = group.count
            for (task, accumulator) in merged.byTask {
                byContainerAll[containers.id(task.cgroupID),
                               default: WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)].merge(accumulator)
            }
            lockProfiles.append(lock)
        }
        lockProfiles.sort { ($0.stats.totalWaitNs, $0.name) > ($1.stats.totalWaitNs, $1.name) }

        let containerSummaries = byContainerAll.map { id, accumulator in
            let container = containers.container(id: id)
            return ContainerSummary(id: id, runtime: container.runtime, podUid: container.podUid,
                                    cgroup: container.cgroup, contentions: accumulator.count,
                                    totalWaitNs: accumulator.totalNs, p99WaitNs: accumulator.value(atPercentile: 99))
        }.sorted { ($0.totalWaitNs, $0.id) > ($1.totalWaitNs, $1.id) }

        return Profile(hostname: inputs.hostname, kernel: inputs.kernel, startedAt: inputs.startedAt,
                       durationNs: inputs.durationNs, events: waitEvents + syscallEvents, drops: inputs.drops,
                       recording: inputs.recording, topology: topology, containers: containerSummaries,
                       mounts: mountSummary(containers: &containers), locks: lockProfiles)
    }

    private func buildLock(name: LockName, address: UInt64, state: LockState, symbolizer: inout Symbolizer,
                           containers: inout ContainerTable) -> LockProfile {
        let (read, write) = state.readWrite
        return LockProfile(
            name: name.name, identity: name.identity, kind: state.kind,
            address: Aggregator.isOtherLocks(address) ? "0x0" : "0x" + String(address, radix: 16),
            stats: state.total.stats, read: read.stats,
            write: write.stats, stacks: stacks(of: state, symbolizer: &symbolizer, containers: &containers),
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
            owners: owners(of: state, containers: &containers))
    }

    private func stacks(of state: LockState, symbolizer: inout Symbolizer,
                        containers: inout ContainerTable) -> [StackProfile] {
        // Stack ids that symbolize to the same frames (different return offsets) are one stack.
        var byFrames: [[String]: StackSummary] = [:]
        var framesByID: [Int32: [String]] = [:]
        for (key, tally) in state.contexts {
            if framesByID[key.stackID] == nil {
                framesByID[key.stackID] = key.stackID < 0 ? [Aggregator.noStackFrame] : symbolizer.frames(key.stackID)
            }
            let context = StackContext(cpu: Int(key.cpu), container: containers.id(key.cgroupID), count: 0,
                                       totalWaitNs: 0)
            byFrames[framesByID[key.stackID]!, default: StackSummary()].add(tally, context: context)
        }
        var sorted = byFrames.sorted { ($0.value.tally.totalNs, $0.key.count) > ($1.value.tally.totalNs, $1.key.count) }
        if sorted.count > Aggregator.maxStacksPerLock {
            var rest = StackSummary()
            for entry in sorted[(Aggregator.maxStacksPerLock - 1)...] { rest.merge(entry.value) }
            sorted = Array(sorted[..<(Aggregator.maxStacksPerLock - 1)]) + [([Aggregator.otherStacksFrame], rest)]
        }
        return sorted.map { frames, stack in
            StackProfile(
                frames: frames, count: stack.tally.count, totalWaitNs: stack.tally.totalNs, maxWaitNs: stack.tally.maxNs,
                contexts: stack.contexts.map { key, tally in
                    StackContext(cpu: key.cpu, container: key.container, count: tally.count, totalWaitNs: tally.totalNs)
                }.sorted { ($0.totalWaitNs, $0.cpu, $0.container) > ($1.totalWaitNs, $1.cpu, $1.container) })
        }
    }

    private func owners(of state: LockState, containers: inout ContainerTable) -> [OwnerBlame]? {
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
        return Array(rows.prefix(Aggregator.maxOwnersPerLock))
    }

    private func mountSummary(containers: inout ContainerTable) -> MountSummary? {
        guard syscallEvents > 0 else { return nil }
        func syscallStats(_ states: [MountSyscall: SyscallState]) -> [SyscallStats] {
            states.sorted { $0.key.rawValue < $1.key.rawValue }.map {
                SyscallStats(syscall: $0.key.name, stats: $0.value.latency.stats, errors: $0.value.errors)
            }
        }
        var byContainer: [String: [MountSyscall: SyscallState]] = [:]
        for (cgroup, states) in syscallsByCgroup {
            let id = containers.id(cgroup)
            for (syscall, state) in states {
                byContainer[id, default: [:]][syscall, default: SyscallState(precision: WaitAccumulator.breakdownPrecision)]
                    .merge(state)
            }
        }
        let containerRows = byContainer.map { id, states in
            ContainerMounts(id: id, runtime: containers.container(id: id).runtime,
                            ops: states.values.reduce(0) { $0 + $1.latency.count }, bySyscall: syscallStats(states))
        }.sorted { ($0.ops, $0.id) > ($1.ops, $1.id) }
        return MountSummary(totalOps: syscalls.values.reduce(0) { $0 + $1.latency.count },
                            bySyscall: syscallStats(syscalls), byContainer: containerRows)
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
    }
}

/// Stack ids to symbolized frames, cached; tracing frames (the BPF program and tracepoint glue) dropped.
struct Symbolizer {
    let inputs: ProfileInputs
    private var cache: [Int32: [UInt64]] = [:]

    init(inputs: ProfileInputs) { self.inputs = inputs }

    private mutating func addresses(_ id: Int32) -> [UInt64] {
        if let cached = cache[id] { return cached }
        let raw = id < 0 ? [] : (inputs.stackAddresses(id) ?? [])
        // The stack starts inside the tracing machinery: the BPF program (JIT code, which may look like
        // part of a module) and the tracepoint glue (bpf_trace_run2...). The lock's slow path follows.
        let glue = raw.prefix(8).lastIndex { address in
            inputs.symbols?.function(at: address).map { Symbolizer.isTracingFrame($0.name) } ?? false
        }
        let kept = glue.map { Array(raw[($0 + 1)...]) } ?? raw
        cache[id] = kept
        return kept
    }

    /// Frame names, innermost first; `[unknown stack]` when the stack could not be read.
    mutating func frames(_ id: Int32) -> [String] {
        if id < 0 { return [Aggregator.noStackFrame] }
        let addresses = addresses(id)
        if addresses.isEmpty { return ["[unknown stack]"] }
        return addresses.map { address in
            guard let symbol = inputs.symbols?.function(at: address) else { return "0x" + String(address, radix: 16) }
            return symbol.module.map { "\(symbol.name) [\($0)]" } ?? symbol.name
        }
    }

    /// The first frame outside lock primitives, as `func+0xoff` (how perf names a lock by its caller).
    mutating func caller(_ id: Int32) -> String? {
        guard let symbols = inputs.symbols else { return nil }
        for address in addresses(id) where !symbols.isLockText(address) {
            guard let symbol = symbols.function(at: address) else { continue }
            if !LockNamer.isLockPrimitive(symbol.name) { return symbol.nameWithOffset }
        }
        return nil
    }

    static func isTracingFrame(_ name: String) -> Bool {
        name.hasPrefix("bpf_") || name.hasPrefix("__bpf_") || name.hasPrefix("__traceiter_")
            || name.hasPrefix("trace_contention") || name.hasPrefix("__trace_") || name.hasPrefix("perf_trace")
    }
}

/// Maps cgroup ids to container ids once each, and remembers each container's details.
struct ContainerTable {
    let resolve: (UInt64) -> Container
    private var idsByCgroup: [UInt64: String] = [:]
    private var containers: [String: Container] = [:]

    init(resolve: @escaping (UInt64) -> Container) { self.resolve = resolve }

    mutating func id(_ cgroupID: UInt64) -> String {
        if cgroupID == Aggregator.otherCgroups { return Aggregator.otherContainersKey }
        if let id = idsByCgroup[cgroupID] { return id }
        let container = resolve(cgroupID)
        idsByCgroup[cgroupID] = container.id
        if containers[container.id] == nil { containers[container.id] = container }
        return container.id
    }

    func container(id: String) -> Container {
        containers[id] ?? Container(id: id, runtime: "unknown", podUid: nil, cgroup: "")
    }
}
