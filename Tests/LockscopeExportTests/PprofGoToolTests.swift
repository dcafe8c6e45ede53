import Foundation
import LockscopeCore
import LockscopeTestSupport
import Testing
@testable import LockscopeExport

/// The pprof export read by the real `go tool pprof` (Debian's golang-go): the sample types Go's block
/// and mutex profiles use, numeric CPU labels that `-tagfocus` ranges match (CPU 0 included), and pod
/// labels. Expected totals come from the profile itself, not from the exporter.
/// Skipped when go is missing, unless LOCKSCOPE_REQUIRE_TOOLS=1 (CI), where that fails.
@Suite(.enabled(if: ExternalTool.shouldRun("go"), "go is not installed (apt-get install golang-go)"))
struct PprofGoToolTests {
    /// Sums of each sample type's column in `go tool pprof -raw` output, by sample type name.
    struct RawTotals: Equatable {
        var contentions: Int64
        var delay: Int64
        var samples: Int
    }

    static func pprof(_ profile: Profile, grouping: StackGrouping = .lock, _ options: [String]) throws -> RawTotals {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-pprof-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("contention.pb.gz")
        try PprofExporter.render(profile, grouping: grouping).write(to: file)
        return try pprof(file: file.path, options)
    }

    /// `go tool pprof -raw` on a pprof file, its sample totals.
    static func pprof(file: String, _ options: [String]) throws -> RawTotals {
        let raw = try ExternalTool.check("go", ["tool", "pprof", "-raw"] + options + [file], install: "apt-get install golang-go")
        return try parseRaw(raw)
    }

    /// The fixture with a lock whose name starts with another's, as the kernel's `namespace_sem.wait_lock`
    /// (the rwsem's inner spinlock) does: a copy of mount_lock under that name and another address.
    static func withWaitLock() throws -> (profile: Profile, namespaceSem: LockProfile, waitLock: LockProfile) {
        var profile = try Fixtures.profile()
        let namespaceSem = try #require(profile.locks.first { $0.name == "namespace_sem" })
        var waitLock = try #require(profile.locks.first { $0.name == "mount_lock" })
        waitLock.name = "namespace_sem.wait_lock"
        waitLock.address = "0xffffffff9a2c5e48"
        profile.locks.append(waitLock)
        return (profile, namespaceSem, waitLock)
    }

    /// Reads the sample lines of `-raw` output: after `Samples:` a header of `type/unit` names, then one
    /// line of values per sample (`   3     400000: 1 2 3`) followed by its label lines, up to `Locations`.
    static func parseRaw(_ raw: String) throws -> RawTotals {
        let lines = raw.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try #require(lines.firstIndex(of: "Samples:"), "no Samples: in go tool pprof -raw output:\n\(raw)")
        let header = lines[start + 1].split(separator: " ").map { $0.replacingOccurrences(of: "[dflt]", with: "") }
        let contentionsColumn = try #require(header.firstIndex(of: "contentions/count"), "sample types \(header)")
        let delayColumn = try #require(header.firstIndex(of: "delay/nanoseconds"), "sample types \(header)")
        var totals = RawTotals(contentions: 0, delay: 0, samples: 0)
        for line in lines[(start + 2)...] {
            if line == "Locations" { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let values = line[..<colon].split(separator: " ").compactMap { Int64($0) }
            guard values.count == header.count, line[..<colon].split(separator: " ").count == values.count else { continue }
            totals.contentions += values[contentionsColumn]
            totals.delay += values[delayColumn]
            totals.samples += 1
        }
        return totals
    }

    /// Contentions and wait of the stacks' contexts on `cpu`: what `-tagfocus=cpu=N` must keep when
    /// grouped by lock (stackless waits are split by container then, and carry no CPU).
    static func contexts(_ profile: Profile, onCPU cpu: Int) -> (Int64, Int64) {
        let contexts = profile.locks.flatMap(\.stacks).flatMap(\.contexts).filter { $0.cpu == cpu }
        return (Int64(contexts.reduce(0) { $0 + $1.count }), Int64(contexts.reduce(0) { $0 + $1.totalWaitNs }))
    }

    @Test func sampleIndexDelayTotalsTheProfile() throws {
        let profile = try Fixtures.profile()
        let totals = try Self.pprof(profile, ["-sample_index=delay"])
        let expected = Fixtures.totals(profile)
        #expect(totals.contentions == Int64(expected.contentions))
        #expect(totals.delay == Int64(expected.waitNs))
        #expect(try Self.pprof(profile, ["-sample_index=contentions"]).contentions == Int64(expected.contentions))
    }

    /// pprof refuses an index the file does not have: the check above could not pass on a `wait` file.
    @Test func anUnknownSampleIndexIsRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-pprof-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("contention.pb.gz")
        try PprofExporter.render(try Fixtures.profile()).write(to: file)
        let go = try #require(ExternalTool.path(of: "go"), "go is not installed: apt-get install golang-go")
        let result = try ExternalTool.run(go, ["tool", "pprof", "-raw", "-sample_index=wait", file.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("delay"), "pprof names the sample types it has: \(result.stderr)")
    }

    @Test(arguments: [0, 1])
    func tagfocusOnANumericCPU(cpu: Int) throws {
        let profile = try Fixtures.profile()
        let (contentions, waitNs) = Self.contexts(profile, onCPU: cpu)
        #expect(waitNs > 0)
        let totals = try Self.pprof(profile, ["-sample_index=delay", "-tagfocus=cpu=\(cpu)"])
        #expect(totals.contentions == contentions)
        #expect(totals.delay == waitNs)
    }

    /// A range on the numeric label: CPUs 0 to 1 are every wait placed on a CPU.
    @Test func tagfocusOnACPURange() throws {
        let profile = try Fixtures.profile()
        let (c0, w0) = Self.contexts(profile, onCPU: 0), (c1, w1) = Self.contexts(profile, onCPU: 1)
        let totals = try Self.pprof(profile, ["-tagfocus=cpu=0:1"])
        #expect(totals.contentions == c0 + c1)
        #expect(totals.delay == w0 + w1)
    }

    /// Grouped by CPU, stackless waits are split by CPU too: socket 1 then has all of its `by_socket` wait.
    @Test func tagfocusOnASocket() throws {
        let profile = try Fixtures.profile()
        let expected = profile.locks.flatMap(\.bySocket).filter { $0.key == "1" }
        #expect(!expected.isEmpty)
        let totals = try Self.pprof(profile, grouping: StackGrouping([.cpu]), ["-tagfocus=socket=1"])
        #expect(totals.contentions == Int64(expected.reduce(0) { $0 + $1.stats.contentions }))
        #expect(totals.delay == Int64(expected.reduce(0) { $0 + $1.stats.totalWaitNs }))
    }

    /// Every pod's waits: the `by_container` totals of the containers in that pod. The fixture's two
    /// containers are put in two pods (sandbox ids), one of them with a Kubernetes pod UID already.
    @Test func tagfocusOnAPod() throws {
        var profile = try Fixtures.profile()
        let sandboxes = ["5d0a7c3e9b1f4a2c8e6d0b9a7f3c1e5d2b8a6f4c0e9d7b5a3c1f8e6d4b2a0c9e",
                         "8c2e4a6b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a0c1b3d5f7e9a2c4b6d8f0e1a"]
        let inPods = profile.containers.indices.filter { profile.containers[$0].runtime != "host" }
        #expect(inPods.count == 2)
        for (index, sandbox) in zip(inPods, sandboxes) { profile.containers[index].pod = sandbox }
        func expected(_ ids: Set<String>) -> (Int64, Int64) {
            let stats = profile.locks.flatMap(\.byContainer).filter { ids.contains($0.key) }.map(\.stats)
            return (Int64(stats.reduce(0) { $0 + $1.contentions }), Int64(stats.reduce(0) { $0 + $1.totalWaitNs }))
        }
        for sandbox in sandboxes {
            let (contentions, waitNs) = expected(Set(profile.containers.filter { $0.pod == sandbox }.map(\.id)))
            #expect(waitNs > 0)
            let totals = try Self.pprof(profile, ["-sample_index=delay", "-tagfocus=pod=^\(sandbox)$"])
            #expect(totals.contentions == contentions, "pod \(sandbox)")
            #expect(totals.delay == waitNs, "pod \(sandbox)")
        }
        let withUID = try #require(profile.containers.first { $0.podUid != nil })
        let uid = try Self.pprof(profile, ["-tagfocus=pod_uid=^\(withUID.podUid!)$"])
        #expect(uid.delay == expected([withUID.id]).1)
        let docker = Set(profile.containers.filter { $0.runtime == "docker" }.map(\.id))
        #expect(!docker.isEmpty)
        #expect(try Self.pprof(profile, ["-tagfocus=runtime=^docker$"]).delay == expected(docker).1)
    }

    /// The anchored lock focus docs/flamegraphs.md shows keeps exactly one lock, where the unanchored
    /// one also keeps `namespace_sem.wait_lock` (pprof's tag filters are unanchored regexps).
    @Test func tagfocusOnOneLock() throws {
        let (profile, namespaceSem, waitLock) = try Self.withWaitLock()
        let loose = try Self.pprof(profile, ["-sample_index=delay", "-tagfocus=lock=namespace_sem"])
        #expect(loose.delay == Int64(namespaceSem.stats.totalWaitNs + waitLock.stats.totalWaitNs))
        #expect(loose.contentions == Int64(namespaceSem.stats.contentions + waitLock.stats.contentions))
        let anchored = try Self.pprof(profile, ["-sample_index=delay", "-tagfocus=lock=^namespace_sem$"])
        #expect(anchored.delay == Int64(namespaceSem.stats.totalWaitNs))
        #expect(anchored.contentions == Int64(namespaceSem.stats.contentions))
        let inner = try Self.pprof(profile, ["-tagfocus=lock=^namespace_sem\\.wait_lock$"])
        #expect(inner.delay == Int64(waitLock.stats.totalWaitNs))
    }

    /// The file `lockscope export --format pprof -o` writes, read by pprof: the whole profile's totals,
    /// and the anchored lock focus.
    @Test func theExportCommandsFile() throws {
        let (profile, namespaceSem, _) = try Self.withWaitLock()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-pprof-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("storm.json").path
        let output = directory.appendingPathComponent("contention.pb.gz").path
        try profile.write(to: input)
        let run = try LockscopeRun.run(["export", input, "--format", "pprof", "-o", output])
        #expect(run.status == 0, "\(run.stderr)")
        let expected = Fixtures.totals(profile)
        let totals = try Self.pprof(file: output, ["-sample_index=delay"])
        #expect(totals.contentions == Int64(expected.contentions))
        #expect(totals.delay == Int64(expected.waitNs))
        let anchored = try Self.pprof(file: output, ["-sample_index=delay", "-tagfocus=lock=^namespace_sem$"])
        #expect(anchored.delay == Int64(namespaceSem.stats.totalWaitNs))
    }
}
