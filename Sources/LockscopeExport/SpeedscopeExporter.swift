import Foundation
import LockscopeCore

/// speedscope's file format (https://www.speedscope.app/file-format-schema.json).
///
/// The file holds two "sampled" profiles over the same shared frames: wait time (unit nanoseconds) and
/// contentions (unit none), each with one sample per distinct call path, root first, the grouping's
/// synthetic frames included as in the folded output. `weight` picks the profile speedscope opens on.
public enum SpeedscopeExporter {
    static let schema = "https://www.speedscope.app/file-format-schema.json"

    public static func render(_ profile: Profile, weight: ExportWeight = .wait, grouping: StackGrouping = .lock,
                              samples: SampleType = .wait) throws -> Data {
        let paths = try LockSamples(profile, grouping: grouping).mergedPaths()
        var frameIndex: [String: Int] = [:]
        var frames: [File.Frame] = []
        let stacks = paths.map { path in
            path.frames.map { name in
                if let index = frameIndex[name] { return index }
                frameIndex[name] = frames.count
                frames.append(File.Frame(name: name))
                return frames.count - 1
            }
        }
        func sampledProfile(_ name: String, unit: String, _ profileWeight: ExportWeight) -> File.SampledProfile {
            let weighted = zip(stacks, paths.map { $0.amount.value(profileWeight) }).filter { $0.1 > 0 }
            return File.SampledProfile(name: name, unit: unit, endValue: weighted.map(\.1).saturatedSum(),
                                       samples: weighted.map(\.0), weights: weighted.map(\.1))
        }
        let file = File(
            shared: File.Shared(frames: frames),
            profiles: [sampledProfile(samples.valueNames.time, unit: "nanoseconds", .wait),
                       sampledProfile(samples.valueNames.count, unit: "none", .count)],
            name: "lockscope \(profile.hostname) \(profile.startedAt)",
            activeProfileIndex: weight == .wait ? 0 : 1)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(file)
        data.append(0x0a)
        return data
    }

    private struct File: Encodable {
        struct Frame: Encodable { var name: String }
        struct Shared: Encodable { var frames: [Frame] }
        struct SampledProfile: Encodable {
            var type = "sampled"
            var name: String
            var unit: String
            var startValue: UInt64 = 0
            var endValue: UInt64
            var samples: [[Int]]
            var weights: [UInt64]
        }

        var schema = SpeedscopeExporter.schema
        var shared: Shared
        var profiles: [SampledProfile]
        var name: String
        var activeProfileIndex: Int
        /// `name@version`, as the file format's schema asks.
        var exporter = "lockscope@\(LockscopeVersion.current)"

        private enum CodingKeys: String, CodingKey {
            case schema = "$schema", shared, profiles, name, activeProfileIndex, exporter
        }
    }
}
