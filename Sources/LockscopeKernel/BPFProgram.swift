import CLibbpf
import CLockscopeBPF
import Foundation
import LockscopeCore
import Synchronization

/// What the BPF programs keep, set before they are loaded.
public struct BPFOptions: Sendable, Equatable {
    /// Ring buffer size in bytes (a power of two, at least one page).
    public var ringBufferBytes: Int = 8 << 20
    /// Waits shorter than this are dropped in the kernel.
    public var minWaitNs: UInt64 = 0
    /// Lock kinds to keep; empty keeps every kind.
    public var kinds: Set<LockKind> = []
    /// Keep waits on these lock addresses...
    public var lockAddresses: [UInt64] = []
    /// ...or (when both are on: either) waits that began inside a mount-family syscall.
    public var filterByLockAddress = false
    public var filterByMountPath = false
    /// With `filterByLockAddress`: until `stopLearning()`, also keep waits on locks in the kernel's
    /// static data, flagged provisional (the recorder keeps those on the locks it then recognises).
    public var learnKernelDataLocks = false
    /// Keep only these processes (tgids) / cgroup ids; empty keeps all.
    public var pids: [UInt32] = []
    public var cgroupIDs: [UInt64] = []
    /// Keep only these threads (thread ids); empty keeps all.
    public var tids: [UInt32] = []
    /// Keep only waits that begin on these CPUs; nil keeps all.
    public var cpus: CPUList?
    /// Kernel frames kept per stack after the tracing glue (1...StackDepth.maximum). The stack map's
    /// value size, which bounds how deep the kernel walks, is `StackDepth.kernelFrames(keeping:)` of it.
    public var maxStackDepth = StackDepth.maximum

    /// Frames the kernel walks and keeps per stack.
    var kernelStackFrames: Int { StackDepth.kernelFrames(keeping: maxStackDepth) }
    /// Read mutex and rwsem owners at contention begin.
    public var readOwners = true
    /// Which waits get the waiter's user stack.
    public var userStacks = UserStackMode.mount
    /// Account mount-family syscalls (attaches their syscalls tracepoints, or raw_syscalls).
    public var mountSyscalls = true
    /// How to hook mount-family syscalls; `.automatic` tries per-syscall tracepoints first.
    public var syscallHooks = SyscallHookChoice.automatic
    /// With `.automatic` hooks, mount tracefs at `TraceFS.path` first when it is missing (`doctor`, which
    /// changes nothing on the host, turns this off).
    public var mountTraceFS = true
    /// How many cgroup names the kernel keeps between two reads by user space (least recently used
    /// evicted first).
    public var cgroupNamesCapacity = UInt32(LOCKSCOPE_MAX_CGROUPS)

    public init() {}

    /// Wake the reader once a quarter of the ring buffer is full; otherwise it polls on a timer.
    var wakeupBytes: UInt64 { UInt64(ringBufferBytes / 4) }

    /// The `struct lockscope_config` these options give, written into .rodata before load.
    var config: lockscope_config {
        var config = lockscope_config()
        config.min_wait_ns = minWaitNs
        config.kind_mask = kinds.reduce(0) { $0 | $1.filterBit }
        var filters: UInt32 = 0
        if filterByLockAddress { filters |= UInt32(LOCKSCOPE_FILTER_LOCK_ADDRS.rawValue) }
        if filterByMountPath { filters |= UInt32(LOCKSCOPE_FILTER_MOUNT_PATH.rawValue) }
        if filterByLockAddress && learnKernelDataLocks { filters |= UInt32(LOCKSCOPE_FILTER_KERNEL_DATA.rawValue) }
        if !pids.isEmpty { filters |= UInt32(LOCKSCOPE_FILTER_PIDS.rawValue) }
        if !cgroupIDs.isEmpty { filters |= UInt32(LOCKSCOPE_FILTER_CGROUPS.rawValue) }
        if !tids.isEmpty { filters |= UInt32(LOCKSCOPE_FILTER_TIDS.rawValue) }
        if cpus != nil { filters |= UInt32(LOCKSCOPE_FILTER_CPUS.rawValue) }
        config.filters = filters
        config.wakeup_bytes = wakeupBytes
        config.read_owner = readOwners ? 1 : 0
        config.user_stacks = userStacks.configValue
        return config
    }
}

/// Which waits get the waiter's user stack (`record --user-stacks`).
public enum UserStackMode: String, Sendable, Equatable, CaseIterable {
    /// Waits inside mount-family syscalls: the waiter is the syscall's issuer, its user stack the call path
    /// that asked for the mount. One walk per syscall (at its first wait).
    case mount
    /// Every wait of a task with a user space.
    case all
    case none

    var configValue: UInt32 {
        switch self {
        case .none: UInt32(LOCKSCOPE_USER_STACKS_NONE.rawValue)
        case .mount: UInt32(LOCKSCOPE_USER_STACKS_MOUNT.rawValue)
        case .all: UInt32(LOCKSCOPE_USER_STACKS_ALL.rawValue)
        }
    }
}

/// Which tracepoints time the mount-family syscalls.
public enum SyscallHooks: String, Sendable, Equatable {
    /// syscalls:sys_enter_mount, sys_exit_mount, ...: they run only on those syscalls. They need
    /// tracefs and a kernel with CONFIG_FTRACE_SYSCALLS.
    case perSyscall = "per-syscall tracepoints"
    /// raw_syscalls sys_enter/sys_exit: they run on every syscall of the host and pick the
    /// mount-family ones by number (about 0.2 µs per syscall here). They need neither.
    case rawSyscalls = "raw_syscalls"
}

/// Which syscall hooks to attach.
public enum SyscallHookChoice: Sendable, Equatable {
    /// Per-syscall tracepoints where the kernel has them, raw_syscalls otherwise.
    case automatic
    case only(SyscallHooks)
}

/// The loaded production object (bpf/lockscope.bpf.c through its skeleton), and the links that attach
/// its programs. Detaches and frees everything on `close()` or deinit.
public final class BPFProgram {
    private var object: BPFObject<lockscope_bpf>?
    private var links: [OpaquePointer] = []
    public let options: BPFOptions

    /// Opens the embedded object, applies `options`, and loads it into the kernel (needs CAP_BPF and CAP_PERFMON).
    public init(options: BPFOptions) throws {
        self.options = options
        let object = try BPFObject<lockscope_bpf>(options: options) { skeleton in
            let maps = skeleton.pointee.maps
            try check(bpf_map__set_max_entries(maps.cgroup_names, options.cgroupNamesCapacity), "size the cgroup names")
            // Open syscalls keep their paths (~800 bytes each): their table keeps the header's size.
            try check(bpf_map__set_max_entries(maps.open_waits, Self.taskCapacity), "size open_waits")
            try check(bpf_map__set_max_entries(maps.cpu_filter, Self.possibleCPUs), "size cpu_filter")
            try check(bpf_map__set_value_size(maps.stacks, UInt32(options.kernelStackFrames * MemoryLayout<UInt64>.size)),
                      "size the stack map's frames")
        }
        self.object = object
        do {
            try fillSyscallTable()
            try setLearning(options.filterByLockAddress && options.learnKernelDataLocks)
            try addLockAddresses(options.lockAddresses)
            for pid in options.pids { try setKey(skeleton.pointee.maps.pid_filter, pid) }
            for cgroup in options.cgroupIDs { try setKey(skeleton.pointee.maps.cgroup_filter, cgroup) }
            for tid in options.tids { try setKey(skeleton.pointee.maps.tid_filter, tid) }
            for cpu in options.cpus?.cpus ?? [] where cpu < Int(Self.possibleCPUs) {
                try setKey(skeleton.pointee.maps.cpu_filter, UInt32(cpu))
            }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// The object, until `close()`.
    private var loaded: BPFObject<lockscope_bpf> {
        guard let object else { preconditionFailure("BPFProgram used after close()") }
        return object
    }

    /// The skeleton's programs and maps, typed by their names in bpf/lockscope.bpf.c.
    var skeleton: UnsafeMutablePointer<lockscope_bpf> { loaded.skeleton }

    /// Tasks that can be inside a wait at once: 128 per CPU, at least
    /// LOCKSCOPE_MAX_TASKS and at most 2^20. Beyond it a wait is lost and counted (`task_map_full`).
    static var taskCapacity: UInt32 {
        UInt32(min(max(Int(LOCKSCOPE_MAX_TASKS), 128 * Int(max(libbpf_num_possible_cpus(), 1))), 1 << 20))
    }

    /// CPU numbers the kernel can have (the cpu_filter array's size).
    static var possibleCPUs: UInt32 { UInt32(max(libbpf_num_possible_cpus(), 1)) }

    /// The syscall hooks attached, nil when mount syscalls are not hooked (or not yet attached).
    public private(set) var syscallHooks: SyscallHooks?
    /// Whether `attach` mounted tracefs (it was missing) for the per-syscall tracepoints.
    public private(set) var mountedTraceFS = false

    /// The per-syscall tracepoint programs of `syscall` (SYSCALL_TRACEPOINTS in bpf/lockscope.bpf.c,
    /// named after the kernel's SYSCALL_DEFINE: umount2 is `umount`). An exhaustive switch, so a
    /// MountSyscall without its programs does not compile.
    private func tracepointPrograms(_ syscall: MountSyscall) -> (enter: OpaquePointer, exit: OpaquePointer) {
        let programs = skeleton.pointee.progs
        switch syscall {
        case .mount: return (programs.enter_mount, programs.exit_mount)
        case .umount2: return (programs.enter_umount, programs.exit_umount)
        case .openTree: return (programs.enter_open_tree, programs.exit_open_tree)
        case .moveMount: return (programs.enter_move_mount, programs.exit_move_mount)
        case .mountSetattr: return (programs.enter_mount_setattr, programs.exit_mount_setattr)
        case .fsopen: return (programs.enter_fsopen, programs.exit_fsopen)
        case .fsconfig: return (programs.enter_fsconfig, programs.exit_fsconfig)
        case .fsmount: return (programs.enter_fsmount, programs.exit_fsmount)
        case .fspick: return (programs.enter_fspick, programs.exit_fspick)
        case .unshare: return (programs.enter_unshare, programs.exit_unshare)
        case .clone: return (programs.enter_clone, programs.exit_clone)
        case .clone3: return (programs.enter_clone3, programs.exit_clone3)
        case .setns: return (programs.enter_setns, programs.exit_setns)
        }
    }

    /// Every mount-family syscall's tracepoint programs.
    var perSyscallPrograms: [OpaquePointer] {
        MountSyscall.allCases.flatMap { syscall in
            let programs = tracepointPrograms(syscall)
            return [programs.enter, programs.exit]
        }
    }

    /// The lock programs, and the `raw_syscalls` fallback for the per-syscall ones.
    var lockPrograms: [OpaquePointer] { [skeleton.pointee.progs.contention_begin, skeleton.pointee.progs.contention_end] }
    var rawSyscallPrograms: [OpaquePointer] { [skeleton.pointee.progs.syscall_enter, skeleton.pointee.progs.syscall_exit] }

    /// Attaches the programs: contention_begin/end, and the syscall hooks when accounting mount
    /// syscalls or filtering by mount path. On failure nothing stays attached.
    public func attach() throws {
        do {
            try attach(lockPrograms)
            guard options.mountSyscalls || options.filterByMountPath else { return }
            switch options.syscallHooks {
            case .automatic:
                do {
                    mountedTraceFS = options.mountTraceFS && TraceFS.ensureMounted() == .mounted
                    try attach(perSyscallPrograms)
                    syscallHooks = .perSyscall
                } catch {
                    try attach(rawSyscallPrograms)
                    syscallHooks = .rawSyscalls
                }
            case .only(.perSyscall):
                try attach(perSyscallPrograms)
                syscallHooks = .perSyscall
            case .only(.rawSyscalls):
                try attach(rawSyscallPrograms)
                syscallHooks = .rawSyscalls
            }
        } catch {
            detach()
            throw error
        }
    }

    /// Attaches every program of `programs` (skeleton `progs`), or none of them (internal for tests).
    func attach(_ programs: [OpaquePointer]) throws {
        var attached: [OpaquePointer] = []
        for program in programs {
            guard let link = bpf_program__attach(program) else {
                let code = errno
                for link in attached { bpf_link__destroy(link) }
                throw BPFError.attach(program: String(cString: bpf_program__name(program)), errno: code)
            }
            attached.append(link)
        }
        links += attached
    }

    /// Detaches every program (idempotent); maps stay readable until `close()`.
    public func detach() {
        for link in links { bpf_link__destroy(link) }
        links.removeAll()
        syscallHooks = nil
    }

    /// Detaches and frees the object (idempotent).
    public func close() {
        detach()
        object = nil
    }

    public var isAttached: Bool { !links.isEmpty }

    /// The ring buffer's file descriptor.
    public var eventsFD: Int32 { loaded.eventsFD }
    /// The open waits by thread id, which the on-CPU sampler reads too (`SpinSampler`).
    var openWaitsFD: Int32 { bpf_map__fd(skeleton.pointee.maps.open_waits) }
    /// The open mount-family syscalls by thread id, which the on-CPU sampler reads too.
    var openSyscallsFD: Int32 { bpf_map__fd(skeleton.pointee.maps.open_syscalls) }

    /// Runs one of the skeleton's raw_tp programs once, such as `\.progs.contention_begin`, with
    /// `arguments` as its tracepoint arguments (`TestRunProgram`).
    public func testRun(_ program: KeyPath<lockscope_bpf, OpaquePointer?>, _ arguments: [UInt64]) throws {
        try TestRunProgram(skeleton.pointee[keyPath: program]!).run(arguments)
    }

    /// The per-CPU counters summed over CPUs, indexed by `lockscope_counter`.
    public func counters() -> [UInt64] { loaded.counters() }

    /// Runs of the contention programs the kernel skipped because a BPF program was already running on
    /// that CPU (a lock contended inside BPF code itself, such as the ring buffer's spinlock).
    public func recursionMisses() -> UInt64 {
        lockPrograms.reduce(0) { total, program in
            var info = bpf_prog_info()
            var length = UInt32(MemoryLayout<bpf_prog_info>.size)
            guard bpf_obj_get_info_by_fd(bpf_program__fd(program), &info, &length) == 0 else { return total }
            return total + info.recursion_misses
        }
    }

    /// A captured kernel stack (innermost first), nil when the id is unknown.
    public func stack(id: Int32) -> [UInt64]? {
        guard id >= 0 else { return nil }
        var key = UInt32(id)
        var frames = [UInt64](repeating: 0, count: options.kernelStackFrames)
        guard bpf_map_lookup_elem(bpf_map__fd(skeleton.pointee.maps.stacks), &key, &frames) == 0 else { return nil }
        return Array(frames.prefix { $0 != 0 })
    }

    /// The ids of the stacks the kernel holds.
    public func stackIDs() -> [Int32] {
        let fd = bpf_map__fd(skeleton.pointee.maps.stacks)
        var ids: [Int32] = []
        var key: UInt32 = 0
        var next: UInt32 = 0
        var status = bpf_map_get_next_key(fd, nil, &next)
        while status == 0 {
            ids.append(Int32(bitPattern: next))
            key = next
            status = bpf_map_get_next_key(fd, &key, &next)
        }
        return ids
    }

    /// Removes stacks from the kernel's table, so that their slots take new stacks (`lockscope agent`).
    public func deleteStacks(_ ids: some Sequence<Int32>) {
        let fd = bpf_map__fd(skeleton.pointee.maps.stacks)
        for id in ids {
            var key = UInt32(bitPattern: id)
            _ = bpf_map_delete_elem(fd, &key)
        }
    }

    /// Each loaded program's name, and the time and runs the kernel counted for it (counted only while
    /// BPF run-time statistics are on: `BPFRunStatistics`).
    public func runStatistics() -> [BPFProgramRuns] {
        var runs: [BPFProgramRuns] = []
        var program = bpf_object__next_program(skeleton.pointee.obj, nil)
        while let current = program {
            let fd = bpf_program__fd(current)
            if fd >= 0 {
                var info = bpf_prog_info()
                var length = UInt32(MemoryLayout<bpf_prog_info>.size)
                if bpf_obj_get_info_by_fd(fd, &info, &length) == 0 {
                    runs.append(BPFProgramRuns(program: String(cString: bpf_program__name(current)),
                                               runTimeNs: info.run_time_ns, runs: info.run_cnt))
                }
            }
            program = bpf_object__next_program(skeleton.pointee.obj, current)
        }
        return runs
    }

    /// Cgroup paths the kernel recorded when it first saw each cgroup id: `/system.slice/docker-<id>.scope`,
    /// or `/.../a/b/c/d/e` when the path was deeper than the levels kept. The recorder reads them every
    /// second, so that names the kernel evicts later are kept.
    public func cgroupPaths() -> [UInt64: String] {
        let fd = bpf_map__fd(skeleton.pointee.maps.cgroup_names)
        var paths: [UInt64: String] = [:]
        var key: UInt64 = 0
        var next: UInt64 = 0
        var entry = lockscope_cgroup_names()
        var status = bpf_map_get_next_key(fd, nil, &next)
        while status == 0 {
            key = next
            if bpf_map_lookup_elem(fd, &key, &entry) == 0 { paths[key] = CgroupNames(entry).path }
            status = bpf_map_get_next_key(fd, &key, &next)
        }
        return paths
    }

    /// The command line the kernel kept for `pid` when it first issued a mount syscall (NUL-separated
    /// arguments, as /proc/<pid>/cmdline), nil when none was kept.
    public func processArgs(pid: UInt32) -> String? {
        var key = pid
        var entry = lockscope_process_args()
        guard bpf_map_lookup_elem(bpf_map__fd(skeleton.pointee.maps.process_args), &key, &entry) == 0 else { return nil }
        let length = min(Int(entry.length), MemoryLayout.size(ofValue: entry.args))
        return withUnsafeBytes(of: &entry.args) { String(decoding: $0.prefix(length), as: UTF8.self) }
    }

    /// Whether the kernel keeps provisional waits on static kernel locks (`learnKernelDataLocks`).
    public private(set) var learning = false

    /// The selected locks' addresses are all known (and in the lock filter): the kernel stops keeping
    /// provisional waits.
    public func stopLearning() throws { try setLearning(false) }

    private func setLearning(_ on: Bool) throws {
        var key: UInt32 = 0
        var value: UInt32 = on ? 1 : 0
        try check(bpf_map_update_elem(bpf_map__fd(skeleton.pointee.maps.learning), &key, &value, UInt64(BPF_ANY)),
                  "set the learning flag")
        learning = on
    }

    /// Adds lock addresses to the in-kernel lock filter (used when a lock is recognised mid-recording).
    public func addLockAddresses(_ addresses: [UInt64]) throws {
        for address in addresses { try setKey(skeleton.pointee.maps.lock_filter, address) }
    }

    // MARK: - Setup

    /// Puts `key` in one of the filter maps (a set: the value is a placeholder).
    private func setKey<Key>(_ filter: OpaquePointer, _ key: Key) throws {
        var key = key
        var present: UInt8 = 1
        try check(bpf_map_update_elem(bpf_map__fd(filter), &key, &present, UInt64(BPF_ANY)),
                  "fill \(String(cString: bpf_map__name(filter)))")
    }

    /// Mount-family syscall numbers (x86-64) -> lockscope_mount_syscall, for the raw_syscalls programs.
    private func fillSyscallTable() throws {
        let fd = bpf_map__fd(skeleton.pointee.maps.syscall_table)
        for syscall in MountSyscall.allCases {
            var key = UInt32(syscall.x86_64Number)
            var value = UInt32(syscall.rawValue)
            try check(bpf_map_update_elem(fd, &key, &value, UInt64(BPF_ANY)), "fill syscall_table")
        }
    }
}

/// Why the BPF side could not start; each says what to do.
public enum BPFError: Error, CustomStringConvertible {
    case open(errno: Int32)
    case load(errno: Int32, log: String)
    case attach(program: String, errno: Int32)
    case setup(String, errno: Int32)

    public var description: String {
        switch self {
        case .open(let code):
            return "cannot open the embedded BPF object: \(String(cString: strerror(code))); rebuild lockscope (make bpf)"
        case .load(let code, let log):
            if code == EPERM || code == EACCES {
                return "loading BPF programs was refused (\(String(cString: strerror(code)))): run as root, or grant CAP_BPF and CAP_PERFMON"
            }
            let detail = log.isEmpty ? "" : " (libbpf: \(log))"
            return "cannot load the BPF programs: \(String(cString: strerror(code)))\(detail); run `lockscope doctor`"
        case .attach(let program, let code):
            return "cannot attach \(program): \(String(cString: strerror(code))); run `lockscope doctor` to see what this kernel supports"
        case .setup(let what, let code):
            return "cannot \(what): \(String(cString: strerror(code)))"
        }
    }
}

/// Keeps libbpf's messages instead of printing them, so errors can quote the relevant lines.
enum LibbpfLog {
    private static let lines = Mutex<[String]>([])

    static func install() {
        _ = libbpf_set_print { level, format, arguments in
            guard let format, let arguments else { return 0 }
            var buffer = [CChar](repeating: 0, count: 1024)
            let length = vsnprintf(&buffer, buffer.count, format, arguments)
            guard length > 0, level != LIBBPF_DEBUG else { return 0 }
            let line = String(cString: buffer).trimmingCharacters(in: .whitespacesAndNewlines)
            LibbpfLog.lines.withLock { lines in
                lines.append(line)
                if lines.count > 20 { lines.removeFirst(lines.count - 20) }
            }
            return 0
        }
    }

    /// The last warnings libbpf emitted, joined on one line.
    static func lastLines(_ count: Int = 3) -> String {
        lines.withLock { $0.suffix(count).joined(separator: " | ") }
    }
}

/// A `struct lockscope_cgroup_names` as a path.
struct CgroupNames {
    var names: [String]
    var truncated: Bool

    init(_ raw: lockscope_cgroup_names) {
        var raw = raw
        let levels = Int(min(raw.levels, UInt32(LOCKSCOPE_CGROUP_LEVELS)))
        names = withUnsafeBytes(of: &raw.names) { bytes in
            (0..<levels).map { level in
                let slice = bytes[(level * Int(LOCKSCOPE_CGROUP_NAME_LEN))..<((level + 1) * Int(LOCKSCOPE_CGROUP_NAME_LEN))]
                return String(decoding: slice.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        truncated = raw.truncated != 0
    }

    /// Outermost first, like a cgroup path relative to the cgroup2 root.
    var path: String {
        (truncated ? "/..." : "") + "/" + names.reversed().joined(separator: "/")
    }
}

/// A BPF program's cost as the kernel counts it (`bpf_prog_info`'s run_time_ns and run_cnt).
public struct BPFProgramRuns: Sendable, Equatable {
    public var program: String
    public var runTimeNs: UInt64
    public var runs: UInt64

    public init(program: String, runTimeNs: UInt64, runs: UInt64) {
        self.program = program
        self.runTimeNs = runTimeNs
        self.runs = runs
    }
}

/// Keeps the kernel's BPF run-time statistics on while it lives (`BPF_ENABLE_STATS`): each program run
/// is then timed, which costs about two clock reads per run (a few tens of nanoseconds) for every BPF
/// program on the machine, not only lockscope's. The statistics go off when the last holder closes.
public final class BPFRunStatistics {
    private let fd: Int32

    public init() throws {
        let fd = bpf_enable_stats(BPF_STATS_RUN_TIME)
        guard fd >= 0 else {
            throw UserError("cannot turn on BPF run-time statistics (\(String(cString: strerror(-fd)))): pass --no-bpf-stats to run without them")
        }
        self.fd = fd
    }

    deinit { Glibc.close(fd) }
}
