import CLockscopeBPF
import XCTest

@testable import LockscopeCore

/// The attribution stage on exact event sequences shaped as containerd 2.x issues them (a shim's
/// threads idmapping layers, mounting the overlay, unmounting), checked through the profile.
final class MountAttributionTests: XCTestCase {
    static let write = UInt32(LOCKSCOPE_LCB_F_WRITE)
    static let runtimeCgroup: UInt64 = 7
    static let shimPid: UInt32 = 4242
    static let pod = String(repeating: "b", count: 64)
    static let task = "/run/containerd/io.containerd.runtime.v2.task/k8s.io"
    static let layers = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"

    /// A shim names its pod; everyone else names none.
    static func shimPods(_ pid: UInt32) -> (namespace: String?, pod: String)? {
        pid == shimPid ? ("k8s.io", pod) : nil
    }

    /// Events in the order the ring buffer delivers them, with a clock.
    struct Storm {
        var events: [KernelEvent] = []
        var now: UInt64 = 1_000_000_000

        /// A syscall of `latency` ns on `tid`, with a wait of `waitNs` on `lock` inside it (0: none).
        mutating func syscall(_ syscall: MountSyscall, tid: UInt32, pid: UInt32 = MountAttributionTests.shimPid,
                              fd: Int32 = -1, path: String = "", data: String = "", ret: Int64 = 0,
                              waitNs: UInt64 = 0, lock: UInt64 = 0xffff_ffff_8300_1000, cgroup: UInt64 = runtimeCgroup,
                              workingDirectory: WorkingDirectory? = nil) {
            let begin = now
            now += 10_000
            if waitNs > 0 {
                events.append(.wait(WaitEvent(flags: MountAttributionTests.write, endNs: now, waitNs: waitNs, lockAddress: lock,
                                              cgroupID: cgroup, syscallBeginNs: begin, pid: pid, tid: tid,
                                              cpu: UInt32(events.count / 2 % 2))))
            }
            now += 10_000
            events.append(.syscall(SyscallEvent(syscall: syscall, endNs: now, latencyNs: now - begin, cgroupID: cgroup,
                                                ret: ret, pid: pid, tid: tid, fd: fd, path: path, data: data,
                                                workingDirectory: workingDirectory)))
        }

        /// containerd's per-layer idmapping of `layers` layers into `directory`, then the overlay on the
        /// container's rootfs and the clean-up of the idmapped mounts. Each syscall waits 1 µs.
        mutating func start(container id: String, tid: UInt32, directory: String, layers: Int, fd: Int32) {
            for layer in 0..<layers {
                syscall(.openTree, tid: tid, fd: -1, path: "\(MountAttributionTests.layers)/\(layer + 1)/fs", ret: Int64(fd),
                        waitNs: 1_000)
                syscall(.mountSetattr, tid: tid, fd: fd, waitNs: 1_000)
                syscall(.moveMount, tid: tid, fd: fd, path: "\(directory)/\(layer)", waitNs: 1_000)
            }
            let lowerdirs = (0..<layers).map { "\(directory)/\($0)" }.joined(separator: ":")
            syscall(.mount, tid: tid, path: "\(MountAttributionTests.task)/\(id)/rootfs",
                    data: "index=off,workdir=/w,upperdir=/u,lowerdir=\(lowerdirs)", waitNs: 1_000)
            for layer in (0..<layers).reversed() { syscall(.umount2, tid: tid, path: "\(directory)/\(layer)", waitNs: 1_000) }
        }
    }

    private func profile(_ storm: Storm, sweepAt: UInt64? = nil) -> Profile {
        var aggregator = Aggregator(topology: nil, issuerPod: Self.shimPods)
        aggregator.startTimeline(atNs: 1_000_000_000)
        for event in storm.events { aggregator.record(event) }
        if let sweepAt { aggregator.releaseStaleHolds(now: sweepAt) }
        return aggregator.takeProfile(AggregatorTests.inputs())
    }

    private func row(_ profile: Profile, _ id: String) throws -> ContainerMounts {
        try XCTUnwrap(profile.mounts?.byContainer.first { $0.id == id }, "no mount syscalls for \(id)")
    }

    func testTwoContainersStartingOnTwoShimThreadsAreEachTiedToTheirOwnSyscallsAndWaits() throws {
        var storm = Storm()
        let (first, second) = (String(repeating: "1", count: 64), String(repeating: "2", count: 64))
        // Interleaved: one thread idmaps its layers while the other does, reusing the same fd number.
        var a = Storm(now: storm.now), b = Storm(now: storm.now + 5_000)
        a.start(container: first, tid: 11, directory: "/tmp/ovl-idmapped111", layers: 3, fd: 9)
        b.start(container: second, tid: 12, directory: "/tmp/ovl-idmapped222", layers: 2, fd: 10)
        storm.events = zip(a.events, b.events).flatMap { [$0, $1] } + a.events.dropFirst(b.events.count)
        let profile = profile(storm)

        for (id, layers) in [(first, 3), (second, 2)] {
            let row = try row(profile, id)
            XCTAssertEqual(row.attribution, .mountPath)
            XCTAssertEqual(row.pod, Self.pod)
            XCTAssertEqual(row.ops, UInt64(4 * layers + 1), id)
            XCTAssertEqual(Dictionary(row.bySyscall.map { ($0.syscall, $0.stats.contentions) }, uniquingKeysWith: +),
                           ["open_tree": UInt64(layers), "mount_setattr": UInt64(layers), "move_mount": UInt64(layers),
                            "mount": 1, "umount2": UInt64(layers)])
            let start = try XCTUnwrap(row.start)
            // Every syscall waited 1 µs: the set-up's are those up to the overlay mount, not the unmounts after it.
            XCTAssertEqual(start.lockWaitNs, UInt64(3 * layers + 1) * 1_000)
            XCTAssertEqual(start.inSyscallsNs, UInt64(3 * layers + 1) * 20_000)
            // Set-up: from the first open_tree's start to the overlay mount's end (20 µs per syscall, 3 per layer, then the mount).
            XCTAssertEqual(start.setupNs, UInt64(3 * layers + 1) * 20_000)
            let summary = try XCTUnwrap(profile.containers.first { $0.id == id })
            XCTAssertEqual(summary.attribution, .mountPath)
            XCTAssertEqual(summary.totalWaitNs, UInt64(4 * layers + 1) * 1_000, "every wait is the container's")
        }
        XCTAssertFalse(profile.containers.contains { $0.id.hasSuffix("7") }, "nothing stays on the runtime's cgroup")
        XCTAssertEqual(profile.mounts?.unlinked, 0)
        XCTAssertEqual(profile.timeline?.bins.reduce(0) { $0 + $1.containersStarted }, 2)
        XCTAssertEqual(profile.timeline?.bins.reduce(0) { $0 + $1.mountOps }, profile.mounts?.totalOps)
    }

    /// Spin samples inside a mount syscall follow its container (`Aggregator.mountSyscallTie`); the ties
    /// kept are bounded, and a syscall whose tie was not kept says so rather than passing for untied.
    func testMountSyscallTiesAreBoundedAndSayWhenForgotten() throws {
        var storm = Storm()
        storm.start(container: String(repeating: "1", count: 64), tid: 11, directory: "/tmp/ovl-idmapped111", layers: 3, fd: 9)
        let ids = storm.events.compactMap { event -> SyscallID? in
            guard case .syscall(let syscall) = event else { return nil }
            return SyscallID(tid: syscall.tid, beginNs: syscall.beginNs)
        }
        for capacity in [1 << 18, 5] {
            var aggregator = Aggregator(topology: nil, issuerPod: Self.shimPods)
            aggregator.keepsMountSyscallContainers = true
            aggregator.mountSyscallContainerCapacity = capacity
            for event in storm.events { aggregator.record(event) }
            _ = aggregator.takeProfile(AggregatorTests.inputs())
            let ties = ids.map { aggregator.mountSyscallTie($0) }
            let kept = ties.filter { if case .container(let container) = $0 { container.id.hasPrefix("111") } else { false } }
            XCTAssertEqual(kept.count, min(ids.count, capacity), "capacity \(capacity)")
            XCTAssertEqual(ties.filter { $0 == .forgotten }.count, ids.count - kept.count, "capacity \(capacity)")
            XCTAssertEqual(aggregator.mountSyscallTie(SyscallID(tid: 99, beginNs: 1)), .none)
        }
    }

    /// Holding waits for attribution must not change what is measured about them: the same waits with
    /// and without a mount syscall around them give the same lock statistics and hand-offs.
    func testHeldWaitsKeepTheirHandoffsAndStatistics() throws {
        var storm = Storm()
        storm.start(container: String(repeating: "3", count: 64), tid: 5, directory: "/tmp/ovl-idmapped3", layers: 4, fd: 3)
        // A reader on CPU 0 waits on the same lock between the shim's waits, which are held.
        storm.events = storm.events.flatMap { event -> [KernelEvent] in
            guard case .wait(let wait) = event else { return [event] }
            return [event, .wait(WaitEvent(flags: Self.write, endNs: wait.endNs, waitNs: 500, lockAddress: wait.lockAddress,
                                           pid: 77, tid: 77, cpu: 0))]
        }
        let waits = storm.events.compactMap { event -> WaitEvent? in if case .wait(let wait) = event { wait } else { nil } }
        let topology = Topology(cpus: [.init(id: 0, core: 0, socket: 0, die: 0, node: 0, llc: 0, smtSiblings: []),
                                       .init(id: 1, core: 1, socket: 1, die: 1, node: 1, llc: 1, smtSiblings: [])])
        func locks(_ events: [KernelEvent]) -> [LockProfile] {
            var aggregator = Aggregator(topology: topology, issuerPod: Self.shimPods)
            for event in events { aggregator.record(event) }
            return aggregator.takeProfile(AggregatorTests.inputs()).locks
        }
        let held = locks(storm.events)
        let unheld = locks(waits.map { wait in
            var wait = wait
            wait.syscallBeginNs = 0
            return .wait(wait)
        })
        XCTAssertEqual(held.map(\.stats), unheld.map(\.stats))
        XCTAssertEqual(held.map(\.handoffs), unheld.map(\.handoffs))
        XCTAssertEqual(Set(held[0].handoffs.map(\.handoff)), [.sameCPU, .otherSocket])
    }

    func testAnOpenTreeNeverMovedIsReleasedToTheShimsPodAfterTheHold() throws {
        var storm = Storm()
        storm.syscall(.openTree, tid: 3, path: "\(Self.layers)/1/fs", ret: 8, waitNs: 2_000)
        storm.syscall(.mountSetattr, tid: 3, fd: 8, waitNs: 3_000)
        // A stranger's open_tree (no pod) goes back to its own cgroup.
        storm.syscall(.openTree, tid: 99, pid: 99, path: "/srv", ret: 4, waitNs: 5_000, cgroup: 1)
        // Before the hold ends nothing of it is in the profile's containers...
        var aggregator = Aggregator(topology: nil, issuerPod: Self.shimPods)
        for event in storm.events { aggregator.record(event) }
        aggregator.releaseStaleHolds(now: storm.now + MountAttribution.holdNs / 2)
        XCTAssertEqual(aggregator.attribution.releasedUnlinked, 0)
        // ...after it, everything is, under the pod (issuer) or the stranger's cgroup.
        aggregator.releaseStaleHolds(now: storm.now + MountAttribution.holdNs + 1)
        XCTAssertEqual(aggregator.attribution.releasedUnlinked, 6)
        let profile = aggregator.takeProfile(AggregatorTests.inputs())
        XCTAssertEqual(profile.mounts?.unlinked, 6)
        let pod = try row(profile, "pod:" + Self.pod)
        XCTAssertEqual(pod.attribution, .issuer)
        XCTAssertEqual(pod.ops, 2)
        XCTAssertEqual(profile.containers.first { $0.id == "pod:" + Self.pod }?.totalWaitNs, 5_000)
        XCTAssertEqual(try row(profile, "host").attribution, .cgroup)
        XCTAssertEqual(profile.containers.first { $0.id == "host" }?.totalWaitNs, 5_000)
    }

    func testMountsOutsideContainerdsPathsStayWithTheirCgroup() throws {
        var storm = Storm()
        storm.syscall(.openTree, tid: 1, pid: 50, path: "/layers/1", ret: 3, waitNs: 1_000, cgroup: 2)
        storm.syscall(.moveMount, tid: 1, pid: 50, fd: 3, path: "/scratch/c1/lower0", waitNs: 1_000, cgroup: 2)
        storm.syscall(.mount, tid: 1, pid: 50, path: "/scratch/c1/root", data: "lowerdir=/scratch/c1/lower0", waitNs: 1_000,
                      cgroup: 2)
        let profile = profile(storm)
        let id = String(repeating: "a", count: 63) + "2"
        let row = try row(profile, id)
        XCTAssertEqual(row.attribution, .cgroup)
        XCTAssertEqual(row.ops, 3)
        XCTAssertNil(row.start)
        XCTAssertEqual(profile.containers.first { $0.id == id }?.totalWaitNs, 3_000)
    }

    /// containerd's shim, when an overlay's options do not fit in a page, chdirs into the lower
    /// directories' common parent and names them relative to it: the overlay mount's working directory
    /// joins it to its idmap directory. Per-layer: the parent is `ovl-idmappedXXXX`; common-parent: its
    /// `0`, where the snapshots directory was idmapped; and a working directory deeper than the kernel
    /// side keeps, known by its last names only.
    func testCompactedOverlayOptionsAreJoinedThroughTheWorkingDirectory() throws {
        let (perLayer, commonParent, deep) = (String(repeating: "5", count: 64), String(repeating: "6", count: 64),
                                              String(repeating: "7", count: 64))
        var storm = Storm()
        // Per-layer, 3 layers: lowerdir=0:1:2 from <tmp>/ovl-idmapped555.
        for layer in 0..<3 {
            storm.syscall(.openTree, tid: 31, path: "\(Self.layers)/\(3 - layer)/fs", ret: 9, waitNs: 1_000)
            storm.syscall(.mountSetattr, tid: 31, fd: 9, waitNs: 1_000)
            storm.syscall(.moveMount, tid: 31, fd: 9, path: "/tmp/ovl-idmapped555/\(layer)", waitNs: 1_000)
        }
        // containerd mounts on a thread of its own (mountAt: CLONE_FS unshared, chdir, mount).
        storm.syscall(.mount, tid: 41, path: "\(Self.task)/\(perLayer)/rootfs", data: "lowerdir=0:1:2,upperdir=/u,workdir=/w",
                      waitNs: 1_000, workingDirectory: WorkingDirectory(names: ["tmp", "ovl-idmapped555"], complete: true))
        for layer in (0..<3).reversed() { storm.syscall(.umount2, tid: 31, path: "/tmp/ovl-idmapped555/\(layer)", waitNs: 1_000) }
        // Common parent: the snapshots directory idmapped onto <tmp>/ovl-idmapped666/0, lowerdir=3/fs:2/fs:1/fs from there.
        storm.syscall(.openTree, tid: 32, path: Self.layers, ret: 10, waitNs: 1_000)
        storm.syscall(.mountSetattr, tid: 32, fd: 10, waitNs: 1_000)
        storm.syscall(.moveMount, tid: 32, fd: 10, path: "/tmp/ovl-idmapped666/0", waitNs: 1_000)
        storm.syscall(.mount, tid: 42, path: "\(Self.task)/\(commonParent)/rootfs", data: "lowerdir=3/fs:2/fs:1/fs,upperdir=/u",
                      waitNs: 1_000, workingDirectory: WorkingDirectory(names: ["tmp", "ovl-idmapped666", "0"], complete: true))
        storm.syscall(.umount2, tid: 32, path: "/tmp/ovl-idmapped666/0", waitNs: 1_000)
        // Deep: the working directory's outer names were not kept.
        storm.syscall(.openTree, tid: 33, path: Self.layers, ret: 11, waitNs: 1_000)
        storm.syscall(.mountSetattr, tid: 33, fd: 11, waitNs: 1_000)
        storm.syscall(.moveMount, tid: 33, fd: 11, path: "/a/b/c/d/e/f/g/tmp/ovl-idmapped777/0", waitNs: 1_000)
        storm.syscall(.mount, tid: 43, path: "\(Self.task)/\(deep)/rootfs", data: "lowerdir=2/fs:1/fs,upperdir=/u",
                      waitNs: 1_000, workingDirectory: WorkingDirectory(names: ["tmp", "ovl-idmapped777", "0"], complete: false))
        storm.syscall(.umount2, tid: 33, path: "/a/b/c/d/e/f/g/tmp/ovl-idmapped777/0", waitNs: 1_000)
        let profile = profile(storm)

        let expected: [(String, [String: UInt64])] = [
            (perLayer, ["open_tree": 3, "mount_setattr": 3, "move_mount": 3, "mount": 1, "umount2": 3]),
            (commonParent, ["open_tree": 1, "mount_setattr": 1, "move_mount": 1, "mount": 1, "umount2": 1]),
            (deep, ["open_tree": 1, "mount_setattr": 1, "move_mount": 1, "mount": 1, "umount2": 1]),
        ]
        for (id, bySyscall) in expected {
            let row = try row(profile, id)
            XCTAssertEqual(row.attribution, .mountPath, id)
            XCTAssertEqual(Dictionary(row.bySyscall.map { ($0.syscall, $0.stats.contentions) }, uniquingKeysWith: +), bySyscall, id)
            let setupSyscalls = bySyscall.values.reduce(0, +) - bySyscall["umount2"]!
            XCTAssertEqual(row.start?.lockWaitNs, setupSyscalls * 1_000, id)
            XCTAssertEqual(profile.containers.first { $0.id == id }?.totalWaitNs, bySyscall.values.reduce(0, +) * 1_000, id)
        }
        XCTAssertEqual(profile.mounts?.unlinked, 0)
        XCTAssertNil(profile.mounts?.byContainer.first { $0.id == "pod:" + Self.pod }, "nothing left to the pod")
    }

    /// The new mount API, as a runtime that builds the overlay with it would: the layers idmapped into
    /// `ovl-idmappedXXXX` (open_tree, mount_setattr, move_mount), then fsopen("overlay"), fsconfig of each
    /// `lowerdir+=` naming them and of upperdir/workdir, FSCONFIG_CMD_CREATE, fsmount, and the move_mount
    /// of the new mount onto the container's rootfs; then the idmapped layers' unmounts.
    func testTheNewMountAPIsOverlayIsTiedToItsContainer() throws {
        let id = String(repeating: "8", count: 64)
        let directory = "/tmp/ovl-idmapped888"
        var storm = Storm()
        for layer in 0..<2 {
            storm.syscall(.openTree, tid: 51, path: "\(Self.layers)/\(2 - layer)/fs", ret: 7, waitNs: 1_000)
            storm.syscall(.mountSetattr, tid: 51, fd: 7, waitNs: 1_000)
            storm.syscall(.moveMount, tid: 51, fd: 7, path: "\(directory)/\(layer)", waitNs: 1_000)
        }
        // The syscall events carry what bpf/lockscope.h lists: fsopen's fs name as its path, fsconfig's key
        // as data and a string value as path (none for FSCONFIG_CMD_CREATE), move_mount's from_pathname as data.
        storm.syscall(.fsopen, tid: 51, path: "overlay", ret: 5, waitNs: 1_000)
        for layer in 0..<2 { storm.syscall(.fsconfig, tid: 51, fd: 5, path: "\(directory)/\(layer)", data: "lowerdir+", waitNs: 1_000) }
        storm.syscall(.fsconfig, tid: 51, fd: 5, path: "/u", data: "upperdir", waitNs: 1_000)
        storm.syscall(.fsconfig, tid: 51, fd: 5, path: "/w", data: "workdir", waitNs: 1_000)
        storm.syscall(.fsconfig, tid: 51, fd: 5, waitNs: 1_000)
        storm.syscall(.fsmount, tid: 51, fd: 5, ret: 6, waitNs: 1_000)
        storm.syscall(.moveMount, tid: 51, fd: 6, path: "\(Self.task)/\(id)/rootfs", waitNs: 1_000)
        for layer in (0..<2).reversed() { storm.syscall(.umount2, tid: 51, path: "\(directory)/\(layer)", waitNs: 1_000) }
        storm.syscall(.umount2, tid: 51, path: "\(Self.task)/\(id)/rootfs", waitNs: 1_000)
        let profile = profile(storm)

        let row = try row(profile, id)
        XCTAssertEqual(row.attribution, .mountPath)
        XCTAssertEqual(row.pod, Self.pod)
        XCTAssertEqual(Dictionary(row.bySyscall.map { ($0.syscall, $0.stats.contentions) }, uniquingKeysWith: +),
                       ["open_tree": 2, "mount_setattr": 2, "move_mount": 3, "fsopen": 1, "fsconfig": 5, "fsmount": 1, "umount2": 3])
        // Set-up: everything up to the move_mount onto the rootfs (6 + 1 + 5 + 1 + 1 syscalls), 20 µs and 1 µs of wait each.
        let start = try XCTUnwrap(row.start)
        XCTAssertEqual(start.lockWaitNs, 14 * 1_000)
        XCTAssertEqual(start.inSyscallsNs, 14 * 20_000)
        XCTAssertEqual(start.setupNs, 14 * 20_000)
        XCTAssertEqual(profile.containers.first { $0.id == id }?.totalWaitNs, 17 * 1_000)
        XCTAssertEqual(profile.mounts?.unlinked, 0)
        XCTAssertEqual(profile.timeline?.bins.reduce(0) { $0 + $1.containersStarted }, 1)
        XCTAssertFalse(profile.containers.contains { $0.id.hasSuffix("7") || $0.id == "pod:" + Self.pod }, "nothing left behind")
    }

    /// A syscall record as the kernel side writes it: a mount's with its working directory (innermost
    /// name first in the record, outermost first in the event), and one cut before the working directory
    /// (an open_tree's: no strings), which reads as none.
    func testSyscallRecordsDecodeTheirWorkingDirectory() throws {
        var raw = lockscope_syscall_event()
        raw.type = UInt32(LOCKSCOPE_EVENT_SYSCALL.rawValue)
        raw.syscall = UInt32(LOCKSCOPE_SYS_MOUNT.rawValue)
        raw.end_ns = 5_000
        raw.latency_ns = 1_000
        raw.fd = -1
        raw.truncated = UInt32(LOCKSCOPE_TRUNCATED_CWD.rawValue)
        withUnsafeMutableBytes(of: &raw.path) { $0.copyBytes(from: Array("/run/x/rootfs".utf8)) }
        withUnsafeMutableBytes(of: &raw.data) { $0.copyBytes(from: Array("lowerdir=0:1".utf8)) }
        raw.cwd_levels = 3
        raw.cwd_complete = 1
        withUnsafeMutableBytes(of: &raw.cwd) { bytes in
            for (level, name) in ["0", "ovl-idmapped12", "tmp"].enumerated() {
                UnsafeMutableRawBufferPointer(rebasing: bytes[(level * Int(LOCKSCOPE_CWD_NAME_LEN))...]).copyBytes(from: Array(name.utf8))
            }
        }
        let full = withUnsafeBytes(of: &raw) { KernelEvent.decode($0) }
        guard case .syscall(let mount) = full else { return XCTFail("not a syscall: \(String(describing: full))") }
        XCTAssertEqual(mount.syscall, .mount)
        XCTAssertEqual(mount.path, "/run/x/rootfs")
        XCTAssertEqual(mount.data, "lowerdir=0:1")
        XCTAssertTrue(mount.truncated)
        XCTAssertEqual(mount.workingDirectory, WorkingDirectory(names: ["tmp", "ovl-idmapped12", "0"], complete: true))
        XCTAssertEqual(mount.workingDirectory?.description, "/tmp/ovl-idmapped12/0")

        raw.syscall = UInt32(LOCKSCOPE_SYS_OPEN_TREE.rawValue)
        raw.cwd_complete = 0
        let short = withUnsafeBytes(of: &raw) {
            KernelEvent.decode(UnsafeRawBufferPointer(rebasing: $0[..<MemoryLayout<lockscope_syscall_event>.offset(of: \lockscope_syscall_event.path)!]))
        }
        guard case .syscall(let openTree) = short else { return XCTFail("not a syscall: \(String(describing: short))") }
        XCTAssertEqual(openTree.path, "")
        XCTAssertNil(openTree.workingDirectory)
        // Only the last names: the description says so.
        XCTAssertEqual(WorkingDirectory(names: ["tmp", "ovl-idmapped12"], complete: false).description, "…/tmp/ovl-idmapped12")
    }

    func testContainerdPathsAndShimCommandLines() {
        XCTAssertEqual(MountPaths.containerdRootfs("/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs")?.id, "abc")
        XCTAssertEqual(MountPaths.containerdRootfs("/x/io.containerd.runtime.v2.task/moby/abc/rootfs/etc")?.namespace, "moby")
        XCTAssertNil(MountPaths.containerdRootfs("/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/work"))
        XCTAssertNil(MountPaths.containerdRootfs("/run/containerd/io.containerd.runtime.v2.task/k8s.io"))
        XCTAssertEqual(MountPaths.idmapDirectory("/tmp/ovl-idmapped4242/3"), .path("/tmp/ovl-idmapped4242"))
        XCTAssertEqual(MountPaths.idmapDirectory("/tmp/ovl-idmapped4242"), .path("/tmp/ovl-idmapped4242"))
        XCTAssertNil(MountPaths.idmapDirectory("ovl-idmapped4242/3"), "a relative path says nothing")
        XCTAssertEqual(MountPaths.idmapDirectories(inOverlayOptions: "workdir=/w,lowerdir=/t/ovl-idmapped1/0:/t/ovl-idmapped1/1,upperdir=/u"),
                       [.path("/t/ovl-idmapped1")])
        XCTAssertEqual(MountPaths.idmapDirectories(inOverlayOptions: "lowerdir+=/t/ovl-idmapped9/0"), [.path("/t/ovl-idmapped9")])
        XCTAssertEqual(MountPaths.idmapDirectories(inOverlayOptions: "lowerdir=0:1:2"), [], "relative lowerdirs without a working directory")
        // Relative lowerdirs (containerd's options compacted to fit a page) are resolved against the working directory.
        let perLayer = WorkingDirectory(names: ["tmp", "ovl-idmapped1"], complete: true)
        XCTAssertEqual(MountPaths.idmapDirectories(inOverlayOptions: "lowerdir=0:1:2,upperdir=/u", workingDirectory: perLayer),
                       [.path("/tmp/ovl-idmapped1")])
        let commonParent = WorkingDirectory(names: ["tmp", "ovl-idmapped2", "0"], complete: true)
        XCTAssertEqual(MountPaths.idmapDirectories(inOverlayOptions: "lowerdir=3/fs:2/fs", workingDirectory: commonParent),
                       [.path("/tmp/ovl-idmapped2")])
        XCTAssertEqual(MountPaths.idmapDirectory("ovl-idmapped3/0", workingDirectory: WorkingDirectory(names: ["tmp"], complete: true)),
                       .path("/tmp/ovl-idmapped3"))
        XCTAssertEqual(MountPaths.idmapDirectory("../1", workingDirectory: commonParent), .path("/tmp/ovl-idmapped2"))
        XCTAssertNil(MountPaths.idmapDirectory("../../x", workingDirectory: WorkingDirectory(names: ["tmp"], complete: true)))
        XCTAssertEqual(MountPaths.idmapDirectory("/abs/ovl-idmapped4/0", workingDirectory: commonParent), .path("/abs/ovl-idmapped4"),
                       "an absolute path ignores the working directory")
        // Only the working directory's last names known: the directory is known by them.
        XCTAssertEqual(MountPaths.idmapDirectory("5/fs", workingDirectory: WorkingDirectory(names: ["tmp", "ovl-idmapped5", "0"], complete: false)),
                       .tail("/tmp/ovl-idmapped5"))
        let shim = ["/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", "abc", "-address", "/run/c.sock"]
        XCTAssertEqual(MountPaths.shimPod(commandLine: shim.joined(separator: "\0") + "\0")?.pod, "abc")
        XCTAssertEqual(MountPaths.shimPod(commandLine: shim.joined(separator: "\0"))?.namespace, "k8s.io")
        XCTAssertNil(MountPaths.shimPod(commandLine: "/usr/bin/containerd\0--config\0x"))
        XCTAssertNil(MountPaths.shimPod(commandLine: "/usr/bin/containerd-shim-runc-v2\0-id"))
    }
}

/// `lockscope agent`'s windows: what is held for a container at a window's end is counted, once, in the
/// window in which its container becomes known; each window counts only its own events.
final class WindowedAttributionTests: XCTestCase {
    func testAContainerStartSplitByAWindowIsCountedOnceUnderItsContainer() throws {
        let id = String(repeating: "3", count: 64)
        var storm = MountAttributionTests.Storm()
        storm.start(container: id, tid: 21, directory: "/tmp/ovl-idmapped333", layers: 3, fd: 9)
        // A second start, all of it in the second window.
        let second = String(repeating: "4", count: 64)
        storm.start(container: second, tid: 22, directory: "/tmp/ovl-idmapped444", layers: 2, fd: 9)
        let firstStart = 3 * 3 + 1 + 3
        // The first window ends after the layers were idmapped and before the overlay names the container.
        let split = 3 * 3 * 2
        var aggregator = Aggregator(topology: nil, issuerPod: MountAttributionTests.shimPods)
        aggregator.startTimeline(atNs: 1_000_000_000)
        // Waits on two other locks first, outside mount syscalls: in the first window the held waits'
        // lock is the third, in the second the first.
        for address: UInt64 in [0xffff_ffff_8300_2000, 0xffff_ffff_8300_3000] {
            aggregator.record(.wait(WaitEvent(flags: MountAttributionTests.write, endNs: 900_000_000, waitNs: 500,
                                              lockAddress: address, cgroupID: 1, pid: 99, tid: 99, cpu: 0)))
        }
        for event in storm.events[..<split] { aggregator.record(event) }
        XCTAssertFalse(aggregator.heldStackIDs.isEmpty, "the idmapped layers' waits are held")
        let first = aggregator.takeWindow(AggregatorTests.inputs(), nextOriginNs: 2_000_000_000)
        for event in storm.events[split...] { aggregator.record(event) }
        let later = aggregator.takeWindow(AggregatorTests.inputs(), nextOriginNs: 3_000_000_000)
        let empty = aggregator.takeWindow(AggregatorTests.inputs(), nextOriginNs: 4_000_000_000)

        // Nothing was tied to a container yet in the first window: the syscalls are counted by syscall, not by container.
        XCTAssertEqual(first.mounts?.totalOps, 9)
        XCTAssertEqual(first.mounts?.byContainer.count ?? 0, 0)
        XCTAssertEqual(first.locks.reduce(0) { $0 + $1.stats.contentions }, 2, "the waits inside are held")
        XCTAssertEqual(first.mounts?.unlinked ?? 0, 0)
        let rows = Dictionary(try XCTUnwrap(later.mounts).byContainer.map { ($0.id, $0.ops) }, uniquingKeysWith: +)
        XCTAssertEqual(rows[id], UInt64(firstStart), "every syscall of the split start, under its container")
        XCTAssertEqual(rows[second], UInt64(2 * 3 + 1 + 2))
        XCTAssertEqual(later.mounts?.totalOps, UInt64(storm.events.count / 2 - 9), "the second window counts its own syscalls only")
        XCTAssertEqual(later.mounts?.unlinked ?? 0, 0)
        XCTAssertEqual(later.locks.reduce(0) { $0 + $1.stats.contentions }, UInt64(storm.events.count / 2),
                       "every wait, the held ones included, once")
        XCTAssertEqual(later.containers.first { $0.id == id }?.contentions, UInt64(firstStart))
        XCTAssertEqual(empty.locks.count, 0)
        XCTAssertEqual(empty.mounts?.totalOps ?? 0, 0)
        XCTAssertTrue(aggregator.heldStackIDs.isEmpty)
        // The containers' idmap directories are remembered while a window used them and one window more.
        XCTAssertEqual(aggregator.attribution.containers.count, 2)
        _ = aggregator.takeWindow(AggregatorTests.inputs(), nextOriginNs: 5_000_000_000)
        XCTAssertEqual(aggregator.attribution.containers.count, 0, "forgotten two windows after their last use")
    }
}
