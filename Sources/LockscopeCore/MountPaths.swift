/// What a mount-family syscall's paths say it was for: the path conventions of containerd's shims
/// (docs/where.md lists them, and what other runtimes do).
public enum MountPaths {
    /// The task directories of containerd's runtimes: `<state>/io.containerd.runtime.v2.task/<namespace>/<id>/rootfs`
    /// (v2 shims), and the v1 runtime's `io.containerd.runtime.v1.linux`.
    static let taskDirectories = ["/io.containerd.runtime.v2.task/", "/io.containerd.runtime.v1.linux/"]
    /// The prefix of the temporary directories containerd idmaps layers into (Go's `os.MkdirTemp("", "ovl-idmapped")`).
    static let idmapDirectoryPrefix = "ovl-idmapped"

    /// A container's root filesystem path: `(namespace, id)` when `path` is `…/io.containerd.runtime.v2.task/<ns>/<id>/rootfs`
    /// (or a path below it).
    public static func containerdRootfs(_ path: String) -> (namespace: String, id: String)? {
        for marker in taskDirectories {
            guard let range = path.range(of: marker) else { continue }
            let components = path[range.upperBound...].split(separator: "/", omittingEmptySubsequences: false)
            guard components.count >= 3, !components[0].isEmpty, !components[1].isEmpty, components[2] == "rootfs" else {
                continue
            }
            return (String(components[0]), String(components[1]))
        }
        return nil
    }

    /// The `…/ovl-idmappedXXXX` directory that `path` is in (or is), if any. A relative path is resolved
    /// against `workingDirectory` (nil: a relative path says nothing about where it is); when only the
    /// working directory's last names are known, so is the directory's path (`IdmapDirectory.tail`).
    public static func idmapDirectory(_ path: String, workingDirectory: WorkingDirectory? = nil) -> IdmapDirectory? {
        var components: [Substring]
        var partial = false
        if path.hasPrefix("/") {
            components = []
        } else if let workingDirectory {
            components = workingDirectory.names.map { Substring($0) }
            partial = !workingDirectory.complete
        } else {
            return nil
        }
        for component in path.split(separator: "/") where component != "." {
            if component == ".." {
                guard !components.isEmpty else { return nil }  // above the names known
                components.removeLast()
            } else {
                components.append(component)
            }
        }
        guard let index = components.firstIndex(where: { $0.hasPrefix(idmapDirectoryPrefix) }) else { return nil }
        let names = "/" + components[...index].joined(separator: "/")
        return partial ? .tail(names) : .path(names)
    }

    /// The `ovl-idmapped` directories an overlay's options name in `lowerdir=` (and the new mount API's
    /// `lowerdir+=`), in order, without repeats; relative entries (containerd's compacted options, when
    /// they do not fit in a page) are resolved against `workingDirectory`. Options cut short by the kernel
    /// side's limit give the directories of the entries that were kept whole enough to name one.
    public static func idmapDirectories(inOverlayOptions options: String, workingDirectory: WorkingDirectory? = nil)
        -> [IdmapDirectory] {
        var directories: [IdmapDirectory] = []
        for option in options.split(separator: ",") {
            guard let equals = option.firstIndex(of: "="), option[..<equals].hasPrefix("lowerdir") else { continue }
            for entry in option[option.index(after: equals)...].split(separator: ":") {
                if let directory = idmapDirectory(String(entry), workingDirectory: workingDirectory),
                   !directories.contains(directory) {
                    directories.append(directory)
                }
            }
        }
        return directories
    }

    /// A containerd shim's pod: the sandbox id after `-id` in `containerd-shim-runc-v2 -namespace k8s.io
    /// -id <sandbox id> -address …` (its command line, NUL-separated as /proc/<pid>/cmdline gives it),
    /// and its namespace after `-namespace`.
    public static func shimPod(commandLine: String) -> (namespace: String?, pod: String)? {
        let arguments = commandLine.split(separator: "\0", omittingEmptySubsequences: true).map(String.init)
        guard let program = arguments.first, program.split(separator: "/").last?.hasPrefix("containerd-shim") == true
        else { return nil }
        func value(after flag: String) -> String? {
            guard let index = arguments.firstIndex(where: { $0 == flag || $0 == "-" + flag }),
                  index + 1 < arguments.count else { return nil }
            return arguments[index + 1]
        }
        guard let pod = value(after: "-id"), !pod.isEmpty else { return nil }
        return (value(after: "-namespace"), pod)
    }
}

/// An `ovl-idmapped` directory as a syscall's paths name it.
public enum IdmapDirectory: Hashable, Sendable {
    /// Its whole path, `/tmp/ovl-idmapped1`.
    case path(String)
    /// Only its last names (a relative path under a working directory the kernel side kept the last names
    /// of): `/tmp/ovl-idmapped1` for a directory whose path ends so.
    case tail(String)
}
