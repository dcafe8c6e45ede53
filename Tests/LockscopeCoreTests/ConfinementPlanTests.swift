import Foundation
import XCTest
@testable import LockscopeCore

/// How a sweep confines its storm, chosen from real-shaped cgroup layouts (Fixtures/cgroups/NAME:
/// its mountinfo, /proc/self/cgroup, and the cgroup files under root/).
final class ConfinementPlanTests: XCTestCase {
    private func plan(_ name: String) throws -> ConfinementPlan {
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("cgroups").appendingPathComponent(name)
        func text(_ file: String) -> String? { try? String(contentsOf: fixtures.appendingPathComponent(file), encoding: .utf8) }
        return ConfinementPlan.choose(mountinfo: try XCTUnwrap(text("mountinfo")), procCgroup: try XCTUnwrap(text("proc-self-cgroup")),
                                      read: { text("root" + $0) })
    }

    /// This machine: cgroup v1 hierarchies with cpuset, and cgroup v2 at /sys/fs/cgroup/unified without it.
    func testAHybridLayoutUsesAV1CpusetUnderTheRunnersOwn() throws {
        let plan = try plan("hybrid-v1-cpuset")
        XCTAssertEqual(plan.method, .cpusetV1)
        XCTAssertEqual(plan.cpusetParent, "/sys/fs/cgroup/cpuset")
        XCTAssertEqual(plan.reason, "cgroup v1 cpuset children of /sys/fs/cgroup/cpuset (cgroup v2 has no cpuset controller)")
    }

    /// Inside a container, the cpuset hierarchy is mounted from the container's own cgroup: the runner's
    /// path (/docker/3f2a9c) is the mount's root, so the parent is the mount point itself.
    func testAContainersV1CpusetIsFoundBelowItsMountRoot() throws {
        let plan = try plan("container-v1-cpuset")
        XCTAssertEqual(plan.method, .cpusetV1)
        XCTAssertEqual(plan.cpusetParent, "/sys/fs/cgroup/cpuset")
    }

    /// A v2 cpuset is available but would not follow the workers into the storm's cgroups: affinity, and says why.
    func testAV2OnlyLayoutFallsBackToAffinityAndSaysWhy() throws {
        let plan = try plan("v2-only-cpuset")
        XCTAssertEqual(plan.method, .affinity)
        XCTAssertNil(plan.cpusetParent)
        XCTAssertEqual(plan.reason, "no cgroup v1 cpuset is mounted and cgroup v2 has the cpuset controller, but the storm moves "
            + "its workers into its own cgroups at the v2 root, outside the runner's, where a cpuset on the runner's cgroup "
            + "would not follow them: CPU affinity")
    }

    /// A runner whose cpuset cgroup lies outside the mounted part of the hierarchy cannot make children there.
    func testARunnerOutsideTheMountedCpusetUsesAffinity() throws {
        let plan = try plan("v1-cpuset-unreadable")
        XCTAssertEqual(plan.method, .affinity)
        XCTAssertTrue(plan.reason.hasPrefix("the runner's cgroup v1 cpuset is not visible under /sys/fs/cgroup/cpuset"), plan.reason)
    }

    func testTheRunnersCgroupPathIsReadForItsController() {
        XCTAssertEqual(ConfinementPlan.v1Path(controller: "cpuset", procCgroup: "4:cpu,cpuset:/a/b\n0::/c\n"), "/a/b")
        XCTAssertNil(ConfinementPlan.v1Path(controller: "cpuset", procCgroup: "0::/c\n"))
        XCTAssertEqual(ConfinementPlan.relative("/docker/x/y", to: "/docker/x"), "/y")
        XCTAssertNil(ConfinementPlan.relative("/dockerx", to: "/docker"))
    }
}
