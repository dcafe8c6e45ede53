import Foundation
import XCTest
@testable import LockscopeCore

/// The placements a sweep offers, computed from real-shaped topologies (Fixtures/sysfs).
final class PlacementTests: XCTestCase {
    private func topology(_ host: String) throws -> Topology {
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return try Topology.read(sysfsRoot: fixtures.appendingPathComponent("sysfs").appendingPathComponent(host).path)
    }

    func testDualSocketSMTOffersASocketAndOneThreadPerCore() throws {
        // 2 sockets × 24 cores × 2 threads (siblings N and N+48), one LLC per socket: llc0 is socket0.
        let placements = Placement.offered(by: try topology("dual-socket-96"))
        XCTAssertEqual(placements.map(\.name), ["all", "socket0", "one-thread-per-core"])
        XCTAssertEqual(placements[0].cpus, Array(0...95))
        XCTAssertEqual(placements[1].cpus, Array(0...23) + Array(48...71))
        XCTAssertEqual(placements[2].cpus, Array(0...47))
    }

    func testChipletOffersOneThreadPerCoreAndOneLLC() throws {
        // 1 socket × 32 cores × 2 threads (siblings N and N+32), four L3 domains of 8 cores.
        let placements = Placement.offered(by: try topology("chiplet-1s"))
        XCTAssertEqual(placements.map(\.name), ["all", "one-thread-per-core", "llc0"])
        XCTAssertEqual(placements[1].cpus, Array(0...31))
        XCTAssertEqual(placements[2].cpus, Array(0...7) + Array(32...39))
    }

    func testATwoCPUVMOffersAllOnly() throws {
        XCTAssertEqual(Placement.offered(by: try topology("vm-2cpu")), [Placement(name: "all", cpus: [0, 1])])
    }

    func testCPUListsAreParsedAndCheckedAgainstTheOnlineCPUs() throws {
        XCTAssertEqual(try Placement.cpuList("0-2,5", online: Array(0...7)), Placement(name: "cpus:0-2,5", cpus: [0, 1, 2, 5]))
        XCTAssertThrowsError(try Placement.cpuList("9", online: [0, 1])) { error in
            XCTAssertEqual("\(error)", "CPU 9 in '9' is not online: online are 0,1")
        }
        XCTAssertThrowsError(try Placement.cpuList("a-b", online: [0, 1]))
    }

    func testSpreadIsTheMedianAndRangeOfTheRuns() {
        XCTAssertEqual(Spread([3, 1, 2]), Spread(median: 2, min: 1, max: 3))
        XCTAssertEqual(Spread([4, 1, 2, 3]).median, 2.5)
        let placement = Placement(name: "cpus:0", cpus: [0])
        let inside = SweepRun(values: [.setupP99: 2], cpusSeen: [0], waitsChecked: 40, failures: 0)
        let outside = SweepRun(values: [.setupP99: 4], cpusSeen: [0, 1], waitsChecked: 40, failures: 0)
        XCTAssertEqual(SweepPoint(placement: placement, parallel: 2, runs: [inside]).check, .confined)
        XCTAssertEqual(SweepPoint(placement: placement, parallel: 2, runs: [inside, outside]).check, .outside)
        XCTAssertEqual(SweepPoint(placement: placement, parallel: 2, runs: [inside, outside]).spread(.setupP99),
                       Spread(median: 3, min: 2, max: 4))
    }

    /// No wait recorded is no evidence; waits past the container cap on a CPU outside the placement may be
    /// the storm's, so they leave it unverified, while those on the placement's CPUs hide nothing.
    func testAPlacementIsConfinedOnlyWhenEveryWaitThatCouldBeTheStormsWasChecked() {
        let placement = Placement(name: "cpus:0", cpus: [0])
        let inside = SweepRun(values: [:], cpusSeen: [0], waitsChecked: 40, failures: 0)
        let silent = SweepRun(values: [:], cpusSeen: [], waitsChecked: 0, failures: 0)
        let cappedInside = SweepRun(values: [:], cpusSeen: [0], waitsChecked: 40, otherContainersWaitsByCPU: [0: 7], failures: 0)
        let cappedOutside = SweepRun(values: [:], cpusSeen: [0], waitsChecked: 40, otherContainersWaitsByCPU: [0: 7, 1: 3], failures: 0)
        XCTAssertEqual(SweepPoint(placement: placement, parallel: 1, runs: [inside, silent]).check, .unverified)
        XCTAssertEqual(SweepPoint(placement: placement, parallel: 1, runs: []).check, .unverified)
        XCTAssertEqual(SweepPoint(placement: placement, parallel: 1, runs: [inside, cappedInside]).check, .confined)
        let hidden = SweepPoint(placement: placement, parallel: 1, runs: [inside, cappedOutside])
        XCTAssertEqual(hidden.check, .unverified)
        XCTAssertEqual(hidden.uncheckedWaits, 3)
        // A checked wait outside wins over everything else.
        let outside = SweepRun(values: [:], cpusSeen: [1], waitsChecked: 1, failures: 0)
        XCTAssertEqual(SweepPoint(placement: placement, parallel: 1, runs: [silent, outside]).check, .outside)
    }

    /// A change is flagged only when each median lies outside the other's spread; points one sweep lacks are listed.
    func testAComparisonFlagsOnlyChangesOutsideBothSpreadsAndListsUnmatchedPoints() {
        let all = Placement(name: "all", cpus: [0, 1])
        func point(_ parallel: Int, _ p99: [Double]) -> SweepPoint {
            SweepPoint(placement: all, parallel: parallel, runs: p99.map {
                SweepRun(values: [.setupP99: $0, .namespaceSemSpin: 1], cpusSeen: [0], waitsChecked: 1, failures: 0)
            })
        }
        func sweep(_ points: [SweepPoint]) -> Sweep {
            Sweep(hostname: "h", kernel: "k", startedAt: "t", topology: nil, confinement: .cpusetV1, workload: "w",
                  placements: [all], points: points)
        }
        let before = sweep([point(1, [10, 11, 12]), point(2, [10, 11, 12]), point(4, [10, 11, 12])])
        let after = sweep([point(2, [11.5, 13, 14]), point(4, [13, 14, 15]), point(8, [1, 1, 1])])
        let comparison = SweepComparison(before: before, after: after)
        XCTAssertEqual(comparison.rows.map(\.parallel), [2, 4])
        XCTAssertEqual(comparison.rows[0].metrics.map(\.metric), SweepMetric.allCases.map(\.rawValue))
        func change(_ row: Int, _ metric: SweepMetric) -> SweepComparison.Change? {
            comparison.rows[row].metrics.first { $0.metric == metric.rawValue }?.change
        }
        // 13 lies above 10-12 and 11 below 11.5-14: both medians outside the other spread.
        XCTAssertEqual(change(0, .setupP99), .higher)
        XCTAssertEqual(change(1, .setupP99), .higher)
        XCTAssertEqual(change(0, .namespaceSemSpin), .unchanged)
        XCTAssertEqual(SweepComparison.change(Spread(median: 11, min: 10, max: 12), Spread(median: 12.5, min: 11, max: 13)), .unchanged)
        XCTAssertEqual(SweepComparison.change(Spread(median: 11, min: 10, max: 12), Spread(median: 9, min: 8, max: 9.5)), .lower)
        XCTAssertEqual(comparison.onlyBefore, [SweepComparison.PointKey(placement: "all", parallel: 1)])
        XCTAssertEqual(comparison.onlyAfter, [SweepComparison.PointKey(placement: "all", parallel: 8)])
    }
}

/// A sweep run's values from a real recording: `lockscope record --locks mount -- lockscope stress
/// --parallel 24 --containers 200 --layers 40` on this 2-CPU VM, trimmed to namespace_sem, mount_lock and
/// inode.i_rwsem (Fixtures/sweep-run-profile.json). The expected numbers were read from the file with
/// Python, not with this code.
final class SweepRunFromProfileTests: XCTestCase {
    private func profile() throws -> Profile {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("sweep-run-profile.json")
        return try Profile.decode(try Data(contentsOf: url))
    }

    private func containers(_ profile: Profile) -> Set<String> {
        Set(profile.locks.flatMap { $0.stacks.flatMap { $0.contexts.map(\.container) } })
    }

    func testWaitSpinAndTheCheckedCPUsComeFromTheRecordingOfTheStormsContainers() throws {
        let profile = try profile()
        let run = SweepRun(profile: profile, containers: containers(profile), setupP50: 0.57, setupP99: 36.11, mountOps: 32800,
                           wallMilliseconds: 3362.22, failures: 0)
        XCTAssertEqual(run.value(.namespaceSemWait), 502.153168, accuracy: 1e-9)
        XCTAssertEqual(run.value(.mountLockWait), 0.034552, accuracy: 1e-9)
        // One sample at 997 Hz on namespace_sem (inode.i_rwsem's is another lock's): 1003009 ns estimated.
        XCTAssertEqual(run.value(.namespaceSemSpin), 1.003009, accuracy: 1e-9)
        XCTAssertEqual(run.value(.mountLockSpin), 0)
        XCTAssertEqual(run.value(.mountOpsPerSecond), 32800 / 3.36222, accuracy: 1e-6)
        XCTAssertEqual(run.cpusSeen, [0, 1])
        XCTAssertEqual(run.waitsChecked, 146)
        XCTAssertEqual(run.otherContainersWaitsByCpu, [:])
        // Without the container the spinning sample was taken in, and one that waited 36.4 ms on
        // namespace_sem on CPU 1 (with d244... 71.5 ms in all), neither counts: they are not the storm's.
        let fewer = containers(profile).subtracting(["d244778296a1bb78cf91b3d8ee07abf7efd9795df2f240cebe14cc4531a98e1f",
                                                     "e0ba3baa02b59fb6e536fad0e0914fd1b00bf0aee3ced2da6f6c8df784dd7135"])
        let partial = SweepRun(profile: profile, containers: fewer, setupP50: 0, setupP99: 0, mountOps: 0, wallMilliseconds: 0, failures: 0)
        XCTAssertEqual(partial.value(.namespaceSemSpin), 0)
        XCTAssertEqual(partial.value(.namespaceSemWait), 430.659764, accuracy: 1e-9)
    }

    /// The storm's containers: those it started, and those the profile found below its run's cgroup directory.
    func testTheStormsContainersIncludeEveryCgroupBelowItsRunDirectory() throws {
        var profile = try profile()
        profile.containers = [
            ContainerSummary(id: "a", runtime: "docker", podUid: nil, cgroup: "/lockscope-stress-1f/docker-a.scope", contentions: 1, totalWaitNs: 1, p99WaitNs: 1),
            ContainerSummary(id: "containerd", runtime: "containerd", podUid: nil, cgroup: "/lockscope-stress-1f/system.slice/containerd.service",
                             contentions: 1, totalWaitNs: 1, p99WaitNs: 1),
            ContainerSummary(id: "other", runtime: "docker", podUid: nil, cgroup: "/lockscope-stress-2e/docker-b.scope", contentions: 1, totalWaitNs: 1, p99WaitNs: 1),
        ]
        XCTAssertEqual(SweepRun.stormContainers(in: profile, ids: ["a", "c"], cgroups: ["/lockscope-stress-1f/docker-a.scope"]),
                       ["a", "c", "containerd"])
    }

    /// Waits of containers that are not the storm's are not evidence; waits summed under `[other
    /// containers]` are kept by CPU, to be judged against the placement.
    func testOnlyTheStormsContainersAreCheckedAndCappedWaitsAreCountedByCPU() throws {
        var profile = try profile()
        let first = try XCTUnwrap(profile.locks.first { $0.name == "namespace_sem" }?.stacks.first?.contexts.first)
        XCTAssertEqual(first.cpu, 1)
        profile.locks[0].stacks[0].contexts[0].container = Aggregator.otherContainersKey
        let run = SweepRun(profile: profile, containers: containers(profile).subtracting([Aggregator.otherContainersKey]),
                           setupP50: 0, setupP99: 0, mountOps: 0, wallMilliseconds: 0, failures: 0)
        XCTAssertEqual(run.waitsChecked, 146 - first.count)
        XCTAssertEqual(run.otherContainersWaitsByCpu, ["1": first.count])
        XCTAssertEqual(SweepPoint(placement: Placement(name: "cpus:0", cpus: [0]), parallel: 1, runs: [run]).uncheckedWaits, first.count)
        let none = SweepRun(profile: profile, containers: [], setupP50: 0, setupP99: 0, mountOps: 0, wallMilliseconds: 0, failures: 0)
        XCTAssertEqual(none.waitsChecked, 0)
        XCTAssertEqual(none.cpusSeen, [])
        XCTAssertEqual(SweepPoint(placement: Placement(name: "all", cpus: [0, 1]), parallel: 1, runs: [none]).check, .unverified)
    }
}
