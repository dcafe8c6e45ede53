import CMountSyscalls
import Foundation
import Glibc
import LockscopeCore

/// containerd's paths, below a run's scratch directory standing in for `/`.
struct ContainerdLayout {
    /// The directory that stands in for `/`.
    let root: String

    /// Where the overlayfs snapshotter keeps snapshot N: `<snapshots>/<N>/fs` (and `/work` for active ones).
    var snapshots: String { "\(root)/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots" }
    /// The runtime v2 task directories of the k8s.io namespace.
    var tasks: String { "\(root)/run/containerd/io.containerd.runtime.v2.task/k8s.io" }
    /// The shims' $TMPDIR, where the temporary idmapped mounts go.
    var temporary: String { "\(root)/tmp" }
    /// The containerd socket path a shim's `-address` names (not created: nothing listens on it).
    static let address = "/run/containerd/containerd.sock"

    func layer(snapshot: Int) -> String { "\(snapshots)/\(snapshot)/fs" }
    func rootfs(container id: String) -> String { "\(tasks)/\(id)/rootfs" }
}

/// What the stress run tells one shim (JSON on its command line, replaced by the shim's own).
struct ShimSpec: Codable {
    /// One container of the pod.
    struct Container: Codable {
        var id: String
        /// The container's active snapshot: its overlay's upper and work directories.
        var snapshot: Int
        /// The absolute cgroup directory its process goes to; nil for none.
        var cgroupDirectory: String?
        /// Fail, instead of issuing it, at this mount-family syscall of this container (for tests).
        var failAfterMountOps: Int?
    }

    var strategy: StressStrategy
    /// The image's layers are snapshots 1 … layers, the top one last.
    var layers: Int
    var root: String
    /// The runtime's cgroup directory (absolute) the shim joins first; nil for none.
    var runtimeCgroupDirectory: String?
    /// The command line the shim shows (`containerd-shim-runc-v2 -namespace k8s.io -id … -address …`).
    var commandLine: [String]
    /// The host uid and gid the pod's root maps to; the range is 65536 ids long.
    var idRangeStart: UInt32
    var containers: [Container]
    /// The stress run's process: the shim dies with it.
    var parentPID: Int32
}

/// What a shim prints back: one JSON line on stdout.
struct ShimReport: Codable {
    /// One container the shim started.
    struct Container: Codable {
        var id: String
        /// The overlay's target, `…/io.containerd.runtime.v2.task/k8s.io/<id>/rootfs`.
        var rootfs: String
        var mountOpsBySyscall: [String: Int] = [:]
        /// From the first mount operation to the overlay being mounted; nil if it never was.
        var setupNanoseconds: UInt64?
        /// The cgroup v2 path of the thread that issued this container's mount operations, read from
        /// /proc/thread-self/cgroup by that thread right after the overlay mount.
        var mountCgroup: String?
        /// The getUsernsFD child's comm, command line (arguments joined by spaces) and whether its user
        /// namespace differs from the shim's, read from /proc before it was killed.
        var usernsChildComm: String?
        var usernsChildCommandLine: String?
        var usernsChildInOwnUserNamespace: Bool?
        /// The container process's cgroup v2 path (from /proc/<pid>/cgroup) after the shim placed it.
        var processCgroup: String?
        var error: String?
    }

    var pid: Int32 = getpid()
    /// The shim's cgroup v2 path after joining the runtime's cgroup, its comm and its command line
    /// as /proc shows them after it renamed itself.
    var joinedCgroup: String?
    var comm: String?
    var commandLine: [String] = []
    /// The shim's own mount operations (its private mount namespace).
    var mountOpsBySyscall: [String: Int] = [:]
    var containers: [Container] = []
    var error: String?
}

/// `lockscope stress-worker --role shim`: a containerd-shim-runc-v2 look-alike serving one pod.
public enum ContainerdShim {
    /// The name the shim's executable has, and its comm (the kernel keeps 15 bytes: `containerd-shim`).
    static let executableName = "containerd-shim-runc-v2"
    /// The getUsernsFD child's argv[0]; its comm keeps the first 15 bytes, `containerd[getU`.
    static let usernsChildName = "containerd[getUsernsFD]"
    /// The comm of a container's own process (it stands for what runc would start).
    static let containerProcessName = "container-init"

    /// The shim's command line for a pod whose first task is `firstTaskID`.
    static func commandLine(firstTaskID: String) -> [String] {
        [executableName, "-namespace", "k8s.io", "-id", firstTaskID, "-address", ContainerdLayout.address]
    }

    /// Serves the pod in `encodedSpec`, prints the report as one JSON line and returns the exit status:
    /// 0 if every container started and was torn down, 1 otherwise.
    public static func run(encodedSpec: String) -> Int32 {
        let report = runWorker(encodedSpec: encodedSpec, report: ShimReport()) { (spec: ShimSpec, report) in
            try Shim(spec: spec).run(into: &report)
        }
        let failed = report.error != nil || report.containers.contains { $0.error != nil }
        return failed ? 1 : 0
    }
}

extension ShimSpec: WorkerSpecifying {}
extension ShimReport: WorkerReporting {}

/// The original argument area of this process (argv[0] up to the end of the last argument), which
/// /proc/PID/cmdline shows and which a new command line is written over.
struct ArgumentArea: @unchecked Sendable {
    let start: UnsafeMutablePointer<CChar>
    let capacity: Int

    /// Measured on first use, which must come before the area is rewritten.
    static let current: ArgumentArea = {
        let argv = CommandLine.unsafeArgv
        let count = Int(CommandLine.argc)
        let start = argv[0]!
        let end = argv[count - 1]! + strlen(argv[count - 1]!) + 1
        return ArgumentArea(start: start, capacity: end - start)
    }()

    /// `arguments` as /proc/PID/cmdline holds them: each NUL-terminated.
    static func bytes(_ arguments: [String]) -> [CChar] {
        arguments.flatMap { $0.utf8CString }
    }
}

/// One shim's pod.
private struct Shim {
    let spec: ShimSpec

    func run(into report: inout ShimReport) throws {
        if let runtimeCgroup = spec.runtimeCgroupDirectory {
            try writeText("\(getpid())\n", to: "\(runtimeCgroup)/cgroup.procs")
            report.joinedCgroup = try MountSteps.cgroup(in: "/proc/self/cgroup")
        }
        try rename()
        report.comm = (try? String(contentsOfFile: "/proc/self/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines)
        report.commandLine = commandLine(of: getpid()).split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
        if report.commandLine.last == "" { report.commandLine.removeLast() }

        // The shim's private mount namespace, made on this thread before any other starts, so that
        // every container thread shares it.
        var counter = MountCounter(failAfter: nil)
        defer { report.mountOpsBySyscall = counter.namedCounts }
        try counter.issue(.unshare, "unshare(CLONE_NEWNS)") { lockscope_unshare_mount_namespace() }
        try counter.issue(.mount, "mount(MS_REC|MS_PRIVATE) of /") { mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) }

        // One thread per container, all at once, as the shim's goroutines do.
        let reports = ContainerReports(count: spec.containers.count)
        let group = DispatchGroup()
        for (slot, container) in spec.containers.enumerated() {
            group.enter()
            let thread = Thread { [spec] in
                reports.set(slot, ShimContainerStart(spec: spec, container: container).run())
                group.leave()
            }
            thread.start()
        }
        group.wait()
        report.containers = reports.all
    }

    /// comm `containerd-shim` (PR_SET_NAME keeps 15 bytes) and the shim's command line.
    private func rename() throws {
        guard lockscope_set_name(ContainerdShim.executableName) == 0 else { throw WorkerError.syscall("prctl(PR_SET_NAME)") }
        let area = ArgumentArea.current
        let bytes = ArgumentArea.bytes(spec.commandLine)
        guard lockscope_set_cmdline(area.start, area.capacity, bytes, bytes.count) == 0 else {
            throw WorkerError.syscall("prctl(PR_SET_MM_ARG_END) to show the shim's command line")
        }
    }
}

/// A /proc file read whole with read(2) until its end (its size says nothing).
func readProcFile(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw WorkerError.syscall("open \(path)") }
    defer { close(fd) }
    do {
        return String(decoding: try readToEnd(fd), as: UTF8.self)
    } catch {
        throw WorkerError.syscall("read of \(path)")
    }
}

/// /proc/<pid>/cmdline as text, NULs included; empty if the process is gone.
func commandLine(of pid: pid_t) -> String {
    FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0, as: UTF8.self) } ?? ""
}

/// The container threads' reports, each written once by its own thread.
private final class ContainerReports: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [ShimReport.Container?]

    init(count: Int) { reports = Array(repeating: nil, count: count) }

    func set(_ slot: Int, _ report: ShimReport.Container) { lock.withLock { reports[slot] = report } }

    var all: [ShimReport.Container] { lock.withLock { reports.compactMap { $0 } } }
}

/// Keeps the shim's forks apart from the moments its threads hold open_tree descriptors, like Go's
/// syscall.ForkLock: a child forked meanwhile would hold a copy of the descriptor until it closes it,
/// and the detached mount it names would then be busy for the thread that unmounts it.
private final class ForkLock: @unchecked Sendable {
    static let shared = ForkLock()
    private var lock = pthread_rwlock_t()

    private init() { pthread_rwlock_init(&lock, nil) }

    /// Runs `body` while no fork is under way (any number of threads at once).
    func holdingDescriptors<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(&lock)
        defer { pthread_rwlock_unlock(&lock) }
        return try body()
    }

    /// Runs `body` (a fork) while no thread holds such a descriptor.
    func forking<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(&lock)
        defer { pthread_rwlock_unlock(&lock) }
        return try body()
    }
}

/// One container's root, mounted by a shim thread the way containerd 2.x's shim does with user
/// namespaces (runc.NewContainer → mount.All → prepareIDMappedOverlay), its process placed in its
/// cgroup, then torn down.
private struct ShimContainerStart {
    /// UnmountRecursive retries umount2 on EBUSY this many times, this long apart (as containerd's unmount does).
    static let busyRetries = 50
    static let busyRetryMicroseconds: UInt32 = 50_000
    /// mount(2) copies at most one page of options.
    static let maxOptionsLength = 4095

    let spec: ShimSpec
    let container: ShimSpec.Container
    var layout: ContainerdLayout { ContainerdLayout(root: spec.root) }

    func run() -> ShimReport.Container {
        var report = ShimReport.Container(id: container.id, rootfs: layout.rootfs(container: container.id))
        var counter = MountCounter(failAfter: container.failAfterMountOps)
        do {
            // Its own working directory, so that chdir for long overlay options touches no other thread.
            guard lockscope_unshare_fs() == 0 else { throw WorkerError.syscall("unshare(CLONE_FS)") }
            try start(into: &report, counter: &counter)
        } catch {
            report.error = "\(error)"
        }
        report.mountOpsBySyscall = counter.namedCounts
        return report
    }

    private func start(into report: inout ShimReport.Container, counter: inout MountCounter) throws {
        let start = ContinuousClock.now
        let usernsFD = try getUsernsFD(into: &report)
        defer { close(usernsFD) }
        let temporary = try makeTemporaryDirectory()
        let lowerdirs: [String]
        do {
            switch spec.strategy {
            case .perLayer:
                // Lowerdir i (the top layer first) is idmapped onto <tmp>/ovl-idmappedXXXX/<i>.
                lowerdirs = try (0..<spec.layers).map { index in
                    let target = "\(temporary)/\(index)"
                    try makeDirectory(target)
                    try ForkLock.shared.holdingDescriptors {
                        try MountSteps.idmappedBindMount(of: layout.layer(snapshot: spec.layers - index), at: target, usernsFD: usernsFD, counter: &counter)
                    }
                    return target
                }
            case .commonParent:
                let target = "\(temporary)/0"
                try makeDirectory(target)
                try ForkLock.shared.holdingDescriptors {
                    try MountSteps.idmappedBindMount(of: layout.snapshots, at: target, usernsFD: usernsFD, counter: &counter)
                }
                lowerdirs = (0..<spec.layers).map { "\(target)/\(spec.layers - $0)/fs" }
            }
            try mountOverlay(lowerdirs: lowerdirs, at: report.rootfs, counter: &counter)
            report.setupNanoseconds = UInt64((ContinuousClock.now - start) / .nanoseconds(1))
            report.mountCgroup = try MountSteps.cgroup(in: "/proc/thread-self/cgroup")
        } catch {
            try? unmountRecursive(temporary, counter: &counter)
            throw error
        }
        try unmountRecursive(temporary, counter: &counter)

        try runContainerProcess(into: &report)
        try counter.issue(.umount2, "umount2 of \(report.rootfs)") { umount2(report.rootfs, 0) }
    }

    /// As containerd's getUsernsFD: a child in a new user namespace with the pod's maps written, whose
    /// /proc/<pid>/ns/user is opened; the child makes no mounts and is killed.
    private func getUsernsFD(into report: inout ShimReport.Container) throws -> Int32 {
        let area = ArgumentArea.current
        let bytes = ArgumentArea.bytes([ContainerdShim.usernsChildName])
        let child = ForkLock.shared.forking {
            lockscope_spawn_named_holder(ContainerdShim.usernsChildName, bytes, bytes.count, area.start, area.capacity, 1)
        }
        guard child > 0 else { throw WorkerError.syscall("clone of the getUsernsFD child with a new user namespace") }
        report.usernsChildComm = (try? String(contentsOfFile: "/proc/\(child)/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines)
        report.usernsChildCommandLine = commandLine(of: child).split(separator: "\0").joined(separator: " ")
        let ownNamespace = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/user")
        let childNamespace = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(child)/ns/user")
        report.usernsChildInOwnUserNamespace = ownNamespace != nil && childNamespace != nil && ownNamespace != childNamespace
        return try MountSteps.openUserNamespace(of: child, idRangeStart: spec.idRangeStart)
    }

    /// `<tmp>/ovl-idmappedXXXX`, named like Go's os.MkdirTemp("", "ovl-idmapped").
    private func makeTemporaryDirectory() throws -> String {
        while true {
            let path = "\(layout.temporary)/ovl-idmapped\(UInt32.random(in: .min ... .max))"
            if mkdir(path, 0o700) == 0 { return path }
            guard errno == EEXIST else { throw WorkerError.syscall("mkdir \(path)") }
        }
    }

    /// The overlay on `target`, the top layer first. When the options do not fit in a page, the lower
    /// directories are named relative to their common parent, made the working directory for the mount
    /// (and left right after it, so that the thread keeps no mount busy), as containerd's mount.All does.
    private func mountOverlay(lowerdirs: [String], at target: String, counter: inout MountCounter) throws {
        let active = "\(layout.snapshots)/\(container.snapshot)"
        let tail = ",upperdir=\(active)/fs,workdir=\(active)/work"
        var options = "lowerdir=\(lowerdirs.joined(separator: ":"))" + tail
        if options.utf8.count > Self.maxOptionsLength {
            let parent = commonParent(of: lowerdirs)
            guard chdir(parent) == 0 else { throw WorkerError.syscall("chdir \(parent)") }
            options = "lowerdir=\(lowerdirs.map { String($0.dropFirst(parent.count + 1)) }.joined(separator: ":"))" + tail
        }
        defer { chdir("/") }
        try counter.issue(.mount, "mount of the overlay on \(target)") { mount("overlay", target, "overlay", 0, options) }
    }

    /// The longest directory that holds every path in `paths`.
    private func commonParent(of paths: [String]) -> String {
        var parent = paths[0].split(separator: "/", omittingEmptySubsequences: false).dropLast()
        for path in paths.dropFirst() {
            let components = path.split(separator: "/", omittingEmptySubsequences: false)
            while !components.starts(with: parent) { parent = parent.dropLast() }
        }
        return parent.joined(separator: "/")
    }

    /// As containerd's UnmountRecursive: reads the mount table, unmounts every mount at or below
    /// `directory` deepest first, retrying umount2 on EBUSY, then removes the directory and its
    /// mountpoints (rmdir only: a directory that is still a mountpoint, or not empty, stays and fails).
    private func unmountRecursive(_ directory: String, counter: inout MountCounter) throws {
        let mounts = MountTable(mountinfo: try readProcFile("/proc/thread-self/mountinfo")).mounts.map(\.mountPoint)
            .filter { $0 == directory || $0.hasPrefix(directory + "/") }
        for mountPoint in mounts.reversed() {
            var retries = 0
            while true {
                if try counter.attempt(.umount2, "umount2 of \(mountPoint)", { umount2(mountPoint, 0) }) == 0 { break }
                guard errno == EBUSY, retries < Self.busyRetries else { throw WorkerError.syscall("umount2 of \(mountPoint)") }
                retries += 1
                usleep(Self.busyRetryMicroseconds)
            }
        }
        let mountpoints = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for path in mountpoints.map({ "\(directory)/\($0)" }) + [directory] {
            guard rmdir(path) == 0 else { throw WorkerError.syscall("rmdir \(path)") }
        }
    }

    /// The container's own process, placed in its pod's cgroup as runc would place it; it checks
    /// nothing itself (the shim checks the root it will see) and is killed before the root goes.
    private func runContainerProcess(into report: inout ShimReport.Container) throws {
        let bytes = ArgumentArea.bytes([ContainerdShim.containerProcessName])
        let area = ArgumentArea.current
        let process = ForkLock.shared.forking {
            lockscope_spawn_named_holder(ContainerdShim.containerProcessName, bytes, bytes.count, area.start, area.capacity, 0)
        }
        guard process > 0 else { throw WorkerError.syscall("clone of the container's process") }
        defer {
            kill(process, SIGKILL)
            var status: Int32 = 0
            while waitpid(process, &status, 0) == -1, errno == EINTR {}
        }
        if let cgroupDirectory = container.cgroupDirectory {
            try writeText("\(process)\n", to: "\(cgroupDirectory)/cgroup.procs")
            report.processCgroup = try MountSteps.cgroup(in: "/proc/\(process)/cgroup")
        }
        try MountSteps.verifyRoot(report.rootfs, layers: spec.layers, rootUID: spec.idRangeStart)
    }

    private func makeDirectory(_ path: String) throws {
        guard mkdir(path, 0o755) == 0 else { throw WorkerError.syscall("mkdir \(path)") }
    }
}
