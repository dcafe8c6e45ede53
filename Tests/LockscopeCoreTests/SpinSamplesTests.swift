import Foundation
import XCTest

@testable import LockscopeCore

/// Classification, attribution and the estimate of sampled spinning, on stacks recorded by
/// `record --spin-hz` during real storms on this kernel (innermost frame first).
final class SpinSamplesTests: XCTestCase {
    /// namespace_sem: a writer's optimistic spin, sampled in the paravirt vcpu_is_preempted helper.
    let namespaceSemSpin = ["__raw_callee_save___kvm_vcpu_is_preempted", "rwsem_spin_on_owner", "rwsem_down_write_slowpath",
                            "down_write", "do_lock_mount.part.0", "do_move_mount.isra.0", "__do_sys_move_mount",
                            "do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
    /// mount_lock: a path walk's path_init waiting (PAUSE) for a writer to release the seqlock.
    let mountLockReader = ["path_init", "path_lookupat", "filename_lookup", "vfs_statx", "vfs_fstatat",
                           "__do_sys_newfstatat", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
    /// A spinlock slow path in a workqueue: spinning, on a lock the table does not know.
    let unknownSpinlock = ["__pv_queued_spin_lock_slowpath", "_raw_spin_lock", "unregister_sysctl_table",
                           "retire_userns_sysctls", "free_user_ns", "process_one_work", "worker_thread", "kthread"]
    /// An rwsem's optimistic spin inlined into its slow path (a PAUSE there, no spin function).
    let inlinedRwsemSpin = ["rwsem_down_write_slowpath", "down_write", "filename_create", "do_mkdirat", "__x64_sys_mkdir"]
    /// The spinlock inside namespace_sem, taken in its slow path.
    let namespaceSemWaitLock = ["native_queued_spin_lock_slowpath", "_raw_spin_lock_irq", "rwsem_down_write_slowpath",
                                "down_write", "path_umount", "__x64_sys_umount"]
    /// A PAUSE in an IPI wait: spinning, but on no lock.
    let ipiWait = ["smp_call_function_many_cond", "on_each_cpu_cond_mask", "flush_tlb_mm_range", "tlb_finish_mmu"]
    /// Ordinary kernel work with a spin function deep in the stack (an interrupt on top of it).
    let deepSpinFunction = ["__slab_free", "kmem_cache_free", "rcu_do_batch", "rcu_core", "handle_softirqs",
                            "native_queued_spin_lock_slowpath", "_raw_spin_lock"]

    func testClassification() {
        XCTAssertEqual(SpinClassifier.classify(frames: namespaceSemSpin, pause: false), .spinFunction)
        XCTAssertEqual(SpinClassifier.classify(frames: unknownSpinlock, pause: false), .spinFunction)
        XCTAssertEqual(SpinClassifier.classify(frames: mountLockReader, pause: true), .pause)
        XCTAssertEqual(SpinClassifier.classify(frames: mountLockReader, pause: false), .kernel)
        XCTAssertEqual(SpinClassifier.classify(frames: deepSpinFunction, pause: false), .kernel)
    }

    func testAttributionByCallPath() {
        func lock(_ frames: [String], pause: Bool = false) -> String? {
            SpinAttribution.lock(frames: frames, sampleClass: SpinClassifier.classify(frames: frames, pause: pause))?.name
        }
        XCTAssertEqual(SpinAttribution.lock(frames: namespaceSemSpin, sampleClass: .spinFunction)?.kind, .rwsem)
        XCTAssertEqual(lock(namespaceSemSpin), "namespace_sem")
        XCTAssertEqual(lock(mountLockReader, pause: true), "mount_lock")
        XCTAssertEqual(lock(inlinedRwsemSpin, pause: true), "inode.i_rwsem")
        XCTAssertEqual(lock(namespaceSemWaitLock), "namespace_sem.wait_lock")
        XCTAssertNil(lock(unknownSpinlock))
        XCTAssertNil(lock(ipiWait, pause: true))
        XCTAssertNil(lock(mountLockReader, pause: false))
    }

    /// Garwood's exact interval against published values (e.g. Ulm 1990, Table 1) and the normal
    /// approximation from 100 samples on.
    func testPoissonIntervals() {
        let zero = PoissonInterval.confidence95(0)
        XCTAssertEqual(zero.low, 0)
        XCTAssertEqual(zero.high, 3.689, accuracy: 0.001)
        let one = PoissonInterval.confidence95(1)
        XCTAssertEqual(one.low, 0.0253, accuracy: 0.0001)
        XCTAssertEqual(one.high, 5.572, accuracy: 0.001)
        let ten = PoissonInterval.confidence95(10)
        XCTAssertEqual(ten.low, 4.795, accuracy: 0.001)
        XCTAssertEqual(ten.high, 18.390, accuracy: 0.001)
        let many = PoissonInterval.confidence95(400)
        XCTAssertEqual(many.low, 400 - 1.96 * 20, accuracy: 1e-9)
        XCTAssertEqual(many.high, 400 + 1.96 * 20, accuracy: 1e-9)
        let time = SampledTime(samples: 400, periodNs: 1_003_009)
        XCTAssertEqual(time.estimatedNs, 401_203_600)
        XCTAssertEqual(time.halfWidthNs, UInt64((1.96 * 20 * 1_003_009).rounded()))
    }

    /// Samples become `spin` on the lock of that name (merged names carry their kind), a new entry for a
    /// lock only spun on, and `cpu_samples` with every kept sample; old profiles without them still read.
    /// The two-sample Poisson test against exact binomial tails (computed with rational arithmetic in Python:
    /// sum of C(n, i) p^i (1-p)^(n-i) over the tail).
    func testPoissonRateTest() {
        func p(_ base: UInt64, _ current: UInt64, baseExposure: Double = 1, currentExposure: Double = 1) -> Double {
            PoissonRateTest.pValue(base: base, baseExposure: baseExposure, current: current, currentExposure: currentExposure)
        }
        XCTAssertEqual(p(40, 52), 0.12566105173742723, accuracy: 1e-12)
        XCTAssertEqual(p(400, 500), 0.00047822206845947305, accuracy: 1e-15)
        XCTAssertEqual(p(1000, 400), 8.072283595300148e-60, accuracy: 1e-70)  // the lower tail: fewer now
        XCTAssertEqual(p(10, 20), 0.04936857335269451, accuracy: 1e-12)
        XCTAssertEqual(p(2, 10), 0.019287109375, accuracy: 1e-12)
        // Twice the exposure for the current recording: p = 2/3; 40 of 60 is what equal rates give.
        XCTAssertEqual(p(20, 40, currentExposure: 2), 0.560313848740851, accuracy: 1e-12)
        // 40 of 60 with p = 1/3 (current exposure half the base's).
        XCTAssertEqual(p(20, 40, baseExposure: 2), 1.361760033033232e-07, accuracy: 1e-15)
        XCTAssertEqual(p(0, 0), 1)
        XCTAssertTrue(PoissonRateTest.differs(base: 2, baseExposure: 1, current: 10, currentExposure: 1))
        XCTAssertFalse(PoissonRateTest.differs(base: 10, baseExposure: 1, current: 20, currentExposure: 1))
        // Past 100000 samples, the normal approximation: 50000 vs 51000 is z = 1000 / sqrt(101000 / 4) / 2 ≈ 3.15.
        XCTAssertEqual(p(50_000, 51_000), 0.5 * erfc((499.5 / (101_000.0 / 4).squareRoot()) / 2.0.squareRoot()), accuracy: 1e-12)
        XCTAssertEqual(p(50_000, 51_000), 0.00082, accuracy: 0.00005)
    }

    /// The example of docs/profile-format.md (`spin`) is what the code computes: 240 samples at 997 Hz,
    /// 180 of them outside waits and 60 inside.
    func testTheDocumentedSpinExample() {
        let period: UInt64 = 1_003_009
        let spin = SpinProfile(periodNs: period, time: SampledTime(samples: 240, periodNs: period), spinFunctionSamples: 200,
                               pauseSamples: 40, insideWaitSamples: 60, byCpu: [], bySocket: [], byContainer: [], byProcess: [],
                               stacks: [])
        func numbers(_ time: SampledTime?) -> [UInt64] { time.map { [$0.samples, $0.estimatedNs, $0.ciLowNs, $0.ciHighNs] } ?? [] }
        XCTAssertEqual(numbers(spin.time), [240, 240_722_160, 210_266_605, 271_177_715])
        XCTAssertEqual(numbers(spin.outsideWaits), [180, 180_541_620, 154_166_335, 206_916_905])
        XCTAssertEqual(numbers(spin.insideWaits), [60, 60_180_540, 45_924_092, 77_464_284])
    }

    /// A sample inside a mount syscall goes to the container the syscall was tied to; one in a syscall tied
    /// to none, and one outside syscalls, to their cgroup's.
    func testSamplesInsideMountSyscallsGoToTheSyscallsContainer() throws {
        let symbols = Kallsyms(parsing: """
            ffffffff81000200 T rwsem_spin_on_owner
            ffffffff81000300 T rwsem_down_write_slowpath
            ffffffff81000400 T down_write
            ffffffff81000500 T path_umount
            """)
        let stack: [UInt64] = [0xffffffff81000210, 0xffffffff81000310, 0xffffffff81000410, 0xffffffff81000510]
        let tied = SyscallID(tid: 21, beginNs: 1000), untied = SyscallID(tid: 22, beginNs: 2000)
        let recorded = RecordedSamples(hz: 997, periodNs: 1_003_009, samples: [
            RecordedSample(stackID: 0, cpu: 0, cgroupID: 5, pid: 20, comm: "shim", user: false, pause: false, mountSyscall: tied, count: 4),
            RecordedSample(stackID: 0, cpu: 0, cgroupID: 5, pid: 20, comm: "shim", user: false, pause: false, mountSyscall: untied, count: 2),
            RecordedSample(stackID: 0, cpu: 1, cgroupID: 5, pid: 20, comm: "shim", user: false, pause: false, count: 1),
        ], counters: SampleCounters(), stacks: [0: stack])
        var profile = Profile(hostname: "h", kernel: "k", startedAt: "t", durationNs: 1, events: 0, drops: Drops(),
                              recording: Recording(), topology: nil, containers: [], mounts: nil, locks: [])
        SpinProfileBuilder(symbols: symbols, topology: nil,
                           container: { Container(id: "cgroup\($0)", runtime: "containerd", cgroup: "") },
                           syscallTie: { $0 == tied ? .container(Container(id: "app", runtime: "containerd", cgroup: "")) : .none },
                           selection: .all).apply(recorded, to: &profile)
        let spin = try XCTUnwrap(profile.locks.first { $0.name == "namespace_sem" }?.spin)
        XCTAssertEqual(spin.byContainer, [KeyedSamples(key: "app", samples: 4), KeyedSamples(key: "cgroup5", samples: 3)])
        XCTAssertEqual(profile.cpuSamples?.counters.syscallUnlinked, 0)

        // A syscall whose tie the aggregator could not keep: its samples stay with the cgroup, counted.
        var forgotten = Profile(hostname: "h", kernel: "k", startedAt: "t", durationNs: 1, events: 0, drops: Drops(),
                                recording: Recording(), topology: nil, containers: [], mounts: nil, locks: [])
        SpinProfileBuilder(symbols: symbols, topology: nil,
                           container: { Container(id: "cgroup\($0)", runtime: "containerd", cgroup: "") },
                           syscallTie: { $0 == tied ? .container(Container(id: "app", runtime: "containerd", cgroup: "")) : .forgotten },
                           selection: .all).apply(recorded, to: &forgotten)
        XCTAssertEqual(forgotten.locks.first { $0.name == "namespace_sem" }?.spin?.byContainer,
                       [KeyedSamples(key: "app", samples: 4), KeyedSamples(key: "cgroup5", samples: 3)])
        XCTAssertEqual(forgotten.cpuSamples?.counters.syscallUnlinked, 2)
    }

    func testProfileSections() throws {
        let symbols = Kallsyms(parsing: """
            ffffffff81000000 T path_init
            ffffffff81000100 T path_lookupat
            ffffffff81000200 T rwsem_spin_on_owner
            ffffffff81000300 T rwsem_down_write_slowpath
            ffffffff81000400 T down_write
            ffffffff81000500 T path_umount
            ffffffff81000600 T do_syscall_64
            ffffffff81000700 T ksys_read
            """)
        let stacks: [Int32: [UInt64]] = [
            1: [0xffffffff81000010, 0xffffffff81000110, 0xffffffff81000610],
            2: [0xffffffff81000210, 0xffffffff81000310, 0xffffffff81000410, 0xffffffff81000510],
            3: [0xffffffff81000710, 0xffffffff81000610],
        ]
        let recorded = RecordedSamples(hz: 997, periodNs: 1_003_009, samples: [
            RecordedSample(stackID: 1, cpu: 0, cgroupID: 7, pid: 10, comm: "stat", user: false, pause: true, count: 3),
            RecordedSample(stackID: 1, cpu: 1, cgroupID: 7, pid: 10, comm: "stat", user: false, pause: false, count: 5),
            RecordedSample(stackID: 2, cpu: 1, cgroupID: 8, pid: 11, comm: "umount", user: false, pause: false, count: 2),
            // The writer's hand-off spin, after its contention_begin: inside a traced wait.
            RecordedSample(stackID: 2, cpu: 0, cgroupID: 8, pid: 11, comm: "umount", user: false, pause: false, inWait: true,
                           count: 3),
            RecordedSample(stackID: 3, cpu: 0, cgroupID: 8, pid: 11, comm: "umount", user: false, pause: false, count: 4),
            RecordedSample(stackID: -1, cpu: 0, cgroupID: 8, pid: 11, comm: "umount", user: true, pause: false, count: 6),
        ], counters: SampleCounters(), stacks: stacks)
        var profile = Profile(hostname: "h", kernel: "k", startedAt: "t", durationNs: 1, events: 0, drops: Drops(),
                              recording: Recording(), topology: nil, containers: [], mounts: nil,
                              locks: [LockProfile(name: "mount_lock", identity: .inferred, kind: .spinlock, address: "0x1",
                                                  stats: .empty)])
        SpinProfileBuilder(symbols: symbols, topology: nil, container: { Container(id: "c\($0)", runtime: "docker", cgroup: "") },
                           selection: .all).apply(recorded, to: &profile)

        let mountLock = try XCTUnwrap(profile.locks.first { $0.name == "mount_lock" }?.spin)
        XCTAssertEqual(mountLock.pauseSamples, 3)
        XCTAssertEqual(mountLock.spinFunctionSamples, 0)
        XCTAssertEqual(mountLock.time.estimatedNs, 3 * 1_003_009)
        XCTAssertEqual(mountLock.byContainer, [KeyedSamples(key: "c7", samples: 3)])
        XCTAssertEqual(mountLock.stacks.map(\.frames), [["path_init", "path_lookupat", "do_syscall_64"]])

        let namespaceSem = try XCTUnwrap(profile.locks.first { $0.name == "namespace_sem" })
        XCTAssertEqual(namespaceSem.stats.contentions, 0)
        XCTAssertEqual(namespaceSem.kind, .rwsem)
        XCTAssertEqual(namespaceSem.spin?.spinFunctionSamples, 5)
        XCTAssertEqual(namespaceSem.spin?.byCpu, [KeyedSamples(key: "0", samples: 3), KeyedSamples(key: "1", samples: 2)])
        XCTAssertEqual(namespaceSem.spin?.outsideWaits, SampledTime(samples: 2, periodNs: 1_003_009))
        XCTAssertEqual(namespaceSem.spin?.insideWaits, SampledTime(samples: 3, periodNs: 1_003_009))
        XCTAssertEqual(mountLock.insideWaits?.samples, 0)
        XCTAssertEqual(mountLock.outsideWaits?.samples, 3)

        let samples = try XCTUnwrap(profile.cpuSamples)
        XCTAssertEqual(samples.samples(.pause), 3)
        XCTAssertEqual(samples.samples(.spinFunction), 5)
        XCTAssertEqual(samples.samples(.kernel), 9)
        XCTAssertEqual(samples.samples(.user), 6)
        XCTAssertEqual(samples.unattributedSpin, 0)
        XCTAssertEqual(samples.stacks.first, SampledStack(frames: ["[user]"], samples: 6, sampleClass: .user, process: "umount"))
        // The same frames at a PAUSE and not are two stacks of two classes.
        XCTAssertEqual(samples.stacks.filter { $0.frames.first == "path_init" }.map { "\($0.sampleClass.rawValue) \($0.samples)" }.sorted(),
                       ["kernel 5", "pause 3"])

        // Written and read back; and a profile written before sampling existed has neither section.
        let decoded = try Profile.decode(try Profile.makeEncoder().encode(profile))
        XCTAssertEqual(decoded, profile)
        var old = profile
        old.cpuSamples = nil
        for index in old.locks.indices { old.locks[index].spin = nil }
        let oldDecoded = try Profile.decode(try Profile.makeEncoder().encode(old))
        XCTAssertNil(oldDecoded.cpuSamples)
        XCTAssertTrue(oldDecoded.locks.allSatisfy { $0.spin == nil })

        // A profile written before samples inside waits were told apart: neither part, no in_wait counter.
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Profile.makeEncoder().encode(profile)) as? [String: Any])
        var locks = try XCTUnwrap(object["locks"] as? [[String: Any]])
        for index in locks.indices {
            guard var spin = locks[index]["spin"] as? [String: Any] else { continue }
            XCTAssertNotNil(spin.removeValue(forKey: "outside_waits"))
            XCTAssertNotNil(spin.removeValue(forKey: "inside_waits"))
            locks[index]["spin"] = spin
        }
        object["locks"] = locks
        var cpuSamples = try XCTUnwrap(object["cpu_samples"] as? [String: Any])
        var counters = try XCTUnwrap(cpuSamples["counters"] as? [String: Any])
        XCTAssertNotNil(counters.removeValue(forKey: "in_wait"))
        cpuSamples["counters"] = counters
        object["cpu_samples"] = cpuSamples
        let before = try Profile.decode(JSONSerialization.data(withJSONObject: object))
        XCTAssertEqual(before.locks.first { $0.name == "namespace_sem" }?.spin?.time.samples, 5)
        XCTAssertNil(before.locks.first { $0.name == "namespace_sem" }?.spin?.outsideWaits)
        XCTAssertEqual(before.cpuSamples?.counters.inWait, 0)
    }

    /// `--redact` pseudonymizes what samples carry: containers, processes and thread names.
    func testRedactionCoversSamples() {
        let period: UInt64 = 1_000_000
        var lock = LockProfile(name: "namespace_sem", identity: .inferred, kind: .rwsem, address: "0x0", stats: .empty)
        let container = String(repeating: "ab", count: 32)
        lock.spin = SpinProfile(periodNs: period, time: SampledTime(samples: 2, periodNs: period), spinFunctionSamples: 2,
                                pauseSamples: 0, insideWaitSamples: 0, byCpu: [KeyedSamples(key: "0", samples: 2)], bySocket: [],
                                byContainer: [KeyedSamples(key: container, samples: 2)],
                                byProcess: [KeyedSamples(key: "secret-tool[42]", samples: 2)],
                                stacks: [SampledStack(frames: ["rwsem_spin_on_owner", "0xffffffffc0123456"], samples: 2,
                                                      sampleClass: .spinFunction)])
        var profile = Profile(hostname: "h", kernel: "k", startedAt: "t", durationNs: 1, events: 0, drops: Drops(),
                              recording: Recording(), topology: nil, containers: [], mounts: nil, locks: [lock])
        profile.cpuSamples = CPUSampleProfile(hz: 997, periodNs: period, counters: SampleCounters(), byClass: [],
                                              unattributedSpin: 0, stacks: [
                                                  SampledStack(frames: ["[user]"], samples: 1, sampleClass: .user, process: "secret-tool"),
                                                  SampledStack(frames: ["[user]"], samples: 1, sampleClass: .user, process: "containerd"),
                                              ])
        let redacted = Redactor(key: Data(repeating: 7, count: 32)).redact(profile)
        let spin = redacted.locks[0].spin!
        XCTAssertTrue(spin.byContainer[0].key.hasPrefix("ctr-"), spin.byContainer[0].key)
        XCTAssertFalse(spin.byProcess[0].key.contains("secret-tool"))
        XCTAssertEqual(spin.stacks[0].frames[0], "rwsem_spin_on_owner")
        XCTAssertFalse(spin.stacks[0].frames[1].contains("0xffffffffc0123456"))
        let processes = redacted.cpuSamples!.stacks.compactMap(\.process)
        XCTAssertFalse(processes.contains("secret-tool"))
        XCTAssertTrue(processes.contains("containerd"), "runtimes are kept, as elsewhere")
    }

    /// Past 2000 stacks the rest are summed per thread name and class: per-class and per-thread totals hold.
    func testOnCPUStacksBeyondTheCapKeepTheirClassAndThread() throws {
        var samples: [RecordedSample] = []
        var stacks: [Int32: [UInt64]] = [:]
        for id in 0..<2100 {
            stacks[Int32(id)] = [0xffffffff81000000 + UInt64(id) * 16]
            samples.append(RecordedSample(stackID: Int32(id), cpu: 0, cgroupID: 1, pid: 5, comm: id % 2 == 0 ? "a" : "b",
                                          user: false, pause: id % 3 == 0, count: id < 100 ? 5 : 1))
        }
        var profile = Profile(hostname: "h", kernel: "k", startedAt: "t", durationNs: 1, events: 0, drops: Drops(),
                              recording: Recording(), topology: nil, containers: [], mounts: nil, locks: [])
        SpinProfileBuilder(symbols: nil, topology: nil, container: { Container(id: "c\($0)", runtime: "docker", cgroup: "") },
                           selection: .all).apply(RecordedSamples(hz: 997, periodNs: 1, samples: samples, counters: SampleCounters(),
                                                                  stacks: stacks), to: &profile)
        let kept = try XCTUnwrap(profile.cpuSamples).stacks
        XCTAssertEqual(kept.filter { $0.frames != ["[other stacks]"] }.count, 2000)
        XCTAssertEqual(kept.filter { $0.frames == ["[other stacks]"] }.count, 4)  // 2 threads x 2 classes
        for process in ["a", "b"] {
            for sampleClass in [SampleClass.pause, .kernel] {
                let expected = samples.filter { $0.comm == process && $0.pause == (sampleClass == .pause) }.reduce(0) { $0 + $1.count }
                let found = kept.filter { $0.process == process && $0.sampleClass == sampleClass }.reduce(0) { $0 + $1.samples }
                XCTAssertEqual(found, expected, "\(process) \(sampleClass)")
            }
        }
    }
}
