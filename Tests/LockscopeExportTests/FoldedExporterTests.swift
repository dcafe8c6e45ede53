import LockscopeCore
import Testing
@testable import LockscopeExport

@Suite struct FoldedExporterTests {
    static let groupings: [StackGrouping] = [
        .none, .lock, StackGrouping([.container]), StackGrouping([.cpu]), StackGrouping([.socket]),
        StackGrouping([.container, .lock]), StackGrouping([.socket, .cpu, .lock]),
    ]

    /// Parses folded output back, checking every line's shape: frames without `;` or line breaks, a space, an integer.
    static func parse(_ folded: String) -> [(frames: [String], weight: UInt64)] {
        folded.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
            let space = line.lastIndex(of: " ")!
            let frames = line[..<space].split(separator: ";", omittingEmptySubsequences: false).map(String.init)
            #expect(frames.allSatisfy { !$0.isEmpty && !$0.contains(where: \.isNewline) }, "bad frames in \(line)")
            return (frames, UInt64(line[line.index(after: space)...])!)
        }
    }

    @Test func goldenFiles() throws {
        let profile = try Fixtures.profile()
        try Fixtures.expectGolden(try FoldedExporter.render(profile), "mount-storm.folded")
        try Fixtures.expectGolden(try FoldedExporter.render(profile, weight: .count, grouping: .none), "mount-storm.count-none.folded")
        try Fixtures.expectGolden(try FoldedExporter.render(profile, grouping: StackGrouping([.container, .lock])),
                                  "mount-storm.container-lock.folded")
        try Fixtures.expectGolden(try FoldedExporter.render(profile, weight: .count, grouping: StackGrouping([.socket])),
                                  "mount-storm.count-socket.folded")
    }

    @Test(arguments: groupings)
    func parsedBackSumsToTheProfileTotals(grouping: StackGrouping) throws {
        let profile = try Fixtures.profile()
        let wait = Self.parse(try FoldedExporter.render(profile, weight: .wait, grouping: grouping))
        let count = Self.parse(try FoldedExporter.render(profile, weight: .count, grouping: grouping))
        #expect(wait.reduce(0) { $0 + $1.weight } == 1_090_000)
        #expect(count.reduce(0) { $0 + $1.weight } == 17)
        #expect(Fixtures.totals(profile) == (17, 1_090_000))
        #expect(Set(wait.map { $0.frames }).count == wait.count, "paths are merged into one line each")
    }

    @Test func eachLockSumsToItsOwnTotalsIncludingWaitsWithoutAStack() throws {
        let profile = try Fixtures.profile()
        for weight in ExportWeight.allCases {
            let lines = Self.parse(try FoldedExporter.render(profile, weight: weight, grouping: .lock))
            for lock in profile.locks {
                let sum = lines.filter { $0.frames[0] == "[lock] \(lock.name)" }.reduce(0) { $0 + $1.weight }
                #expect(sum == (weight == .wait ? lock.stats.totalWaitNs : lock.stats.contentions), "\(lock.name) \(weight)")
            }
        }
    }

    @Test func waitsWithoutAStackGoUnderTheirLockAndContainer() throws {
        let profile = try Fixtures.profile()
        let byLock = try FoldedExporter.render(profile).split(separator: "\n").filter { $0.contains("[no stack]") }
        #expect(byLock == ["[lock] namespace_sem;[no stack] 100000"])
        let byContainer = try FoldedExporter.render(profile, grouping: StackGrouping([.container, .lock]))
            .split(separator: "\n").filter { $0.contains("[no stack]") }
        #expect(byContainer == ["[container] 3f2a9c1b7d4e;[lock] namespace_sem;[no stack] 50000",
                                "[container] 9b1e44c0d2f3;[lock] namespace_sem;[no stack] 50000"])
        let byCPU = try FoldedExporter.render(profile, weight: .count, grouping: StackGrouping([.cpu]))
            .split(separator: "\n").filter { $0.contains("[no stack]") }
        #expect(byCPU == ["[cpu 0];[no stack] 1", "[cpu 1];[no stack] 1"])
    }

    /// A shim's pod, `pod:<sandbox id>`, is shortened like a container id and keeps its prefix.
    @Test func podContainersAreShortenedWithTheirPrefix() throws {
        let pod = "pod:5d0a7c3e9b1f4a2c8e6d0b9a7f3c1e5d2b8a6f4c0e9d7b5a3c1f8e6d4b2a0c9e"
        let stack = StackProfile(frames: ["f"], count: 3, totalWaitNs: 30, maxWaitNs: 10,
                                 contexts: [StackContext(cpu: 0, container: pod, count: 2, totalWaitNs: 20),
                                            StackContext(cpu: 1, container: "host", count: 1, totalWaitNs: 10)])
        let lock = LockProfile(name: "l", identity: .symbol, kind: .mutex, address: "0x1", stats: makeStats(3, 30), stacks: [stack])
        #expect(try FoldedExporter.render(makeProfile(locks: [lock]), grouping: StackGrouping([.container])) == """
        [container] host;f 10
        [container] pod:5d0a7c3e9b1f;f 20

        """)
    }

    @Test func frameNamesAreSanitized() throws {
        let stack = StackProfile(frames: ["spin;lock", "caller\nname", "  ", "tab\there"], count: 1, totalWaitNs: 10,
                                 maxWaitNs: 10, contexts: [])
        let lock = LockProfile(name: "odd;lock\r\n", identity: .caller, kind: .mutex, address: "0x1", stats: makeStats(1, 10),
                               stacks: [stack])
        #expect(try FoldedExporter.render(makeProfile(locks: [lock])) == "[lock] odd:lock;tab here;[unknown];caller name;spin:lock 10\n")
    }

    @Test func stacksWithoutFramesAndContextsThatDoNotFit() throws {
        let empty = StackProfile(frames: [], count: 2, totalWaitNs: 40, maxWaitNs: 30,
                                 contexts: [StackContext(cpu: 1, container: "host", count: 1, totalWaitNs: 25)])
        let overfull = StackProfile(frames: ["f"], count: 1, totalWaitNs: 10, maxWaitNs: 10,
                                    contexts: [StackContext(cpu: 0, container: "host", count: 2, totalWaitNs: 20)])
        let lock = LockProfile(name: "l", identity: .symbol, kind: .spinlock, address: "0x1", stats: makeStats(3, 50),
                               stacks: [empty, overfull])
        #expect(try FoldedExporter.render(makeProfile(locks: [lock]), grouping: StackGrouping([.container])) == """
        [container ?];[no stack] 15
        [container ?];f 10
        [container] host;[no stack] 25

        """)
    }

    @Test func socketsComeFromTheTopologyAndAreUnknownWithoutIt() throws {
        let profile = try Fixtures.profile()
        var withoutTopology = profile
        withoutTopology.topology = nil
        let lines = try FoldedExporter.render(withoutTopology, weight: .count, grouping: StackGrouping([.socket]))
        #expect(lines.split(separator: "\n").allSatisfy { $0.hasPrefix("[socket ?];") })
        #expect(throws: UserError("p.json has no CPU topology, so its waits cannot be grouped by socket; group by cpu instead")) {
            try StackGrouping([.lock, .socket]).validate(for: withoutTopology, source: "p.json")
        }
        try StackGrouping([.socket]).validate(for: profile, source: "p.json")
    }

    @Test func anEmptyProfileFoldsToNothing() throws {
        let idle = LockProfile(name: "idle", identity: .symbol, kind: .mutex, address: "0x1", stats: .empty)
        #expect(try FoldedExporter.render(makeProfile(locks: [idle])) == "")
        #expect(try FoldedExporter.render(makeProfile(locks: [])) == "")
    }

    @Test func groupingParsesFromTheCommandLine() {
        #expect(StackGrouping(parsing: "none") == StackGrouping.none)
        #expect(StackGrouping(parsing: "lock") == .lock)
        #expect(StackGrouping(parsing: "container,lock")?.dimensions == [.container, .lock])
        #expect(StackGrouping(parsing: "socket,cpu")?.description == "socket,cpu")
        for invalid in ["", "locks", "lock,lock", "none,lock", "lock,", "Lock"] {
            #expect(StackGrouping(parsing: invalid) == nil, "\(invalid)")
        }
    }
}
