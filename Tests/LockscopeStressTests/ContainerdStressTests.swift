import Foundation
import XCTest
@testable import LockscopeStress
import LockscopeTestSupport

/// `--runtime containerd` storms, run as root: shims, cgroups, paths, counts, readers and cleanup.
final class ContainerdStressTests: XCTestCase {
    override func setUpWithError() throws {
        try requireRoot()
    }

    func testShimsMountEveryContainerFromTheRuntimeCgroupWithContainerdsPathsAndCounts() throws {
        for strategy in StressStrategy.allCases {
            let result = try StressRunner(options: containerdRun(strategy)).run()
            XCTAssertEqual(result.failures, 0, result.containerList.compactMap(\.error).joined(separator: "; "))
            let parent = try XCTUnwrap(result.cgroupParent)
            let runtimeCgroup = "\(parent)/system.slice/containerd.service"
            XCTAssertEqual(result.runtime, .containerd)
            XCTAssertEqual(result.runtimeCgroup, runtimeCgroup)
            XCTAssertEqual(result.containersPerPod, 2)

            // Counts: the formula per container, two per shim, and nothing else.
            let perContainer = strategy.containerdMountOpsBySyscall(layers: 4)
            XCTAssertEqual(result.mountOpsPerContainer, strategy == .perLayer ? 4 * 4 + 2 : 6)
            var expectedTotal: [String: Int] = Dictionary(uniqueKeysWithValues: StressSyscall.allCases.map { ($0.rawValue, 0) })
            for (syscall, count) in perContainer { expectedTotal[syscall.rawValue, default: 0] += 6 * count }
            for (syscall, count) in StressRuntime.shimMountOpsBySyscall { expectedTotal[syscall.rawValue, default: 0] += 3 * count }
            XCTAssertEqual(result.mountOpsBySyscall, expectedTotal, "\(strategy)")
            XCTAssertEqual(result.mountOps, 6 * result.mountOpsPerContainer + 3 * 2)

            // One shim per pod, in the runtime cgroup, named and shaped like containerd-shim-runc-v2.
            let shims = try XCTUnwrap(result.shims)
            XCTAssertEqual(shims.count, 3)
            XCTAssertEqual(Set(shims.map(\.pid)).count, 3)
            for (pod, shim) in shims.enumerated() {
                let containers = Array(result.containerList[2 * pod..<2 * pod + 2])
                XCTAssertNil(shim.error)
                XCTAssertEqual(shim.joinedCgroup, runtimeCgroup)
                XCTAssertEqual(shim.comm, "containerd-shim")
                XCTAssertEqual(shim.firstTaskID, containers[0].id)
                XCTAssertEqual(shim.commandLine, ["containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", containers[0].id,
                                                  "-address", "/run/containerd/containerd.sock"])
                XCTAssertEqual(shim.mountOpsBySyscall, ["unshare": 1, "mount": 1])
                XCTAssertEqual(shim.usernsChildren, Array(repeating: StressUsernsChild(
                    comm: "containerd[getU", commandLine: "containerd[getUsernsFD]", ownUserNamespace: true), count: 2))
                for container in containers {
                    XCTAssertEqual(container.shimPID, shim.pid)
                    XCTAssertEqual(container.podUID, shim.podUID)
                }
            }

            // Each container: its mounts made from the runtime cgroup, its process in its pod's cgroup,
            // its root on containerd's task path.
            for container in result.containerList {
                XCTAssertEqual(container.mountOpsBySyscall, Dictionary(uniqueKeysWithValues: perContainer.map { ($0.key.rawValue, $0.value) }))
                XCTAssertEqual(container.mountOps, result.mountOpsPerContainer)
                XCTAssertEqual(container.mountCgroup, runtimeCgroup)
                let podUID = try XCTUnwrap(container.podUID)
                XCTAssertEqual(container.cgroup, "\(parent)/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
                               + podUID.replacingOccurrences(of: "-", with: "_") + ".slice/cri-containerd-\(container.id).scope")
                XCTAssertEqual(container.joinedCgroup, container.cgroup)
                XCTAssertEqual(container.rootfs, "\(result.scratchDirectory)/run/containerd/io.containerd.runtime.v2.task/k8s.io/\(container.id)/rootfs")
                XCTAssertGreaterThan(container.setupMilliseconds ?? 0, 0)
            }

            // The victims: mountinfo readers, timed.
            let readers = try XCTUnwrap(result.readers)
            XCTAssertEqual(readers.processes, 2)
            XCTAssertEqual(readers.errors, [])
            XCTAssertEqual(readers.cgroup, "\(parent)/system.slice/kubelet.service")
            XCTAssertGreaterThan(readers.reads, 0)
            XCTAssertGreaterThan(readers.p50Milliseconds, 0)
            XCTAssertGreaterThanOrEqual(readers.p99Milliseconds, readers.p50Milliseconds)
            XCTAssertGreaterThanOrEqual(readers.maxMilliseconds, readers.p99Milliseconds)
            try assertCleanedUp(result)
        }
    }

    func testOverlayOptionsLongerThanAPageAreMountedFromTheirCommonParent() throws {
        // 300 lower directories of ~60 bytes each do not fit in mount(2)'s page; the shim checks
        // that the overlay shows the bottom layer's file and the top layer's number.
        for strategy in StressStrategy.allCases {
            var options = containerdRun(strategy)
            options.containers = 2
            options.layers = 300
            options.readers = 0
            let result = try StressRunner(options: options).run()
            XCTAssertEqual(result.failures, 0, result.containerList.compactMap(\.error).joined(separator: "; "))
            XCTAssertEqual(result.containerList.map(\.mountOps), Array(repeating: strategy.mountOps(layers: 300, runtime: .containerd), count: 2))
            XCTAssertNil(result.readers)
            try assertCleanedUp(result)
        }
    }

    func testAContainerFailingInItsShimIsReportedAndEverythingIsStillRemoved() throws {
        for strategy in StressStrategy.allCases {
            var options = containerdRun(strategy)
            options.injectedFailure = InjectedFailure(container: 3, afterMountOps: 2)
            let result = try StressRunner(options: options).run()
            XCTAssertEqual(result.failures, 1, "\(strategy)")
            let failed = result.containerList[3]
            XCTAssertEqual(failed.mountOps, 2)
            XCTAssertNil(failed.setupMilliseconds)
            XCTAssertTrue(failed.error?.contains("injected failure after 2 mount operations") ?? false, failed.error ?? "no error")
            // Its pod's other container, and every other pod, started.
            XCTAssertEqual(result.containerList.filter { $0.error == nil }.count, 5)
            try assertCleanedUp(result)
        }
    }

    func testSIGTERMMidRunStopsTheShimsAndLeavesNothing() throws {
        let scratchParent = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-stress-test-\(UUID())")
        try FileManager.default.createDirectory(at: scratchParent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratchParent) }
        let run = try LockscopeProcess(["stress", "--runtime", "containerd", "--containers", "20000", "--containers-per-pod", "4",
                                        "--layers", "20", "--parallel", "2", "--readers", "2", "--scratch-parent", scratchParent.path],
                                       directory: scratchParent.path)
        defer {
            // If the test failed before stopping the run: SIGKILL it, and let the next run remove what it left.
            if run.process.isRunning {
                kill(run.pid, SIGKILL)
                run.process.waitUntilExit()
                _ = try? LockscopeRun.run(["stress", "--containers", "1", "--layers", "1", "--parallel", "1", "--scratch-parent", scratchParent.path])
            }
        }

        // A live shim, seen from outside: its name, command line and cgroup.
        let shim = try waitForShim(of: run.pid)
        let runName = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: scratchParent.path).first { $0.hasPrefix("lockscope-stress-") })
        XCTAssertEqual(shim.cgroup, "/\(runName)/system.slice/containerd.service")
        XCTAssertEqual(Array(shim.commandLine.prefix(4)), ["containerd-shim-runc-v2", "-namespace", "k8s.io", "-id"])
        XCTAssertEqual(Array(shim.commandLine.suffix(2)), ["-address", "/run/containerd/containerd.sock"])
        XCTAssertEqual(shim.commandLine.count, 7)

        run.signal(SIGTERM)
        XCTAssertEqual(run.waitForExit(), 128 + SIGTERM, run.stderr)
        XCTAssertEqual(run.stderr, "lockscope stress: interrupted by SIGTERM: the workers were stopped and all mounts, directories and cgroups removed\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratchParent.path).filter { !$0.hasPrefix(".") }, [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: try cgroupRoot() + "/" + runName), "cgroup left behind")
        XCTAssertFalse(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).contains(runName), "a mount left behind")
        XCTAssertFalse(ProcessIdentity(pid: shim.pid).map { $0.startTime == shim.startTime && !$0.isZombie } ?? false, "the shim still runs")
    }

    func testTheCommandLineSummarisesPodsShimsAndReaders() throws {
        let run = try LockscopeRun.run(["stress", "--runtime", "containerd", "--containers", "4", "--layers", "3", "--parallel", "2"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "lockscope stress: 4 containers in 2 pods of 2 × 3 layers, per-layer, containerd runtime, parallel 2, 1 round, kubepods cgroups")
        XCTAssertEqual(lines.dropFirst().first,
                       "  mount ops       60 (14 per container, 2 per shim): unshare 2, mount 6, open_tree 12, mount_setattr 12, move_mount 12, umount2 16")
        XCTAssertTrue(lines.contains { $0.hasPrefix("  mountinfo reads ") && $0.contains(" by 2 readers: p50 ") }, run.stdout)
    }

    func testBadContainerdOptionsExitWithTwoAndOneLine() throws {
        let cases = [
            (["--runtime", "containerd", "--containers", "5", "--containers-per-pod", "2"],
             "lockscope stress: --containers (5) must be a multiple of --containers-per-pod (2)\n"),
            (["--runtime", "containerd", "--cgroup-style", "docker"],
             "lockscope stress: --runtime containerd puts containers in kubepods cgroups: drop --cgroup-style docker\n"),
            (["--containers-per-pod", "2"], "lockscope stress: --containers-per-pod needs --runtime containerd (the simple runtime has no pods)\n"),
        ]
        for (arguments, message) in cases {
            let run = try LockscopeRun.run(["stress"] + arguments)
            XCTAssertEqual(run.status, 2, arguments.joined(separator: " "))
            XCTAssertEqual(run.stdout, "")
            XCTAssertEqual(run.stderr, message)
        }
    }

    // MARK: Helpers

    /// 3 pods × 2 containers × 4 layers, two shims at a time, two readers.
    private func containerdRun(_ strategy: StressStrategy) -> StressOptions {
        var options = containerdOptions(containers: 6, containersPerPod: 2, readers: 2)
        options.layers = 4
        options.parallel = 2
        options.strategy = strategy
        options.workerExecutable = (try? LockscopeBinary.path()) ?? "lockscope binary not found"
        return options
    }

    private struct LiveShim {
        var pid: pid_t
        var startTime: UInt64
        var commandLine: [String]
        var cgroup: String?
    }

    /// The first running child of `parent` named `containerd-shim`, read from /proc while it runs.
    private func waitForShim(of parent: pid_t) throws -> LiveShim {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = pid_t(entry),
                      let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8), comm == "containerd-shim\n",
                      let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                      let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 19,
                      fields[0] != "Z", pid_t(fields[1]) == parent, let startTime = UInt64(fields[19]),
                      let cgroup = try? MountSteps.cgroup(in: "/proc/\(pid)/cgroup") else { continue }
                let arguments = commandLine(of: pid).split(separator: "\0").map(String.init)
                // A shim that has not renamed itself yet still shows the worker's arguments.
                guard arguments.first == "containerd-shim-runc-v2", arguments.dropFirst().first == "-namespace" else { continue }
                return LiveShim(pid: pid, startTime: startTime, commandLine: arguments, cgroup: cgroup)
            }
            usleep(2_000)
        }
        throw TestSetupError(description: "no running containerd-shim child of \(parent) within 20 s")
    }
}
