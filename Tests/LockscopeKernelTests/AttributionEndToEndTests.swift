import Foundation
import LockscopeCore
import LockscopeStress
import LockscopeTestSupport
import XCTest

@testable import LockscopeKernel

/// Real kernel, real containerd-shaped storm: mount syscalls issued by shims in the runtime's cgroup
/// are tied to the containers and pods they were for, by their paths.
extension EndToEndTests {
    private func containerdStorm(_ strategy: StressStrategy, readers: Int) throws -> StressOptions {
        var stress = try storm(strategy, style: .kubepods, containers: 12, layers: 6, parallel: 4)
        stress.runtime = .containerd
        stress.containersPerPod = 3
        stress.readers = readers
        return stress
    }

    /// Only waits inside mount syscalls are kept (the kernel filter), so every one of them must land on
    /// a storm container or its pod, none on containerd.service; each container's syscalls are counted
    /// exactly as stress issued them, under its own id and its shim's pod.
    func testContainerdStormsMountsAndTheirWaitsAreAttributedToContainersAndPods() throws {
        try requireBPF()
        for strategy in [StressStrategy.perLayer, .commonParent] {
            var options = RecordOptions()
            options.selection = .all
            options.bpf.filterByMountPath = true
            let stress = try containerdStorm(strategy, readers: 0)
            let (profile, result) = try record(options) { try StressRunner(options: stress).run() }
            XCTAssertEqual(result.failures, 0, "\(strategy)")
            let shims = try XCTUnwrap(result.shims)
            let podOfShim = Dictionary(shims.map { ($0.pid, $0.firstTaskID) }, uniquingKeysWith: { a, _ in a })
            let mounts = try XCTUnwrap(profile.mounts)
            let rows = Dictionary(mounts.byContainer.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            for container in result.containerList {
                let row = try XCTUnwrap(rows[container.id], "\(strategy): \(container.id) has no mount syscalls")
                XCTAssertEqual(row.attribution, .mountPath, "\(strategy)")
                XCTAssertEqual(row.pod, podOfShim[try XCTUnwrap(container.shimPID)], "\(strategy)")
                let counted = Dictionary(row.bySyscall.map { ($0.syscall, Int($0.stats.contentions)) }, uniquingKeysWith: +)
                XCTAssertEqual(counted, container.mountOpsBySyscall, "\(strategy): \(container.id)")
                let start = try XCTUnwrap(row.start, "\(strategy): \(container.id)")
                XCTAssertNotNil(start.setupNs, "\(strategy): the overlay on \(container.id) was mounted")
                XCTAssertGreaterThanOrEqual(start.inSyscallsNs, start.lockWaitNs)
            }
            // The shims' own syscalls (their private mount namespace) go to their pods, by issuer.
            for shim in shims {
                let row = try XCTUnwrap(rows["pod:" + shim.firstTaskID], "\(strategy): shim \(shim.pid)")
                XCTAssertEqual(row.attribution, .issuer)
                XCTAssertEqual(Dictionary(row.bySyscall.map { ($0.syscall, Int($0.stats.contentions)) }, uniquingKeysWith: +),
                               shim.mountOpsBySyscall, "\(strategy): shim \(shim.pid)")
            }
            XCTAssertEqual(mounts.unlinked, 0, "\(strategy): every held syscall and wait found its container")
            let runtimeCgroup = try XCTUnwrap(result.runtimeCgroup)
            XCTAssertNil(rows[runtimeCgroup], "\(strategy): mount syscalls left on the runtime cgroup")
            XCTAssertFalse(profile.containers.contains { $0.id == runtimeCgroup },
                           "\(strategy): waits inside mount syscalls left on the runtime cgroup")
            let attributed = profile.containers.filter { $0.attribution == .mountPath || $0.attribution == .issuer }
            XCTAssertGreaterThan(attributed.reduce(0) { $0 + $1.contentions }, 0, "\(strategy): no waits were attributed")
            // The waits inside each container's set-up are part of the container's waits (which also has its unmounts').
            for row in mounts.byContainer where row.attribution == .mountPath {
                let summary = profile.containers.first { $0.id == row.id }
                XCTAssertGreaterThanOrEqual(summary?.totalWaitNs ?? 0, row.start?.lockWaitNs ?? 0, "\(strategy): \(row.id)")
            }
            try checkTimeline(profile, containersStarted: result.containerList.count, "\(strategy)")
        }
    }

    /// The mountinfo readers issue no mount syscall: their namespace_sem waits make them victims, in
    /// their own cgroup (kubelet.service), behind the shims (named by their pods) that held the lock for
    /// writing, where the owner was read (a writer's owner field; readers queue behind it).
    func testMountinfoReadersAreVictimsWithNamespaceSemWait() throws {
        try requireBPF()
        let stress = try containerdStorm(.perLayer, readers: 2)
        var options = RecordOptions()
        options.selection = .all
        // Readers take namespace_sem for reading only when a writer holds it: storm until they wait.
        var readerVictim: Victim?
        var readerBehindShim = false
        var profile: Profile?
        for _ in 0..<8 where !readerBehindShim {
            let (recorded, result) = try record(options) { try StressRunner(options: stress).run() }
            XCTAssertEqual(result.failures, 0)
            let readersCgroup = try XCTUnwrap(result.readers?.cgroup)
            let pods = Set(try XCTUnwrap(result.shims).map { "pod:" + $0.firstTaskID })
            let readers: [Victim] = (recorded.victims ?? []).filter { victim in
                victim.container == readersCgroup
                    && victim.byLock.contains { $0.lock.hasPrefix(LockNamer.namespaceSem) && $0.totalWaitNs > 0 }
            }
            readerVictim = readerVictim ?? readers.first
            if let behind = readers.first(where: { $0.holders.contains { pods.contains($0.container) } }) {
                readerVictim = behind
                readerBehindShim = true
            }
            profile = recorded
        }
        let victim = try XCTUnwrap(readerVictim, "no reader waited on namespace_sem in 8 storms")
        XCTAssertTrue(readerBehindShim, "no reader's wait had a shim as the holder in 8 storms")
        XCTAssertEqual(victim.totalWaitNs, victim.byLock.reduce(0) { $0 + $1.totalWaitNs })
        XCTAssertGreaterThanOrEqual(victim.totalWaitNs, victim.maxWaitNs)
        // A victim issued no mount syscall: none of the shims is one.
        let recorded = try XCTUnwrap(profile)
        XCTAssertFalse(recorded.victims!.contains { $0.process.hasPrefix("containerd-shim") },
                       "\(recorded.victims!.map { ($0.process, $0.container, $0.byLock.map(\.lock)) })")
        try checkTimeline(recorded, containersStarted: stress.containers, "with readers")
        // The timeline counts a process as a victim until its first mount syscall, the list only if it never mounts.
        let victimsWait = recorded.timeline!.bins.reduce(0) { $0 + $1.victimWaitNs }
        XCTAssertGreaterThanOrEqual(victimsWait, recorded.victims!.reduce(0) { $0 + $1.totalWaitNs })
    }

    /// The default mode (`--locks mount`), run from a script (no terminal), keeps every wait on
    /// namespace_sem and mount_lock from the first one, the mountinfo readers' outside mount syscalls
    /// included: for every shim and every reader, its waits on each lock equal an independent bpftrace
    /// count by process in the same run (they all live within the recording: it starts before the storm
    /// and stops after it). bpftrace runs a little longer than the recording, so another process's wait
    /// just before or after it (a compiler's path walk on mount_lock, say) may be in its count only: for
    /// the other processes and the lock's total, lockscope's count is at most bpftrace's.
    func testDefaultModeKeepsEveryMountLockWaitFromTheFirstOne() throws {
        try requireBPF()
        let binary = try LockscopeBinary.path()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-early-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("profile.json").path
        var compared: Set<String> = []
        var readersWaited = false
        for attempt in 0..<4 where compared.count < 2 || !readersWaited {
            let bpftrace = try IndependentCounter.start()
            defer { bpftrace.stop() }
            let run = try LockscopeRun.run(["record", "--quiet", "--no-report", "-o", output, "--", binary, "stress",
                                            "--runtime", "containerd", "--containers", "32", "--containers-per-pod", "8",
                                            "--layers", "20", "--parallel", "8", "--readers", "4", "--json"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let counted = try bpftrace.finish()
            let profile = try Profile.decode(Data(contentsOf: URL(fileURLWithPath: output)))
            XCTAssertEqual(profile.drops.provisionalOverflow, 0)
            let stress = try JSONDecoder().decode(StressResult.self, from: Data(run.stdout.utf8))
            let readers = try XCTUnwrap(stress.readers?.pids)
            XCTAssertEqual(readers.count, 4)
            let stormProcesses = try XCTUnwrap(stress.shims).map(\.pid) + readers
            for name in [LockNamer.namespaceSem, LockNamer.mountLock] {
                guard let lock = profile.locks.first(where: { $0.name == name }), lock.stats.contentions >= 10 else { continue }
                let address = try XCTUnwrap(UInt64(lock.address.dropFirst(2), radix: 16))
                let reference = try XCTUnwrap(counted[address], "bpftrace never saw \(name)").count
                XCTAssertLessThanOrEqual(lock.stats.contentions, reference, "attempt \(attempt): \(name)")
                // Every storm process's waits, exactly (by_process keys are `comm[pid]`); no other process's
                // more than bpftrace saw.
                XCTAssertFalse(lock.byProcess.contains { $0.key == Aggregator.otherProcessesKey },
                               "more processes than by_process keeps: the per-process comparison needs them all")
                let kept = Dictionary(lock.byProcess.compactMap { entry -> (Int32, UInt64)? in
                    guard let open = entry.key.lastIndex(of: "["), let pid = Int32(entry.key[entry.key.index(after: open)...].dropLast())
                    else { return nil }
                    return (pid, entry.stats.contentions)
                }, uniquingKeysWith: +)
                let independent = bpftrace.byProcess[address] ?? [:]
                for pid in stormProcesses {
                    XCTAssertEqual(kept[pid] ?? 0, independent[pid] ?? 0, "attempt \(attempt): \(name), process \(pid)")
                }
                for (pid, count) in kept {
                    XCTAssertLessThanOrEqual(count, independent[pid] ?? 0, "attempt \(attempt): \(name), process \(pid)")
                }
                XCTAssertGreaterThan(stormProcesses.reduce(0) { $0 + (independent[$1] ?? 0) }, 0, "attempt \(attempt): \(name)")
                compared.insert(name)
            }
            readersWaited = readersWaited || profile.victims?.contains { victim in
                victim.container.hasSuffix("kubelet.service") && victim.byLock.contains { $0.lock == LockNamer.namespaceSem }
            } == true
        }
        XCTAssertEqual(compared, [LockNamer.namespaceSem, LockNamer.mountLock], "not both contended in 4 storms")
        XCTAssertTrue(readersWaited, "the mountinfo readers' namespace_sem waits were not kept in 4 storms")
    }

    /// The simple runtime's containers mount from their own cgroups: attributed by cgroup, as before.
    func testSimpleRuntimeStormIsAttributedByCgroup() throws {
        try requireBPF()
        var options = RecordOptions()
        options.selection = .all
        let stress = try storm(.perLayer, style: .docker, containers: 8, layers: 5)
        let (profile, result) = try record(options) { try StressRunner(options: stress).run() }
        XCTAssertEqual(result.failures, 0)
        let rows = Dictionary(try XCTUnwrap(profile.mounts).byContainer.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for container in result.containerList {
            let row = try XCTUnwrap(rows[container.id])
            XCTAssertEqual(row.attribution, .cgroup)
            XCTAssertEqual(Int(row.ops), container.mountOps)
        }
        try checkTimeline(profile, containersStarted: 0, "simple runtime")
    }

    /// The timeline's bins add up to the profile's totals.
    private func checkTimeline(_ profile: Profile, containersStarted: Int, _ context: String) throws {
        let timeline = try XCTUnwrap(profile.timeline, context)
        XCTAssertEqual(timeline.bins.reduce(0) { $0 + $1.mountOps }, profile.mounts?.totalOps ?? 0, context)
        XCTAssertEqual(Int(timeline.bins.reduce(0) { $0 + $1.containersStarted }), containersStarted, context)
        XCTAssertEqual(timeline.bins.reduce(0) { $0 + $1.totalWaitNs }, profile.locks.reduce(0) { $0 + $1.stats.totalWaitNs },
                       context)
        XCTAssertEqual(timeline.bins.reduce(0) { $0 + $1.namespaceSemWaitNs },
                       profile.locks.filter { MountLockClass(lockName: $0.name) == .namespaceSem }.reduce(0) { $0 + $1.stats.totalWaitNs },
                       context)
        XCTAssertEqual(timeline.bins.reduce(0) { $0 + $1.mountLockWaitNs },
                       profile.locks.filter { MountLockClass(lockName: $0.name) == .mountLock }.reduce(0) { $0 + $1.stats.totalWaitNs },
                       context)
        XCTAssertEqual(timeline.bins.map(\.startNs), timeline.bins.indices.map { UInt64($0) * timeline.binNs }, context)
    }
}
