import LockscopeCore

/// Which samples a flame graph or an export draws: lock waits (the default), or the on-CPU samples of
/// `record --spin-hz`, all of them or only those spinning on a lock. Each is its own graph: a sample's
/// weight is time waited in one and CPU time (samples x period) in the others, which do not add up.
public enum SampleType: String, CaseIterable, Sendable {
    /// Contended waits, per lock (what lockscope records by default).
    case wait
    /// Every on-CPU sample, one root per thread name: what the CPUs were doing.
    case cpu
    /// The samples spinning on a known lock, one root per lock.
    case spin

    /// The words for a frame's weight and count in tooltips and subtitles.
    public var amountWords: (time: String, timeDone: String, count: String) {
        switch self {
        case .wait: return ("wait", "waited", "contention")
        case .cpu: return ("on CPU", "on CPU", "sample")
        case .spin: return ("spinning", "spinning", "sample")
        }
    }

    /// The names of the two values exporters write (pprof sample types, speedscope profiles): a count,
    /// and a time in nanoseconds.
    public var valueNames: (count: String, time: String) {
        switch self {
        case .wait: return ("contentions", "wait")
        case .cpu: return ("samples", "cpu")
        case .spin: return ("samples", "spin")
        }
    }

    /// The default heading of its flame graph.
    public var title: String {
        switch self {
        case .wait: return "Lock wait time"
        case .cpu: return "On-CPU time (sampled)"
        case .spin: return "Spinning on locks, on CPU (sampled)"
        }
    }
}

public enum SampleProfiles {
    /// Refuses (one line) grouping on-CPU samples by CPU, socket or container: the exporters place a stack by
    /// its own contexts, which sampled stacks do not keep (a lock's spin has them by CPU, socket and container
    /// only as totals, `report --by`), so every frame would read `[cpu ?]`.
    public static func checkGrouping(_ grouping: StackGrouping, type: SampleType) throws {
        guard type != .wait, let dimension = grouping.dimensions.first(where: { $0 != .lock }) else { return }
        let report = type == .spin ? "; report --by \(dimension.rawValue) has each lock's spin samples by \(dimension.rawValue)" : ""
        throw UserError("--samples \(type.rawValue) stacks are not kept per \(dimension.rawValue): "
                        + "group them by lock only (--group lock)\(report)")
    }

    /// `profile` as the stack exporters draw `type`: itself for waits; for samples, a profile whose
    /// entries are thread names (cpu) or locks (spin), each stack weighing its samples and their CPU time
    /// (samples x period). Refused with one line when the profile has no samples.
    public static func view(_ profile: Profile, type: SampleType) throws -> Profile {
        guard type != .wait else { return profile }
        guard let samples = profile.cpuSamples else {
            throw UserError("the profile has no on-CPU samples (recorded with --spin-hz 0, or by an older lockscope): "
                            + "record again with --spin-hz, or draw --samples wait")
        }
        var view = profile
        switch type {
        case .wait:
            break
        case .cpu:
            var byProcess: [String: [SampledStack]] = [:]
            for stack in samples.stacks { byProcess[stack.process ?? "?", default: []].append(stack) }
            view.locks = byProcess.sorted { $0.key < $1.key }.map { process, stacks in
                entry(name: process, kind: .other, stacks: stacks, periodNs: samples.periodNs)
            }
        case .spin:
            view.locks = profile.locks.compactMap { lock in
                lock.spin.map { entry(name: lock.name, kind: lock.kind, stacks: $0.stacks, periodNs: $0.periodNs) }
            }
        }
        return view
    }

    /// `view` (a profile, or a samples view of one) with only the stacks that have a frame matching
    /// `filter` (`export`/`flamegraph --callstack-filter`): each entry weighs its kept stacks and nothing
    /// else, so the waits (or samples) without a stack, which cannot match, are left out too; entries
    /// with no kept stack go. The entries keep no breakdowns (by CPU, container...): those cannot be split
    /// by stack, and the exporters place stack waits by the stacks' own contexts.
    public static func matching(_ view: Profile, filter: CallstackFilter) -> (view: Profile, kept: WaitTally, all: WaitTally) {
        var matched = view
        var kept = WaitTally(), all = WaitTally()
        matched.locks = view.locks.compactMap { lock in
            all.add(count: lock.stats.contentions, ns: lock.stats.totalWaitNs)
            let stacks = lock.stacks.filter { filter.matches($0.frames) }
            guard !stacks.isEmpty else { return nil }
            var stats = WaitStats.empty
            stats.contentions = stacks.map(\.count).saturatedSum()
            stats.totalWaitNs = stacks.map(\.totalWaitNs).saturatedSum()
            stats.maxWaitNs = stacks.map(\.maxWaitNs).max() ?? 0
            kept.add(count: stats.contentions, ns: stats.totalWaitNs)
            return LockProfile(name: lock.name, identity: lock.identity, kind: lock.kind, address: lock.address,
                               instances: lock.instances, stats: stats, stacks: stacks)
        }
        return (matched, kept, all)
    }

    /// Waits (or samples) and their time, for saying what a filter kept.
    public struct WaitTally: Sendable, Equatable {
        public var count: UInt64 = 0
        public var ns: UInt64 = 0

        mutating func add(count: UInt64, ns: UInt64) {
            self.count = self.count.addingSaturated(count)
            self.ns = self.ns.addingSaturated(ns)
        }
    }

    private static func entry(name: String, kind: LockKind, stacks: [SampledStack], periodNs: UInt64) -> LockProfile {
        let count = stacks.reduce(0) { $0 + $1.samples }
        var stats = WaitStats.empty
        stats.contentions = count
        stats.totalWaitNs = count &* periodNs
        return LockProfile(name: name, identity: .caller, kind: kind, address: "0x0", stats: stats,
                           stacks: stacks.map { stack in
                               StackProfile(frames: stack.frames, count: stack.samples, totalWaitNs: stack.samples &* periodNs,
                                            maxWaitNs: periodNs, contexts: [])
                           })
    }
}
