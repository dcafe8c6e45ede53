import Foundation
import Glibc
import LockscopeCore

/// Who owns a stress run, written into the run's scratch directory before the run creates anything
/// else (and removed last), so that a later run can clean up after one that was SIGKILLed, once its
/// owner is provably gone.
///
/// `lockscope-stress-run.json`:
/// `{"boot_id": "…", "cgroups": ["/sys/fs/cgroup/lockscope-stress-1a2b3c4d"], "pid": 1234,
///   "pid_namespace": "pid:[4026531836]", "start_time": 5678}`
struct RunMarker: Codable, Equatable {
    static let fileName = "lockscope-stress-run.json"

    /// The owning `lockscope stress` process.
    var pid: Int32
    /// Its start time, field 22 of /proc/PID/stat (clock ticks after boot): a reused pid has another.
    var startTime: UInt64
    /// /proc/sys/kernel/random/boot_id when the run started.
    var bootID: String
    /// The owner's pid namespace (/proc/self/ns/pid): pids of another namespace say nothing here.
    var pidNamespace: String
    /// The cgroup directories (absolute) the run creates everything else below; empty without cgroups.
    var cgroups: [String]

    enum CodingKeys: String, CodingKey {
        case pid, cgroups
        case startTime = "start_time"
        case bootID = "boot_id"
        case pidNamespace = "pid_namespace"
    }

    /// The marker of a run owned by this process.
    static func forThisProcess(cgroups: [String]) throws -> RunMarker {
        let pid = getpid()
        guard let identity = ProcessIdentity(pid: pid), let bootID = currentBootID(), let namespace = currentPIDNamespace() else {
            throw StressError.setupFailed("cannot read /proc/self/stat, /proc/sys/kernel/random/boot_id or /proc/self/ns/pid: mount /proc")
        }
        return RunMarker(pid: pid, startTime: identity.startTime, bootID: bootID, pidNamespace: namespace, cgroups: cgroups)
    }

    /// Writes the marker into `directory` the way every output file is written (`AtomicFile`).
    func write(into directory: String) throws {
        let path = "\(directory)/\(Self.fileName)"
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            try AtomicFile.write(try encoder.encode(self) + Data("\n".utf8), to: path)
        } catch {
            throw StressError.setupFailed("cannot write the run marker \(path): \(error)")
        }
    }

    /// The marker in `directory`; nil if there is none or it cannot be read.
    static func read(from directory: String) -> RunMarker? {
        guard let data = FileManager.default.contents(atPath: "\(directory)/\(fileName)") else { return nil }
        return try? JSONDecoder().decode(RunMarker.self, from: data)
    }

    /// Whether the owner is gone, and how that is known; nil while it may still be running (or it
    /// runs in another pid namespace, where its pid cannot be checked).
    func ownerGone() -> String? {
        if bootID != Self.currentBootID() { return "before the last boot" }
        if pidNamespace != Self.currentPIDNamespace() { return nil }
        guard let identity = ProcessIdentity(pid: pid) else { return "gone" }
        if identity.startTime != startTime { return "gone, its pid reused" }
        return identity.isZombie ? "gone" : nil
    }

    static func currentBootID() -> String? {
        (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func currentPIDNamespace() -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")
    }
}

/// A live process's start time and state, from /proc/PID/stat.
struct ProcessIdentity {
    /// Field 22: clock ticks after boot.
    var startTime: UInt64
    /// Field 3 is `Z`: exited, waiting for its parent to reap it.
    var isZombie: Bool

    /// nil when no process `pid` exists.
    init?(pid: pid_t) {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let commEnd = stat.lastIndex(of: ")") else { return nil }
        // The command (field 2) may hold spaces and parentheses: count fields after its last ")".
        let fields = stat[stat.index(after: commEnd)...].split(separator: " ")
        guard fields.count > 19, let startTime = UInt64(fields[19]) else { return nil }
        self.startTime = startTime
        isZombie = fields[0] == "Z"
    }
}

/// A run's scratch directory and cgroups: removed at the end of the run, or by a later run once
/// the owner in its marker is gone.
struct RunFiles {
    /// The prefix of every run's scratch directory and cgroup directory name.
    static let namePrefix = "lockscope-stress-"

    var scratchDirectory: String
    /// Absolute cgroup directories, each removed with everything below it.
    var cgroups: [String]

    /// What a removal did.
    struct Removal {
        var removedCgroups = 0
        /// What could not be removed (then the marker stays, for a later run to try again).
        var leftovers: [String] = []
    }

    /// Removes the cgroups (SIGKILLing what still runs in them), then the scratch directory, its
    /// marker last; keeps the marker if a cgroup could not be removed.
    func remove() -> Removal {
        var removal = Removal()
        for cgroup in cgroups {
            let tree = CgroupTree.removeSubtree(at: cgroup)
            removal.removedCgroups += tree.removed
            removal.leftovers += tree.leftovers
        }
        var scratchCleared = true
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: scratchDirectory)) ?? []
        for entry in entries where entry != RunMarker.fileName {
            let path = "\(scratchDirectory)/\(entry)"
            // Gone anyway if another run removed it first.
            if (try? FileManager.default.removeItem(atPath: path)) == nil, access(path, F_OK) == 0 { scratchCleared = false }
        }
        if scratchCleared, removal.leftovers.isEmpty {
            unlink("\(scratchDirectory)/\(RunMarker.fileName)")
            if rmdir(scratchDirectory) != 0, errno != ENOENT { scratchCleared = false }
        }
        if !scratchCleared { removal.leftovers.append(scratchDirectory) }
        return removal
    }

    /// The owner of `path` if it is of `type` (S_IFDIR, S_IFREG), not following a symlink.
    private static func owner(of path: String, type: mode_t) -> uid_t? {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == type else { return nil }
        return info.st_uid
    }

    /// Removes every run in `scratchParent` whose marker names an owner that is gone, with its
    /// cgroups, and says so through `notice`; runs without a marker, or whose owner may be alive,
    /// are left alone. A marker's cgroup is trusted only if it is the run's own directory (named
    /// like its scratch directory) right below `cgroupRoot`.
    static func removeAbandoned(in scratchParent: String, cgroupRoot: String?, notice: (String) -> Void) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: scratchParent)) ?? []
        for name in names.sorted() where name.hasPrefix(namePrefix) {
            let scratchDirectory = "\(scratchParent)/\(name)"
            // The scratch parent may be world-writable (/dev/shm, /tmp): only what this user made, as a
            // real directory and file, is ever a run's; anyone else's look-alike is not touched.
            guard let scratchOwner = owner(of: scratchDirectory, type: S_IFDIR),
                  let markerOwner = owner(of: "\(scratchDirectory)/\(RunMarker.fileName)", type: S_IFREG) else { continue }
            guard scratchOwner == geteuid(), markerOwner == geteuid() else {
                notice("left \(scratchDirectory) alone: it belongs to user \(scratchOwner == geteuid() ? markerOwner : scratchOwner), not to this one")
                continue
            }
            guard let marker = RunMarker.read(from: scratchDirectory), let reason = marker.ownerGone() else { continue }
            let ownCgroup = cgroupRoot.map { "\($0)/\(name)" }
            guard marker.cgroups.allSatisfy({ $0 == ownCgroup }) else {
                notice("left \(scratchDirectory) alone: its marker names cgroups other than the run's own (\(marker.cgroups.joined(separator: ", "))); remove it by hand")
                continue
            }
            let owner = "left by an earlier run (pid \(marker.pid), \(reason))"
            let removal = RunFiles(scratchDirectory: scratchDirectory, cgroups: marker.cgroups).remove()
            if removal.leftovers.isEmpty {
                let cgroups = removal.removedCgroups == 0 ? "" : "\(Units.count(removal.removedCgroups, "cgroup")) and "
                notice("removed \(cgroups)\(scratchDirectory) \(owner)")
            } else {
                notice("could not remove \(removal.leftovers.joined(separator: ", ")) \(owner): remove them by hand")
            }
        }
    }
}
