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
    }

    public static func render(_ comparison: Comparison) throws -> String {
        let settings = comparison.settings
        let document = Document(baseline: comparison.baseSource, current: comparison.currentSource,
                                grouping: settings.grouping, minContentions: settings.minContentions,
                                limits: Dictionary(uniqueKeysWithValues: settings.metrics.map { ($0.rawValue, settings.limit(for: $0)) }),
                                regressions: comparison.regressions.count, improvements: comparison.improvements.count,
                                subjects: comparison.subjects, notes: comparison.notes)
        return String(decoding: try Profile.makeEncoder().encode(document), as: UTF8.self) + "\n"
    }
}
