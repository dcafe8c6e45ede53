import Foundation
import XCTest
@testable import LockscopeCore

/// `Redactor`: nothing identifying survives, the rest is untouched, and pseudonyms are stable per key.
final class RedactionTests: XCTestCase {
    private let redactor = Redactor(key: Data("lockscope-test-key".utf8))

    // Pseudonyms of the test key, computed apart from lockscope:
    // python3 -c 'import hmac,hashlib; print(hmac.new(b"lockscope-test-key", b"hostname\0node-a", hashlib.sha256).hexdigest()[:6])'
    func testPseudonymsAreTheHMACOfTheValueUnderTheKey() throws {
        let redacted = redactor.redact(try realisticProfile())
        XCTAssertEqual(redacted.hostname, "host-9e1b3f")
        XCTAssertEqual(redacted.containers[0].id, "ctr-a4cb8b16b53f")
        XCTAssertEqual(redacted.containers[1].podUid, "pod-f228ca01c0d1")
        XCTAssertEqual(redacted.locks.first { $0.name.hasSuffix(".wait_lock") }?.name, "addr-869b3816.wait_lock")
        XCTAssertEqual(redacted.recording.command, ["cmd-66ca59"])
        XCTAssertEqual(redacted.locks[0].byProcess.map(\.key), ["4711 runc:[2:INIT]", "4802 proc-898058"])
    }

    /// `pod:<sandbox id>` (a shim's own mounts, a shim holder) keeps its prefix, and its id gets the
    /// pseudonym the same sandbox id gets in the `pod` column (the HMAC of the id alone, not of `pod:<id>`).
    func testPodContainersKeepTheirPrefixAndThePodsPseudonym() throws {
        let sandbox = "5d0a7c3e9b1f4a2c8e6d0b9a7f3c1e5d2b8a6f4c0e9d7b5a3c1f8e6d4b2a0c9e"
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"lockscope-test-key", b"container\0" + SANDBOX, hashlib.sha256).hexdigest()[:12])'
        XCTAssertEqual(redactor.containerID(sandbox), "ctr-acfeefc276e0")
        XCTAssertEqual(redactor.containerID("pod:" + sandbox), "pod:ctr-acfeefc276e0")
        var profile = try realisticProfile()
        profile.containers[0].id = "pod:" + sandbox
        profile.containers[0].pod = sandbox
        let redacted = redactor.redact(profile)
        XCTAssertEqual(redacted.containers[0].id, "pod:" + (redacted.containers[0].pod ?? "?"))
        XCTAssertFalse(String(decoding: try redacted.encoded(), as: UTF8.self).contains("5d0a7c3e9b1f"))
    }

    func testRedactedProfileHoldsNoAddressHostContainerPodCgroupOrCommand() throws {
        let original = try realisticProfile()
        let text = String(decoding: try redactor.redact(original).encoded(), as: UTF8.self)

        // No hex number but function offsets (+0xa1), and no long hex run (an address without 0x, a container id).
        XCTAssertFalse(text.contains("0xffff"))
        XCTAssertEqual(matches(of: #"(?<![+0-9A-Za-z_])0x[0-9a-fA-F]+"#, in: text), [])
        XCTAssertEqual(matches(of: "[0-9a-f]{16,}", in: text), [])

        var secrets = ["node-a", "alice", "acme", "start-containers", "billing", "mount, umount", "build-box", "runner", "user-1000",
                       "session-3", "41235"]
        let containerIDs = original.containers.filter { ["docker", "containerd", "nspawn"].contains($0.runtime) }.map(\.id)
        XCTAssertEqual(containerIDs.count, 3)
        secrets += containerIDs + containerIDs.map { String($0.prefix(12)) }
        secrets += original.containers.compactMap(\.podUid).flatMap { [$0, $0.replacingOccurrences(of: "-", with: "_")] }
        for secret in secrets {
            XCTAssertFalse(text.contains(secret), "\(secret) survived redaction")
        }
    }

    func testLockAndFunctionNamesStayAndCgroupStructureIsKept() throws {
        let original = try realisticProfile()
        let redacted = redactor.redact(original)

        XCTAssertEqual(redacted.locks.map(\.name), ["namespace_sem", "mount_lock", "exp_funnel_lock+0xa1",
                                                     "addr-16a8b3d2", "addr-869b3816.wait_lock"])
        XCTAssertEqual(redacted.locks.map(\.identity), original.locks.map(\.identity))
        XCTAssertEqual(redacted.locks[0].stacks.map(\.frames), original.locks[0].stacks.map(\.frames))
        XCTAssertEqual(redacted.locks[3].stacks[0].frames, ["_raw_spin_lock", "addr-26987ef8", "nfs_lookup [nfs]", "do_syscall_64"])
        XCTAssertEqual(redacted.locks[2].owners?.map(\.ownerComm), ["proc-43945e", "kworker/u8:2"])
        XCTAssertEqual(redacted.locks[2].address, "addr-23dba9a8")

        let docker = redacted.containers[0]
        let pod = redacted.containers[1]
        XCTAssertEqual(docker.cgroup, "/system.slice/docker-\(docker.id).scope")
        XCTAssertEqual(pod.cgroup, "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-\(pod.podUid!).slice/cri-containerd-\(pod.id).scope")
        XCTAssertEqual(redacted.containers.dropFirst(2).map(\.id),
                       ["host", "ctr-a534c09e8b7b", "/system.slice/cg-b6f2d4.service", "/user.slice/cg-8c9bdb.slice/cg-264903.scope",
                        "cgroup:cg-818627", "[other containers]"])
        XCTAssertEqual(redacted.containers.dropFirst(2).map(\.cgroup),
                       ["/", "/machine.slice/machine-ctr-a534c09e8b7b.scope", "/system.slice/cg-b6f2d4.service",
                        "/user.slice/cg-8c9bdb.slice/cg-264903.scope", "", ""])
        XCTAssertEqual(redacted.containers.map(\.runtime), original.containers.map(\.runtime))

        // Every place a container is named uses the same pseudonym.
        let ids = Set(redacted.containers.map(\.id))
        for lock in redacted.locks {
            XCTAssertEqual(Set(lock.byContainer.map(\.key)).subtracting(ids), [], lock.name)
            XCTAssertEqual(Set(lock.stacks.flatMap(\.contexts).map(\.container)).subtracting(ids), [], lock.name)
            XCTAssertEqual(Set((lock.owners ?? []).flatMap { [$0.waiterContainer, $0.ownerContainer] }).subtracting(ids.union(["unknown"])), [], lock.name)
        }
        XCTAssertEqual(redacted.mounts?.byContainer.map(\.id), [docker.id, "host"])
        XCTAssertEqual(redacted.recording.lockAddresses, ["addr-869b3816"])
        XCTAssertEqual(redacted.recording.locks, "namespace_sem,addr-869b3816")
        XCTAssertEqual(redacted.recording.containers, ["ctr-483dd7ba5442"])
        XCTAssertEqual(redacted.recording.pids, [4711])
    }

    func testCountsTimesAndTopologyAreUnchanged() throws {
        let original = try realisticProfile()
        let redacted = redactor.redact(original)
        XCTAssertEqual(redacted.events, original.events)
        XCTAssertEqual(redacted.durationNs, original.durationNs)
        XCTAssertEqual(redacted.drops, original.drops)
        XCTAssertEqual(redacted.kernel, original.kernel)
        XCTAssertEqual(redacted.startedAt, original.startedAt)
        XCTAssertEqual(redacted.topology, original.topology)
        XCTAssertEqual(redacted.locks.map(\.stats), original.locks.map(\.stats))
        // The fixture's 11 + 6 waits and the added locks' 30 + 7 + 3; 1.09 ms and 3.079 ms of waiting.
        XCTAssertEqual(redacted.locks.map(\.stats.contentions).reduce(0, +), 57)
        XCTAssertEqual(redacted.locks.map(\.stats.totalWaitNs).reduce(0, +), 4_169_000)
        for (lock, before) in zip(redacted.locks, original.locks) {
            XCTAssertEqual(lock.byContainer.map(\.stats), before.byContainer.map(\.stats))
            XCTAssertEqual(lock.byProcess.map(\.stats), before.byProcess.map(\.stats))
            XCTAssertEqual(lock.byCpu, before.byCpu)
            XCTAssertEqual(lock.handoffs, before.handoffs)
            XCTAssertEqual(lock.stacks.map(\.totalWaitNs), before.stacks.map(\.totalWaitNs))
        }
        XCTAssertEqual(redacted.containers.map(\.totalWaitNs), original.containers.map(\.totalWaitNs))
    }

    func testRedactingIsDeterministicAndStableAcrossProfilesOfOneKey() throws {
        let original = try realisticProfile()
        XCTAssertEqual(try redactor.redact(original).encoded(), try redactor.redact(original).encoded())

        // Another recording on the same machine: the same host, container and lock get the same pseudonyms.
        var later = original
        later.locks.removeFirst()
        later.containers.removeFirst(2)
        let first = redactor.redact(original)
        let second = redactor.redact(later)
        XCTAssertEqual(second.hostname, first.hostname)
        XCTAssertEqual(second.locks.map(\.name), Array(first.locks.map(\.name).dropFirst()))
        XCTAssertEqual(second.locks.map(\.address), Array(first.locks.map(\.address).dropFirst()))
        XCTAssertEqual(second.containers.map(\.id), Array(first.containers.map(\.id).dropFirst(2)))
    }

    func testAnotherKeyGivesOtherPseudonyms() throws {
        let original = try realisticProfile()
        let first = redactor.redact(original)
        let second = Redactor(key: Data("another-key".utf8)).redact(original)
        XCTAssertNotEqual(second.hostname, first.hostname)
        XCTAssertEqual(Set(second.containers.map(\.id)).intersection(first.containers.map(\.id)), ["host", "[other containers]"])
        XCTAssertEqual(Set(second.locks.map(\.address)).intersection(first.locks.map(\.address)), [])
        XCTAssertNotEqual(second.recording.command, first.recording.command)
    }

    func testRedactedProfilesAreMarkedAndOthersAreWrittenAsBefore() throws {
        let original = try realisticProfile()
        XCTAssertNil(original.recording.redacted)
        XCTAssertFalse(String(decoding: try original.encoded(), as: UTF8.self).contains("redacted"))
        let reloaded = try Profile.decode(try redactor.redact(original).encoded())
        XCTAssertEqual(reloaded.recording.redacted, true)
    }

    func testKeyFileBytesAreTheKey() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-redact-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("lockscope-test-key".utf8).write(to: URL(fileURLWithPath: "\(directory)/key"))
        XCTAssertEqual(try Redactor(keyFile: "\(directory)/key").redact(try realisticProfile()).hostname, "host-9e1b3f")

        try Data("\n".utf8).write(to: URL(fileURLWithPath: "\(directory)/empty"))
        XCTAssertThrowsError(try Redactor(keyFile: "\(directory)/empty")) { error in
            XCTAssertEqual(error as? UserError, UserError("the redaction key \(directory)/empty is empty: put a secret in it (head -c 32 /dev/urandom > \(directory)/empty)"))
        }
        XCTAssertThrowsError(try Redactor(keyFile: "\(directory)/missing")) { error in
            XCTAssertEqual(error as? UserError, UserError("cannot read the redaction key \(directory)/missing: No such file or directory; pass --key-file FILE with a readable secret"))
        }
    }

    /// Victims, their holders, pods and container starts of the containerd storm: pseudonymized like
    /// `by_process`, container ids and lock names, with the same pseudonym wherever a value recurs.
    func testVictimsHoldersPodsAndStartsArePseudonymized() throws {
        var original = try containerdStorm()
        original.victims?[0].byLock.append(LockWaitShare(lock: "0xffff888100a0b0c0.wait_lock", contentions: 1, totalWaitNs: 1, maxWaitNs: 1))
        original.mounts?.byContainer[0].start?.byLock.append(LockWaitShare(lock: "0xffff888100a0b0c0", contentions: 1, totalWaitNs: 1, maxWaitNs: 1))
        let redacted = redactor.redact(original)

        // python3 -c 'import hmac,hashlib; print(hmac.new(b"lockscope-test-key", b"process\0healthcheck", hashlib.sha256).hexdigest()[:6])'
        let victims = try XCTUnwrap(redacted.victims)
        XCTAssertEqual(victims.map(\.process), ["systemd[1]", "kubelet[1190]", "proc-dcc26d[5120]"])
        XCTAssertEqual(victims.map(\.container), ["host", "/system.slice/cg-6f2c95.service", "ctr-a8b27a00d5d5"])
        XCTAssertEqual(victims[0].byLock.map(\.lock), ["namespace_sem", "mount_lock", "addr-869b3816.wait_lock"])
        XCTAssertEqual(victims[0].holders.map(\.process), ["containerd-shim[4100]", "containerd-shim[4230]", "containerd[812]"])
        // A shim holder is its pod, `pod:<sandbox id>`: the prefix kept, the id pseudonymized as the `pod` column's.
        XCTAssertEqual(victims[0].holders.map(\.container), ["pod:ctr-acfeefc276e0", "pod:ctr-ccf4dd23acf9", "host"])
        XCTAssertEqual(redacted.containers.prefix(3).map(\.pod), ["ctr-acfeefc276e0", "ctr-acfeefc276e0", "ctr-ccf4dd23acf9"])
        XCTAssertEqual(redacted.mounts?.byContainer.map(\.pod), ["ctr-acfeefc276e0", "ctr-acfeefc276e0", "ctr-ccf4dd23acf9",
                                                                 "ctr-ccf4dd23acf9", nil])
        XCTAssertEqual(redacted.mounts?.byContainer[0].start?.byLock.map(\.lock), ["namespace_sem", "mount_lock", "addr-869b3816"])

        // A pod's sandbox id is one pseudonym as a pod and as the id of its mounts; holders name containers
        // of the profile or `pod:` and one of its pods.
        let ids = Set(redacted.containers.map(\.id)).union(redacted.containers.compactMap(\.pod).map { "pod:" + $0 })
        XCTAssertEqual(redacted.mounts?.byContainer[3].id, "pod:ctr-ccf4dd23acf9")
        XCTAssertEqual(Set(victims.flatMap(\.holders).map(\.container)).subtracting(ids), [])

        // Nothing identifying survives; every number stays.
        let text = String(decoding: try redacted.encoded(), as: UTF8.self)
        XCTAssertEqual(matches(of: "[0-9a-f]{16,}", in: text), [])
        for secret in ["healthcheck", "kubelet.service", "node-b", "7e3d1b9a"] {
            XCTAssertFalse(text.contains(secret), "\(secret) survived redaction")
        }
        XCTAssertEqual(redacted.timeline, original.timeline)
        XCTAssertEqual(redacted.victims?.map(\.totalWaitNs), original.victims?.map(\.totalWaitNs))
        XCTAssertEqual(redacted.victims?.flatMap(\.holders).map(\.totalWaitNs), original.victims?.flatMap(\.holders).map(\.totalWaitNs))
        XCTAssertEqual(redacted.mounts?.byContainer.map(\.start?.lockWaitNs), original.mounts?.byContainer.map(\.start?.lockWaitNs))
        XCTAssertEqual(redacted.mounts?.byContainer.map(\.attribution), original.mounts?.byContainer.map(\.attribution))
    }

    // MARK: Helpers

    /// A recorded mount storm (docker and kubepods containers, the host) plus what a busy machine
    /// adds: locks named by address, an unresolved frame, an nspawn machine, plain cgroups, a
    /// vanished cgroup, a command with a user's paths, owners and process names.
    private func realisticProfile() throws -> Profile {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../LockscopeExportTests/Fixtures/mount-storm.json").standardized.path
        var profile = try Profile.load(path: fixture)
        let docker = profile.containers[0].id
        profile.recording = Recording(locks: "namespace_sem,0xffff888100a0b0c0", lockAddresses: ["0xffff888100a0b0c0"],
                                      pids: [4711], containers: ["3f2a9c1b7d4e"],
                                      command: ["/home/alice/bin/start-containers.sh", "--tenant", "acme"])
        profile.containers += [
            ContainerSummary(id: "build-box", runtime: "nspawn", podUid: nil, cgroup: "/machine.slice/machine-build\\x2dbox.scope",
                             contentions: 1, totalWaitNs: 1_000, p99WaitNs: 1_000),
            ContainerSummary(id: "/system.slice/runner.service", runtime: "cgroup", podUid: nil, cgroup: "/system.slice/runner.service",
                             contentions: 1, totalWaitNs: 2_000, p99WaitNs: 2_000),
            ContainerSummary(id: "/user.slice/user-1000.slice/session-3.scope", runtime: "cgroup", podUid: nil,
                             cgroup: "/user.slice/user-1000.slice/session-3.scope", contentions: 1, totalWaitNs: 3_000, p99WaitNs: 3_000),
            ContainerSummary(id: "cgroup:41235", runtime: "unknown", podUid: nil, cgroup: "", contentions: 1, totalWaitNs: 4_000,
                             p99WaitNs: 4_000),
            ContainerSummary(id: "[other containers]", runtime: "unknown", podUid: nil, cgroup: "", contentions: 1,
                             totalWaitNs: 5_000, p99WaitNs: 5_000),
        ]
        profile.mounts = MountSummary(totalOps: 12, bySyscall: [], byContainer: [
            ContainerMounts(id: docker, runtime: "docker", ops: 8, bySyscall: []),
            ContainerMounts(id: "host", runtime: "host", ops: 4, bySyscall: []),
        ])
        func stats(_ contentions: UInt64, _ total: UInt64) -> WaitStats {
            WaitStats(contentions: contentions, totalWaitNs: total, minWaitNs: total / contentions, maxWaitNs: total / contentions,
                      p50WaitNs: total / contentions, p90WaitNs: total / contentions, p99WaitNs: total / contentions,
                      p999WaitNs: total / contentions, histogram: [HistogramBucket(lowerNs: 0, upperNs: 1 << 20, count: contentions)])
        }
        profile.locks += [
            LockProfile(name: "exp_funnel_lock+0xa1", identity: .caller, kind: .mutex, address: "0xffffffff830f60b8",
                        stats: stats(30, 3_000_000),
                        stacks: [StackProfile(frames: ["__mutex_lock.constprop.0", "exp_funnel_lock", "synchronize_rcu_expedited"],
                                              count: 30, totalWaitNs: 3_000_000, maxWaitNs: 100_000,
                                              contexts: [StackContext(cpu: 1, container: "/system.slice/runner.service", count: 30,
                                                                      totalWaitNs: 3_000_000)])],
                        byContainer: [KeyedStats(key: "cgroup:41235", stats: stats(30, 3_000_000))],
                        byProcess: [KeyedStats(key: "acme-billing[912]", stats: stats(20, 2_000_000)),
                                    KeyedStats(key: "[other processes]", stats: stats(10, 1_000_000))],
                        owners: [OwnerBlame(waiterContainer: "build-box", ownerContainer: docker, ownerPid: 912,
                                            ownerComm: "acme-billing", contentions: 20, totalWaitNs: 2_000_000),
                                 OwnerBlame(waiterContainer: "[other containers]", ownerContainer: "unknown", ownerPid: 77,
                                            ownerComm: "kworker/u8:2", contentions: 10, totalWaitNs: 1_000_000)]),
            LockProfile(name: "0xffff888104c0ffe0", identity: .caller, kind: .spinlock, address: "0xffff888104c0ffe0",
                        stats: stats(7, 70_000),
                        stacks: [StackProfile(frames: ["_raw_spin_lock", "0xffffffffc0a01234", "nfs_lookup [nfs]", "do_syscall_64"],
                                              count: 7, totalWaitNs: 70_000, maxWaitNs: 10_000,
                                              contexts: [StackContext(cpu: 0, container: "/user.slice/user-1000.slice/session-3.scope",
                                                                      count: 7, totalWaitNs: 70_000)])]),
            LockProfile(name: "0xffff888100a0b0c0.wait_lock", identity: .caller, kind: .spinlock, address: "0xffff888100a0b0c8",
                        stats: stats(3, 9_000), byContainer: [KeyedStats(key: docker, stats: stats(3, 9_000))]),
        ]
        return profile
    }

    /// The containerd storm fixture: victims, holders, pods, attributions, starts and a timeline.
    private func containerdStorm() throws -> Profile {
        try Profile.load(path: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../LockscopeExportTests/Fixtures/containerd-storm.json").standardized.path)
    }

    private func matches(of pattern: String, in text: String) -> [String] {
        let expression = try! NSRegularExpression(pattern: pattern)
        return expression.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { String(text[Range($0.range, in: text)!]) }
    }
}
