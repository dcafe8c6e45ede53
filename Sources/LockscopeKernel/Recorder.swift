import CLockscopeBPF
import Foundation
import LockscopeCore

/// What to record and how to name it.
public struct RecordOptions {
    public var bpf = BPFOptions()
    public var selection: LockSelection = .mount
    public var recording = Recording()
    /// Where cgroup ids are resolved and topology is read from.
    public var sysfsRoot = "/sys"
    public var kallsymsPath = "/proc/kallsyms"
    /// On-CPU samples per second and CPU (SpinSampler); 0 records no samples.
    public var spinHz = SpinSampler.defaultHz
    /// Keep only the waits whose kernel stack matches (`--callstack-filter`); nil keeps every wait.
    public var callstackFilter: CallstackFilter?

    public init() {}
}

/// One refresh of the live status line.
public struct RecordStatus: Sendable {
    public var elapsedNs: UInt64
    public var events: UInt64
    public var dropped: UInt64
    /// The lock with the most total wait so far, and that wait.
    public var topLock: (name: String, totalWaitNs: UInt64)?
}

/// Records lock contention: loads and attaches the BPF programs, drains the ring buffer into an
/// `Aggregator`, keeps the kernel filter taught about recognised locks, and builds the `Profile`.
public final class Recorder {
    public let options: RecordOptions
    public let kernel: KernelInfo
    public let symbols: Kallsyms
    public let topology: Topology?
    private let cgroups: CgroupResolver?
    private let program: BPFProgram
    private let reader: RingBufferReader
    /// The on-CPU sampler, nil when `spinHz` is 0.
    public let sampler: SpinSampler?
    private var aggregator: Aggregator
    private var stackCache: [Int32: [UInt64]] = [:]
    /// Names user stacks from the mappings of their processes, read when each first shows up.
    private let userStacks: UserStackSymbolizer
    /// The user stacks the waits came with.
    private let userStackTable = UserStackTable()
    /// The previous window's stacks (`takeWindow`): for waits that were in flight when their stack was
    /// removed from the kernel's table.
    private var previousWindowStacks: [Int32: [UInt64]] = [:]
    /// Stack ids the kernel held at the last window's end that nothing had looked up.
    private var unreadStacks = Set<Int32>()
    /// The kernel's loss counters at the start of the current window.
    private var windowDropsBase = Drops()
    private var filteredLockAddresses = Set<UInt64>()
    /// Cgroup paths read from the kernel's table of names, kept here once read: the table evicts.
    private var cgroupPaths: [UInt64: String] = [:]
    /// The kernel's count of names added when the table was last read (nothing new: no need to read).
    private var cgroupNamesAddedAtLastRead: UInt64 = 0
    /// How many names the table held at that read.
    private var cgroupNamesPresentAtLastRead: UInt64 = 0
    /// Cgroups the profile could not name (set when the profile is built).
    private var cgroupNamesLost: UInt64 = 0
    private var startedAt = Date()
    private var startNs: UInt64 = 0
    private var stopNs: UInt64?
    private var finished = false

    /// Everything that can fail before attaching happens here: reading symbols, topology and cgroups,
    /// and loading the programs.
    public init(options: RecordOptions) throws {
        self.options = options
        kernel = KernelInfo.read()
        symbols = try Kallsyms.load(path: options.kallsymsPath)
        topology = try? Topology.read(sysfsRoot: options.sysfsRoot)
        cgroups = try? CgroupResolver()
        let program = try BPFProgram(options: options.bpf)
        self.program = program
        let userStacks = UserStackSymbolizer(
            readMaps: { pid in try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8) },
            openFile: ELFReader.open(pid:mapping:), demangle: SymbolNames.demangle)
        self.userStacks = userStacks
        // The kernel's copy first: a short-lived shim can be gone before /proc is read.
        aggregator = Aggregator(topology: topology, issuerPod: { pid in
            (program.processArgs(pid: pid) ?? Recorder.commandLine(pid)).flatMap(MountPaths.shimPod(commandLine:))
        }, sawUserStackProcess: options.bpf.userStacks == .none ? nil : userStacks.sawProcess)
        if let filter = options.callstackFilter {
            let symbols = self.symbols
            aggregator.stackSelector = StackSelector(filter: filter, stackAddresses: { [unowned program] id in program.stack(id: id) },
                                                     symbols: symbols, maxDepth: options.bpf.maxStackDepth)
        }
        reader = try RingBufferReader(mapFD: program.eventsFD, userStacks: userStackTable)
        sampler = options.spinHz > 0
            ? try SpinSampler(hz: options.spinHz, waits: program, pids: options.bpf.pids, cgroupIDs: options.bpf.cgroupIDs) : nil
        aggregator.keepsMountSyscallContainers = sampler != nil
    }

    deinit { program.close() }

    /// A running process's command line (NUL-separated), from /proc.
    static func commandLine(_ pid: UInt32) -> String? {
        (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))).map { String(decoding: $0, as: UTF8.self) }
    }

    /// How mount-family syscalls are hooked, once attached (nil when they are not).
    public var syscallHooks: SyscallHooks? { program.syscallHooks }
    /// Whether attaching mounted tracefs at `TraceFS.path` (it was missing), as perf and bpftrace do.
    public var mountedTraceFS: Bool { program.mountedTraceFS }

    /// Attaches the programs; from here on waits are recorded.
    public func attach() throws {
        startedAt = Date()
        startNs = monotonicNs()
        aggregator.startTimeline(atNs: startNs)
        try program.attach()
        do { try sampler?.attach() } catch {
            program.detach()
            throw error
        }
    }

    /// Polls the ring buffer until `shouldStop` returns true; calls `status` about once a second.
    ///
    /// Naming every lock (for the status line and the kernel filter) takes longer as locks accumulate,
    /// about 70 ms for a thousand. It first runs 100 ms in, then twice as far apart each time up to once
    /// a second (so that namespace_sem's readers outside mount syscalls, the victims, are kept early in a
    /// short storm), and never more often than keeps it under 5% of the collector's time.
    public func run(shouldStop: () -> Bool, status: (RecordStatus) -> Void) {
        var nextTick = monotonicNs() + 1_000_000_000
        var namingInterval: UInt64 = 100_000_000
        var nextNaming = monotonicNs() + namingInterval
        var names: [UInt64: LockName] = [:]
        while !shouldStop() {
            reader.poll(timeoutMs: 100, into: &aggregator)
            let now = monotonicNs()
            if now >= nextNaming {
                names = refreshKernelFilter()
                namingInterval = min(namingInterval * 2, 1_000_000_000)
                nextNaming = now + max(namingInterval, (monotonicNs() - now) * 20)
            }
            if now >= nextTick {
                nextTick = now + 1_000_000_000
                readCgroupNames()
                aggregator.releaseStaleHolds(now: now)
                status(currentStatus(names: names))
            }
        }
    }

    /// Stops recording (detaches, drains what is left) and builds the profile, releasing the
    /// aggregated state as it goes. Call once.
    public func finish() -> Profile {
        if !finished {
            finished = true
            stopNs = monotonicNs()
            // What is already there first: detaching takes a while (a second or two), and processes whose
            // mappings are still to be read may exit meanwhile.
            reader.drain(into: &aggregator)
            program.detach()
            sampler?.detach()
            reader.drain(into: &aggregator)
            readCgroupNames()
            // Every lock has a name now: the provisional waits still held are kept or dropped for good.
            if aggregator.holdsProvisionalWaits {
                let names = aggregator.lockNames(inputs())
                aggregator.settleProvisionalWaits { address in names[address].map { keeps($0) } ?? false }
            }
        }
        // Resolved once per cgroup for waits and samples alike, so a lost name is counted once.
        let resolve = containerResolver()
        var resolved: [UInt64: Container] = [:]
        let containers: (UInt64) -> Container = { id in
            if let known = resolved[id] { return known }
            let container = resolve(id)
            resolved[id] = container
            return container
        }
        var profile = aggregator.takeProfile(inputs(containers: containers))
        if let sampler {
            // Samples inside a mount syscall go where the syscall's waits went (its container by paths or issuer).
            SpinProfileBuilder(symbols: symbols, topology: topology, container: containers,
                               syscallTie: { [unowned self] in aggregator.mountSyscallTie($0) },
                               selection: options.selection)
                .apply(sampler.read(), to: &profile)
        }
        profile.drops.cgroupNamesLost = cgroupNamesLost
        profile.drops.userMapsLost = userStacks.processesUnknown
        return profile
    }

    /// The profile of the window since the last call (or since `attach`), for `lockscope agent`, which
    /// records in windows for as long as it runs: the aggregation starts again (what is held for a
    /// container carries over, `Aggregator.takeWindow`), the drops are this window's, and the kernel's
    /// stack table keeps only the stacks not read yet, so nothing grows with the uptime. Call between
    /// `run`s, on the thread that runs them.
    ///
    /// `last`: the window at the end; the programs are detached first, and whatever is still held is
    /// counted in it, as `finish()` does.
    public func takeWindow(last: Bool = false) -> Profile {
        if last {
            finished = true
            program.detach()
            sampler?.detach()
        }
        reader.drain(into: &aggregator)
        let now = monotonicNs()
        stopNs = now
        readCgroupNames()
        aggregator.releaseStaleHolds(now: now)
        if last, aggregator.holdsProvisionalWaits {
            let names = aggregator.lockNames(inputs())
            aggregator.settleProvisionalWaits { address in names[address].map { keeps($0) } ?? false }
        }
        let totals = drops()
        var inputs = inputs(containers: cachedContainerResolver())
        inputs.drops = totals.subtracting(windowDropsBase)
        // On-CPU samples are not windowed (the sampler's table only grows): a windowed recorder has none.
        precondition(sampler == nil, "lockscope agent records with --spin-hz 0")
        var profile = last ? aggregator.takeProfile(inputs) : aggregator.takeWindow(inputs, nextOriginNs: now)
        profile.drops.cgroupNamesLost = cgroupNamesLost
        windowDropsBase = totals
        rollStacks()
        // Names the kernel's table still holds, and those read since the last window: bounded by the table.
        if cgroupPaths.count > Int(options.bpf.cgroupNamesCapacity) * 2 {
            cgroupPaths = program.cgroupPaths()
        }
        cgroups?.forget(beyond: Int(options.bpf.cgroupNamesCapacity) * 2)
        startedAt = Date()
        startNs = now
        stopNs = nil
        return profile
    }

    /// Removes from the kernel's stack table the stacks this window read and those no window read
    /// (waits the selection dropped), unless a held wait still needs them.
    private func rollStacks() {
        let held = aggregator.heldStackIDs
        let present = program.stackIDs()
        let stale = present.filter { !held.contains($0) && (stackCache[$0] != nil || unreadStacks.contains($0)) }
        program.deleteStacks(stale)
        unreadStacks = Set(present).subtracting(stale).subtracting(stackCache.keys)
        previousWindowStacks = stackCache
        stackCache = [:]
    }

    /// The BPF programs' own cost so far (counted while `BPFRunStatistics` are on).
    public func programRuns() -> [BPFProgramRuns] { program.runStatistics() }

    /// Resolves each cgroup id once per profile, so a lost name is counted once.
    private func cachedContainerResolver() -> (UInt64) -> Container {
        let resolve = containerResolver()
        var resolved: [UInt64: Container] = [:]
        return { id in
            if let known = resolved[id] { return known }
            let container = resolve(id)
            resolved[id] = container
            return container
        }
    }

    /// The profile recorded so far, without stopping (for `lockscope top`, once a second). Waits still
    /// held for their container (`MountAttribution`) are in a later one.
    public func snapshot() -> Profile {
        var profile = aggregator.profile(inputs(containers: containerResolver()))
        profile.drops.cgroupNamesLost = cgroupNamesLost
        profile.drops.userMapsLost = userStacks.processesUnknown
        return profile
    }

    /// Keeps the names the kernel added since the last read, before its table evicts them.
    private func readCgroupNames() {
        let added = program.counters()[Int(LOCKSCOPE_CTR_CGROUP_NAMES_ADDED.rawValue)]
        guard added != cgroupNamesAddedAtLastRead else { return }
        cgroupNamesAddedAtLastRead = added
        let present = program.cgroupPaths()
        cgroupNamesPresentAtLastRead = UInt64(present.count)
        cgroupPaths.merge(present) { _, new in new }
    }

    /// The processes' drops so far, from the kernel counters.
    public func drops() -> Drops {
        let counters = program.counters()
        func counter(_ index: lockscope_counter) -> UInt64 { counters[Int(index.rawValue)] }
        var drops = Drops()
        drops.ringbufFull = counter(LOCKSCOPE_CTR_RINGBUF_FULL) + counter(LOCKSCOPE_CTR_SYSCALL_RINGBUF_FULL)
        drops.taskMapFull = counter(LOCKSCOPE_CTR_TASK_MAP_FULL)
        drops.nestingOverflow = counter(LOCKSCOPE_CTR_NESTING_OVERFLOW)
        drops.syscallMapFull = counter(LOCKSCOPE_CTR_SYSCALL_MAP_FULL)
        drops.stackFailed = counter(LOCKSCOPE_CTR_STACK_FAILED)
        drops.pathsTruncated = counter(LOCKSCOPE_CTR_PATH_TRUNCATED)
        drops.userStackFailed = counter(LOCKSCOPE_CTR_USER_STACK_FAILED)
        drops.provisionalOverflow = aggregator.provisionalOverflow
        drops.callstackFilterNoStack = aggregator.stackSelector?.noStack ?? 0
        drops.recursionMisses = program.recursionMisses()
        drops.cgroupNamesFull = counter(LOCKSCOPE_CTR_CGROUP_MAP_FULL)
        // Nothing but the LRU removes names, so whatever was added and is no longer there was evicted
        // (as of the last read: evictions happen only when a name is added, which makes the next read).
        let added = cgroupNamesAddedAtLastRead
        drops.cgroupNamesEvicted = added - min(cgroupNamesPresentAtLastRead, added)
        return drops
    }

    /// Raw kernel counters, indexed by `lockscope_counter` (for tests of the loss accounting).
    public func kernelCounters() -> [UInt64] { program.counters() }

    /// Cgroup id to container: from the live cgroup tree when the cgroup still exists, else from the
    /// names the kernel kept when it first saw the cgroup (containers remove theirs on exit).
    private func containerResolver() -> (UInt64) -> Container {
        cgroupNamesLost = 0
        return { [unowned self] id in
            if let live = cgroups?.container(forCgroupID: id), live.runtime != "unknown" { return live }
            if let path = cgroupPaths[id] { return ContainerIdentity.parse(cgroupPath: path) }
            cgroupNamesLost += 1
            return Container(id: "cgroup:\(id)", runtime: "unknown", cgroup: "")
        }
    }

    private func inputs(containers: @escaping (UInt64) -> Container = { Container(id: "cgroup:\($0)", runtime: "unknown", cgroup: "") })
        -> ProfileInputs {
        let end = stopNs ?? monotonicNs()
        return ProfileInputs(
            stackAddresses: { [unowned self] id in stackAddresses(id) }, symbols: symbols, layout: kernel.layout,
            container: containers,
            hostname: kernel.hostname, kernel: kernel.release, startedAt: rfc3339(startedAt),
            durationNs: end - startNs, drops: drops(), recording: options.recording, selection: options.selection,
            maxStackDepth: options.bpf.maxStackDepth,
            userFrames: { [unowned self] id in
                userStackTable.stack(id).map { userStacks.frames(pid: $0.pid, addresses: $0.addresses) }
            })
    }

    private func stackAddresses(_ id: Int32) -> [UInt64]? {
        if let cached = stackCache[id] { return cached }
        let stack = program.stack(id: id)
        if let stack { stackCache[id] = stack }
        return stack ?? previousWindowStacks[id]
    }

    /// Resolves each cgroup id once, while the cgroup still exists (containers remove theirs on exit).
    /// In `--locks mount` mode, once namespace_sem and mount_lock are recognised, keep their waits
    /// even outside mount syscalls (a task dropping its last mount reference in exit, say).
    /// Also records the provisional waits of the locks now named (or drops them, for locks that are
    /// not selected), and once every selected lock is known, tells the kernel to stop sending them.
    private func refreshKernelFilter() -> [UInt64: LockName] {
        let names = aggregator.lockNames(inputs())
        guard options.bpf.filterByLockAddress else { return names }
        let wanted = names.filter { keeps($0.value) }.map(\.key)
        let new = wanted.filter { !filteredLockAddresses.contains($0) }
        if !new.isEmpty, (try? program.addLockAddresses(new)) != nil { filteredLockAddresses.formUnion(new) }
        guard program.learning else { return names }
        // A lock is decided once it has a name other than its caller's (the caller-named ones may yet be
        // recognised by a later call path).
        aggregator.settleProvisionalWaits { address in
            guard let name = names[address] else { return nil }
            if keeps(name) { return filteredLockAddresses.contains(address) ? true : nil }
            return name.identity == .caller ? nil : false
        }
        let found = Set(names.values.filter { keeps($0) }.map(\.name))
        if selectedNames.isSubset(of: found) { try? program.stopLearning() }
        return names
    }

    /// Whether `name` is one of the locks the kernel filter selects by address.
    private func keeps(_ name: LockName) -> Bool {
        switch options.selection {
        case .mount: return LockNamer.mountLockNames.contains(name.name)
        case .names(let set): return LockSelection.names(set).keeps(name.name)
        case .all: return false
        }
    }

    /// The names that must all be found before the kernel stops keeping provisional waits.
    private var selectedNames: Set<String> {
        switch options.selection {
        case .mount: return [LockNamer.namespaceSem, LockNamer.mountLock]
        case .names(let set): return set
        case .all: return []
        }
    }

    private func currentStatus(names: [UInt64: LockName]) -> RecordStatus {
        let top = aggregator.heaviestLock()
        return RecordStatus(elapsedNs: monotonicNs() - startNs,
                            events: aggregator.waitEvents + aggregator.syscallEvents, dropped: drops().total,
                            topLock: top.map { (names[$0.address]?.name ?? "0x" + String($0.address, radix: 16), $0.totalNs) })
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the clock bpf_ktime_get_ns() reads).
public func monotonicNs() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

func rfc3339(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.string(from: date)
}
