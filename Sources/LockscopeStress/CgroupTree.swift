import Foundation

/// The cgroup v2 hierarchy: where it is mounted, and the directories a run creates in it.
struct CgroupTree {
    /// The cgroup2 mount point (/sys/fs/cgroup, or /sys/fs/cgroup/unified in a hybrid layout).
    let root: String
    /// Directories this run created, relative to `root`, in creation order.
    private var created: [String] = []

    init(root: String) {
        self.root = root
    }

    /// Creates `relativePath` and any missing parents, remembering each directory it made.
    mutating func create(_ relativePath: String) throws {
        var path = ""
        for component in relativePath.split(separator: "/") {
            path += "/\(component)"
            if mkdir(root + path, 0o755) == 0 {
                created.append(path)
            } else if errno != EEXIST {
                throw StressError.setupFailed("cannot create cgroup \(root + path): \(String(cString: strerror(errno))); check that \(root) is writable")
            }
        }
    }

    /// Removes every directory this run created, deepest first. A cgroup whose last process has just
    /// exited may stay busy for a moment, so EBUSY is retried for up to two seconds.
    /// Returns the directories that could not be removed.
    mutating func removeCreated() -> [String] {
        var leftovers: [String] = []
        for path in created.reversed() {
            var attempts = 0
            while rmdir(root + path) != 0, errno == EBUSY, attempts < 200 {
                attempts += 1
                usleep(10_000)
            }
            if access(root + path, F_OK) == 0 { leftovers.append(root + path) }
        }
        created = []
        return leftovers
    }
}
