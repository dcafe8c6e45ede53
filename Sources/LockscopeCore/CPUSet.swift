import Foundation
import Synchronization
import Glibc

/// How `lockscope sweep` confines the storm's workers to a placement's CPUs.
public enum ConfinementMethod: String, Codable, Sendable, Equatable {
    /// A cgroup v1 cpuset child of the runner's cpuset cgroup, joined by the thread that starts the
    /// workers: every process it spawns is born in it, and moving a process between cgroup v2
    /// cgroups (as the storm does with its containers) leaves its v1 cpuset alone.
    case cpusetV1 = "cpuset-v1"
    /// sched_setaffinity on the thread that starts the workers, which they inherit.
    case affinity
}

/// The confinement chosen for this machine, and why the others were not.
///
/// A cgroup v2 cpuset is never chosen: the storm moves each worker into a cgroup of its own, under its
/// run's directory at the root of the v2 hierarchy, outside the runner's cgroup, so a cpuset set on the
/// runner's v2 cgroup would not follow the workers (v2 has one hierarchy: a process is in one cgroup).
public struct ConfinementPlan: Sendable, Equatable {
    public var method: ConfinementMethod
    /// With `cpusetV1`: the runner's own cpuset cgroup directory, in which the children are made.
    public var cpusetParent: String?
    /// One line: what was found and why this method.
    public var reason: String

    public init(method: ConfinementMethod, cpusetParent: String? = nil, reason: String) {
        self.method = method
        self.cpusetParent = cpusetParent
        self.reason = reason
    }

    /// Chooses from what the machine shows: its mountinfo, the runner's /proc/self/cgroup, and `read`
    /// (a file's text, nil when it cannot be read) for cgroup files. Pure, so fixtures can drive it.
    public static func choose(mountinfo: String, procCgroup: String, read: (String) -> String?) -> ConfinementPlan {
        let mounts = CgroupMounts(mountinfo: mountinfo)
        let v2: String
        if let unified = mounts.cgroup2, let controllers = read("\(unified)/cgroup.controllers"),
           controllers.split(whereSeparator: \.isWhitespace).contains("cpuset") {
            v2 = "cgroup v2 has the cpuset controller, but the storm moves its workers into its own cgroups at the v2 root, "
                + "outside the runner's, where a cpuset on the runner's cgroup would not follow them"
        } else {
            v2 = mounts.cgroup2 == nil ? "no cgroup v2 is mounted" : "cgroup v2 has no cpuset controller"
        }
        guard let cpuset = mounts.v1Cpuset else {
            return ConfinementPlan(method: .affinity, reason: "no cgroup v1 cpuset is mounted and \(v2): CPU affinity")
        }
        guard let path = Self.v1Path(controller: "cpuset", procCgroup: procCgroup),
              let relative = Self.relative(path, to: cpuset.root) else {
            return ConfinementPlan(method: .affinity, reason: "the runner's cgroup v1 cpuset is not visible under \(cpuset.mountPoint) and \(v2): CPU affinity")
        }
        let parent = cpuset.mountPoint + (relative == "/" ? "" : relative)
        guard let cpus = read("\(parent)/cpuset.cpus"), !cpus.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            return ConfinementPlan(method: .affinity, reason: "cannot read \(parent)/cpuset.cpus and \(v2): CPU affinity")
        }
        return ConfinementPlan(method: .cpusetV1, cpusetParent: parent,
                               reason: "cgroup v1 cpuset children of \(parent) (\(v2))")
    }

    /// This machine's choice, with a cpuset child made and removed once to show that one can be.
    public static func current() -> ConfinementPlan {
        let plan = choose(mountinfo: (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "",
                          procCgroup: (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? "",
                          read: { try? String(contentsOfFile: $0, encoding: .utf8) })
        guard let parent = plan.cpusetParent else { return plan }
        CPUSetV1Child.removeAbandoned(in: parent)
        do {
            let probe = try CPUSetV1Child(parent: parent, cpus: nil)
            try probe.remove()
            return plan
        } catch {
            return ConfinementPlan(method: .affinity, reason: "\(error): CPU affinity")
        }
    }

    /// The cgroup path of `controller` in a /proc/PID/cgroup text (`3:cpuset:/path`, or `3:cpu,cpuset:/path`).
    static func v1Path(controller: String, procCgroup: String) -> String? {
        for line in procCgroup.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[1].split(separator: ",").contains(Substring(controller)) else { continue }
            return String(fields[2])
        }
        return nil
    }

    /// `path` below a mount's `root` ("/" for the whole hierarchy), nil when it is not below it.
    static func relative(_ path: String, to root: String) -> String? {
        if root == "/" { return path }
        if path == root { return "/" }
        return path.hasPrefix(root + "/") ? String(path.dropFirst(root.count)) : nil
    }
}

/// The cgroup mounts mountinfo lists: the v2 hierarchy, and the v1 hierarchy holding the cpuset controller.
struct CgroupMounts {
    struct Mount {
        var root: String
        var mountPoint: String
    }

    var cgroup2: String?
    var v1Cpuset: Mount?

    /// mountinfo lines: `id parent major:minor root mount-point options [optional...] - fstype source super-options`.
    init(mountinfo: String) {
        for line in mountinfo.split(separator: "\n") {
            // MountTable reads the root and mount point (unescaped); the super options are read here.
            guard let mount = MountTable(mountinfo: String(line)).mounts.first,
                  let tail = line.components(separatedBy: " - ").last?.split(separator: " ") else { continue }
            let (root, point) = (mount.root, mount.mountPoint)
            switch tail.first {
            case "cgroup2" where cgroup2 == nil:
                cgroup2 = point
            case "cgroup" where tail.count >= 3 && tail[2].split(separator: ",").contains("cpuset"):
                v1Cpuset = Mount(root: root, mountPoint: point)
            default:
                break
            }
        }
    }
}

/// A cgroup v1 cpuset made for one storm: a child of the runner's cpuset cgroup with the placement's
/// CPUs and the parent's memory nodes. The thread that starts the storm joins it (`tasks` takes a
/// thread id, so the rest of the process, the recorder included, stays where it was) and leaves it
/// afterwards; `remove()` takes it away. A child whose process is gone (SIGKILLed mid-sweep) is
/// removed by the next sweep (`removeAbandoned`).
public final class CPUSetV1Child: Sendable {
    public static let namePrefix = "lockscope-sweep-"
    public let path: String
    public let parent: String
    /// Children made by this process so far (each name is unique within it).
    private static let made = Atomic<Int>(0)

    /// Makes the child, with `cpus` (nil: the parent's) and the parent's memory nodes.
    public init(parent: String, cpus: [Int]?) throws {
        self.parent = parent
        path = "\(parent)/\(Self.namePrefix)\(getpid())-\(Self.made.add(1, ordering: .relaxed).newValue)"
        guard mkdir(path, 0o755) == 0 else {
            throw UserError("cannot create the cpuset \(path): \(String(cString: strerror(errno)))")
        }
        do {
            let cpuList = try cpus.map { CPUList.describe($0) } ?? Self.read("\(parent)/cpuset.cpus")
            try Self.write(cpuList, to: "\(path)/cpuset.cpus")
            try Self.write(try Self.read("\(parent)/cpuset.mems"), to: "\(path)/cpuset.mems")
        } catch {
            rmdir(path)
            throw error
        }
    }

    /// Moves the calling thread (only it) into the child; what it spawns from now on is born there.
    /// (Writing 0 to a v1 `tasks` file moves the writing thread, not its process.)
    public func joinCurrentThread() throws {
        try Self.write("0", to: "\(path)/tasks")
    }

    /// Moves the calling thread back to the parent.
    public func leaveCurrentThread() throws {
        try Self.write("0", to: "\(parent)/tasks")
    }

    /// Removes the child once its last task is gone (an exiting task can keep it busy for a moment).
    /// Threads of this process born in it (thread pools the storm's thread started) go back to the
    /// parent first; a task of another process still there (a worker left running) keeps it, an error.
    public func remove() throws {
        for task in tasks where FileManager.default.fileExists(atPath: "/proc/self/task/\(task)") {
            try? Self.write(String(task), to: "\(parent)/tasks")
        }
        for _ in 0..<200 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            guard errno == EBUSY else { break }
            usleep(10_000)
        }
        throw UserError("cannot remove the cpuset \(path): \(String(cString: strerror(errno))); remove it with rmdir")
    }

    /// The current tasks of the child (thread ids).
    public var tasks: [Int32] {
        ((try? Self.read("\(path)/tasks")) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    /// Removes children of `parent` left by a sweep whose process no longer exists, moving any task
    /// still in one back to the parent first.
    public static func removeAbandoned(in parent: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for name in names where name.hasPrefix(namePrefix) {
            guard let pid = name.dropFirst(namePrefix.count).split(separator: "-").first.flatMap({ Int32($0) }),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            let child = "\(parent)/\(name)"
            for task in ((try? read("\(child)/tasks")) ?? "").split(separator: "\n") { try? write(String(task), to: "\(parent)/tasks") }
            rmdir(child)
        }
    }

    static func read(_ path: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw UserError("cannot read \(path)")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One write(2) of `text`, as cgroup files want it; the kernel's refusal is the error.
    static func write(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw UserError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            throw UserError("cannot write '\(text)' to \(path): \(String(cString: strerror(errno)))")
        }
    }
}
