import Foundation
import LockscopeCore
import XCTest

@testable import LockscopeReport

/// `lockscope top`'s arithmetic and text: the last second from two samples, sorted by each key.
final class LiveViewTests: XCTestCase {
    private func lock(_ name: String, _ kind: LockKind, contentions: UInt64, wait: UInt64, max: UInt64,
                      buckets: [(UInt64, UInt64)]) -> LiveLock {
        LiveLock(name: name, kind: kind, contentions: contentions, totalWaitNs: wait, maxWaitNs: max,
                 histogram: buckets.map { HistogramBucket(lowerNs: $0.0, upperNs: $0.0 * 2, count: $0.1) })
    }

    private let before = LiveSample(
        elapsedNs: 1_000_000_000, waits: 100, mountSyscalls: 40, dropped: 1,
        locks: [LiveLock(name: "namespace_sem", kind: .rwsem, contentions: 10, totalWaitNs: 5_000_000, maxWaitNs: 2_000_000,
                         histogram: [HistogramBucket(lowerNs: 1_048_576, upperNs: 2_097_152, count: 10)]),
                LiveLock(name: "mount_lock", kind: .spinlock, contentions: 90, totalWaitNs: 90_000, maxWaitNs: 3_000,
                         histogram: [HistogramBucket(lowerNs: 512, upperNs: 1024, count: 90)])],
        containers: [LiveContainer(id: String(repeating: "ab", count: 32), pod: "pod1", contentions: 10, totalWaitNs: 5_000_000)],
        mountsBySyscall: ["mount": 30, "umount2": 10])

    /// A second later: namespace_sem waited 2 more times (no new maximum), mount_lock 400 times with
    /// a new longest wait, and a new lock appeared.
    private var after: LiveSample {
        var sample = before
        sample.elapsedNs = 2_000_000_000
        sample.waits = 510
        sample.mountSyscalls = 140
        sample.dropped = 3
        sample.locks = [
            lock("namespace_sem", .rwsem, contentions: 12, wait: 8_000_000, max: 2_000_000,
                 buckets: [(1_048_576, 11), (131_072, 1)].sorted { $0.0 < $1.0 }),
            lock("mount_lock", .spinlock, contentions: 490, wait: 490_000, max: 9_000, buckets: [(512, 489), (8192, 1)]),
            lock("rename_lock", .spinlock, contentions: 8, wait: 800, max: 100, buckets: [(64, 8)]),
        ]
        sample.containers = [LiveContainer(id: String(repeating: "ab", count: 32), pod: "pod1", contentions: 12, totalWaitNs: 8_000_000),
                             LiveContainer(id: "host", pod: nil, contentions: 400, totalWaitNs: 400_000)]
        sample.mountsBySyscall = ["mount": 100, "umount2": 40]
        return sample
    }

    func testTheWindowIsTheDifferenceBetweenSamples() {
        let window = LiveWindow(from: before, to: after)
        XCTAssertEqual(window.intervalNs, 1_000_000_000)
        XCTAssertEqual(window.waits, 410)
        XCTAssertEqual(window.mountSyscalls, 100)
        XCTAssertEqual(window.dropped, 2)
        XCTAssertEqual(window.droppedSoFar, 3)
        let rows = Dictionary(uniqueKeysWithValues: window.locks.map { ($0.name, $0) })
        XCTAssertEqual(rows["namespace_sem"]?.contentions, 2)
        XCTAssertEqual(rows["namespace_sem"]?.waitNs, 3_000_000)
        // No new maximum: the top of the highest bucket that grew, as a bound.
        XCTAssertEqual(rows["namespace_sem"]?.maxWaitNs, 2_000_000)
        XCTAssertEqual(rows["namespace_sem"]?.maxIsExact, false)
        XCTAssertEqual(rows["mount_lock"]?.contentions, 400)
        XCTAssertEqual(rows["mount_lock"]?.maxWaitNs, 9_000)
        XCTAssertEqual(rows["mount_lock"]?.maxIsExact, true)
        XCTAssertEqual(rows["rename_lock"]?.contentions, 8, "a lock new in this second counts from zero")
        XCTAssertEqual(window.containers?.map(\.id), [String(repeating: "ab", count: 32), "host"])
        XCTAssertEqual(window.containers?.map(\.waitNs), [3_000_000, 400_000])
        XCTAssertEqual(window.mountsBySyscall?.map(\.syscall), ["mount", "umount2"])
        XCTAssertEqual(window.mountsBySyscall?.map(\.count), [70, 30])
    }

    func testEachKeySortsItsColumn() {
        let window = LiveWindow(from: before, to: after)
        XCTAssertEqual(window.sortedLocks(by: .wait).map(\.name), ["namespace_sem", "mount_lock", "rename_lock"])
        XCTAssertEqual(window.sortedLocks(by: .contentions).map(\.name), ["mount_lock", "rename_lock", "namespace_sem"])
        XCTAssertEqual(window.sortedLocks(by: .max).map(\.name), ["namespace_sem", "mount_lock", "rename_lock"])
        XCTAssertEqual(LiveSort(key: "c"), .contentions)
        XCTAssertEqual(LiveSort(key: "m"), .max)
        XCTAssertEqual(LiveSort(key: "w"), .wait)
        XCTAssertNil(LiveSort(key: "x"))
    }

    func testTheView() {
        let window = LiveWindow(from: before, to: after)
        let byWait = LiveView(window: window, sort: .wait, hostname: "node-a", rows: 2, interactive: true).render()
        XCTAssertEqual(byWait, [
            "lockscope top: node-a, 2.00 s in, last 1.00 s, sorted by wait",
            "keys: w wait, c contentions, m max, q quit",
            "waits 410/s  mount syscalls 100/s  dropped 2.00/s (3 so far)",
            "",
            "wait/s*  contended/s        max  kind      lock",
            "3.00 ms       2.00/s  <=2.00 ms  rwsem     namespace_sem",
            " 400 us        400/s    9.00 us  spinlock  mount_lock",
            "... 1 more locks",
            "",
            " wait/s  contended/s  container     pod",
            "3.00 ms       2.00/s  abababababab  pod1",
            " 400 us        400/s  host          -",
            "",
            "mount syscalls/s: mount 70.0/s, umount2 30.0/s",
        ])
        let byContentions = LiveView(window: window, sort: .contentions, hostname: "node-a", rows: 1, interactive: false).render()
        XCTAssertEqual(byContentions[0], "lockscope top: node-a, 2.00 s in, last 1.00 s, sorted by contentions")
        XCTAssertEqual(byContentions[3], "wait/s  contended/s*      max  kind      lock")
        XCTAssertEqual(byContentions[4], "400 us         400/s  9.00 us  spinlock  mount_lock")
    }

    /// A profile built so far gives every lock, container and mount syscall.
    func testSampleOfAProfile() throws {
        let profile = try MountStormReportTests.fixture()
        let sample = LiveSample(profile: profile, elapsedNs: 12_000_000_000)
        XCTAssertEqual(sample.locks.map(\.name), profile.locks.map(\.name))
        XCTAssertEqual(sample.waits, profile.locks.map(\.stats.contentions).reduce(0, +))
        XCTAssertEqual(sample.mountSyscalls, profile.mounts?.totalOps)
        XCTAssertEqual(sample.containers?.count, profile.containers.count)
        let window = LiveWindow(from: nil, to: sample)
        XCTAssertEqual(window.locks.map(\.contentions), profile.locks.map(\.stats.contentions))
    }
}
