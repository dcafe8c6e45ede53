import Foundation

// Sampled on-CPU time (`record --spin-hz`): what the kernel's sample map holds, how each sample is
// classified (in a known spin function, in a PAUSE loop, not spinning), which lock a spinning sample
// is attributed to, and the profile sections built from them (`LockProfile.spin`, `Profile.cpuSamples`).
// docs/how-it-works.md, "Spinning on CPU", explains the method, its estimator and its limits.

/// One key of the kernel's `spin_samples` map with its count: the samples taken with the same kernel
/// stack, on the same CPU, in the same cgroup and process, with the same flags.
public struct RecordedSample: Sendable, Equatable {
    /// Id in the sampler's stack map; negative when no kernel stack was captured.
    public var stackID: Int32
    public var cpu: UInt32
    public var cgroupID: UInt64
    public var pid: UInt32
    public var comm: String
    /// The CPU was in user mode (no kernel stack).
    public var user: Bool
    /// The instruction at or just before the sampled IP is PAUSE.
    public var pause: Bool
    /// The task was inside a traced wait (between contention_begin and contention_end): the sample's time
    /// is already part of that wait's time.
    public var inWait: Bool
    /// The mount-family syscall the thread was in, as its event names it; nil outside one.
    public var mountSyscall: SyscallID?
    public var count: UInt64

    public init(stackID: Int32, cpu: UInt32, cgroupID: UInt64, pid: UInt32, comm: String, user: Bool, pause: Bool,
                inWait: Bool = false, mountSyscall: SyscallID? = nil, count: UInt64) {
        self.stackID = stackID
        self.cpu = cpu
        self.cgroupID = cgroupID
        self.pid = pid
        self.comm = comm
        self.user = user
        self.pause = pause
        self.inWait = inWait
        self.mountSyscall = mountSyscall
        self.count = count
    }
}

/// One mount-family syscall: the thread that made it and when it began (`SyscallEvent.tid`, `beginNs`).
/// Where the samples inside a mount syscall go.
public enum MountSyscallTie: Equatable, Sendable {
    /// The container its paths or issuer tied it to, as its waits.
    case container(Container)
    /// Nothing tied it to a container: the sample stays with its cgroup's.
    case none
    /// It may have been tied, but the tie was not kept (`Aggregator.mountSyscallContainerCapacity`): the
    /// sample stays with its cgroup's and counts in `syscall_unlinked`.
    case forgotten
}

public struct SyscallID: Hashable, Sendable {
    public var tid: UInt32
    public var beginNs: UInt64

    public init(tid: UInt32, beginNs: UInt64) {
        self.tid = tid
        self.beginNs = beginNs
    }
}

/// The sampler's kernel counters (`enum lockscope_spin_counter`).
public struct SampleCounters: Codable, Sendable, Equatable {
    /// Every sample taken: each is exactly one of idle, filtered, user and kernel.
    public var samples: UInt64 = 0
    public var idle: UInt64 = 0
    /// A task record's --pid or --container filter leaves out (not kept).
    public var filtered: UInt64 = 0
    public var user: UInt64 = 0
    public var kernel: UInt64 = 0
    /// Kernel samples at a PAUSE instruction.
    public var pause: UInt64 = 0
    /// Kernel samples whose instruction bytes could not be read (never classified as PAUSE).
    public var textUnreadable: UInt64 = 0
    /// Kernel samples kept without a stack: they count, but cannot be classified or attributed.
    public var stackFailed: UInt64 = 0
    /// Samples lost: the kernel's sample map had no room for a new key.
    public var mapFull: UInt64 = 0
    /// Kernel samples of a task inside a traced wait (0 in profiles written before it was counted).
    public var inWait: UInt64 = 0
    /// Samples in a mount syscall kept without it (the map had no room for a key with it, or the collector
    /// no room for the syscall's container, `MountSyscallTie.forgotten`): their container is their cgroup's.
    public var syscallUnlinked: UInt64 = 0

    public init() {}

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case samples, idle, filtered, user, kernel, pause, textUnreadable, stackFailed, mapFull, inWait, syscallUnlinked

        /// The counter this key names (a switch, so a new counter cannot be left out of `add`).
        var counter: WritableKeyPath<SampleCounters, UInt64> {
            switch self {
            case .samples: \.samples
            case .idle: \.idle
            case .filtered: \.filtered
            case .user: \.user
            case .kernel: \.kernel
            case .pause: \.pause
            case .textUnreadable: \.textUnreadable
            case .stackFailed: \.stackFailed
            case .mapFull: \.mapFull
            case .inWait: \.inWait
            case .syscallUnlinked: \.syscallUnlinked
            }
        }
    }

    /// Adds `other`'s counters to these (`lockscope merge`), each stopping at `UInt64.max`.
    public mutating func add(_ other: SampleCounters) {
        for key in CodingKeys.allCases {
            let (sum, overflow) = self[keyPath: key.counter].addingReportingOverflow(other[keyPath: key.counter])
            self[keyPath: key.counter] = overflow ? .max : sum
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        samples = try c.decode(UInt64.self, forKey: .samples)
        idle = try c.decode(UInt64.self, forKey: .idle)
        filtered = try c.decodeIfPresent(UInt64.self, forKey: .filtered) ?? 0
        user = try c.decode(UInt64.self, forKey: .user)
        kernel = try c.decode(UInt64.self, forKey: .kernel)
        pause = try c.decode(UInt64.self, forKey: .pause)
        textUnreadable = try c.decode(UInt64.self, forKey: .textUnreadable)
        stackFailed = try c.decode(UInt64.self, forKey: .stackFailed)
        mapFull = try c.decode(UInt64.self, forKey: .mapFull)
        inWait = try c.decodeIfPresent(UInt64.self, forKey: .inWait) ?? 0
        syscallUnlinked = try c.decodeIfPresent(UInt64.self, forKey: .syscallUnlinked) ?? 0
    }
}

/// Everything the sampler recorded, read once when the recording stops.
public struct RecordedSamples: Sendable {
    public var hz: Int
    /// Nanoseconds of CPU clock between two samples of one CPU.
    public var periodNs: UInt64
    public var samples: [RecordedSample]
    public var counters: SampleCounters
    /// Kernel stacks by id, innermost frame (the sampled IP) first.
    public var stacks: [Int32: [UInt64]]

    public init(hz: Int, periodNs: UInt64, samples: [RecordedSample], counters: SampleCounters,
                stacks: [Int32: [UInt64]]) {
        self.hz = hz
        self.periodNs = periodNs
        self.samples = samples
        self.counters = counters
        self.stacks = stacks
    }
}

/// What a sample shows the CPU doing.
public enum SampleClass: String, Codable, Sendable, CaseIterable {
    /// In a known spin function (`SpinClassifier.spinFunctions`) within the innermost frames.
    case spinFunction = "spin_function"
    /// At a PAUSE instruction in another function: an inlined spin-wait loop (seqcount readers...).
    case pause
    /// In the kernel, not spinning.
    case kernel
    /// In user mode.
    case user
}

/// Classifies a sampled kernel stack.
public enum SpinClassifier {
    /// Functions whose whole body is a spin-wait: optimistic spinning of rwsems and mutexes, the OSQ
    /// queue they spin in, the queued spinlock and rwlock slow paths (native and paravirt).
    public static let spinFunctions: Set<String> = [
        "osq_lock", "rwsem_spin_on_owner", "rwsem_optimistic_spin", "mutex_spin_on_owner", "mutex_optimistic_spin",
        "native_queued_spin_lock_slowpath", "__pv_queued_spin_lock_slowpath", "queued_spin_lock_slowpath",
        "queued_read_lock_slowpath", "queued_write_lock_slowpath",
    ]
    /// How many innermost frames (the sampled function and its callers) are searched for a spin function:
    /// the sample may be in a helper a spin loop calls (the paravirt `vcpu_is_preempted` thunk under
    /// `rwsem_spin_on_owner`), but a spin function deep in the stack under an interrupt handler is not spinning.
    public static let spinFrameWindow = 3

    /// The index of the spin function within the innermost `spinFrameWindow` frames, if any.
    public static func spinFrameIndex(_ frames: [String]) -> Int? {
        frames.prefix(spinFrameWindow).firstIndex { spinFunctions.contains(LockNamer.baseName($0)) }
    }

    /// The class of a kernel sample with these frames (function names, innermost first).
    public static func classify(frames: [String], pause: Bool) -> SampleClass {
        if spinFrameIndex(frames) != nil { return .spinFunction }
        return pause ? .pause : .kernel
    }
}

/// The lock a spinning sample spins on, recognised from its call path with the table that names
/// contended locks (`KnownLock.table`).
public enum SpinAttribution {
    /// Functions that read the `mount_lock` seqlock with `read_seqbegin()` (or `__read_seqcount_begin`),
    /// whose inlined retry loop spins with PAUSE while a writer holds it (fs/namei.c, fs/namespace.c, fs/d_path.c).
    public static let mountLockReaders: Set<String> = [
        "path_init", "__legitimize_mnt", "legitimize_mnt", "lookup_mnt", "path_is_under", "choose_mountpoint",
        "choose_mountpoint_rcu", "follow_dotdot", "follow_dotdot_rcu", "handle_dots", "prepend_path", "d_path",
        "__d_path", "d_absolute_path",
    ]

    /// The kind of lock the frames (from the spinning frame outward) are acquiring: the first lock entry
    /// point or slow path among the lock primitives there; nil once a frame outside them is reached
    /// (a PAUSE in the scheduler called from a mutex's sleep is not spinning on the mutex).
    static func kind(_ frames: ArraySlice<String>) -> LockKind? {
        for frame in frames {
            let name = LockNamer.baseName(frame)
            guard LockNamer.isLockPrimitive(name) || SpinClassifier.spinFunctions.contains(name) else { return nil }
            if name.hasPrefix("rwsem_down_") || name.hasPrefix("down_write") || name.hasPrefix("down_read") {
                return .rwsem
            }
            if name.hasPrefix("__mutex_lock") || name.hasPrefix("mutex_lock") { return .mutex }
            if name == "queued_read_lock_slowpath" || name == "queued_write_lock_slowpath"
                || name.hasPrefix("_raw_read_lock") || name.hasPrefix("_raw_write_lock") {
                return .rwlock
            }
            if name.hasSuffix("queued_spin_lock_slowpath") || name.hasPrefix("_raw_spin_lock") { return .spinlock }
        }
        return nil
    }

    /// The lock's name and kind, nil when the call path matches no known lock.
    public static func lock(frames: [String], sampleClass: SampleClass) -> (name: String, kind: LockKind)? {
        let start: Int
        switch sampleClass {
        case .spinFunction:
            guard let index = SpinClassifier.spinFrameIndex(frames) else { return nil }
            start = index
        case .pause:
            guard let first = frames.first else { return nil }
            if mountLockReaders.contains(LockNamer.baseName(first)) { return (LockNamer.mountLock, .spinlock) }
            start = 0
        case .kernel, .user:
            return nil
        }
        let path = frames[start...]
        guard let kind = kind(path) else { return nil }
        return known(kind: kind, path: Array(path))
    }

    /// The table's lock of `kind` whose callers include the caller on `path` (innermost first, starting
    /// in the lock's code). A spinlock taken inside a sleeping lock's slow path is that lock's wait_lock.
    static func known(kind: LockKind, path: [String]) -> (name: String, kind: LockKind)? {
        let callerFrame = kind == .spinlock || kind == .rwlock ? LockNamer.spinCaller(in: path) : LockNamer.caller(in: path)
        guard let callerFrame else { return nil }
        let caller = LockNamer.baseName(callerFrame)
        if kind == .spinlock, LockNamer.isLockPrimitive(caller) {
            let outer = Array(path.drop { $0 != callerFrame })
            guard let sleeping = SpinAttribution.kind(outer[...]), sleeping != .spinlock,
                  let parent = known(kind: sleeping, path: outer) else { return nil }
            return ("\(parent.name).wait_lock", .spinlock)
        }
        guard let entry = KnownLock.table.first(where: { $0.kind == kind && $0.callers.contains(caller) }) else {
            return nil
        }
        return (entry.name, entry.kind)
    }
}

/// A count of samples under one key (a CPU, a socket, a container, a process).
public struct KeyedSamples: Codable, Sendable, Equatable {
    public var key: String
    public var samples: UInt64

    public init(key: String, samples: UInt64) {
        self.key = key
        self.samples = samples
    }
}

/// One sampled kernel stack (function names, innermost first) with its sample count.
public struct SampledStack: Codable, Sendable, Equatable {
    public var frames: [String]
    public var samples: UInt64
    public var sampleClass: SampleClass
    /// The process name (comm) the samples were taken in (in `cpu_samples`; nil in a lock's `spin`).
    public var process: String?

    public init(frames: [String], samples: UInt64, sampleClass: SampleClass, process: String? = nil) {
        self.frames = frames
        self.samples = samples
        self.sampleClass = sampleClass
        self.process = process
    }
}

/// A sampled CPU time: `samples` × the period, with the 95% confidence interval of that estimate.
public struct SampledTime: Codable, Sendable, Equatable {
    public var samples: UInt64
    public var estimatedNs: UInt64
    public var ciLowNs: UInt64
    public var ciHighNs: UInt64

    public init(samples: UInt64, periodNs: UInt64) {
        self.samples = samples
        let (low, high) = PoissonInterval.confidence95(samples)
        let period = Double(periodNs)
        estimatedNs = samples &* periodNs
        ciLowNs = UInt64((low * period).rounded())
        ciHighNs = UInt64((high * period).rounded())
    }

    /// Half the interval's width, the `± x` of a report.
    public var halfWidthNs: UInt64 { (ciHighNs - min(ciLowNs, ciHighNs)) / 2 }
}

/// 95% confidence interval for the mean of a Poisson count: exact (Garwood, from the Poisson
/// distribution itself) below 100, the normal approximation n ± 1.96·√n from there on.
public enum PoissonInterval {
    public static func confidence95(_ count: UInt64) -> (low: Double, high: Double) {
        let n = Double(count)
        if count >= 100 {
            let half = 1.96 * n.squareRoot()
            return (max(0, n - half), n + half)
        }
        // Garwood: low solves P(X >= n | low) = 0.025, high solves P(X <= n | high) = 0.025.
        let low = count == 0 ? 0 : bisect { 1 - cdf(count - 1, mean: $0) - 0.025 }
        let high = bisect { 0.025 - cdf(count, mean: $0) }
        return (low, high)
    }

    /// P(X <= k) for X ~ Poisson(mean).
    static func cdf(_ k: UInt64, mean: Double) -> Double {
        var term = exp(-mean)
        var sum = term
        if k == 0 { return sum }
        for i in 1...k {
            term *= mean / Double(i)
            sum += term
        }
        return min(sum, 1)
    }

    /// The root in [0, 400] of `f`, increasing in its argument.
    private static func bisect(_ f: (Double) -> Double) -> Double {
        var low = 0.0
        var high = 400.0
        for _ in 0..<100 {
            let mid = (low + high) / 2
            if f(mid) < 0 { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }
}

/// Whether two sampled counts differ by more than sampling error: the two-sample Poisson test (conditional
/// form). With `base` samples over exposure `baseExposure` and `current` over `currentExposure` (each a
/// recording's duration over its sampling period), equal rates make `current`, given the total n, binomial
/// with p = currentExposure / (both exposures). `pValue` is the one-sided tail in the direction observed:
/// exact below 100000 samples, the normal approximation (with continuity correction) from there on.
public enum PoissonRateTest {
    public static func pValue(base: UInt64, baseExposure: Double, current: UInt64, currentExposure: Double) -> Double {
        let n = base &+ current
        guard n > 0, baseExposure > 0, currentExposure > 0 else { return 1 }
        let p = currentExposure / (baseExposure + currentExposure)
        let expected = Double(n) * p
        let upper = Double(current) >= expected
        if n >= 100_000 {
            let sd = (Double(n) * p * (1 - p)).squareRoot()
            let z = upper ? (Double(current) - 0.5 - expected) / sd : (expected - Double(current) - 0.5) / sd
            return 0.5 * erfc(z / 2.0.squareRoot())
        }
        // The tail's terms from the binomial's log-probabilities, summed from the largest.
        func logGamma(_ x: Double) -> Double {
            var sign: Int32 = 0
            return lgamma_r(x, &sign)  // the reentrant one: lgamma sets a global
        }
        let logP = log(p), logQ = log1p(-p), logNFactorial = logGamma(Double(n) + 1)
        func logTerm(_ k: UInt64) -> Double {
            logNFactorial - logGamma(Double(k) + 1) - logGamma(Double(n - k) + 1) + Double(k) * logP + Double(n - k) * logQ
        }
        let tail = upper ? Array(current...n) : Array(0...current)
        let terms = tail.map(logTerm)
        let largest = terms.max() ?? 0
        return min(1, exp(largest) * terms.reduce(0) { $0 + exp($1 - largest) })
    }

    /// Whether the counts differ at the 5% level, two-sided (each tail 2.5%).
    public static func differs(base: UInt64, baseExposure: Double, current: UInt64, currentExposure: Double) -> Bool {
        pValue(base: base, baseExposure: baseExposure, current: current, currentExposure: currentExposure) <= 0.025
    }
}

/// The spinning a lock's samples show: `LockProfile.spin`.
public struct SpinProfile: Codable, Sendable, Equatable {
    /// Nanoseconds between two samples of one CPU.
    public var periodNs: UInt64
    /// Samples attributed to the lock, as CPU time with its 95% confidence interval.
    public var time: SampledTime
    /// Of those, how many were in a spin function and how many at a PAUSE.
    public var spinFunctionSamples: UInt64
    public var pauseSamples: UInt64
    /// The part of `time` no tracepoint sees: samples of tasks outside any traced wait (optimistic spinning
    /// before contention_begin, seqcount readers). Nil in profiles written before samples were told apart.
    public var outsideWaits: SampledTime?
    /// The part of `time` inside traced waits (between contention_begin and contention_end, such as an rwsem
    /// writer's hand-off spin): already counted in the waiting time. Nil when `outsideWaits` is.
    public var insideWaits: SampledTime?
    public var byCpu: [KeyedSamples]
    public var bySocket: [KeyedSamples]
    public var byContainer: [KeyedSamples]
    public var byProcess: [KeyedSamples]
    public var stacks: [SampledStack]

    public init(periodNs: UInt64, time: SampledTime, spinFunctionSamples: UInt64, pauseSamples: UInt64,
                insideWaitSamples: UInt64?, byCpu: [KeyedSamples], bySocket: [KeyedSamples],
                byContainer: [KeyedSamples], byProcess: [KeyedSamples], stacks: [SampledStack]) {
        self.periodNs = periodNs
        self.time = time
        self.spinFunctionSamples = spinFunctionSamples
        self.pauseSamples = pauseSamples
        if let inside = insideWaitSamples {
            precondition(inside <= time.samples, "samples inside waits are a part of the lock's samples")
            insideWaits = SampledTime(samples: inside, periodNs: periodNs)
            outsideWaits = SampledTime(samples: time.samples - inside, periodNs: periodNs)
        }
        self.byCpu = byCpu
        self.bySocket = bySocket
        self.byContainer = byContainer
        self.byProcess = byProcess
        self.stacks = stacks
    }
}

/// All samples of the recording: `Profile.cpuSamples`, what the on-CPU flame graph is drawn from.
public struct CPUSampleProfile: Codable, Sendable, Equatable {
    public var hz: Int
    public var periodNs: UInt64
    /// The kernel's counters (idle, user, kernel, PAUSE, and every loss).
    public var counters: SampleCounters
    /// Kept samples by class; `spin_function` and `pause` are the spinning ones.
    public var byClass: [KeyedSamples]
    /// Spinning samples no known lock's call path matched.
    public var unattributedSpin: UInt64
    /// Samples (kernel and user) by thread name, stack and class, heaviest first: the `maxStacks` heaviest,
    /// then the rest as one `[other stacks]` per thread name and class.
    public var stacks: [SampledStack]

    public init(hz: Int, periodNs: UInt64, counters: SampleCounters, byClass: [KeyedSamples], unattributedSpin: UInt64,
                stacks: [SampledStack]) {
        self.hz = hz
        self.periodNs = periodNs
        self.counters = counters
        self.byClass = byClass
        self.unattributedSpin = unattributedSpin
        self.stacks = stacks
    }

    /// Samples of one class.
    public func samples(_ sampleClass: SampleClass) -> UInt64 {
        byClass.first { $0.key == sampleClass.rawValue }?.samples ?? 0
    }

    public static let maxStacks = 2000
}

/// Builds the spin sections of a profile from what the sampler recorded.
public struct SpinProfileBuilder {
    public static let maxStacksPerLock = 50
    public static let userFrame = "[user]"
    public static let noStackFrame = "[no stack]"
    public static let otherStacksFrame = "[other stacks]"

    public let symbols: Kallsyms?
    public let topology: Topology?
    public let container: (UInt64) -> Container
    /// The container a mount syscall was tied to by its paths or issuer (`Aggregator.mountSyscallTie`), as
    /// its waits are; otherwise the sample stays in its cgroup's container.
    public let syscallTie: (SyscallID) -> MountSyscallTie
    public let selection: LockSelection

    public init(symbols: Kallsyms?, topology: Topology?, container: @escaping (UInt64) -> Container,
                syscallTie: @escaping (SyscallID) -> MountSyscallTie = { _ in .none }, selection: LockSelection) {
        self.symbols = symbols
        self.topology = topology
        self.container = container
        self.syscallTie = syscallTie
        self.selection = selection
    }

    /// Function names of a stack, innermost first (`name [module]` for modules, the address when unknown).
    public func frames(_ addresses: [UInt64]) -> [String] {
        addresses.map { address in
            guard let symbol = symbols?.function(at: address) else { return "0x" + String(address, radix: 16) }
            return symbol.module.map { "\(symbol.name) [\($0)]" } ?? symbol.name
        }
    }

    /// One stack of `cpu_samples`: the same frames sampled at a PAUSE and elsewhere are two.
    private struct ProcessStack: Hashable {
        var process: String
        var frames: [String]
        var sampleClass: SampleClass
    }

    private struct StackKey: Hashable {
        var frames: [String]
        var sampleClass: SampleClass
    }

    private struct LockKey: Hashable {
        var name: String
        var kind: LockKind
    }

    private struct LockSamples {
        var spinFunction: UInt64 = 0
        var pause: UInt64 = 0
        var insideWaits: UInt64 = 0
        var byCpu: [String: UInt64] = [:]
        var bySocket: [String: UInt64] = [:]
        var byContainer: [String: UInt64] = [:]
        var byProcess: [String: UInt64] = [:]
        var stacks: [StackKey: UInt64] = [:]
    }

    /// Adds `spin` to the locks the samples are attributed to (adding lock entries, without waits, for
    /// locks that were only spun on) and `cpu_samples` to the profile.
    public func apply(_ recorded: RecordedSamples, to profile: inout Profile) {
        var frameCache: [Int32: [String]] = [:]
        var byClass: [SampleClass: UInt64] = [:]
        var locks: [LockKey: LockSamples] = [:]
        var unattributed: UInt64 = 0
        var allStacks: [ProcessStack: UInt64] = [:]
        var containerIDs: [UInt64: String] = [:]
        var counters = recorded.counters

        for sample in recorded.samples {
            let tie = sample.mountSyscall.map(syscallTie) ?? .none
            if tie == .forgotten { counters.syscallUnlinked += sample.count }
            let frames: [String]
            if sample.user {
                frames = [SpinProfileBuilder.userFrame]
            } else if sample.stackID < 0 {
                frames = [SpinProfileBuilder.noStackFrame]
            } else if let cached = frameCache[sample.stackID] {
                frames = cached
            } else {
                frames = recorded.stacks[sample.stackID].map(self.frames) ?? [SpinProfileBuilder.noStackFrame]
                frameCache[sample.stackID] = frames
            }
            let sampleClass: SampleClass = sample.user ? .user
                : sample.stackID < 0 ? (sample.pause ? .pause : .kernel)
                : SpinClassifier.classify(frames: frames, pause: sample.pause)
            byClass[sampleClass, default: 0] += sample.count
            let process = sample.comm.isEmpty ? "?" : sample.comm
            allStacks[ProcessStack(process: process, frames: frames, sampleClass: sampleClass), default: 0] += sample.count

            guard sampleClass == .spinFunction || sampleClass == .pause else { continue }
            guard let lock = SpinAttribution.lock(frames: frames, sampleClass: sampleClass) else {
                unattributed += sample.count
                continue
            }
            let containerID: String
            if case .container(let attributed) = tie {
                containerID = attributed.id
            } else if let known = containerIDs[sample.cgroupID] {
                containerID = known
            } else {
                containerID = container(sample.cgroupID).id
                containerIDs[sample.cgroupID] = containerID
            }
            var entry = locks[LockKey(name: lock.name, kind: lock.kind), default: LockSamples()]
            if sampleClass == .spinFunction { entry.spinFunction += sample.count } else { entry.pause += sample.count }
            if sample.inWait { entry.insideWaits += sample.count }
            entry.byCpu[String(sample.cpu), default: 0] += sample.count
            if let topology {
                let socket = topology.cpu(Int(sample.cpu)).map { String($0.socket) } ?? "unknown"
                entry.bySocket[socket, default: 0] += sample.count
            }
            entry.byContainer[containerID, default: 0] += sample.count
            entry.byProcess["\(process)[\(sample.pid)]", default: 0] += sample.count
            entry.stacks[StackKey(frames: frames, sampleClass: sampleClass), default: 0] += sample.count
            locks[LockKey(name: lock.name, kind: lock.kind)] = entry
        }

        for (key, samples) in locks where selection.keeps(key.name) {
            let spin = spinProfile(samples, periodNs: recorded.periodNs)
            // The entry of that name and kind; a merged name carries its kind (`name (kind)`).
            if let index = profile.locks.firstIndex(where: {
                $0.kind == key.kind && ($0.name == key.name || $0.name == "\(key.name) (\(key.kind.rawValue))")
            }) {
                profile.locks[index].spin = spin
            } else {
                var lock = LockProfile(name: key.name, identity: .inferred, kind: key.kind, address: "0x0", instances: 0,
                                       stats: .empty)
                lock.spin = spin
                profile.locks.append(lock)
            }
        }

        var stacks = allStacks.map { key, samples in
            SampledStack(frames: key.frames, samples: samples, sampleClass: key.sampleClass, process: key.process)
        }.sorted { ($0.samples, $1.frames.joined(separator: ";")) > ($1.samples, $0.frames.joined(separator: ";")) }
        if stacks.count > CPUSampleProfile.maxStacks {
            // The rest summed per thread name and class, so that both still add up.
            var rest: [ProcessStack: UInt64] = [:]
            for stack in stacks[CPUSampleProfile.maxStacks...] {
                rest[ProcessStack(process: stack.process ?? "?", frames: [SpinProfileBuilder.otherStacksFrame],
                                  sampleClass: stack.sampleClass), default: 0] += stack.samples
            }
            stacks = Array(stacks.prefix(CPUSampleProfile.maxStacks)) + rest.map { key, samples in
                SampledStack(frames: key.frames, samples: samples, sampleClass: key.sampleClass, process: key.process)
            }.sorted { ($0.samples, $1.process ?? "") > ($1.samples, $0.process ?? "") }
        }
        profile.cpuSamples = CPUSampleProfile(
            hz: recorded.hz, periodNs: recorded.periodNs, counters: counters,
            byClass: SampleClass.allCases.map { KeyedSamples(key: $0.rawValue, samples: byClass[$0] ?? 0) },
            unattributedSpin: unattributed, stacks: stacks)
    }

    /// The `maxProcessesPerLock` heaviest processes, the others summed under `[other processes]`, as waits are.
    private func capped(_ processes: [KeyedSamples]) -> [KeyedSamples] {
        guard processes.count > Aggregator.maxProcessesPerLock else { return processes }
        let rest = processes[Aggregator.maxProcessesPerLock...].reduce(0) { $0 + $1.samples }
        return Array(processes.prefix(Aggregator.maxProcessesPerLock))
            + [KeyedSamples(key: Aggregator.otherProcessesKey, samples: rest)]
    }

    private func spinProfile(_ samples: LockSamples, periodNs: UInt64) -> SpinProfile {
        func keyed(_ counts: [String: UInt64], numeric: Bool) -> [KeyedSamples] {
            let sorted = numeric
                ? counts.sorted { (Int($0.key) ?? .max, $0.key) < (Int($1.key) ?? .max, $1.key) }
                : counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
            return sorted.map { KeyedSamples(key: $0.key, samples: $0.value) }
        }
        var stacks = samples.stacks.map { SampledStack(frames: $0.key.frames, samples: $0.value, sampleClass: $0.key.sampleClass) }
            .sorted { ($0.samples, $1.frames.joined(separator: ";")) > ($1.samples, $0.frames.joined(separator: ";")) }
        if stacks.count > SpinProfileBuilder.maxStacksPerLock {
            let rest = stacks[(SpinProfileBuilder.maxStacksPerLock - 1)...].reduce(0) { $0 + $1.samples }
            stacks = Array(stacks.prefix(SpinProfileBuilder.maxStacksPerLock - 1))
                + [SampledStack(frames: [SpinProfileBuilder.otherStacksFrame], samples: rest, sampleClass: .spinFunction)]
        }
        return SpinProfile(
            periodNs: periodNs, time: SampledTime(samples: samples.spinFunction + samples.pause, periodNs: periodNs),
            spinFunctionSamples: samples.spinFunction, pauseSamples: samples.pause, insideWaitSamples: samples.insideWaits,
            byCpu: keyed(samples.byCpu, numeric: true), bySocket: keyed(samples.bySocket, numeric: true),
            byContainer: keyed(samples.byContainer, numeric: false),
            byProcess: capped(keyed(samples.byProcess, numeric: false)),
            stacks: stacks)
    }
}

extension Redactor {
    /// A lock's spin section with its containers, processes and addresses in stacks pseudonymized.
    func redactSpin(_ spin: SpinProfile) -> SpinProfile {
        var spin = spin
        spin.byContainer = spin.byContainer.map { KeyedSamples(key: containerID($0.key), samples: $0.samples) }
        spin.byProcess = spin.byProcess.map { KeyedSamples(key: processKey($0.key), samples: $0.samples) }
        spin.stacks = spin.stacks.map(redactStack)
        return spin
    }

    /// Every sample's stack with addresses pseudonymized, and its thread name.
    func redactSamples(_ samples: CPUSampleProfile) -> CPUSampleProfile {
        var samples = samples
        samples.stacks = samples.stacks.map(redactStack)
        return samples
    }

    private func redactStack(_ stack: SampledStack) -> SampledStack {
        var stack = stack
        stack.frames = stack.frames.map(addresses)
        stack.process = stack.process.map(programName)
        return stack
    }
}
