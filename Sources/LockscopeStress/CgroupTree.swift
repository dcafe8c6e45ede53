import Foundation
import Glibc

/// The cgroup v2 hierarchy: where it is mounted, and the directories a run creates in it. Every
/// cgroup of a run lives below one directory of its own (`/lockscope-stress-<hex>`), so removing
/// that directory's subtree removes all of them.
struct CgroupTree {
    /// The cgroup2 mount point (/sys/fs/cgroup, or /sys/fs/cgroup/unified in a hybrid layout).
    let root: String

    /// Creates the run's own directory `relativePath`, which must not exist yet: the run owns
    /// everything below it.
    func createRunDirectory(_ relativePath: String) throws {
        guard mkdir(root + relativePath, 0o755) == 0 else {
            throw Self.creationError(root + relativePath)
        }
    }

    /// Creates `relativePath` and any missing parents.
    func create(_ relativePath: String) throws {
        var path = ""
        for component in relativePath.split(separator: "/") {
            path += "/\(component)"
            guard mkdir(root + path, 0o755) == 0 || errno == EEXIST else { throw Self.creationError(root + path) }
        }
    }

    private static func creationError(_ path: String) -> StressError {
        .setupFailed("cannot create cgroup \(path): \(String(cString: strerror(errno))); check that the cgroup2 mount is writable")
    }

    /// What removing a subtree did.
    struct Removal {
        /// Cgroup directories removed.
        var removed = 0
        /// Cgroup directories still there.
        var leftovers: [String] = []
    }

    /// Removes the cgroup directory `path` (absolute) and every cgroup below it, deepest first,
    /// SIGKILLing any process still in them. A cgroup whose last process has just exited may stay
    /// busy for a moment, so EBUSY is retried for up to two seconds. A missing `path` removes nothing.
    static func removeSubtree(at path: String) -> Removal {
        var removal = Removal()
        for directory in subtree(at: path).reversed() {
            var attempts = 0
            while rmdir(directory) != 0, errno == EBUSY, attempts < 200 {
                killProcesses(in: directory)
                attempts += 1
                usleep(10_000)
            }
            if access(directory, F_OK) == 0 {
                removal.leftovers.append(directory)
            } else {
                removal.removed += 1
            }
        }
        return removal
    }

    /// `path` and every directory below it, parents before their children; empty if `path` is missing.
    private static func subtree(at path: String) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return [] }
        var directories = [path]
        var next = 0
        while next < directories.count {
            let directory = directories[next]
            next += 1
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for entry in entries.sorted() {
                let child = "\(directory)/\(entry)"
                if FileManager.default.fileExists(atPath: child, isDirectory: &isDirectory), isDirectory.boolValue {
                    directories.append(child)
                }
            }
        }
        return directories
    }

    /// SIGKILLs every process in the cgroup `directory` (a worker of a run whose owner is gone).
    private static func killProcesses(in directory: String) {
        let procs = (try? String(contentsOfFile: "\(directory)/cgroup.procs", encoding: .utf8)) ?? ""
        for pid in procs.split(separator: "\n").compactMap({ pid_t($0) }) {
            kill(pid, SIGKILL)
        }
    }
}
