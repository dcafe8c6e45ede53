import CLockscopeBPF
import XCTest

@testable import LockscopeCore

final class AggregatorTests: XCTestCase {
    static let rwsemWrite = UInt32(LOCKSCOPE_LCB_F_WRITE)
    static let rwsemRead = UInt32(LOCKSCOPE_LCB_F_READ)
    static let spin = UInt32(LOCKSCOPE_LCB_F_SPIN)
    static let sem: UInt64 = 0xffff_ffff_8300_1000
    static let mountLock: UInt64 = 0xffff_ffff_8300_b784

    /// A tiny kernel: two lock primitives in lock text, callers outside it.
    static let kallsymsText = """
        ffffffff81000000 T _stext
        ffffffff8170f1d0 T path_umount
        ffffffff8170f400 t do_lock_mount.part.0
        ffffffff8170f800 T mntput_no_expire
        ffffffff8170fc00 T __x64_sys_umount
        ffffffff81710000 T do_syscall_64
        ffffffff81720000 T exp_funnel_lock
        ffffffff81730000 T some_driver_op
        ffffffff82265b40 T __sched_text_start
        ffffffff8226ad30 t rwsem_down_write_slowpath
        ffffffff8226b450 T down_write
        ffffffff8226e862 T __sched_text_end
        ffffffff8226e870 T __lock_text_start
        ffffffff8226e900 T _raw_spin_lock
        ffffffff822702f1 T __lock_text_end
        ffffffff82300000 T bpf_trace_run2
        ffffffffc0001000 t nfs_lookup\t[nfs]
        """

    static let stacks: [Int32: [UInt64]] = [
        // JIT'd BPF program (no symbol), the tracepoint glue, then the lock's slow path.
        1: [0xffff_ffff_c003_5e8f, 0xffff_ffff_8230_0010, 0xffff_ffff_8226_ad40, 0xffff_ffff_8226_b460,
            0xffff_ffff_8170_f2d1, 0xffff_ffff_8170_fc10, 0xffff_ffff_8171_0020],
        2: [0xffff_ffff_8226_b460, 0xffff_ffff_8170_f4a2, 0xffff_ffff_8171_0020],
        3: [0xffff_ffff_8226_e910, 0xffff_ffff_8170_f882],
        4: [0xffff_ffff_8226_e910, 0xffff_ffff_8172_00a1],
        5: [0xffff_ffff_8226_e910, 0xffff_ffff_8173_00a1],
    ]

    static func inputs(selection: LockSelection = .all, drops: Drops = Drops()) -> ProfileInputs {
        ProfileInputs(
            stackAddresses: { stacks[$0] }, symbols: Kallsyms(parsing: kallsymsText),
            container: { id in
                id == 1 ? Container(id: "host", runtime: "host", cgroup: "/")
                    : Container(id: String(repeating: "a", count: 63) + String(id), runtime: "docker",
                                cgroup: "/system.slice/docker-\(id).scope")
            },
            hostname: "test", kernel: "6.18.0", startedAt: "2026-11-26T00:00:00Z", durationNs: 2_000_000_000,
            drops: drops, recording: Recording(), selection: selection)
    }

    func testExactTotalsMinMaxAndReadWriteSplit() {
        var aggregator = Aggregator(topology: nil)
        let waits: [UInt64] = [1_000, 5_000, 250_000, 3_000_000]
        for (index, ns) in waits.enumerated() {
            aggregator.record(WaitEvent(flags: index == 0 ? Self.rwsemRead : Self.rwsemWrite, waitNs: ns,
                                        lockAddress: Self.sem, stackID: 1, cpu: UInt32(index % 2)))
        }
        let profile = aggregator.profile(Self.inputs())
        XCTAssertEqual(profile.events, 4)
        XCTAssertEqual(profile.locks.count, 1)
        let lock = profile.locks[0]
        XCTAssertEqual(lock.stats.contentions, 4)
        XCTAssertEqual(lock.stats.totalWaitNs, 3_256_000)
        XCTAssertEqual(lock.stats.minWaitNs, 1_000)
        XCTAssertEqual(lock.stats.maxWaitNs, 3_000_000)
        XCTAssertEqual(lock.stats.meanWaitNs, 814_000)
        XCTAssertEqual(lock.read.contentions, 1)
        XCTAssertEqual(lock.read.totalWaitNs, 1_000)
        XCTAssertEqual(lock.write.contentions, 3)
        XCTAssertEqual(lock.write.totalWaitNs, 3_255_000)
        XCTAssertEqual(lock.byCpu.map(\.key), ["0", "1"])
        XCTAssertEqual(lock.byCpu.map(\.stats.totalWaitNs), [251_000, 3_005_000])
        XCTAssertEqual(lock.stats.histogram.map(\.count).reduce(0, +), 4)
        XCTAssertEqual(lock.stats.histogram.map(\.lowerNs), [512, 4096, 131_072, 2_097_152])
    }

    /// HDR percentiles at 3 significant digits stay within 0.1% of the exact order statistic.
    func testPercentilesAgreeWithExactComputation() {
        var accumulator = WaitAccumulator(precision: .three)
        var generator = SplitMix(seed: 42)
        var values: [UInt64] = []
        for _ in 0..<20_000 {
            // Log-uniform from 100 ns to ~100 ms, like real lock waits.
            let value = UInt64(100 * pow(10, Double(generator.next() % 1_000_000) / 1_000_000 * 6))
            values.append(value)
            accumulator.record(value)
        }
        values.sort()
        for percentile in [50.0, 90.0, 99.0, 99.9] {
            let rank = Int((percentile / 100 * Double(values.count)).rounded(.up)) - 1
            let exact = Double(values[rank])
            let estimate = Double(accumulator.value(atPercentile: percentile))
            XCTAssertEqual(estimate, exact, accuracy: exact * 0.001, "p\(percentile)")
        }
        XCTAssertEqual(accumulator.stats.maxWaitNs, values.last)
        XCTAssertEqual(accumulator.stats.minWaitNs, values.first)
        XCTAssertEqual(accumulator.stats.totalWaitNs, values.reduce(0, +))
    }

    /// Breakdown histograms keep percentiles within 6.25% (and never above the exact maximum).
    func testBreakdownPercentilesWithinTheirPrecision() {
        var aggregator = Aggregator(topology: nil)
        var generator = SplitMix(seed: 7)
        var values: [UInt64] = []
        for _ in 0..<20_000 {
            let value = UInt64(100 * pow(10, Double(generator.next() % 1_000_000) / 1_000_000 * 5))
            values.append(value)
            aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: value, lockAddress: Self.sem, cpu: 3))
        }
        values.sort()
        let cpu = aggregator.profile(Self.inputs()).locks[0].byCpu[0].stats
        XCTAssertEqual(cpu.contentions, 20_000)
        XCTAssertEqual(cpu.totalWaitNs, values.reduce(0, +))
        XCTAssertEqual(cpu.maxWaitNs, values.last)
        for (percentile, estimate) in [(50.0, cpu.p50WaitNs), (90.0, cpu.p90WaitNs), (99.0, cpu.p99WaitNs)] {
            let exact = Double(values[Int((percentile / 100 * Double(values.count)).rounded(.up)) - 1])
            XCTAssertEqual(Double(estimate), exact, accuracy: exact * 0.0625, "p\(percentile)")
        }
    }

    /// Past `maxProcessesPerLock` processes, a lock sums new ones per container under `[other processes]`:
    /// memory stays bounded, and process, container and lock totals still agree exactly.
    func testProcessesPastTheCapAreSummedPerContainer() {
        var aggregator = Aggregator(topology: nil)
        let cap = Aggregator.maxProcessesPerLock
        for pid in 1...(cap + 10) {
            // Every process waits 1 µs + pid ns, in container 7 (odd pids) or 8 (even pids).
            aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 1_000 + UInt64(pid), lockAddress: Self.sem,
                                        cgroupID: pid % 2 == 1 ? 7 : 8, pid: UInt32(pid), comm: Comm("runc:\(pid)")))
        }
        let lock = aggregator.profile(Self.inputs()).locks[0]
        XCTAssertEqual(lock.byProcess.count, cap + 1)
        let other = try! XCTUnwrap(lock.byProcess.first { $0.key == Aggregator.otherProcessesKey })
        XCTAssertEqual(other.stats.contentions, 10)
        let overflow = (cap + 1...cap + 10).reduce(UInt64(0)) { total, pid in total + 1_000 + UInt64(pid) }
        XCTAssertEqual(other.stats.totalWaitNs, overflow)
        XCTAssertTrue(lock.byProcess.contains { $0.key == "runc:1[1]" })
        XCTAssertFalse(lock.byProcess.contains { $0.key.hasSuffix("[\(cap + 1)]") })
        XCTAssertEqual(lock.byProcess.map(\.stats.totalWaitNs).reduce(0, +), lock.stats.totalWaitNs)
        let oddPids = (1...(cap + 10)).filter { $0 % 2 == 1 }
        let odd = oddPids.reduce(UInt64(0)) { total, pid in total + 1_000 + UInt64(pid) }
        XCTAssertEqual(lock.byContainer.first { $0.key.hasSuffix("7") }?.stats.totalWaitNs, odd)
        XCTAssertEqual(lock.byContainer.map(\.stats.totalWaitNs).reduce(0, +), lock.stats.totalWaitNs)
    }

    /// Owners past `maxOwnerKeysPerLock` are summed per waiter container, so owner churn is bounded.
    func testOwnersPastTheCapAreSummedPerWaiterContainer() {
        var aggregator = Aggregator(topology: nil)
        let cap = Aggregator.maxOwnerKeysPerLock
        for owner in 1...(cap + 5) {
            aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 100, lockAddress: Self.sem, cgroupID: 7,
                                        ownerCgroupID: 8, ownerPid: UInt32(owner), ownerComm: "runc"))
        }
        let owners = try! XCTUnwrap(aggregator.profile(Self.inputs()).locks[0].owners)
        XCTAssertEqual(owners.count, ProfileBuilder.maxOwnersPerLock)
        XCTAssertEqual(owners[0].ownerPid, -1)
        XCTAssertEqual(owners[0].ownerComm, Aggregator.otherProcessesKey)
        XCTAssertEqual(owners[0].ownerContainer, Aggregator.otherContainersKey)
        XCTAssertEqual(owners[0].waiterContainer, String(repeating: "a", count: 63) + "7")
        XCTAssertEqual(owners[0].contentions, 5)
        XCTAssertEqual(owners[0].totalWaitNs, 500)
        XCTAssertEqual(owners[1].ownerComm, "runc")
    }

    /// Past `maxCgroupsPerLock` cgroups, a lock (and the mount accounting) sums new ones under
    /// `[other containers]`: container churn over a long rollout cannot grow memory, and totals still agree.
    func testCgroupsPastTheCapAreSummedAsOtherContainers() {
        var aggregator = Aggregator(topology: nil)
        let cap = Aggregator.maxCgroupsPerLock
        for cgroup in 2...UInt64(cap + 4) {
            aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 10, lockAddress: Self.sem, cgroupID: cgroup,
                                        pid: 1, stackID: 1))
            aggregator.record(SyscallEvent(syscall: .mount, latencyNs: 10, cgroupID: cgroup))
        }
        let profile = aggregator.profile(Self.inputs())
        let lock = profile.locks[0]
        XCTAssertEqual(lock.byContainer.count, cap + 1)
        let other = try! XCTUnwrap(lock.byContainer.first { $0.key == Aggregator.otherContainersKey })
        XCTAssertEqual(other.stats.contentions, 3)
        XCTAssertEqual(lock.byContainer.map(\.stats.contentions).reduce(0, +), UInt64(cap + 3))
        XCTAssertEqual(lock.stacks[0].contexts.first { $0.container == Aggregator.otherContainersKey }?.count, 3)
        let mounts = try! XCTUnwrap(profile.mounts)
        XCTAssertEqual(mounts.byContainer.first { $0.id == Aggregator.otherContainersKey }?.ops, 3)
        XCTAssertEqual(mounts.byContainer.map(\.ops).reduce(0, +), UInt64(cap + 3))
        XCTAssertEqual(profile.containers.first { $0.id == Aggregator.otherContainersKey }?.contentions, 3)
    }

    /// Past `maxLockAddresses`, waits on new addresses are summed per kind under `[other locks]`, so a
    /// long recording of per-object locks cannot grow memory; totals still add up.
    func testLockAddressesPastTheCapAreSummedAsOtherLocks() {
        var aggregator = Aggregator(topology: nil)
        let cap = Aggregator.maxLockAddresses
        for index in 0..<(cap + 5) {
            aggregator.record(WaitEvent(flags: Self.spin, waitNs: 10, lockAddress: 0xffff_8880_0000_0000 + UInt64(index) * 64,
                                        stackID: 3))
        }
        aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 1_000, lockAddress: Self.sem, stackID: 1))
        aggregator.record(WaitEvent(flags: Self.spin, waitNs: 10, lockAddress: 0xffff_8880_0000_0000, stackID: 3))
        XCTAssertEqual(aggregator.lockCount, cap + 2)
        let profile = aggregator.profile(Self.inputs())
        let others = profile.locks.filter { $0.name.hasPrefix(Aggregator.otherLocksName) }
        XCTAssertEqual(others.map(\.name).sorted(), ["[other locks] (rwsem)", "[other locks] (spinlock)"])
        XCTAssertEqual(others.map(\.address), ["0x0", "0x0"])
        XCTAssertEqual(others.first { $0.kind == .spinlock }?.stats.contentions, 5)
        XCTAssertEqual(profile.locks.map(\.stats.contentions).reduce(0, +), UInt64(cap + 7))
    }

    /// Address 0, which no lock has and which the aggregator's lock table uses for its empty slots,
    /// goes to its kind's `[other locks]` instead of being a lock of its own.
    func testLockAddressZeroIsSummedAsOtherLocks() {
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: Self.spin, waitNs: 10, lockAddress: 0, stackID: 3))
        aggregator.record(WaitEvent(flags: Self.spin, waitNs: 30, lockAddress: 0, stackID: 3))
        aggregator.record(WaitEvent(flags: Self.spin, waitNs: 20, lockAddress: Self.mountLock, stackID: 3))
        XCTAssertEqual(aggregator.lockCount, 2)
        let profile = aggregator.profile(Self.inputs())
        let other = profile.locks.first { $0.name.hasPrefix(Aggregator.otherLocksName) }
        XCTAssertEqual(other?.stats.contentions, 2)
        XCTAssertEqual(other?.stats.totalWaitNs, 40)
        XCTAssertEqual(other?.address, "0x0")
    }

    /// CPUs are found by number; an id no kernel has is still counted, without an array that large.
    func testCPUBreakdownByNumber() {
        var aggregator = Aggregator(topology: nil)
        for (cpu, ns) in [(3, 100), (70_000, 200), (3, 300), (0, 400), (70_000, 500)] as [(UInt32, UInt64)] {
            aggregator.record(WaitEvent(flags: Self.spin, waitNs: ns, lockAddress: Self.mountLock, cpu: cpu))
        }
        let lock = aggregator.profile(Self.inputs()).locks[0]
        XCTAssertEqual(lock.byCpu.map(\.key), ["0", "3", "70000"])
        XCTAssertEqual(lock.byCpu.map(\.stats.totalWaitNs), [400, 400, 700])
        XCTAssertEqual(lock.byCpu.map(\.stats.contentions), [1, 2, 2])
    }

    /// `takeProfile` (what `record` does at the end) gives the same profile as `profile`, and releases
    /// the lock state it was built from.
    func testTakeProfileEqualsProfileAndReleasesTheLocks() {
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 700, lockAddress: Self.sem, cgroupID: 7, stackID: 1))
        aggregator.record(WaitEvent(flags: Self.spin, waitNs: 90, lockAddress: Self.mountLock, cgroupID: 1, stackID: 3))
        aggregator.record(SyscallEvent(syscall: .moveMount, latencyNs: 9_000, cgroupID: 7))
        let expected = aggregator.profile(Self.inputs())
        XCTAssertEqual(expected.locks.count, 2)
        XCTAssertEqual(aggregator.profile(Self.inputs()), expected, "profile leaves the aggregator as it was")
        XCTAssertEqual(aggregator.takeProfile(Self.inputs()), expected)
        XCTAssertEqual(aggregator.lockCount, 0)
    }

    /// `record` applies a wait `eventsInFlight` waits later; a profile taken at any point still has
    /// every wait recorded before it, and taking one does not disturb what follows.
    func testWaitsStillInFlightAreInEveryProfile() {
        var aggregator = Aggregator(topology: nil)
        var total: UInt64 = 0
        for index in 0..<(3 * Aggregator.eventsInFlight + 3) {
            let ns = UInt64(1_000 + index)
            aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: ns, lockAddress: Self.sem, stackID: 1,
                                        cpu: UInt32(index % 3)))
            total += ns
            let lock = aggregator.profile(Self.inputs()).locks[0]
            XCTAssertEqual(lock.stats.contentions, UInt64(index + 1))
            XCTAssertEqual(lock.stats.totalWaitNs, total)
            XCTAssertEqual(lock.stats.maxWaitNs, ns)
            XCTAssertEqual(lock.byCpu.reduce(0) { $0 + $1.stats.contentions }, UInt64(index + 1))
        }
        let taken = aggregator.takeProfile(Self.inputs()).locks[0]
        XCTAssertEqual(taken.stats.contentions, UInt64(3 * Aggregator.eventsInFlight + 3))
        XCTAssertEqual(taken.stats.totalWaitNs, total)
    }

    func testCommKeepsTheKernelsFifteenBytes() {
        XCTAssertEqual(Comm("containerd-shim").string, "containerd-shim")
        XCTAssertEqual(Comm("containerd-shim-runc-v2").string, "containerd-shim")
        XCTAssertEqual(Comm("").string, "")
        XCTAssertEqual(Comm("kworker/u8:3"), "kworker/u8:3")
    }

    func testStacksAreSymbolizedWithoutTracingFramesAndSumToTheLockTotals() {
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 700, lockAddress: Self.sem, cgroupID: 1, stackID: 1))
        aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 300, lockAddress: Self.sem, cgroupID: 7, stackID: 2))
        aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 50, lockAddress: Self.sem, cgroupID: 7, stackID: -14))
        let lock = aggregator.profile(Self.inputs()).locks[0]
        XCTAssertEqual(lock.stacks.map(\.frames), [
            ["rwsem_down_write_slowpath", "down_write", "path_umount", "__x64_sys_umount", "do_syscall_64"],
            ["down_write", "do_lock_mount.part.0", "do_syscall_64"],
            [ProfileBuilder.noStackFrame],
        ])
        XCTAssertEqual(lock.stacks.map(\.count).reduce(0, +), lock.stats.contentions)
        XCTAssertEqual(lock.stacks.map(\.totalWaitNs).reduce(0, +), lock.stats.totalWaitNs)
        XCTAssertEqual(lock.stacks[1].contexts, [StackContext(cpu: 0, container: String(repeating: "a", count: 63) + "7",
                                                              count: 1, totalWaitNs: 300)])
    }

    func testNamesInferredFromCallPathsWithoutDataSymbols() {
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 10, lockAddress: Self.sem, stackID: 1))
        aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 10, lockAddress: Self.sem, stackID: 2))
        aggregator.record(WaitEvent(flags: Self.spin, waitNs: 10, lockAddress: Self.mountLock, stackID: 3))
        // Another rwsem from path_umount's down_write, but only from one known caller: not namespace_sem.
        aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 99, lockAddress: 0xffff_8880_0000_1000, stackID: 2))
        let names = Dictionary(uniqueKeysWithValues: aggregator.profile(Self.inputs()).locks.map { ($0.address, $0) })
        XCTAssertEqual(names["0xffffffff83001000"]?.name, "namespace_sem")
        XCTAssertEqual(names["0xffffffff83001000"]?.identity, .inferred)
        XCTAssertEqual(names["0xffffffff8300b784"]?.name, "mount_lock")
        XCTAssertEqual(names["0xffff888000001000"]?.name, "do_lock_mount.part.0+0xa2")
        XCTAssertEqual(names["0xffff888000001000"]?.identity, .caller)
    }

    /// A mutex's internal spinlock, contended inside the mutex's slow path, is named after the mutex;
    /// a spinlock that only shares the mutex's caller name stays a separate entry, told apart by kind.
    /// A mutex, its wait_lock (8 bytes in, contended inside the mutex's wait) and a spinlock contended
    /// during that wait far from it (not its wait_lock), all from `stackID`.
    private func mutexWithWaitLockAndNeighbour(stackID: Int32) -> [LockProfile] {
        var aggregator = Aggregator(topology: nil)
        let mutex: UInt64 = 0xffff_ffff_830f_60b8
        aggregator.record(WaitEvent(flags: UInt32(LOCKSCOPE_LCB_F_MUTEX), waitNs: 5_000, lockAddress: mutex, stackID: stackID))
        aggregator.record(WaitEvent(flags: Self.spin, waitNs: 40, lockAddress: mutex + 8, outerLockAddress: mutex,
                                    stackID: stackID))
        aggregator.record(WaitEvent(flags: Self.spin, waitNs: 35, lockAddress: 0xffff_8886_27c2_bcc0,
                                    outerLockAddress: mutex, stackID: stackID))
        return aggregator.profile(Self.inputs()).locks
    }

    func testMutexWaitLockAndKindsSharingACallerName() {
        let names = mutexWithWaitLockAndNeighbour(stackID: 5).map(\.name).sorted()
        XCTAssertEqual(names, ["some_driver_op+0xa1 (mutex)", "some_driver_op+0xa1 (spinlock)",
                               "some_driver_op+0xa1.wait_lock"])
    }

    /// The same shapes from exp_funnel_lock are the expedited-RCU locks of `KnownLock.table`: the
    /// mutex is rcu_state.exp_mutex (its wait_lock follows it), the spinlock rcu_node.exp_lock.
    func testExpeditedRCULocksAreNamedByWhatTheyAre() {
        let locks = mutexWithWaitLockAndNeighbour(stackID: 4)
        XCTAssertEqual(locks.map(\.name).sorted(), ["rcu_node.exp_lock", "rcu_state.exp_mutex", "rcu_state.exp_mutex.wait_lock"])
        XCTAssertEqual(Set(locks.map(\.identity)), [.inferred])
    }

    func testLockSelectionByNameKeepsWaitLocks() {
        XCTAssertTrue(LockSelection.names(["namespace_sem"]).keeps("namespace_sem.wait_lock"))
        XCTAssertFalse(LockSelection.names(["namespace_sem"]).keeps("mount_lock"))
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 10, lockAddress: Self.sem, stackID: 1))
        aggregator.record(WaitEvent(flags: Self.spin, waitNs: 10, lockAddress: Self.mountLock, stackID: 3))
        let profile = aggregator.profile(Self.inputs(selection: .names(["mount_lock"])))
        XCTAssertEqual(profile.locks.map(\.name), ["mount_lock"])
    }

    func testContainersAndMountSyscallsRollUp() {
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 100, lockAddress: Self.sem, cgroupID: 5, stackID: 1))
        aggregator.record(WaitEvent(flags: Self.rwsemWrite, waitNs: 300, lockAddress: Self.sem, cgroupID: 1, stackID: 1))
        aggregator.record(SyscallEvent(syscall: .openTree, latencyNs: 1_000, cgroupID: 5))
        aggregator.record(SyscallEvent(syscall: .openTree, latencyNs: 3_000, cgroupID: 5, ret: -1))
        aggregator.record(SyscallEvent(syscall: .umount2, latencyNs: 2_000, cgroupID: 1))
        // The open_tree that returned an fd is held for its container until the recording ends.
        let profile = aggregator.takeProfile(Self.inputs())
        XCTAssertEqual(profile.containers.map(\.id), ["host", String(repeating: "a", count: 63) + "5"])
        XCTAssertEqual(profile.containers.map(\.totalWaitNs), [300, 100])
        XCTAssertEqual(profile.containers.map(\.runtime), ["host", "docker"])
        let mounts = try? XCTUnwrap(profile.mounts)
        XCTAssertEqual(mounts?.totalOps, 3)
        XCTAssertEqual(mounts?.bySyscall.map(\.syscall), ["umount2", "open_tree"])
        XCTAssertEqual(mounts?.bySyscall.map(\.errors), [0, 1])
        XCTAssertEqual(mounts?.byContainer.map(\.ops), [2, 1])
        XCTAssertEqual(mounts?.byContainer.first?.bySyscall.first?.stats.totalWaitNs, 4_000)
    }
}

/// A small deterministic generator (SplitMix64) so tests see the same numbers every run.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
