/// Offsets inside kernel lock types, read from the kernel's BTF (nil when unknown).
public struct KernelLockLayout: Sendable, Equatable {
    /// `offsetof(struct rw_semaphore, wait_lock)`: an rwsem's internal spinlock.
    public var rwsemWaitLockOffset: UInt64?
    /// `offsetof(seqlock_t, lock)`: the spinlock writers of a seqlock (mount_lock) take.
    public var seqlockLockOffset: UInt64?

    public init(rwsemWaitLockOffset: UInt64? = nil, seqlockLockOffset: UInt64? = nil) {
        self.rwsemWaitLockOffset = rwsemWaitLockOffset
        self.seqlockLockOffset = seqlockLockOffset
    }
}

/// What the namer knows about one contended lock address.
public struct LockCandidate: Sendable {
    public var address: UInt64
    public var kind: LockKind
    public var contentions: UInt64
    /// Symbolized stacks (innermost first) with their contention counts.
    public var stacks: [(frames: [String], count: UInt64)]
    /// The caller (first frame outside lock primitives) of the most contended stack, `func+0xoff`.
    public var topCaller: String?
    /// Locks this one was contended inside (the rwsem around a wait_lock), with counts.
    public var outerLocks: [UInt64: UInt64]

    public init(address: UInt64, kind: LockKind, contentions: UInt64, stacks: [(frames: [String], count: UInt64)],
                topCaller: String?, outerLocks: [UInt64: UInt64] = [:]) {
        self.address = address
        self.kind = kind
        self.contentions = contentions
        self.stacks = stacks
        self.topCaller = topCaller
        self.outerLocks = outerLocks
    }
}

/// A lock's name and how it was obtained.
public struct LockName: Sendable, Equatable, Hashable {
    public var name: String
    public var identity: LockIdentity

    public init(_ name: String, _ identity: LockIdentity) {
        self.name = name
        self.identity = identity
    }
}

/// Names contended locks: by kallsyms data symbol when the kernel has them; otherwise recognises the
/// global VFS locks `namespace_sem` and `mount_lock` from the call paths that contend on them; an
/// rwsem's internal wait_lock is named after its rwsem; anything else is named after its caller, like perf.
public struct LockNamer: Sendable {
    /// The rwsem serialising mount-tree changes (fs/namespace.c). Its contenders call down_read/down_write
    /// from these functions (namespace_lock() is inlined into most of them).
    public static let namespaceSemCallers: Set<String> = [
        "path_umount", "do_umount", "do_lock_mount", "lock_mount", "lock_mount_exact", "vfs_open_tree",
        "open_detached_copy", "clone_private_mount", "do_move_mount", "do_mount_setattr", "copy_mnt_ns",
        "do_loopback", "do_change_type", "do_set_group", "do_new_mount", "do_new_mount_fc", "attach_recursive_mnt",
        "put_mnt_ns", "mnt_ns_release", "drop_collected_mounts", "collect_mounts", "iterate_mounts",
        "__detach_mounts", "mount_subtree", "mark_mounts_for_expiry", "finish_automount", "path_pivot_root",
        "__do_sys_pivot_root", "__do_sys_open_tree", "__do_sys_move_mount", "__do_sys_mount_setattr",
        "__do_sys_fsmount", "dissolve_on_fput", "m_start", "mntns_install", "namespace_lock", "do_statmount",
        "do_listmount", "__do_sys_statmount", "__do_sys_listmount", "open_tree_attr", "may_umount",
        "__x64_sys_open_tree", "__x64_sys_move_mount", "__x64_sys_mount_setattr", "__x64_sys_umount",
    ]

    /// The spinlock inside the `mount_lock` seqlock; `lock_mount_hash()` is inlined into these callers.
    public static let mountLockCallers: Set<String> = [
        "mntput_no_expire", "do_mount_setattr", "path_umount", "do_umount", "do_lock_mount", "kern_unmount_array",
        "umount_tree", "attach_recursive_mnt", "commit_tree", "__detach_mounts", "mnt_make_shortterm",
        "mnt_make_readonly", "sb_prepare_remount_readonly", "__legitimize_mnt", "legitimize_mnt", "clone_mnt",
        "do_move_mount", "lock_mount_hash", "namespace_unlock", "may_umount", "may_umount_tree",
        "propagate_mount_busy", "mnt_change_mountpoint", "mntns_install", "put_mnt_ns", "drop_collected_mounts",
        "do_change_type", "mark_mounts_for_expiry", "do_set_group", "vfs_create_mount", "finish_automount",
        "dissolve_on_fput", "path_is_under", "mnt_set_mountpoint", "copy_tree", "cleanup_mnt", "mnt_warn_timestamp_expiry",
    ]

    public static let namespaceSem = "namespace_sem"
    public static let mountLock = "mount_lock"

    public let symbols: Kallsyms?
    public let layout: KernelLockLayout

    public init(symbols: Kallsyms?, layout: KernelLockLayout = KernelLockLayout()) {
        self.symbols = symbols
        self.layout = layout
    }

    /// Names every candidate. Each inferred name goes to the single address that best matches it.
    public func names(for candidates: [LockCandidate]) -> [UInt64: LockName] {
        var names: [UInt64: LockName] = [:]
        for candidate in candidates {
            if let name = symbolName(candidate) { names[candidate.address] = name }
        }
        // An rwsem's or mutex's internal spinlock is named after its lock, once that is named.
        let waitLockParents = Dictionary(candidates.compactMap { candidate in
            sleepingLockOwning(waitLock: candidate, among: candidates).map { (candidate.address, $0) }
        }, uniquingKeysWith: { a, _ in a })

        // Without the data symbol, recognise the lock from its callers.
        let inferable = [(LockNamer.namespaceSem, LockKind.rwsem, LockNamer.namespaceSemCallers),
                         (LockNamer.mountLock, LockKind.spinlock, LockNamer.mountLockCallers)]
        for (name, kind, callers) in inferable where !(symbols?.hasSymbol(named: name) ?? false) {
            let unnamed = candidates.filter { names[$0.address] == nil && waitLockParents[$0.address] == nil }
            if let best = bestMatch(unnamed, kinds: [kind], callers: callers) {
                names[best] = LockName(name, .inferred)
            }
        }
        for candidate in candidates where names[candidate.address] == nil && waitLockParents[candidate.address] == nil {
            let caller = candidate.topCaller ?? "0x\(String(candidate.address, radix: 16))"
            names[candidate.address] = LockName(caller, .caller)
        }
        for (waitLock, parent) in waitLockParents where names[waitLock] == nil {
            let parentName = names[parent] ?? LockName("0x\(String(parent, radix: 16))", .caller)
            names[waitLock] = LockName("\(parentName.name).wait_lock", parentName.identity)
        }
        return names
    }

    /// A data symbol covering the address: the object itself, its seqlock spinlock, or an rwsem's wait_lock.
    private func symbolName(_ candidate: LockCandidate) -> LockName? {
        guard let symbols, symbols.hasDataSymbols, let object = symbols.dataObject(at: candidate.address) else {
            return nil
        }
        if object.offset == 0 || (candidate.kind == .spinlock && object.offset == layout.seqlockLockOffset) {
            return LockName(object.name, .symbol)
        }
        if candidate.kind == .spinlock, object.offset == layout.rwsemWaitLockOffset {
            return LockName("\(object.name).wait_lock", .symbol)
        }
        return LockName(object.nameWithOffset, .symbol)
    }

    /// The candidate whose stacks reach the lock from the most distinct functions of `callers`
    /// (ties: more contentions). Nil when none does.
    private func bestMatch(_ candidates: [LockCandidate], kinds: Set<LockKind>, callers: Set<String>) -> UInt64? {
        var best: (address: UInt64, score: Int, contentions: UInt64)?
        for candidate in candidates where kinds.contains(candidate.kind) {
            var matched = Set<String>()
            for stack in candidate.stacks {
                if let caller = LockNamer.caller(in: stack.frames).map(LockNamer.baseName), callers.contains(caller) {
                    matched.insert(caller)
                }
            }
            guard !matched.isEmpty else { continue }
            if best == nil || matched.count > best!.score
                || (matched.count == best!.score && candidate.contentions > best!.contentions) {
                best = (candidate.address, matched.count, candidate.contentions)
            }
        }
        return best?.address
    }

    /// The rwsem or mutex whose internal wait_lock this spinlock is: at the rwsem's address plus the BTF
    /// offset of `wait_lock`, or a sleeping lock it was contended inside (in its slow path) that starts
    /// at most 64 bytes below it. (Other spinlocks taken during such a wait, like run-queue locks in
    /// `schedule()`, live elsewhere and keep their own names.)
    private func sleepingLockOwning(waitLock candidate: LockCandidate, among candidates: [LockCandidate]) -> UInt64? {
        guard candidate.kind == .spinlock else { return nil }
        let sleeping = Set(candidates.filter { $0.kind == .rwsem || $0.kind == .mutex }.map(\.address))
        if let offset = layout.rwsemWaitLockOffset, candidate.address >= offset,
           sleeping.contains(candidate.address - offset) {
            return candidate.address - offset
        }
        return candidate.outerLocks.filter { outer, _ in
            (sleeping.contains(outer) || symbols?.hasDataSymbols == true) && outer < candidate.address
                && candidate.address - outer < 64
        }.max { $0.value < $1.value }?.key
    }

    /// Frames of lock primitives and of the tracing machinery, skipped when looking for a lock's caller.
    public static func isLockPrimitive(_ frame: String) -> Bool {
        let prefixes = ["_raw_", "raw_spin", "queued_", "native_queued", "__pv_queued", "pv_queued", "do_raw_",
                        "down_", "__down", "up_", "rwsem_", "__rwsem", "mutex_", "__mutex", "rt_mutex", "__rt_mutex",
                        "osq_", "percpu_down", "__percpu_down", "schedule", "__schedule", "preempt_schedule",
                        "bpf_", "__bpf", "__traceiter_", "trace_contention", "perf_trace", "lock_contended",
                        "spin_lock", "_spin_lock", "read_lock", "write_lock", "ww_mutex", "__ww_mutex"]
        return frame == "down" || prefixes.contains { frame.hasPrefix($0) }
    }

    /// A function's name without the suffixes the compiler adds to its clones
    /// (`do_lock_mount.part.0`, `do_move_mount.isra.0`, `__mutex_lock.constprop.0`).
    public static func baseName(_ function: String) -> String {
        function.split(separator: ".", maxSplits: 1).first.map(String.init) ?? function
    }

    /// The first frame (innermost first) that is not a lock primitive.
    public static func caller(in frames: [String]) -> String? {
        frames.first { !isLockPrimitive($0) }
    }
}
