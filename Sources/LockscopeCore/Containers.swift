import Foundation

/// A container (or the host) that waits are attributed to.
public struct Container: Codable, Sendable, Hashable {
    /// The runtime's container id (full 64-hex id for docker, containerd, CRI-O and podman;
    /// machine name for nspawn), "host" for the root cgroup, the cgroup path for any other cgroup.
    public var id: String
    /// "docker", "containerd", "cri-o", "podman", "nspawn", "host", "cgroup" (not a container),
    /// or "unknown" (a cgroup that vanished before it could be looked up).
    public var runtime: String
    /// The Kubernetes pod UID (with dashes) when the container runs under kubepods.
    public var podUid: String?
    /// The container's own cgroup path relative to the cgroup2 root: the same for every nested
    /// sub-cgroup of one container, so its waits aggregate together; empty for "unknown".
    public var cgroup: String
    /// The pod's sandbox id, when the shim that mounted the container named it.
    public var pod: String?
    /// How waits are tied to it: by the waiter's cgroup unless the mount syscalls' paths or issuer said.
    public var attribution: Attribution

    public init(id: String, runtime: String, podUid: String? = nil, cgroup: String, pod: String? = nil,
                attribution: Attribution = .cgroup) {
        self.id = id
        self.runtime = runtime
        self.podUid = podUid
        self.cgroup = cgroup
        self.pod = pod
        self.attribution = attribution
    }
}

/// Recognizes container runtimes from cgroup v2 paths.
public enum ContainerIdentity {
    /// The container a cgroup path (relative to the cgroup2 root, e.g. "/system.slice/docker-<id>.scope")
    /// belongs to: the innermost path component that names a container, so a process in a nested
    /// sub-cgroup belongs to its container.
    ///
    /// A bare 64-hex id under a kubepods pod cgroup (cgroupfs driver) is attributed to containerd,
    /// the default CRI: the path does not say which CRI created it.
    public static func parse(cgroupPath: String) -> Container {
        let components = cgroupPath.split(separator: "/").map(String.init)
        guard !components.isEmpty else { return Container(id: "host", runtime: "host", cgroup: "/") }
        for index in components.indices.reversed() {
            guard let (runtime, id) = match(components, at: index) else { continue }
            return Container(id: id, runtime: runtime, podUid: podUID(in: components[..<index]),
                             cgroup: "/" + components[...index].joined(separator: "/"))
        }
        let path = "/" + components.joined(separator: "/")
        return Container(id: path, runtime: "cgroup", cgroup: path)
    }

    /// Scope prefixes (systemd driver "<prefix><id>.scope", cgroupfs driver "<prefix><id>") and their runtimes.
    /// "libpod-conmon-<id>" and "crio-conmon-<id>" are the runtimes' monitors, not containers: no 64-hex id follows the prefix.
    private static let scopePrefixes = [("docker-", "docker"), ("cri-containerd-", "containerd"),
                                        ("crio-", "cri-o"), ("libpod-", "podman")]

    /// (runtime, id) when `components[index]` names a container.
    private static func match(_ components: [String], at index: Int) -> (String, String)? {
        let component = components[index]
        let parent = index > 0 ? components[index - 1] : ""
        let name = component.hasSuffix(".scope") ? String(component.dropLast(".scope".count)) : component
        for (prefix, runtime) in scopePrefixes where name.hasPrefix(prefix) {
            let id = String(name.dropFirst(prefix.count))
            if isContainerID(id) { return (runtime, id) }
        }
        if isContainerID(component) {
            if parent == "docker" { return ("docker", component) }
            if parent.hasPrefix("pod"), components[..<index].contains(where: { $0.hasPrefix("kubepods") }) {
                return ("containerd", component)
            }
        }
        if parent == "machine.slice", component.hasPrefix("machine-"), component.hasSuffix(".scope") {
            return ("nspawn", unescapeSystemdName(String(name.dropFirst("machine-".count))))
        }
        return nil
    }

    /// The pod UID from the innermost pod cgroup below a kubepods cgroup (which need not be at the
    /// root: kubelet may run under a parent slice): systemd driver
    /// "kubepods[-<qos>]-pod<uid with _ for ->.slice", cgroupfs driver "/kubepods[/<qos>]/pod<uid>".
    private static func podUID(in ancestors: ArraySlice<String>) -> String? {
        guard let kubepods = ancestors.firstIndex(where: { $0.hasPrefix("kubepods") }) else { return nil }
        for component in ancestors[kubepods...].reversed() {
            var uid: Substring
            if component.hasSuffix(".slice"), let pod = component.range(of: "-pod", options: .backwards) {
                uid = component[pod.upperBound...].dropLast(".slice".count)
            } else if component.hasPrefix("pod") {
                uid = component.dropFirst("pod".count)
            } else {
                continue
            }
            let restored = uid.replacingOccurrences(of: "_", with: "-")
            if !restored.isEmpty, restored.allSatisfy({ $0 == "-" || $0.isHexDigit }) { return restored }
        }
        return nil
    }

    /// 64 lowercase hex digits: the id docker, containerd, cri-o and podman give a container.
    static func isContainerID(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Undoes systemd unit-name escaping: "\x2d" → "-".
    static func unescapeSystemdName(_ name: String) -> String {
        var bytes: [UInt8] = []
        var rest = Substring(name).utf8[...]
        while let byte = rest.first {
            if byte == UInt8(ascii: "\\"), rest.count >= 4, rest.dropFirst().first == UInt8(ascii: "x"),
               let value = UInt8(String(decoding: rest.dropFirst(2).prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                rest = rest.dropFirst(4)
            } else {
                bytes.append(byte)
                rest = rest.dropFirst()
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Why cgroup ids cannot be resolved to containers.
public enum CgroupError: Error, CustomStringConvertible, Equatable {
    case unreadableMountInfo(path: String)
    case noCgroup2Mount(mountInfoPath: String)
    case notADirectory(path: String)

    public var description: String {
        switch self {
        case .unreadableMountInfo(let path):
            return "cannot read \(path) to find the cgroup2 mount: mount /proc, or pass the cgroup2 mount point"
        case .noCgroup2Mount(let path):
            return "no cgroup2 filesystem in \(path): container attribution needs cgroup v2; "
                + "mount it (mount -t cgroup2 none /sys/fs/cgroup/unified) or profile without container filtering"
        case .notADirectory(let path):
            return "cgroup root \(path) is not a directory: pass the mount point of the cgroup2 filesystem"
        }
    }
}

/// Maps cgroup v2 ids (the cgroup directory's inode number, as `bpf_get_current_cgroup_id()`
/// returns) to containers by walking the cgroup2 tree. Thread-safe; meant for one collector thread.
public final class CgroupResolver: @unchecked Sendable {
    /// The cgroup2 mount point that cgroup paths are relative to.
    public let cgroupRoot: String
    private let minimumRescanInterval: Duration
    private let lock = NSLock()
    private var containerByID: [UInt64: Container] = [:]
    /// Ids still missing after a rescan: their cgroups are gone (ids are not reused), never rescan for them.
    private var vanishedIDs: Set<UInt64> = []
    private var lastRescan: ContinuousClock.Instant?
    private var rescans = 0

    /// Resolves against `cgroupRoot`, or the cgroup2 mount found in `mountInfoPath` when nil.
    /// A cache miss rescans the tree at most once per `minimumRescanInterval`.
    public init(cgroupRoot: String? = nil, mountInfoPath: String = "/proc/self/mountinfo",
                minimumRescanInterval: Duration = .milliseconds(100)) throws {
        if let cgroupRoot {
            self.cgroupRoot = cgroupRoot
        } else {
            guard let mountInfo = try? String(contentsOfFile: mountInfoPath, encoding: .utf8) else {
                throw CgroupError.unreadableMountInfo(path: mountInfoPath)
            }
            guard let mountPoint = Self.cgroup2MountPoint(inMountInfo: mountInfo) else {
                throw CgroupError.noCgroup2Mount(mountInfoPath: mountInfoPath)
            }
            self.cgroupRoot = mountPoint
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: self.cgroupRoot, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CgroupError.notADirectory(path: self.cgroupRoot)
        }
        self.minimumRescanInterval = minimumRescanInterval
    }

    /// The mount point of the cgroup2 filesystem in /proc/self/mountinfo text (one mounted at
    /// the hierarchy's root preferred), or nil when none is mounted.
    public static func cgroup2MountPoint(inMountInfo text: String) -> String? {
        MountTable(mountinfo: text).cgroup2MountPoint
    }

    /// Forgets every cgroup looked up once more than `limit` are remembered (found or vanished), so that a
    /// process that runs for as long as containers come and go (`lockscope agent`) does not keep them
    /// all; later lookups rescan the tree (at most once per `minimumRescanInterval`).
    public func forget(beyond limit: Int) {
        lock.withLock {
            guard containerByID.count + vanishedIDs.count > limit else { return }
            containerByID = [:]
            vanishedIDs = []
        }
    }

    /// True when a rescan found no cgroup with this id (it was removed before it could be looked up).
    public func hasVanished(_ id: UInt64) -> Bool {
        lock.withLock { vanishedIDs.contains(id) }
    }

    /// How many times the cgroup tree has been walked.
    public var rescanCount: Int {
        lock.withLock { rescans }
    }

    /// The container of cgroup `id`; Container(id: "cgroup:<id>", runtime: "unknown") when no
    /// such cgroup exists (it vanished before it could be looked up).
    public func container(forCgroupID id: UInt64) -> Container {
        lock.withLock {
            if let container = containerByID[id] { return container }
            if !vanishedIDs.contains(id), rescanIsDue() {
                rescan()
                if let container = containerByID[id] { return container }
                vanishedIDs.insert(id)
            }
            return Container(id: "cgroup:\(id)", runtime: "unknown", cgroup: "")
        }
    }

    /// Every existing cgroup id (nested child cgroups included) whose container id starts with
    /// `prefix`, ascending; rescans first. An empty prefix matches every cgroup.
    public func cgroupIDs(matchingContainerPrefix prefix: String) -> [UInt64] {
        lock.withLock {
            return rescan().filter { $0.value.id.hasPrefix(prefix) }.map(\.key).sorted()
        }
    }

    private func rescanIsDue() -> Bool {
        guard let lastRescan else { return true }
        return ContinuousClock.now - lastRescan >= minimumRescanInterval
    }

    /// Walks the whole tree, maps every cgroup directory's inode to its container, adds them to
    /// the cache (which keeps vanished cgroups: their ids are not reused) and returns them.
    @discardableResult
    private func rescan() -> [UInt64: Container] {
        rescans += 1
        lastRescan = .now
        var found: [UInt64: Container] = [:]
        var status = stat()
        if stat(cgroupRoot, &status) == 0 {
            found[UInt64(status.st_ino)] = ContainerIdentity.parse(cgroupPath: "/")
        }
        var pending = ["/"]
        while let relative = pending.popLast() {
            let directoryPath = relative == "/" ? cgroupRoot : cgroupRoot + relative
            guard let directory = opendir(directoryPath) else { continue }  // removed while walking
            defer { closedir(directory) }
            let descriptor = dirfd(directory)
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                guard name != ".", name != "..",
                      entry.pointee.d_type == UInt8(DT_DIR) || entry.pointee.d_type == UInt8(DT_UNKNOWN),
                      fstatat(descriptor, name, &status, AT_SYMLINK_NOFOLLOW) == 0,
                      status.st_mode & S_IFMT == S_IFDIR
                else { continue }
                let child = relative == "/" ? "/" + name : relative + "/" + name
                found[UInt64(status.st_ino)] = ContainerIdentity.parse(cgroupPath: child)
                pending.append(child)
            }
        }
        containerByID.merge(found) { _, new in new }
        return found
    }
}
