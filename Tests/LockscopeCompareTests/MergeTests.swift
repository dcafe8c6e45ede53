import Foundation
import LockscopeCore
import XCTest
@testable import LockscopeCompare

/// `lockscope merge`: two hosts' profiles as one, with exact expected figures.
final class MergeTests: XCTestCase {
    /// Waits with explicit buckets and percentiles, as a recorder writes them.
    private func stats(_ count: UInt64, total: UInt64, min: UInt64, max: UInt64, p50: UInt64, p90: UInt64, p99: UInt64,
                       buckets: [(UInt64, UInt64)]) -> WaitStats {
        WaitStats(contentions: count, totalWaitNs: total, minWaitNs: min, maxWaitNs: max, p50WaitNs: p50, p90WaitNs: p90,
                  p99WaitNs: p99, p999WaitNs: p99,
                  histogram: buckets.map { HistogramBucket(lowerNs: $0.0, upperNs: $0.0 * 2, count: $0.1) })
    }

    /// Host a: waits of 1000, 1200 and 3000 ns on namespace_sem, one wait on mount_lock.
    private func hostA() -> Profile {
        let sem = stats(3, total: 5200, min: 1000, max: 3000, p50: 1200, p90: 3000, p99: 3000,
                        buckets: [(512, 1), (1024, 1), (2048, 1)])
        let mountLock = stats(1, total: 700, min: 700, max: 700, p50: 700, p90: 700, p99: 700, buckets: [(512, 1)])
        var drops = Drops()
        drops.ringbufFull = 2
        drops.stackFailed = 1
        return Profile(
            hostname: "node-a", kernel: "6.18.0", startedAt: "2026-01-01T10:00:05.250Z", durationNs: 5_000_000_000,
            events: 10, drops: drops, recording: Recording(locks: "mount", command: ["stress"]), topology: nil,
            containers: [ContainerSummary(id: "ctr1", runtime: "containerd", podUid: nil, cgroup: "/a", contentions: 2,
                                          totalWaitNs: 2200, p99WaitNs: 1200)],
            mounts: MountSummary(totalOps: 4, bySyscall: [SyscallStats(syscall: "mount", stats: mountLock, errors: 1)],
                                 byContainer: [ContainerMounts(id: "ctr1", runtime: "containerd", ops: 4, bySyscall: [])]),
            locks: [
                LockProfile(name: "namespace_sem", identity: .inferred, kind: .rwsem, address: "0xffffffff8a000000",
                            stats: sem,
                            stacks: [StackProfile(frames: ["down_write", "do_mount"], count: 3, totalWaitNs: 5200, maxWaitNs: 3000,
                                                  contexts: [StackContext(cpu: 0, container: "ctr1", count: 3, totalWaitNs: 5200)])],
                            byCpu: [KeyedStats(key: "0", stats: sem)], byContainer: [KeyedStats(key: "ctr1", stats: sem)],
                            byProcess: [KeyedStats(key: "runc[10]", stats: sem)]),
                LockProfile(name: "mount_lock", identity: .inferred, kind: .spinlock, address: "0xffffffff8a000100",
                            stats: mountLock),
            ],
            victims: [Victim(process: "systemd[1]", container: "host", contentions: 1, totalWaitNs: 1000, maxWaitNs: 1000,
                             byLock: [], holders: [Holder(process: "runc[10]", container: "ctr1", contentions: 1, totalWaitNs: 1000)])],
            timeline: Timeline(binNs: 1_000_000_000, bins: [TimelineBin(startNs: 0, mountOps: 2, namespaceSemWaitNs: 4000),
                                                             TimelineBin(startNs: 1_000_000_000, mountOps: 2, namespaceSemWaitNs: 1200)]))
    }

    /// Host b: ten waits between 1100 and 1900 ns on namespace_sem.
    private func hostB() -> Profile {
        let sem = stats(10, total: 15000, min: 1100, max: 1900, p50: 1700, p90: 1800, p99: 1900, buckets: [(1024, 10)])
        var drops = Drops()
        drops.ringbufFull = 3
        return Profile(
            hostname: "node-b", kernel: "6.18.0", startedAt: "2026-01-01T10:00:01Z", durationNs: 8_000_000_000,
            events: 20, drops: drops, recording: Recording(locks: "mount", command: ["stress"]), topology: nil,
            containers: [ContainerSummary(id: "ctr2", runtime: "containerd", podUid: nil, cgroup: "/b", contentions: 10,
                                          totalWaitNs: 15000, p99WaitNs: 1900)],
            mounts: MountSummary(totalOps: 6, bySyscall: [SyscallStats(syscall: "mount", stats: sem, errors: 0)],
                                 byContainer: [ContainerMounts(id: "ctr2", runtime: "containerd", ops: 6, bySyscall: [])]),
            locks: [
                LockProfile(name: "namespace_sem", identity: .inferred, kind: .rwsem, address: "0xffffffff8b000000",
                            stats: sem,
                            stacks: [StackProfile(frames: ["down_write", "do_mount"], count: 10, totalWaitNs: 15000, maxWaitNs: 1900,
                                                  contexts: [StackContext(cpu: 0, container: "ctr2", count: 10, totalWaitNs: 15000)])],
                            byCpu: [KeyedStats(key: "0", stats: sem)], byContainer: [KeyedStats(key: "ctr2", stats: sem)],
                            byProcess: [KeyedStats(key: "runc[10]", stats: sem)]),
            ],
            timeline: Timeline(binNs: 1_000_000_000, bins: [TimelineBin(startNs: 0, mountOps: 6, namespaceSemWaitNs: 15000)]))
    }

    private func merged() throws -> Profile {
        try ProfileMerge.merge([MergeInput(source: "a.json", profile: hostA()), MergeInput(source: "b.json", profile: hostB())])
    }

    /// A stack is its kernel frames and its user frames: stacks that share kernel frames but were reached
    /// from different user code stay apart; the same user and kernel frames on two hosts are one stack.
    func testStacksMergeByKernelAndUserFrames() throws {
        var a = hostA(), b = hostB()
        a.locks[0].stacks[0].userFrames = ["issue_syscall", "prepare_idmapped_overlay", "main"]
        b.locks[0].stacks[0].count = 6
        b.locks[0].stacks[0].totalWaitNs = 9000
        b.locks[0].stacks[0].contexts[0].count = 6
        b.locks[0].stacks[0].contexts[0].totalWaitNs = 9000
        var sameUser = b.locks[0].stacks[0]
        sameUser.userFrames = ["issue_syscall", "prepare_idmapped_overlay", "main"]
        sameUser.count = 4
        sameUser.totalWaitNs = 6000
        sameUser.contexts = [StackContext(cpu: 1, container: "ctr2", count: 4, totalWaitNs: 6000)]
        b.locks[0].stacks.append(sameUser)
        let merged = try ProfileMerge.merge([MergeInput(source: "a.json", profile: a), MergeInput(source: "b.json", profile: b)])
        let stacks = merged.locks.first { $0.name == "namespace_sem" }!.stacks
        XCTAssertEqual(stacks.map(\.frames), [["down_write", "do_mount"], ["down_write", "do_mount"]])
        XCTAssertEqual(stacks.map(\.userFrames), [["issue_syscall", "prepare_idmapped_overlay", "main"], nil])
        XCTAssertEqual(stacks.map(\.count), [7, 6])
        XCTAssertEqual(stacks.map(\.totalWaitNs), [11200, 9000])
    }

    func testLockTotalsAreTheSumsAndByHostHasEachHostsOwn() throws {
        let profile = try merged()
        XCTAssertEqual(profile.locks.map(\.name), ["namespace_sem", "mount_lock"])
        let sem = profile.locks[0]
        XCTAssertEqual(sem.stats.contentions, 13)
        XCTAssertEqual(sem.stats.totalWaitNs, 20200)
        XCTAssertEqual(sem.stats.minWaitNs, 1000)
        XCTAssertEqual(sem.stats.maxWaitNs, 3000)
        XCTAssertEqual(sem.stats.histogram, [HistogramBucket(lowerNs: 512, upperNs: 1024, count: 1),
                                             HistogramBucket(lowerNs: 1024, upperNs: 2048, count: 11),
                                             HistogramBucket(lowerNs: 2048, upperNs: 4096, count: 1)])
        // Percentiles from the merged buckets: the 7th of 13 waits is the 6th of 11 in [1024, 2048),
        // 1024 + 6/11 × 1024 = 1583; the 12th is that bucket's top, 2048. p99, the 13th, is in
        // [2048, 4096) but never above the highest host's p99 (3000), where the true value lies.
        XCTAssertEqual(sem.stats.p50WaitNs, 1583)
        XCTAssertEqual(sem.stats.p90WaitNs, 2048)
        XCTAssertEqual(sem.stats.p99WaitNs, 3000)
        XCTAssertEqual(sem.byHost, [KeyedStats(key: "node-a", stats: hostA().locks[0].stats),
                                    KeyedStats(key: "node-b", stats: hostB().locks[0].stats)])
        XCTAssertEqual(sem.byHost?.map(\.stats.contentions), [3, 10])
        XCTAssertEqual(sem.byHost?.map(\.stats.totalWaitNs), [5200, 15000])
        XCTAssertEqual(sem.address, "0xffffffff8b000000", "the most-waited host's address")
        XCTAssertEqual(sem.instances, 2)

        let mountLock = profile.locks[1]
        XCTAssertEqual(mountLock.stats, hostA().locks[1].stats)
        XCTAssertEqual(mountLock.byHost, [KeyedStats(key: "node-a", stats: hostA().locks[1].stats)])
    }

    func testHostSpecificKeysArePrefixedAndSharedOnesMerged() throws {
        let sem = try merged().locks[0]
        XCTAssertEqual(sem.byCpu.map(\.key), ["node-a/0", "node-b/0"])
        XCTAssertEqual(sem.byProcess.map(\.key), ["node-a/runc[10]", "node-b/runc[10]"])
        XCTAssertEqual(sem.byContainer.map(\.key), ["ctr2", "ctr1"])
        XCTAssertEqual(sem.stacks.count, 1)
        XCTAssertEqual(sem.stacks[0].count, 13)
        XCTAssertEqual(sem.stacks[0].totalWaitNs, 20200)
        XCTAssertEqual(sem.stacks[0].maxWaitNs, 3000)
        XCTAssertEqual(sem.stacks[0].contexts, [StackContext(cpu: 0, container: "ctr2", count: 10, totalWaitNs: 15000),
                                                StackContext(cpu: 0, container: "ctr1", count: 3, totalWaitNs: 5200)])
    }

    func testRecordingWideFields() throws {
        let profile = try merged()
        XCTAssertEqual(profile.hostname, "merged:2 hosts")
        XCTAssertEqual(profile.kernel, "6.18.0")
        XCTAssertEqual(profile.startedAt, "2026-01-01T10:00:01Z", "the earliest start")
        XCTAssertEqual(profile.durationNs, 8_000_000_000, "the longest recording")
        XCTAssertEqual(profile.events, 30)
        XCTAssertEqual(profile.drops.ringbufFull, 5)
        XCTAssertEqual(profile.drops.stackFailed, 1)
        XCTAssertEqual(profile.dropped, 5)
        XCTAssertEqual(profile.recording.locks, "mount")
        XCTAssertEqual(profile.recording.command, ["stress"])
        XCTAssertNil(profile.topology)
        XCTAssertEqual(profile.containers.map(\.id), ["ctr2", "ctr1"])
        XCTAssertEqual(profile.mounts?.totalOps, 10)
        XCTAssertEqual(profile.mounts?.bySyscall.map(\.stats.contentions), [11])
        XCTAssertEqual(profile.mounts?.bySyscall.map(\.errors), [1])
        XCTAssertEqual(profile.mounts?.byContainer.map(\.id), ["ctr2", "ctr1"])
        XCTAssertEqual(profile.victims?.map(\.process), ["node-a/systemd[1]"])
        XCTAssertEqual(profile.victims?.first?.holders.map(\.process), ["node-a/runc[10]"])
        XCTAssertEqual(profile.timeline?.bins.map(\.mountOps), [8, 2])
        XCTAssertEqual(profile.timeline?.bins.map(\.namespaceSemWaitNs), [19000, 1200])
    }

    func testTheMergeReadsBackAndDiffsAgainstAHost() throws {
        let directory = try temporaryDirectory(self)
        try hostA().write(to: directory + "/a.json")
        try hostB().write(to: directory + "/b.json")
        let written = try ProfileMerge.run(paths: [directory + "/a.json", directory + "/b.json"], output: directory + "/fleet.json")
        let read = try Profile.load(path: directory + "/fleet.json")
        XCTAssertEqual(read, written)
        XCTAssertEqual(read.locks[0].byHost?.map(\.key), ["node-a", "node-b"])
        let comparison = try Comparison(base: hostA(), current: read, baseSource: "a.json", currentSource: "fleet.json",
                                        settings: ComparisonSettings())
        XCTAssertEqual(Set(comparison.subjects.map(\.subject.lock)), ["namespace_sem", "mount_lock"])
        XCTAssertEqual(comparison.subjects.first { $0.subject.lock == "namespace_sem" }?.currentContentions, 13)
    }

    func testRefusals() throws {
        func refusal(_ inputs: [MergeInput]) -> String? {
            do {
                _ = try ProfileMerge.merge(inputs)
                return nil
            } catch {
                return (error as? UserError)?.description
            }
        }
        XCTAssertEqual(refusal([MergeInput(source: "a.json", profile: hostA()), MergeInput(source: "again.json", profile: hostA())]),
                       "a.json and again.json are both from host node-a: give one profile per host (by_host and the host/cpu keys tell hosts apart by name)")
        let fleet = try merged()
        XCTAssertEqual(refusal([MergeInput(source: "fleet.json", profile: fleet), MergeInput(source: "a.json", profile: hostA())]),
                       "fleet.json is already a merge (its locks have by_host): merge the hosts' own profiles instead")
        XCTAssertEqual(refusal([]), "give the profiles to merge, one per host: lockscope merge A.json B.json -o fleet.json")
        var late = hostB()
        late.startedAt = "yesterday"
        XCTAssertEqual(refusal([MergeInput(source: "a.json", profile: hostA()), MergeInput(source: "b.json", profile: late)]),
                       "b.json: started_at \"yesterday\" is not an RFC 3339 time; the merge aligns recordings by their start")
        var coarse = hostB()
        coarse.timeline?.binNs = 2_000_000_000
        XCTAssertEqual(refusal([MergeInput(source: "a.json", profile: hostA()), MergeInput(source: "b.json", profile: coarse)]),
                       "b.json's timeline has 2000000000 ns bins, the others' 1000000000 ns: timelines merge only with bins of one width")
    }

    /// Sampled spin and on-CPU samples: summed, the estimate and interval computed again from the summed samples
    /// at the one period; CPUs and processes keyed by host, containers merged; refused at two rates.
    func testSpinAndSamplesMerge() throws {
        let period: UInt64 = 1_003_009
        func sampled(_ profile: Profile, spin samples: UInt64, inside: UInt64?, container: String, hz: Int = 997,
                     periodNs: UInt64 = period) -> Profile {
            var profile = profile
            let index = try! XCTUnwrap(profile.locks.firstIndex { $0.name == "namespace_sem" })
            profile.locks[index].spin = SpinProfile(
                periodNs: periodNs, time: SampledTime(samples: samples, periodNs: periodNs), spinFunctionSamples: samples - 1,
                pauseSamples: 1, insideWaitSamples: inside, byCpu: [KeyedSamples(key: "0", samples: samples)],
                bySocket: [KeyedSamples(key: "0", samples: samples)], byContainer: [KeyedSamples(key: container, samples: samples)],
                byProcess: [KeyedSamples(key: "runc[10]", samples: samples)],
                stacks: [SampledStack(frames: ["osq_lock", "down_write"], samples: samples, sampleClass: .spinFunction)])
            var counters = SampleCounters()
            counters.samples = samples * 10
            counters.kernel = samples * 10
            counters.inWait = inside ?? 0
            profile.cpuSamples = CPUSampleProfile(
                hz: hz, periodNs: periodNs, counters: counters,
                byClass: [KeyedSamples(key: "spin_function", samples: samples - 1), KeyedSamples(key: "pause", samples: 1),
                          KeyedSamples(key: "kernel", samples: samples * 9)],
                unattributedSpin: 0,
                stacks: [SampledStack(frames: ["osq_lock", "down_write"], samples: samples, sampleClass: .spinFunction, process: "runc"),
                         SampledStack(frames: ["ksys_read"], samples: samples * 9, sampleClass: .kernel, process: "runc")])
            return profile
        }
        let a = sampled(hostA(), spin: 150, inside: 50, container: "ctr1")
        let b = sampled(hostB(), spin: 90, inside: 10, container: "ctr1")
        let merged = try ProfileMerge.merge([MergeInput(source: "a.json", profile: a), MergeInput(source: "b.json", profile: b)])
        let spin = try XCTUnwrap(merged.locks.first { $0.name == "namespace_sem" }?.spin)
        // 240 samples: the example of docs/profile-format.md, 180 outside waits and 60 inside.
        XCTAssertEqual(spin.time, SampledTime(samples: 240, periodNs: period))
        XCTAssertEqual([spin.time.estimatedNs, spin.time.ciLowNs, spin.time.ciHighNs], [240_722_160, 210_266_605, 271_177_715])
        XCTAssertEqual(spin.outsideWaits?.samples, 180)
        XCTAssertEqual(spin.insideWaits, SampledTime(samples: 60, periodNs: period))
        XCTAssertEqual([spin.spinFunctionSamples, spin.pauseSamples], [238, 2])
        XCTAssertEqual(spin.byCpu, [KeyedSamples(key: "node-a/0", samples: 150), KeyedSamples(key: "node-b/0", samples: 90)])
        XCTAssertEqual(spin.byProcess.map(\.key), ["node-a/runc[10]", "node-b/runc[10]"])
        XCTAssertEqual(spin.byContainer, [KeyedSamples(key: "ctr1", samples: 240)])
        XCTAssertEqual(spin.stacks, [SampledStack(frames: ["osq_lock", "down_write"], samples: 240, sampleClass: .spinFunction)])
        let samples = try XCTUnwrap(merged.cpuSamples)
        XCTAssertEqual([samples.counters.samples, samples.counters.kernel, samples.counters.inWait], [2400, 2400, 60])
        XCTAssertEqual(samples.samples(.kernel), 2160)
        XCTAssertEqual(samples.stacks.map { "\($0.process ?? "") \($0.samples)" },
                       ["node-a/runc 1350", "node-b/runc 810", "node-a/runc 150", "node-b/runc 90"])
        // Written and read back.
        XCTAssertEqual(try Profile.decode(Profile.makeEncoder().encode(merged)), merged)

        // A host without sampling adds nothing; a host that did not tell inside from outside leaves the parts out.
        let mixed = try ProfileMerge.merge([MergeInput(source: "a.json", profile: a), MergeInput(source: "b.json", profile: hostB())])
        XCTAssertEqual(mixed.locks.first { $0.name == "namespace_sem" }?.spin?.time.samples, 150)
        let older = sampled(hostB(), spin: 90, inside: nil, container: "ctr2")
        let unsplit = try ProfileMerge.merge([MergeInput(source: "a.json", profile: a), MergeInput(source: "b.json", profile: older)])
        XCTAssertNil(unsplit.locks.first { $0.name == "namespace_sem" }?.spin?.insideWaits)

        let fast = sampled(hostB(), spin: 90, inside: 10, container: "ctr1", hz: 4999, periodNs: 200_040)
        XCTAssertThrowsError(try ProfileMerge.merge([MergeInput(source: "a.json", profile: a), MergeInput(source: "b.json", profile: fast)])) {
            XCTAssertEqual(($0 as? UserError)?.description, "a.json sampled at 997 Hz and b.json at 4999 Hz: spin is summed as samples x period, "
                           + "so merge recordings made with the same --spin-hz")
        }
    }

    /// `lockscope redact` on a merge: the hostnames in by_host, host/... keys and victims are pseudonymized too.
    func testRedactionCoversTheHostsOfAMerge() throws {
        let redacted = Redactor(key: Data("secret".utf8)).redact(try merged())
        let json = String(decoding: try redacted.encoded(), as: UTF8.self)
        XCTAssertFalse(json.contains("node-a") || json.contains("node-b"), json)
        let hostA = Redactor(key: Data("secret".utf8)).redact(hostA()).hostname
        XCTAssertEqual(redacted.locks[0].byHost?.first { $0.stats.contentions == 3 }?.key, hostA)
        XCTAssertTrue(redacted.locks[0].byCpu.contains { $0.key == hostA + "/0" })
        XCTAssertTrue(redacted.victims?.first?.process.hasPrefix(hostA + "/systemd[") ?? false)
    }
}
