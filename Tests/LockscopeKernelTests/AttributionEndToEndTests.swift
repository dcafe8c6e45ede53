import CLockscopeBPF
import Foundation
import LockscopeCore
import LockscopeStress
import LockscopeTestSupport
import XCTest

@testable import LockscopeKernel

/// Real kernel, real containerd-shaped storm: mount syscalls issued by shims in the runtime's cgroup
/// are tied to the containers and pods they were for, by their paths.
extension EndToEndTests {
    private func containerdStorm(_ strategy: StressStrategy, readers: Int, containers: Int = 12, layers: Int = 6,
                                 parallel: Int = 4, containersPerPod: Int = 3) throws -> StressOptions {
        var stress = try storm(strategy, style: .kubepods, containers: containers, layers: layers, parallel: parallel)
        stress.runtime = .containerd
        stress.containersPerPod = containersPerPod
        stress.readers = readers
        return stress
    }

    /// Storms recorded per strategy, at most, until the mountinfo readers wait on namespace_sem. Every
    /// other check holds on every storm; only this one is retried: a reader waits only when it finds a
    /// writer holding namespace_sem, which is held for microseconds, and on 2 CPUs the writer often
    /// runs alone (or the reader wins by spinning, which is no contention event).
    static let readerAttempts = 6

    /// The acceptance of issue 17, for both strategies, with mountinfo readers: every container's
    /// mount syscalls are attributed to its own id and its shim's pod with counts equal to what stress
    /// issued (`checkContainerdAttribution`), the waits inside them to containers, not to the runtime's
    /// cgroup, the readers are victims with namespace_sem wait, and the timeline sums to the totals.
    func testContainerdStormsMountsAndTheirWaitsAreAttributedToContainersAndPods() throws {
        try requireBPF()
        for strategy in [StressStrategy.perLayer, .commonParent] {
            var options = RecordOptions()
            options.selection = .all  // the readers' waits too, outside mount syscalls
            let stress = try containerdStorm(strategy, readers: 2)
            var readersWaited = false
            for attempt in 0..<Self.readerAttempts where !readersWaited {
                let context = "\(strategy), storm \(attempt + 1)"
                let (profile, result) = try record(options) { try StressRunner(options: stress).run() }
                try checkContainerdAttribution(profile, result, context)
                let readers = try readerVictims(profile, result, context)
                readersWaited = !readers.isEmpty
                for victim in readers {
                    XCTAssertEqual(victim.totalWaitNs, victim.byLock.reduce(0) { $0 + $1.totalWaitNs }, context)
                    XCTAssertGreaterThanOrEqual(victim.totalWaitNs, victim.maxWaitNs, context)
                }
            }
            XCTAssertTrue(readersWaited, "\(strategy): no reader waited on namespace_sem in \(Self.readerAttempts) storms")
        }
    }

    /// More layers than fit in a page of overlay options: the shim names them relative to their common
    /// parent, its working directory for the mount (as containerd's mount.All does), so the options name no
    /// `ovl-idmapped` directory; the mount's working directory, which the kernel side keeps, ties the
    /// idmapped layers to the container all the same: exact counts, nothing left unlinked. Both
    /// strategies under the default scratch directory (the working directory kept whole), and per-layer
    /// under one deeper than the names kept (known by its last names only, matched by them).
    func testCompactedOverlayOptionsAreAttributedThroughTheWorkingDirectory() throws {
        try requireBPF()
        let deep = StressOptions.defaultScratchParent + "/lockscope-cwd-\(getpid())/a/b/c/d"
        try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: StressOptions.defaultScratchParent + "/lockscope-cwd-\(getpid())") }
        let runs: [(StressStrategy, String)] = [(.perLayer, StressOptions.defaultScratchParent),
                                                (.commonParent, StressOptions.defaultScratchParent), (.perLayer, deep)]
        for (strategy, scratchParent) in runs {
            // The run's root is <parent>/lockscope-stress-<8 hex digits> (26 characters more).
            let layers = (1...StressOptions.maxLayers).first {
                Self.shortestPerLayerOptions(root: scratchParent + String(repeating: "x", count: 26), layers: $0) > Self.pageOfOptions
            }
            let layerCount = try XCTUnwrap(layers, "no layer count fills a page below \(scratchParent)")
            let context = "\(strategy) under \(scratchParent), \(layerCount) layers"
            var options = RecordOptions()
            options.selection = .all
            options.bpf.filterByMountPath = true
            var stress = try containerdStorm(strategy, readers: 0, containers: 6, layers: layerCount, parallel: 3,
                                             containersPerPod: 2)
            stress.scratchParent = scratchParent
            let storm = stress
            let (profile, result) = try record(options) { try StressRunner(options: storm).run() }
            // The stress compacted the options: even the shortest they could be (one-digit idmap directory
            // names; common-parent's entries are longer still) is more than mount(2) copies.
            XCTAssertGreaterThan(Self.shortestPerLayerOptions(root: result.scratchDirectory, layers: layerCount), Self.pageOfOptions,
                                 context)
            // Whether the mount's working directory, <root>/tmp/ovl-idmappedXXXX, has more names than the kernel side keeps.
            let names = result.scratchDirectory.split(separator: "/").count + 2
            XCTAssertEqual(names > Int(LOCKSCOPE_CWD_LEVELS), scratchParent == deep, "\(context): \(names) names")
            try checkContainerdAttribution(profile, result, context)
            XCTAssertEqual(profile.drops.pathsTruncated, 0, "\(context): no working-directory name was cut")
        }
    }

    /// What mount(2) copies of its options, as the stress's shim decides to compact them (ContainerdShim).
    static let pageOfOptions = 4095

    /// The shortest per-layer overlay options the shim could pass uncompacted for `layers` layers under
    /// `root`: `lowerdir=` and the entries `<root>/tmp/ovl-idmapped<at least one digit>/<i>`, joined by `:`.
    static func shortestPerLayerOptions(root: String, layers: Int) -> Int {
        let entries = (0..<layers).reduce(0) { $0 + "\(root)/tmp/ovl-idmapped0/\($1)".utf8.count }
        return "lowerdir=".utf8.count + entries + (layers - 1)
    }

    /// Every container's mount syscalls under its own id (`mount-path`) and its shim's pod, counted by
    /// syscall exactly as the shim's thread issued them; the shims' own syscalls under their pods
    /// (`issuer`); nothing held unlinked; no mount syscall, and no wait inside one (a stack through a
    /// mount-family syscall's entry point), left on the runtime's cgroup; the timeline sums to the totals.
    private func checkContainerdAttribution(_ profile: Profile, _ result: StressResult, _ context: String) throws {
        XCTAssertEqual(result.failures, 0, context)
        let shims = try XCTUnwrap(result.shims, context)
        let podOfShim = Dictionary(shims.map { ($0.pid, $0.firstTaskID) }, uniquingKeysWith: { a, _ in a })
        let mounts = try XCTUnwrap(profile.mounts, context)
        let rows = Dictionary(mounts.byContainer.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for container in result.containerList {
            let row = try XCTUnwrap(rows[container.id], "\(context): \(container.id) has no mount syscalls")
            XCTAssertEqual(row.attribution, .mountPath, context)
            XCTAssertEqual(row.pod, podOfShim[try XCTUnwrap(container.shimPID)], context)
            let counted = Dictionary(row.bySyscall.map { ($0.syscall, Int($0.stats.contentions)) }, uniquingKeysWith: +)
            XCTAssertEqual(counted, container.mountOpsBySyscall, "\(context): \(container.id)")
            let start = try XCTUnwrap(row.start, "\(context): \(container.id)")
            XCTAssertNotNil(start.setupNs, "\(context): the overlay on \(container.id) was mounted")
            XCTAssertGreaterThanOrEqual(start.inSyscallsNs, start.lockWaitNs, context)
        }
        for shim in shims {
            let row = try XCTUnwrap(rows["pod:" + shim.firstTaskID], "\(context): shim \(shim.pid)")
            XCTAssertEqual(row.attribution, .issuer, context)
            XCTAssertEqual(Dictionary(row.bySyscall.map { ($0.syscall, Int($0.stats.contentions)) }, uniquingKeysWith: +),
                           shim.mountOpsBySyscall, "\(context): shim \(shim.pid)")
        }
        XCTAssertEqual(mounts.unlinked, 0, "\(context): every held syscall and wait found its container")
        let runtimeCgroup = try XCTUnwrap(result.runtimeCgroup, context)
        XCTAssertNil(rows[runtimeCgroup], "\(context): mount syscalls left on the runtime cgroup")
        let inMountSyscalls = profile.locks.flatMap(\.stacks).filter { stack in
            stack.frames.contains { Self.mountSyscallEntries.contains($0) }
        }
        let leftOnRuntime = inMountSyscalls.filter { stack in stack.contexts.contains { $0.container == runtimeCgroup } }
        XCTAssertEqual(leftOnRuntime.map(\.frames), [], "\(context): waits inside mount syscalls left on the runtime cgroup")
        let containerIDs = Set(result.containerList.map(\.id))
        XCTAssertTrue(inMountSyscalls.contains { stack in stack.contexts.contains { containerIDs.contains($0.container) } },
                      "\(context): no stack through a mount syscall's entry point on a container (the check above would be empty)")
        let attributed = profile.containers.filter { $0.attribution == .mountPath || $0.attribution == .issuer }
        XCTAssertGreaterThan(attributed.reduce(0) { $0 + $1.contentions }, 0, "\(context): no waits were attributed")
        // The waits inside each container's set-up are part of the container's waits (which also has its unmounts').
        for row in mounts.byContainer where row.attribution == .mountPath {
            let summary = profile.containers.first { $0.id == row.id }
            XCTAssertGreaterThanOrEqual(summary?.totalWaitNs ?? 0, row.start?.lockWaitNs ?? 0, "\(context): \(row.id)")
        }
        try checkTimeline(profile, containersStarted: result.containerList.count, context)
    }

    /// The kernel's entry points of the mount-family syscalls that attribution ties to containers (not
    /// unshare and clone, which a shim also makes without CLONE_NEWNS, e.g. for its user-namespace child).
    static let mountSyscallEntries: Set<String> = Set(["mount", "umount", "open_tree", "move_mount", "mount_setattr",
                                                       "fsopen", "fsconfig", "fsmount", "fspick"]
        .flatMap { ["__x64_sys_\($0)", "__do_sys_\($0)", "__se_sys_\($0)"] })

    /// The `--readers` processes among the victims, with namespace_sem wait: in the readers' cgroup,
    /// issuers of no mount syscall (no shim is a victim).
    private func readerVictims(_ profile: Profile, _ result: StressResult, _ context: String) throws -> [Victim] {
        let victims = profile.victims ?? []
        XCTAssertFalse(victims.contains { $0.process.hasPrefix("containerd-shim") }, "\(context): a shim is no victim")
        let readersCgroup = try XCTUnwrap(result.readers?.cgroup, context)
        XCTAssertEqual(result.readers?.errors, [], context)
        let readers = victims.filter { victim in
            victim.container == readersCgroup
                && victim.byLock.contains { $0.lock.hasPrefix(LockNamer.namespaceSem) && $0.totalWaitNs > 0 }
        }
        if !readers.isEmpty {
            // The timeline counts a process as a victim until its first mount syscall, the list only if it never mounts.
            XCTAssertGreaterThanOrEqual(profile.timeline?.bins.reduce(0) { $0 + $1.victimWaitNs } ?? 0,
                                        victims.reduce(0) { $0 + $1.totalWaitNs }, context)
        }
        return readers
    }

    /// The mountinfo readers issue no mount syscall: their namespace_sem waits make them victims, in
    /// their own cgroup (kubelet.service), behind the shims (named by their pods) that held the lock for
    /// writing, where the owner was read (a writer's owner field; readers queue behind it). Both
    /// strategies; retried (as above) until a reader's wait has a shim as its holder.
    func testMountinfoReadersAreVictimsWithNamespaceSemWait() throws {
        try requireBPF()
        for strategy in [StressStrategy.perLayer, .commonParent] {
            let stress = try containerdStorm(strategy, readers: 2)
            var options = RecordOptions()
            options.selection = .all
            var readerBehindShim = false
            for attempt in 0..<8 where !readerBehindShim {
                let context = "\(strategy), storm \(attempt + 1)"
                let (recorded, result) = try record(options) { try StressRunner(options: stress).run() }
                XCTAssertEqual(result.failures, 0, context)
                let pods = Set(try XCTUnwrap(result.shims).map { "pod:" + $0.firstTaskID })
                readerBehindShim = try readerVictims(recorded, result, context).contains { victim in
                    victim.holders.contains { pods.contains($0.container) }
                }
                try checkTimeline(recorded, containersStarted: stress.containers, context)
            }
            XCTAssertTrue(readerBehindShim, "\(strategy): no reader's wait had a shim as the holder in 8 storms")
        }
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

    /// The simple runtime's containers mount from their own cgroups: attributed by cgroup, as before,
    /// for both strategies, with mountinfo readers: each container's mount syscalls counted by syscall
    /// exactly as it issued them (the worker's own count, split as the strategy issues them when every
    /// step succeeds), the readers victims with namespace_sem wait (retried as for containerd), and the
    /// timeline summing to the totals.
    func testSimpleRuntimeStormIsAttributedByCgroup() throws {
        try requireBPF()
        for strategy in [StressStrategy.perLayer, .commonParent] {
            var options = RecordOptions()
            options.selection = .all
            var withReaders = try storm(strategy, style: .docker, containers: 8, layers: 5)
            withReaders.readers = 2
            let stress = withReaders
            var readersWaited = false
            for attempt in 0..<Self.readerAttempts where !readersWaited {
                let context = "simple runtime, \(strategy), storm \(attempt + 1)"
                let (profile, result) = try record(options) { try StressRunner(options: stress).run() }
                XCTAssertEqual(result.failures, 0, context)
                let rows = Dictionary(try XCTUnwrap(profile.mounts, context).byContainer.map { ($0.id, $0) },
                                      uniquingKeysWith: { a, _ in a })
                let perContainer = Dictionary(uniqueKeysWithValues: strategy.mountOpsBySyscall(layers: stress.layers)
                    .map { ($0.key.rawValue, $0.value) })
                for container in result.containerList {
                    let row = try XCTUnwrap(rows[container.id], "\(context): \(container.id)")
                    XCTAssertEqual(row.attribution, .cgroup, context)
                    XCTAssertEqual(Int(row.ops), container.mountOps, context)
                    XCTAssertEqual(perContainer.values.reduce(0, +), container.mountOps, "\(context): every step succeeded")
                    XCTAssertEqual(Dictionary(row.bySyscall.map { ($0.syscall, Int($0.stats.contentions)) }, uniquingKeysWith: +),
                                   perContainer, "\(context): \(container.id)")
                }
                XCTAssertEqual(profile.mounts?.unlinked ?? 0, 0, context)
                // Nothing goes by path or issuer: no shim, no containerd path.
                XCTAssertFalse(profile.containers.contains { $0.attribution == .mountPath || $0.attribution == .issuer }, context)
                try checkTimeline(profile, containersStarted: 0, context)
                let readers = try readerVictims(profile, result, context)
                readersWaited = !readers.isEmpty
                // No container is a victim: each issued mount syscalls.
                let containerIDs = Set(result.containerList.map(\.id))
                XCTAssertFalse((profile.victims ?? []).contains { containerIDs.contains($0.container) }, context)
            }
            XCTAssertTrue(readersWaited, "simple runtime, \(strategy): no reader waited on namespace_sem in \(Self.readerAttempts) storms")
        }
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
