import Foundation
import LockscopeCore
import XCTest
@testable import LockscopeStress

/// Formulas, validation, error exit codes and cgroup2 discovery: no root needed.
final class StressOptionsTests: XCTestCase {
    func testPerLayerFormulaIsFourPerLayerPlusFour() {
        XCTAssertEqual(StressStrategy.perLayer.mountOps(layers: 1), 8)
        XCTAssertEqual(StressStrategy.perLayer.mountOps(layers: 10), 44)
        XCTAssertEqual(StressStrategy.perLayer.mountOps(layers: 500), 2004)
        XCTAssertEqual(StressStrategy.perLayer.mountOpsBySyscall(layers: 10),
                       [.unshare: 1, .mount: 2, .openTree: 10, .mountSetattr: 10, .moveMount: 10, .umount2: 11])
    }

    func testCommonParentFormulaIsEightWhateverTheLayers() {
        for layers in [1, 10, 500] {
            XCTAssertEqual(StressStrategy.commonParent.mountOps(layers: layers), 8)
        }
        XCTAssertEqual(StressStrategy.commonParent.mountOpsBySyscall(layers: 50),
                       [.unshare: 1, .mount: 2, .openTree: 1, .mountSetattr: 1, .moveMount: 1, .umount2: 2])
    }

    func testDefaultsAreValid() throws {
        let options = StressOptions()
        XCTAssertNoThrow(try options.validate())
        XCTAssertEqual(options.parallel, 2 * ProcessInfo.processInfo.activeProcessorCount)
        XCTAssertEqual(options.strategy, .perLayer)
        XCTAssertEqual(options.cgroupStyle, .docker)
    }

    func testValidationNamesTheBadOption() {
        let cases: [(String, (inout StressOptions) -> Void)] = [
            ("--containers must be at least 1, got 0", { $0.containers = 0 }),
            ("--layers must be between 1 and 500 (overlayfs stacks at most 500 lower layers), got 0", { $0.layers = 0 }),
            ("--layers must be between 1 and 500 (overlayfs stacks at most 500 lower layers), got 501", { $0.layers = 501 }),
            ("--parallel must be at least 1, got 0", { $0.parallel = 0 }),
            ("--rounds must be at least 1, got -1", { $0.rounds = -1 }),
            ("--containers × --rounds must be at most 65000", { $0.containers = 40_000; $0.rounds = 2 }),
            ("--scratch-parent /nonexistent is not a writable directory: pass one that is", { $0.scratchParent = "/nonexistent" }),
            ("the injected failure must name a container below 32", { $0.injectedFailure = InjectedFailure(container: 32, afterMountOps: 1) }),
        ]
        for (message, change) in cases {
            var options = StressOptions()
            change(&options)
            XCTAssertThrowsError(try options.validate(), message) { error in
                guard case .invalidOption(let text) = error as? StressError else { return XCTFail("\(error)") }
                XCTAssertTrue(text.hasPrefix(message), text)
                XCTAssertFalse(text.contains("\n"))
            }
        }
    }

    func testRunValidatesBeforeTouchingTheMachine() {
        var options = StressOptions()
        options.layers = 0
        options.workerExecutable = "/nonexistent"
        XCTAssertThrowsError(try StressRunner(options: options).run()) { error in
            XCTAssertEqual(error as? StressError,
                           .invalidOption("--layers must be between 1 and 500 (overlayfs stacks at most 500 lower layers), got 0"))
        }
    }

    func testExitCodes() {
        XCTAssertEqual(StressError.invalidOption("x").exitCode, 2)
        XCTAssertEqual(StressError.unsupported("x").exitCode, 2)
        XCTAssertEqual(StressError.setupFailed("x").exitCode, 1)
        XCTAssertEqual(StressError.interrupted(signal: SIGTERM).exitCode, 143)
        XCTAssertEqual(StressError.interrupted(signal: SIGINT).exitCode, 130)
    }

    func testCgroup2MountPointIsFoundInHybridAndPureLayouts() {
        let hybrid = MountTable(mountinfo: """
            31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
            32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
            """)
        XCTAssertEqual(hybrid.firstMountPoint(ofType: "cgroup2"), "/sys/fs/cgroup/unified")
        let pure = MountTable(mountinfo: "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate")
        XCTAssertEqual(pure.firstMountPoint(ofType: "cgroup2"), "/sys/fs/cgroup")
        let escaped = MountTable(mountinfo: "50 24 0:40 / /mnt/my\\040cgroups rw - cgroup2 none rw")
        XCTAssertEqual(escaped.firstMountPoint(ofType: "cgroup2"), "/mnt/my cgroups")
        XCTAssertNil(MountTable(mountinfo: "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw").firstMountPoint(ofType: "cgroup2"))
    }

    func testTheVisibleFilesystemIsTheLastMountedAtAPoint() {
        let table = MountTable(mountinfo: """
            25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw
            60 25 254:0 /scratch /dev/shm rw,relatime - ext4 /dev/vda rw
            """)
        XCTAssertEqual(table.filesystemType(at: "/dev/shm"), "ext4")
        XCTAssertNil(table.filesystemType(at: "/run"))
    }

    func testDockerAndKubepodsNamesFollowTheRuntimes() {
        let docker = ContainerPlan(index: 0, round: 0, style: .docker, parent: "/run")
        XCTAssertEqual(docker.cgroup, "/run/docker-\(docker.id).scope")
        XCTAssertTrue(docker.id.wholeMatch("[0-9a-f]{64}"))
        let pod = ContainerPlan(index: 1, round: 0, style: .kubepods, parent: "/run")
        let podUID = pod.podUID ?? ""
        XCTAssertEqual(pod.cgroup, "/run/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
                       + podUID.replacingOccurrences(of: "-", with: "_") + ".slice/cri-containerd-\(pod.id).scope")
        let none = ContainerPlan(index: 2, round: 0, style: .none, parent: nil)
        XCTAssertNil(none.cgroup)
        XCTAssertNil(none.runtime)
    }
}

/// The containerd runtime's formulas and option checks: no root needed.
final class ContainerdOptionsTests: XCTestCase {
    func testContainerdFormulasAreFourPerLayerPlusTwoAndSix() {
        XCTAssertEqual(StressStrategy.perLayer.mountOps(layers: 4, runtime: .containerd), 18)
        XCTAssertEqual(StressStrategy.perLayer.mountOps(layers: 50, runtime: .containerd), 202)
        XCTAssertEqual(StressStrategy.perLayer.containerdMountOpsBySyscall(layers: 10),
                       [.mount: 1, .openTree: 10, .mountSetattr: 10, .moveMount: 10, .umount2: 11])
        for layers in [1, 10, 500] {
            XCTAssertEqual(StressStrategy.commonParent.mountOps(layers: layers, runtime: .containerd), 6)
        }
        XCTAssertEqual(StressStrategy.perLayer.mountOps(layers: 10, runtime: .simple), StressStrategy.perLayer.mountOps(layers: 10))
        XCTAssertEqual(StressRuntime.shimMountOpsBySyscall, [.unshare: 1, .mount: 1])
    }

    func testContainerdOptionsAreChecked() {
        let cases: [(String, (inout StressOptions) -> Void)] = [
            ("--containers-per-pod needs --runtime containerd (the simple runtime has no pods)", { $0.containersPerPod = 2 }),
            ("--containers-per-pod must be at least 1, got 0", { $0.runtime = .containerd; $0.cgroupStyle = .kubepods; $0.containersPerPod = 0 }),
            ("--runtime containerd puts containers in kubepods cgroups: drop --cgroup-style docker", { $0.runtime = .containerd }),
            ("--containers (5) must be a multiple of --containers-per-pod (2)",
             { $0.runtime = .containerd; $0.cgroupStyle = .kubepods; $0.containers = 5; $0.containersPerPod = 2 }),
            ("--readers must be at least 0, got -1", { $0.readers = -1 }),
        ]
        for (message, change) in cases {
            var options = StressOptions()
            change(&options)
            XCTAssertThrowsError(try options.validate(), message) { error in
                XCTAssertEqual(error as? StressError, .invalidOption(message))
            }
        }
        XCTAssertNoThrow(try containerdOptions(containers: 6, containersPerPod: 3, readers: 2).validate())
    }

    func testReadLatencyHistogramAddsUpAndStaysWithinABucket() {
        var first = LatencyHistogram()
        var second = LatencyHistogram()
        for nanoseconds in stride(from: UInt64(1_000), through: 100_000, by: 1_000) { first.record(nanoseconds: nanoseconds) }
        second.record(nanoseconds: 5_000_000)
        first.add(second)
        XCTAssertEqual(first.count, 101)
        XCTAssertEqual(first.maxNanoseconds, 5_000_000)
        XCTAssertEqual(first.percentile(100), 5_000_000)
        // The exact p50 is 51 µs and the exact p99 100 µs: each within 1.1 % above.
        XCTAssertGreaterThanOrEqual(first.percentile(50), 51_000)
        XCTAssertLessThanOrEqual(first.percentile(50), 51_000 * 1011 / 1000)
        XCTAssertGreaterThanOrEqual(first.percentile(99), 100_000)
        XCTAssertLessThanOrEqual(first.percentile(99), 100_000 * 1011 / 1000)
        XCTAssertEqual(LatencyHistogram().percentile(99), 0)
    }
}
