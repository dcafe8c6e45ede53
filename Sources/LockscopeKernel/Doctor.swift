import CLibbpf
import Foundation
import LockscopeCore

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
        let privileges = Privileges.current()
        let privileged = privileges.canUseBPF
        checks.append(privilegesCheck(privileges))
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
            checks.append(samplingCheck())
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
            var options = BPFOptions()
            options.mountTraceFS = false
            let program = try BPFProgram(options: options)
            try program.attach()
            let hooks = program.syscallHooks
            program.close()
            if hooks == .rawSyscalls {
                return Check(status: .note, name: "load and attach",
                             detail: "lockscope's BPF programs load and attach; mount syscalls through raw_syscalls, "
                                 + "which run on every syscall: \(tracefsAdvice())")
            }
            return Check(status: .ok, name: "load and attach",
                         detail: "lockscope's BPF programs load and attach; mount syscalls through per-syscall tracepoints")
        } catch {
            return Check(status: .missing, name: "load and attach", detail: "\(error)")
        }
    }

    /// The on-CPU sampler (on by default in `record`): its program loads and attaches to a cpu-clock perf
    /// event on every online CPU.
    private static func samplingCheck() -> Check {
        do {
            let waits = try BPFProgram(options: BPFOptions())
            defer { waits.close() }
            let sampler = try SpinSampler(hz: SpinSampler.defaultHz, waits: waits)
            try sampler.attach()
            let cpus = sampler.cpus.count
            sampler.close()
            return Check(status: .ok, name: "on-CPU sampling",
                         detail: "cpu-clock perf events on \(cpus) CPUs run the sampler: record sees spinning (--spin-hz)")
        } catch {
            return Check(status: .missing, name: "on-CPU sampling", detail: "\(error); record with --spin-hz 0 to do without")
        }
    }

    /// What would give per-syscall tracepoints: libbpf finds them through tracefs's event ids.
    static func tracefsAdvice(tracefs: String = "/sys/kernel/tracing") -> String {
        let mounted = MountTable.current().mounts.contains { $0.mountPoint == tracefs && $0.filesystemType == "tracefs" }
        if !mounted {
            return "tracefs is not mounted: record mounts it where it can (CAP_SYS_ADMIN), or mount it (mount -t tracefs nodev \(tracefs)) for per-syscall tracepoints"
        }
        if access("\(tracefs)/events", R_OK | X_OK) != 0 {
            return "\(tracefs) is mounted but this user cannot read it: per-syscall tracepoints need root or CAP_DAC_READ_SEARCH"
        }
        return "this kernel has no per-syscall tracepoints for them (CONFIG_FTRACE_SYSCALLS off)"
    }

    /// The capabilities that recording needs, each named, and nothing advised that would change nothing.
    static func privilegesCheck(_ privileges: Privileges) -> Check {
        let held = [(Capabilities.bpf, "CAP_BPF"), (.perfmon, "CAP_PERFMON"), (.syslog, "CAP_SYSLOG"), (.sysAdmin, "CAP_SYS_ADMIN")]
            .filter { privileges.capabilities.contains($0.0) }.map(\.1)
        let has = held.isEmpty ? "no capabilities" : held.joined(separator: ", ")
        let settings = "kptr_restrict \(privileges.kptrRestrict.map(String.init) ?? "?"), "
            + "perf_event_paranoid \(privileges.perfEventParanoid.map(String.init) ?? "?")"
        let missing = privileges.missingForRecording
        guard missing.isEmpty else {
            return Check(status: .missing, name: "privileges",
                         detail: "has \(has) (\(settings)); recording also needs \(missing.joined(separator: "; and "))")
        }
        let who = geteuid() == 0 ? "root with " : ""
        return Check(status: .ok, name: "privileges", detail: "\(who)\(has) (\(settings)): enough to record")
    }

    private static func kallsymsCheck() -> Check {
        guard let symbols = try? Kallsyms.load() else {
            let privileges = Privileges.current()
            let advice = privileges.canReadKernelAddresses
                ? "check that the kernel exposes /proc/kallsyms (CONFIG_KALLSYMS)"
                : "this process needs \(privileges.missingForRecording.last ?? "CAP_SYSLOG")"
            return Check(status: .missing, name: "kallsyms", detail: "/proc/kallsyms lists no addresses here: \(advice)")
        }
        if symbols.hasSymbol(named: LockNamer.namespaceSem) {
            return Check(status: .ok, name: "kallsyms", detail: "\(symbols.functionCount) functions and data symbols: locks are named by symbol")
        }
        return Check(status: .note, name: "kallsyms",
                     detail: "\(symbols.functionCount) functions, no data symbols (CONFIG_KALLSYMS_ALL off): namespace_sem and mount_lock are recognised from their call paths")
    }
}
