import Histogram

/// Turns the stream of kernel events into per-lock statistics, then into a `Profile`.
///
/// The per-event path only updates counters and histograms keyed by raw ids (lock address, stack id,
/// CPU, cgroup id, pid); symbolizing, naming, container lookup and roll-ups happen once, in
/// `ProfileBuilder`, from what `profile(_:)` or `takeProfile(_:)` hands it (`Drained`).
///
/// It is built for millions of events a second over thousands of keys, where the cost is memory
/// latency: every structure an event touches is a likely cache miss. So each lock gets a small index
/// when first seen, and the breakdowns live in a few flat tables keyed by (lock index, id), each lookup
/// one cache line (`FlatTable`), each histogram one more (`CompactHistogram`). An event updates the
/// lock's total (percentiles within 1%), its (stack, CPU, cgroup) tally, from which stacks and their
/// contexts are summed, a histogram per CPU and one per (cgroup, process), from which containers and
/// processes are summed (breakdowns keep percentiles within 6.25%, at a tenth of the memory), and the
/// hand-off class. Task names stay 16 raw bytes until the profile.
///
/// The misses are overlapped rather than waited for one after another. `record` only finds the lock's
/// index and asks the CPU for the lines the wait will touch (`prefetchSlots`); the wait is applied
/// `eventsInFlight` waits later, when those lines have arrived. The histograms' bucket increments are
/// noted and applied in batches, each bucket requested a few increments ahead (`CountsPool`). Waits in
/// flight and noted increments are applied before anything reads the tables (`finishPending`).
///
/// The per-event tables are written through raw pointers, with no bounds or copy-on-write check per
/// access (`PaddedBuffer`). The aggregator and its tables are noncopyable, so no copy can share them.
public struct Aggregator: ~Copyable {
    /// Processes kept apart per lock; waits of later ones are summed per container under
    /// `[other processes]`, so memory stays bounded however many processes come and go.
    public static let maxProcessesPerLock = 64
    /// Lock addresses kept apart. Per-object locks (inodes, dentries...) can bring new addresses for as
    /// long as a recording runs; past this many, waits on new addresses are summed per kind under
    /// `[other locks]`.
    public static let maxLockAddresses = 4096
    public static let otherLocksName = "[other locks]"
    /// The `by_process` entry that sums the processes beyond `maxProcessesPerLock`.
    public static let otherProcessesKey = "[other processes]"
    /// The container that sums the cgroups beyond `maxCgroupsPerLock`.
    public static let otherContainersKey = "[other containers]"
    /// Threads kept apart per lock (`Profile.threads`); waits of later ones are summed per lock under
    /// `[other threads]`, so thread churn cannot grow memory.
    public static let maxThreadsPerLock = 256
    /// The tid under which threads past `maxThreadsPerLock` are summed (no thread has it).
    static let otherThreads = UInt32.max

    /// Where `[other locks]` of a kind are kept: a small number no lock address can be.
    static func otherLocksAddress(_ kind: LockKind) -> UInt64 { UInt64(kind.filterBit) }
    static func isOtherLocks(_ address: UInt64) -> Bool { address < 1 << 16 }

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

    public private(set) var waitEvents: UInt64 = 0
    public private(set) var syscallEvents: UInt64 = 0
    let topology: Topology?
    private let handoffTable: HandoffTable?

    /// Lock address to lock index (the position in `lockEntries`).
    private var lockIndices = FlatTable<LockAddressKey, Int32>(empty: -1)
    private(set) var lockEntries: [LockEntry] = []
    /// Per lock, what each wait reads and writes besides the tables (small, so it stays in cache).
    private var lockActivity = TableArray<LockActivity>()
    /// `histogramsPerLock` per lock, at `lock * histogramsPerLock + LockHistogram.rawValue`.
    private var lockHistograms = TableArray<CompactHistogram>()
    private var byCPU = FlatTable<LockCPUKey, CompactHistogram>(empty: .init(precision: WaitAccumulator.breakdownPrecision))
    private var byTask = FlatTable<LockTaskKey, CompactHistogram>(empty: .init(precision: WaitAccumulator.breakdownPrecision))
    private var contexts = FlatTable<LockContextKey, Tally>(empty: .init())
    private var owners = FlatTable<LockOwnerKey, Tally>(empty: .init())
    /// (lock, thread) → the thread's waits on the lock (`Profile.threads`).
    private var threads = FlatTable<LockThreadKey, Tally>(empty: .init())
    /// The stage that keeps only waits whose stack matches `--callstack-filter`; nil keeps every wait.
    public var stackSelector: StackSelector?
    /// (lock, cgroup) pairs kept apart, for `maxCgroupsPerLock`, keyed with pid 0. Looked up for a
    /// (cgroup, pid) not in `byTask`, unless its cgroup already sums the processes past the cap there.
    private var lockCgroups = FlatTable<LockTaskKey, Bool>(empty: false)
    /// The bucket counts of every `CompactHistogram` above.
    private var counts = CountsPool()
    /// Waits recorded but not yet applied: the first `inFlightCount` of `eventsInFlight`, oldest at
    /// `oldestInFlight` (see `record`).
    private var inFlight = TableArray<QueuedWait>()
    private var inFlightCount = 0
    private var oldestInFlight = 0
    /// How many waits are held back while their table slots load (a power of two).
    static let eventsInFlight = 4

    /// A wait between `record` and `apply`: the fields applying it reads, and its lock (copied twice per
    /// event, so kept small).
    struct QueuedWait {
        var waitNs: UInt64
        var cgroupID: UInt64
        var ownerCgroupID: UInt64
        var outerLockAddress: UInt64
        var comm: Comm
        var ownerComm: Comm
        var pid: UInt32
        var tid: UInt32
        var ownerPid: UInt32
        var stackID: Int32
        /// The wait's user stack, its id in the reader's `UserStackTable`; -1 without one.
        var userStack: Int32
        var cpu: UInt32
        /// The CPU that took the lock before this wait did (`LockActivity.noCPU` for its first wait),
        /// noted when the wait arrived: a wait held for attribution is applied later, out of order.
        var previousCPU: UInt32
        var lock: Int32
        var kind: LockKind
        var isRead: Bool

        @inline(__always)
        init(_ event: WaitEvent, lock: Int, kind: LockKind, previousCPU: UInt32) {
            waitNs = event.waitNs
            cgroupID = event.cgroupID
            ownerCgroupID = event.ownerCgroupID
            outerLockAddress = event.outerLockAddress
            comm = event.comm
            ownerComm = event.ownerComm
            pid = event.pid
            tid = event.tid
            ownerPid = event.ownerPid
            stackID = event.stackID
            userStack = event.userStackID
            cpu = event.cpu
            self.previousCPU = previousCPU
            self.lock = Int32(truncatingIfNeeded: lock)
            self.kind = kind
            isRead = event.isRead
        }
    }

    /// Called the first time a process shows up with a user stack or a mount-family syscall (whose waits
    /// have user stacks): its mappings must be read while it still runs (short-lived shims and their
    /// children exit before the recording ends). Nil when no user stacks are recorded.
    private let sawUserStackProcess: ((UInt32) -> Void)?
    private var userStackProcesses = Set<UInt32>()

    /// The first `comm` seen for each pid, waiter or owner (written only when a lock first sees the pid).
    var processNames: [UInt32: Comm] = [:]
    /// Each waiting thread's process and first `comm` (written only when a lock first sees the thread).
    var threadNames: [UInt32: ThreadName] = [:]

    struct ThreadName {
        var pid: UInt32
        var comm: Comm
    }
    var syscalls: [MountSyscall: SyscallState] = [:]
    var syscallsByCgroup: [UInt64: [MountSyscall: SyscallState]] = [:]
    /// Ties mount syscalls and the waits inside them to containers by their paths.
    var attribution: MountAttribution
    /// Keep, for each mount syscall released to a container of `attribution`, which one (`record` with
    /// on-CPU sampling: the samples taken inside the syscall go to it too, `mountSyscallTie`). One entry
    /// per such syscall, up to `mountSyscallContainerCapacity`.
    public var keepsMountSyscallContainers = false
    private var mountSyscallContainers: [SyscallID: UInt64] = [:]
    /// About 12 MB of ties: a 200 x 50 storm's mount syscalls six times over.
    public var mountSyscallContainerCapacity = 1 << 18
    /// The earliest start of an attributed syscall not kept for want of room: a sample in a syscall that
    /// began then or later may have lost its tie (`MountSyscallTie.forgotten`).
    private var mountSyscallsForgottenSinceNs: UInt64?
    var timeline = TimelineTally()
    /// Waits on static kernel locks kept while the selected locks' addresses are learned.
    var provisional = ProvisionalWaits()
    /// Who held the lock when a process that has issued no mount syscall (a victim) waited behind one
    /// that has: (lock, waiter, holder) → the waits, and the holder's cgroup. Few keys: victims × issuers.
    var victimHolders: [VictimHolderKey: (ownerCgroupID: UInt64, tally: Tally)] = [:]

    /// Most (lock, victim, holder) keys kept; later pairs are not listed as holders (their waits still count).
    static let maxVictimHolders = 1 << 16

    struct VictimHolderKey: Hashable {
        var lock: Int32
        var waiterPid: UInt32
        var ownerPid: UInt32
    }

    /// Records the provisional waits on the locks `decide` knows about (true: a selected lock, false:
    /// another), in the order they ended; the others stay held. Returns how many were recorded.
    @discardableResult
    public mutating func settleProvisionalWaits(_ decide: (UInt64) -> Bool?) -> Int {
        let kept = provisional.settle(decide)
        for event in kept { record(event) }
        return kept.count
    }

    /// Whether provisional waits are held for locks not named yet.
    public var holdsProvisionalWaits: Bool { provisional.held > 0 }

    /// Waits lost because too many provisional waits were held at once.
    public var provisionalOverflow: UInt64 { provisional.overflow }

    /// `issuerPod` names the pod a process works for (a containerd shim's `-id`), for `MountAttribution`.
    /// `sawUserStackProcess` is called the first time a process shows up with a user stack or a mount
    /// syscall; nil when no user stacks are recorded.
    public init(topology: Topology?, issuerPod: @escaping (UInt32) -> (namespace: String?, pod: String)? = { _ in nil },
                sawUserStackProcess: ((UInt32) -> Void)? = nil) {
        self.init(topology: topology, attribution: MountAttribution(issuerPod: issuerPod), provisional: ProvisionalWaits(),
                  sawUserStackProcess: sawUserStackProcess)
    }

    /// A new aggregator that goes on with the waits and syscalls another one held (`takeWindow`).
    private init(topology: Topology?, attribution: MountAttribution, provisional: ProvisionalWaits,
                 sawUserStackProcess: ((UInt32) -> Void)?) {
        self.topology = topology
        self.sawUserStackProcess = sawUserStackProcess
        handoffTable = topology.map(HandoffTable.init)
        self.attribution = attribution
        self.provisional = provisional
        let idle = QueuedWait(WaitEvent(flags: 0, waitNs: 0, lockAddress: 0), lock: 0, kind: .other,
                              previousCPU: LockActivity.noCPU)
        for _ in 0..<Self.eventsInFlight { inFlight.append(idle) }
    }

    /// A lock as the profile builder needs it.
    struct LockEntry {
        var address: UInt64
        var kind: LockKind
        /// Waits in this lock's slow path by the lock around it (an rwsem's wait_lock), by address.
        var outerLocks: [UInt64: UInt64] = [:]
    }

    /// What a lock's waits read and update besides the tables.
    struct LockActivity {
        /// The CPU that took the lock last, `noCPU` before its first wait.
        var lastCPU = LockActivity.noCPU
        /// Distinct pids in `byTask` (not counting the `otherProcesses` entries).
        var processes: Int32 = 0
        /// Cgroups kept apart.
        var cgroups: Int32 = 0
        /// Keys in `owners`.
        var ownerKeys: Int32 = 0
        /// Threads in `threads` (not counting the `otherThreads` entry).
        var threads: Int32 = 0
        var capsReached: CapsReached = []

        static let noCPU = UInt32.max
    }

    /// Caps a lock has reached: its later waits from new processes or owners go to overflow slots.
    struct CapsReached: OptionSet {
        var rawValue: UInt8
        static let processes = CapsReached(rawValue: 1)
        static let owners = CapsReached(rawValue: 2)
    }

    /// The histograms every lock has, by position.
    enum LockHistogram: Int {
        case total, read, write
        /// The first of one per `Handoff` case.
        case handoffs
    }

    static let histogramsPerLock = LockHistogram.handoffs.rawValue + Handoff.allCases.count

    /// Number of locks (addresses, and one `[other locks]` per kind past the cap).
    var lockCount: Int { lockEntries.count }

    /// Where one wait happened: the stack, the CPU that took the lock, and the waiter's cgroup.
    struct ContextKey: Hashable {
        var stackID: Int32
        /// The user stack's id in the reader's `UserStackTable`, -1 without one.
        var userStack: Int32 = -1
        var cpu: UInt32
        var cgroupID: UInt64
    }

    /// A waiting process and its cgroup; `pid` is `Aggregator.otherProcesses` for the processes past the cap.
    struct TaskKey: Hashable {
        var cgroupID: UInt64
        var pid: UInt32
    }

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

    /// One lock's statistics as the profile builder reads them, gathered from the tables.
    struct LockState {
        var kind: LockKind
        var total = WaitAccumulator(precision: .two)
        /// Only for kinds with a shared mode; for the others every wait is a write wait (`total`).
        var read = WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)
        var write = WaitAccumulator(precision: WaitAccumulator.breakdownPrecision)
        var contexts: [ContextKey: Tally] = [:]
        var byCPU: [UInt32: WaitAccumulator] = [:]
        var byTask: [TaskKey: WaitAccumulator] = [:]
        /// Indexed by `Handoff.allCases` position; empty when no hand-off was seen.
        var handoffs: [WaitAccumulator] = []
        var owners: [OwnerKey: Tally] = [:]
        var outerLocks: [UInt64: UInt64] = [:]
        /// Thread id → its waits; `Aggregator.otherThreads` sums the threads past the cap.
        var byThread: [UInt32: Tally] = [:]

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

    /// Starts the timeline's clock (CLOCK_MONOTONIC when the recording started); without it the first
    /// event starts it.
    public mutating func startTimeline(atNs origin: UInt64) { timeline.originNs = origin }

    /// Records one wait: its lines are requested now, and it is applied `eventsInFlight` waits later.
    /// A wait inside a mount syscall is held until the syscall's container is known (`MountAttribution`).
    public mutating func record(_ event: WaitEvent) {
        if let stackSelector, !stackSelector.keeps(stackID: event.stackID) { return }
        if _slowPath(event.userStackID >= 0) { sawProcess(event.pid) }
        if _slowPath(event.flags & ProvisionalWaits.flag != 0) { return provisional.hold(event) }
        waitEvents &+= 1
        let kind = event.kind
        let lock = lockIndex(event.lockAddress, kind: kind)
        let previousCPU = lockActivity[lock].lastCPU
        lockActivity[lock].lastCPU = event.cpu
        let waiter: TimelineTally.Waiter = event.syscallBeginNs != 0 ? .inMountSyscall
            : attribution.issuers.contains(event.pid) ? .mountIssuer : .victim
        timeline.wait(endNs: event.endNs, lock: lock, waiter: waiter, ns: event.waitNs)
        if _slowPath(waiter == .victim && event.ownerPid != 0 && attribution.issuers.contains(event.ownerPid)) {
            let key = VictimHolderKey(lock: Int32(truncatingIfNeeded: lock), waiterPid: event.pid, ownerPid: event.ownerPid)
            if victimHolders[key] != nil || victimHolders.count < Self.maxVictimHolders {
                victimHolders[key, default: (event.ownerCgroupID, Tally())].tally.add(event.waitNs)
            }
            if processNames[event.ownerPid] == nil { processNames[event.ownerPid] = event.ownerComm }
        }
        let queued = QueuedWait(event, lock: lock, kind: kind, previousCPU: previousCPU)
        if _slowPath(event.syscallBeginNs != 0) {
            attribution.hold(.init(queued: queued, lockAddress: event.lockAddress, tid: event.tid, endNs: event.endNs),
                             syscallBeginNs: event.syscallBeginNs)
            applyReleased()
            return
        }
        prefetchSlots(of: event, lock: lock, kind: kind, previousCPU: previousCPU)
        if _slowPath(inFlightCount < Self.eventsInFlight) {
            inFlight[inFlightCount] = queued
            inFlightCount &+= 1
            return
        }
        let oldest = inFlight[oldestInFlight]
        inFlight[oldestInFlight] = queued
        oldestInFlight = (oldestInFlight &+ 1) & (Self.eventsInFlight - 1)
        apply(oldest)
    }

    /// Applies the waits still in flight and the histograms' pending bucket increments: everything
    /// recorded so far is then in the tables.
    mutating func finishPending() {
        for offset in 0..<inFlightCount {
            apply(inFlight[(oldestInFlight + offset) % inFlightCount])
        }
        inFlightCount = 0
        oldestInFlight = 0
        counts.applyPending()
    }

    /// Requests the cache lines a wait will touch, which are likely misses: the lock's histograms
    /// (total, read or write, hand-off), its table slots, and, for a lock past a cap, the slots its
    /// overflow goes to.
    @inline(__always)
    private func prefetchSlots(of event: WaitEvent, lock: Int, kind: LockKind, previousCPU: UInt32) {
        let histograms = lock &* Self.histogramsPerLock
        lockHistograms.prefetch(histograms &+ LockHistogram.total.rawValue)
        if kind.hasSharedMode {
            lockHistograms.prefetch(histograms &+ (event.isRead ? LockHistogram.read : LockHistogram.write).rawValue)
        }
        let activity = lockActivity[lock]
        if let handoffTable, previousCPU != LockActivity.noCPU {
            lockHistograms.prefetch(histograms &+ LockHistogram.handoffs.rawValue
                                    &+ handoffTable.position(from: previousCPU, to: event.cpu))
        }
        byCPU.prefetch(LockCPUKey(lock: lock, cpu: event.cpu))
        byTask.prefetch(LockTaskKey(lock: lock, cgroupID: event.cgroupID, pid: event.pid))
        contexts.prefetch(LockContextKey(lock: lock, stackID: event.stackID, userStack: event.userStackID, cpu: event.cpu,
                                         cgroupID: event.cgroupID))
        threads.prefetch(LockThreadKey(lock: lock, tid: event.tid))
        let caps = activity.capsReached
        if caps.contains(.processes) {
            byTask.prefetch(LockTaskKey(lock: lock, cgroupID: event.cgroupID, pid: Aggregator.otherProcesses))
        }
        if kind.hasOwner {
            owners.prefetch(LockOwnerKey(lock: lock, waiterCgroupID: event.cgroupID,
                                         ownerCgroupID: event.ownerCgroupID, ownerPid: event.ownerPid))
            if caps.contains(.owners) {
                owners.prefetch(LockOwnerKey(lock: lock, waiterCgroupID: event.cgroupID,
                                             ownerCgroupID: Aggregator.otherCgroups, ownerPid: Aggregator.otherProcesses))
            }
        }
    }

    /// Adds one wait to the tables.
    private mutating func apply(_ queued: QueuedWait) {
        let (event, lock, kind) = (queued, Int(queued.lock), queued.kind)
        let ns = event.waitNs
        let wait = BucketedWait(ns)
        let histograms = lock &* Self.histogramsPerLock
        counts.record(wait, in: &lockHistograms[histograms &+ LockHistogram.total.rawValue])
        if kind.hasSharedMode {
            let mode = event.isRead ? LockHistogram.read : LockHistogram.write
            counts.record(wait, in: &lockHistograms[histograms &+ mode.rawValue])
        }
        let cpu = byCPU.index(of: LockCPUKey(lock: lock, cpu: event.cpu),
                              adding: CompactHistogram(precision: WaitAccumulator.breakdownPrecision))
        counts.record(wait, in: &byCPU[cpu])

        var cgroup = event.cgroupID
        var newWaiter = false
        if let task = byTask.index(of: LockTaskKey(lock: lock, cgroupID: cgroup, pid: event.pid)) {
            counts.record(wait, in: &byTask[task])
        } else if lockActivity[lock].capsReached.contains(.processes),
                  let task = byTask.index(of: LockTaskKey(lock: lock, cgroupID: cgroup, pid: Aggregator.otherProcesses)) {
            // A process past the cap, from a cgroup this lock already keeps (the entry exists only then).
            counts.record(wait, in: &byTask[task])
        } else {
            var pid = event.pid
            let lockCgroup = LockTaskKey(lock: lock, cgroupID: cgroup, pid: 0)
            if lockCgroups.index(of: lockCgroup) == nil {
                if lockActivity[lock].cgroups < Aggregator.maxCgroupsPerLock {
                    lockCgroups.insert(lockCgroup, true)
                    lockActivity[lock].cgroups += 1
                } else {
                    (cgroup, pid) = (Aggregator.otherCgroups, Aggregator.otherProcesses)
                }
            }
            if pid != Aggregator.otherProcesses {  // a (cgroup, pid) this lock has not seen
                if lockActivity[lock].processes < Aggregator.maxProcessesPerLock {
                    lockActivity[lock].processes += 1
                    newWaiter = true
                } else {
                    pid = Aggregator.otherProcesses
                    lockActivity[lock].capsReached.insert(.processes)
                }
            }
            let task = byTask.index(of: LockTaskKey(lock: lock, cgroupID: cgroup, pid: pid),
                                    adding: CompactHistogram(precision: WaitAccumulator.breakdownPrecision))
            counts.record(wait, in: &byTask[task])
        }
        let context = contexts.index(of: LockContextKey(lock: lock, stackID: event.stackID, userStack: event.userStack,
                                                        cpu: event.cpu, cgroupID: cgroup), adding: Tally())
        contexts[context].add(ns)
        let previous = event.previousCPU
        if let handoffTable, previous != LockActivity.noCPU {
            let handoff = histograms &+ LockHistogram.handoffs.rawValue &+ handoffTable.position(from: previous, to: event.cpu)
            counts.record(wait, in: &lockHistograms[handoff])
        }
        var newOwner = false
        if kind.hasOwner {
            var key = LockOwnerKey(lock: lock, waiterCgroupID: cgroup, ownerCgroupID: event.ownerCgroupID,
                                   ownerPid: event.ownerPid)
            if let owner = owners.index(of: key) {
                owners[owner].add(ns)
            } else {
                if lockActivity[lock].ownerKeys >= Aggregator.maxOwnerKeysPerLock {
                    lockActivity[lock].capsReached.insert(.owners)
                    key = LockOwnerKey(lock: lock, waiterCgroupID: cgroup, ownerCgroupID: Aggregator.otherCgroups,
                                       ownerPid: Aggregator.otherProcesses)
                } else {
                    newOwner = event.ownerPid != 0
                }
                let owner = owners.index(of: key) ?? {
                    lockActivity[lock].ownerKeys += 1
                    return owners.insert(key, Tally())
                }()
                owners[owner].add(ns)
            }
        }
        if let thread = threads.index(of: LockThreadKey(lock: lock, tid: event.tid)) {
            threads[thread].add(ns)
        } else {
            var tid = Aggregator.otherThreads
            if lockActivity[lock].threads < Aggregator.maxThreadsPerLock {
                lockActivity[lock].threads += 1
                tid = event.tid
                if threadNames[tid] == nil { threadNames[tid] = ThreadName(pid: event.pid, comm: event.comm) }
            }
            let thread = threads.index(of: LockThreadKey(lock: lock, tid: tid), adding: Tally())
            threads[thread].add(ns)
        }
        if event.outerLockAddress != 0 { lockEntries[lock].outerLocks[event.outerLockAddress, default: 0] += 1 }
        if newWaiter, processNames[event.pid] == nil { processNames[event.pid] = event.comm }
        if newOwner, processNames[event.ownerPid] == nil { processNames[event.ownerPid] = event.ownerComm }
    }

    /// The lock's index, adding it (or, past `maxLockAddresses`, its kind's `[other locks]`) when new.
    @inline(__always)
    private mutating func lockIndex(_ address: UInt64, kind: LockKind) -> Int {
        // Address 0, which no lock has, is the key of the table's unused slots: `[other locks]` it is.
        let address = address == 0 ? Aggregator.otherLocksAddress(kind) : address
        if let slot = lockIndices.index(of: LockAddressKey(address)) { return Int(lockIndices[slot]) }
        let kept = lockEntries.count < Aggregator.maxLockAddresses ? address : Aggregator.otherLocksAddress(kind)
        if let slot = lockIndices.index(of: LockAddressKey(kept)) { return Int(lockIndices[slot]) }
        lockIndices.insert(LockAddressKey(kept), Int32(lockEntries.count))
        lockEntries.append(LockEntry(address: kept, kind: kind))
        lockActivity.append(LockActivity())
        lockHistograms.append(CompactHistogram(precision: .two))
        for _ in 1..<Self.histogramsPerLock {
            lockHistograms.append(CompactHistogram(precision: WaitAccumulator.breakdownPrecision))
        }
        return lockEntries.count - 1
    }

    /// Tells `sawUserStackProcess` about a process the first time it shows up.
    private mutating func sawProcess(_ pid: UInt32) {
        guard let sawUserStackProcess, userStackProcesses.insert(pid).inserted else { return }
        sawUserStackProcess(pid)
    }

    /// Records one mount syscall: its totals now; its container's share once `MountAttribution` knows
    /// the container (it may release held waits and syscalls with it).
    public mutating func record(_ event: SyscallEvent) {
        sawProcess(event.pid)
        syscallEvents += 1
        syscalls[event.syscall, default: SyscallState()].record(event)
        let started = attribution.syscall(event)
        timeline.syscall(endNs: event.endNs, startedContainer: started)
        applyReleased()
    }

    /// Releases what has been held for attribution longer than `MountAttribution.holdNs` (`now` is
    /// CLOCK_MONOTONIC); the recorder calls it once a second.
    public mutating func releaseStaleHolds(now: UInt64) {
        attribution.sweep(now: now)
        applyReleased()
    }

    /// Applies the waits and syscalls the attribution stage released, with their containers.
    private mutating func applyReleased() {
        // Most calls release nothing: taking empty arrays would still give the stage new buffers.
        guard !attribution.releasedWaits.isEmpty || !attribution.releasedSyscalls.isEmpty else { return }
        let (waits, syscalls) = attribution.takeReleased()
        for wait in waits {
            // Held since an earlier window maybe (`takeWindow`), when the lock had another index: find it again.
            var queued = wait.queued
            queued.lock = Int32(truncatingIfNeeded: lockIndex(wait.lockAddress, kind: queued.kind))
            apply(queued)
        }
        for syscall in syscalls { recordByContainer(syscall) }
        if keepsMountSyscallContainers {
            for syscall in syscalls where MountAttribution.isAttributed(syscall.cgroupID) {
                guard mountSyscallContainers.count < mountSyscallContainerCapacity else {
                    mountSyscallsForgottenSinceNs = min(mountSyscallsForgottenSinceNs ?? .max, syscall.beginNs)
                    continue
                }
                mountSyscallContainers[SyscallID(tid: syscall.tid, beginNs: syscall.beginNs)] = syscall.cgroupID
            }
        }
    }

    /// The container the mount syscall `id` was tied to by its paths or issuer (as its waits are), or why
    /// there is none.
    public func mountSyscallTie(_ id: SyscallID) -> MountSyscallTie {
        if let container = mountSyscallContainers[id].flatMap({ attribution.container(forID: $0) }) { return .container(container) }
        if let since = mountSyscallsForgottenSinceNs, id.beginNs >= since { return .forgotten }
        return .none
    }

    private mutating func recordByContainer(_ event: SyscallEvent) {
        var cgroup = event.cgroupID
        if syscallsByCgroup[cgroup] == nil, syscallsByCgroup.count >= Aggregator.maxCgroupsPerLock {
            cgroup = Aggregator.otherCgroups
        }
        syscallsByCgroup[cgroup, default: [:]][event.syscall,
                                                default: SyscallState(precision: WaitAccumulator.breakdownPrecision)]
            .record(event)
    }

    /// Bytes held by each of the per-event tables, and their entries (for the benchmarks).
    public var tableSizes: [String: (bytes: Int, entries: Int)] {
        func size<Key, Value>(_ table: borrowing FlatTable<Key, Value>) -> (Int, Int) {
            (table.capacity * FlatTable<Key, Value>.slotBytes, table.count)
        }
        return ["cpus": size(byCPU), "tasks": size(byTask), "contexts": size(contexts), "owners": size(owners),
                "threads": size(threads),
                "counts": (counts.bytes, 0),
                "locks": (lockHistograms.capacity * PaddedBuffer<CompactHistogram>.stride
                    + lockEntries.capacity * MemoryLayout<LockEntry>.stride
                    + lockActivity.capacity * PaddedBuffer<LockActivity>.stride, lockEntries.count)]
    }

    /// Forgets every lock (after `takeProfile`).
    mutating func removeLocks() {
        lockIndices.removeAll()
        lockEntries = []
        lockActivity = .init()
        lockHistograms = .init()
        byCPU.removeAll()
        byTask.removeAll()
        contexts.removeAll()
        owners.removeAll()
        threads.removeAll()
        lockCgroups.removeAll()
        counts = CountsPool()
    }
}

// MARK: - Handing the recording to the profile builder

extension Aggregator {
    /// The names of the locks seen so far (once a second for the status line; the waits still in
    /// flight are not in it yet).
    public func lockNames(_ inputs: ProfileInputs) -> [UInt64: LockName] {
        var builder = ProfileBuilder(inputs: inputs)
        // Held provisional waits are named with the recorded ones at the same address: that is what
        // decides whether they are kept.
        var summaries = Dictionary(lockSummaries().map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
        for held in provisional.summaries() {
            if var summary = summaries[held.address] {
                summary.contentions += held.contentions
                for (stack, tally) in held.stacks { summary.stacks[stack, default: .init()].merge(tally) }
                summaries[held.address] = summary
            } else {
                summaries[held.address] = held
            }
        }
        return builder.lockNames(Array(summaries.values))
    }

    /// The profile of everything recorded so far (built from copies of the tables; what follows is
    /// recorded as if it had not been taken). Waits and syscalls the attribution stage still holds for
    /// their container are not in it yet: they are in a later one.
    public mutating func profile(_ inputs: ProfileInputs) -> Profile {
        finishPending()
        var builder = ProfileBuilder(inputs: inputs)
        let names = builder.lockNames(lockSummaries())
        let locks = lockEntries.count
        let recorded = drained(lockHistograms: lockHistograms.copy(), counts: counts.copy(),
                               cpus: Self.grouped(byCPU, locks: locks), tasks: Self.grouped(byTask, locks: locks),
                               contexts: Self.grouped(contexts, locks: locks), owners: Self.grouped(owners, locks: locks),
                               threads: Self.grouped(threads, locks: locks), names: names, durationNs: inputs.durationNs)
        return builder.build(recorded, names: names)
    }

    /// The same, at the end of a recording: each table is emptied once its entries are grouped (they
    /// take less memory grouped, without the empty slots), and the builder releases each lock's part
    /// as it goes, so the peak is not both. Leaves the lock statistics empty.
    public mutating func takeProfile(_ inputs: ProfileInputs) -> Profile {
        attribution.releaseEverything()
        return takeRecorded(inputs)
    }

    /// The profile of one window of a continuous recording (`lockscope agent`): what was recorded since
    /// the last window, after which this aggregator is a new one that keeps only what must carry over:
    /// the waits and syscalls still held for their container (`MountAttribution`, bounded by its
    /// `maxHeld`, and the containers its directories still point to, bounded by `maxDirectories`) and the
    /// provisional waits (bounded by `ProvisionalWaits.maxHeld`). They are counted in the window in which
    /// they are released. `originNs` starts the next window's timeline.
    public mutating func takeWindow(_ inputs: ProfileInputs, nextOriginNs: UInt64) -> Profile {
        let profile = takeRecorded(inputs)
        var carried = attribution
        carried.startWindow()
        let provisional = self.provisional
        let selector = stackSelector
        self = Aggregator(topology: topology, attribution: carried, provisional: provisional,
                          sawUserStackProcess: sawUserStackProcess)
        // The recording's stack filter goes on (a process seen with user stacks is told again: a new window
        // keeps no pids).
        stackSelector = selector
        startTimeline(atNs: nextOriginNs)
        return profile
    }

    /// Stack ids that waits held for a later window refer to: the kernel's copies must stay until those
    /// waits are recorded.
    public var heldStackIDs: Set<Int32> {
        attribution.heldStackIDs.union(provisional.byLock.values.lazy.flatMap { $0.map(\.stackID) })
    }

    private mutating func takeRecorded(_ inputs: ProfileInputs) -> Profile {
        applyReleased()
        finishPending()
        var builder = ProfileBuilder(inputs: inputs)
        let names = builder.lockNames(lockSummaries())
        let locks = lockEntries.count
        func take<Key: LockIndexedKey, Value>(_ table: inout FlatTable<Key, Value>) -> [[FlatTable<Key, Value>.Slot]] {
            defer { table.removeAll() }
            return Self.grouped(table, locks: locks)
        }
        let (cpus, tasks, contexts, owners) = (take(&byCPU), take(&byTask), take(&self.contexts), take(&self.owners))
        let threads = take(&self.threads)
        var histograms = TableArray<CompactHistogram>(), taken = CountsPool()
        swap(&histograms, &lockHistograms)
        swap(&taken, &counts)
        let recorded = drained(lockHistograms: histograms, counts: taken, cpus: cpus, tasks: tasks,
                               contexts: contexts, owners: owners, threads: threads, names: names, durationNs: inputs.durationNs)
        removeLocks()
        return builder.build(recorded, names: names)
    }

    /// What naming a lock reads: its address, kind, contentions, and its stacks' tallies.
    struct LockSummary {
        var address: UInt64
        var kind: LockKind
        var contentions: UInt64
        var stacks: [Int32: Tally]
        var outerLocks: [UInt64: UInt64]
    }

    func lockSummaries() -> [LockSummary] {
        var stacks = [[Int32: Tally]](repeating: [:], count: lockEntries.count)
        contexts.forEachEntry { stacks[$0.key.lock][$0.key.stackID, default: .init()].merge($0.value) }
        return lockEntries.indices.map { lock in
            let entry = lockEntries[lock]
            return LockSummary(address: entry.address, kind: entry.kind, contentions: contentions(ofLock: lock),
                               stacks: stacks[lock], outerLocks: entry.outerLocks)
        }
    }

    /// Everything recorded, the breakdown tables' entries grouped by lock (without their empty
    /// slots), as the profile builder consumes it, a lock at a time.
    struct Drained: ~Copyable {
        let topology: Topology?
        let locks: [LockEntry]
        let events: UInt64
        let processNames: [UInt32: Comm]
        let threadNames: [UInt32: ThreadName]
        let syscalls: [MountSyscall: SyscallState]
        let syscallsByCgroup: [UInt64: [MountSyscall: SyscallState]]
        /// Containers tied to waits by mount paths or issuer, indexed as `MountAttribution.containerID` numbers them.
        let attributed: [MountAttribution.AttributedContainer]
        /// Processes that issued mount syscalls, and the pods of those that said (containerd shims).
        let issuers: Set<UInt32>
        let issuerPods: [UInt32: String]
        /// Waits and syscalls released without a link to a container (`MountAttribution.releasedUnlinked`).
        let unlinked: UInt64
        let victimHolders: [VictimHolderKey: (ownerCgroupID: UInt64, tally: Tally)]
        let timeline: Timeline?
        /// The recording's start on the events' clock.
        let originNs: UInt64?
        fileprivate let lockHistograms: TableArray<CompactHistogram>
        fileprivate let counts: CountsPool
        fileprivate var cpus: [[FlatTable<LockCPUKey, CompactHistogram>.Slot]]
        fileprivate var tasks: [[FlatTable<LockTaskKey, CompactHistogram>.Slot]]
        fileprivate var contexts: [[FlatTable<LockContextKey, Tally>.Slot]]
        fileprivate var owners: [[FlatTable<LockOwnerKey, Tally>.Slot]]
        fileprivate var threads: [[FlatTable<LockThreadKey, Tally>.Slot]]

        func totalNs(ofLock lock: Int) -> UInt64 { lockHistograms[lock * Aggregator.histogramsPerLock].totalNs }

        /// The lock's statistics.
        func lockState(_ lock: Int) -> LockState {
            let entry = locks[lock]
            let histograms = lock * Aggregator.histogramsPerLock
            func accumulator(_ kind: LockHistogram, plus offset: Int = 0) -> WaitAccumulator {
                counts.accumulator(lockHistograms[histograms + kind.rawValue + offset])
            }
            var state = LockState(kind: entry.kind)
            state.total = accumulator(.total)
            state.read = accumulator(.read)
            state.write = accumulator(.write)
            let handoffs = Handoff.allCases.indices.map { accumulator(.handoffs, plus: $0) }
            if handoffs.contains(where: { $0.count > 0 }) { state.handoffs = handoffs }
            for slot in cpus[lock] { state.byCPU[slot.key.cpu] = counts.accumulator(slot.value) }
            for slot in tasks[lock] {
                state.byTask[TaskKey(cgroupID: slot.key.cgroupID, pid: slot.key.pid)] = counts.accumulator(slot.value)
            }
            for slot in contexts[lock] { state.contexts[slot.key.context] = slot.value }
            for slot in owners[lock] { state.owners[slot.key.owner] = slot.value }
            for slot in threads[lock] { state.byThread[slot.key.tid] = slot.value }
            state.outerLocks = entry.outerLocks
            return state
        }

        /// Frees a lock's entries once its part of the profile is built.
        mutating func release(_ lock: Int) {
            (cpus[lock], tasks[lock], contexts[lock], owners[lock], threads[lock]) = ([], [], [], [], [])
        }
    }

    private static func grouped<Key: LockIndexedKey, Value>(_ table: borrowing FlatTable<Key, Value>,
                                                            locks: Int) -> [[FlatTable<Key, Value>.Slot]] {
        var groups = [[FlatTable<Key, Value>.Slot]](repeating: [], count: locks)
        table.forEachEntry { groups[$0.key.lock].append($0) }
        return groups
    }

    /// What has been recorded (after `finishPending`), with these histograms and grouped tables.
    private func drained(lockHistograms: consuming TableArray<CompactHistogram>, counts: consuming CountsPool,
                         cpus: [[FlatTable<LockCPUKey, CompactHistogram>.Slot]],
                         tasks: [[FlatTable<LockTaskKey, CompactHistogram>.Slot]],
                         contexts: [[FlatTable<LockContextKey, Tally>.Slot]],
                         owners: [[FlatTable<LockOwnerKey, Tally>.Slot]],
                         threads: [[FlatTable<LockThreadKey, Tally>.Slot]],
                         names: [UInt64: LockName], durationNs: UInt64) -> Drained {
        let classes = lockEntries.map { MountLockClass(lockName: names[$0.address]?.name ?? "") }
        let timeline = timeline.timeline(durationNs: durationNs, lockClass: { classes[$0] })
        return Drained(topology: topology, locks: lockEntries, events: waitEvents + syscallEvents,
                processNames: processNames, threadNames: threadNames, syscalls: syscalls, syscallsByCgroup: syscallsByCgroup,
                attributed: attribution.containers, issuers: attribution.issuers, issuerPods: attribution.issuerPods,
                unlinked: attribution.releasedUnlinked,
                victimHolders: victimHolders,
                timeline: timeline, originNs: self.timeline.originNs,
                lockHistograms: lockHistograms, counts: counts, cpus: cpus, tasks: tasks, contexts: contexts,
                owners: owners, threads: threads)
    }

    func totalNs(ofLock lock: Int) -> UInt64 { lockHistograms[lock * Self.histogramsPerLock].totalNs }
    func contentions(ofLock lock: Int) -> UInt64 { lockHistograms[lock * Self.histogramsPerLock].count }

    /// The lock address with the most total wait so far (for the status line: the waits still in flight
    /// are not in it yet).
    public func heaviestLock() -> (address: UInt64, totalNs: UInt64)? {
        lockEntries.indices.max { totalNs(ofLock: $0) < totalNs(ofLock: $1) }
            .map { (lockEntries[$0].address, totalNs(ofLock: $0)) }
    }
}

// MARK: - Table keys

/// A table key that starts with a lock index. The index is stored plus one, so a key word is never 0:
/// 0 marks an unused slot.
protocol LockIndexedKey: FlatTableKey {
    var lock: Int { get }
}

/// A lock address (never 0: see `Aggregator.lockIndex`).
struct LockAddressKey: FlatTableKey {
    var address: UInt64
    init(_ address: UInt64) { self.address = address }
    static let unused = LockAddressKey(0)
    var hashWord: UInt64 { address }
}

/// (lock, CPU): (lock + 1) << 32 | cpu.
struct LockCPUKey: LockIndexedKey {
    var word: UInt64
    init(lock: Int, cpu: UInt32) { word = UInt64(lock + 1) << 32 | UInt64(cpu) }
    private init(word: UInt64) { self.word = word }
    static let unused = LockCPUKey(word: 0)
    var hashWord: UInt64 { word }
    var lock: Int { Int(word >> 32) - 1 }
    var cpu: UInt32 { UInt32(truncatingIfNeeded: word) }
}

/// (lock, thread): (lock + 1) << 32 | tid.
struct LockThreadKey: LockIndexedKey {
    var word: UInt64
    init(lock: Int, tid: UInt32) { word = UInt64(lock + 1) << 32 | UInt64(tid) }
    private init(word: UInt64) { self.word = word }
    static let unused = LockThreadKey(word: 0)
    var hashWord: UInt64 { word }
    var lock: Int { Int(word >> 32) - 1 }
    var tid: UInt32 { UInt32(truncatingIfNeeded: word) }
}

/// (lock, cgroup, pid).
struct LockTaskKey: LockIndexedKey {
    var cgroupID: UInt64
    /// (lock + 1) << 32 | pid.
    var lockAndPid: UInt64
    init(lock: Int, cgroupID: UInt64, pid: UInt32) {
        self.cgroupID = cgroupID
        lockAndPid = UInt64(lock + 1) << 32 | UInt64(pid)
    }
    static let unused = LockTaskKey(lock: -1, cgroupID: 0, pid: 0)
    var hashWord: UInt64 { cgroupID &* 31 &+ lockAndPid }
    var lock: Int { Int(lockAndPid >> 32) - 1 }
    var pid: UInt32 { UInt32(truncatingIfNeeded: lockAndPid) }
}

/// (lock, kernel stack, user stack, CPU, cgroup). The user stack fits in what was padding: 24 bytes still.
struct LockContextKey: LockIndexedKey {
    var cgroupID: UInt64
    /// (lock + 1) << 32 | cpu.
    var lockAndCPU: UInt64
    var stackID: Int32
    /// The user stack's id in the reader's `UserStackTable`, -1 without one.
    var userStack: Int32
    init(lock: Int, stackID: Int32, userStack: Int32, cpu: UInt32, cgroupID: UInt64) {
        self.cgroupID = cgroupID
        lockAndCPU = UInt64(lock + 1) << 32 | UInt64(cpu)
        self.stackID = stackID
        self.userStack = userStack
    }
    static let unused = LockContextKey(lock: -1, stackID: 0, userStack: 0, cpu: 0, cgroupID: 0)
    var hashWord: UInt64 {
        (cgroupID &* 31 &+ lockAndCPU) &* 31 &+ (UInt64(UInt32(bitPattern: userStack)) << 32 | UInt64(UInt32(bitPattern: stackID)))
    }
    var lock: Int { Int(lockAndCPU >> 32) - 1 }
    var context: Aggregator.ContextKey {
        .init(stackID: stackID, userStack: userStack, cpu: UInt32(truncatingIfNeeded: lockAndCPU), cgroupID: cgroupID)
    }
}

/// (lock, waiter cgroup, owner cgroup, owner pid).
struct LockOwnerKey: LockIndexedKey {
    var waiterCgroupID: UInt64
    var ownerCgroupID: UInt64
    /// (lock + 1) << 32 | owner pid.
    var lockAndOwnerPid: UInt64
    init(lock: Int, waiterCgroupID: UInt64, ownerCgroupID: UInt64, ownerPid: UInt32) {
        self.waiterCgroupID = waiterCgroupID
        self.ownerCgroupID = ownerCgroupID
        lockAndOwnerPid = UInt64(lock + 1) << 32 | UInt64(ownerPid)
    }
    static let unused = LockOwnerKey(lock: -1, waiterCgroupID: 0, ownerCgroupID: 0, ownerPid: 0)
    var hashWord: UInt64 { (waiterCgroupID &* 31 &+ ownerCgroupID) &* 31 &+ lockAndOwnerPid }
    var lock: Int { Int(lockAndOwnerPid >> 32) - 1 }
    var owner: Aggregator.OwnerKey {
        .init(waiterCgroupID: waiterCgroupID, ownerCgroupID: ownerCgroupID,
              ownerPid: UInt32(truncatingIfNeeded: lockAndOwnerPid))
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

    /// Every CPU id past the table is one the topology does not know (the table covers them all).
    private let coversTopology: Bool
    /// The class of a hand-off between different CPUs of which one is unknown, and of one to the same CPU.
    private let unknownPosition: Int
    private let sameCPUPosition = Handoff.allCases.firstIndex(of: .sameCPU)!

    init(_ topology: Topology) {
        self.topology = topology
        let ids = (topology.cpus.map(\.id).max() ?? -1) + 1
        size = min(ids, Self.maxCPUs)
        coversTopology = ids <= Self.maxCPUs
        unknownPosition = Handoff.allCases.firstIndex(of: topology.handoff(from: ids, to: ids + 1))!
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
    @inline(__always)
    func position(from previous: UInt32, to current: UInt32) -> Int {
        let from = Int(previous), to = Int(current)
        if from < size, to < size { return Int(classes[from &* size &+ to]) }
        if from == to { return sameCPUPosition }
        if coversTopology { return unknownPosition }
        return positionOutsideTable(from: from, to: to)
    }

    private func positionOutsideTable(from: Int, to: Int) -> Int {
        Handoff.allCases.firstIndex(of: topology.handoff(from: from, to: to))!
    }
}

extension LockKind {
    /// Whether waits can be for shared (read) access.
    var hasSharedMode: Bool { self == .rwsem || self == .rwlock || self == .percpuRwsem }
    /// Whether the BPF program reads the lock's owner at contention begin.
    var hasOwner: Bool { self == .mutex || self == .rwsem }
}

extension Aggregator.LockState {
    /// Read and write waits as the profile shows them: a kind without a shared mode only has writes.
    var readWrite: (read: WaitAccumulator, write: WaitAccumulator) {
        kind.hasSharedMode ? (read, write) : (WaitAccumulator(precision: WaitAccumulator.breakdownPrecision), total)
    }

}

extension Aggregator.SyscallState {
    mutating func record(_ event: SyscallEvent) {
        latency.record(event.latencyNs)
        if event.ret < 0 { errors += 1 }
    }
}
