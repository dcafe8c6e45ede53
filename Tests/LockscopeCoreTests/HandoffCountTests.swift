import XCTest

@testable import LockscopeCore

/// What docs/where.md says of hand-offs: each contended acquisition is classified by where the previous
/// one at the same address ran, so the first at each address is not, and a lock's hand-offs add up to
/// its contentions less one per address.
final class HandoffCountTests: XCTestCase {
    func testTheFirstWaitAtEachAddressHasNoHandoff() throws {
        let topology = Topology(cpus: [.init(id: 0, core: 0, socket: 0, die: 0, node: 0, llc: 0, smtSiblings: []),
                                       .init(id: 1, core: 1, socket: 1, die: 1, node: 1, llc: 1, smtSiblings: [])])
        var aggregator = Aggregator(topology: topology)
        for index in 0..<10 {
            aggregator.record(.wait(WaitEvent(flags: AggregatorTests.rwsemWrite, endNs: UInt64(1_000 * (index + 1)), waitNs: 100,
                                              lockAddress: AggregatorTests.sem, pid: 7, tid: 7, stackID: 2,
                                              cpu: UInt32(index % 2))))
        }
        let locks = aggregator.takeProfile(AggregatorTests.inputs()).locks
        let lock = try XCTUnwrap(locks.first)
        XCTAssertEqual(locks.count, 1)
        XCTAssertEqual(lock.instances, 1)
        XCTAssertEqual(lock.stats.contentions, 10)
        XCTAssertEqual(lock.handoffs.reduce(0) { $0 + $1.stats.contentions }, lock.stats.contentions - UInt64(lock.instances))
        XCTAssertEqual(lock.handoffs.reduce(0) { $0 + $1.stats.totalWaitNs }, 900)
        XCTAssertEqual(lock.handoffs.map(\.handoff), [.otherSocket])
        // Without a topology there are no hand-offs at all.
        var plain = Aggregator(topology: nil)
        plain.record(.wait(WaitEvent(flags: AggregatorTests.rwsemWrite, waitNs: 100, lockAddress: AggregatorTests.sem, stackID: 2)))
        plain.record(.wait(WaitEvent(flags: AggregatorTests.rwsemWrite, waitNs: 100, lockAddress: AggregatorTests.sem, stackID: 2, cpu: 1)))
        XCTAssertEqual(plain.takeProfile(AggregatorTests.inputs()).locks.first?.handoffs, [])
    }

    /// Every profile fixture under Tests/*/Fixtures keeps the same rule: with a topology, a lock's hand-offs
    /// add up to its contentions less its instances; without one there are none. (Files that are not
    /// profiles, such as budgets and the broken inputs of the reader tests, are passed over.)
    func testEveryProfileFixtureKeepsTheRule() throws {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let files = FileManager.default.enumerator(at: tests, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL }
            .filter { $0.pathExtension == "json" && $0.deletingLastPathComponent().lastPathComponent == "Fixtures" } ?? []
        var checked: [String] = []
        for file in files {
            guard let profile = try? Profile.load(path: file.path) else { continue }
            checked.append(file.lastPathComponent)
            for lock in profile.locks {
                let handoffs = lock.handoffs.reduce(0) { $0 + $1.stats.contentions }
                let expected = profile.topology == nil ? 0 : lock.stats.contentions - UInt64(lock.instances)
                XCTAssertEqual(handoffs, expected, "\(file.lastPathComponent): \(lock.name)'s hand-offs")
                XCTAssertTrue(profile.topology != nil || lock.handoffs.isEmpty, "\(file.lastPathComponent): \(lock.name)")
            }
        }
        XCTAssertTrue(Set(checked).isSuperset(of: ["mount-storm.json", "containerd-storm.json", "base.json", "regressed.json"]),
                      "\(checked)")
    }
}
