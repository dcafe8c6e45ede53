import Foundation
import LockscopeCore

/// How much a metric may grow before it counts as a regression. A change counts (as a regression, or
/// as an improvement when it shrinks) only when it exceeds both limits.
public struct MetricLimit: Codable, Sendable, Equatable {
    /// The relative limit, in percent of the baseline value.
    public var maxChangePercent: Double
    /// The absolute floor, in the metric's unit (ns, ns/s or contentions/s).
    public var minDelta: Double

    private enum CodingKeys: String, CodingKey {
        case maxChangePercent = "max_change_percent", minDelta = "min_delta"
    }

    public init(maxChangePercent: Double, minDelta: Double) {
        self.maxChangePercent = maxChangePercent
        self.minDelta = minDelta
    }

    /// The documented defaults (docs/ci.md).
    public static func defaultLimit(for metric: Metric) -> MetricLimit {
        switch metric {
        case .p50, .p99: MetricLimit(maxChangePercent: 20, minDelta: 10_000)
        case .p999: MetricLimit(maxChangePercent: 30, minDelta: 10_000)
        // One wait decides the max: a looser limit and a higher floor keep it from flapping.
        case .max: MetricLimit(maxChangePercent: 50, minDelta: 100_000)
        case .total, .spin: MetricLimit(maxChangePercent: 20, minDelta: 1_000_000)
        case .rate: MetricLimit(maxChangePercent: 20, minDelta: 10)
        }
    }

    /// `+20% and 10.0 us` for `metric`.
    public func describe(for metric: Metric) -> String {
        "\(HumanUnits.formatPercent(maxChangePercent)) and \(HumanUnits.format(minDelta, metric.quantity))"
    }
}

/// What a comparison row is: a lock, or a lock within one container.
public enum Grouping: String, CaseIterable, Codable, Sendable {
    case lock, container
}

/// Everything that decides a comparison's verdicts, from the command line or defaults.
public struct ComparisonSettings: Sendable, Equatable {
    /// The default for `--min-contentions`.
    public static let defaultMinContentions: UInt64 = 50

    /// The metrics judged, in report order.
    public var metrics: [Metric]
    public var limits: [Metric: MetricLimit]
    /// Below this many contentions a lock (or lock × container) has too few waits to judge.
    public var minContentions: UInt64
    public var grouping: Grouping
    /// Only these locks are judged; `nil` judges every lock.
    public var lockNames: [String]?

    public init(metrics: [Metric] = Metric.defaultMetrics,
                limits: [Metric: MetricLimit] = Dictionary(uniqueKeysWithValues: Metric.allCases.map { ($0, .defaultLimit(for: $0)) }),
                minContentions: UInt64 = defaultMinContentions, grouping: Grouping = .lock, lockNames: [String]? = nil) {
        self.metrics = metrics
        self.limits = limits
        self.minContentions = minContentions
        self.grouping = grouping
        self.lockNames = lockNames
    }

    public func limit(for metric: Metric) -> MetricLimit { limits[metric] ?? .defaultLimit(for: metric) }

    /// The contentions a profile needs on a lock for `metric` to be judged.
    public func requiredContentions(for metric: Metric) -> UInt64 {
        metric.requiredContentions(minContentions: minContentions)
    }

    /// Settings from the command-line option values, each checked with a one-line error naming the option.
    ///
    /// - Parameters:
    ///   - metrics: `--metric` values, each a metric or a comma-separated list; empty means all.
    ///   - maxRegressions: `--max-regression METRIC=PCT` values.
    ///   - minDeltas: `--min-delta METRIC=VALUE` values (VALUE in human units, see `HumanUnits.parseValue`).
    ///   - minContentions: `--min-contentions`, if given.
    ///   - grouping: `--by`, if given.
    ///   - locks: `--locks` values, each a name or a comma-separated list; empty means every lock.
    public static func parse(metrics: [String] = [], maxRegressions: [String] = [], minDeltas: [String] = [],
                             minContentions: Int? = nil, grouping: String? = nil,
                             locks: [String] = []) throws -> ComparisonSettings {
        var settings = ComparisonSettings()
        let chosen = try splitList(metrics).map { try Metric.parse($0, option: "--metric") }
        if !chosen.isEmpty { settings.metrics = Metric.allCases.filter(chosen.contains) }
        for assignment in maxRegressions {
            let (metric, text) = try splitAssignment(assignment, option: "--max-regression", valueName: "PCT")
            guard let percent = HumanUnits.parsePercent(text) else {
                throw UserError("--max-regression \(assignment): \"\(text)\" is not a percentage; write it like \(metric.rawValue)=20 or \(metric.rawValue)=20%")
            }
            settings.limits[metric, default: .defaultLimit(for: metric)].maxChangePercent = percent
        }
        for assignment in minDeltas {
            let (metric, text) = try splitAssignment(assignment, option: "--min-delta", valueName: "VALUE")
            guard let delta = HumanUnits.parseValue(text, for: metric) else {
                throw UserError("--min-delta \(assignment): \"\(text)\" is not a valid value for \(metric.rawValue); write \(HumanUnits.valueSyntax(for: metric))")
            }
            settings.limits[metric, default: .defaultLimit(for: metric)].minDelta = delta
        }
        if let minContentions {
            guard minContentions >= 1 else {
                throw UserError("--min-contentions \(minContentions): must be at least 1")
            }
            settings.minContentions = UInt64(minContentions)
        }
        if let grouping {
            guard let parsed = Grouping(rawValue: grouping) else {
                throw UserError("--by \(grouping): unknown grouping; valid: \(Grouping.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            settings.grouping = parsed
        }
        let names = splitList(locks)
        if !names.isEmpty { settings.lockNames = names }
        return settings
    }

    /// `["a,b", "c"]` → `["a", "b", "c"]`, without empty items.
    private static func splitList(_ values: [String]) -> [String] {
        values.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    private static func splitAssignment(_ assignment: String, option: String, valueName: String) throws -> (Metric, String) {
        let parts = assignment.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else {
            throw UserError("\(option) \(assignment): expected METRIC=\(valueName), for example p99=\(valueName == "PCT" ? "20" : "50us")")
        }
        return (try Metric.parse(parts[0], option: "\(option) \(assignment)"), parts[1])
    }
}
