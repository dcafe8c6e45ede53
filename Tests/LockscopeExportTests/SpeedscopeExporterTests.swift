import Foundation
import LockscopeCore
import Testing
@testable import LockscopeExport

@Suite struct SpeedscopeExporterTests {
    @Test func goldenFile() throws {
        let data = try SpeedscopeExporter.render(try Fixtures.profile())
        try Fixtures.expectGolden(String(decoding: data, as: UTF8.self), "mount-storm.speedscope.json")
    }

    @Test(arguments: ExportWeight.allCases)
    func bothProfilesSumToTheTotalsOverSharedFrames(weight: ExportWeight) throws {
        let data = try SpeedscopeExporter.render(try Fixtures.profile(), weight: weight, grouping: StackGrouping([.container, .lock]))
        let file = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(file["$schema"] as? String == "https://www.speedscope.app/file-format-schema.json")
        #expect(file["activeProfileIndex"] as? Int == (weight == .wait ? 0 : 1))
        // The spec's `exporter`: name@version, the version `lockscope --version` prints.
        #expect(file["exporter"] as? String == "lockscope@\(LockscopeVersion.current)")
        #expect((file["exporter"] as? String)?.wholeMatch(of: /[a-z]+@[0-9]+\.[0-9]+\.[0-9]+/) != nil)
        let frames = try #require((file["shared"] as? [String: Any])?["frames"] as? [[String: Any]]).map { $0["name"] as! String }
        #expect(Set(frames).count == frames.count, "each frame is shared once")
        let profiles = try #require(file["profiles"] as? [[String: Any]])
        #expect(profiles.map { $0["name"] as? String } == ["wait", "contentions"])
        #expect(profiles.map { $0["unit"] as? String } == ["nanoseconds", "none"])
        for (profile, total) in zip(profiles, [1_090_000, 17]) {
            #expect(profile["type"] as? String == "sampled")
            let samples = try #require(profile["samples"] as? [[Int]])
            let weights = try #require(profile["weights"] as? [Int])
            #expect(samples.count == weights.count)
            #expect(weights.reduce(0, +) == total)
            #expect(profile["startValue"] as? Int == 0 && profile["endValue"] as? Int == total)
            #expect(samples.allSatisfy { $0.allSatisfy(frames.indices.contains) })
            // Root first: the container frame, then the lock, the kernel's lock function last.
            #expect(samples.allSatisfy { frames[$0[0]].hasPrefix("[container") && frames[$0[1]].hasPrefix("[lock] ") })
            #expect(samples.contains { frames[$0.last!] == "down_write" })
        }
    }
}
