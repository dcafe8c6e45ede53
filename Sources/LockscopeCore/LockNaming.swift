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

/// A kernel lock that lockscope recognises from the call paths that contend on it, when /proc/kallsyms
/// has no data symbol for it (or has only the structure around it, like `rcu_state+0x2a8`).
public struct KnownLock: Sendable {
    /// One lock in the whole kernel, or one per object (per CPU, per inode, ...).
    public enum Scope: Sendable { case global, perObject }

    public var name: String
    public var kind: LockKind
    public var scope: Scope
    /// Functions that take the lock: matched against each stack's caller, the first frame past the lock
    /// primitives (for spinlocks, past the spinning primitives only: the scheduler takes its own locks).
    public var callers: Set<String>
    /// The data symbol that names it on kernels that have one (the table then stands aside).
    public var symbol: String?

    /// The table, documented in docs/how-it-works.md ("How locks are named"); entries are tested
    /// against stacks recorded in a real mount storm (LockNamingTests).
    public static let table: [KnownLock] = [
        // The rwsem serialising mount-tree changes (fs/namespace.c); namespace_lock() is inlined into most callers.
        KnownLock(name: LockNamer.namespaceSem, kind: .rwsem, scope: .global, callers: [
            "path_umount", "do_umount", "do_lock_mount", "lock_mount", "lock_mount_exact", "vfs_open_tree",
            "open_detached_copy", "clone_private_mount", "do_move_mount", "do_mount_setattr", "copy_mnt_ns",
            "do_loopback", "do_change_type", "do_set_group", "do_new_mount", "do_new_mount_fc", "attach_recursive_mnt",
            "put_mnt_ns", "mnt_ns_release", "drop_collected_mounts", "collect_mounts", "iterate_mounts",
            "__detach_mounts", "mount_subtree", "mark_mounts_for_expiry", "finish_automount", "path_pivot_root",
            "__do_sys_pivot_root", "__do_sys_open_tree", "__do_sys_move_mount", "__do_sys_mount_setattr",
            "__do_sys_fsmount", "dissolve_on_fput", "m_start", "mntns_install", "namespace_lock", "do_statmount",
            "do_listmount", "__do_sys_statmount", "__do_sys_listmount", "open_tree_attr", "may_umount",
            "__x64_sys_open_tree", "__x64_sys_move_mount", "__x64_sys_mount_setattr", "__x64_sys_umount",
        ], symbol: LockNamer.namespaceSem),
        // The spinlock inside the `mount_lock` seqlock; lock_mount_hash() is inlined into these callers.
        KnownLock(name: LockNamer.mountLock, kind: .spinlock, scope: .global, callers: [
            "mntput_no_expire", "do_mount_setattr", "path_umount", "do_umount", "do_lock_mount", "kern_unmount_array",
            "umount_tree", "attach_recursive_mnt", "commit_tree", "__detach_mounts", "mnt_make_shortterm",
            "mnt_make_readonly", "sb_prepare_remount_readonly", "__legitimize_mnt", "legitimize_mnt", "clone_mnt",
            "do_move_mount", "lock_mount_hash", "namespace_unlock", "may_umount", "may_umount_tree",
            "propagate_mount_busy", "mnt_change_mountpoint", "mntns_install", "put_mnt_ns", "drop_collected_mounts",
            "do_change_type", "mark_mounts_for_expiry", "do_set_group", "vfs_create_mount", "finish_automount",
            "dissolve_on_fput", "path_is_under", "mnt_set_mountpoint", "copy_tree", "cleanup_mnt", "mnt_warn_timestamp_expiry",
        ], symbol: LockNamer.mountLock),
        // Expedited RCU grace periods (kernel/rcu/tree_exp.h): every umount's namespace_unlock() waits in
        // synchronize_rcu_expedited(), which serialises on this mutex in exp_funnel_lock().
        KnownLock(name: "rcu_state.exp_mutex", kind: .mutex, scope: .global, callers: ["exp_funnel_lock"], symbol: nil),
        // The funnel's per-node locks on the way up to exp_mutex (several rcu_nodes on large machines).
        KnownLock(name: "rcu_node.exp_lock", kind: .spinlock, scope: .perObject, callers: ["exp_funnel_lock"], symbol: nil),
        // Each CPU's run-queue lock (kernel/sched/core.c), taken by the scheduler itself: every sleeping
        // wait ends in __schedule, so these show up beside every contended mutex and rwsem.
        KnownLock(name: "rq_lock", kind: .spinlock, scope: .perObject, callers: [
            "__schedule", "schedule_tail", "finish_task_switch", "sched_tick", "scheduler_tick", "__task_rq_lock",
            "task_rq_lock", "double_rq_lock", "_double_lock_balance", "sched_balance_rq", "load_balance",
            "wake_up_new_task", "sched_ttwu_pending", "sched_balance_newidle", "newidle_balance",
            "update_blocked_averages", "sched_balance_update_blocked_averages",
        ], symbol: nil),
        // The inode hash's global spinlock (fs/inode.c): overlayfs and idmapped mounts look inodes up by it.
        KnownLock(name: "inode_hash_lock", kind: .spinlock, scope: .global, callers: [
            "ilookup5_nowait", "ilookup5", "ilookup", "inode_insert5", "iget5_locked", "iget5_locked_rcu", "iget_locked",
            "insert_inode_locked", "insert_inode_locked4", "__insert_inode_hash", "__remove_inode_hash", "iunique",
            "find_inode_nowait", "evict",
        ], symbol: "inode_hash_lock"),
        // A directory's inode rwsem (one per inode): path walks take it shared for a lookup that missed
        // the dentry cache, creating and removing entries take it exclusive.
        KnownLock(name: "inode.i_rwsem", kind: .rwsem, scope: .perObject, callers: [
            "walk_component", "lookup_slow", "__lookup_slow", "open_last_lookups", "filename_create", "do_rmdir",
            "do_unlinkat", "lock_rename", "do_renameat2", "lookup_one_qstr_excl", "start_dirop",
        ], symbol: nil),
        // The per-CPU allocator (mm/percpu.c): every mount allocates per-CPU counters (alloc_vfsmnt) and frees
        // them after an RCU grace period.
        KnownLock(name: "pcpu_lock", kind: .spinlock, scope: .global, callers: [
            "free_percpu", "pcpu_alloc_noprof", "pcpu_alloc", "pcpu_balance_workfn", "pcpu_balance_free",
            "pcpu_balance_populated", "pcpu_reclaim_populated", "pcpu_memcg_free_hook",
        ], symbol: "pcpu_lock"),
        KnownLock(name: "pcpu_alloc_mutex", kind: .mutex, scope: .global, callers: [
            "pcpu_alloc_noprof", "pcpu_alloc", "pcpu_balance_workfn",
        ], symbol: "pcpu_alloc_mutex"),
        // The cgroup hierarchy's mutex (kernel/cgroup): creating cgroups and moving tasks into them.
        KnownLock(name: "cgroup_mutex", kind: .mutex, scope: .global, callers: [
            "cgroup_kn_lock_live", "cgroup_lock_and_drain_offline", "cgroup_lock", "css_release_work_fn",
            "css_killed_work_fn", "cgroup_destroy_root", "proc_cgroup_show", "cgroup_path_ns", "task_cgroup_path",
            "cgroup_transfer_tasks", "cgroup_attach_task_all", "rebind_subsystems", "cgroup_get_from_path",
        ], symbol: "cgroup_mutex"),
    ]

    /// The caller this entry matches in `frames` (innermost first).
    func caller(in frames: [String]) -> String? {
        (kind == .spinlock ? LockNamer.spinCaller(in: frames) : LockNamer.caller(in: frames)).map(LockNamer.baseName)
    }
}

/// Names contended locks: by kallsyms data symbol when the kernel has them; otherwise recognises the
/// locks of `KnownLock.table` (`namespace_sem`, `mount_lock`, `rcu_state.exp_mutex`, ...) from the call
/// paths that contend on them; an rwsem's or mutex's internal wait_lock is named after its lock;
/// anything else is named after its caller, like perf.
public struct LockNamer: Sendable {
    /// Callers of namespace_sem and mount_lock (from `KnownLock.table`).
    public static let namespaceSemCallers = KnownLock.table.first { $0.name == namespaceSem }!.callers
    public static let mountLockCallers = KnownLock.table.first { $0.name == mountLock }!.callers

    public static let namespaceSem = "namespace_sem"
    public static let mountLock = "mount_lock"
    /// Where x86-64 maps the kernel image and modules (global variables); the heap lies below.
    static let kernelImageStart: UInt64 = 0xffff_ffff_8000_0000

    /// The mount-tree locks `record --locks mount` keeps even outside mount syscalls, once recognised.
    public static let mountLockNames: Set<String> = [namespaceSem, mountLock, "\(namespaceSem).wait_lock"]

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

        // Without an exact data symbol, recognise the lock from its callers: a global lock names the one
        // address that matches best, a per-object lock every address that matches. A name that is only
        // a structure and an offset (`rcu_state+0x2a8`) gives way to the table's.
        for known in KnownLock.table where !(known.symbol.map { symbols?.hasSymbol(named: $0) ?? false } ?? false) {
            let unnamed = candidates.filter { candidate in
                waitLockParents[candidate.address] == nil
                    && (names[candidate.address].map { $0.name.contains("+0x") } ?? true)
            }
            switch known.scope {
            case .global:
                if let best = bestMatch(unnamed, known: known) { names[best] = LockName(known.name, .inferred) }
            case .perObject:
                for candidate in unnamed where matchScore(candidate, known: known) > 0 {
                    names[candidate.address] = LockName(known.name, .inferred)
                }
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

    /// How many distinct functions of `known.callers` reach the candidate (0 for another kind).
    private func matchScore(_ candidate: LockCandidate, known: KnownLock) -> Int {
        guard candidate.kind == known.kind else { return 0 }
        return Set(candidate.stacks.compactMap { known.caller(in: $0.frames) }.filter(known.callers.contains)).count
    }

    /// The candidate whose stacks reach the lock from the most distinct functions of `known.callers`
    /// (ties: more contentions), among addresses in the kernel image, where global variables live (the
    /// same functions also take per-object locks on the heap). Nil when none does.
    private func bestMatch(_ candidates: [LockCandidate], known: KnownLock) -> UInt64? {
        var best: (address: UInt64, score: Int, contentions: UInt64)?
        for candidate in candidates where candidate.address >= LockNamer.kernelImageStart {
            let score = matchScore(candidate, known: known)
            guard score > 0 else { continue }
            if best == nil || score > best!.score || (score == best!.score && candidate.contentions > best!.contentions) {
                best = (candidate.address, score, candidate.contentions)
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

    /// Frames of spinning primitives and tracing, skipped when looking for a spinlock's caller: unlike
    /// `isLockPrimitive`, the scheduler's frames count as callers (it takes run-queue locks itself).
    public static func isSpinPrimitive(_ frame: String) -> Bool {
        let prefixes = ["_raw_", "raw_spin", "queued_", "native_queued", "__pv_queued", "pv_queued", "do_raw_",
                        "bpf_", "__bpf", "__traceiter_", "trace_contention", "perf_trace", "lock_contended",
                        "spin_lock", "_spin_lock", "read_lock", "write_lock"]
        return prefixes.contains { frame.hasPrefix($0) }
    }

    /// The first frame (innermost first) that is not a spinning primitive.
    public static func spinCaller(in frames: [String]) -> String? {
        frames.first { !isSpinPrimitive($0) }
    }

    /// The first frame (innermost first) that is not a lock primitive.
    public static func caller(in frames: [String]) -> String? {
        frames.first { !isLockPrimitive($0) }
    }
}
