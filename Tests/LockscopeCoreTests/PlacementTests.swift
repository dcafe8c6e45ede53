import Foundation
import XCTest
@testable import LockscopeCore

/// The placements a sweep offers, computed from real-shaped topologies (Fixtures/sysfs).
final class PlacementTests: XCTestCase {
    private func topology(_ host: String) throws -> Topology {
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return try Topology.read(sysfsRoot: fixtures.appendingPathComponent("sysfs").appendingPathComponent(host).path)
    }

    func testDualSocketSMTOffersASocketAndOneThreadPerCore() throws {
        // 2 sockets × 24 cores × 2 threads (siblings N and N+48), one LLC per socket: llc0 is socket0.
        let placements = Placement.offered(by: try topology("dual-socket-96"))
        XCTAssertEqual(placements.map(\.name), ["all", "socket0", "one-thread-per-core"])
        XCTAssertEqual(placements[0].cpus, Array(0...95))
        XCTAssertEqual(placements[1].cpus, Array(0...23) + Array(48...71))
        XCTAssertEqual(placements[2].cpus, Array(0...47))
    }

    func testChipletOffersOneThreadPerCoreAndOneLLC() throws {
        // 1 socket × 32 cores × 2 threads (siblings N and N+32), four L3 domains of 8 cores.
        let placements = Placement.offered(by: try topology("chiplet-1s"))
        XCTAssertEqual(placements.map(\.name), ["all", "one-thread-per-core", "llc0"])
        XCTAssertEqual(placements[1].cpus, Array(0...31))
        XCTAssertEqual(placements[2].cpus, Array(0...7) + Array(32...39))
    }

    func testATwoCPUVMOffersAllOnly() throws {
        XCTAssertEqual(Placement.offered(by: try topology("vm-2cpu")), [Placement(name: "all", cpus: [0, 1])])
    }

    func testCPUListsAreParsedAndCheckedAgainstTheOnlineCPUs() throws {
        XCTAssertEqual(try Placement.cpuList("0-2,5", online: Array(0...7)), Placement(name: "cpus:0-2,5", cpus: [0, 1, 2, 5]))
        XCTAssertThrowsError(try Placement.cpuList("9", online: [0, 1])) { error in
            XCTAssertEqual("\(error)", "CPU 9 in '9' is not online: online are 0,1")
        }
        XCTAssertThrowsError(try Placement.cpuList("a-b", online: [0, 1]))
    }

    func testSpreadIsTheMedianAndRangeOfTheRuns() {
        XCTAssertEqual(Spread([3, 1, 2]), Spread(median: 2, min: 1, max: 3))
        XCTAssertEqual(Spread([4, 1, 2, 3]).median, 2.5)
        let placement = Placement(name: "cpus:0", cpus: [0])
        let inside = SweepRun(values: [.setupP99: 2], cpusSeen: [0], failures: 0)
        let outside = SweepRun(values: [.setupP99: 4], cpusSeen: [0, 1], failures: 0)
        XCTAssertTrue(SweepPoint(placement: placement, parallel: 2, runs: [inside]).confined)
        XCTAssertFalse(SweepPoint(placement: placement, parallel: 2, runs: [inside, outside]).confined)
        XCTAssertEqual(SweepPoint(placement: placement, parallel: 2, runs: [inside, outside]).spread(.setupP99),
                       Spread(median: 3, min: 2, max: 4))
    }
}
