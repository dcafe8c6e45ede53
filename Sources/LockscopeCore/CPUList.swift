import Foundation

/// The CPUs a recording keeps waits from (`record --cpu`, perf lock contention's `-C`): a CPU list as
/// the kernel writes one (`0,2-3`), every CPU of it one this machine has.
public struct CPUList: Sendable, Equatable {
    /// Ascending, distinct CPU ids.
    public let cpus: [Int]
    /// The list as given.
    public let text: String

    /// Parses `text`, refusing a malformed list and any CPU not in `online`.
    public init(parsing text: String, online: [Int]) throws {
        guard let cpus = try? parseCPUList(text), !cpus.isEmpty else {
            throw UserError("'\(text)' is not a CPU list: write it as perf -C and cpuset.cpus do, e.g. 0,2-3")
        }
        let missing = cpus.filter { !online.contains($0) }
        guard missing.isEmpty else {
            let which = missing.count == 1 ? "CPU \(missing[0]) is" : "CPUs \(missing.map(String.init).joined(separator: ",")) are"
            throw UserError("\(which) not online on this machine: give CPUs from \(CPUList.describe(online))")
        }
        self.cpus = cpus
        self.text = text
    }

    /// The online CPUs of this machine (`/sys/devices/system/cpu/online`).
    public static func online(sysfsRoot: String = "/sys") throws -> [Int] {
        let path = "\(sysfsRoot)/devices/system/cpu/online"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let cpus = try? parseCPUList(text) else {
            throw UserError("cannot read the online CPUs from \(path): --cpu needs sysfs mounted at \(sysfsRoot)")
        }
        return cpus
    }

    /// `cpus` in the kernel's list syntax, runs as ranges: [0, 1, 2, 5] is `0-2,5`.
    public static func describe(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var index = 0
        let sorted = Array(Set(cpus)).sorted()
        while index < sorted.count {
            var end = index
            while end + 1 < sorted.count, sorted[end + 1] == sorted[end] + 1 { end += 1 }
            parts.append(end == index ? "\(sorted[index])" : "\(sorted[index])-\(sorted[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }
}
