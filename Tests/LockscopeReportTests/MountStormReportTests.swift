import Foundation
import LockscopeCore
import XCTest

@testable import LockscopeReport

/// `report --by victim`, the container starts of `report --mounts` and the terminal timeline, on the
/// hand-written containerd storm (Tests/LockscopeExportTests/Fixtures/containerd-storm.json): three
/// containers in two pods mounted by their shims, a docker container by cgroup, three victims, 12 s.
final class MountStormReportTests: XCTestCase {
    static func fixture() throws -> Profile {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../LockscopeExportTests/Fixtures/containerd-storm.json").standardized.path
        return try Profile.load(path: path)
    }

    private func render(_ profile: Profile, _ options: ReportOptions) -> String {
        ReportRenderer(profile: profile, options: options).render()
    }

    /// The lines of `text` from the one starting with `heading` up to the next blank line.
    private func section(_ text: String, from heading: String) -> String {
        let lines = text.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { $0.hasPrefix(heading) }) else { return "" }
        return lines[start...].prefix { !$0.isEmpty }.joined(separator: "\n") + "\n"
    }

    func testVictimsMostWaitFirstWithTheirLocksAndHolders() throws {
        let text = render(try Self.fixture(), ReportOptions(top: 2, by: [.victim], stacksPerLock: 0))
        XCTAssertEqual(section(text, from: "victims:"), """
            victims: 3 processes waited but issued no mount syscall, 3.15 s in all
              process        container                      waits   total     max
              systemd[1]     host                              48  2.31 s  412 ms
                locks: namespace_sem 2.31 s (99.9%), mount_lock 1.50 ms (0.1%)
                behind: containerd-shim[4100] in pod:5d0a7c3e9b1f 1.48 s,
                        containerd-shim[4230] in pod:8c2e4a6b0d1f 640 ms,
                        containerd[812] in host 150 ms
              kubelet[1190]  /system.slice/kubelet.service     21  840 ms  205 ms
                locks: namespace_sem 840 ms (100.0%)
                behind: containerd-shim[4100] in pod:5d0a7c3e9b1f 600 ms,
                        containerd-shim[4230] in pod:8c2e4a6b0d1f 240 ms
              ... 1 more process, 3.20 ms (--top 0 lists all)

            """)
        // Once for the profile, not under each lock; without --by victim, no section.
        XCTAssertEqual(text.components(separatedBy: "victims:").count, 2)
        XCTAssertFalse(render(try Self.fixture(), ReportOptions(top: 2)).contains("victims:"))
    }

    func testAVictimWithoutKnownHoldersAndMoreLocksThanListed() throws {
        var profile = try Self.fixture()
        profile.victims = [Victim(process: "probe[7]", container: "host", contentions: 4, totalWaitNs: 4_000, maxWaitNs: 2_000,
                                  byLock: (1...5).map { LockWaitShare(lock: "lock\($0)", contentions: 1, totalWaitNs: 800, maxWaitNs: 800) },
                                  holders: [])]
        let text = render(profile, ReportOptions(top: 0, by: [.victim], stacksPerLock: 0))
        XCTAssertEqual(section(text, from: "victims:"), """
            victims: 1 process waited but issued no mount syscall, 4.00 us in all
              process   container  waits    total      max
              probe[7]  host           4  4.00 us  2.00 us
                locks: lock1 800 ns (20.0%), lock2 800 ns (20.0%), lock3 800 ns (20.0%),
                       and 2 more
                behind: owner unknown (only mutex and rwsem-writer owners are recorded)

            """)
        profile.victims = []
        XCTAssertTrue(render(profile, ReportOptions(by: [.victim])).contains("victims: none (every process that waited issued mount syscalls)\n"))
        profile.victims = nil
        XCTAssertTrue(render(profile, ReportOptions(by: [.victim])).contains("victims: not recorded in this profile"))
    }

    /// The shim's own mounts are its pod, `pod:<sandbox id>`, shortened like container ids.
    func testMountsShowAttributionPodAndTheWorstStarts() throws {
        let text = render(try Self.fixture(), ReportOptions(top: 2, mounts: true, stacksPerLock: 0))
        XCTAssertEqual(section(text, from: "mount ops per container:"), """
            mount ops per container: 82.4 (5 containers)
              container         pod           attributed  ops  by syscall
              a1f3c5e7b9d0      5d0a7c3e9b1f  mount-path  140  open_tree 40,
                                                               mount_setattr 40,
                                                               move_mount 40, mount 4,
                                                               umount2 16
              b2e4d6f8a0c1      5d0a7c3e9b1f  mount-path  136  open_tree 40,
                                                               mount_setattr 40,
                                                               move_mount 40, mount 4,
                                                               umount2 12
              c3d5f7a9b1e2      8c2e4a6b0d1f  mount-path  126  open_tree 40,
                                                               mount_setattr 36,
                                                               move_mount 40, mount 4,
                                                               umount2 6
              pod:8c2e4a6b0d1f  8c2e4a6b0d1f  issuer        4  mount_setattr 4
              d4c6e8a0f2b3      -             cgroup        6  umount2 6

            """)
        // Sorted by lock wait, not by set-up or profile order; --top 2 leaves one out.
        XCTAssertEqual(section(text, from: "container starts:"), """
            container starts: 3, 3.31 s of lock wait in their mount syscalls; most first
              container     pod            setup  in mounts  lock wait  share  top lock
              b2e4d6f8a0c1  5d0a7c3e9b1f  2.60 s     2.10 s     1.46 s  56.2%  namespace_sem
              a1f3c5e7b9d0  5d0a7c3e9b1f  2.25 s     1.90 s     1.24 s  55.1%  namespace_sem
              ... 1 more container (--top 0 lists all)

            """)
        XCTAssertTrue(render(try Self.fixture(), ReportOptions(top: 0, mounts: true)).contains(
            "  c3d5f7a9b1e2  8c2e4a6b0d1f  5.40 s     1.30 s     610 ms  11.3%  namespace_sem\n"))
    }

    func testAStartWithoutSetUpAndAnOlderProfileWithoutAttribution() throws {
        var profile = try Self.fixture()
        profile.mounts?.byContainer[0].start?.setupNs = nil
        let text = render(profile, ReportOptions(top: 0, mounts: true))
        XCTAssertTrue(text.contains("  a1f3c5e7b9d0  5d0a7c3e9b1f       -     1.90 s     1.24 s      -  namespace_sem\n"), text)
        XCTAssertTrue(text.contains("  setup - : the root filesystem was not mounted during the recording\n"))

        // Without pods, attribution or starts the table is the runtime's, as before (and no `pod:` row,
        // which issuer attribution made).
        profile.mounts!.byContainer.removeAll { $0.id.hasPrefix("pod:") }
        for index in profile.mounts!.byContainer.indices {
            profile.mounts!.byContainer[index].pod = nil
            profile.mounts!.byContainer[index].attribution = nil
            profile.mounts!.byContainer[index].start = nil
        }
        let old = render(profile, ReportOptions(mounts: true))
        XCTAssertTrue(old.contains("  container     runtime     ops  by syscall\n"), old)
        XCTAssertTrue(old.contains("  d4c6e8a0f2b3  docker        6  umount2 6\n"), old)
        XCTAssertFalse(old.contains("container starts"))
    }

    func testTimelineChartOfTheFixture() throws {
        let text = render(try Self.fixture(), ReportOptions(top: 1, stacksPerLock: 0))
        XCTAssertEqual(section(text, from: "timeline"), """
            timeline over 12.0 s, 3 columns a second; each row scaled to its peak (right)
              containers started           ███   ███      ███               1.00/s
              mount ops              ▁▁▁▃▃▃▇▇▇███▆▆▆▃▃▃▂▂▂▁▁▁▁▁▁             120/s
              namespace_sem wait     ▁▁▁▂▂▂▅▅▅███▆▆▆▃▃▃▁▁▁▁▁▁▁▁▁          1.40 s/s
              mount_lock wait        ▁▁▁▂▂▂▆▆▆███▆▆▆▂▂▂▁▁▁▁▁▁            2.60 ms/s
              victim max wait           ▁▁▁▄▄▄███▆▆▆▃▃▃▁▁▁▁▁▁               412 ms
                                  0 s                           12.0 s

            """)
    }

    /// 100 seconds in 46 columns: 3 seconds a column (34 columns, the last of one second), rates
    /// averaged per second, the longest wait the maximum.
    func testALongTimelineIsDownsampledEvenlyAndSaysSo() throws {
        var profile = try Self.fixture()
        let bins = (0..<100).map { second in
            TimelineBin(startNs: UInt64(second) * 1_000_000_000, mountOps: UInt64(second), namespaceSemWaitNs: 1_000_000,
                        victimMaxWaitNs: UInt64(second % 3 == 0 ? 9_000_000 : 1_000_000))
        }
        let timeline = Timeline(binNs: 1_000_000_000, bins: bins)
        XCTAssertEqual(timeline.binsPerColumn(fitting: TimelineChart.columns), 3)
        let ops = timeline.values(of: .mountOps, binsPerColumn: 3)
        XCTAssertEqual(ops.count, 34)
        XCTAssertEqual(ops.prefix(2), [1, 4])
        XCTAssertEqual(ops.last, 99, "the last column holds one second")
        XCTAssertEqual(Set(timeline.values(of: .victimMaxWait, binsPerColumn: 3)), [9_000_000])
        XCTAssertEqual(Set(timeline.values(of: .namespaceSemWait, binsPerColumn: 3)), [1_000_000])

        profile.timeline = timeline
        let chart = section(render(profile, ReportOptions(top: 1, stacksPerLock: 0)), from: "timeline")
        let lines = chart.split(separator: "\n")
        XCTAssertEqual(lines[0], "timeline over 100 s, downsampled to 34 columns of 3.00 s (rates and waits")
        XCTAssertEqual(lines[1], "averaged per second, max wait the longest); each row scaled to its peak (right)")
        let mountOps = try XCTUnwrap(lines.first { $0.hasPrefix("  mount ops") })
        XCTAssertEqual(mountOps, "  mount ops           ▁▁▁▁▂▂▂▂▃▃▃▃▃▄▄▄▄▅▅▅▅▆▆▆▆▇▇▇▇█████      99.0/s")
        XCTAssertTrue(lines.contains("  namespace_sem wait  ██████████████████████████████████   1.00 ms/s"))
        for line in lines { XCTAssertLessThanOrEqual(line.count, 80, String(line)) }
    }

    func testNoChartForFewerThanTwoSeconds() throws {
        var profile = try Self.fixture()
        profile.timeline = Timeline(binNs: 1_000_000_000, bins: [TimelineBin(startNs: 0, mountOps: 4)])
        XCTAssertFalse(render(profile, ReportOptions()).contains("timeline"))
        profile.timeline = nil
        XCTAssertFalse(render(profile, ReportOptions()).contains("timeline"))
    }

    func testEverySectionFitsEightyColumnsAndEscapesNames() throws {
        var profile = try Self.fixture()
        profile.victims?[0].process = "evil\u{1b}]0;owned\u{07}[66]"
        profile.victims?[0].holders[0].process = "shim\u{202e}[1]"
        let text = render(profile, ReportOptions(top: 0, by: [.victim], mounts: true))
        XCTAssertFalse(text.contains("\u{1b}") || text.contains("\u{202e}") || text.contains("\u{07}"))
        XCTAssertTrue(text.contains("  evil\\x1b]0;owned\\x07[66]  host"), text)
        XCTAssertTrue(text.contains("behind: shim\\u{202e}[1] in pod:5d0a7c3e9b1f 1.48 s,"), text)
        // The fixture's shim holders and the shim's own mounts are `pod:<64 hex>`: shortened too.
        let lines = try Self.fixtureReportLines()
        XCTAssertEqual(lines.filter { $0.contains("pod:") }.count, 5)
        for line in lines { XCTAssertLessThanOrEqual(line.count, 80, String(line)) }
    }

    func testShortContainerKeepsThePodPrefix() {
        let id = "5d0a7c3e9b1f4a2c8e6d0b9a7f3c1e5d2b8a6f4c0e9d7b5a3c1f8e6d4b2a0c9e"
        XCTAssertEqual(ContainerName.short(id), "5d0a7c3e9b1f")
        XCTAssertEqual(ContainerName.short("pod:" + id), "pod:5d0a7c3e9b1f")
        // Anything else is shown whole: a shorter pod name, a cgroup path, a redacted id.
        XCTAssertEqual(ContainerName.short("pod:abc"), "pod:abc")
        XCTAssertEqual(ContainerName.short("/system.slice/kubelet.service"), "/system.slice/kubelet.service")
        XCTAssertEqual(ContainerName.short("pod:ctr-acfeefc276e0"), "pod:ctr-acfeefc276e0")
    }

    private static func fixtureReportLines() throws -> [Substring] {
        ReportRenderer(profile: try fixture(), options: ReportOptions(top: 0, by: [.victim], mounts: true)).render()
            .split(separator: "\n")
    }

    func testJSONCarriesVictimsWithByVictim() throws {
        let json = render(try Self.fixture(), ReportOptions(format: .json, by: [.victim], mounts: true))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let victims = try XCTUnwrap(object["victims"] as? [[String: Any]])
        XCTAssertEqual(victims.map { $0["process"] as? String }, ["systemd[1]", "kubelet[1190]", "healthcheck[5120]"])
        let mounts = try XCTUnwrap(object["mounts"] as? [String: Any])
        let first = try XCTUnwrap((mounts["by_container"] as? [[String: Any]])?.first)
        XCTAssertEqual((first["start"] as? [String: Any])?["lock_wait_ns"] as? Int, 1_240_000_000)
        let plain = render(try Self.fixture(), ReportOptions(format: .json))
        XCTAssertFalse(plain.contains("\"victims\""))
    }
}
