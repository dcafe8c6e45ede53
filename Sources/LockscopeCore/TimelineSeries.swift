/// The series of a `Timeline` as the report and the SVG draw them: what each is called, what it
/// measures, and how seconds merge when several share one column of a chart.
public enum TimelineSeries: String, CaseIterable, Sendable {
    case containersStarted = "containers_started"
    case mountOps = "mount_ops"
    case namespaceSemWait = "namespace_sem_wait"
    case mountLockWait = "mount_lock_wait"
    case otherWait = "other_wait"
    case victimWait = "victim_wait"
    case victimMaxWait = "victim_max_wait"

    /// What a value of the series is.
    public enum Quantity: Sendable {
        /// Events in a bin: drawn per second.
        case count
        /// Nanoseconds waited in a bin: drawn as wait per second.
        case waitPerSecond
        /// The longest single wait in a bin, in nanoseconds.
        case longestWait
    }

    public var label: String {
        switch self {
        case .containersStarted: "containers started"
        case .mountOps: "mount ops"
        case .namespaceSemWait: "namespace_sem wait"
        case .mountLockWait: "mount_lock wait"
        case .otherWait: "other locks' wait"
        case .victimWait: "victim wait"
        case .victimMaxWait: "victim max wait"
        }
    }

    public var quantity: Quantity {
        switch self {
        case .containersStarted, .mountOps: .count
        case .namespaceSemWait, .mountLockWait, .otherWait, .victimWait: .waitPerSecond
        case .victimMaxWait: .longestWait
        }
    }

    /// The series' value in one bin.
    public func value(in bin: TimelineBin) -> UInt64 {
        switch self {
        case .containersStarted: bin.containersStarted
        case .mountOps: bin.mountOps
        case .namespaceSemWait: bin.namespaceSemWaitNs
        case .mountLockWait: bin.mountLockWaitNs
        case .otherWait: bin.otherWaitNs
        case .victimWait: bin.victimWaitNs
        case .victimMaxWait: bin.victimMaxWaitNs
        }
    }

    /// A value as charts label it: `12/s`, `1.20k/s`, `410 ms/s`, `412 ms`.
    public func format(_ value: Double) -> String {
        switch quantity {
        case .count: Units.rate(value)
        case .waitPerSecond: Units.duration(roundedFrom: value) + "/s"
        case .longestWait: Units.duration(roundedFrom: value)
        }
    }
}

extension Timeline {
    /// Seconds in a bin (at least one, whatever a crafted profile says).
    public var binSeconds: Double { Swift.max(1, Double(binNs)) / 1e9 }

    /// How many bins go into one column so that `bins.count` bins fit `columns` columns: evenly, every
    /// column but maybe the last holding the same number.
    public func binsPerColumn(fitting columns: Int) -> Int {
        guard columns > 0, bins.count > columns else { return 1 }
        return (bins.count + columns - 1) / columns
    }

    /// `series` with `binsPerColumn` bins merged into each value: counts and waits as their mean per
    /// second over the merged bins (a partial last column is a mean over the bins it has), the longest
    /// wait as the longest of them.
    public func values(of series: TimelineSeries, binsPerColumn: Int = 1) -> [Double] {
        let step = Swift.max(1, binsPerColumn)
        return stride(from: 0, to: bins.count, by: step).map { start in
            let merged = bins[start..<Swift.min(start + step, bins.count)].map { Double(series.value(in: $0)) }
            switch series.quantity {
            case .longestWait: return merged.max() ?? 0
            case .count, .waitPerSecond: return merged.reduce(0, +) / (Double(merged.count) * binSeconds)
            }
        }
    }
}
