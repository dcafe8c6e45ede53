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
        return "\(lock) in \(ContainerName.short(container))"
    }


    /// Each subject's waits in `profile`, labelled by `labels`. Locks that share a label (per-CPU
    /// locks named after their caller, for example) are one subject: see `WaitStats.merged`.
    static func stats(in profile: Profile, grouping: Grouping, labels: LockLabels) -> [Subject: WaitStats] {
        var parts: [Subject: [WaitStats]] = [:]
        for lock in profile.locks {
            let label = labels.label(lock)
            switch grouping {
            case .lock:
                parts[Subject(lock: label), default: []].append(lock.stats)
            case .container:
                for slice in lock.byContainer {
                    parts[Subject(lock: label, container: slice.key), default: []].append(slice.stats)
                }
            }
        }
        // A lock only spun on is a subject too (in each container it spun in).
        for lock in profile.locks {
            guard let spin = lock.spin else { continue }
            let label = labels.label(lock)
            switch grouping {
            case .lock:
                parts[Subject(lock: label), default: []].append(.empty)
            case .container:
                for slice in spin.byContainer { parts[Subject(lock: label, container: slice.key), default: []].append(.empty) }
            }
        }
        return parts.mapValues(WaitStats.merged)
    }

    /// Each subject's sampled spinning in `profile`: samples, and CPU time (samples x period).
    static func spin(in profile: Profile, grouping: Grouping, labels: LockLabels) -> [Subject: SampledSpin] {
        var spins: [Subject: SampledSpin] = [:]
        for lock in profile.locks {
            guard let spin = lock.spin else { continue }
            let label = labels.label(lock)
            switch grouping {
            case .lock:
                spins[Subject(lock: label), default: SampledSpin()].add(samples: spin.time.samples, periodNs: spin.periodNs)
            case .container:
                for slice in spin.byContainer {
                    spins[Subject(lock: label, container: slice.key), default: SampledSpin()]
                        .add(samples: slice.samples, periodNs: spin.periodNs)
                }
            }
        }
        return spins
    }
}

/// A subject's sampled spinning: the `spin` metric's input.
struct SampledSpin {
    var samples: UInt64 = 0
    var ns: UInt64 = 0
    /// The sampling period (one per profile); 0 when no spin was added.
    var periodNs: UInt64 = 0

    mutating func add(samples: UInt64, periodNs: UInt64) {
        self.periodNs = periodNs
        let (product, overflow) = samples.multipliedReportingOverflow(by: periodNs)
        self.samples = self.samples.addingSaturated(samples)
        ns = ns.addingSaturated(overflow ? .max : product)
    }
}

/// Lock labels that are the same in every profile compared, whatever else each one recorded: a lock's
/// `matchName`, with its kind added (`name (mutex)`) when locks of several kinds carry that name in any
/// of the profiles. (A profile's own names add the kind only when both kinds are in that profile, so
/// matching by them made one lock new in one profile and gone in the other.)
struct LockLabels {
    private let qualified: Set<String>

    init(_ profiles: [Profile]) {
        var kinds: [String: Set<LockKind>] = [:]
        for lock in profiles.lazy.flatMap(\.locks) { kinds[lock.matchName, default: []].insert(lock.kind) }
        qualified = Set(kinds.filter { $0.value.count > 1 }.keys)
    }

    func label(_ lock: LockProfile) -> String {
        qualified.contains(lock.matchName) ? "\(lock.matchName) (\(lock.kind.rawValue))" : lock.matchName
    }

    /// Whether `label` is what the user named: the label itself, or its name without the kind.
    static func label(_ label: String, isNamed name: String) -> Bool {
        guard label != name else { return true }
        guard label.hasPrefix(name + " ("), label.hasSuffix(")") else { return false }
        return LockKind(rawValue: String(label.dropFirst(name.count + 2).dropLast())) != nil
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
