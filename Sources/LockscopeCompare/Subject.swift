import LockscopeCore

/// What one comparison row is about: a lock matched by name across profiles (addresses change every
/// boot), or that lock's waits within one container.
public struct Subject: Hashable, Codable, Sendable {
    public var lock: String
    /// The container id with `--by container`, else `nil`.
    public var container: String?

    public init(lock: String, container: String? = nil) {
        self.lock = lock
        self.container = container
    }

    /// `namespace_sem`, or `namespace_sem in 4f2a9c01b3d7` (long container ids shortened like docker's).
    public var label: String {
        guard let container else { return lock }
        return "\(lock) in \(Subject.shortContainerID(container))"
    }

    /// A hex container id shortened to its first 12 characters, as `docker ps` shows it; other ids
    /// (host, machine names, cgroup paths) unchanged.
    static func shortContainerID(_ id: String) -> String {
        id.count > 12 && id.allSatisfy(\.isHexDigit) ? String(id.prefix(12)) : id
    }

    /// Each subject's waits in `profile`. Locks that share a name (per-CPU locks named after their
    /// caller, for example) are one subject: see `WaitStats.merged`.
    static func stats(in profile: Profile, grouping: Grouping) -> [Subject: WaitStats] {
        var parts: [Subject: [WaitStats]] = [:]
        for lock in profile.locks {
            switch grouping {
            case .lock:
                parts[Subject(lock: lock.name), default: []].append(lock.stats)
            case .container:
                for slice in lock.byContainer {
                    parts[Subject(lock: lock.name, container: slice.key), default: []].append(slice.stats)
                }
            }
        }
        return parts.mapValues(WaitStats.merged)
    }
}

extension WaitStats {
    /// The waits of several locks as one: counts and totals add up, the extremes are the parts'
    /// extremes, and each percentile is read from the merged histogram (interpolated within its
    /// power-of-two bucket), kept between the parts' own values of that percentile, where the true
    /// merged percentile always lies. A single part is returned unchanged.
    static func merged(_ parts: [WaitStats]) -> WaitStats {
        guard parts.count > 1 else { return parts.first ?? .empty }
        var counts: [HistogramBucketRange: UInt64] = [:]
        for bucket in parts.flatMap(\.histogram) {
            let range = HistogramBucketRange(lowerNs: bucket.lowerNs, upperNs: bucket.upperNs)
            counts[range] = counts[range, default: 0].addingSaturated(bucket.count)
        }
        let histogram = counts.map { HistogramBucket(lowerNs: $0.key.lowerNs, upperNs: $0.key.upperNs, count: $0.value) }
            .sorted { $0.lowerNs < $1.lowerNs }
        func percentile(_ fraction: Double, _ recorded: KeyPath<WaitStats, UInt64>) -> UInt64 {
            let values = parts.filter { $0.contentions > 0 }.map { $0[keyPath: recorded] }
            guard let lowest = values.min(), let highest = values.max() else { return 0 }
            guard let estimate = histogram.percentile(fraction) else { return highest }
            return Swift.min(Swift.max(estimate, lowest), highest)
        }
        return WaitStats(contentions: parts.map(\.contentions).saturatedSum(),
                         totalWaitNs: parts.map(\.totalWaitNs).saturatedSum(),
                         minWaitNs: parts.filter { $0.contentions > 0 }.map(\.minWaitNs).min() ?? 0,
                         maxWaitNs: parts.map(\.maxWaitNs).max() ?? 0,
                         p50WaitNs: percentile(0.5, \.p50WaitNs), p90WaitNs: percentile(0.9, \.p90WaitNs),
                         p99WaitNs: percentile(0.99, \.p99WaitNs), p999WaitNs: percentile(0.999, \.p999WaitNs),
                         histogram: histogram)
    }
}

private struct HistogramBucketRange: Hashable {
    var lowerNs: UInt64
    var upperNs: UInt64
}

extension [HistogramBucket] {
    /// The wait below which `fraction` of the counted waits fall, interpolated linearly within the
    /// bucket that holds it; `nil` for an empty histogram. The buckets must be sorted.
    func percentile(_ fraction: Double) -> UInt64? {
        let total = map(\.count).saturatedSum()
        guard total > 0 else { return nil }
        // The tolerance keeps 0.99 × 100 (99.000000000000014 in binary) at rank 99.
        let rank = Swift.max(1, UInt64(saturating: (fraction * Double(total) - 1e-9).rounded(.up)))
        var below: UInt64 = 0
        for bucket in self {
            // Sums saturate: a crafted profile's counts need not add up in 64 bits.
            if below.addingSaturated(bucket.count) >= rank {
                let within = Double(rank - below) / Double(bucket.count)
                let width = bucket.upperNs - Swift.min(bucket.lowerNs, bucket.upperNs)
                return bucket.lowerNs.addingSaturated(UInt64(saturating: within * Double(width)))
            }
            below = below.addingSaturated(bucket.count)
        }
        return last?.upperNs
    }
}
