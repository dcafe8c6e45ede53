import Foundation

/// A set of CPUs a storm's workers are confined to, and what it stands for: the placements a platform
/// team chooses between (all CPUs, one socket, one thread per core, one last-level cache).
public struct Placement: Codable, Sendable, Equatable {
    /// `all`, `socket0`, `one-thread-per-core`, `llc0`, or `cpus:<list>` for a list the user gave.
    public var name: String
    public var cpus: [Int]

    public init(name: String, cpus: [Int]) {
        self.name = name
        self.cpus = cpus.sorted()
    }

    /// The placements `topology` offers, each a distinct CPU set: all CPUs; the first socket (with
    /// several); one thread per core, the lowest-numbered SMT sibling of each (with SMT); the first
    /// last-level cache domain (when that is not the whole of a socket). A set equal to an earlier one
    /// is left out: on one socket without SMT, `all` is the only one.
    public static func offered(by topology: Topology) -> [Placement] {
        let all = topology.cpus.map(\.id)
        var candidates = [Placement(name: "all", cpus: all)]
        if topology.sockets > 1, let first = topology.cpus.first {
            candidates.append(Placement(name: "socket\(first.socket)",
                                        cpus: topology.cpus.filter { $0.socket == first.socket }.map(\.id)))
        }
        if topology.smt {
            candidates.append(Placement(name: "one-thread-per-core",
                                        cpus: topology.cpus.filter { $0.id == ($0.smtSiblings.min() ?? $0.id) }.map(\.id)))
        }
        if topology.llcs > 1, let first = topology.cpus.first {
            candidates.append(Placement(name: "llc\(first.llc)", cpus: topology.cpus.filter { $0.llc == first.llc }.map(\.id)))
        }
        var placements: [Placement] = []
        for candidate in candidates where !placements.contains(where: { $0.cpus == candidate.cpus }) {
            placements.append(candidate)
        }
        return placements
    }

    /// A user's CPU list (`0-3,8`, as taskset and cpuset.cpus write them), checked against `online` CPUs.
    public static func cpuList(_ text: String, online: [Int]) throws -> Placement {
        guard let cpus = try? parseCPUList(text), !cpus.isEmpty else {
            throw UserError("'\(text)' is not a CPU list: write it as cpuset.cpus does, e.g. 0-3,8")
        }
        let offline = cpus.filter { !online.contains($0) }
        guard offline.isEmpty else {
            throw UserError("CPU \(offline.map(String.init).joined(separator: ", ")) in '\(text)' is not online: online are \(online.map(String.init).joined(separator: ","))")
        }
        return Placement(name: "cpus:\(text)", cpus: Array(Set(cpus)))
    }
}
