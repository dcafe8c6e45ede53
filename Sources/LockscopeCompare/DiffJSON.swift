import Foundation
import LockscopeCore

/// `lockscope diff --format json`: the comparison as a `lockscope.diff/1` document, snake_case keys,
/// values in ns, ns per second and contentions per second (docs/ci.md).
public enum DiffJSON {
    public static let schema = "lockscope.diff/1"

    private struct Document: Encodable {
        var schema = DiffJSON.schema
        var baseline: String
        var current: String
        var grouping: Grouping
        var minContentions: UInt64
        var limits: [String: MetricLimit]
        var regressions: Int
        var improvements: Int
        var subjects: [SubjectComparison]
        var notes: [String]
        var victims: [VictimComparison]
        var containerStarts: StartComparison?

        private enum CodingKeys: String, CodingKey {
            case schema, baseline, current, grouping, minContentions = "min_contentions", limits, regressions, improvements,
                 subjects, notes, victims, containerStarts = "container_starts"
        }
    }

    /// Keys sorted; the types spell their keys in snake_case themselves.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// The document on one line (`jq .` indents it), subjects encoded one at a time: a million of them
    /// pretty-printed in one piece took 11 GB.
    public static func render(_ comparison: Comparison) throws -> String {
        let settings = comparison.settings
        let shell = Document(baseline: comparison.baseSource, current: comparison.currentSource,
                             grouping: settings.grouping, minContentions: settings.minContentions,
                             limits: Dictionary(uniqueKeysWithValues: settings.metrics.map { ($0.rawValue, settings.limit(for: $0)) }),
                             regressions: comparison.regressions.count, improvements: comparison.improvements.count,
                             subjects: [], notes: comparison.notes, victims: comparison.victims,
                             containerStarts: comparison.containerStarts)
        var json = Data()
        try Profile.encode(shell, with: comparison.subjects, inPlaceOf: "subjects", encoder: encoder) {
            json.append($0)
        }
        json.append(0x0a)
        return String(decoding: json, as: UTF8.self)
    }
}
