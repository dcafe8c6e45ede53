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
    /// Keep only these processes (tgids) / cgroup ids; empty keeps all.
    public var pids: [UInt32] = []
    public var cgroupIDs: [UInt64] = []
    /// Read mutex and rwsem owners at contention begin.
    public var readOwners = true
    /// Account mount-family syscalls (attaches their syscalls tracepoints, or raw_syscalls).
    public var mountSyscalls = true
    /// How to hook mount-family syscalls; `.automatic` tries per-syscall tracepoints first.
    public var syscallHooks = SyscallHookChoice.automatic
    /// How many cgroup names the kernel keeps between two reads by user space (least recently used
    /// evicted first).
    public var cgroupNamesCapacity = UInt32(LOCKSCOPE_MAX_CGROUPS)

    public init() {}

    /// Wake the reader once a quarter of the ring buffer is full; otherwise it polls on a timer.
    var wakeupBytes: UInt64 { UInt64(ringBufferBytes / 4) }
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

/// The loaded BPF object: programs, maps and the links that attach them.
/// Detaches and frees everything on `close()` or deinit.
public final class BPFProgram {
    private var object: OpaquePointer?
    private var links: [OpaquePointer] = []
    public let options: BPFOptions

    /// Opens the embedded object, applies `options`, and loads it into the kernel (needs CAP_BPF and CAP_PERFMON).
    public convenience init(options: BPFOptions) throws {
        try self.init(objectName: "lockscope", bytes: lockscope_bpf_object_bytes(),
                      size: Int(lockscope_bpf_object_size()), options: options)
    }

    /// Opens another embedded object through the same loader (lockscope-bench's synthetic event source).
    /// The object needs `config` in .rodata and an `events` ring buffer; maps it lacks are not filled.
    public init(objectName: String, bytes: UnsafeRawPointer, size: Int, options: BPFOptions) throws {
        self.options = options
        LibbpfLog.install()
        var openOptions = bpf_object_open_opts()
        openOptions.sz = MemoryLayout<bpf_object_open_opts>.size
        object = objectName.withCString { name in
            openOptions.object_name = name
            return bpf_object__open_mem(bytes, size, &openOptions)
        }
        guard object != nil else { throw BPFError.open(errno: errno) }
        do {
            try writeConfig()
            try check(bpf_map__set_max_entries(map(.events), UInt32(options.ringBufferBytes)), "size the ring buffer")
            if let names = map(.cgroupNames) {
                try check(bpf_map__set_max_entries(names, options.cgroupNamesCapacity), "size the cgroup names")
            }
            // Open syscalls keep their paths (~800 bytes each): their table keeps the header's size.
            if let table = map(.openWaits) {
                try check(bpf_map__set_max_entries(table, Self.taskCapacity), "size open_waits")
            }
            let loaded = bpf_object__load(object)
            if loaded != 0 { throw BPFError.load(errno: -loaded, log: LibbpfLog.lastLines()) }
            try fillSyscallTable()
            try addLockAddresses(options.lockAddresses)
            for pid in options.pids { try setKey(.pidFilter, pid) }
            for cgroup in options.cgroupIDs { try setKey(.cgroupFilter, cgroup) }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Tasks that can be inside a wait (or a mount syscall) at once: 128 per CPU, at least
    /// LOCKSCOPE_MAX_TASKS and at most 2^20. Beyond it a wait is lost and counted (`task_map_full`).
    static var taskCapacity: UInt32 {
        UInt32(min(max(Int(LOCKSCOPE_MAX_TASKS), 128 * Int(max(libbpf_num_possible_cpus(), 1))), 1 << 20))
    }

    /// The syscall hooks attached, nil when mount syscalls are not hooked (or not yet attached).
    public private(set) var syscallHooks: SyscallHooks?

    /// The per-syscall tracepoint programs (`SYSCALL_TRACEPOINTS` in bpf/lockscope.bpf.c).
    static let perSyscallPrograms = ["mount", "umount", "open_tree", "move_mount", "mount_setattr", "fsopen",
                                     "fsconfig", "fsmount", "fspick", "unshare", "clone", "clone3", "setns"]
        .flatMap { ["enter_\($0)", "exit_\($0)"] }
    /// The lock programs, and the `raw_syscalls` fallback for the per-syscall ones.
    static let lockPrograms = ["contention_begin", "contention_end"]
    static let rawSyscallPrograms = ["syscall_enter", "syscall_exit"]

    /// Attaches the programs: contention_begin/end, and the syscall hooks when accounting mount
    /// syscalls or filtering by mount path. On failure nothing stays attached.
    public func attach() throws {
        do {
            try attach(Self.lockPrograms)
            guard options.mountSyscalls || options.filterByMountPath else { return }
            switch options.syscallHooks {
            case .automatic:
                do {
                    try attach(Self.perSyscallPrograms)
                    syscallHooks = .perSyscall
                } catch {
                    try attach(Self.rawSyscallPrograms)
                    syscallHooks = .rawSyscalls
                }
            case .only(.perSyscall):
                try attach(Self.perSyscallPrograms)
                syscallHooks = .perSyscall
            case .only(.rawSyscalls):
                try attach(Self.rawSyscallPrograms)
                syscallHooks = .rawSyscalls
            }
        } catch {
            detach()
            throw error
        }
    }

    /// Attaches every program of `names`, or none of them (internal for tests).
    func attach(_ names: [String]) throws {
        var attached: [OpaquePointer] = []
        func fail(_ error: BPFError) -> BPFError {
            for link in attached { bpf_link__destroy(link) }
            return error
        }
        for name in names {
            guard let program = bpf_object__find_program_by_name(object, name) else {
                throw fail(.missing("program \(name)"))
            }
            guard let link = bpf_program__attach(program) else {
                throw fail(.attach(program: name, errno: errno))
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
        if let object { bpf_object__close(object) }
        object = nil
    }

    public var isAttached: Bool { !links.isEmpty }

    /// The ring buffer's file descriptor.
    public var eventsFD: Int32 { bpf_map__fd(map(.events)) }

    /// The raw_tp program by name, for BPF_PROG_TEST_RUN.
    public func programFD(_ name: String) -> Int32 {
        bpf_program__fd(bpf_object__find_program_by_name(object, name))
    }

    /// Runs a raw_tp program once with `arguments` as its tracepoint arguments (BPF_PROG_TEST_RUN),
    /// in the context of the calling thread. Deterministic input for tests and benchmarks.
    public func testRun(_ programName: String, _ arguments: [UInt64]) throws {
        var context = arguments
        var runOptions = bpf_test_run_opts()
        runOptions.sz = MemoryLayout<bpf_test_run_opts>.size
        let result = context.withUnsafeMutableBytes { bytes in
            runOptions.ctx_in = UnsafeRawPointer(bytes.baseAddress)
            runOptions.ctx_size_in = UInt32(bytes.count)
            return bpf_prog_test_run_opts(programFD(programName), &runOptions)
        }
        if result != 0 { throw BPFError.setup("test-run \(programName)", errno: -result) }
    }

    /// The per-CPU counters summed over CPUs, indexed by `lockscope_counter`.
    public func counters() -> [UInt64] {
        let cpus = Int(max(libbpf_num_possible_cpus(), 1))
        let fd = bpf_map__fd(map(.counters))
        return (0..<Int(LOCKSCOPE_CTR_COUNT.rawValue)).map { index in
            var key = UInt32(index)
            var values = [UInt64](repeating: 0, count: cpus)
            guard bpf_map_lookup_elem(fd, &key, &values) == 0 else { return 0 }
            return values.reduce(0, &+)
        }
    }

    /// Runs of the contention programs the kernel skipped because a BPF program was already running on
    /// that CPU (a lock contended inside BPF code itself, such as the ring buffer's spinlock).
    public func recursionMisses() -> UInt64 {
        Self.lockPrograms.reduce(0) { total, name in
            var info = bpf_prog_info()
            var length = UInt32(MemoryLayout<bpf_prog_info>.size)
            guard bpf_obj_get_info_by_fd(programFD(name), &info, &length) == 0 else { return total }
            return total + info.recursion_misses
        }
    }

    /// A captured kernel stack (innermost first), nil when the id is unknown.
    public func stack(id: Int32) -> [UInt64]? {
        guard id >= 0 else { return nil }
        var key = UInt32(id)
        var frames = [UInt64](repeating: 0, count: Int(LOCKSCOPE_MAX_STACK_DEPTH))
        guard bpf_map_lookup_elem(bpf_map__fd(map(.stacks)), &key, &frames) == 0 else { return nil }
        return Array(frames.prefix { $0 != 0 })
    }

    /// Cgroup paths the kernel recorded when it first saw each cgroup id: `/system.slice/docker-<id>.scope`,
    /// or `/.../a/b/c/d/e` when the path was deeper than the levels kept. The recorder reads them every
    /// second, so that names the kernel evicts later are kept.
    public func cgroupPaths() -> [UInt64: String] {
        let fd = bpf_map__fd(map(.cgroupNames))
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
        guard let table = map(.processArgs) else { return nil }
        var key = pid
        var entry = lockscope_process_args()
        guard bpf_map_lookup_elem(bpf_map__fd(table), &key, &entry) == 0 else { return nil }
        let length = min(Int(entry.length), MemoryLayout.size(ofValue: entry.args))
        return withUnsafeBytes(of: &entry.args) { String(decoding: $0.prefix(length), as: UTF8.self) }
    }

    /// Adds lock addresses to the in-kernel lock filter (used when a lock is recognised mid-recording).
    public func addLockAddresses(_ addresses: [UInt64]) throws {
        for address in addresses { try setKey(.lockFilter, address) }
    }

    // MARK: - Setup

    /// The maps user space reads or fills, by their names in bpf/lockscope.bpf.c.
    private enum Map: String {
        case events, counters, stacks
        case cgroupNames = "cgroup_names"
        case openWaits = "open_waits", openSyscalls = "open_syscalls", processArgs = "process_args"
        case syscallTable = "syscall_table"
        case lockFilter = "lock_filter", pidFilter = "pid_filter", cgroupFilter = "cgroup_filter"
    }

    /// The map, nil if the object has none of that name (lockscope-bench's object has only some).
    private func map(_ map: Map) -> OpaquePointer? {
        bpf_object__find_map_by_name(object, map.rawValue)
    }

    private func setKey<Key>(_ filter: Map, _ key: Key) throws {
        var key = key
        var present: UInt8 = 1
        try check(bpf_map_update_elem(bpf_map__fd(map(filter)), &key, &present, UInt64(BPF_ANY)),
                  "fill \(filter.rawValue)")
    }

    /// Mount-family syscall numbers (x86-64) -> lockscope_mount_syscall; nothing for an object without the table.
    private func fillSyscallTable() throws {
        guard let table = map(.syscallTable) else { return }
        let fd = bpf_map__fd(table)
        for syscall in MountSyscall.allCases {
            var key = UInt32(syscall.x86_64Number)
            var value = UInt32(syscall.rawValue)
            try check(bpf_map_update_elem(fd, &key, &value, UInt64(BPF_ANY)), "fill syscall_table")
        }
    }

    /// Writes `struct lockscope_config` into the object's .rodata, at the offset BTF gives for `config`.
    private func writeConfig() throws {
        var config = lockscope_config()
        config.min_wait_ns = options.minWaitNs
        config.kind_mask = options.kinds.reduce(0) { $0 | $1.filterBit }
        var filters: UInt32 = 0
        if options.filterByLockAddress { filters |= UInt32(LOCKSCOPE_FILTER_LOCK_ADDRS.rawValue) }
        if options.filterByMountPath { filters |= UInt32(LOCKSCOPE_FILTER_MOUNT_PATH.rawValue) }
        if !options.pids.isEmpty { filters |= UInt32(LOCKSCOPE_FILTER_PIDS.rawValue) }
        if !options.cgroupIDs.isEmpty { filters |= UInt32(LOCKSCOPE_FILTER_CGROUPS.rawValue) }
        config.filters = filters
        config.wakeup_bytes = options.wakeupBytes
        config.read_owner = options.readOwners ? 1 : 0

        var rodata: OpaquePointer?
        var candidate = bpf_object__next_map(object, nil)
        while let current = candidate {
            if let name = bpf_map__name(current), String(cString: name).hasSuffix(".rodata") { rodata = current }
            candidate = bpf_object__next_map(object, current)
        }
        guard let rodata, let offset = variableOffset(section: ".rodata", variable: "config") else {
            throw BPFError.missing("the config variable in .rodata")
        }
        var size = 0
        guard let base = bpf_map__initial_value(rodata, &size),
              offset + MemoryLayout<lockscope_config>.size <= size else {
            throw BPFError.missing("room for the config in .rodata")
        }
        UnsafeMutableRawPointer(mutating: base).advanced(by: offset)
            .copyMemory(from: &config, byteCount: MemoryLayout<lockscope_config>.size)
    }

    private func variableOffset(section: String, variable: String) -> Int? {
        guard let btf = bpf_object__btf(object) else { return nil }
        let id = btf__find_by_name_kind(btf, section, BTFKind.datasec)
        guard id > 0, let datasec = btf__type_by_id(btf, UInt32(id)) else { return nil }
        let infos = btf_var_secinfos(datasec)!
        for index in 0..<Int(btf_vlen(datasec)) {
            let info = infos[index]
            guard let type = btf__type_by_id(btf, info.type), let name = btf__name_by_offset(btf, type.pointee.name_off)
            else { continue }
            if String(cString: name) == variable { return Int(info.offset) }
        }
        return nil
    }

    private func check(_ result: Int32, _ what: String) throws {
        if result != 0 { throw BPFError.setup(what, errno: result < 0 ? -result : errno) }
    }
}

/// Why the BPF side could not start; each says what to do.
public enum BPFError: Error, CustomStringConvertible {
    case open(errno: Int32)
    case load(errno: Int32, log: String)
    case attach(program: String, errno: Int32)
    case setup(String, errno: Int32)
    case missing(String)

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
        case .missing(let what):
            return "the embedded BPF object has no \(what); rebuild lockscope (make bpf)"
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
