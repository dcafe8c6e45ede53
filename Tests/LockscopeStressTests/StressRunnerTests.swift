import Foundation
import XCTest
@testable import LockscopeStress
import LockscopeTestSupport

/// Real storms, run as root: counts, cgroup naming and cleanup.
final class StressRunnerTests: XCTestCase {
    override func setUpWithError() throws {
        try requireRoot()
    }

    func testPerLayerIssuesExactlyFourPerLayerPlusFourMountOpsAndCleansUp() throws {
        let result = try StressRunner(options: smallRun(.perLayer)).run()
        assertCountsMatchFormula(result, runs: 4)
        XCTAssertEqual(result.mountOpsPerContainer, 4 * 3 + 4)
        XCTAssertEqual(result.mountOpsBySyscall["umount2"], 4 * (3 + 1))
        try assertCleanedUp(result)
    }

    func testCommonParentIssuesExactlyEightMountOpsAndCleansUp() throws {
        let result = try StressRunner(options: smallRun(.commonParent)).run()
        assertCountsMatchFormula(result, runs: 4)
        XCTAssertEqual(result.mountOpsPerContainer, 8)
        XCTAssertEqual(result.mountOpsBySyscall["open_tree"], 4)
        try assertCleanedUp(result)
    }

    func testFiveHundredLayersAllStackInOneOverlay() throws {
        // Each worker checks that its overlay shows the bottom layer's file and the top layer's number.
        for strategy in StressStrategy.allCases {
            var options = smallRun(strategy, containers: 1)
            options.layers = 500
            let result = try StressRunner(options: options).run()
            assertCountsMatchFormula(result, runs: 1)
            try assertCleanedUp(result)
        }
    }

    func testWorkerFailingMidwayIsReportedAndEverythingIsStillRemoved() throws {
        for strategy in StressStrategy.allCases {
            var options = smallRun(strategy)
            options.injectedFailure = InjectedFailure(container: 1, afterMountOps: 5)
            let result = try StressRunner(options: options).run()
            XCTAssertEqual(result.failures, 1, "\(strategy)")
            let failed = result.containerList[1]
            XCTAssertEqual(failed.mountOps, 5, "\(strategy)")
            XCTAssertNil(failed.setupMilliseconds, "\(strategy)")
            XCTAssertTrue(failed.error?.contains("injected failure after 5 mount operations") ?? false, "\(failed.error ?? "no error")")
            XCTAssertEqual(result.mountOps, 3 * strategy.mountOps(layers: 3) + 5, "\(strategy)")
            try assertCleanedUp(result)
        }
    }

    func testDockerCgroupsAreNamedAndJoinedLikeDocker() throws {
        let result = try StressRunner(options: smallRun(.commonParent, containers: 2, style: .docker)).run()
        XCTAssertEqual(result.failures, 0, result.containerList.compactMap(\.error).joined(separator: "; "))
        let parent = try XCTUnwrap(result.cgroupParent)
        XCTAssertTrue(parent.wholeMatch(#"/lockscope-stress-[0-9a-f]{8}"#))
        for container in result.containerList {
            XCTAssertTrue(container.id.wholeMatch("[0-9a-f]{64}"), container.id)
            XCTAssertEqual(container.runtime, "docker")
            XCTAssertNil(container.podUID)
            XCTAssertEqual(container.cgroup, "\(parent)/docker-\(container.id).scope")
            XCTAssertEqual(container.joinedCgroup, container.cgroup)
        }
        try assertCleanedUp(result)
    }

    func testKubepodsCgroupsAreNamedAndJoinedLikeContainerdUnderKubelet() throws {
        let result = try StressRunner(options: smallRun(.commonParent, containers: 2, style: .kubepods)).run()
        XCTAssertEqual(result.failures, 0, result.containerList.compactMap(\.error).joined(separator: "; "))
        let parent = try XCTUnwrap(result.cgroupParent)
        for container in result.containerList {
            let podUID = try XCTUnwrap(container.podUID)
            XCTAssertTrue(podUID.wholeMatch("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), podUID)
            XCTAssertEqual(container.runtime, "containerd")
            let podSlice = "kubepods-besteffort-pod\(podUID.replacingOccurrences(of: "-", with: "_")).slice"
            XCTAssertEqual(container.cgroup,
                           "\(parent)/kubepods.slice/kubepods-besteffort.slice/\(podSlice)/cri-containerd-\(container.id).scope")
            XCTAssertEqual(container.joinedCgroup, container.cgroup)
        }
        try assertCleanedUp(result)
    }

    func testNoCgroupStyleLeavesContainersWithoutRuntimeOrCgroup() throws {
        let result = try StressRunner(options: smallRun(.perLayer, containers: 2, style: .none)).run()
        XCTAssertEqual(result.failures, 0, result.containerList.compactMap(\.error).joined(separator: "; "))
        XCTAssertNil(result.cgroupParent)
        for container in result.containerList {
            XCTAssertNil(container.runtime)
            XCTAssertNil(container.cgroup)
            XCTAssertNil(container.joinedCgroup)
        }
        try assertCleanedUp(result)
    }

    func testRoundsStartEveryContainerOfEveryRound() throws {
        var options = smallRun(.commonParent, containers: 2)
        options.rounds = 2
        let result = try StressRunner(options: options).run()
        XCTAssertEqual(result.containerList.map(\.round), [0, 0, 1, 1])
        assertCountsMatchFormula(result, runs: 4)
        try assertCleanedUp(result)
    }

    func testMissingWorkerExecutableIsReportedWithExitCodeTwo() throws {
        var options = smallRun(.perLayer)
        options.workerExecutable = "/nonexistent/lockscope"
        XCTAssertThrowsError(try StressRunner(options: options).run()) { error in
            XCTAssertEqual((error as? StressError)?.exitCode, 2)
            XCTAssertTrue("\(error)".contains("/nonexistent/lockscope is missing"), "\(error)")
        }
    }

    func testARunRemovesEarlierRunsWhoseOwnerIsGoneAndNothingElse() throws {
        let scratchParent = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-stress-test-\(UUID())").path
        try FileManager.default.createDirectory(atPath: scratchParent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratchParent) }
        let root = try cgroupRoot()
        let ownMarker = try RunMarker.forThisProcess(cgroups: [])
        let exited = Process()
        exited.executableURL = URL(fileURLWithPath: "/bin/true")
        try exited.run()
        exited.waitUntilExit()

        // Each leftover: a scratch directory with a file, its cgroup and one container cgroup below it.
        func leftover(_ name: String, owner: RunMarker?) throws -> (scratch: String, cgroup: String) {
            let scratch = "\(scratchParent)/\(name)"
            let cgroup = "\(root)/\(name)"
            try FileManager.default.createDirectory(atPath: "\(scratch)/layers/0", withIntermediateDirectories: true)
            try Data("0\n".utf8).write(to: URL(fileURLWithPath: "\(scratch)/layers/0/layer"))
            try FileManager.default.createDirectory(atPath: "\(cgroup)/docker-\(name).scope", withIntermediateDirectories: true)
            if var marker = owner {
                marker.cgroups = [cgroup]
                try marker.write(into: scratch)
            }
            return (scratch, cgroup)
        }
        var reusedPID = ownMarker
        reusedPID.startTime += 1
        var otherBoot = ownMarker
        otherBoot.bootID = "00000000-0000-0000-0000-000000000000"
        var exitedOwner = ownMarker
        exitedOwner.pid = exited.processIdentifier
        let alive = try leftover("lockscope-stress-a11ce000", owner: ownMarker)
        let unmarked = try leftover("lockscope-stress-a11ce001", owner: nil)
        let gone = try leftover("lockscope-stress-a11ce002", owner: exitedOwner)
        let reused = try leftover("lockscope-stress-a11ce003", owner: reusedPID)
        let rebooted = try leftover("lockscope-stress-a11ce004", owner: otherBoot)
        // Look-alikes in a world-writable parent: another user's directory with a gone owner's
        // marker, and a symlink to a gone run's directory. Neither is this user's to remove.
        let foreign = try leftover("lockscope-stress-a11ce005", owner: exitedOwner)
        XCTAssertEqual(chown(foreign.scratch, 65534, 65534), 0)
        let elsewhere = try leftover("lockscope-stress-a11ce006", owner: exitedOwner)
        let target = "\(scratchParent)/target-a11ce006"
        XCTAssertEqual(rename(elsewhere.scratch, target), 0)
        XCTAssertEqual(symlink(target, elsewhere.scratch), 0)
        defer {
            for kept in [alive, unmarked, foreign, elsewhere] {
                rmdir("\(kept.cgroup)/docker-\(URL(fileURLWithPath: kept.cgroup).lastPathComponent).scope")
                rmdir(kept.cgroup)
            }
        }
        // A worker that outlived its SIGKILLed run, still in the run's container cgroup.
        let survivor = Process()
        survivor.executableURL = URL(fileURLWithPath: "/bin/sleep")
        survivor.arguments = ["600"]
        try survivor.run()
        defer { if survivor.isRunning { kill(survivor.processIdentifier, SIGKILL) } }
        try Data("\(survivor.processIdentifier)\n".utf8)
            .write(to: URL(fileURLWithPath: "\(gone.cgroup)/docker-lockscope-stress-a11ce002.scope/cgroup.procs"))

        let notices = Notices()
        var options = smallRun(.commonParent, containers: 1)
        options.scratchParent = scratchParent
        let result = try StressRunner(options: options, notice: notices.append).run()
        assertCountsMatchFormula(result, runs: 1)
        try assertCleanedUp(result)

        let deadline = Date().addingTimeInterval(5)
        while survivor.isRunning, Date() < deadline { usleep(10_000) }
        XCTAssertFalse(survivor.isRunning, "the process in the gone run's cgroup was not killed")
        if !survivor.isRunning { XCTAssertEqual(survivor.terminationStatus, SIGKILL) }
        XCTAssertEqual(notices.lines, [
            "removed 2 cgroups and \(gone.scratch) left by an earlier run (pid \(exited.processIdentifier), gone)",
            "removed 2 cgroups and \(reused.scratch) left by an earlier run (pid \(getpid()), gone, its pid reused)",
            "removed 2 cgroups and \(rebooted.scratch) left by an earlier run (pid \(getpid()), before the last boot)",
            "left \(foreign.scratch) alone: it belongs to user 65534, not to this one",
        ])
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(foreign.scratch)/layers/0/layer"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(target)/layers/0/layer"), "the symlink's target was not touched")
        for removed in [gone, reused, rebooted] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: removed.scratch), removed.scratch)
            XCTAssertFalse(FileManager.default.fileExists(atPath: removed.cgroup), removed.cgroup)
        }
        for kept in [alive, unmarked] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(kept.scratch)/layers/0/layer"), kept.scratch)
            XCTAssertTrue(FileManager.default.fileExists(atPath: kept.cgroup), kept.cgroup)
        }
    }

    // MARK: Helpers

    /// Collects a runner's notices.
    private final class Notices: @unchecked Sendable {
        private let lock = NSLock()
        private var collected: [String] = []

        var lines: [String] { lock.withLock { collected } }

        func append(_ line: String) {
            lock.withLock { collected.append(line) }
        }
    }

    /// A few containers of a few layers, started two at a time by the built lockscope binary.
    private func smallRun(_ strategy: StressStrategy, containers: Int = 4, style: CgroupStyle = .docker) -> StressOptions {
        var options = StressOptions()
        options.containers = containers
        options.layers = 3
        options.parallel = 2
        options.strategy = strategy
        options.cgroupStyle = style
        options.workerExecutable = (try? LockscopeBinary.path()) ?? "lockscope binary not found"
        return options
    }

    private func assertCountsMatchFormula(_ result: StressResult, runs: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.failures, 0, result.containerList.compactMap(\.error).joined(separator: "; "), file: file, line: line)
        let perContainer = result.strategy.mountOpsBySyscall(layers: result.layers)
        let expected = Dictionary(uniqueKeysWithValues: perContainer.map { ($0.key.rawValue, $0.value * runs) })
        XCTAssertEqual(result.mountOpsBySyscall, expected, file: file, line: line)
        XCTAssertEqual(result.mountOps, result.mountOpsPerContainer * runs, file: file, line: line)
        XCTAssertEqual(result.containerList.count, runs, file: file, line: line)
        for container in result.containerList {
            XCTAssertEqual(container.mountOps, result.mountOpsPerContainer, file: file, line: line)
            XCTAssertGreaterThan(container.setupMilliseconds ?? 0, 0, file: file, line: line)
        }
        XCTAssertGreaterThan(result.setupP50Milliseconds, 0, file: file, line: line)
        XCTAssertLessThanOrEqual(result.setupP50Milliseconds, result.setupMaxMilliseconds, file: file, line: line)
    }
}
