import CLockscopeBPF

/// One completed contended wait, as the BPF program reports it (`struct lockscope_wait_event`).
public struct WaitEvent: Sendable, Equatable {
    public var flags: UInt32
    public var endNs: UInt64
    public var waitNs: UInt64
    public var lockAddress: UInt64
    /// The lock whose slow path this wait happened in (an rwsem around its wait_lock), or 0.
    public var outerLockAddress: UInt64
    public var cgroupID: UInt64
    public var ownerCgroupID: UInt64
    /// The start of the mount-family syscall the waiter was inside (its `SyscallEvent.beginNs`), 0 outside one.
    public var syscallBeginNs: UInt64
    public var pid: UInt32
    public var tid: UInt32
    /// Owner's tgid at the start of the wait, 0 when unknown.
    public var ownerPid: UInt32
    public var ownerTid: UInt32
    /// Id in the kernel stack map, negative when no stack was captured.
    public var stackID: Int32
    /// CPU that acquired the lock.
    public var cpu: UInt32
    public var ret: Int32
    public var beginCPU: UInt32
    public var comm: Comm
    public var ownerComm: Comm
    /// The waiter's user stack (`record --user-stacks`), as its id in the reader's `UserStackTable`; -1
    /// when there is none.
    public var userStackID: Int32

    public init(flags: UInt32, endNs: UInt64 = 0, waitNs: UInt64, lockAddress: UInt64, outerLockAddress: UInt64 = 0,
                cgroupID: UInt64 = 1, ownerCgroupID: UInt64 = 0, syscallBeginNs: UInt64 = 0, pid: UInt32 = 1,
                tid: UInt32 = 1, ownerPid: UInt32 = 0, ownerTid: UInt32 = 0, stackID: Int32 = -1, cpu: UInt32 = 0,
                ret: Int32 = 0, beginCPU: UInt32? = nil, comm: Comm = "", ownerComm: Comm = "", userStackID: Int32 = -1) {
        self.flags = flags
        self.endNs = endNs
        self.waitNs = waitNs
        self.lockAddress = lockAddress
        self.outerLockAddress = outerLockAddress
        self.cgroupID = cgroupID
        self.ownerCgroupID = ownerCgroupID
        self.syscallBeginNs = syscallBeginNs
        self.pid = pid
        self.tid = tid
        self.ownerPid = ownerPid
        self.ownerTid = ownerTid
        self.stackID = stackID
        self.cpu = cpu
        self.ret = ret
        self.beginCPU = beginCPU ?? cpu
        self.comm = comm
        self.ownerComm = ownerComm
        self.userStackID = userStackID
    }

    public var kind: LockKind {
        @inline(__always) get { LockKind(flags: flags) }
    }
    /// Waits for shared (read) access; everything else is exclusive.
    public var isRead: Bool { flags & UInt32(LOCKSCOPE_LCB_F_READ) != 0 }
}

/// One completed mount-family syscall (`struct lockscope_syscall_event`), with the arguments that say
/// what it was for (which argument each field holds, per syscall, is in bpf/lockscope.h).
public struct SyscallEvent: Sendable, Equatable {
    public var syscall: MountSyscall
    public var endNs: UInt64
    public var latencyNs: UInt64
    public var cgroupID: UInt64
    public var ret: Int64
    public var pid: UInt32
    public var tid: UInt32
    public var comm: Comm
    /// The fd argument (open_tree's and mount_setattr's dfd, move_mount's from_dfd, fsconfig's and
    /// fsmount's fs fd), -1 for syscalls without one.
    public var fd: Int32
    /// The path argument (mount and umount2's target, move_mount's to_pathname, ...), "" when absent.
    public var path: String
    /// mount's options, move_mount's from_pathname, fsconfig's key; "" when absent.
    public var data: String
    /// `path`, `data` or a name of `workingDirectory` were cut at the kernel side's length limit.
    public var truncated: Bool
    /// The issuer's working directory (mount's, and fsconfig's with a relative value), nil when not kept.
    public var workingDirectory: WorkingDirectory?

    public init(syscall: MountSyscall, endNs: UInt64 = 0, latencyNs: UInt64, cgroupID: UInt64 = 1, ret: Int64 = 0,
                pid: UInt32 = 1, tid: UInt32 = 1, comm: Comm = "", fd: Int32 = -1, path: String = "",
                data: String = "", truncated: Bool = false, workingDirectory: WorkingDirectory? = nil) {
        self.syscall = syscall
        self.endNs = endNs
        self.latencyNs = latencyNs
        self.cgroupID = cgroupID
        self.ret = ret
        self.pid = pid
        self.tid = tid
        self.comm = comm
        self.fd = fd
        self.path = path
        self.data = data
        self.truncated = truncated
        self.workingDirectory = workingDirectory
    }

    /// When the syscall began: what the waits inside it carry as `syscallBeginNs`.
    public var beginNs: UInt64 { endNs &- latencyNs }
}

/// A task's working directory as the kernel side keeps it (`cwd` of `struct lockscope_syscall_event`):
/// its last few names, which are the whole path only when `complete`. Relative paths of the syscall
/// (an overlay's compacted `lowerdir=`) are relative to it.
public struct WorkingDirectory: Sendable, Equatable, CustomStringConvertible {
    /// Outermost first.
    public var names: [String]
    /// The names reach the mount namespace's root: `names` is the whole path.
    public var complete: Bool

    public init(names: [String], complete: Bool) {
        self.names = names
        self.complete = complete
    }

    /// `/a/b` when complete, `…/a/b` when only its last names are known.
    public var description: String { (complete ? "" : "…") + "/" + names.joined(separator: "/") }
}

/// A record from the ring buffer.
public enum KernelEvent: Sendable, Equatable {
    case wait(WaitEvent)
    case syscall(SyscallEvent)

    /// Decodes one ring-buffer record; nil for a record too short or of an unknown type. A wait's user
    /// stack (the addresses after the event) is kept in `userStacks`, whose id the event then carries;
    /// without a table it is left out.
    public static func decode(_ bytes: UnsafeRawBufferPointer, userStacks: UserStackTable? = nil) -> KernelEvent? {
        guard bytes.count >= MemoryLayout<UInt32>.size else { return nil }
        switch bytes.loadUnaligned(as: UInt32.self) {
        case UInt32(LOCKSCOPE_EVENT_WAIT.rawValue):
            guard bytes.count >= MemoryLayout<lockscope_wait_event>.size else { return nil }
            let raw = bytes.loadUnaligned(as: lockscope_wait_event.self)
            var event = WaitEvent(raw)
            if _slowPath(raw.user_frames > 0), let userStacks,
               bytes.count >= MemoryLayout<lockscope_wait_user_event>.size {
                let start = MemoryLayout<lockscope_wait_user_event>.offset(of: \lockscope_wait_user_event.user_stack)!
                let frames = min(Int(raw.user_frames), Int(LOCKSCOPE_MAX_USER_STACK_DEPTH))
                event.userStackID = userStacks.id(pid: raw.pid, addresses: UnsafeRawBufferPointer(
                    rebasing: bytes[start..<start + frames * MemoryLayout<UInt64>.size]))
            }
            return .wait(event)
        case UInt32(LOCKSCOPE_EVENT_SYSCALL.rawValue):
            // The record stops where its strings do (bpf/lockscope.h): what is missing reads as empty.
            guard bytes.count >= MemoryLayout<lockscope_syscall_event>.offset(of: \lockscope_syscall_event.path)! else { return nil }
            var raw = lockscope_syscall_event()
            withUnsafeMutableBytes(of: &raw) { target in
                target.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes.prefix(target.count)))
            }
            return SyscallEvent(raw).map { .syscall($0) }
        default:
            return nil
        }
    }
}

extension WaitEvent {
    init(_ raw: lockscope_wait_event) {
        self.init(flags: raw.flags, endNs: raw.end_ns, waitNs: raw.wait_ns, lockAddress: raw.lock_addr,
                  outerLockAddress: raw.outer_lock_addr, cgroupID: raw.cgroup_id, ownerCgroupID: raw.owner_cgroup_id,
                  syscallBeginNs: raw.syscall_begin_ns, pid: raw.pid, tid: raw.tid, ownerPid: raw.owner_pid, ownerTid: raw.owner_tid,
                  stackID: raw.stack_id, cpu: raw.cpu, ret: raw.ret, beginCPU: raw.begin_cpu,
                  comm: Comm(raw.comm), ownerComm: Comm(raw.owner_comm))
    }
}

extension SyscallEvent {
    init?(_ raw: lockscope_syscall_event) {
        guard let syscall = MountSyscall(rawValue: Int(raw.syscall)) else { return nil }
        var raw = raw
        let path = withUnsafeBytes(of: &raw.path) { cString($0) }
        let data = withUnsafeBytes(of: &raw.data) { cString($0) }
        var workingDirectory: WorkingDirectory?
        let levels = Int(min(raw.cwd_levels, UInt32(LOCKSCOPE_CWD_LEVELS)))
        if levels > 0 || raw.cwd_complete != 0 {
            let length = Int(LOCKSCOPE_CWD_NAME_LEN)
            let innermostFirst = withUnsafeBytes(of: &raw.cwd) { bytes in
                (0..<levels).map { cString(UnsafeRawBufferPointer(rebasing: bytes[($0 * length)..<(($0 + 1) * length)])) }
            }
            workingDirectory = WorkingDirectory(names: innermostFirst.reversed(), complete: raw.cwd_complete != 0)
        }
        self.init(syscall: syscall, endNs: raw.end_ns, latencyNs: raw.latency_ns, cgroupID: raw.cgroup_id,
                  ret: raw.ret, pid: raw.pid, tid: raw.tid, comm: Comm(raw.comm), fd: raw.fd, path: path, data: data,
                  truncated: raw.truncated != 0, workingDirectory: workingDirectory)
    }
}

/// The bytes of a NUL-terminated C string in a fixed-size field (all of them when there is no NUL).
private func cString(_ bytes: UnsafeRawBufferPointer) -> String {
    String(decoding: bytes[..<(bytes.firstIndex(of: 0) ?? bytes.count)], as: UTF8.self)
}

/// A task's `comm`: the kernel's 16 NUL-padded bytes, kept as two integers so that decoding and
/// aggregating an event never builds a String; `string` makes one when a profile is written.
public struct Comm: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    private var low: UInt64
    private var high: UInt64

    /// The kernel's bytes (`char comm[16]`, as the C header imports it).
    public init<Bytes>(_ bytes: Bytes) {
        precondition(MemoryLayout<Bytes>.size == 16, "a comm is 16 bytes")
        (low, high) = withUnsafeBytes(of: bytes) { ($0.loadUnaligned(as: UInt64.self),
                                                    $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
    }

    /// The first 15 bytes of `string`, as the kernel would keep them.
    public init(_ string: String) {
        var bytes: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &bytes) { buffer in
            for (index, byte) in string.utf8.prefix(15).enumerated() { buffer[index] = byte }
        }
        self.init(bytes)
    }

    public init(stringLiteral value: String) { self.init(value) }

    public var string: String {
        withUnsafeBytes(of: (low, high)) { bytes in
            String(decoding: bytes[..<(bytes.firstIndex(of: 0) ?? bytes.count)], as: UTF8.self)
        }
    }

    public var description: String { string }
}

extension LockKind {
    /// The kind the contention flags describe (the same rule the BPF filter uses).
    @inline(__always)
    public init(flags: UInt32) {
        switch Int32(bitPattern: lockscope_kind_of(flags)) {
        case Int32(LOCKSCOPE_KIND_SPINLOCK.rawValue): self = .spinlock
        case Int32(LOCKSCOPE_KIND_RWLOCK.rawValue): self = .rwlock
        case Int32(LOCKSCOPE_KIND_RWSEM.rawValue): self = .rwsem
        case Int32(LOCKSCOPE_KIND_MUTEX.rawValue): self = .mutex
        case Int32(LOCKSCOPE_KIND_RTMUTEX.rawValue): self = .rtmutex
        case Int32(LOCKSCOPE_KIND_PERCPU_RWSEM.rawValue): self = .percpuRwsem
        default: self = .other
        }
    }

    /// The bit of this kind in `lockscope_config.kind_mask`.
    public var filterBit: UInt32 {
        switch self {
        case .spinlock: UInt32(LOCKSCOPE_KIND_SPINLOCK.rawValue)
        case .rwlock: UInt32(LOCKSCOPE_KIND_RWLOCK.rawValue)
        case .rwsem: UInt32(LOCKSCOPE_KIND_RWSEM.rawValue)
        case .mutex: UInt32(LOCKSCOPE_KIND_MUTEX.rawValue)
        case .rtmutex: UInt32(LOCKSCOPE_KIND_RTMUTEX.rawValue)
        case .percpuRwsem: UInt32(LOCKSCOPE_KIND_PERCPU_RWSEM.rawValue)
        case .other: UInt32(LOCKSCOPE_KIND_OTHER.rawValue)
        }
    }
}

/// The mount-family syscalls lockscope accounts for (`enum lockscope_mount_syscall`).
public enum MountSyscall: Int, CaseIterable, Sendable, Codable {
    case mount = 1, umount2, openTree, moveMount, mountSetattr, fsopen, fsconfig, fsmount, fspick
    case unshare, clone, clone3, setns

    /// The syscall's name, as in `man 2`.
    public var name: String {
        switch self {
        case .mount: "mount"
        case .umount2: "umount2"
        case .openTree: "open_tree"
        case .moveMount: "move_mount"
        case .mountSetattr: "mount_setattr"
        case .fsopen: "fsopen"
        case .fsconfig: "fsconfig"
        case .fsmount: "fsmount"
        case .fspick: "fspick"
        case .unshare: "unshare"
        case .clone: "clone"
        case .clone3: "clone3"
        case .setns: "setns"
        }
    }

    /// Syscall numbers on x86-64 (the architecture the embedded BPF object reads arguments for).
    public var x86_64Number: Int {
        switch self {
        case .mount: 165
        case .umount2: 166
        case .openTree: 428
        case .moveMount: 429
        case .mountSetattr: 442
        case .fsopen: 430
        case .fsconfig: 431
        case .fsmount: 432
        case .fspick: 433
        case .unshare: 272
        case .clone: 56
        case .clone3: 435
        case .setns: 308
        }
    }
}
