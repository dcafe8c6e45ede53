import Foundation
import LockscopeCore
import XCTest

@testable import LockscopeReport

/// `report --by thread` (perf lock contention -t) and `report --instances` (-l), from exact fixtures.
final class ThreadsInstancesReportTests: XCTestCase {
    private func stats(_ count: UInt64, total: UInt64, max: UInt64) -> WaitStats {
        WaitStats(contentions: count, totalWaitNs: total, minWaitNs: 100, maxWaitNs: max, p50WaitNs: total / count,
                  p90WaitNs: max, p99WaitNs: max, p999WaitNs: max, histogram: [])
    }

    private func profile(threads: [ThreadStats]?, byAddress: [InstanceStats]?) -> Profile {
        var inode = LockProfile(name: "ilookup5+0x3a", identity: .caller, kind: .spinlock, address: "0xffff888100002000",
                                instances: 3, stats: stats(6, total: 1_000, max: 300))
        inode.byAddress = byAddress
        return Profile(hostname: "node-1", kernel: "6.18.44", startedAt: "2026-11-26T10:00:00Z", durationNs: 1_000_000_000,
                       events: 6, drops: Drops(), recording: Recording(), topology: nil, containers: [], mounts: nil,
                       locks: [inode], threads: threads)
    }

    private let threads = [
        ThreadStats(tid: 102, pid: 100, comm: "containerd", contentions: 1, totalWaitNs: 9_000, maxWaitNs: 9_000),
        ThreadStats(tid: 101, pid: 100, comm: "containerd", contentions: 2, totalWaitNs: 5_700, maxWaitNs: 5_000),
        ThreadStats(tid: 201, pid: 200, comm: "runc", contentions: 2, totalWaitNs: 400, maxWaitNs: 300),
        ThreadStats(tid: nil, pid: nil, comm: ThreadStats.otherThreads, contentions: 4, totalWaitNs: 200, maxWaitNs: 90),
    ]

    private let instances = [
        InstanceStats(address: "0xffff888100002000", contentions: 3, totalWaitNs: 600, maxWaitNs: 300),
        InstanceStats(address: "0xffffffff83001000", symbol: "namespace_sem", contentions: 2, totalWaitNs: 300, maxWaitNs: 200),
        InstanceStats(address: InstanceStats.otherAddresses, addresses: 5, contentions: 1, totalWaitNs: 100, maxWaitNs: 100),
    ]

    func testThreadTable() {
        let renderer = ReportRenderer(profile: profile(threads: threads, byAddress: nil), options: ReportOptions(top: 3, by: [.thread]))
        XCTAssertEqual(renderer.threadsSection(), """
            lock wait by thread:
              contended    total      max      avg  tid  pid  comm
                      1  9.00 us  9.00 us  9.00 us  102  100  containerd
                      2  5.70 us  5.00 us  2.85 us  101  100  containerd
                      2   400 ns   300 ns   200 ns  201  200  runc
              ... 1 more threads, 200 ns

            """)
        XCTAssertTrue(renderer.render().hasSuffix(renderer.threadsSection()))
        let all = ReportRenderer(profile: profile(threads: threads, byAddress: nil), options: ReportOptions(top: 0, by: [.thread]))
        XCTAssertTrue(all.threadsSection().contains("      4   200 ns    90 ns    50 ns    -    -  [other threads]\n"),
                      all.threadsSection())
    }

    func testInstanceTable() {
        let renderer = ReportRenderer(profile: profile(threads: nil, byAddress: instances), options: ReportOptions(instances: true))
        let lock = renderer.profile.locks[0]
        XCTAssertEqual(renderer.instancesSection(lock), """
            instances of ilookup5+0x3a: 3 addresses
              contended   total     max     avg  address                symbol
                      3  600 ns  300 ns  200 ns  0xffff888100002000     -
                      2  300 ns  200 ns  150 ns  0xffffffff83001000     namespace_sem
                      1  100 ns  100 ns  100 ns  [other addresses] (5)  -

            """)
        XCTAssertTrue(renderer.render().contains(renderer.instancesSection(lock)))
        XCTAssertFalse(ReportRenderer(profile: renderer.profile, options: ReportOptions()).render().contains("instances of"))
    }

    /// A profile written before the tables were kept says so instead of showing nothing.
    func testProfilesWithoutTheTablesSaySo() {
        let renderer = ReportRenderer(profile: profile(threads: nil, byAddress: nil), options: ReportOptions(by: [.thread], instances: true))
        XCTAssertEqual(renderer.threadsSection(),
                       "lock wait by thread: no per-thread table in this profile (recorded before lockscope kept one)\n")
        XCTAssertEqual(renderer.instancesSection(renderer.profile.locks[0]), """
            instances of ilookup5+0x3a:
              no per-address table in this profile (recorded before lockscope kept one): 3 addresses

            """)
    }

    func testJSONCarriesThreadsAndInstances() throws {
        let renderer = ReportRenderer(profile: profile(threads: threads, byAddress: instances),
                                      options: ReportOptions(format: .json, by: [.thread], instances: true))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(renderer.render().utf8)) as? [String: Any])
        let rows = try XCTUnwrap(json["threads"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["tid"] as? Int }, [102, 101, 201, nil])
        XCTAssertEqual(rows.map { $0["total_wait_ns"] as? Int }, [9_000, 5_700, 400, 200])
        let locks = try XCTUnwrap(json["locks"] as? [[String: Any]])
        let addresses = try XCTUnwrap(locks[0]["instances"] as? [[String: Any]])
        XCTAssertEqual(addresses.map { $0["address"] as? String }, ["0xffff888100002000", "0xffffffff83001000", "[other addresses]"])
        XCTAssertEqual(addresses.map { $0["symbol"] as? String }, [nil, "namespace_sem", nil])
        // Without the options, neither.
        let plain = ReportRenderer(profile: renderer.profile, options: ReportOptions(format: .json)).render()
        XCTAssertFalse(plain.contains("\"threads\""))
        XCTAssertFalse(plain.contains("\"instances\""))
    }
}
