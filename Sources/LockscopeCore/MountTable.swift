import Foundation

/// What /proc/self/mountinfo says is mounted where (used to find cgroup2, and by stress to check
/// that nothing is left mounted).
public struct MountTable: Sendable {
    public struct Mount: Sendable {
        /// The path inside the filesystem that is mounted ("/" for the whole filesystem).
        public var root: String
        public var mountPoint: String
        public var filesystemType: String
    }

    /// In mount order: a later mount at the same point hides an earlier one.
    public let mounts: [Mount]

    /// Parses mountinfo lines: `id parent major:minor root mount-point options [optional...] - fstype source super-options`.
    public init(mountinfo: String) {
        mounts = mountinfo.split(separator: "\n").compactMap { line in
            let halves = line.components(separatedBy: " - ")
            let fields = halves[0].split(separator: " ")
            guard halves.count == 2, fields.count >= 5, let type = halves[1].split(separator: " ").first else { return nil }
            return Mount(root: Self.unescape(String(fields[3])), mountPoint: Self.unescape(String(fields[4])),
                         filesystemType: String(type))
        }
    }

    /// This process's mount table (empty if /proc is not mounted).
    public static func current(path: String = "/proc/self/mountinfo") -> MountTable {
        MountTable(mountinfo: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
    }

    /// Where the first filesystem of `type` is mounted.
    public func firstMountPoint(ofType type: String) -> String? {
        mounts.first { $0.filesystemType == type }?.mountPoint
    }

    /// The cgroup v2 hierarchy's mount point: a mount of its root if there is one (a container may
    /// see only a sub-tree mounted), else the first cgroup2 mount.
    public var cgroup2MountPoint: String? {
        let cgroup2 = mounts.filter { $0.filesystemType == "cgroup2" }
        return (cgroup2.first { $0.root == "/" } ?? cgroup2.first)?.mountPoint
    }

    /// The type of the filesystem visible at `mountPoint`, if something is mounted there.
    public func filesystemType(at mountPoint: String) -> String? {
        mounts.last { $0.mountPoint == mountPoint }?.filesystemType
    }

    /// mountinfo writes space, tab, newline and backslash as octal escapes (\040, \011, \012, \134).
    private static func unescape(_ field: String) -> String {
        var bytes: [UInt8] = []
        var input = Array(field.utf8)[...]
        while let byte = input.popFirst() {
            let digits = input.prefix(3)
            if byte == UInt8(ascii: "\\"), digits.count == 3, let value = UInt8(String(decoding: digits, as: UTF8.self), radix: 8) {
                bytes.append(value)
                input = input.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
