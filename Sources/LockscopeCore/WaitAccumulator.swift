import Histogram

/// Accumulates waits (or syscall latencies) and produces `WaitStats`: exact count, total, min and max,
/// and percentiles from an HDR histogram (values kept to `precision` significant decimal digits) with
/// 64-bit counts, which nothing can overflow. A profile is built from these (every lock's breakdowns,
/// made from the aggregator's `CompactHistogram`s), and the mount accounting keeps one per
/// (container, syscall).
public struct WaitAccumulator: Sendable {
    public private(set) var count: UInt64 = 0
    public private(set) var totalNs: UInt64 = 0
    public private(set) var minNs: UInt64 = .max
    public private(set) var maxNs: UInt64 = 0
    private var histogram: Histogram<UInt64>

    /// Breakdowns (per CPU, container, process...) keep percentiles within 6.25%: a few hundred
    /// counts each, where 1% would take several thousand.
    public static let breakdownPrecision = SignificantDigits.one

    /// `precision` 3 keeps percentiles within 0.1%, 2 within 1% (a quarter of the memory), 1 within 6.25%.
    public init(precision: SignificantDigits = .three) {
        histogram = Histogram(numberOfSignificantValueDigits: precision)
    }

    /// Waits already counted elsewhere (`CompactHistogram`): `buckets` are (a value in the bucket, its
    /// count), lowest first. The histogram clamps percentiles to its own min and max, so those are
    /// recorded at the exact `minNs` and `maxNs` (in the same buckets).
    init(precision: SignificantDigits, count: UInt64, totalNs: UInt64, minNs: UInt64, maxNs: UInt64,
         buckets: [(value: UInt64, count: UInt64)]) {
        self.init(precision: precision)
        guard count > 0 else { return }
        self.count = count
        self.totalNs = totalNs
        self.minNs = minNs
        self.maxNs = maxNs
        histogram = Self.empty(covering: maxNs, precision: precision)
        for (index, bucket) in buckets.enumerated() {
            var value = Swift.max(bucket.value, minNs), count = bucket.count
            if index == buckets.count - 1 {
                value = maxNs
                if count > 1 { _ = histogram.record(Swift.max(bucket.value, minNs), count: count - 1) }
                count = 1
            }
            _ = histogram.record(value, count: count)
        }
    }

    public mutating func record(_ ns: UInt64) {
        count += 1
        totalNs &+= ns
        if ns < minNs { minNs = ns }
        if ns > maxNs { maxNs = ns }
        if ns > histogram.highestTrackableValue { grow(toCover: ns) }
        _ = histogram.record(ns)
    }

    /// Replaces the histogram with a copy that covers `ns`, to the end of its power-of-two bucket (the
    /// size the library's autoResize would reach). The library's own resize is generic code that is not
    /// inlinable, so never specialized for our count type: about 0.3 µs per count slot, 0.6 ms for a
    /// 1%-precision histogram of waits up to milliseconds. A new histogram plus the inlinable `add`
    /// costs about 14 µs.
    private mutating func grow(toCover ns: UInt64) {
        var grown = Self.empty(covering: ns, precision: histogram.numberOfSignificantValueDigits)
        grown.add(histogram)
        histogram = grown
    }

    private static func bucketEnd(_ ns: UInt64) -> UInt64 { Swift.max(UInt64.max >> ns.leadingZeroBitCount, 2) }

    /// An empty histogram with room for values up to `top`.
    private static func empty(covering top: UInt64, precision: SignificantDigits) -> Histogram<UInt64> {
        var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: bucketEnd(top),
                                          numberOfSignificantValueDigits: precision)
        histogram.autoResize = true
        return histogram
    }

    /// Adds another accumulator's waits (for rolling CPUs up into sockets, cgroups into containers...).
    /// Both must have the same precision (the histogram library traps otherwise).
    public mutating func merge(_ other: WaitAccumulator) {
        guard other.count > 0 else { return }
        count += other.count
        totalNs &+= other.totalNs
        minNs = Swift.min(minNs, other.minNs)
        maxNs = Swift.max(maxNs, other.maxNs)
        // The other histogram may have grown past this one's range; adding a value this one cannot
        // hold traps.
        if other.histogram.highestTrackableValue > histogram.highestTrackableValue {
            grow(toCover: other.histogram.highestTrackableValue)
        }
        histogram.add(other.histogram)
    }

    /// The value at `percentile` (0...100), never above the exact maximum.
    public func value(atPercentile percentile: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        return Swift.min(histogram.valueAtPercentile(percentile), maxNs)
    }

    public var stats: WaitStats {
        guard count > 0 else { return .empty }
        return WaitStats(contentions: count, totalWaitNs: totalNs, minWaitNs: minNs, maxWaitNs: maxNs,
                         p50WaitNs: value(atPercentile: 50), p90WaitNs: value(atPercentile: 90),
                         p99WaitNs: value(atPercentile: 99), p999WaitNs: value(atPercentile: 99.9),
                         histogram: powerOfTwoBuckets())
    }

    /// Buckets `[2^k, 2^(k+1))`, non-empty only; 0 ns waits go to `[0, 1)`.
    func powerOfTwoBuckets() -> [HistogramBucket] {
        var counts = [UInt64](repeating: 0, count: 65)
        func add(_ value: UInt64, _ count: UInt64) {
            counts[value == 0 ? 0 : 64 - value.leadingZeroBitCount] += count
        }
        for entry in histogram.recordedValues() { add(entry.value, entry.count) }
        return counts.indices.compactMap { index in
            guard counts[index] > 0 else { return nil }
            let lower: UInt64 = index == 0 ? 0 : 1 << (index - 1)
            let upper: UInt64 = index == 64 ? .max : (index == 0 ? 1 : 1 << index)
            return HistogramBucket(lowerNs: lower, upperNs: upper, count: counts[index])
        }
    }
}
