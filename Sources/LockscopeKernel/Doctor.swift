import CLibbpf
import Foundation
import LockscopeCore

/// Linux capabilities of this process (from /proc/self/status).
public struct Capabilities: OptionSet, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let sysAdmin = Capabilities(rawValue: 1 << 21)
    public static let perfmon = Capabilities(rawValue: 1 << 38)
    public static let bpf = Capabilities(rawValue: 1 << 39)

    public static func effective(statusPath: String = "/proc/self/status") -> Capabilities {
        guard let status = try? String(contentsOfFile: statusPath, encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let value = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return [] }
        return Capabilities(rawValue: value)
    }
}

/// `lockscope doctor`: what this kernel and this process support, each with what to do if not.
public enum Doctor {
    public enum Status: String, Sendable { case ok, missing, note }

    public struct Check: Sendable {
        public var status: Status
        public var name: String
        public var detail: String
    }

    /// Runs every check; loading and attaching the real programs is the last and most telling one.
    public static func run() -> [Check] {
        var checks: [Check] = []
        let kernel = KernelInfo.read()
        let capabilities = Capabilities.effective()
        let privileged = geteuid() == 0 || capabilities.isSuperset(of: [.bpf, .perfmon])
            || capabilities.contains(.sysAdmin)
        checks.append(privileged
            ? Check(status: .ok, name: "privileges", detail: geteuid() == 0 ? "running as root" : "CAP_BPF and CAP_PERFMON")
            : Check(status: .missing, name: "privileges", detail: "need root or CAP_BPF + CAP_PERFMON: run with sudo"))
        checks.append(kernel.hasBTF
            ? Check(status: .ok, name: "BTF", detail: KernelInfo.btfPath)
            : Check(status: .missing, name: "BTF", detail: "\(KernelInfo.btfPath) is missing: use a kernel built with CONFIG_DEBUG_INFO_BTF=y"))
        for tracepoint in ["contention_begin", "contention_end"] {
            checks.append(kernel.tracepoints.contains(tracepoint) || !kernel.hasBTF
                ? Check(status: kernel.hasBTF ? .ok : .note, name: "lock:\(tracepoint)",
                        detail: kernel.hasBTF ? "raw tracepoint present" : "cannot tell without BTF")
                : Check(status: .missing, name: "lock:\(tracepoint)",
                        detail: "not in this kernel: lock contention tracepoints need Linux 5.19 or later"))
        }
        checks.append(kernel.tracepoints.contains("sys_enter")
            ? Check(status: .ok, name: "raw_syscalls", detail: "sys_enter/sys_exit present: the fallback for mount-syscall accounting")
            : Check(status: .note, name: "raw_syscalls", detail: "sys_enter not found: without per-syscall tracepoints, mount syscalls are not accounted"))
        if privileged {
            checks.append(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nil) == 1
                ? Check(status: .ok, name: "ring buffer", detail: "BPF_MAP_TYPE_RINGBUF supported")
                : Check(status: .missing, name: "ring buffer", detail: "BPF ring buffers need Linux 5.8 or later"))
            checks.append(loadAndAttach())
        } else {
            checks.append(Check(status: .note, name: "load and attach", detail: "not tried without privileges"))
        }
        checks.append(kallsymsCheck())
        if let resolver = try? CgroupResolver() {
            checks.append(Check(status: .ok, name: "cgroup v2", detail: "mounted at \(resolver.cgroupRoot): waits are attributed to containers"))
        } else {
            checks.append(Check(status: .missing, name: "cgroup v2",
                                detail: "no cgroup2 mount: mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) to see containers"))
        }
        if let topology = try? Topology.read() {
            checks.append(Check(status: .ok, name: "topology", detail: topology.summary()))
        }
        return checks
    }

    private static func loadAndAttach() -> Check {
        do {
            let program = try BPFProgram(options: BPFOptions())
            try program.attach()
            let hooks = program.syscallHooks
            program.close()
            if hooks == .rawSyscalls {
                return Check(status: .note, name: "load and attach",
                             detail: "lockscope's BPF programs load and attach; mount syscalls through raw_syscalls, "
                                 + "which run on every syscall: mount tracefs (mount -t tracefs nodev /sys/kernel/tracing) "
                                 + "for per-syscall tracepoints")
            }
            return Check(status: .ok, name: "load and attach",
                         detail: "lockscope's BPF programs load and attach; mount syscalls through per-syscall tracepoints")
        } catch {
            return Check(status: .missing, name: "load and attach", detail: "\(error)")
        }
    }

    private static func kallsymsCheck() -> Check {
        guard let symbols = try? Kallsyms.load() else {
            return Check(status: .missing, name: "kallsyms",
                         detail: "/proc/kallsyms unreadable or hidden: run as root or set kernel.kptr_restrict=0")
        }
        if symbols.hasSymbol(named: LockNamer.namespaceSem) {
            return Check(status: .ok, name: "kallsyms", detail: "\(symbols.functionCount) functions and data symbols: locks are named by symbol")
        }
        return Check(status: .note, name: "kallsyms",
                     detail: "\(symbols.functionCount) functions, no data symbols (CONFIG_KALLSYMS_ALL off): namespace_sem and mount_lock are recognised from their call paths")
    }
}
