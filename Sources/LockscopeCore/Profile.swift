import Foundation

/// A recorded lock-contention profile: what `lockscope record` writes and every other command reads.
///
/// Serialised as JSON with snake_case keys (`docs/profile-format.md`). The schema string carries a
/// major version; readers accept any minor additions (unknown keys are ignored) and refuse other majors.
public struct Profile: Codable, Sendable, Equatable {
    /// The schema this build writes.
    public static let currentSchema = "lockscope.profile/1"

    public var schema: String = Profile.currentSchema
    public var hostname: String
    public var kernel: String
    /// RFC 3339 time the recording started.
    public var startedAt: String
    public var durationNs: UInt64
    /// Events received from the kernel (waits and mount syscalls).
    public var events: UInt64
    /// Events lost on the way (sum of `drops`).
    public var dropped: UInt64
    /// Every way data was lost, by cause.
    public var drops: Drops
    /// What was recorded: filters and the command profiled, as given on the command line.
    public var recording: Recording
    public var topology: Topology?
    public var containers: [ContainerSummary]
    public var mounts: MountSummary?
    public var locks: [LockProfile]
    /// Processes that waited but issued no mount syscall (absent in profiles without mount syscalls).
    public var victims: [Victim]?
    /// The recording second by second (absent in profiles written before it was kept).
    public var timeline: Timeline?
    /// Every on-CPU sample of `record --spin-hz` (nil when sampling was off): see SpinSamples.swift.
    public var cpuSamples: CPUSampleProfile?
    /// Lock wait per thread across the profile's locks, heaviest first (`report --by thread`, perf lock
    /// contention -t); absent in profiles written before it was kept.
    public var threads: [ThreadStats]?

    public init(hostname: String, kernel: String, startedAt: String, durationNs: UInt64, events: UInt64,
                drops: Drops, recording: Recording, topology: Topology?, containers: [ContainerSummary],
                mounts: MountSummary?, locks: [LockProfile], victims: [Victim]? = nil, timeline: Timeline? = nil,
                threads: [ThreadStats]? = nil) {
        self.hostname = hostname
        self.kernel = kernel
        self.startedAt = startedAt
        self.durationNs = durationNs
        self.events = events
        self.dropped = drops.total
        self.drops = drops
        self.recording = recording
        self.topology = topology
        self.containers = containers
        self.mounts = mounts
        self.locks = locks
        self.victims = victims
        self.timeline = timeline
        self.threads = threads
    }

    /// Share of produced events that were lost, 0...1 (in Double: a crafted profile's counts may not add up in 64 bits).
    public var dropRatio: Double {
        let produced = Double(events) + Double(dropped)
        return produced == 0 ? 0 : Double(dropped) / produced
    }
}

/// Counts of lost data, by cause. `ringbuf_full`, `task_map_full`, `nesting_overflow`, `syscall_map_full`
/// and `recursion_misses` lose events; `stack_failed` events arrive without a call stack; the
/// `cgroup_names_*` counters lose container names, not events.
public struct Drops: Codable, Sendable, Equatable {
    public var ringbufFull: UInt64 = 0
    public var taskMapFull: UInt64 = 0
    public var nestingOverflow: UInt64 = 0
    public var syscallMapFull: UInt64 = 0
    public var stackFailed: UInt64 = 0
    /// Contention tracepoint hits the kernel did not run lockscope's programs for, because a BPF program
    /// was already running on that CPU (locks contended inside BPF code). Their waits are not seen.
    public var recursionMisses: UInt64 = 0
    /// Attempts to keep a cgroup's name that found the kernel's table full (profiles before the table
    /// evicted; now always 0).
    public var cgroupNamesFull: UInt64 = 0
    /// Cgroup names the kernel's table evicted, least recently used first, to make room for new ones.
    /// Lockscope reads the table every second, so an evicted name is usually already kept.
    public var cgroupNamesEvicted: UInt64 = 0
    /// Cgroups with recorded waits or syscalls whose names were never learned (evicted before they were
    /// read, and gone from the cgroup tree by the end): their containers show as `cgroup:<id>`.
    public var cgroupNamesLost: UInt64 = 0
    /// Mount syscalls whose path was longer than the kernel side keeps (256 bytes): they were attributed
    /// by issuer or cgroup when the cut path named no container. (Options are kept to 512 bytes, which
    /// hold the first lowerdir entry attribution reads: a cut there loses nothing and is not counted.)
    public var pathsTruncated: UInt64 = 0
    /// Waits on static kernel locks held while namespace_sem's and mount_lock's addresses were being
    /// learned (`--locks mount`), lost because too many were held at once.
    public var provisionalOverflow: UInt64 = 0
    /// Waits `record --callstack-filter` left out because they had no stack to match (the capture failed:
    /// see `stack_failed`), so it cannot say whether they would have matched.
    public var callstackFilterNoStack: UInt64 = 0
    /// Waits recorded without the user stack `--user-stacks` asked for: the walk gave no frame.
    public var userStackFailed: UInt64 = 0
    /// Processes with user stacks that exited before their mappings were read: their frames show as `[unknown]`.
    public var userMapsLost: UInt64 = 0

    public init() {}

    /// The profile's key for each counter; `value(of:)` switches over every case, so a new counter
    /// cannot be left out of the warnings that list them.
    public enum CodingKeys: String, CodingKey, CaseIterable, Sendable {
        case ringbufFull, taskMapFull, nestingOverflow, syscallMapFull, stackFailed, recursionMisses, cgroupNamesFull
        case cgroupNamesEvicted, cgroupNamesLost, pathsTruncated, provisionalOverflow, callstackFilterNoStack
        case userStackFailed, userMapsLost

        /// The key as written in profiles.
        public var profileKey: String {
            rawValue.reduce(into: "") { key, character in
                if character.isUppercase { key += "_" + character.lowercased() } else { key.append(character) }
            }
        }

        /// What the user can do about it, when there is something.
        public var advice: String? {
            switch self {
            case .ringbufFull: "raise --ringbuf-size or set a --min-wait"
            case .taskMapFull, .syscallMapFull: "more tasks waited at once than the kernel table holds"
            case .nestingOverflow: "more nested waits in one task than lockscope follows"
            case .stackFailed: "those events have no call stack"
            case .recursionMisses: "waits contended inside BPF programs are not seen"
            case .cgroupNamesFull: nil
            case .cgroupNamesEvicted: "names read before eviction are kept"
            case .cgroupNamesLost: "their containers show as cgroup:<id>"
            case .pathsTruncated: "their paths were cut; attribution used what was kept"
            case .provisionalOverflow: "waits before the mount locks were recognised; --locks all keeps every wait"
            case .callstackFilterNoStack: "waits without a stack could not be matched by --callstack-filter"
            case .userStackFailed: "those waits have no user stack"
            case .userMapsLost: "their user frames show as [unknown]"
            }
        }
    }

    public func value(of key: CodingKeys) -> UInt64 {
        switch key {
        case .ringbufFull: ringbufFull
        case .taskMapFull: taskMapFull
        case .nestingOverflow: nestingOverflow
        case .syscallMapFull: syscallMapFull
        case .stackFailed: stackFailed
        case .recursionMisses: recursionMisses
        case .cgroupNamesFull: cgroupNamesFull
        case .cgroupNamesEvicted: cgroupNamesEvicted
        case .cgroupNamesLost: cgroupNamesLost
        case .pathsTruncated: pathsTruncated
        case .provisionalOverflow: provisionalOverflow
        case .callstackFilterNoStack: callstackFilterNoStack
        case .userStackFailed: userStackFailed
        case .userMapsLost: userMapsLost
        }
    }

    /// Causes added in later minor versions decode as 0 from older profiles.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func count(_ key: CodingKeys) throws -> UInt64 { try c.decodeIfPresent(UInt64.self, forKey: key) ?? 0 }
        ringbufFull = try count(.ringbufFull)
        taskMapFull = try count(.taskMapFull)
        nestingOverflow = try count(.nestingOverflow)
        syscallMapFull = try count(.syscallMapFull)
        stackFailed = try count(.stackFailed)
        recursionMisses = try count(.recursionMisses)
        cgroupNamesFull = try count(.cgroupNamesFull)
        cgroupNamesEvicted = try count(.cgroupNamesEvicted)
        cgroupNamesLost = try count(.cgroupNamesLost)
        pathsTruncated = try count(.pathsTruncated)
        provisionalOverflow = try count(.provisionalOverflow)
        callstackFilterNoStack = try count(.callstackFilterNoStack)
        userStackFailed = try count(.userStackFailed)
        userMapsLost = try count(.userMapsLost)
    }

    /// Each counter less `earlier`'s (stopping at zero): the losses since `earlier` was read.
    public func subtracting(_ earlier: Drops) -> Drops {
        func since(_ key: WritableKeyPath<Drops, UInt64>) -> UInt64 { self[keyPath: key] - min(self[keyPath: key], earlier[keyPath: key]) }
        var drops = Drops()
        drops.ringbufFull = since(\.ringbufFull)
        drops.taskMapFull = since(\.taskMapFull)
        drops.nestingOverflow = since(\.nestingOverflow)
        drops.syscallMapFull = since(\.syscallMapFull)
        drops.stackFailed = since(\.stackFailed)
        drops.recursionMisses = since(\.recursionMisses)
        drops.cgroupNamesFull = since(\.cgroupNamesFull)
        drops.cgroupNamesEvicted = since(\.cgroupNamesEvicted)
        drops.cgroupNamesLost = since(\.cgroupNamesLost)
        drops.pathsTruncated = since(\.pathsTruncated)
        drops.provisionalOverflow = since(\.provisionalOverflow)
        return drops
    }

    /// Events lost (stack failures lose only the stack, not the event).
    public var total: UInt64 {
        ringbufFull.addingSaturated(taskMapFull).addingSaturated(nestingOverflow).addingSaturated(syscallMapFull)
            .addingSaturated(recursionMisses).addingSaturated(provisionalOverflow).addingSaturated(callstackFilterNoStack)
    }

    /// Every counter that is not zero, in the profile's order.
    public var nonZero: [(key: CodingKeys, value: UInt64)] {
        CodingKeys.allCases.map { ($0, value(of: $0)) }.filter { $0.1 > 0 }
    }
}

extension Profile {
    /// The end-of-recording warning: every non-zero loss counter by its profile name, with what it
    /// means or what to do; nil when every counter is zero.
    public var lossWarning: String? {
        drops.nonZero.isEmpty ? nil : Units.lossSummary(self)
    }
}

/// How a recording was made.
public struct Recording: Codable, Sendable, Equatable {
    /// The `--locks` selection (`mount`, `all`, or names).
    public var locks: String
    public var lockAddresses: [String]
    public var minWaitNs: UInt64
    public var pids: [Int32]
    public var containers: [String]
    /// The command profiled (`record -- COMMAND`), empty for a whole-machine recording.
    public var command: [String]
    /// True in a profile that `lockscope redact` (or `record --redact`) stripped of identifying values;
    /// absent otherwise.
    public var redacted: Bool?
    /// `--cpu`: the CPUs whose waits were kept (a CPU list, as given); absent when every CPU's were.
    public var cpus: String?
    /// `--tid`: the threads whose waits were kept; absent when every thread's were.
    public var tids: [Int32]?
    /// `--callstack-filter`: waits were kept only when a frame of their kernel stack contains one of these.
    public var callstackFilter: [String]?
    /// `--max-stack`: kernel frames kept per stack, when not the default.
    public var maxStack: Int?
    /// The `--user-stacks` setting (mount, all, none); absent in profiles from before user stacks.
    public var userStacks: String?

    public init(locks: String = "all", lockAddresses: [String] = [], minWaitNs: UInt64 = 0, pids: [Int32] = [],
                containers: [String] = [], command: [String] = [], userStacks: String? = nil) {
        self.userStacks = userStacks
        self.locks = locks
        self.lockAddresses = lockAddresses
        self.minWaitNs = minWaitNs
        self.pids = pids
        self.containers = containers
        self.command = command
    }
}

/// How a lock got its name.
public enum LockIdentity: String, Codable, Sendable, CaseIterable {
    /// A data symbol from /proc/kallsyms covers the lock's address.
    case symbol
    /// Recognised from the call paths that contend on it (namespace_sem, mount_lock).
    case inferred
    /// Named after the function that contended on it, like perf (`caller+0xoff`).
    case caller
}

extension LockProfile {
    /// The name this lock is matched by across profiles (diff, check, budgets): its name without the
    /// ` (mutex)` that a profile adds when locks of several kinds share a caller name, which depends on
    /// what else happened to be contended. Profiles written before this was stated read the same way.
    public var matchName: String {
        let suffix = " (\(kind.rawValue))"
        return name.hasSuffix(suffix) ? String(name.dropLast(suffix.count)) : name
    }
}

/// The kind of lock, from the contention flags.
public enum LockKind: String, Codable, Sendable, CaseIterable {
    case spinlock, rwlock, rwsem, mutex, rtmutex
    case percpuRwsem = "percpu-rwsem"
    case other
}

/// Wait statistics: the same fields for a lock, and for each slice of it (a CPU, a container...).
public struct WaitStats: Codable, Sendable, Equatable {
    public var contentions: UInt64
    public var totalWaitNs: UInt64
    public var minWaitNs: UInt64
    public var maxWaitNs: UInt64
    public var p50WaitNs: UInt64
    public var p90WaitNs: UInt64
    public var p99WaitNs: UInt64
    public var p999WaitNs: UInt64
    /// Non-empty power-of-two buckets: `lower_ns <= wait < upper_ns`.
    public var histogram: [HistogramBucket]

    public init(contentions: UInt64, totalWaitNs: UInt64, minWaitNs: UInt64, maxWaitNs: UInt64, p50WaitNs: UInt64,
                p90WaitNs: UInt64, p99WaitNs: UInt64, p999WaitNs: UInt64, histogram: [HistogramBucket]) {
        self.contentions = contentions
        self.totalWaitNs = totalWaitNs
        self.minWaitNs = minWaitNs
        self.maxWaitNs = maxWaitNs
        self.p50WaitNs = p50WaitNs
        self.p90WaitNs = p90WaitNs
        self.p99WaitNs = p99WaitNs
        self.p999WaitNs = p999WaitNs
        self.histogram = histogram
    }

    public static let empty = WaitStats(contentions: 0, totalWaitNs: 0, minWaitNs: 0, maxWaitNs: 0, p50WaitNs: 0,
                                        p90WaitNs: 0, p99WaitNs: 0, p999WaitNs: 0, histogram: [])

    public var meanWaitNs: UInt64 { contentions == 0 ? 0 : totalWaitNs / contentions }
}

/// One histogram bucket.
public struct HistogramBucket: Codable, Sendable, Equatable {
    public var lowerNs: UInt64
    public var upperNs: UInt64
    public var count: UInt64

    public init(lowerNs: UInt64, upperNs: UInt64, count: UInt64) {
        self.lowerNs = lowerNs
        self.upperNs = upperNs
        self.count = count
    }
}

/// Wait statistics for one value of a dimension (a CPU number, a socket, a container id...).
public struct KeyedStats: Codable, Sendable, Equatable {
    public var key: String
    public var stats: WaitStats

    public init(key: String, stats: WaitStats) {
        self.key = key
        self.stats = stats
    }

    private enum CodingKeys: String, CodingKey { case key }

    // Flattened in JSON: {"key": "3", "contentions": ..., "total_wait_ns": ...}.
    public init(from decoder: Decoder) throws {
        key = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .key)
        stats = try WaitStats(from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(key, forKey: .key)
        try stats.encode(to: encoder)
    }
}

/// One distinct call stack that contended on a lock: kernel frames, and the waiter's user frames below them.
public struct StackProfile: Codable, Sendable, Equatable {
    /// Symbolized kernel frames, innermost (the lock function) first, e.g. `["down_write", "path_umount", ...]`.
    public var frames: [String]
    /// The waiter's user-space frames, innermost (where it entered the kernel) first, below the kernel
    /// frames (`record --user-stacks`); absent when no user stack was recorded for these waits. Part of
    /// the stack's identity.
    public var userFrames: [String]?
    public var count: UInt64
    public var totalWaitNs: UInt64
    public var maxWaitNs: UInt64
    /// The same waits split by where they happened (CPU and container), for grouped flame graphs.
    public var contexts: [StackContext]

    public init(frames: [String], userFrames: [String]? = nil, count: UInt64, totalWaitNs: UInt64, maxWaitNs: UInt64,
                contexts: [StackContext]) {
        self.frames = frames
        self.userFrames = userFrames
        self.count = count
        self.totalWaitNs = totalWaitNs
        self.maxWaitNs = maxWaitNs
        self.contexts = contexts
    }

    /// Every frame, innermost first: the kernel's, then the user's.
    public var allFrames: [String] { frames + (userFrames ?? []) }

    /// What makes two stacks the same (merge, diff): the kernel frames and the user frames.
    public var identity: StackIdentity { StackIdentity(frames: frames, userFrames: userFrames) }
}

/// A stack's identity: its kernel frames and its user frames (nil without a user stack).
public struct StackIdentity: Hashable, Sendable {
    public var frames: [String]
    public var userFrames: [String]?

    public init(frames: [String], userFrames: [String]?) {
        self.frames = frames
        self.userFrames = userFrames
    }
}

/// The waits of one stack on one CPU in one container.
public struct StackContext: Codable, Sendable, Equatable, Hashable {
    public var cpu: Int
    public var container: String
    public var count: UInt64
    public var totalWaitNs: UInt64

    public init(cpu: Int, container: String, count: UInt64, totalWaitNs: UInt64) {
        self.cpu = cpu
        self.container = container
        self.count = count
        self.totalWaitNs = totalWaitNs
    }
}

/// Contended acquisitions of a lock classified by where the previous contended acquisition ran.
public struct HandoffStats: Codable, Sendable, Equatable {
    public var handoff: Handoff
    public var stats: WaitStats

    public init(handoff: Handoff, stats: WaitStats) {
        self.handoff = handoff
        self.stats = stats
    }

    private enum CodingKeys: String, CodingKey { case handoff }

    public init(from decoder: Decoder) throws {
        handoff = try decoder.container(keyedBy: CodingKeys.self).decode(Handoff.self, forKey: .handoff)
        stats = try WaitStats(from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(handoff, forKey: .handoff)
        try stats.encode(to: encoder)
    }
}

/// Waits attributed to the task that held the lock (mutexes and rwsem writers only).
public struct OwnerBlame: Codable, Sendable, Equatable {
    /// The waiters' container.
    public var waiterContainer: String
    /// The owner's container, pid and command, or `unknown`.
    public var ownerContainer: String
    public var ownerPid: Int32
    public var ownerComm: String
    public var contentions: UInt64
    public var totalWaitNs: UInt64

    public init(waiterContainer: String, ownerContainer: String, ownerPid: Int32, ownerComm: String,
                contentions: UInt64, totalWaitNs: UInt64) {
        self.waiterContainer = waiterContainer
        self.ownerContainer = ownerContainer
        self.ownerPid = ownerPid
        self.ownerComm = ownerComm
        self.contentions = contentions
        self.totalWaitNs = totalWaitNs
    }
}

/// Everything recorded about one lock. The statistics fields are flattened into the lock object.
public struct LockProfile: Codable, Sendable, Equatable {
    public var name: String
    public var identity: LockIdentity
    public var kind: LockKind
    /// Kernel address as a hex string, `0xffff...` (the hottest, when several share the name).
    public var address: String
    /// Distinct lock addresses under this name: per-object locks named after one caller are merged.
    public var instances: Int
    public var stats: WaitStats
    public var read: WaitStats
    public var write: WaitStats
    public var stacks: [StackProfile]
    public var byCpu: [KeyedStats]
    public var bySocket: [KeyedStats]
    public var byNode: [KeyedStats]
    public var byLlc: [KeyedStats]
    public var byContainer: [KeyedStats]
    public var byProcess: [KeyedStats]
    public var handoffs: [HandoffStats]
    /// Owner attribution; `nil` for lock kinds whose owner cannot be read (spinlocks, readers).
    public var owners: [OwnerBlame]?
    /// The lock's waits on each host, keyed by hostname: only in a profile made by `lockscope merge`.
    public var byHost: [KeyedStats]?
    /// Sampled on-CPU spinning attributed to this lock (`record --spin-hz`); nil when none was sampled.
    public var spin: SpinProfile?
    /// Each lock address under this name, heaviest first (`report --instances`, perf lock contention -l);
    /// absent in profiles written before it was kept.
    public var byAddress: [InstanceStats]?

    public init(name: String, identity: LockIdentity, kind: LockKind, address: String, instances: Int = 1,
                stats: WaitStats, read: WaitStats = .empty, write: WaitStats = .empty, stacks: [StackProfile] = [],
                byCpu: [KeyedStats] = [], bySocket: [KeyedStats] = [], byNode: [KeyedStats] = [],
                byLlc: [KeyedStats] = [], byContainer: [KeyedStats] = [], byProcess: [KeyedStats] = [],
                handoffs: [HandoffStats] = [], owners: [OwnerBlame]? = nil, byHost: [KeyedStats]? = nil) {
        self.name = name
        self.identity = identity
        self.kind = kind
        self.address = address
        self.instances = instances
        self.stats = stats
        self.read = read
        self.write = write
        self.stacks = stacks
        self.byCpu = byCpu
        self.bySocket = bySocket
        self.byNode = byNode
        self.byLlc = byLlc
        self.byContainer = byContainer
        self.byProcess = byProcess
        self.handoffs = handoffs
        self.owners = owners
        self.byHost = byHost
    }

    private enum CodingKeys: String, CodingKey {
        case name, identity, kind, address, instances, read, write, stacks, byCpu, bySocket, byNode, byLlc, byContainer,
             byProcess, handoffs, owners, byHost, spin, byAddress
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        identity = try c.decode(LockIdentity.self, forKey: .identity)
        kind = try c.decode(LockKind.self, forKey: .kind)
        address = try c.decode(String.self, forKey: .address)
        instances = try c.decodeIfPresent(Int.self, forKey: .instances) ?? 1
        stats = try WaitStats(from: decoder)
        read = try c.decodeIfPresent(WaitStats.self, forKey: .read) ?? .empty
        write = try c.decodeIfPresent(WaitStats.self, forKey: .write) ?? .empty
        stacks = try c.decodeIfPresent([StackProfile].self, forKey: .stacks) ?? []
        byCpu = try c.decodeIfPresent([KeyedStats].self, forKey: .byCpu) ?? []
        bySocket = try c.decodeIfPresent([KeyedStats].self, forKey: .bySocket) ?? []
        byNode = try c.decodeIfPresent([KeyedStats].self, forKey: .byNode) ?? []
        byLlc = try c.decodeIfPresent([KeyedStats].self, forKey: .byLlc) ?? []
        byContainer = try c.decodeIfPresent([KeyedStats].self, forKey: .byContainer) ?? []
        byProcess = try c.decodeIfPresent([KeyedStats].self, forKey: .byProcess) ?? []
        handoffs = try c.decodeIfPresent([HandoffStats].self, forKey: .handoffs) ?? []
        owners = try c.decodeIfPresent([OwnerBlame].self, forKey: .owners)
        byHost = try c.decodeIfPresent([KeyedStats].self, forKey: .byHost)
        spin = try c.decodeIfPresent(SpinProfile.self, forKey: .spin)
        byAddress = try c.decodeIfPresent([InstanceStats].self, forKey: .byAddress)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(identity, forKey: .identity)
        try c.encode(kind, forKey: .kind)
        try c.encode(address, forKey: .address)
        try c.encode(instances, forKey: .instances)
        try stats.encode(to: encoder)
        try c.encode(read, forKey: .read)
        try c.encode(write, forKey: .write)
        try c.encode(stacks, forKey: .stacks)
        try c.encode(byCpu, forKey: .byCpu)
        try c.encode(bySocket, forKey: .bySocket)
        try c.encode(byNode, forKey: .byNode)
        try c.encode(byLlc, forKey: .byLlc)
        try c.encode(byContainer, forKey: .byContainer)
        try c.encode(byProcess, forKey: .byProcess)
        try c.encode(handoffs, forKey: .handoffs)
        try c.encodeIfPresent(owners, forKey: .owners)
        try c.encodeIfPresent(byHost, forKey: .byHost)
        try c.encodeIfPresent(spin, forKey: .spin)
        try c.encodeIfPresent(byAddress, forKey: .byAddress)
    }
}

/// One lock address (instance) under a lock's name: what perf lock contention -l lists.
public struct InstanceStats: Codable, Sendable, Equatable {
    /// The address, `0xffff...`; `[other addresses]` for the row that sums the addresses past
    /// `ProfileBuilder.maxAddressesPerLock`, `0x0` for `[other locks]`.
    public var address: String
    /// The kernel data symbol that covers the address (`namespace_sem`, `some_table+0x40`), when
    /// /proc/kallsyms has data symbols.
    public var symbol: String?
    /// Addresses this row sums: 1, or more for `[other addresses]`.
    public var addresses: Int
    public var contentions: UInt64
    public var totalWaitNs: UInt64
    public var maxWaitNs: UInt64

    public init(address: String, symbol: String? = nil, addresses: Int = 1, contentions: UInt64, totalWaitNs: UInt64,
                maxWaitNs: UInt64) {
        self.address = address
        self.symbol = symbol
        self.addresses = addresses
        self.contentions = contentions
        self.totalWaitNs = totalWaitNs
        self.maxWaitNs = maxWaitNs
    }

    public var meanWaitNs: UInt64 { contentions == 0 ? 0 : totalWaitNs / contentions }

    /// The overflow row's address.
    public static let otherAddresses = "[other addresses]"
}

/// One thread's lock wait across the profile's locks: what perf lock contention -t lists.
public struct ThreadStats: Codable, Sendable, Equatable {
    /// Thread id; nil in the row that sums the threads past the caps (`[other threads]`).
    public var tid: Int32?
    /// Its process (tgid).
    public var pid: Int32?
    /// The thread's name when its first wait was recorded, or `[other threads]`.
    public var comm: String
    public var contentions: UInt64
    public var totalWaitNs: UInt64
    public var maxWaitNs: UInt64

    public init(tid: Int32?, pid: Int32?, comm: String, contentions: UInt64, totalWaitNs: UInt64, maxWaitNs: UInt64) {
        self.tid = tid
        self.pid = pid
        self.comm = comm
        self.contentions = contentions
        self.totalWaitNs = totalWaitNs
        self.maxWaitNs = maxWaitNs
    }

    public var meanWaitNs: UInt64 { contentions == 0 ? 0 : totalWaitNs / contentions }

    /// The overflow row's name.
    public static let otherThreads = "[other threads]"
}

/// Per-container totals across all locks.
public struct ContainerSummary: Codable, Sendable, Equatable {
    public var id: String
    public var runtime: String
    public var podUid: String?
    public var cgroup: String
    /// The pod's sandbox id, from the argv of the shim that mounted the container (containerd).
    public var pod: String?
    /// How waits were tied to this container (absent in older profiles: by cgroup).
    public var attribution: Attribution?
    public var contentions: UInt64
    public var totalWaitNs: UInt64
    public var p99WaitNs: UInt64

    public init(id: String, runtime: String, podUid: String?, cgroup: String, pod: String? = nil,
                attribution: Attribution? = nil, contentions: UInt64, totalWaitNs: UInt64, p99WaitNs: UInt64) {
        self.id = id
        self.runtime = runtime
        self.podUid = podUid
        self.cgroup = cgroup
        self.pod = pod
        self.attribution = attribution
        self.contentions = contentions
        self.totalWaitNs = totalWaitNs
        self.p99WaitNs = p99WaitNs
    }
}

/// Mount-family syscall accounting.
public struct MountSummary: Codable, Sendable, Equatable {
    public var totalOps: UInt64
    public var bySyscall: [SyscallStats]
    public var byContainer: [ContainerMounts]
    /// Mount syscalls, and waits inside them, held for a link to a container by their paths that did not
    /// come (within 10 s, or before the recording ended): counted under their issuer's pod or their
    /// cgroup instead. Absent in profiles written before attribution by path.
    public var unlinked: UInt64?

    public init(totalOps: UInt64, bySyscall: [SyscallStats], byContainer: [ContainerMounts], unlinked: UInt64? = nil) {
        self.totalOps = totalOps
        self.bySyscall = bySyscall
        self.byContainer = byContainer
        self.unlinked = unlinked
    }
}

/// Count and latency of one mount-family syscall (latency in the same statistics as lock waits).
public struct SyscallStats: Codable, Sendable, Equatable {
    public var syscall: String
    public var stats: WaitStats
    /// Calls that returned an error.
    public var errors: UInt64

    public init(syscall: String, stats: WaitStats, errors: UInt64) {
        self.syscall = syscall
        self.stats = stats
        self.errors = errors
    }

    private enum CodingKeys: String, CodingKey { case syscall, errors }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        syscall = try c.decode(String.self, forKey: .syscall)
        errors = try c.decodeIfPresent(UInt64.self, forKey: .errors) ?? 0
        stats = try WaitStats(from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(syscall, forKey: .syscall)
        try c.encode(errors, forKey: .errors)
        try stats.encode(to: encoder)
    }
}

/// Mount-family syscalls issued from one container.
public struct ContainerMounts: Codable, Sendable, Equatable {
    public var id: String
    public var runtime: String
    /// The pod's sandbox id, when the issuing shim named it.
    public var pod: String?
    /// How these syscalls were tied to the container.
    public var attribution: Attribution?
    public var ops: UInt64
    public var bySyscall: [SyscallStats]
    /// The container's start, for containers whose mount syscalls were attributed by path.
    public var start: ContainerStart?

    public init(id: String, runtime: String, pod: String? = nil, attribution: Attribution? = nil, ops: UInt64,
                bySyscall: [SyscallStats], start: ContainerStart? = nil) {
        self.id = id
        self.runtime = runtime
        self.pod = pod
        self.attribution = attribution
        self.ops = ops
        self.bySyscall = bySyscall
        self.start = start
    }
}
