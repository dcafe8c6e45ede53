import Foundation
import LockscopeCore

/// `lockscope merge`: one profile from the profiles of several hosts, so that report, flamegraph, diff
/// and check read a fleet's recording like one host's. Each lock (matched by `matchName` and kind, as
/// diff and check match them) adds up its waits on every host and keeps them per host in `by_host`;
/// what only means something on its own host (CPUs, sockets, processes, victims) is prefixed with the
/// hostname, `node-a/3`. docs/profile-format.md says what each merged field holds.
public enum ProfileMerge {
    /// Reads the profiles at `paths`, merges them and writes the result to `output` atomically; nothing
    /// is written when any input is unusable.
    public static func run(paths: [String], output: String, mode: mode_t = AtomicFile.defaultMode) throws -> Profile {
        try AtomicFile.checkWritable(output)
        let inputs = try paths.map { MergeInput(source: $0, profile: try Profile.load(path: $0)) }
        let merged = try merge(inputs)
        try merged.write(to: output, mode: mode)
        return merged
    }

    /// The profiles as one. Refuses (one line) no profiles, two profiles of the same host, a profile that
    /// is itself a merge, an unreadable start time, timelines of different bin widths and on-CPU samples
    /// taken at different rates.
    public static func merge(_ inputs: [MergeInput]) throws -> Profile {
        guard let first = inputs.first else {
            throw UserError("give the profiles to merge, one per host: lockscope merge A.json B.json -o fleet.json")
        }
        try checkHosts(inputs)
        let periodNs = try samplingPeriod(inputs)
        let starts = try inputs.map { input in
            guard let date = startDate(input.profile.startedAt) else {
                throw UserError("\(shown(input.source)): started_at \"\(shown(input.profile.startedAt))\" is not an RFC 3339 time; the merge aligns recordings by their start")
            }
            return date
        }
        let profiles = inputs.map(\.profile)
        let earliest = starts.indices.min { starts[$0] < starts[$1] } ?? 0
        var drops = Drops()
        for profile in profiles { drops.add(profile.drops) }
        var merged = Profile(hostname: "merged:\(inputs.count) hosts",
                       kernel: distinct(profiles.map(\.kernel)).joined(separator: ", "),
                       startedAt: inputs[earliest].profile.startedAt,
                       durationNs: profiles.map(\.durationNs).max() ?? first.profile.durationNs,
                       events: profiles.map(\.events).saturatedSum(), drops: drops,
                       recording: mergedRecording(profiles.map(\.recording)), topology: nil,
                       containers: mergedContainers(profiles.flatMap(\.containers)),
                       mounts: mergedMounts(profiles.compactMap(\.mounts)), locks: mergedLocks(profiles),
                       victims: mergedVictims(profiles), timeline: try mergedTimeline(inputs))
        if let periodNs {
            merged.cpuSamples = mergedSamples(profiles, periodNs: periodNs)
            merged.locks = mergedSpin(profiles, into: merged.locks, periodNs: periodNs)
        }
        return merged
    }

    // MARK: On-CPU samples

    /// The one sampling period of the inputs that sampled (nil when none did); refused when they differ: a
    /// sum of samples is a time only at one period.
    private static func samplingPeriod(_ inputs: [MergeInput]) throws -> UInt64? {
        var first: (source: String, hz: Int, periodNs: UInt64)?
        for input in inputs {
            let periods = (input.profile.cpuSamples.map { [$0.periodNs] } ?? []) + input.profile.locks.compactMap(\.spin?.periodNs)
            guard let periodNs = periods.first else { continue }
            let hz = input.profile.cpuSamples?.hz ?? Int(1_000_000_000 / periodNs)
            if let other = periods.first(where: { $0 != periodNs }) {
                throw UserError("\(shown(input.source)): spin samples with periods of \(periodNs) and \(other) ns: not a profile record wrote")
            }
            if let first, first.periodNs != periodNs {
                throw UserError("\(shown(first.source)) sampled at \(first.hz) Hz and \(shown(input.source)) at \(hz) Hz: "
                                + "spin is summed as samples x period, so merge recordings made with the same --spin-hz")
            }
            if first == nil { first = (input.source, hz, periodNs) }
        }
        return first?.periodNs
    }

    /// Every host's samples: counters and classes summed, stacks merged by thread name (prefixed with the
    /// host, `node-a/umount`), frames and class, not re-capped.
    private static func mergedSamples(_ profiles: [Profile], periodNs: UInt64) -> CPUSampleProfile? {
        let parts = profiles.compactMap { profile in profile.cpuSamples.map { (host: profile.hostname, samples: $0) } }
        guard let first = parts.first else { return nil }
        var counters = SampleCounters()
        for part in parts { counters.add(part.samples.counters) }
        let byClass = parts.flatMap(\.samples.byClass).merged(by: \.key) { same in
            KeyedSamples(key: same[0].key, samples: same.map(\.samples).saturatedSum())
        }
        let stacks = parts.flatMap { part in
            part.samples.stacks.map { stack in
                var stack = stack
                stack.process = "\(part.host)/\(stack.process ?? "?")"
                return stack
            }
        }
        return CPUSampleProfile(hz: first.samples.hz, periodNs: periodNs, counters: counters, byClass: byClass,
                                unattributedSpin: parts.map(\.samples.unattributedSpin).saturatedSum(),
                                stacks: mergedSampledStacks(stacks))
    }

    /// Each merged lock with the spin of every host's lock of that name and kind: samples summed and the
    /// estimate and interval computed again from the sum (at the one period); CPUs, sockets and processes
    /// keyed by host, containers merged by id, stacks by frames and class.
    private static func mergedSpin(_ profiles: [Profile], into locks: [LockProfile], periodNs: UInt64) -> [LockProfile] {
        var spins: [LockKey: [(host: String, spin: SpinProfile)]] = [:]
        for profile in profiles {
            for lock in profile.locks {
                guard let spin = lock.spin else { continue }
                spins[LockKey(name: lock.matchName, kind: lock.kind), default: []].append((profile.hostname, spin))
            }
        }
        return locks.map { lock in
            guard let parts = spins[LockKey(name: lock.matchName, kind: lock.kind)] else { return lock }
            func hostKeyed(_ slices: KeyPath<SpinProfile, [KeyedSamples]>) -> [KeyedSamples] {
                parts.flatMap { part in part.spin[keyPath: slices].map { KeyedSamples(key: "\(part.host)/\($0.key)", samples: $0.samples) } }
            }
            let spinsOnly = parts.map(\.spin)
            let samples = spinsOnly.map(\.time.samples).saturatedSum()
            // Inside and outside waits only when every host told them apart.
            let inside = spinsOnly.allSatisfy { $0.insideWaits != nil }
                ? spinsOnly.compactMap(\.insideWaits?.samples).saturatedSum() : nil
            var lock = lock
            lock.spin = SpinProfile(
                periodNs: periodNs, time: SampledTime(samples: samples, periodNs: periodNs),
                spinFunctionSamples: spinsOnly.map(\.spinFunctionSamples).saturatedSum(),
                pauseSamples: spinsOnly.map(\.pauseSamples).saturatedSum(), insideWaitSamples: inside,
                byCpu: hostKeyed(\.byCpu), bySocket: hostKeyed(\.bySocket),
                byContainer: spinsOnly.flatMap(\.byContainer).merged(by: \.key) { same in
                    KeyedSamples(key: same[0].key, samples: same.map(\.samples).saturatedSum())
                }.sorted { ($0.samples, $1.key) > ($1.samples, $0.key) },
                byProcess: hostKeyed(\.byProcess), stacks: mergedSampledStacks(spinsOnly.flatMap(\.stacks)))
            return lock
        }
    }

    private struct SampledStackKey: Hashable {
        var process: String?
        var frames: [String]
        var sampleClass: SampleClass
    }

    /// Stacks with the same thread name, frames and class as one, heaviest first.
    private static func mergedSampledStacks(_ stacks: [SampledStack]) -> [SampledStack] {
        stacks.merged(by: { SampledStackKey(process: $0.process, frames: $0.frames, sampleClass: $0.sampleClass) }) { same in
            SampledStack(frames: same[0].frames, samples: same.map(\.samples).saturatedSum(), sampleClass: same[0].sampleClass,
                         process: same[0].process)
        }.sorted { ($0.samples, $1.frames.joined(separator: ";")) > ($1.samples, $0.frames.joined(separator: ";")) }
    }

    // MARK: Inputs

    private static func checkHosts(_ inputs: [MergeInput]) throws {
        var sourceByHost: [String: String] = [:]
        for input in inputs {
            let host = input.profile.hostname
            if input.profile.locks.contains(where: { $0.byHost != nil }) {
                throw UserError("\(shown(input.source)) is already a merge (its locks have by_host): merge the hosts' own profiles instead")
            }
            guard !host.isEmpty else {
                throw UserError("\(shown(input.source)) has no hostname: the merge keeps each lock's waits by host")
            }
            if let earlier = sourceByHost[host] {
                throw UserError("\(shown(earlier)) and \(shown(input.source)) are both from host \(shown(host)): "
                                + "give one profile per host (by_host and the host/cpu keys tell hosts apart by name)")
            }
            sourceByHost[host] = input.source
        }
    }

    /// An RFC 3339 time, with or without a fraction of a second.
    static func startDate(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    private static func shown(_ text: String) -> String { TerminalText.escaped(text) }

    /// The values without repeats, in the order they first appear.
    private static func distinct<Value: Hashable>(_ values: [Value]) -> [Value] {
        var seen = Set<Value>()
        return values.filter { seen.insert($0).inserted }
    }

    // MARK: Recording

    /// The filters as given on the hosts: one value when every host agrees, else every host's values.
    private static func mergedRecording(_ recordings: [Recording]) -> Recording {
        let commands = distinct(recordings.map(\.command))
        var recording = Recording(locks: distinct(recordings.map(\.locks)).joined(separator: ","),
                                  lockAddresses: distinct(recordings.flatMap(\.lockAddresses)),
                                  minWaitNs: recordings.map(\.minWaitNs).max() ?? 0,
                                  pids: distinct(recordings.flatMap(\.pids)),
                                  containers: distinct(recordings.flatMap(\.containers)),
                                  command: commands.count == 1 ? commands[0] : [])
        // Redacted only when every part was: one unredacted host keeps its names in the merge.
        recording.redacted = recordings.allSatisfy { $0.redacted == true } ? true : nil
        return recording
    }

    // MARK: Locks

    private struct LockKey: Hashable {
        var name: String
        var kind: LockKind
    }

    /// One host's part of a merged lock.
    private struct HostLock {
        var host: String
        var lock: LockProfile
    }

    private static func mergedLocks(_ profiles: [Profile]) -> [LockProfile] {
        let labels = LockLabels(profiles)
        let parts = profiles.flatMap { profile in profile.locks.map { HostLock(host: profile.hostname, lock: $0) } }
        var groups: [LockKey: [HostLock]] = [:]
        for part in parts { groups[LockKey(name: part.lock.matchName, kind: part.lock.kind), default: []].append(part) }
        return groups.values.map { mergedLock($0, name: labels.label($0[0].lock)) }
            .sorted { ($0.stats.totalWaitNs, $0.name) > ($1.stats.totalWaitNs, $1.name) }
    }

    private static func mergedLock(_ parts: [HostLock], name: String) -> LockProfile {
        let locks = parts.map(\.lock)
        // Identity and address are the most-waited host's (addresses differ from host to host).
        let hottest = locks.max { $0.stats.totalWaitNs < $1.stats.totalWaitNs } ?? locks[0]
        let owners = locks.compactMap(\.owners)
        return LockProfile(
            name: name, identity: hottest.identity, kind: hottest.kind, address: hottest.address,
            instances: locks.map(\.instances).reduce(0) { $0.addingReportingOverflow($1).overflow ? .max : $0 + $1 },
            stats: .merged(locks.map(\.stats)), read: .merged(locks.map(\.read)), write: .merged(locks.map(\.write)),
            stacks: mergedStacks(locks.flatMap(\.stacks)),
            byCpu: hostKeyed(parts, \.byCpu), bySocket: hostKeyed(parts, \.bySocket), byNode: hostKeyed(parts, \.byNode),
            byLlc: hostKeyed(parts, \.byLlc), byContainer: mergedKeyed(locks.flatMap(\.byContainer)),
            byProcess: hostKeyed(parts, \.byProcess),
            handoffs: locks.flatMap(\.handoffs).merged(by: \.handoff) { same in
                HandoffStats(handoff: same[0].handoff, stats: .merged(same.map(\.stats)))
            },
            owners: owners.isEmpty ? nil : mergedOwners(owners.flatMap { $0 }),
            byHost: distinct(parts.map(\.host)).map { host in
                KeyedStats(key: host, stats: .merged(parts.filter { $0.host == host }.map(\.lock.stats)))
            })
    }

    /// Each host's slices with their keys prefixed by the host, `node-a/3`: CPU 3 of one host is not CPU 3 of another.
    private static func hostKeyed(_ parts: [HostLock], _ slices: KeyPath<LockProfile, [KeyedStats]>) -> [KeyedStats] {
        parts.flatMap { part in
            part.lock[keyPath: slices].map { KeyedStats(key: "\(part.host)/\($0.key)", stats: $0.stats) }
        }
    }

    /// Slices with the same key (a container id) as one, most wait first.
    private static func mergedKeyed(_ slices: [KeyedStats]) -> [KeyedStats] {
        slices.merged(by: \.key) { KeyedStats(key: $0[0].key, stats: .merged($0.map(\.stats))) }
            .sorted { ($0.stats.totalWaitNs, $1.key) > ($1.stats.totalWaitNs, $0.key) }
    }

    private struct ContextKey: Hashable {
        var cpu: Int
        var container: String
    }

    /// Stacks with the same frames as one; their contexts by CPU number and container (a context's CPU
    /// is a CPU number on whichever host it ran).
    private static func mergedStacks(_ stacks: [StackProfile]) -> [StackProfile] {
        stacks.merged(by: \.identity) { same in
            let contexts = same.flatMap(\.contexts).merged(by: { ContextKey(cpu: $0.cpu, container: $0.container) }) { parts in
                StackContext(cpu: parts[0].cpu, container: parts[0].container, count: parts.map(\.count).saturatedSum(),
                             totalWaitNs: parts.map(\.totalWaitNs).saturatedSum())
            }
            return StackProfile(frames: same[0].frames, userFrames: same[0].userFrames, count: same.map(\.count).saturatedSum(),
                                totalWaitNs: same.map(\.totalWaitNs).saturatedSum(), maxWaitNs: same.map(\.maxWaitNs).max() ?? 0,
                                contexts: contexts.sorted { ($0.totalWaitNs, $0.cpu, $0.container) > ($1.totalWaitNs, $1.cpu, $1.container) })
        }.sorted { ($0.totalWaitNs, $0.frames.count) > ($1.totalWaitNs, $1.frames.count) }
    }

    private struct OwnerKey: Hashable {
        var waiterContainer: String
        var ownerContainer: String
        var ownerPid: Int32
        var ownerComm: String
    }

    private static func mergedOwners(_ owners: [OwnerBlame]) -> [OwnerBlame] {
        owners.merged(by: { OwnerKey(waiterContainer: $0.waiterContainer, ownerContainer: $0.ownerContainer,
                                     ownerPid: $0.ownerPid, ownerComm: $0.ownerComm) }) { same in
            OwnerBlame(waiterContainer: same[0].waiterContainer, ownerContainer: same[0].ownerContainer,
                       ownerPid: same[0].ownerPid, ownerComm: same[0].ownerComm,
                       contentions: same.map(\.contentions).saturatedSum(), totalWaitNs: same.map(\.totalWaitNs).saturatedSum())
        }.sorted { $0.totalWaitNs > $1.totalWaitNs }
    }

    // MARK: Containers and mounts

    /// Containers by id. A container's p99 is the highest of its hosts' (the summary keeps no histogram).
    private static func mergedContainers(_ containers: [ContainerSummary]) -> [ContainerSummary] {
        containers.merged(by: \.id) { same in
            ContainerSummary(id: same[0].id, runtime: same[0].runtime, podUid: same.lazy.compactMap(\.podUid).first,
                             cgroup: same[0].cgroup, pod: same.lazy.compactMap(\.pod).first,
                             attribution: same.lazy.compactMap(\.attribution).first,
                             contentions: same.map(\.contentions).saturatedSum(),
                             totalWaitNs: same.map(\.totalWaitNs).saturatedSum(), p99WaitNs: same.map(\.p99WaitNs).max() ?? 0)
        }.sorted { ($0.totalWaitNs, $0.id) > ($1.totalWaitNs, $1.id) }
    }

    private static func mergedMounts(_ summaries: [MountSummary]) -> MountSummary? {
        guard !summaries.isEmpty else { return nil }
        let byContainer = summaries.flatMap(\.byContainer).merged(by: \.id) { same in
            ContainerMounts(id: same[0].id, runtime: same[0].runtime, pod: same.lazy.compactMap(\.pod).first,
                            attribution: same.lazy.compactMap(\.attribution).first, ops: same.map(\.ops).saturatedSum(),
                            bySyscall: mergedSyscalls(same.flatMap(\.bySyscall)), start: same.lazy.compactMap(\.start).first)
        }.sorted { ($0.ops, $0.id) > ($1.ops, $1.id) }
        let unlinked = summaries.compactMap(\.unlinked)
        return MountSummary(totalOps: summaries.map(\.totalOps).saturatedSum(),
                            bySyscall: mergedSyscalls(summaries.flatMap(\.bySyscall)), byContainer: byContainer,
                            unlinked: unlinked.isEmpty ? nil : unlinked.saturatedSum())
    }

    private static func mergedSyscalls(_ calls: [SyscallStats]) -> [SyscallStats] {
        calls.merged(by: \.syscall) { same in
            SyscallStats(syscall: same[0].syscall, stats: .merged(same.map(\.stats)), errors: same.map(\.errors).saturatedSum())
        }.sorted { $0.syscall < $1.syscall }
    }

    // MARK: Victims and timeline

    /// Every host's victims, their processes and holders prefixed with the host.
    private static func mergedVictims(_ profiles: [Profile]) -> [Victim]? {
        guard profiles.contains(where: { $0.victims != nil }) else { return nil }
        return profiles.flatMap { profile in
            (profile.victims ?? []).map { victim in
                var victim = victim
                victim.process = "\(profile.hostname)/\(victim.process)"
                victim.holders = victim.holders.map { holder in
                    var holder = holder
                    holder.process = "\(profile.hostname)/\(holder.process)"
                    return holder
                }
                return victim
            }
        }.sorted { ($0.totalWaitNs, $1.process) > ($1.totalWaitNs, $0.process) }
    }

    /// Bins summed by their offset from each recording's own start: second 3 of one host's recording
    /// goes with second 3 of every other's, whenever each started.
    private static func mergedTimeline(_ inputs: [MergeInput]) throws -> Timeline? {
        let timelines = inputs.compactMap { input in input.profile.timeline.map { (input.source, $0) } }
        guard let (_, first) = timelines.first else { return nil }
        if let (source, other) = timelines.first(where: { $0.1.binNs != first.binNs }) {
            throw UserError("\(shown(source))'s timeline has \(other.binNs) ns bins, the others' \(first.binNs) ns: timelines merge only with bins of one width")
        }
        let bins: [TimelineBin] = timelines.flatMap(\.1.bins).merged(by: \.startNs, summedBin).sorted { $0.startNs < $1.startNs }
        return Timeline(binNs: first.binNs, bins: bins)
    }

    /// Bins of the same second as one: counts and waits summed, the longest wait the longest.
    private static func summedBin(_ same: [TimelineBin]) -> TimelineBin {
        func sum(_ field: KeyPath<TimelineBin, UInt64>) -> UInt64 { same.map { $0[keyPath: field] }.saturatedSum() }
        return TimelineBin(startNs: same[0].startNs, containersStarted: sum(\.containersStarted), mountOps: sum(\.mountOps),
                           namespaceSemWaitNs: sum(\.namespaceSemWaitNs), mountLockWaitNs: sum(\.mountLockWaitNs),
                           otherWaitNs: sum(\.otherWaitNs), victimWaitNs: sum(\.victimWaitNs),
                           victimMaxWaitNs: same.map(\.victimMaxWaitNs).max() ?? 0)
    }
}

/// One profile to merge, and where it came from (for error messages).
public struct MergeInput: Sendable {
    public var source: String
    public var profile: Profile

    public init(source: String, profile: Profile) {
        self.source = source
        self.profile = profile
    }
}

extension Drops {
    /// Adds `other`'s counters to these, each stopping at `UInt64.max`.
    mutating func add(_ other: Drops) {
        for key in CodingKeys.allCases {
            self[keyPath: key.counter] = value(of: key).addingSaturated(other.value(of: key))
        }
    }
}

extension Drops.CodingKeys {
    /// The counter this key names (a switch, so a new counter cannot be left out of a merge).
    var counter: WritableKeyPath<Drops, UInt64> {
        switch self {
        case .ringbufFull: \.ringbufFull
        case .taskMapFull: \.taskMapFull
        case .nestingOverflow: \.nestingOverflow
        case .syscallMapFull: \.syscallMapFull
        case .stackFailed: \.stackFailed
        case .recursionMisses: \.recursionMisses
        case .cgroupNamesFull: \.cgroupNamesFull
        case .cgroupNamesEvicted: \.cgroupNamesEvicted
        case .cgroupNamesLost: \.cgroupNamesLost
        case .pathsTruncated: \.pathsTruncated
        case .provisionalOverflow: \.provisionalOverflow
        case .callstackFilterNoStack: \.callstackFilterNoStack
        case .userStackFailed: \.userStackFailed
        case .userMapsLost: \.userMapsLost
        }
    }
}

extension Array {
    /// The elements with equal keys combined into one by `combine`, in the order each key first appears.
    fileprivate func merged<Key: Hashable>(by key: (Element) -> Key, _ combine: ([Element]) -> Element) -> [Element] {
        var groups: [Key: [Element]] = [:]
        var order: [Key] = []
        for element in self {
            let k = key(element)
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(element)
        }
        return order.map { combine(groups[$0] ?? []) }
    }
}
