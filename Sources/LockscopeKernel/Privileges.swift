import Foundation
import LockscopeCore

/// Linux capabilities of this process (from /proc/self/status).
public struct Capabilities: OptionSet, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let sysAdmin = Capabilities(rawValue: 1 << 21)
    public static let syslog = Capabilities(rawValue: 1 << 34)
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

/// What recording needs from this process and this kernel's settings, and what is missing.
///
/// - Loading and attaching tracing programs and reading their maps: CAP_BPF and CAP_PERFMON
///   (CAP_SYS_ADMIN also grants both).
/// - Kernel addresses in /proc/kallsyms, to name locks and symbolize stacks: the kernel shows them
///   when `kernel.kptr_restrict` is 0 and `kernel.perf_event_paranoid` is at most 1, or when
///   `kptr_restrict` is at most 1 and the reader has CAP_SYSLOG; never when `kptr_restrict` is 2.
public struct Privileges: Sendable {
    public var capabilities: Capabilities
    public var kptrRestrict: Int?
    public var perfEventParanoid: Int?

    public init(capabilities: Capabilities, kptrRestrict: Int?, perfEventParanoid: Int?) {
        self.capabilities = capabilities
        self.kptrRestrict = kptrRestrict
        self.perfEventParanoid = perfEventParanoid
    }

    /// This process's privileges and the kernel's current settings.
    public static func current(procRoot: String = "/proc") -> Privileges {
        func sysctl(_ name: String) -> Int? {
            (try? String(contentsOfFile: "\(procRoot)/sys/kernel/\(name)", encoding: .utf8))
                .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        return Privileges(capabilities: Capabilities.effective(statusPath: "\(procRoot)/self/status"),
                          kptrRestrict: sysctl("kptr_restrict"), perfEventParanoid: sysctl("perf_event_paranoid"))
    }

    public var canUseBPF: Bool {
        capabilities.isSuperset(of: [.bpf, .perfmon]) || capabilities.contains(.sysAdmin)
    }

    /// Whether the kernel shows this process the addresses in /proc/kallsyms (the rule in
    /// kernel/kallsyms.c, `kallsyms_show_value`).
    public var canReadKernelAddresses: Bool {
        switch kptrRestrict ?? 1 {
        case 0: return (perfEventParanoid ?? 2) <= 1 || capabilities.contains(.syslog)
        case 1: return capabilities.contains(.syslog)
        default: return false
        }
    }

    /// What recording lacks, each with the one change that would fix it; empty when it can record.
    public var missingForRecording: [String] {
        var missing: [String] = []
        if !canUseBPF {
            let lacking = [(Capabilities.bpf, "CAP_BPF"), (.perfmon, "CAP_PERFMON")]
                .filter { !capabilities.contains($0.0) }.map(\.1)
            missing.append("\(lacking.joined(separator: " and ")) (to load and attach BPF programs)")
        }
        if !canReadKernelAddresses {
            switch kptrRestrict ?? 1 {
            case 0: missing.append("CAP_SYSLOG, or kernel.perf_event_paranoid at most 1 (to read kernel addresses in /proc/kallsyms)")
            case 1: missing.append("CAP_SYSLOG (to read kernel addresses in /proc/kallsyms; kernel.kptr_restrict is 1)")
            default: missing.append("kernel.kptr_restrict at most 1 and CAP_SYSLOG (kptr_restrict 2 hides kernel addresses from everyone)")
            }
        }
        return missing
    }

    /// Refuses, with one line, when recording cannot work.
    public func requireForRecording() throws {
        let missing = missingForRecording
        guard !missing.isEmpty else { return }
        throw UserError("recording needs \(missing.joined(separator: "; and ")): run as root (sudo), or grant what is missing")
    }
}
