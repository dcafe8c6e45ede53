import Foundation
import XCTest
@testable import LockscopeCore

final class TopologyTests: XCTestCase {
    /// The sysfs fixture tree of one host (Fixtures/sysfs/<host>, see make-sysfs-fixtures.py).
    private func sysfs(_ host: String) throws -> String {
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return fixtures.appendingPathComponent("sysfs").appendingPathComponent(host).path
    }

    // MARK: parseCPUList

    func testParsesRangesAndSingles() throws {
        XCTAssertEqual(try parseCPUList("0-3,8,10-11"), [0, 1, 2, 3, 8, 10, 11])
        XCTAssertEqual(try parseCPUList("0"), [0])
        XCTAssertEqual(try parseCPUList("24-47,72-95").count, 48)
    }

    func testEmptyAndWhitespaceListsAreEmpty() throws {
        XCTAssertEqual(try parseCPUList(""), [])
        XCTAssertEqual(try parseCPUList(" \n"), [])
        XCTAssertEqual(try parseCPUList("  0-1\n"), [0, 1])
    }

    func testOverlappingListIsSortedWithoutDuplicates() throws {
        XCTAssertEqual(try parseCPUList("4,0-2,1"), [0, 1, 2, 4])
    }

    func testMalformedListsThrowOneLineErrors() {
        let cases: [(String, String)] = [
            ("a", #"malformed CPU list "a": "a" is not a CPU id or a range of them; expected a list like 0-3,8,10-11"#),
            ("3-1", #"malformed CPU list "3-1": range 3-1 ends before it starts; expected a list like 0-3,8,10-11"#),
            ("1,,2", #"malformed CPU list "1,,2": "" is not a CPU id or a range of them; expected a list like 0-3,8,10-11"#),
            ("-1", #"malformed CPU list "-1": "-1" is not a CPU id or a range of them; expected a list like 0-3,8,10-11"#),
            ("0-", #"malformed CPU list "0-": "0-" is not a CPU id or a range of them; expected a list like 0-3,8,10-11"#),
            ("1-2-3", #"malformed CPU list "1-2-3": "1-2-3" is not a CPU id or a range of them; expected a list like 0-3,8,10-11"#),
            ("0-99999999", #"malformed CPU list "0-99999999": CPU 99999999 is above 65535; expected a list like 0-3,8,10-11"#),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try parseCPUList(text), text) { error in
                XCTAssertEqual("\(error)", message)
            }
        }
    }

    // MARK: fixtures

    func testVM2CPU() throws {
        let topology = try Topology.read(sysfsRoot: sysfs("vm-2cpu"))
        XCTAssertEqual(topology.cpus, [
            Topology.CPU(id: 0, core: 0, socket: 0, die: 0, node: 0, llc: 0, smtSiblings: [0]),
            Topology.CPU(id: 1, core: 1, socket: 0, die: 0, node: 0, llc: 0, smtSiblings: [1]),
        ])
        XCTAssertEqual([topology.sockets, topology.nodes, topology.llcs], [1, 1, 1])
        XCTAssertFalse(topology.smt)
        XCTAssertEqual(topology.summary(), "2 CPUs, 1 socket, 1 NUMA node, 1 LLC, no SMT")
        XCTAssertEqual(topology.handoff(from: 0, to: 1), .sameLLC)
    }

    func testDualSocket96() throws {
        let topology = try Topology.read(sysfsRoot: sysfs("dual-socket-96"))
        XCTAssertEqual(topology.cpus.map(\.id), Array(0...95))
        XCTAssertEqual([topology.sockets, topology.nodes, topology.llcs], [2, 2, 2])
        XCTAssertTrue(topology.smt)
        XCTAssertEqual(topology.threadsPerCore, 2)
        XCTAssertEqual(topology.summary(), "96 CPUs, 2 sockets, 2 NUMA nodes, 2 LLCs, SMT 2 threads/core")
        XCTAssertEqual(topology.cpu(0), Topology.CPU(id: 0, core: 0, socket: 0, die: 0, node: 0, llc: 0, smtSiblings: [0, 48]))
        XCTAssertEqual(topology.cpu(23), Topology.CPU(id: 23, core: 23, socket: 0, die: 0, node: 0, llc: 0, smtSiblings: [23, 71]))
        XCTAssertEqual(topology.cpu(24), Topology.CPU(id: 24, core: 0, socket: 1, die: 0, node: 1, llc: 1, smtSiblings: [24, 72]))
        XCTAssertEqual(topology.cpu(48), Topology.CPU(id: 48, core: 0, socket: 0, die: 0, node: 0, llc: 0, smtSiblings: [0, 48]))
        XCTAssertEqual(topology.cpu(95), Topology.CPU(id: 95, core: 23, socket: 1, die: 0, node: 1, llc: 1, smtSiblings: [47, 95]))
        XCTAssertNil(topology.cpu(96))
        XCTAssertNil(topology.cpu(-1))

        XCTAssertEqual(topology.handoff(from: 7, to: 7), .sameCPU)
        XCTAssertEqual(topology.handoff(from: 0, to: 48), .smtSibling)
        XCTAssertEqual(topology.handoff(from: 48, to: 0), .smtSibling)
        XCTAssertEqual(topology.handoff(from: 0, to: 5), .sameLLC)
        XCTAssertEqual(topology.handoff(from: 1, to: 48), .sameLLC)
        XCTAssertEqual(topology.handoff(from: 0, to: 24), .otherSocket)
        XCTAssertEqual(topology.handoff(from: 95, to: 48), .otherSocket)
    }

    func testChiplet1S() throws {
        let topology = try Topology.read(sysfsRoot: sysfs("chiplet-1s"))
        XCTAssertEqual(topology.cpus.map(\.id), Array(0...63))
        XCTAssertEqual([topology.sockets, topology.nodes, topology.llcs], [1, 1, 4])
        XCTAssertEqual(topology.summary(), "64 CPUs, 1 socket, 1 NUMA node, 4 LLCs, SMT 2 threads/core")
        XCTAssertEqual(topology.cpus.map(\.llc), (0..<64).map { ($0 % 32) / 8 })
        XCTAssertEqual(topology.cpu(40), Topology.CPU(id: 40, core: 8, socket: 0, die: 0, node: 0, llc: 1, smtSiblings: [8, 40]))
        XCTAssertEqual(topology.cpu(31), Topology.CPU(id: 31, core: 31, socket: 0, die: 0, node: 0, llc: 3, smtSiblings: [31, 63]))

        XCTAssertEqual(topology.handoff(from: 0, to: 32), .smtSibling)
        XCTAssertEqual(topology.handoff(from: 0, to: 7), .sameLLC)
        XCTAssertEqual(topology.handoff(from: 0, to: 39), .sameLLC)
        XCTAssertEqual(topology.handoff(from: 0, to: 8), .sameSocket)
        XCTAssertEqual(topology.handoff(from: 63, to: 0), .sameSocket)
    }

    func testReadsTheLiveHost() throws {
        guard FileManager.default.fileExists(atPath: "/sys/devices/system/cpu/online") else { throw XCTSkip("no sysfs") }
        XCTAssertEqual(try Topology.read().cpus.count, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    func testUnknownCPUsClassifyAsTheLevelEveryPairShares() throws {
        let singleSocket = try Topology.read(sysfsRoot: sysfs("chiplet-1s"))
        XCTAssertEqual(singleSocket.handoff(from: 0, to: 200), .sameSocket)
        let dualSocket = try Topology.read(sysfsRoot: sysfs("dual-socket-96"))
        XCTAssertEqual(dualSocket.handoff(from: 0, to: 200), .otherSocket)
        XCTAssertEqual(dualSocket.handoff(from: -1, to: 0), .otherSocket)
        XCTAssertEqual(dualSocket.handoff(from: 200, to: 200), .sameCPU)
    }

    /// A hand-built host covering every fallback: CPU 1 offline, no die_id or
    /// thread_siblings_list, nodes from a cpuN/nodeM entry or from node/nodeM/cpulist or neither,
    /// no L3 (the L2 is the last level), an instruction cache that must not count, CPU 4 without caches.
    func testFallbacksOnASparseHost() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(root, "devices/system/cpu/online", "0,2-4\n")
        for cpu in [0, 2, 3, 4] {
            try write(root, "devices/system/cpu/cpu\(cpu)/topology/core_id", "\(cpu)\n")
            try write(root, "devices/system/cpu/cpu\(cpu)/topology/physical_package_id", "0\n")
        }
        try FileManager.default.createDirectory(atPath: "\(root)/devices/system/cpu/cpu3/node1", withIntermediateDirectories: true)
        try write(root, "devices/system/node/node2/cpulist", "2\n")
        for (cpu, l2) in [(0, "0,2"), (2, "0,2"), (3, "3")] {
            try write(root, "devices/system/cpu/cpu\(cpu)/cache/index0/level", "1\n")
            try write(root, "devices/system/cpu/cpu\(cpu)/cache/index0/type", "Data\n")
            try write(root, "devices/system/cpu/cpu\(cpu)/cache/index0/shared_cpu_list", "\(cpu)\n")
            try write(root, "devices/system/cpu/cpu\(cpu)/cache/index1/level", "3\n")
            try write(root, "devices/system/cpu/cpu\(cpu)/cache/index1/type", "Instruction\n")
            try write(root, "devices/system/cpu/cpu\(cpu)/cache/index1/shared_cpu_list", "0-4\n")
            try write(root, "devices/system/cpu/cpu\(cpu)/cache/index2/level", "2\n")
            try write(root, "devices/system/cpu/cpu\(cpu)/cache/index2/type", "Unified\n")
            try write(root, "devices/system/cpu/cpu\(cpu)/cache/index2/shared_cpu_list", "\(l2)\n")
        }

        let topology = try Topology.read(sysfsRoot: root)
        XCTAssertEqual(topology.cpus, [
            Topology.CPU(id: 0, core: 0, socket: 0, die: 0, node: 0, llc: 0, smtSiblings: [0]),
            Topology.CPU(id: 2, core: 2, socket: 0, die: 0, node: 2, llc: 0, smtSiblings: [2]),
            Topology.CPU(id: 3, core: 3, socket: 0, die: 0, node: 1, llc: 2, smtSiblings: [3]),
            Topology.CPU(id: 4, core: 4, socket: 0, die: 0, node: 0, llc: 1, smtSiblings: [4]),
        ])
        XCTAssertNil(topology.cpu(1))
        XCTAssertEqual(topology.summary(), "4 CPUs, 1 socket, 3 NUMA nodes, 3 LLCs, no SMT")
    }

    // MARK: errors

    func testMissingRootIsAClearError() {
        XCTAssertThrowsError(try Topology.read(sysfsRoot: "/nonexistent/lockscope-sysfs")) { error in
            XCTAssertEqual(error as? TopologyError, .noSysfs(root: "/nonexistent/lockscope-sysfs"))
            XCTAssertEqual("\(error)", "no CPU topology under /nonexistent/lockscope-sysfs: "
                + "/nonexistent/lockscope-sysfs/devices/system/cpu/online is missing; "
                + "pass the sysfs root of the host (the directory holding devices/system/cpu), normally /sys")
        }
    }

    func testMissingAndMalformedFilesNameThePath() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(root, "devices/system/cpu/online", "0\n")
        let coreID = "\(root)/devices/system/cpu/cpu0/topology/core_id"
        XCTAssertThrowsError(try Topology.read(sysfsRoot: root)) { error in
            XCTAssertEqual("\(error)", "cannot read \(coreID): the sysfs tree is incomplete; "
                + "copy the host's whole devices/system/cpu and devices/system/node directories")
        }
        try write(root, "devices/system/cpu/cpu0/topology/core_id", "zero\n")
        XCTAssertThrowsError(try Topology.read(sysfsRoot: root)) { error in
            XCTAssertEqual("\(error)", "\(coreID) is malformed: expected an integer, found \"zero\"; copy it again from the host's sysfs")
        }
        try write(root, "devices/system/cpu/online", "1-0\n")
        XCTAssertThrowsError(try Topology.read(sysfsRoot: root)) { error in
            XCTAssertEqual("\(error)", "\(root)/devices/system/cpu/online is malformed: range 1-0 ends before it starts; copy it again from the host's sysfs")
        }
    }

    // MARK: JSON

    func testRoundTripsThroughSnakeCaseJSON() throws {
        let topology = try Topology.read(sysfsRoot: sysfs("dual-socket-96"))
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(topology)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let decoded = try decoder.decode(Topology.self, from: data)
        XCTAssertEqual(decoded, topology)
        XCTAssertEqual(decoded.cpu(72)?.smtSiblings, [24, 72])

        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["cpus", "sockets", "nodes", "llcs", "smt"])
        let firstCPU = try XCTUnwrap((json["cpus"] as? [[String: Any]])?.first)
        XCTAssertEqual(Set(firstCPU.keys), ["id", "core", "socket", "die", "node", "llc", "smt_siblings"])
        let smallest = try encoder.encode(Topology(cpus: [Topology.CPU(id: 0, core: 0, socket: 0, die: 0, node: 0, llc: 0, smtSiblings: [0])]))
        XCTAssertEqual(String(decoding: smallest, as: UTF8.self),
                       #"{"cpus":[{"core":0,"die":0,"id":0,"llc":0,"node":0,"smt_siblings":[0],"socket":0}],"llcs":1,"nodes":1,"smt":false,"sockets":1}"#)
    }

    func testDecodingRejectsAnOutOfRangeCPUID() {
        let json = #"{"cpus":[{"core":0,"die":0,"id":100000,"llc":0,"node":0,"smt_siblings":[0],"socket":0}],"llcs":1,"nodes":1,"smt":false,"sockets":1}"#
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        XCTAssertThrowsError(try decoder.decode(Topology.self, from: Data(json.utf8)))
    }

    func testHandoffRawValues() {
        XCTAssertEqual(Handoff.allCases.map(\.rawValue), ["same_cpu", "smt_sibling", "same_llc", "same_socket", "other_socket"])
    }

    // MARK: helpers

    private func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-sysfs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func write(_ root: String, _ relative: String, _ text: String) throws {
        let url = URL(fileURLWithPath: root).appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: false, encoding: .utf8)
    }
}
