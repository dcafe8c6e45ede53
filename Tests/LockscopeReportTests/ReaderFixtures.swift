import Foundation
import LockscopeCore
import LockscopeTestSupport
import XCTest

/// Profiles and a way to run the built `lockscope` for the tests of every command that reads profiles.
enum ReaderFixtures {
    static let container = String(repeating: "3f2a9c1b", count: 8)

    static func stats(_ count: UInt64, total: UInt64, max: UInt64) -> WaitStats {
        WaitStats(contentions: count, totalWaitNs: total, minWaitNs: 100, maxWaitNs: max, p50WaitNs: total / Swift.max(count, 1),
                  p90WaitNs: max / 2, p99WaitNs: max, p999WaitNs: max,
                  histogram: [HistogramBucket(lowerNs: 64, upperNs: 128, count: count / 2),
                              HistogramBucket(lowerNs: 1024, upperNs: 2048, count: count - count / 2)])
    }

    /// A profile with every section a reader renders: stacks split by CPU and container, every breakdown,
    /// hand-offs, owners, containers, mount accounting and a topology.
    static func rich(locks count: Int = 3) -> Profile {
        let topology = Topology(cpus: (0..<4).map {
            Topology.CPU(id: $0, core: $0 % 2, socket: $0 / 2, die: 0, node: $0 / 2, llc: $0 / 2, smtSiblings: [$0])
        })
        let locks = (0..<count).map { index -> LockProfile in
            let total = UInt64(1_000_000 * (count - index))
            let lockStats = stats(100, total: total, max: total / 10)
            let half = stats(50, total: total / 2, max: total / 10)
            return LockProfile(
                name: index == 0 ? "namespace_sem" : "lock_\(index)+0x\(index)", identity: index == 0 ? .inferred : .caller,
                kind: index % 2 == 0 ? .rwsem : .spinlock, address: "0xffffffff8300\(1000 + index)", instances: 1 + index % 2,
                stats: lockStats, read: half, write: half,
                stacks: [StackProfile(frames: ["rwsem_down_write_slowpath", "down_write", "path_umount", "__x64_sys_umount"],
                                      count: 80, totalWaitNs: total * 8 / 10, maxWaitNs: total / 10,
                                      contexts: [StackContext(cpu: 0, container: container, count: 50, totalWaitNs: total / 2),
                                                 StackContext(cpu: 3, container: "host", count: 30, totalWaitNs: total * 3 / 10)])],
                byCpu: [KeyedStats(key: "0", stats: half), KeyedStats(key: "3", stats: half)],
                bySocket: [KeyedStats(key: "0", stats: half), KeyedStats(key: "1", stats: half)],
                byNode: [KeyedStats(key: "0", stats: lockStats)], byLlc: [KeyedStats(key: "0", stats: lockStats)],
                byContainer: [KeyedStats(key: container, stats: half), KeyedStats(key: "host", stats: half)],
                byProcess: [KeyedStats(key: "runc[812]", stats: lockStats)],
                handoffs: [HandoffStats(handoff: .sameCPU, stats: half), HandoffStats(handoff: .otherSocket, stats: half)],
                owners: index % 2 == 0 ? [OwnerBlame(waiterContainer: container, ownerContainer: "host", ownerPid: 812,
                                                     ownerComm: "containerd", contentions: 100, totalWaitNs: total)] : nil)
        }
        let syscall = SyscallStats(syscall: "open_tree", stats: stats(40, total: 400_000, max: 30_000), errors: 1)
        return Profile(hostname: "node-1", kernel: "6.18.44", startedAt: "2026-11-26T10:00:00Z", durationNs: 5_000_000_000,
                       events: 1000, drops: Drops(), recording: Recording(), topology: topology,
                       containers: [ContainerSummary(id: container, runtime: "docker", podUid: nil, cgroup: "/docker/\(container)",
                                                     contentions: 100, totalWaitNs: 1_000_000, p99WaitNs: 2_000)],
                       mounts: MountSummary(totalOps: 40, bySyscall: [syscall], byContainer: [
                           ContainerMounts(id: container, runtime: "docker", ops: 40, bySyscall: [syscall])]),
                       locks: locks)
    }

    /// The profiles the hardening issue crafted: each crashed every reader that added them up.
    static var crafted: [(name: String, profile: Profile)] {
        var eventsOverflow = rich()
        eventsOverflow.events = .max
        eventsOverflow.dropped = 1
        var twoHalves = rich(locks: 2)
        for index in twoHalves.locks.indices { twoHalves.locks[index].stats.totalWaitNs = 1 << 63 }
        return [("events-overflow", eventsOverflow), ("two-locks-2^63", twoHalves), ("everything-max", everythingMax())]
    }

    /// Every count and time of every lock, container, mount, start, victim and second at 2^64-1 (the
    /// seconds too: a timeline of three bins 2^64-1 ns wide).
    static func everythingMax() -> Profile {
        func max(_ stats: WaitStats) -> WaitStats {
            WaitStats(contentions: .max, totalWaitNs: .max, minWaitNs: .max, maxWaitNs: .max, p50WaitNs: .max, p90WaitNs: .max,
                      p99WaitNs: .max, p999WaitNs: .max,
                      histogram: stats.histogram.map { HistogramBucket(lowerNs: $0.lowerNs, upperNs: .max, count: .max) })
        }
        var profile = rich()
        profile.events = .max
        profile.dropped = .max
        profile.durationNs = 1
        for index in profile.locks.indices {
            var lock = profile.locks[index]
            lock.stats = max(lock.stats)
            lock.read = max(lock.read)
            lock.write = max(lock.write)
            lock.stacks = lock.stacks.map {
                StackProfile(frames: $0.frames, count: .max, totalWaitNs: .max, maxWaitNs: .max,
                             contexts: $0.contexts.map { StackContext(cpu: $0.cpu, container: $0.container, count: .max, totalWaitNs: .max) })
            }
            for keyPath in [\LockProfile.byCpu, \.bySocket, \.byNode, \.byLlc, \.byContainer, \.byProcess] {
                lock[keyPath: keyPath] = lock[keyPath: keyPath].map { KeyedStats(key: $0.key, stats: max($0.stats)) }
            }
            lock.handoffs = lock.handoffs.map { HandoffStats(handoff: $0.handoff, stats: max($0.stats)) }
            lock.owners = lock.owners?.map {
                OwnerBlame(waiterContainer: $0.waiterContainer, ownerContainer: $0.ownerContainer, ownerPid: $0.ownerPid,
                           ownerComm: $0.ownerComm, contentions: .max, totalWaitNs: .max)
            }
            profile.locks[index] = lock
        }
        profile.containers = profile.containers.map {
            ContainerSummary(id: $0.id, runtime: $0.runtime, podUid: $0.podUid, cgroup: $0.cgroup, contentions: .max,
                             totalWaitNs: .max, p99WaitNs: .max)
        }
        let syscall = SyscallStats(syscall: "open_tree", stats: max(stats(2, total: 2, max: 2)), errors: .max)
        profile.mounts = MountSummary(totalOps: .max, bySyscall: [syscall, syscall],
                                      byContainer: [ContainerMounts(id: container, runtime: "docker", ops: .max, bySyscall: [syscall]),
                                                    ContainerMounts(id: "other", runtime: "docker", ops: .max, bySyscall: [syscall])])
        let share = LockWaitShare(lock: "namespace_sem", contentions: .max, totalWaitNs: .max, maxWaitNs: .max)
        for index in profile.mounts!.byContainer.indices {
            profile.mounts!.byContainer[index].pod = container
            profile.mounts!.byContainer[index].attribution = .mountPath
            profile.mounts!.byContainer[index].start = ContainerStart(firstSyscallNs: .max, setupNs: index == 0 ? .max : 1,
                                                                      inSyscallsNs: .max, lockWaitNs: .max, byLock: [share, share])
        }
        let holder = Holder(process: "containerd-shim[9]", container: container, contentions: .max, totalWaitNs: .max)
        profile.victims = ["systemd[1]", "kubelet[2]"].map {
            Victim(process: $0, container: "host", contentions: .max, totalWaitNs: .max, maxWaitNs: .max, byLock: [share, share],
                   holders: [holder, holder])
        }
        profile.timeline = Timeline(binNs: .max, bins: (0..<3).map { _ in
            TimelineBin(startNs: .max, containersStarted: .max, mountOps: .max, namespaceSemWaitNs: .max, mountLockWaitNs: .max,
                        otherWaitNs: .max, victimWaitNs: .max, victimMaxWaitNs: .max)
        })
        return profile
    }
}

/// The built `lockscope` binary, run with a deadline.
struct LockscopeRun {
    var status: Int32
    var stdout: Data
    var stderr: String
    /// Whether it was still running at the deadline (and was killed).
    var timedOut: Bool
    /// Killed by a signal (a trap is SIGILL or SIGTRAP).
    var signaled: Bool
    var seconds: Double

    var output: String { String(decoding: stdout, as: UTF8.self) }

    /// Runs `lockscope arguments` in `directory`, output to files there so that a large output cannot block
    /// it; kills it after `deadline` seconds.
    static func run(_ arguments: [String], deadline: Double = 30, environment: [String: String]? = nil,
                    in directory: String) throws -> LockscopeRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try LockscopeBinary.path())
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        if let environment { process.environment = environment }
        let outPath = directory + "/stdout-\(UUID().uuidString)", errPath = directory + "/stderr-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        let finished = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in finished.signal() }
        let started = Date()
        try process.run()
        let timedOut = finished.wait(timeout: .now() + deadline) == .timedOut
        if timedOut {
            kill(process.processIdentifier, SIGKILL)
            finished.wait()
        }
        let run = LockscopeRun(status: process.terminationStatus, stdout: try Data(contentsOf: URL(fileURLWithPath: outPath)),
                               stderr: try String(contentsOfFile: errPath, encoding: .utf8), timedOut: timedOut,
                               signaled: process.terminationReason == .uncaughtSignal, seconds: Date().timeIntervalSince(started))
        try? FileManager.default.removeItem(atPath: outPath)
        try? FileManager.default.removeItem(atPath: errPath)
        return run
    }
}

extension XCTestCase {
    /// A fresh scratch directory, removed after the test.
    func scratchDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "lockscope-readers-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }
}
