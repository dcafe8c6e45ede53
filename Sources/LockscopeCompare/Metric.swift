import LockscopeCore

/// A statistic of a lock's waits that `check`, `diff` and budgets judge.
///
/// Latency metrics are in nanoseconds; `total` is wait time per second of recording (ns/s) and `rate`
/// contentions per second, so recordings of different lengths compare fairly. `spin` is the sampled CPU
/// time spent spinning on the lock per second of recording (`record --spin-hz`, `LockProfile.spin`):
/// judged only when asked for (`--metric spin`, or `spin_ns_per_sec` in a budget).
public enum Metric: String, CaseIterable, Codable, Sendable, Comparable {
    case p50, p99, p999, max, total, rate, spin

    /// What `diff` and `check` judge unless told: every metric of the waits.
    public static let defaultMetrics = allCases.filter { $0 != .spin }

    /// What a metric's values measure, which decides their unit.
    public enum Quantity: Sendable {
        /// One wait, in nanoseconds.
        case latency
        /// Nanoseconds of waiting per second of recording.
        case waitPerSecond
        /// Contentions per second of recording.
        case perSecond
    }

    public var quantity: Quantity {
        switch self {
        case .p50, .p99, .p999, .max: .latency
        case .total, .spin: .waitPerSecond
        case .rate: .perSecond
        }
    }

    /// The name in reports: "p99 wait", "contention rate".
    public var title: String {
        switch self {
        case .p50: "p50 wait"
        case .p99: "p99 wait"
        case .p999: "p99.9 wait"
        case .max: "max wait"
        case .total: "total wait"
        case .rate: "contention rate"
        case .spin: "spin time"
        }
    }

    /// The key of this metric in a budget file, with its unit.
    public var budgetKey: String {
        switch self {
        case .p50: "p50_wait_ns"
        case .p99: "p99_wait_ns"
        case .p999: "p999_wait_ns"
        case .max: "max_wait_ns"
        case .total: "total_wait_ns_per_sec"
        case .rate: "contentions_per_sec"
        case .spin: "spin_ns_per_sec"
        }
    }

    /// Whether the metric describes the shape of the wait distribution (percentiles and max), which
    /// only means something with enough waits behind it; `total` and `rate` are volumes.
    public var describesDistribution: Bool { quantity == .latency }

    /// Whether the value is a percentile estimate rather than an exact count or extreme.
    public var isPercentile: Bool { self == .p50 || self == .p99 || self == .p999 }

    /// The waits a percentile needs to be more than the largest of them: 1 / (1 − q), so 100 for
    /// p99 and 1000 for p99.9; 0 for the other metrics.
    public var minimumSamples: UInt64 {
        switch self {
        case .p99: 100
        case .p999: 1000
        case .p50, .max, .total, .rate, .spin: 0
        }
    }

    /// The contentions a lock needs for this metric to be judged: `minContentions`, and at least
    /// `minimumSamples`.
    public func requiredContentions(minContentions: UInt64) -> UInt64 { Swift.max(minContentions, minimumSamples) }

    /// The metric's value for `stats` (and `spinNs` of sampled spinning) from a recording that lasted
    /// `durationNs` (not zero).
    public func value(of stats: WaitStats, spinNs: UInt64 = 0, durationNs: UInt64) -> Double {
        let seconds = Double(durationNs) / 1e9
        switch self {
        case .p50: return Double(stats.p50WaitNs)
        case .p99: return Double(stats.p99WaitNs)
        case .p999: return Double(stats.p999WaitNs)
        case .max: return Double(stats.maxWaitNs)
        case .total: return Double(stats.totalWaitNs) / seconds
        case .rate: return Double(stats.contentions) / seconds
        case .spin: return Double(spinNs) / seconds
        }
    }

    /// Parses a metric name as given on the command line.
    public static func parse(_ text: String, option: String) throws -> Metric {
        guard let metric = Metric(rawValue: text.lowercased()) else {
            throw UserError("\(option): unknown metric \"\(text)\"; valid metrics: \(Metric.names)")
        }
        return metric
    }

    /// "p50, p99, p999, max, total, rate".
    public static let names = allCases.map(\.rawValue).joined(separator: ", ")

    public static func < (lhs: Metric, rhs: Metric) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
