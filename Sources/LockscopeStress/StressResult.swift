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

    enum CodingKeys: String, CodingKey {
        case id, runtime, cgroup, round, error
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
        var lines = [
            "lockscope stress: \(Units.count(containers, "container")) × \(Units.count(layers, "layer")), \(strategy.rawValue), "
                + "parallel \(parallel), \(Units.count(rounds, "round")), \(cgroupText)",
            "  mount ops       \(mountOps) (\(mountOpsPerContainer) per container): \(bySyscall)",
            "  set-up latency  p50 \(Self.format(setupP50Milliseconds)) ms, p90 \(Self.format(setupP90Milliseconds)) ms, "
                + "p99 \(Self.format(setupP99Milliseconds)) ms, max \(Self.format(setupMaxMilliseconds)) ms",
            "  wall time       \(Self.format(wallMilliseconds)) ms",
            "  failures        \(failures)",
        ]
        if let failed = containerList.first(where: { $0.error != nil }), let error = failed.error {
            lines.append("  first failure   container \(failed.id.prefix(12)): \(error)")
        }
        return lines.joined(separator: "\n")
    }

    private static func format(_ milliseconds: Double) -> String {
        String(format: "%.2f", milliseconds)
    }
}
