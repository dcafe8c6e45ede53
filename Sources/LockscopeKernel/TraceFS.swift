import Foundation

/// tracefs, which per-syscall tracepoints are attached through (libbpf reads each tracepoint's id
/// from it). A host that has not mounted it gets it mounted at /sys/kernel/tracing, as perf and bpftrace
/// do, rather than the raw_syscalls fallback, whose programs run on every syscall of the host.
public enum TraceFS {
    public static let path = "/sys/kernel/tracing"
    /// Where libbpf looks first: tracefs under a mounted debugfs.
    static let debugfsPath = "/sys/kernel/debug/tracing"

    /// What `ensureMounted` did.
    public enum Outcome: Equatable, Sendable {
        /// Already there (at either place libbpf looks).
        case present
        /// Mounted now at `TraceFS.path`.
        case mounted
        /// Not there and could not be mounted (the reason, as errno text).
        case unavailable(String)
    }

    /// Mounts tracefs at `path` unless libbpf can already find it. Needs CAP_SYS_ADMIN; without it the
    /// outcome says why, and the caller falls back.
    public static func ensureMounted() -> Outcome {
        if access("\(debugfsPath)/events", F_OK) == 0 || access("\(path)/events", F_OK) == 0 { return .present }
        guard mount("nodev", path, "tracefs", 0, nil) == 0 else { return .unavailable(String(cString: strerror(errno))) }
        return .mounted
    }
}
