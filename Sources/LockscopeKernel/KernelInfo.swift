import CLibbpf
import Foundation
import LockscopeCore

/// Facts about the running kernel that recording needs: its BTF, lock layouts, host name and release.
public struct KernelInfo {
    public var hostname: String
    public var release: String
    /// Offsets inside lock types, from the kernel's BTF.
    public var layout: KernelLockLayout
    public var hasBTF: Bool
    /// Raw tracepoints the kernel defines (found in BTF as `btf_trace_<name>`).
    public var tracepoints: Set<String>

    public static let btfPath = "/sys/kernel/btf/vmlinux"

    public static func read() -> KernelInfo {
        var name = utsname()
        uname(&name)
        func field<T>(_ value: inout T) -> String {
            withUnsafeBytes(of: &value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        var info = KernelInfo(hostname: field(&name.nodename), release: field(&name.release),
                              layout: KernelLockLayout(), hasBTF: false, tracepoints: [])
        guard FileManager.default.fileExists(atPath: btfPath), let btf = btf__load_vmlinux_btf() else { return info }
        defer { btf__free(btf) }
        info.hasBTF = true
        info.layout = KernelLockLayout(
            rwsemWaitLockOffset: memberOffset(btf, type: "rw_semaphore", kind: BTFKind.structure, member: "wait_lock"),
            seqlockLockOffset: memberOffset(btf, type: "seqlock_t", kind: BTFKind.typedef, member: "lock"))
        for tracepoint in ["contention_begin", "contention_end", "sys_enter", "sys_exit"]
        where btf__find_by_name_kind(btf, "btf_trace_\(tracepoint)", BTFKind.typedef) > 0 {
            info.tracepoints.insert(tracepoint)
        }
        return info
    }

    /// Byte offset of `member` in a struct (or a typedef of one), nil if absent.
    private static func memberOffset(_ btf: OpaquePointer, type: String, kind: UInt32, member: String) -> UInt64? {
        var id = btf__find_by_name_kind(btf, type, kind)
        guard id > 0 else { return nil }
        id = btf__resolve_type(btf, UInt32(id))
        guard id > 0, let structType = btf__type_by_id(btf, UInt32(id)), let members = btf_members(structType) else {
            return nil
        }
        for index in 0..<Int(btf_vlen(structType)) {
            guard let name = btf__name_by_offset(btf, members[index].name_off), String(cString: name) == member else {
                continue
            }
            return UInt64(btf_member_bit_offset(structType, UInt32(index)) / 8)
        }
        return nil
    }
}

/// BTF kinds (include/uapi/linux/btf.h), spelled out because the C enum imports ambiguously.
enum BTFKind {
    static let structure: UInt32 = 4
    static let typedef: UInt32 = 8
}
