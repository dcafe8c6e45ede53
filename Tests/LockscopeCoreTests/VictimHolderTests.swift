import XCTest

@testable import LockscopeCore

/// Whom a victim waited behind: a holder that is a shim naming its pod is that pod, `pod:<sandbox id>`
/// (the shim mounts for every container of the pod); any other mount issuer is its cgroup's container.
final class VictimHolderTests: XCTestCase {
    static let shimPid: UInt32 = 4242
    static let runtimePid: UInt32 = 812
    static let readerPid: UInt32 = 1
    static let runtimeCgroup: UInt64 = 7
    static let pod = "5d0a7c3e9b1f4a2c8e6d0b9a7f3c1e5d2b8a6f4c0e9d7b5a3c1f8e6d4b2a0c9e"

    func testAShimHolderIsItsPodAndAnyOtherIssuerItsCgroup() throws {
        var aggregator = Aggregator(topology: nil, issuerPod: { $0 == Self.shimPid ? ("k8s.io", Self.pod) : nil })
        // Both issue a mount syscall outside containerd's paths (an issuer is whoever made one).
        for (pid, ns) in [(Self.shimPid, UInt64(1_000)), (Self.runtimePid, 2_000)] {
            aggregator.record(.syscall(SyscallEvent(syscall: .umount2, endNs: ns, latencyNs: 500, cgroupID: Self.runtimeCgroup,
                                                    pid: pid, tid: pid, path: "/srv/x")))
        }
        // systemd reads the mount table and waits on namespace_sem behind each: 3 times behind the shim.
        for (index, owner) in [Self.shimPid, Self.shimPid, Self.runtimePid, Self.shimPid].enumerated() {
            aggregator.record(.wait(WaitEvent(flags: AggregatorTests.rwsemRead, endNs: 10_000 + UInt64(index) * 1_000,
                                              waitNs: owner == Self.shimPid ? 5_000 : 7_000, lockAddress: AggregatorTests.sem,
                                              cgroupID: 1, ownerCgroupID: Self.runtimeCgroup, pid: Self.readerPid,
                                              tid: Self.readerPid, ownerPid: owner, stackID: 2, comm: "systemd",
                                              ownerComm: owner == Self.shimPid ? "containerd-shim" : "containerd")))
        }
        aggregator.releaseStaleHolds(now: 1_000_000_000_000)
        let profile = aggregator.takeProfile(AggregatorTests.inputs())
        XCTAssertEqual(profile.locks.map(\.name), ["namespace_sem"])
        let victim = try XCTUnwrap(profile.victims?.first)
        XCTAssertEqual(profile.victims?.count, 1)
        XCTAssertEqual(victim.process, "systemd[1]")
        XCTAssertEqual(victim.container, "host")
        XCTAssertEqual(victim.holders, [
            Holder(process: "containerd-shim[4242]", container: "pod:" + Self.pod, contentions: 3, totalWaitNs: 15_000),
            // The runtime's cgroup as AggregatorTests.inputs() names cgroup 7.
            Holder(process: "containerd[812]", container: String(repeating: "a", count: 63) + "7", contentions: 1,
                   totalWaitNs: 7_000),
        ])
    }
}
