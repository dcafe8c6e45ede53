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
