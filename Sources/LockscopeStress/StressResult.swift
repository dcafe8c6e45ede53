import Foundation
import LockscopeCore

/// One simulated container: who the profiler should attribute its waits to, and how its start went.
public struct StressContainer: Codable, Sendable, Equatable {
    /// The container id: 64 random hex digits, as docker and containerd make them.
    public var id: String
    /// "docker", "containerd", or nil with `--cgroup-style none`.
    public var runtime: String?
    /// The pod's UID (kubepods style only).
    public var podUID: String?
    /// The planned cgroup v2 path, relative to the cgroup2 root (e.g. "/lockscope-stress-…/docker-<id>.scope").
    public var cgroup: String?
    /// The cgroup v2 path the worker found itself in (from /proc/self/cgroup) after joining.
    public var joinedCgroup: String?
    /// The round (0-based) this container started in.
    public var round: Int
    /// Mount-family syscalls this container's worker issued.
    public var mountOps: Int
    /// From the worker's first mount operation to its overlay being mounted; nil if it never was.
    public var setupMilliseconds: Double?
    /// Why this container failed; nil if it started and was torn down cleanly.
    public var error: String?
    /// `--runtime containerd` only: the pid of the shim that mounted this container's root, the
    /// overlay's target, this container's mount operations by syscall, and the cgroup v2 path of the
    /// shim thread that issued them (read by that thread right after the overlay mount).
    public var shimPID: Int32? = nil
    public var rootfs: String? = nil
    public var mountOpsBySyscall: [String: Int]? = nil
    public var mountCgroup: String? = nil

    enum CodingKeys: String, CodingKey {
        case id, runtime, cgroup, round, error, rootfs
        case shimPID = "shim_pid"
        case mountOpsBySyscall = "mount_ops_by_syscall"
        case mountCgroup = "mount_cgroup"
        case podUID = "pod_uid"
        case joinedCgroup = "joined_cgroup"
        case mountOps = "mount_ops"
        case setupMilliseconds = "setup_ms"
    }

    /// Writes every key, absent values as null.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(runtime, forKey: .runtime)
        try container.encode(podUID, forKey: .podUID)
        try container.encode(cgroup, forKey: .cgroup)
        try container.encode(joinedCgroup, forKey: .joinedCgroup)
        try container.encode(round, forKey: .round)
        try container.encode(mountOps, forKey: .mountOps)
        try container.encode(setupMilliseconds, forKey: .setupMilliseconds)
        try container.encode(error, forKey: .error)
        try container.encodeIfPresent(shimPID, forKey: .shimPID)
        try container.encodeIfPresent(rootfs, forKey: .rootfs)
        try container.encodeIfPresent(mountOpsBySyscall, forKey: .mountOpsBySyscall)
        try container.encodeIfPresent(mountCgroup, forKey: .mountCgroup)
    }
}

/// One containerd shim (`--runtime containerd`): the process that mounted its pod's containers' roots.
public struct StressShim: Codable, Sendable, Equatable {
    public var pid: Int32
    public var podUID: String
    /// The pod's first container, whose id the shim's `-id` names.
    public var firstTaskID: String
    /// Its comm and command line as /proc showed them while it ran.
    public var comm: String?
    public var commandLine: [String]
    /// Its cgroup v2 path after joining the runtime's cgroup.
    public var joinedCgroup: String?
    /// The shim's own mount operations (its private mount namespace), by syscall.
    public var mountOpsBySyscall: [String: Int]
    /// The getUsernsFD children its containers forked: their comm and command line, and whether each
    /// was in a user namespace of its own, in container order.
    public var usernsChildren: [StressUsernsChild]
    /// Why the shim failed as a whole; nil if it ran (its containers report their own errors).
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case pid, comm, error
        case podUID = "pod_uid"
        case firstTaskID = "first_task_id"
        case commandLine = "command_line"
        case joinedCgroup = "joined_cgroup"
        case mountOpsBySyscall = "mount_ops_by_syscall"
        case usernsChildren = "userns_children"
    }
}

/// A getUsernsFD child as its shim saw it before killing it.
public struct StressUsernsChild: Codable, Sendable, Equatable {
    public var comm: String?
    public var commandLine: String?
    public var ownUserNamespace: Bool?

    enum CodingKeys: String, CodingKey {
        case comm
        case commandLine = "command_line"
        case ownUserNamespace = "own_user_namespace"
    }
}

/// How long the `--readers` processes took to read /proc/self/mountinfo while the storm ran.
public struct StressReaders: Codable, Sendable, Equatable {
    public var processes: Int
    /// Their process ids (to find them in a profile's `by_process` or another tool's count).
    public var pids: [Int32]
    /// Their cgroup v2 path; nil without cgroups.
    public var cgroup: String?
    /// Complete reads of the file, all readers together.
    public var reads: Int
    /// Read latency over every read (percentiles within 1.1 %, the maximum exact).
    public var p50Milliseconds: Double
    public var p99Milliseconds: Double
    public var maxMilliseconds: Double
    /// Readers that failed, with why.
    public var errors: [String]

    enum CodingKeys: String, CodingKey {
        case processes, pids, cgroup, reads, errors
        case p50Milliseconds = "p50_ms"
        case p99Milliseconds = "p99_ms"
        case maxMilliseconds = "max_ms"
    }
}

/// What a stress run did: the `--json` output of `lockscope stress`.
///
/// Latency percentiles are over the containers whose overlay got mounted (0 when none did);
/// `wall_ms` runs from the first worker's launch to the last one's exit.
public struct StressResult: Codable, Sendable {
    public var strategy: StressStrategy
    public var containers: Int
    public var layers: Int
    public var parallel: Int
    public var rounds: Int
    public var cgroupStyle: CgroupStyle
    /// The run's cgroup v2 directory, relative to the cgroup2 root; nil with `--cgroup-style none`.
    public var cgroupParent: String?
    /// The run's scratch directory (removed when the run ends).
    public var scratchDirectory: String
    /// Mount-family syscalls all workers issued, failed ones included.
    public var mountOps: Int
    /// What one container issues when every step succeeds: ``StressStrategy/mountOps(layers:)``.
    public var mountOpsPerContainer: Int
    /// ``mountOps`` by syscall name (mount, umount2, open_tree, move_mount, mount_setattr, unshare).
    public var mountOpsBySyscall: [String: Int]
    public var setupP50Milliseconds: Double
    public var setupP90Milliseconds: Double
    public var setupP99Milliseconds: Double
    public var setupMaxMilliseconds: Double
    public var wallMilliseconds: Double
    /// Containers that failed.
    public var failures: Int
    /// Every container of every round, in start order.
    public var containerList: [StressContainer]
    public var runtime = StressRuntime.simple
    /// `--runtime containerd` only: containers per pod, the shims' cgroup v2 path (relative to the
    /// cgroup2 root) and every shim in start order.
    public var containersPerPod: Int? = nil
    public var runtimeCgroup: String? = nil
    public var shims: [StressShim]? = nil
    /// Mount operations each shim issues for its pod (containerd only).
    public var mountOpsPerShim: Int? = nil
    /// With `--readers`: their mountinfo read latency.
    public var readers: StressReaders? = nil

    enum CodingKeys: String, CodingKey {
        case strategy, containers, layers, parallel, rounds, failures
        case cgroupStyle = "cgroup_style"
        case cgroupParent = "cgroup_parent"
        case scratchDirectory = "scratch_directory"
        case mountOps = "mount_ops"
        case mountOpsPerContainer = "mount_ops_per_container"
        case mountOpsBySyscall = "mount_ops_by_syscall"
        case setupP50Milliseconds = "setup_p50_ms"
        case setupP90Milliseconds = "setup_p90_ms"
        case setupP99Milliseconds = "setup_p99_ms"
        case setupMaxMilliseconds = "setup_max_ms"
        case wallMilliseconds = "wall_ms"
        case containerList = "container_list"
        case runtime, shims, readers
        case containersPerPod = "containers_per_pod"
        case runtimeCgroup = "runtime_cgroup"
        case mountOpsPerShim = "mount_ops_per_shim"
    }

    /// Writes every key, an absent cgroup parent as null.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(strategy, forKey: .strategy)
        try container.encode(containers, forKey: .containers)
        try container.encode(layers, forKey: .layers)
        try container.encode(parallel, forKey: .parallel)
        try container.encode(rounds, forKey: .rounds)
        try container.encode(cgroupStyle, forKey: .cgroupStyle)
        try container.encode(cgroupParent, forKey: .cgroupParent)
        try container.encode(scratchDirectory, forKey: .scratchDirectory)
        try container.encode(mountOps, forKey: .mountOps)
        try container.encode(mountOpsPerContainer, forKey: .mountOpsPerContainer)
        try container.encode(mountOpsBySyscall, forKey: .mountOpsBySyscall)
        try container.encode(setupP50Milliseconds, forKey: .setupP50Milliseconds)
        try container.encode(setupP90Milliseconds, forKey: .setupP90Milliseconds)
        try container.encode(setupP99Milliseconds, forKey: .setupP99Milliseconds)
        try container.encode(setupMaxMilliseconds, forKey: .setupMaxMilliseconds)
        try container.encode(wallMilliseconds, forKey: .wallMilliseconds)
        try container.encode(failures, forKey: .failures)
        try container.encode(containerList, forKey: .containerList)
        try container.encode(runtime, forKey: .runtime)
        try container.encodeIfPresent(containersPerPod, forKey: .containersPerPod)
        try container.encodeIfPresent(runtimeCgroup, forKey: .runtimeCgroup)
        try container.encodeIfPresent(shims, forKey: .shims)
        try container.encodeIfPresent(mountOpsPerShim, forKey: .mountOpsPerShim)
        try container.encodeIfPresent(readers, forKey: .readers)
    }

    /// The result as one line of JSON with sorted keys.
    public func jsonLine() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// A few lines for a person.
    public var summary: String {
        let cgroupText = cgroupStyle == .none ? "no cgroups" : "\(cgroupStyle.rawValue) cgroups"
        let bySyscall = StressSyscall.allCases
            .map { "\($0.rawValue) \(mountOpsBySyscall[$0.rawValue] ?? 0)" }
            .joined(separator: ", ")
        let podText = containersPerPod.map { " in \(Units.count(containers / $0, "pod")) of \($0)" } ?? ""
        let runtimeText = runtime == .simple ? "" : ", \(runtime.rawValue) runtime"
        let shimText = mountOpsPerShim.map { ", \($0) per shim" } ?? ""
        var lines = [
            "lockscope stress: \(Units.count(containers, "container"))\(podText) × \(Units.count(layers, "layer")), \(strategy.rawValue)\(runtimeText), "
                + "parallel \(parallel), \(Units.count(rounds, "round")), \(cgroupText)",
            "  mount ops       \(mountOps) (\(mountOpsPerContainer) per container\(shimText)): \(bySyscall)",
            "  set-up latency  p50 \(Self.format(setupP50Milliseconds)) ms, p90 \(Self.format(setupP90Milliseconds)) ms, "
                + "p99 \(Self.format(setupP99Milliseconds)) ms, max \(Self.format(setupMaxMilliseconds)) ms",
            "  wall time       \(Self.format(wallMilliseconds)) ms",
            "  failures        \(failures)",
        ]
        if let readers {
            lines.insert("  mountinfo reads \(readers.reads) by \(Units.count(readers.processes, "reader")): p50 \(Self.format(readers.p50Milliseconds)) ms, "
                         + "p99 \(Self.format(readers.p99Milliseconds)) ms, max \(Self.format(readers.maxMilliseconds)) ms", at: 3)
        }
        if let failed = containerList.first(where: { $0.error != nil }), let error = failed.error {
            lines.append("  first failure   container \(failed.id.prefix(12)): \(error)")
        }
        return lines.joined(separator: "\n")
    }

    private static func format(_ milliseconds: Double) -> String {
        String(format: "%.2f", milliseconds)
    }
}
