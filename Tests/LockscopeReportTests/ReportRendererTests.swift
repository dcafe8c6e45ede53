import LockscopeCore
import XCTest

@testable import LockscopeReport

final class ReportRendererTests: XCTestCase {
    private func stats(_ count: UInt64, total: UInt64, max: UInt64, p99: UInt64) -> WaitStats {
        WaitStats(contentions: count, totalWaitNs: total, minWaitNs: 100, maxWaitNs: max, p50WaitNs: total / count,
                  p90WaitNs: p99, p99WaitNs: p99, p999WaitNs: max, histogram: [])
    }

    private func profile() -> Profile {
        let container = String(repeating: "c", count: 64)
        let namespaceSem = LockProfile(
            name: "namespace_sem", identity: .inferred, kind: .rwsem, address: "0xffffffff83001000",
            stats: stats(120, total: 2_400_000_000, max: 48_000_000, p99: 31_000_000),
            stacks: [StackProfile(frames: ["rwsem_down_write_slowpath", "down_write", "path_umount", "__x64_sys_umount"],
                                  count: 100, totalWaitNs: 1_800_000_000, maxWaitNs: 48_000_000, contexts: []),
                     StackProfile(frames: ["down_read", "clone_private_mount", "ovl_fill_super"],
                                  count: 20, totalWaitNs: 600_000_000, maxWaitNs: 9_000_000, contexts: [])],
            byCpu: [KeyedStats(key: "0", stats: stats(70, total: 1_400_000_000, max: 48_000_000, p99: 30_000_000)),
                    KeyedStats(key: "1", stats: stats(50, total: 1_000_000_000, max: 20_000_000, p99: 19_000_000))],
            byContainer: [KeyedStats(key: container, stats: stats(120, total: 2_400_000_000, max: 48_000_000, p99: 31_000_000))],
            handoffs: [HandoffStats(handoff: .sameCPU, stats: stats(60, total: 1_000_000_000, max: 9_000_000, p99: 8_000_000))],
            owners: [OwnerBlame(waiterContainer: container, ownerContainer: "host", ownerPid: 812, ownerComm: "containerd",
                                contentions: 120, totalWaitNs: 2_400_000_000)])
        let mountLock = LockProfile(name: "mount_lock", identity: .inferred, kind: .spinlock, address: "0xffffffff8300b784",
                                    stats: stats(300, total: 90_000, max: 1_200, p99: 900))
        var drops = Drops()
        drops.ringbufFull = 5
        return Profile(hostname: "node-1", kernel: "6.18.44", startedAt: "2026-11-26T10:00:00Z",
                       durationNs: 5_000_000_000, events: 995, drops: drops, recording: Recording(), topology: nil,
                       containers: [], mounts: MountSummary(
                        totalOps: 44, bySyscall: [SyscallStats(syscall: "open_tree", stats: stats(40, total: 400_000, max: 30_000, p99: 20_000), errors: 1),
                                                  SyscallStats(syscall: "umount2", stats: stats(4, total: 80_000, max: 30_000, p99: 30_000), errors: 0)],
                        byContainer: [ContainerMounts(id: container, runtime: "docker", ops: 44, bySyscall: [
                            SyscallStats(syscall: "open_tree", stats: stats(40, total: 400_000, max: 30_000, p99: 20_000), errors: 1)])]),
                       locks: [namespaceSem, mountLock])
    }

    func testTableReport() {
        let text = ReportRenderer(profile: profile(), options: ReportOptions(top: 5)).render()
        XCTAssertEqual(text, """
            lockscope report: host node-1, kernel 6.18.44
            recorded 2026-11-26T10:00:00Z for 5.00 s, 995 events
            dropped 5 events (0.5%)
              ringbuf_full 5: raise --ringbuf-size or set a --min-wait

            contended    total      max      avg      p99  kind      lock
                  120   2.40 s  48.0 ms  20.0 ms  31.0 ms  rwsem     namespace_sem
                  300  90.0 us  1.20 us   300 ns   900 ns  spinlock  mount_lock

            call paths of namespace_sem (recognised from its call paths, 0xffffffff83001000):
              75.0% 100x  down_write <- path_umount <- __x64_sys_umount
              25.0% 20x  down_read <- clone_private_mount <- ovl_fill_super

            """)
        XCTAssertTrue(text.split(separator: "\n").allSatisfy { $0.count <= 90 })
    }

    func testOtherLocksHeadingSaysWhatTheyAre() {
        var profile = profile()
        profile.locks = [LockProfile(
            name: Aggregator.otherLocksName, identity: .caller, kind: .spinlock, address: "0x0",
            stats: stats(5, total: 500, max: 200, p99: 200),
            stacks: [StackProfile(frames: ["_raw_spin_lock", "d_alloc_parallel"], count: 5, totalWaitNs: 500,
                                  maxWaitNs: 200, contexts: [])])]
        let text = ReportRenderer(profile: profile, options: ReportOptions(top: 5)).render()
        XCTAssertTrue(text.contains("call paths of [other locks] (lock addresses past the first 4096):"), text)
    }

    func testSortAndTop() {
        let byCount = ReportRenderer(profile: profile(), options: ReportOptions(top: 1, sort: .count))
        XCTAssertEqual(byCount.selectedLocks.map(\.name), ["mount_lock"])
        let byMax = ReportRenderer(profile: profile(), options: ReportOptions(top: 1, sort: .max))
        XCTAssertEqual(byMax.selectedLocks.map(\.name), ["namespace_sem"])
    }

    func testBreakdownsFitEightyColumns() {
        let options = ReportOptions(top: 1, by: [.cpu, .container, .handoff, .owner], mounts: true, stacksPerLock: 0)
        let text = ReportRenderer(profile: profile(), options: options).render()
        XCTAssertTrue(text.contains("""
            namespace_sem by cpu:
              key  contended  total wait  share      p50      p99      max
              0           70      1.40 s  58.3%  20.0 ms  30.0 ms  48.0 ms
              1           50      1.00 s  41.7%  20.0 ms  19.0 ms  20.0 ms
            """), text)
        XCTAssertTrue(text.contains("cccccccccccc"), "container ids are shortened like docker ps")
        XCTAssertTrue(text.contains("same_cpu"))
        XCTAssertTrue(text.contains("containerd"))
        XCTAssertTrue(text.contains("mount syscalls: 44 in all"))
        XCTAssertTrue(text.contains("mount ops per container: 44.0 (1 container)"))
        for line in text.split(separator: "\n") { XCTAssertLessThanOrEqual(line.count, 80, String(line)) }
    }

    /// A crafted key thousands of characters long sticks out of its own row instead of padding every row to it.
    func testALongKeyDoesNotWidenItsColumn() {
        var profile = profile()
        let long = String(repeating: "k", count: 5_000)
        profile.locks[0].byCpu[1].key = long
        let text = ReportRenderer(profile: profile, options: ReportOptions(top: 1, by: [.cpu], stacksPerLock: 0)).render()
        let table = text.components(separatedBy: "namespace_sem by cpu:\n")[1].split(separator: "\n")
        XCTAssertEqual(table[0], "  key\(String(repeating: " ", count: 61))  contended  total wait  share      p50      p99      max")
        XCTAssertEqual(table[1].count, 2 + 64 + 57)
        XCTAssertEqual(table[2], "  \(long)         50      1.00 s  41.7%  20.0 ms  19.0 ms  20.0 ms")
    }

    func testSpinlockOwnerIsUnknown() {
        let options = ReportOptions(top: 2, sort: .count, by: [.owner], stacksPerLock: 0)
        let text = ReportRenderer(profile: profile(), options: options).render()
        XCTAssertTrue(text.contains("mount_lock by owner:\n  owner unknown: spinlock owners are not recorded"), text)
    }

    func testCSVAndJSON() throws {
        let csv = ReportRenderer(profile: profile(), options: ReportOptions(top: 5, format: .csv)).render()
        XCTAssertTrue(csv.hasSuffix("\r\n"))
        let lines = csv.components(separatedBy: "\r\n").dropLast()
        XCTAssertEqual(lines.count, 3)
        XCTAssertEqual(lines[0], "lock,identity,kind,address,contentions,total_wait_ns,max_wait_ns,mean_wait_ns,p50_wait_ns,p90_wait_ns,p99_wait_ns,p999_wait_ns,read_contentions,write_contentions,spin_samples,spin_estimated_ns,spin_ci_low_ns,spin_ci_high_ns,spin_outside_waits_samples,spin_outside_waits_ns,spin_inside_waits_samples,spin_inside_waits_ns")
        XCTAssertEqual(lines[1], "namespace_sem,inferred,rwsem,0xffffffff83001000,120,2400000000,48000000,20000000,20000000,31000000,31000000,48000000,0,0,,,,,,,,")
        let json = ReportRenderer(profile: profile(), options: ReportOptions(top: 5, format: .json)).render()
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["dropped"] as? Int, 5)
        XCTAssertEqual((object["locks"] as? [[String: Any]])?.map { $0["name"] as? String }, ["namespace_sem", "mount_lock"])
    }

    /// Waiting and spinning side by side, the sampler's counts in the header, spin in CSV and JSON.
    func testSpinBesideWaits() throws {
        var profile = profile()
        let period: UInt64 = 1_000_000
        profile.locks[0].spin = SpinProfile(periodNs: period, time: SampledTime(samples: 400, periodNs: period),
                                            spinFunctionSamples: 350, pauseSamples: 50, insideWaitSamples: 100, byCpu: [], bySocket: [],
                                            byContainer: [], byProcess: [], stacks: [])
        var counters = SampleCounters()
        counters.samples = 5000
        counters.idle = 1000
        counters.user = 2000
        counters.kernel = 2000
        counters.stackFailed = 7
        profile.cpuSamples = CPUSampleProfile(hz: 1000, periodNs: period, counters: counters,
                                              byClass: [KeyedSamples(key: "spin_function", samples: 350),
                                                        KeyedSamples(key: "pause", samples: 60)],
                                              unattributedSpin: 10, stacks: [])
        let text = ReportRenderer(profile: profile, options: ReportOptions()).render()
        // Beside the waits, the 300 samples (of 1 ms) outside them: 300 ms ± 1.96 * sqrt(300) * 1 ms = 33.9 ms;
        // the 100 inside are in the 2.40 s already.
        XCTAssertTrue(text.contains("waiting, and spinning outside waits (samples x period, 95% interval):\n"
                                    + "  namespace_sem: 120 waits, 2.40 s waiting; ~300 ms ± 33.9 ms spinning on CPU\n"
                                    + "    400 samples: 350 in spin functions, 50 at PAUSE\n"
                                    + "    100 of them inside traced waits (~100 ms, already in the waiting time)\n"), text)
        // A profile written before the two were told apart shows all of it, and says so.
        var older = profile
        older.locks[0].spin?.insideWaits = nil
        older.locks[0].spin?.outsideWaits = nil
        let olderText = ReportRenderer(profile: older, options: ReportOptions()).render()
        XCTAssertTrue(olderText.contains("  namespace_sem: 120 waits, 2.40 s waiting; ~400 ms ± 39.2 ms spinning on CPU\n"
                                         + "    400 samples: 350 in spin functions, 50 at PAUSE\n"
                                         + "    (this profile does not tell spin inside waits apart)\n"), olderText)
        XCTAssertTrue(text.contains("on-CPU samples at 1000 Hz: 5000 (1000 idle, 2000 user, 2000 kernel)\n"
                                    + "  410 spinning, 10 of them on no known lock\n"
                                    + "  stack_failed 7: kernel samples without a stack (not classified)\n"), text)
        // The lines about sampling keep to 80 columns (the call-path headings are the existing exception).
        let samplingLines = text.split(separator: "\n").filter { $0.contains("spin") || $0.contains("samples") || $0.contains("stack_failed") }
        XCTAssertGreaterThanOrEqual(samplingLines.count, 6)
        XCTAssertTrue(samplingLines.allSatisfy { $0.count <= 80 }, text)
        let csv = ReportRenderer(profile: profile, options: ReportOptions(format: .csv)).render()
        XCTAssertTrue(csv.split(whereSeparator: \.isNewline)[1]
            .hasSuffix(",400,400000000,360800000,439200000,300,300000000,100,100000000"), csv)
        let json = ReportRenderer(profile: profile, options: ReportOptions(format: .json)).render()
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let row = try XCTUnwrap((object["locks"] as? [[String: Any]])?.first)
        let spin = try XCTUnwrap(row["spin"] as? [String: Any])
        XCTAssertEqual(spin["estimated_ns"] as? Int, 400_000_000)
        XCTAssertEqual((row["spin_outside_waits"] as? [String: Any])?["samples"] as? Int, 300)
        XCTAssertEqual((row["spin_inside_waits"] as? [String: Any])?["samples"] as? Int, 100)
        XCTAssertNil(row["spin_by_cpu"], "only with --by cpu")
    }

    /// `--by cpu|socket|container`: each lock's spin samples under each key, after its waits' table, in the
    /// text and in the JSON rows.
    func testSpinByCpuSocketAndContainer() throws {
        var profile = profile()
        let period: UInt64 = 1_000_000
        let container = String(repeating: "ab", count: 32)
        profile.locks[0].spin = SpinProfile(
            periodNs: period, time: SampledTime(samples: 40, periodNs: period), spinFunctionSamples: 40, pauseSamples: 0,
            insideWaitSamples: 10, byCpu: [KeyedSamples(key: "0", samples: 30), KeyedSamples(key: "1", samples: 10)],
            bySocket: [KeyedSamples(key: "0", samples: 40)], byContainer: [KeyedSamples(key: container, samples: 40)],
            byProcess: [], stacks: [])
        let text = ReportRenderer(profile: profile, options: ReportOptions(by: [.cpu, .container])).render()
        XCTAssertTrue(text.contains("""
            namespace_sem spin by cpu (inside and outside waits):
              key  samples  ~cpu time  share
              0         30    30.0 ms  75.0%
              1         10    10.0 ms  25.0%

            """), text)
        XCTAssertTrue(text.contains("namespace_sem spin by container (inside and outside waits):\n"), text)
        XCTAssertTrue(text.contains("40    40.0 ms  100.0%\n"), text)
        XCTAssertFalse(text.contains("spin by socket"), text)
        let json = ReportRenderer(profile: profile, options: ReportOptions(format: .json, by: [.socket])).render()
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let row = try XCTUnwrap((object["locks"] as? [[String: Any]])?.first)
        XCTAssertEqual((row["spin_by_socket"] as? [[String: Any]])?.first?["samples"] as? Int, 40)
        XCTAssertNil(row["spin_by_cpu"])
    }

    /// With user stacks, each of the top locks lists its waiters' heaviest user call paths, summed over the
    /// kernel stacks they reached the lock by; without, nothing is added.
    func testUserCallPathsPerLock() {
        var profile = profile()
        let prepare = ["issue_syscall", "do_prepare_idmapped_overlay", "prepare_idmapped_overlay", "run_worker", "main",
                       "__libc_start_call_main", "__libc_start_main"]
        let swift = "LockscopeStress.MountCounter.attempt(LockscopeStress.StressSyscall, Swift.String, () -> Swift.Int32) throws -> Swift.Int32"
        profile.locks[0].stacks = [
            StackProfile(frames: ["rwsem_down_write_slowpath", "down_write", "path_umount"], userFrames: ["issue_syscall", "release_overlay", "main"],
                         count: 50, totalWaitNs: 600_000_000, maxWaitNs: 1, contexts: []),
            StackProfile(frames: ["rwsem_down_write_slowpath", "down_write", "do_lock_mount"], userFrames: prepare,
                         count: 40, totalWaitNs: 700_000_000, maxWaitNs: 1, contexts: []),
            StackProfile(frames: ["rwsem_down_write_slowpath", "down_write", "vfs_open_tree"], userFrames: prepare,
                         count: 20, totalWaitNs: 500_000_000, maxWaitNs: 1, contexts: []),
            StackProfile(frames: ["down_read", "clone_private_mount"], userFrames: ["mount", swift],
                         count: 10, totalWaitNs: 100_000_000, maxWaitNs: 1, contexts: []),
        ]
        let report = ReportRenderer(profile: profile, options: ReportOptions(stacksPerLock: 1)).render()
        XCTAssertTrue(report.contains("""
            user call paths of namespace_sem (the waiters' own code, innermost first):
              50.0% 60x  issue_syscall <- do_prepare_idmapped_overlay <- prepare_idmapped_overlay <- run_worker <- main <- __libc_start_call_main <- ...
              25.0% 50x  issue_syscall <- release_overlay <- main
              4.2% 10x  mount <- LockscopeStress.MountCounter.attempt(...)

            """), report)
        XCTAssertFalse(ReportRenderer(profile: self.profile(), options: ReportOptions()).render().contains("user call paths"))
    }
}
