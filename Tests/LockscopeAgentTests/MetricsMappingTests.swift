import Foundation
import LockscopeCore
import Testing
@testable import LockscopeAgent

/// The pure half of the agent's metrics: a window's profile mapped to metric increments, the label caps,
/// and what swift-prometheus then renders for them, all against hand-computed values.
struct MetricsMappingTests {
    static func stats(_ buckets: [(UInt64, UInt64, UInt64)], total: UInt64) -> WaitStats {
        let count = buckets.reduce(0) { $0 + $1.2 }
        return WaitStats(contentions: count, totalWaitNs: total, minWaitNs: 0, maxWaitNs: 0, p50WaitNs: 0, p90WaitNs: 0,
                         p99WaitNs: 0, p999WaitNs: 0,
                         histogram: buckets.map { HistogramBucket(lowerNs: $0.0, upperNs: $0.1, count: $0.2) })
    }

    static func keyed(_ key: String, waitNs: UInt64) -> KeyedStats {
        KeyedStats(key: key, stats: stats([(1024, 2048, 1)], total: waitNs))
    }

    static func syscall(_ name: String, _ count: UInt64) -> SyscallStats {
        SyscallStats(syscall: name, stats: stats([(4096, 8192, count)], total: count * 5000), errors: 0)
    }

    /// Two containers in two pods; namespace_sem (rwsem) and mount_lock (spinlock).
    static func window(locks extra: [String] = []) -> Profile {
        var drops = Drops()
        drops.ringbufFull = 3
        drops.stackFailed = 2
        let namespaceSem = LockProfile(
            name: "namespace_sem", identity: .inferred, kind: .rwsem, address: "0xffff1",
            // 500 ns (under the first bound), 3000 ns (2^11..2^12), 2^35 ns (past the last bound).
            stats: stats([(256, 512, 1), (2048, 4096, 2), (1 << 35, 1 << 36, 1)], total: 400 + 2 * 3000 + (3 << 34)),
            byContainer: [keyed("c1", waitNs: 2000), keyed("c2", waitNs: 4400)])
        let mountLock = LockProfile(name: "mount_lock", identity: .inferred, kind: .spinlock, address: "0xffff2",
                                    stats: stats([(1024, 2048, 5)], total: 5 * 1500), byContainer: [keyed("c1", waitNs: 7500)])
        let others = extra.enumerated().map { index, name in
            LockProfile(name: name, identity: .caller, kind: .mutex, address: "0x\(index + 10)",
                        stats: stats([(1024, 2048, 1)], total: 1100), byContainer: [])
        }
        let containers = [
            ContainerSummary(id: "c1", runtime: "containerd", podUid: nil, cgroup: "", pod: "p1", contentions: 2,
                             totalWaitNs: 9500, p99WaitNs: 0),
            ContainerSummary(id: "c2", runtime: "containerd", podUid: nil, cgroup: "", pod: "p2", contentions: 1,
                             totalWaitNs: 4400, p99WaitNs: 0),
        ]
        let mounts = MountSummary(totalOps: 10, bySyscall: [syscall("mount", 6), syscall("umount2", 4)], byContainer: [
            ContainerMounts(id: "c1", runtime: "containerd", pod: "p1", ops: 7, bySyscall: [syscall("mount", 4), syscall("umount2", 3)]),
            ContainerMounts(id: "c2", runtime: "containerd", pod: "p2", ops: 3, bySyscall: [syscall("mount", 2), syscall("umount2", 1)]),
        ])
        return Profile(hostname: "node", kernel: "6.18", startedAt: "2026-12-07T05:00:00Z", durationNs: 2_000_000_000,
                       events: 20, drops: drops, recording: Recording(), topology: nil, containers: containers,
                       mounts: mounts, locks: [namespaceSem, mountLock] + others)
    }

    @Test func aWindowMapsToItsCounts() {
        var mapper = MetricsMapper(maxLocks: 200, maxContainers: 100)
        let metrics = mapper.map(Self.window())
        let sem = try! #require(metrics.lockWaits[.init(lock: "namespace_sem", kind: "rwsem")])
        #expect(sem.count == 4)
        #expect(sem.totalWaitNs == 400 + 6000 + (3 << 34))
        // 500 ns under 1.024 µs (index 0), 3000 ns under 4.096 µs (index 2), 2^35 ns only in +Inf.
        var expected = [UInt64](repeating: 0, count: WaitBuckets.boundsNs.count + 1)
        expected[0] = 1
        expected[2] = 2
        expected[WaitBuckets.boundsNs.count] = 1
        #expect(sem.counts == expected)
        #expect(metrics.lockWaits[.init(lock: "mount_lock", kind: "spinlock")]?.counts[1] == 5)
        #expect(metrics.mountSyscalls == ["mount": 6, "umount2": 4])
        let c1 = WindowMetrics.ContainerKey(container: "c1", pod: "p1"), c2 = WindowMetrics.ContainerKey(container: "c2", pod: "p2")
        #expect(metrics.containerMountSyscalls == [
            .init(container: c1, syscall: "mount"): 4, .init(container: c1, syscall: "umount2"): 3,
            .init(container: c2, syscall: "mount"): 2, .init(container: c2, syscall: "umount2"): 1,
        ])
        #expect(metrics.containerLockWaitNs == [
            .init(container: c1, lock: "namespace_sem"): 2000, .init(container: c2, lock: "namespace_sem"): 4400,
            .init(container: c1, lock: "mount_lock"): 7500,
        ])
        #expect(metrics.dropped["ringbuf_full"] == 3)
        #expect(metrics.dropped["stack_failed"] == 2)
        #expect(metrics.dropped.count == Drops.CodingKeys.allCases.count)
        #expect(metrics.overflow == ["locks": 0, "containers": 0])
    }

    /// Past --max-locks, new locks are summed under "other" (their kinds kept) and counted once a window
    /// each; the locks admitted first keep their own series in later windows.
    @Test func locksPastTheCapAreSummedUnderOther() {
        var mapper = MetricsMapper(maxLocks: 3, maxContainers: 100)
        let first = mapper.map(Self.window(locks: ["a+0x1", "b+0x2", "c+0x3"]))
        #expect(first.lockWaits[.init(lock: "a+0x1", kind: "mutex")]?.count == 1)
        let other = try! #require(first.lockWaits[.init(lock: "other", kind: "mutex")])
        #expect(other.count == 2)
        #expect(other.totalWaitNs == 2200)
        #expect(first.overflow["locks"] == 2)
        #expect(first.lockWaits[.init(lock: "b+0x2", kind: "mutex")] == nil)
        let second = mapper.map(Self.window(locks: ["a+0x1"]))
        #expect(second.lockWaits[.init(lock: "a+0x1", kind: "mutex")]?.count == 1)
        #expect(second.overflow["locks"] == 0)
    }

    /// Past --max-containers, containers (with their pods) are summed under container="other", pod="other".
    @Test func containersPastTheCapAreSummedUnderOther() {
        var mapper = MetricsMapper(maxLocks: 200, maxContainers: 1)
        let metrics = mapper.map(Self.window())
        let c1 = WindowMetrics.ContainerKey(container: "c1", pod: "p1")
        let other = WindowMetrics.ContainerKey(container: "other", pod: "other")
        #expect(metrics.containerLockWaitNs[.init(container: c1, lock: "namespace_sem")] == 2000)
        #expect(metrics.containerLockWaitNs[.init(container: other, lock: "namespace_sem")] == 4400)
        #expect(metrics.containerMountSyscalls[.init(container: other, syscall: "mount")] == 2)
        #expect(metrics.overflow["containers"] == 1)
        #expect(mapper.containers.count == 1)
    }

    /// A container idle for the given windows is let go: its series leave /metrics and its place in the
    /// table goes to the next new container, which is not summed under `other`.
    @Test func idleContainersAreLetGoAndMakeRoom() {
        let metrics = AgentMetrics(version: "9.9.9")
        var mapper = MetricsMapper(maxLocks: 200, maxContainers: 2, containerIdleWindows: 2)
        let idle = Profile(hostname: "node", kernel: "6.18", startedAt: "2026-12-07T05:00:02Z", durationNs: 2_000_000_000,
                           events: 0, drops: Drops(), recording: Recording(), topology: nil, containers: [], mounts: nil, locks: [])
        func render() -> String { String(decoding: metrics.render(), as: UTF8.self) }

        var window = mapper.map(Self.window())
        #expect(window.expiredContainers.isEmpty)
        metrics.add(window, endedAt: Date(timeIntervalSince1970: 1000))
        #expect(render().contains(#"lockscope_container_mount_syscalls_total{container="c1",pod="p1",syscall="mount"} 4"#))
        window = mapper.map(idle)
        #expect(window.expiredContainers.isEmpty, "one idle window is not enough")
        metrics.add(window, endedAt: Date(timeIntervalSince1970: 1002))
        window = mapper.map(idle)
        #expect(Set(window.expiredContainers) == [.init(container: "c1", pod: "p1"), .init(container: "c2", pod: "p2")])
        metrics.add(window, endedAt: Date(timeIntervalSince1970: 1004))
        #expect(!render().contains(#"container="c1""#) && !render().contains(#"container="c2""#), "\(render())")
        #expect(mapper.containers.count == 0)

        // Two new containers fit: nothing under "other".
        var next = Self.window()
        next.containers = next.containers.map { var container = $0; container.id += "-new"; return container }
        let rows = next.mounts?.byContainer ?? []
        next.mounts?.byContainer = rows.map { var row = $0; row.id += "-new"; return row }
        for index in next.locks.indices {
            next.locks[index].byContainer = next.locks[index].byContainer.map { KeyedStats(key: $0.key + "-new", stats: $0.stats) }
        }
        window = mapper.map(next)
        #expect(window.overflow["containers"] == 0)
        #expect(window.containerMountSyscalls[.init(container: .init(container: "c1-new", pod: "p1"), syscall: "mount")] == 4)
    }

    /// The values recorded one by one land in the right buckets and add up to the exact total.
    @Test func observationsKeepBucketsAndSum() {
        var histogram = WaitHistogram()
        histogram.add(Self.stats([(256, 512, 1), (2048, 4096, 2), (1 << 35, 1 << 36, 1)], total: 400 + 6000 + (3 << 34)))
        let observations = histogram.observations()
        let sum = observations.reduce(0.0) { $0 + $1.seconds * Double($1.count) }
        #expect(abs(sum - Double(histogram.totalWaitNs) / 1e9) < 1e-12)
        for observation in observations {
            let ns = observation.seconds * 1e9
            #expect(!WaitBuckets.boundsNs.contains { abs(Double($0) - ns) < 1 }, "\(ns) is on a bound")
        }
        #expect(observations.map(\.count) == [1, 2, 1])
        #expect(observations[0].seconds < WaitBuckets.boundsSeconds[0])
        #expect(observations[1].seconds > WaitBuckets.boundsSeconds[1] && observations[1].seconds < WaitBuckets.boundsSeconds[2])
        #expect(observations[2].seconds > WaitBuckets.boundsSeconds.last!)
    }

    /// What swift-prometheus renders after two windows: cumulative counts, the histogram's buckets
    /// cumulative by `le`, its exact `_sum`, and help and type lines for every metric.
    @Test func theExpositionAddsWindowsUp() throws {
        let metrics = AgentMetrics(version: "9.9.9")
        var mapper = MetricsMapper(maxLocks: 200, maxContainers: 100)
        let window = Self.window()
        metrics.add(mapper.map(window), endedAt: Date(timeIntervalSince1970: 1000))
        metrics.add(mapper.map(window), endedAt: Date(timeIntervalSince1970: 1002))
        metrics.addProgramRuns([("contention_end", 1_000, 10)])
        metrics.addProgramRuns([("contention_end", 3_000, 25)])
        let text = String(decoding: metrics.render(), as: UTF8.self)
        let samples = Dictionary(text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line -> (String, Double)? in
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { return nil }
            return (String(line[..<space]), value)
        }, uniquingKeysWith: { a, _ in a })
        #expect(samples[#"lockscope_lock_contentions_total{lock="namespace_sem",kind="rwsem"}"#] == 8)
        #expect(samples[#"lockscope_lock_wait_seconds_count{lock="namespace_sem",kind="rwsem"}"#] == 8)
        #expect(samples[#"lockscope_lock_wait_seconds_bucket{lock="namespace_sem",kind="rwsem",le="1.024e-06"}"#] == 2)
        #expect(samples[#"lockscope_lock_wait_seconds_bucket{lock="namespace_sem",kind="rwsem",le="4.096e-06"}"#] == 6)
        #expect(samples[#"lockscope_lock_wait_seconds_bucket{lock="namespace_sem",kind="rwsem",le="17.179869184"}"#] == 6)
        #expect(samples[#"lockscope_lock_wait_seconds_bucket{lock="namespace_sem",kind="rwsem",le="+Inf"}"#] == 8)
        let sum = try #require(samples[#"lockscope_lock_wait_seconds_sum{lock="namespace_sem",kind="rwsem"}"#])
        #expect(abs(sum - 2 * Double(400 + 6000 + (3 << 34)) / 1e9) < 1e-9)
        #expect(samples[#"lockscope_container_mount_syscalls_total{container="c1",pod="p1",syscall="mount"}"#] == 8)
        #expect(samples[#"lockscope_mount_syscalls_total{syscall="umount2"}"#] == 8)
        #expect(samples[#"lockscope_container_lock_wait_seconds_total{container="c2",pod="p2",lock="namespace_sem"}"#] == 2 * 4400e-9)
        #expect(samples[#"lockscope_events_dropped_total{reason="ringbuf_full"}"#] == 6)
        #expect(samples[#"lockscope_events_dropped_total{reason="task_map_full"}"#] == 0)
        #expect(samples[#"lockscope_cardinality_overflow_total{table="locks"}"#] == 0)
        #expect(samples[#"lockscope_bpf_program_runs_total{program="contention_end"}"#] == 25)
        #expect(samples[#"lockscope_bpf_program_run_seconds_total{program="contention_end"}"#] == 3e-6)
        #expect(samples[#"lockscope_window_end_timestamp_seconds"#] == 1002)
        #expect(samples[#"lockscope_build_info{version="9.9.9"}"#] == 1)
        for name in ["lockscope_lock_wait_seconds", "lockscope_lock_contentions_total", "lockscope_mount_syscalls_total",
                     "lockscope_container_mount_syscalls_total", "lockscope_container_lock_wait_seconds_total",
                     "lockscope_events_dropped_total", "lockscope_bpf_program_run_seconds_total",
                     "lockscope_bpf_program_runs_total", "lockscope_cardinality_overflow_total",
                     "lockscope_window_end_timestamp_seconds", "lockscope_build_info"] {
            #expect(text.contains("# HELP \(name) "), "\(name) has no help")
            #expect(text.contains("# TYPE \(name) "), "\(name) has no type")
        }
    }
}
