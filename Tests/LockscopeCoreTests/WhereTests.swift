import CLockscopeBPF
import XCTest

@testable import LockscopeCore

/// Hand-off locality, socket/node/LLC roll-ups and owner blame, on the dual-socket 96-CPU fixture.
final class WhereTests: XCTestCase {
    private func host(_ name: String) throws -> Topology {
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return try Topology.read(sysfsRoot: fixtures.appendingPathComponent("sysfs/\(name)").path)
    }

    private let lock: UInt64 = 0xffff_ffff_8300_1000
    private let mutexFlags = UInt32(LOCKSCOPE_LCB_F_MUTEX)

    /// Acquisitions on CPUs 0, 0, 48, 1, 24, 30 (in that order): same CPU, SMT sibling, same LLC,
    /// other socket, and same LLC again (one L3 per socket on this host).
    func testHandoffsAreClassifiedAgainstThePreviousAcquisition() throws {
        var aggregator = Aggregator(topology: try host("dual-socket-96"))
        let sequence: [(cpu: UInt32, ns: UInt64)] = [(0, 100), (0, 200), (48, 300), (1, 400), (24, 500), (30, 600)]
        for step in sequence {
            aggregator.record(WaitEvent(flags: mutexFlags, waitNs: step.ns, lockAddress: lock, stackID: 1, cpu: step.cpu))
        }
        let handoffs = aggregator.profile(AggregatorTests.inputs()).locks[0].handoffs
        XCTAssertEqual(handoffs.map(\.handoff), [.sameCPU, .smtSibling, .sameLLC, .otherSocket])
        XCTAssertEqual(handoffs.map(\.stats.totalWaitNs), [200, 300, 400 + 600, 500])
        XCTAssertEqual(handoffs.reduce(0) { $0 + $1.stats.contentions }, 5, "the first has no predecessor")
    }

    /// On a chiplet host, two cores of one socket in different L3 domains hand off within the socket.
    func testChipletHandoffAcrossLLCsStaysInTheSocket() throws {
        var aggregator = Aggregator(topology: try host("chiplet-1s"))
        for cpu in [0, 8, 9] as [UInt32] {
            aggregator.record(WaitEvent(flags: mutexFlags, waitNs: 10, lockAddress: lock, stackID: 1, cpu: cpu))
        }
        let handoffs = aggregator.profile(AggregatorTests.inputs()).locks[0].handoffs
        XCTAssertEqual(handoffs.map(\.handoff), [.sameLLC, .sameSocket])
    }

    func testSocketNodeAndLLCRollUpsAddUp() throws {
        let topology = try host("dual-socket-96")
        var aggregator = Aggregator(topology: topology)
        for cpu in [0, 1, 24, 48, 72, 95] as [UInt32] {
            aggregator.record(WaitEvent(flags: mutexFlags, waitNs: 1_000 + UInt64(cpu), lockAddress: lock, stackID: 1, cpu: cpu))
        }
        let lock = aggregator.profile(AggregatorTests.inputs()).locks[0]
        XCTAssertEqual(lock.bySocket.map(\.key), ["0", "1"])
        XCTAssertEqual(lock.bySocket.map(\.stats.contentions), [3, 3])
        XCTAssertEqual(lock.bySocket.map(\.stats.totalWaitNs), [1_000 + 1_001 + 1_048, 1_024 + 1_072 + 1_095])
        XCTAssertEqual(lock.byNode.map(\.stats.contentions), [3, 3])
        XCTAssertEqual(lock.byLlc.map(\.stats.contentions), [3, 3])
        XCTAssertEqual(lock.byCpu.map(\.key), ["0", "1", "24", "48", "72", "95"])
    }

    /// Waiters in one container blamed on the owner in another; reader-owned (unknown) owners say so.
    func testOwnerBlame() {
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: mutexFlags, waitNs: 3_000, lockAddress: lock, cgroupID: 5, ownerCgroupID: 6,
                                    ownerPid: 4242, stackID: 1, ownerComm: "containerd"))
        aggregator.record(WaitEvent(flags: mutexFlags, waitNs: 2_000, lockAddress: lock, cgroupID: 5, ownerCgroupID: 6,
                                    ownerPid: 4242, stackID: 1, ownerComm: "containerd"))
        aggregator.record(WaitEvent(flags: UInt32(LOCKSCOPE_LCB_F_READ), waitNs: 700, lockAddress: lock + 64,
                                    cgroupID: 5, stackID: 1))
        aggregator.record(WaitEvent(flags: UInt32(LOCKSCOPE_LCB_F_SPIN), waitNs: 10, lockAddress: lock + 128, stackID: 3))
        let locks = Dictionary(aggregator.profile(AggregatorTests.inputs()).locks.map { ($0.address, $0) },
                               uniquingKeysWith: { a, _ in a })
        let a5 = String(repeating: "a", count: 63) + "5"
        let a6 = String(repeating: "a", count: 63) + "6"
        XCTAssertEqual(locks["0xffffffff83001000"]?.owners, [
            OwnerBlame(waiterContainer: a5, ownerContainer: a6, ownerPid: 4242, ownerComm: "containerd",
                       contentions: 2, totalWaitNs: 5_000),
        ])
        XCTAssertEqual(locks["0xffffffff83001040"]?.owners, [
            OwnerBlame(waiterContainer: a5, ownerContainer: "unknown", ownerPid: 0, ownerComm: "unknown",
                       contentions: 1, totalWaitNs: 700),
        ])
        XCTAssertNil(locks["0xffffffff83001080"]?.owners, "spinlocks have no owner to read")
    }

    /// The aggregator's precomputed hand-off classes agree with `Topology.handoff` for every pair of CPUs.
    func testHandoffTableMatchesTheTopology() throws {
        for name in ["dual-socket-96", "chiplet-1s", "vm-2cpu"] {
            let topology = try host(name)
            let table = HandoffTable(topology)
            // And CPUs the topology does not know, inside and past the table's range.
            let ids = topology.cpus.map(\.id) + [topology.cpus.count + 5, topology.cpus.count + 9, 2_000]
            for from in ids {
                for to in ids {
                    XCTAssertEqual(Handoff.allCases[table.position(from: UInt32(from), to: UInt32(to))],
                                   topology.handoff(from: from, to: to), "\(name): \(from) → \(to)")
                }
            }
        }
    }
}
