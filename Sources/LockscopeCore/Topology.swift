import Foundation

/// The CPU layout of a host: for every online CPU its core, socket, die, NUMA node, last-level
/// cache domain and SMT siblings, read from sysfs.
public struct Topology: Codable, Sendable, Equatable {
    /// One online CPU and where it sits.
    public struct CPU: Codable, Sendable, Equatable {
        /// The kernel's CPU number.
        public var id: Int
        /// `core_id`: unique within a socket only.
        public var core: Int
        /// `physical_package_id`.
        public var socket: Int
        /// `die_id` (0 when the kernel does not report dies).
        public var die: Int
        /// The NUMA node (0 when the host has no NUMA information).
        public var node: Int
        /// The last-level cache domain, numbered 0, 1, 2... in order of each domain's lowest CPU.
        public var llc: Int
        /// `thread_siblings_list`: the CPUs sharing this CPU's core, this CPU included.
        public var smtSiblings: [Int]

        public init(id: Int, core: Int, socket: Int, die: Int, node: Int, llc: Int, smtSiblings: [Int]) {
            self.id = id
            self.core = core
            self.socket = socket
            self.die = die
            self.node = node
            self.llc = llc
            self.smtSiblings = smtSiblings
        }
    }

    /// The online CPUs, sorted by id.
    public private(set) var cpus: [CPU]
    /// The number of distinct sockets.
    public private(set) var sockets: Int
    /// The number of distinct NUMA nodes.
    public private(set) var nodes: Int
    /// The number of distinct last-level cache domains.
    public private(set) var llcs: Int
    /// Whether any CPU shares its core with another CPU.
    public private(set) var smt: Bool
    /// `positionByID[id]` is the index of CPU `id` in `cpus`, or -1 for a CPU that is not online.
    private var positionByID: [Int]

    private enum CodingKeys: String, CodingKey {
        case cpus, sockets, nodes, llcs, smt
    }

    /// A topology of the given CPUs (ids in 0...65535); the counts are derived from them.
    public init(cpus: [CPU]) {
        precondition(cpus.allSatisfy { (0...maxCPUID).contains($0.id) }, "CPU ids must be in 0...\(maxCPUID)")
        self.cpus = cpus.sorted { $0.id < $1.id }
        sockets = Set(cpus.map(\.socket)).count
        nodes = Set(cpus.map(\.node)).count
        llcs = Set(cpus.map(\.llc)).count
        smt = cpus.contains { $0.smtSiblings.count > 1 }
        positionByID = Self.positions(of: self.cpus)
    }

    /// Decodes `cpus` and derives the counts from them, so they always agree.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let cpus = try container.decode([CPU].self, forKey: .cpus)
        if let bad = cpus.first(where: { !(0...maxCPUID).contains($0.id) }) {
            throw DecodingError.dataCorruptedError(forKey: .cpus, in: container,
                                                   debugDescription: "CPU id \(bad.id) is outside 0...\(maxCPUID)")
        }
        self.init(cpus: cpus)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(cpus, forKey: .cpus)
        try container.encode(sockets, forKey: .sockets)
        try container.encode(nodes, forKey: .nodes)
        try container.encode(llcs, forKey: .llcs)
        try container.encode(smt, forKey: .smt)
    }

    private static func positions(of cpus: [CPU]) -> [Int] {
        var positions = [Int](repeating: -1, count: (cpus.map(\.id).max() ?? -1) + 1)
        for (position, cpu) in cpus.enumerated() {
            positions[cpu.id] = position
        }
        return positions
    }

    /// The CPU with this id, or nil when it is not an online CPU of this host.
    public func cpu(_ id: Int) -> CPU? {
        guard positionByID.indices.contains(id), positionByID[id] >= 0 else { return nil }
        return cpus[positionByID[id]]
    }

    /// The most threads any core has (1 without SMT).
    public var threadsPerCore: Int {
        cpus.map(\.smtSiblings.count).max() ?? 1
    }

    /// How close `current` is to `previous`: the nearest level of the hierarchy they share.
    ///
    /// A CPU id this topology does not know (offline when it was read, or from another host)
    /// gets the closest level that holds for every pair of CPUs on the host without claiming
    /// more: `sameSocket` on a single-socket host, `otherSocket` otherwise.
    public func handoff(from previous: Int, to current: Int) -> Handoff {
        if previous == current { return .sameCPU }
        guard let from = cpu(previous), let to = cpu(current) else {
            return sockets <= 1 ? .sameSocket : .otherSocket
        }
        if to.smtSiblings.contains(from.id) { return .smtSibling }
        if to.llc == from.llc { return .sameLLC }
        if to.socket == from.socket { return .sameSocket }
        return .otherSocket
    }

    /// One line, e.g. "96 CPUs, 2 sockets, 2 NUMA nodes, 2 LLCs, SMT 2 threads/core".
    public func summary() -> String {
        let smtPart = smt ? "SMT \(threadsPerCore) threads/core" : "no SMT"
        return [Units.count(cpus.count, "CPU"), Units.count(sockets, "socket"), Units.count(nodes, "NUMA node"),
                Units.count(llcs, "LLC"), smtPart].joined(separator: ", ")
    }
}

/// Where a contended lock acquisition ran relative to the previous contended acquisition of the same lock.
public enum Handoff: String, Codable, Sendable, CaseIterable {
    case sameCPU = "same_cpu"
    case smtSibling = "smt_sibling"
    case sameLLC = "same_llc"
    case sameSocket = "same_socket"
    case otherSocket = "other_socket"
}

/// Why a host's topology could not be read.
public enum TopologyError: Error, CustomStringConvertible, Equatable {
    /// `<root>/devices/system/cpu/online` does not exist.
    case noSysfs(root: String)
    /// A file every online CPU must have is missing.
    case missingFile(path: String)
    /// A file does not hold what the kernel writes there.
    case malformedFile(path: String, problem: String)
    /// A CPU list string (`0-3,8,10-11`) could not be parsed.
    case malformedCPUList(text: String, problem: String)

    public var description: String {
        switch self {
        case .noSysfs(let root):
            return "no CPU topology under \(root): \(root)/devices/system/cpu/online is missing; "
                + "pass the sysfs root of the host (the directory holding devices/system/cpu), normally /sys"
        case .missingFile(let path):
            return "cannot read \(path): the sysfs tree is incomplete; copy the host's whole devices/system/cpu "
                + "and devices/system/node directories"
        case .malformedFile(let path, let problem):
            return "\(path) is malformed: \(problem); copy it again from the host's sysfs"
        case .malformedCPUList(let text, let problem):
            return "malformed CPU list \"\(text)\": \(problem); expected a list like 0-3,8,10-11"
        }
    }
}

/// The largest CPU id accepted (the kernel's NR_CPUS is at most 8192).
let maxCPUID = 65_535

/// Parses the kernel's CPU list syntax (`0-3,8,10-11`) into ascending, distinct CPU ids.
/// Surrounding whitespace is ignored; an empty list gives `[]`.
public func parseCPUList(_ s: String) throws -> [Int] {
    let text = s.trimmingCharacters(in: .whitespacesAndNewlines)
    if text.isEmpty { return [] }
    var cpus = Set<Int>()
    for element in text.split(separator: ",", omittingEmptySubsequences: false) {
        let bounds = element.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(bounds.count),
              let first = Int(bounds[0]), let last = Int(bounds[bounds.count - 1]),
              first >= 0
        else {
            throw TopologyError.malformedCPUList(text: text, problem: "\"\(element)\" is not a CPU id or a range of them")
        }
        guard first <= last else {
            throw TopologyError.malformedCPUList(text: text, problem: "range \(element) ends before it starts")
        }
        guard last <= maxCPUID else {
            throw TopologyError.malformedCPUList(text: text, problem: "CPU \(last) is above \(maxCPUID)")
        }
        cpus.formUnion(first...last)
    }
    return cpus.sorted()
}

extension Topology {
    /// Reads the topology of every online CPU from the sysfs tree at `sysfsRoot` (the live host's
    /// `/sys`, or a copy of another host's).
    public static func read(sysfsRoot: String = "/sys") throws -> Topology {
        try SysfsReader(root: sysfsRoot).read()
    }
}

/// Reads the topology files; every path is relative to the sysfs root.
private struct SysfsReader {
    let root: String
    var cpuDirectory: String { "\(root)/devices/system/cpu" }

    func read() throws -> Topology {
        let onlinePath = "\(cpuDirectory)/online"
        guard let onlineText = contents(onlinePath) else { throw TopologyError.noSysfs(root: root) }
        let online = try cpuList(onlineText, path: onlinePath)
        guard !online.isEmpty else { throw TopologyError.malformedFile(path: onlinePath, problem: "it lists no CPUs") }

        let nodeByMembership = try nodesFromNodeDirectories()
        var cpus: [Topology.CPU] = []
        var llcMembers: [[Int]] = []
        for id in online {
            let topology = "\(cpuDirectory)/cpu\(id)/topology"
            let siblingsPath = "\(topology)/thread_siblings_list"
            cpus.append(Topology.CPU(
                id: id,
                core: try integer(at: "\(topology)/core_id"),
                socket: try integer(at: "\(topology)/physical_package_id"),
                die: try optionalInteger(at: "\(topology)/die_id") ?? 0,
                node: nodeFromLink(cpu: id) ?? nodeByMembership[id] ?? 0,
                llc: -1,
                smtSiblings: try contents(siblingsPath).map { try cpuList($0, path: siblingsPath) } ?? [id]))
            llcMembers.append(try lastLevelCacheMembers(cpu: id))
        }
        // A CPU without cache information shares its LLC with the rest of its socket.
        for (index, cpu) in cpus.enumerated() where llcMembers[index].isEmpty {
            llcMembers[index] = cpus.filter { $0.socket == cpu.socket }.map(\.id)
        }
        // Numbered in order of lowest CPU (lexicographic order breaks ties deterministically).
        let domains = Set(llcMembers).sorted { $0.lexicographicallyPrecedes($1) }
        let domainNumber = Dictionary(uniqueKeysWithValues: domains.enumerated().map { ($1, $0) })
        for index in cpus.indices {
            cpus[index].llc = domainNumber[llcMembers[index]]!
        }
        return Topology(cpus: cpus)
    }

    /// The node of a CPU from its `cpuN/nodeM` entry (a link to the node in the live sysfs).
    private func nodeFromLink(cpu: Int) -> Int? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "\(cpuDirectory)/cpu\(cpu)")) ?? []
        return entries.lazy.compactMap { Self.number(in: $0, after: "node") }.first
    }

    /// CPU → node from every `devices/system/node/nodeM/cpulist`; empty when the host has none.
    private func nodesFromNodeDirectories() throws -> [Int: Int] {
        let nodeDirectory = "\(root)/devices/system/node"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: nodeDirectory)) ?? []
        var nodeByCPU: [Int: Int] = [:]
        for entry in entries {
            let path = "\(nodeDirectory)/\(entry)/cpulist"
            guard let node = Self.number(in: entry, after: "node"), let text = contents(path) else { continue }
            for cpu in try cpuList(text, path: path) {
                nodeByCPU[cpu] = node
            }
        }
        return nodeByCPU
    }

    /// The `shared_cpu_list` of the CPU's highest-level data or unified cache, or [] without one.
    private func lastLevelCacheMembers(cpu: Int) throws -> [Int] {
        let cacheDirectory = "\(cpuDirectory)/cpu\(cpu)/cache"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: cacheDirectory)) ?? []
        var best: (level: Int, members: [Int])?
        for entry in entries where Self.number(in: entry, after: "index") != nil {
            let index = "\(cacheDirectory)/\(entry)"
            guard let type = contents("\(index)/type")?.trimmingCharacters(in: .whitespacesAndNewlines),
                  type == "Unified" || type == "Data",
                  let level = try optionalInteger(at: "\(index)/level"), level > best?.level ?? 0
            else { continue }
            let sharedPath = "\(index)/shared_cpu_list"
            guard let shared = contents(sharedPath) else { throw TopologyError.missingFile(path: sharedPath) }
            best = (level, try cpuList(shared, path: sharedPath))
        }
        return best?.members ?? []
    }

    private func contents(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }

    private func integer(at path: String) throws -> Int {
        guard let value = try optionalInteger(at: path) else { throw TopologyError.missingFile(path: path) }
        return value
    }

    /// The integer in the file at `path`, or nil when there is no such file.
    private func optionalInteger(at path: String) throws -> Int? {
        guard let text = contents(path)?.trimmingCharacters(in: .whitespacesAndNewlines) else { return nil }
        guard let value = Int(text) else {
            throw TopologyError.malformedFile(path: path, problem: "expected an integer, found \"\(text)\"")
        }
        return value
    }

    private func cpuList(_ text: String, path: String) throws -> [Int] {
        do {
            return try parseCPUList(text)
        } catch TopologyError.malformedCPUList(_, let problem) {
            throw TopologyError.malformedFile(path: path, problem: problem)
        }
    }

    /// 3 for ("node3", "node"); nil unless `name` is the prefix followed by digits only.
    private static func number(in name: String, after prefix: String) -> Int? {
        guard name.hasPrefix(prefix), name.count > prefix.count else { return nil }
        let digits = name.dropFirst(prefix.count)
        return digits.allSatisfy { ("0"..."9").contains($0) } ? Int(digits) : nil
    }
}
