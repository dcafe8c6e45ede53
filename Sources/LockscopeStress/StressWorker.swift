import CMountSyscalls
import Foundation
import Glibc

/// What the parent tells one worker process (passed as JSON on its command line).
struct WorkerSpec: Codable {
    var strategy: StressStrategy
    var layers: Int
    /// Holds the layer directories "0" … "L-1".
    var layersDirectory: String
    /// This container's own work directory (mountpoints, overlay upper and work dirs).
    var containerDirectory: String
    /// The absolute cgroup directory to join; nil for none.
    var cgroupDirectory: String?
    /// The host uid and gid that the container's root maps to; the range is 65536 ids long.
    var idRangeStart: UInt32
    /// Fail, instead of issuing it, at this mount-family syscall (for tests).
    var failAfterMountOps: Int?
    /// The stress run's process: the worker dies with it (PR_SET_PDEATHSIG), so a SIGKILLed run
    /// leaves no worker behind in its cgroups.
    var parentPID: Int32
}

/// What a worker prints back: one JSON line on stdout.
struct WorkerReport: Codable {
    var mountOpsBySyscall: [String: Int] = [:]
    var setupNanoseconds: UInt64?
    /// This process's cgroup v2 path (from /proc/self/cgroup) after joining its cgroup.
    var joinedCgroup: String?
    var error: String?
}

/// What a `lockscope stress-worker` process is.
public enum WorkerRole: String, CaseIterable, Codable, Sendable {
    /// One container start (``StressWorker``).
    case container
    /// A containerd shim serving one pod (``ContainerdShim``).
    case shim
    /// A process reading /proc/self/mountinfo in a loop (``MountinfoReader``).
    case reader

    /// Runs the role's worker from `encodedSpec` and returns its exit status.
    public func run(encodedSpec: String) -> Int32 {
        switch self {
        case .container: StressWorker.run(encodedSpec: encodedSpec)
        case .shim: ContainerdShim.run(encodedSpec: encodedSpec)
        case .reader: MountinfoReader.run(encodedSpec: encodedSpec)
        }
    }
}

/// The worker side of `lockscope stress`: one container start in its own process.
public enum StressWorker {
    /// The arguments, after the executable, that start a worker; the encoded spec follows them.
    public static let subcommandArguments = ["stress-worker", "--spec"]
    /// The arguments that start a mountinfo reader (``MountinfoReader``); the encoded spec follows them.
    public static let readerArguments = ["stress-worker", "--role", WorkerRole.reader.rawValue, "--spec"]
    /// The environment variable that passes a containerd shim its spec: its command line is rewritten,
    /// and must have no room for it.
    public static let specVariable = "LOCKSCOPE_STRESS_SPEC"

    /// The arguments that start a containerd shim (``ContainerdShim``) whose argv[0] is its executable
    /// name and whose whole argument area (argv[0] included) is `length` bytes, as long as the command
    /// line the shim writes over it, so that /proc/PID/cmdline shows that line exactly: a `--pad`
    /// argument makes up the difference.
    static func shimArguments(toFill length: Int) -> [String] {
        let fixed = ["stress-worker", "--role", WorkerRole.shim.rawValue, "--pad"]
        let used = ArgumentArea.bytes([ContainerdShim.executableName] + fixed).count + 1
        return fixed + [String(repeating: "x", count: max(0, length - used))]
    }

    /// Each container's user namespace maps this many ids.
    static let idRangeLength: UInt32 = 65_536

    /// Runs one container start from `encodedSpec`, prints its report as one JSON line on stdout
    /// and returns the exit status: 0 if the container started and was torn down, 1 otherwise.
    public static func run(encodedSpec: String) -> Int32 {
        let report = runWorker(encodedSpec: encodedSpec, report: WorkerReport()) { (spec: WorkerSpec, report) in
            try ContainerStart(spec: spec).run(into: &report)
        }
        return report.error == nil ? 0 : 1
    }
}

/// What every worker's spec carries: the stress run's process, which the worker dies with.
protocol WorkerSpecifying: Decodable {
    var parentPID: Int32 { get }
}

/// What every worker's report carries: why it failed, if it did.
protocol WorkerReporting: Encodable {
    var error: String? { get set }
}

extension WorkerSpec: WorkerSpecifying {}
extension WorkerReport: WorkerReporting {}

/// Decodes a worker's spec, makes the worker die with the stress run (PR_SET_PDEATHSIG), runs `body`,
/// records any error it throws in the report, prints the report as one JSON line on stdout and returns it.
func runWorker<Spec: WorkerSpecifying, Report: WorkerReporting>(
    encodedSpec: String, report: Report, _ body: (Spec, inout Report) throws -> Void
) -> Report {
    var report = report
    do {
        let spec = try JSONDecoder().decode(Spec.self, from: Data(encodedSpec.utf8))
        guard lockscope_die_with_parent(spec.parentPID) == 0 else {
            throw WorkerError.syscall("prctl(PR_SET_PDEATHSIG) with the stress run as parent")
        }
        try body(spec, &report)
    } catch {
        report.error = "\(error)"
    }
    let line = (try? JSONEncoder().encode(report)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
    return report
}

/// Reads `fd` to its end with read(2) (a /proc file's size says nothing; a pipe ends when its writer closes).
func readToEnd(_ fd: Int32) throws -> [UInt8] {
    var contents: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = read(fd, &buffer, buffer.count)
        if count > 0 {
            contents += buffer[..<count]
        } else if count == 0 {
            return contents
        } else if errno != EINTR {
            throw WorkerError.syscall("read")
        }
    }
}

/// A failed step inside a worker.
struct WorkerError: Error, CustomStringConvertible {
    let description: String

    /// "<what> failed: <strerror(errno)>", with a hint for errors whose cause is not obvious.
    static func syscall(_ what: String, errno code: Int32 = errno) -> WorkerError {
        var message = "\(what) failed: \(String(cString: strerror(code)))"
        if code == ENOSYS {
            message += " (the kernel lacks the new mount API: idmapped mounts need Linux 5.12 or later)"
        } else if what.hasPrefix("mount of the overlay"), code == ENODEV {
            message += " (overlayfs is not available: load the overlay module)"
        } else if what.hasPrefix("mount_setattr"), code == EINVAL {
            message += " (the scratch filesystem may not support idmapped mounts, tmpfs needs Linux 6.3: pass --scratch-parent on ext4, xfs or btrfs)"
        }
        return WorkerError(description: message)
    }
}

/// Issues and counts the worker's mount-family syscalls, and fails on purpose when told to.
struct MountCounter {
    private(set) var bySyscall: [StressSyscall: Int] = [:]
    let failAfter: Int?

    var total: Int { bySyscall.values.reduce(0, +) }

    /// The counts by syscall name, as reports carry them.
    var namedCounts: [String: Int] { Dictionary(uniqueKeysWithValues: bySyscall.map { ($0.key.rawValue, $0.value) }) }

    /// Counts `call` as issued and runs it; throws if it returns -1 or if the injected failure is due.
    @discardableResult
    mutating func issue(_ syscall: StressSyscall, _ what: String, _ call: () -> Int32) throws -> Int32 {
        let result = try attempt(syscall, what, call)
        if result == -1 { throw WorkerError.syscall(what) }
        return result
    }

    /// Counts `call` as issued and runs it, returning its result (errno as it left it); throws only if
    /// the injected failure is due.
    mutating func attempt(_ syscall: StressSyscall, _ what: String, _ call: () -> Int32) throws -> Int32 {
        if let failAfter, total >= failAfter {
            throw WorkerError(description: "injected failure after \(failAfter) mount operations, before \(what)")
        }
        bySyscall[syscall, default: 0] += 1
        return call()
    }
}

/// One container start, as containerd does it with user namespaces.
struct ContainerStart {
    let spec: WorkerSpec

    func run(into report: inout WorkerReport) throws {
        if let cgroupDirectory = spec.cgroupDirectory {
            try writeText("\(getpid())\n", to: "\(cgroupDirectory)/cgroup.procs")
            report.joinedCgroup = try currentCgroup()
        }
        try prepareDirectories()
        try changeDirectory(to: spec.containerDirectory)
        let usernsFD = try makeUserNamespace()
        defer { close(usernsFD) }

        var counter = MountCounter(failAfter: spec.failAfterMountOps)
        defer { report.mountOpsBySyscall = counter.namedCounts }
        let start = ContinuousClock.now
        try counter.issue(.unshare, "unshare(CLONE_NEWNS)") { lockscope_unshare_mount_namespace() }
        try counter.issue(.mount, "mount(MS_REC|MS_PRIVATE) of /") { mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) }

        // The idmapped layers end up as directories "0" … "L-1" in `lowerBase`.
        let lowerBase: String
        let idmappedMountpoints: [String]
        switch spec.strategy {
        case .perLayer:
            lowerBase = "lower"
            idmappedMountpoints = (0..<spec.layers).map { "lower/\($0)" }
            for (layer, mountpoint) in idmappedMountpoints.enumerated() {
                try MountSteps.idmappedBindMount(of: "\(spec.layersDirectory)/\(layer)", at: mountpoint, usernsFD: usernsFD, counter: &counter)
            }
        case .commonParent:
            lowerBase = "parent"
            idmappedMountpoints = ["parent"]
            try MountSteps.idmappedBindMount(of: spec.layersDirectory, at: "parent", usernsFD: usernsFD, counter: &counter)
        }
        // Mounted from inside `lowerBase`, as containerd does, so the layers are named by number alone:
        // mount(2) reads one page of options, and 500 longer paths would not fit. The top layer comes first.
        try changeDirectory(to: lowerBase)
        let overlayOptions = "lowerdir=\((0..<spec.layers).reversed().map(String.init).joined(separator: ":")),upperdir=../upper,workdir=../work"
        try counter.issue(.mount, "mount of the overlay root") { mount("overlay", "../rootfs", "overlay", 0, overlayOptions) }
        report.setupNanoseconds = UInt64((ContinuousClock.now - start) / .nanoseconds(1))
        try changeDirectory(to: "..")

        for mountpoint in idmappedMountpoints {
            try counter.issue(.umount2, "umount2(MNT_DETACH) of \(mountpoint)") { umount2(mountpoint, Int32(MNT_DETACH)) }
        }
        try verifyRoot()
        try counter.issue(.umount2, "umount2 of the overlay root") { umount2("rootfs", 0) }
    }

    /// A user namespace mapping ids 0…65535 to the container's range, as an fd for MOUNT_ATTR_IDMAP:
    /// a child is cloned into a new user namespace, its maps are written from here, its namespace
    /// opened, and the child killed.
    private func makeUserNamespace() throws -> Int32 {
        let holder = lockscope_spawn_userns_holder()
        guard holder > 0 else { throw WorkerError.syscall("clone(CLONE_NEWUSER)") }
        return try MountSteps.openUserNamespace(of: holder, idRangeStart: spec.idRangeStart)
    }

    /// Upper, work and root directories, and a mountpoint per idmapped mount.
    private func prepareDirectories() throws {
        var directories = ["", "/upper", "/work", "/rootfs"]
        switch spec.strategy {
        case .perLayer: directories += ["/lower"] + (0..<spec.layers).map { "/lower/\($0)" }
        case .commonParent: directories += ["/parent"]
        }
        for directory in directories.map({ spec.containerDirectory + $0 }) {
            guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
                throw WorkerError.syscall("mkdir \(directory)")
            }
        }
    }

    private func verifyRoot() throws {
        try MountSteps.verifyRoot("rootfs", layers: spec.layers, rootUID: spec.idRangeStart)
    }

    private func changeDirectory(to path: String) throws {
        guard chdir(path) == 0 else { throw WorkerError.syscall("chdir \(path)") }
    }

    private func currentCgroup() throws -> String? {
        try MountSteps.cgroup(in: "/proc/self/cgroup")
    }
}

/// The steps both runtimes' container starts share.
enum MountSteps {
    /// open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount: an idmapped bind mount.
    static func idmappedBindMount(of source: String, at mountpoint: String, usernsFD: Int32, counter: inout MountCounter) throws {
        let treeFD = try counter.issue(.openTree, "open_tree of \(source)") {
            lockscope_open_tree(AT_FDCWD, source, LOCKSCOPE_OPEN_TREE_CLONE | UInt32(O_CLOEXEC))
        }
        defer { close(treeFD) }
        var attributes = lockscope_mount_attr(attr_set: LOCKSCOPE_MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: UInt64(usernsFD))
        try counter.issue(.mountSetattr, "mount_setattr(MOUNT_ATTR_IDMAP) of \(source)") {
            lockscope_mount_setattr(treeFD, "", LOCKSCOPE_AT_EMPTY_PATH, &attributes)
        }
        try counter.issue(.moveMount, "move_mount onto \(mountpoint)") {
            lockscope_move_mount(treeFD, "", AT_FDCWD, mountpoint, LOCKSCOPE_MOVE_MOUNT_F_EMPTY_PATH)
        }
    }

    /// Maps ids 0…65535 of the user namespace of `holder` (a child waiting in a new user namespace) to
    /// `idRangeStart`…, opens /proc/<holder>/ns/user for MOUNT_ATTR_IDMAP, and kills and reaps the holder.
    static func openUserNamespace(of holder: pid_t, idRangeStart: UInt32) throws -> Int32 {
        defer {
            kill(holder, SIGKILL)
            var status: Int32 = 0
            while waitpid(holder, &status, 0) == -1, errno == EINTR {}
        }
        let map = "0 \(idRangeStart) \(StressWorker.idRangeLength)\n"
        try writeText(map, to: "/proc/\(holder)/uid_map")
        try writeText(map, to: "/proc/\(holder)/gid_map")
        let fd = open("/proc/\(holder)/ns/user", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw WorkerError.syscall("open /proc/\(holder)/ns/user") }
        return fd
    }

    /// The overlay root at `rootfs` must stack every layer (the bottom layer's own file shows, the top
    /// layer's `layer` file wins) and show the layers' root-owned files as owned by the container's root.
    static func verifyRoot(_ rootfs: String, layers: Int, rootUID: UInt32) throws {
        var status = stat()
        guard stat("\(rootfs)/layer-0", &status) == 0 else { throw WorkerError.syscall("stat of the bottom layer's file in the overlay root") }
        guard status.st_uid == rootUID else {
            throw WorkerError(description: "the overlay root shows uid \(status.st_uid), not the container's root uid \(rootUID): the layers were not idmapped")
        }
        let top = try String(contentsOfFile: "\(rootfs)/\(LayerStore.numberFile)", encoding: .utf8)
        guard top == "\(layers - 1)\n" else {
            throw WorkerError(description: "the overlay root shows layer \(top.trimmingCharacters(in: .newlines)) on top, not layer \(layers - 1)")
        }
    }

    /// The cgroup v2 path in a /proc/…/cgroup file (its `0::` line).
    static func cgroup(in path: String) throws -> String? {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        return lines.first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
    }
}

/// Writes `text` to `path` with a single write(2), as cgroup and /proc files need (and without
/// Foundation's fsync); `creating` creates or truncates a regular file.
func writeText(_ text: String, to path: String, creating: Bool = false) throws {
    // A file it creates is new: never an existing one, never through a symlink.
    let fd = open(path, creating ? O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC : O_WRONLY | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw WorkerError.syscall("open \(path)") }
    defer { close(fd) }
    let written = text.withCString { write(fd, $0, strlen($0)) }
    guard written == text.utf8.count else { throw WorkerError.syscall("write to \(path)") }
}
