import XCTest

@testable import LockscopeCore

/// `KnownLock.table` against stacks recorded in a real mount storm on this VM (`lockscope record
/// --locks all -- lockscope stress --containers 100 --layers 30 --parallel 16`, kernel 6.18), frames
/// and addresses as the profile kept them.
final class LockNamingTests: XCTestCase {
    private typealias Stack = (frames: [String], count: UInt64)

    private static let expMutex: [Stack] = [
        (["__mutex_lock.constprop.0", "exp_funnel_lock", "synchronize_rcu_expedited", "namespace_unlock", "path_umount",
          "__x64_sys_umount", "do_syscall_64"], 669),
        (["__mutex_lock.constprop.0", "exp_funnel_lock", "synchronize_rcu_expedited", "namespace_unlock", "free_nsproxy",
          "do_exit", "do_group_exit"], 15),
    ]
    private static let runQueue: [Stack] = [
        (["__pv_queued_spin_lock_slowpath", "_raw_spin_lock", "__schedule", "schedule", "schedule_preempt_disabled",
          "__mutex_lock.constprop.0", "exp_funnel_lock"], 46),
        (["__pv_queued_spin_lock_slowpath", "_raw_spin_lock", "try_to_wake_up", "autoremove_wake_function",
          "__wake_up_common", "__wake_up", "rcu_exp_wait_wake"], 87),
    ]
    private static let inodeHash: [Stack] = [
        (["__pv_queued_spin_lock_slowpath", "_raw_spin_lock", "evict", "ovl_free_fs", "generic_shutdown_super"], 45),
        (["__pv_queued_spin_lock_slowpath", "_raw_spin_lock", "ilookup5_nowait", "ilookup5", "ovl_lookup_trap_inode"], 1),
    ]
    private static let cgroupMutex: [Stack] = [
        (["__mutex_lock.constprop.0", "cgroup_kn_lock_live", "__cgroup_procs_write", "cgroup_procs_write",
          "kernfs_fop_write_iter"], 8),
        (["__mutex_lock.constprop.0", "cgroup_kn_lock_live", "cgroup_mkdir", "kernfs_iop_mkdir", "vfs_mkdir"], 8),
    ]
    private static let directoryRwsem: [Stack] = [
        (["rwsem_down_read_slowpath", "down_read", "walk_component", "link_path_walk", "path_openat"], 28),
        (["rwsem_down_write_slowpath", "down_write", "filename_create", "do_mkdirat", "__x64_sys_mkdir"], 10),
    ]
    private static let percpuLock: [Stack] = [
        (["__pv_queued_spin_lock_slowpath", "_raw_spin_lock_irqsave", "free_percpu", "delayed_free_vfsmnt", "rcu_do_batch"], 252),
        (["__pv_queued_spin_lock_slowpath", "_raw_spin_lock_irqsave", "pcpu_alloc_noprof", "alloc_vfsmnt", "clone_mnt"], 3),
    ]
    private static let percpuMutex: [Stack] = [
        (["__mutex_lock.constprop.0", "pcpu_alloc_noprof", "alloc_vfsmnt", "clone_mnt", "clone_private_mount"], 3),
    ]
    private static let namespaceSem: [Stack] = [
        (["rwsem_down_read_slowpath", "down_read", "clone_private_mount", "ovl_fill_super", "get_tree_nodev"], 46),
        (["rwsem_down_write_slowpath", "down_write", "vfs_open_tree", "__x64_sys_open_tree", "do_syscall_64"], 1),
    ]
    private static let mountLock: [Stack] = [
        (["__pv_queued_spin_lock_slowpath", "_raw_spin_lock", "mntput_no_expire", "namespace_unlock", "path_umount"], 49),
        (["__pv_queued_spin_lock_slowpath", "_raw_spin_lock", "path_umount", "__x64_sys_umount", "do_syscall_64"], 15),
    ]
    /// A task's pi_lock, taken in try_to_wake_up: per task, not in the table.
    private static let piLock: [Stack] = [
        (["__pv_queued_spin_lock_slowpath", "_raw_spin_lock_irqsave", "try_to_wake_up", "wake_up_q", "rwsem_wake.isra.0"], 1),
    ]

    private func candidate(_ address: UInt64, _ kind: LockKind, _ stacks: [Stack]) -> LockCandidate {
        let top = stacks.max { $0.count < $1.count }
        return LockCandidate(address: address, kind: kind, contentions: stacks.map(\.count).reduce(0, +), stacks: stacks,
                             topCaller: top.flatMap { LockNamer.caller(in: $0.frames) }.map { "\($0)+0xa1" })
    }

    private var storm: [LockCandidate] {
        [candidate(0xffff_ffff_82ef_40b8, .mutex, Self.expMutex),
         candidate(0xffff_8886_27d2_fb80, .spinlock, Self.runQueue),
         candidate(0xffff_8886_27c2_fb80, .spinlock, Array(Self.runQueue.prefix(1))),
         candidate(0xffff_ffff_82e0_b740, .spinlock, Self.inodeHash),
         candidate(0xffff_ffff_82f0_7cc0, .mutex, Self.cgroupMutex),
         candidate(0xffff_8882_5adc_2a58, .rwsem, Self.directoryRwsem),
         candidate(0xffff_ffff_8398_cf04, .spinlock, Self.percpuLock),
         candidate(0xffff_ffff_82f2_31a0, .mutex, Self.percpuMutex),
         candidate(0xffff_ffff_82f4_90a0, .rwsem, Self.namespaceSem),
         candidate(0xffff_ffff_82e0_b784, .spinlock, Self.mountLock),
         candidate(0xffff_8881_8342_07ec, .spinlock, Self.piLock)]
    }

    func testTheStormsLocksAreNamedByWhatTheyAre() {
        let names = LockNamer(symbols: Kallsyms(parsing: AggregatorTests.kallsymsText)).names(for: storm)
        XCTAssertEqual(names[0xffff_ffff_82ef_40b8], LockName("rcu_state.exp_mutex", .inferred))
        XCTAssertEqual(names[0xffff_8886_27d2_fb80], LockName("rq_lock", .inferred))
        XCTAssertEqual(names[0xffff_8886_27c2_fb80], LockName("rq_lock", .inferred), "every CPU's run queue")
        XCTAssertEqual(names[0xffff_ffff_82e0_b740], LockName("inode_hash_lock", .inferred))
        XCTAssertEqual(names[0xffff_ffff_82f0_7cc0], LockName("cgroup_mutex", .inferred))
        XCTAssertEqual(names[0xffff_8882_5adc_2a58], LockName("inode.i_rwsem", .inferred))
        XCTAssertEqual(names[0xffff_ffff_8398_cf04], LockName("pcpu_lock", .inferred))
        XCTAssertEqual(names[0xffff_ffff_82f2_31a0], LockName("pcpu_alloc_mutex", .inferred))
        XCTAssertEqual(names[0xffff_ffff_82f4_90a0], LockName("namespace_sem", .inferred))
        XCTAssertEqual(names[0xffff_ffff_82e0_b784], LockName("mount_lock", .inferred))
        XCTAssertEqual(names[0xffff_8881_8342_07ec], LockName("try_to_wake_up+0xa1", .caller))
    }

    /// A global lock is a variable in the kernel image: a heap spinlock taken by the same function
    /// (an inode's i_lock in evict) is never named inode_hash_lock, with or without the real one.
    func testGlobalLocksAreOnlyKernelImageAddresses() {
        let namer = LockNamer(symbols: Kallsyms(parsing: AggregatorTests.kallsymsText))
        let inodeLock = candidate(0xffff_8881_0000_00c0, .spinlock, Array(Self.inodeHash.prefix(1)) + [(Self.inodeHash[0].frames, 500)])
        let alone = namer.names(for: [inodeLock])
        XCTAssertEqual(alone[0xffff_8881_0000_00c0]?.identity, .caller)
        let both = namer.names(for: [inodeLock, candidate(0xffff_ffff_82e0_b740, .spinlock, Self.inodeHash)])
        XCTAssertEqual(both[0xffff_ffff_82e0_b740]?.name, "inode_hash_lock")
        XCTAssertEqual(both[0xffff_8881_0000_00c0]?.identity, .caller)
    }

    /// On kernels with data symbols, an exact symbol wins (cgroup_mutex), and a lock inside a larger
    /// object (rcu_state+0x2a8) takes the table's name instead of the offset.
    func testDataSymbolsWinExceptForOffsetsIntoAStructure() {
        let symbols = Kallsyms(parsing: """
            ffffffff81720000 T exp_funnel_lock
            ffffffff82ef3e10 d rcu_state
            ffffffff82f07cc0 D cgroup_mutex
            ffffffff82f0a000 d next_object
            """)
        let names = LockNamer(symbols: symbols).names(for: [
            candidate(0xffff_ffff_82ef_40b8, .mutex, Self.expMutex),
            candidate(0xffff_ffff_82f0_7cc0, .mutex, Self.cgroupMutex),
        ])
        XCTAssertEqual(names[0xffff_ffff_82ef_40b8], LockName("rcu_state.exp_mutex", .inferred))
        XCTAssertEqual(names[0xffff_ffff_82f0_7cc0], LockName("cgroup_mutex", .symbol))
    }

    /// Every entry of the table is reachable: its kind and callers are consistent.
    func testEveryKnownLockHasCallersAndAUniqueName() {
        XCTAssertEqual(Set(KnownLock.table.map(\.name)).count, KnownLock.table.count)
        for known in KnownLock.table {
            XCTAssertFalse(known.callers.isEmpty, known.name)
            XCTAssertFalse(known.callers.contains { LockNamer.isSpinPrimitive($0) }, "\(known.name): a caller is a primitive")
        }
    }
}
