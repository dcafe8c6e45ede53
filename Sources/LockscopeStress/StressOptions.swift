import Foundation
import LockscopeCore

/// How a simulated container idmaps its image layers before stacking them with overlayfs.
public enum StressStrategy: String, CaseIterable, Codable, Sendable {
    /// One idmapped bind mount per layer, O(layers) mount operations: containerd 2.0.0-2.0.6 and
    /// 2.1.0-2.1.4 (docs/stress.md).
    case perLayer = "per-layer"
    /// One idmapped bind mount of the layers' common parent directory, O(1) mount operations: containerd
    /// 2.0.7, 2.1.5 and 2.2.0 on (containerd PR 12092, one `open_tree` of the `snapshots` directory).
    case commonParent = "common-parent"

    /// The mount-family syscalls one container issues, by syscall, when every step succeeds.
    ///
    /// Both strategies start with `unshare(CLONE_NEWNS)` and `mount(MS_REC|MS_PRIVATE)` of `/`, and end
    /// with one overlay `mount` and a teardown `umount2` of it. In between:
    /// - per-layer: for each of the L layers `open_tree` + `mount_setattr` + `move_mount`, and after the
    ///   overlay is mounted L `umount2(MNT_DETACH)`: 1 + 1 + 3L + 1 + L + 1 = 4L + 4 in all;
    /// - common-parent: one `open_tree` + `mount_setattr` + `move_mount` of the parent, one
    ///   `umount2(MNT_DETACH)` of it after the overlay: 1 + 1 + 3 + 1 + 1 + 1 = 8 in all.
    public func mountOpsBySyscall(layers: Int) -> [StressSyscall: Int] {
        let idmappedMounts = self == .perLayer ? layers : 1
        return [
            .unshare: 1,
            .mount: 2,
            .openTree: idmappedMounts,
            .mountSetattr: idmappedMounts,
            .moveMount: idmappedMounts,
            .umount2: idmappedMounts + 1,
        ]
    }

    /// The total of ``mountOpsBySyscall(layers:)``: 4L + 4 for per-layer, 8 for common-parent.
    public func mountOps(layers: Int) -> Int {
        mountOpsBySyscall(layers: layers).values.reduce(0, +)
    }

    /// The mount-family syscalls one container issues in a containerd shim (`--runtime containerd`),
    /// by syscall, when every step succeeds. The shim's own `unshare(CLONE_NEWNS)` and private `/`
    /// mount are the pod's (``StressRuntime/shimMountOpsBySyscall``), not a container's.
    /// - per-layer: for each of the L layers `open_tree` + `mount_setattr` + `move_mount`, one overlay
    ///   `mount`, L `umount2` by the UnmountRecursive of the temporary directory, one `umount2` of the
    ///   root at teardown: 3L + 1 + L + 1 = 4L + 2;
    /// - common-parent: one `open_tree` + `mount_setattr` + `move_mount` of the snapshots directory,
    ///   the overlay `mount`, one `umount2` of the temporary mount, one of the root: 6.
    public func containerdMountOpsBySyscall(layers: Int) -> [StressSyscall: Int] {
        let idmappedMounts = self == .perLayer ? layers : 1
        return [
            .mount: 1,
            .openTree: idmappedMounts,
            .mountSetattr: idmappedMounts,
            .moveMount: idmappedMounts,
            .umount2: idmappedMounts + 1,
        ]
    }

    /// What one container issues under `runtime`: ``mountOpsBySyscall(layers:)`` or
    /// ``containerdMountOpsBySyscall(layers:)``.
    public func mountOpsBySyscall(layers: Int, runtime: StressRuntime) -> [StressSyscall: Int] {
        switch runtime {
        case .simple: mountOpsBySyscall(layers: layers)
        case .containerd: containerdMountOpsBySyscall(layers: layers)
        }
    }

    /// The total of ``mountOpsBySyscall(layers:runtime:)``.
    public func mountOps(layers: Int, runtime: StressRuntime) -> Int {
        mountOpsBySyscall(layers: layers, runtime: runtime).values.reduce(0, +)
    }
}

/// Who makes a simulated container's mounts.
public enum StressRuntime: String, CaseIterable, Codable, Sendable {
    /// Each container mounts its own root in its own process and cgroup.
    case simple
    /// As containerd 2.x with user namespaces: one shim process per pod, every shim in the runtime's
    /// cgroup (`system.slice/containerd.service`), mounts each of its pod's containers' roots on its
    /// own thread; only the containers' processes go to the pods' cgroups.
    case containerd

    /// What each shim issues once for its pod: `unshare(CLONE_NEWNS)` and `mount(MS_REC|MS_PRIVATE)` of `/`
    /// (the private mount namespace that keeps the storm off the host's mount table).
    public static let shimMountOpsBySyscall: [StressSyscall: Int] = [.unshare: 1, .mount: 1]
}

/// The mount-family syscalls a stress worker issues and counts.
/// Cases are in the order a container issues them.
public enum StressSyscall: String, CaseIterable, Codable, Sendable {
    case unshare
    case mount
    case openTree = "open_tree"
    case mountSetattr = "mount_setattr"
    case moveMount = "move_mount"
    case umount2
}

/// How each container's cgroup v2 is named, after the runtime that would have created it.
public enum CgroupStyle: String, CaseIterable, Codable, Sendable {
    /// `<run>/docker-<id>.scope`, runtime "docker".
    case docker
    /// `<run>/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`,
    /// runtime "containerd".
    case kubepods
    /// No cgroup: containers stay in the caller's cgroup and have no runtime.
    case none
}

/// Makes one container's worker fail on purpose, to test cleanup after a midway failure.
public struct InjectedFailure: Sendable {
    /// The container (0-based, counted across rounds) whose worker fails.
    public var container: Int
    /// How many mount-family syscalls that worker issues before it fails instead of issuing the next.
    public var afterMountOps: Int

    public init(container: Int, afterMountOps: Int) {
        self.container = container
        self.afterMountOps = afterMountOps
    }
}

/// What `lockscope stress` runs.
public struct StressOptions: Sendable {
    /// The largest layer count: overlayfs stacks at most 500 lower layers.
    public static let maxLayers = 500
    /// The most containers a run may start (containers × rounds): each needs its own 65536-id range.
    public static let maxContainersPerRun = 65_000

    /// Containers started per round.
    public var containers = 32
    /// Image layers per container.
    public var layers = 20
    /// Containers starting at the same time.
    public var parallel = 2 * ProcessInfo.processInfo.activeProcessorCount
    public var strategy = StressStrategy.perLayer
    /// Rounds run one after the other, each starting `containers` containers.
    public var rounds = 1
    public var cgroupStyle = CgroupStyle.docker
    /// Who makes the mounts: each container itself, or a containerd shim per pod.
    public var runtime = StressRuntime.simple
    /// Containers per pod, each pod served by one shim (`--runtime containerd` only).
    public var containersPerPod = 1
    /// Processes reading /proc/self/mountinfo in a loop while the storm runs, as systemd and kubelet do.
    public var readers = 0
    /// The `lockscope` binary to start workers from (`lockscope stress-worker`).
    public var workerExecutable = "/proc/self/exe"
    /// Where the run's scratch directory (layers and container work directories) is created:
    /// by default ``defaultScratchParent``.
    public var scratchParent = Self.defaultScratchParent
    /// For tests: one worker fails midway.
    public var injectedFailure: InjectedFailure?

    public init() {}

    /// /dev/shm when it is a tmpfs: no disk I/O, so filesystem locks and journal waits stay out of
    /// the profile and thousands of work directories are removed in milliseconds. Otherwise $TMPDIR
    /// or /tmp. (Idmapped mounts of tmpfs need Linux 6.3.)
    public static var defaultScratchParent: String {
        if MountTable.current().filesystemType(at: "/dev/shm") == "tmpfs" { return "/dev/shm" }
        return ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    }

    /// Checks every option; throws ``StressError/invalidOption(_:)`` naming the first bad one.
    public func validate() throws {
        func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
            if !condition { throw StressError.invalidOption(message()) }
        }
        try require(containers >= 1, "--containers must be at least 1, got \(containers)")
        try require((1...Self.maxLayers).contains(layers),
                    "--layers must be between 1 and \(Self.maxLayers) (overlayfs stacks at most \(Self.maxLayers) lower layers), got \(layers)")
        try require(parallel >= 1, "--parallel must be at least 1, got \(parallel)")
        try require(rounds >= 1, "--rounds must be at least 1, got \(rounds)")
        try require(containers <= Self.maxContainersPerRun / rounds,
                    "--containers × --rounds must be at most \(Self.maxContainersPerRun) (each container needs its own 65536-id range): lower one of them")
        try require(readers >= 0, "--readers must be at least 0, got \(readers)")
        try require(containersPerPod >= 1, "--containers-per-pod must be at least 1, got \(containersPerPod)")
        switch runtime {
        case .simple:
            try require(containersPerPod == 1, "--containers-per-pod needs --runtime containerd (the simple runtime has no pods)")
        case .containerd:
            try require(cgroupStyle == .kubepods,
                        "--runtime containerd puts containers in kubepods cgroups: drop --cgroup-style \(cgroupStyle.rawValue)")
            try require(containers % containersPerPod == 0,
                        "--containers (\(containers)) must be a multiple of --containers-per-pod (\(containersPerPod))")
        }
        var isDirectory: ObjCBool = false
        try require(FileManager.default.fileExists(atPath: scratchParent, isDirectory: &isDirectory) && isDirectory.boolValue
                        && access(scratchParent, W_OK) == 0,
                    "--scratch-parent \(scratchParent) is not a writable directory: pass one that is")
        if let failure = injectedFailure {
            try require((0..<(containers * rounds)).contains(failure.container) && failure.afterMountOps >= 0,
                        "the injected failure must name a container below \(containers * rounds) and a mount-op count ≥ 0")
        }
    }
}
