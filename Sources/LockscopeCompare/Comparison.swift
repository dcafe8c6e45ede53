import Foundation
import LockscopeCore

/// The outcome of judging one metric, or one row.
public enum Verdict: String, Codable, Sendable {
    case regressed, improved, unchanged
    case notEnoughData = "not_enough_data"

    /// How reports write it: `regressed`, `not enough data`.
    public var label: String { self == .notEnoughData ? "not enough data" : rawValue }
}

/// Which profiles a subject was contended in.
public enum Presence: String, Codable, Sendable {
    case both
    /// New contention: absent from the baseline.
    case onlyInCurrent = "only_in_current"
    case onlyInBaseline = "only_in_baseline"
    /// Named with `--locks` but contended in neither profile.
    case neither
}

/// One metric of one subject, baseline against current.
public struct MetricComparison: Codable, Sendable, Equatable {
    public var metric: Metric
    /// Values in the metric's unit (ns, ns/s or contentions/s).
    public var base: Double
    public var current: Double
    public var delta: Double
    /// The change in percent of the baseline; `nil` when the baseline value is 0.
    public var changePercent: Double?
    public var limit: MetricLimit
    public var verdict: Verdict

    /// snake_case in JSON, spelled out: converting every key of a million subjects took a sixth of a diff's time.
    private enum CodingKeys: String, CodingKey {
        case metric, base, current, delta, changePercent = "change_percent", limit, verdict
    }

    /// Judges `current` against `base` under `limit`, or records `notEnoughData` when `judged` is false.
    init(metric: Metric, base: Double, current: Double, limit: MetricLimit, judged: Bool) {
        self.metric = metric
        self.base = base
        self.current = current
        self.limit = limit
        delta = current - base
        changePercent = base == 0 ? nil : (current - base) / base * 100
        guard judged else {
            verdict = .notEnoughData
            return
        }
        // From a baseline of 0, any growth exceeds the relative limit.
        let exceedsRelative = changePercent.map { abs($0) > limit.maxChangePercent } ?? (delta != 0)
        if exceedsRelative && abs(delta) > limit.minDelta {
            verdict = delta > 0 ? .regressed : .improved
        } else {
            verdict = .unchanged
        }
    }
}

/// One subject (a lock, or a lock in a container), every selected metric judged.
public struct SubjectComparison: Codable, Sendable, Equatable {
    public var subject: Subject
    public var presence: Presence
    public var baseContentions: UInt64
    public var currentContentions: UInt64
    public var metrics: [MetricComparison]
    /// Regressed if any metric regressed, else improved if any improved, else unchanged if any metric
    /// was judged, else not enough data.
    public var verdict: Verdict

    private enum CodingKeys: String, CodingKey {
        case subject, presence, baseContentions = "base_contentions", currentContentions = "current_contentions", metrics, verdict
    }
}

/// Two profiles compared subject by subject under `ComparisonSettings`.
///
/// Noise guards: a subject with fewer than `minContentions` contentions in both profiles is not
/// judged. Distribution metrics (p50, p99, p999, max) are judged only when each profile has either
/// no contention on the subject or at least `requiredContentions(for:)` (a percentile of a handful of
/// waits says nothing); volume metrics (total, rate) need `minContentions` in one profile. A subject absent from
/// a profile counts as zero there, so new contention is a regression on every metric whose growth
/// from zero exceeds its absolute floor.
///
/// With `--by container`, a subject is a lock within a container, matched by container id: only
/// containers recorded in both profiles are compared (the others are counted in a note), and
/// profiles with no container in common are refused.
public struct Comparison: Sendable {
    public var baseSource: String
    public var currentSource: String
    public var settings: ComparisonSettings
    /// Heaviest first (largest total wait per second in either profile), then by name.
    public var subjects: [SubjectComparison]
    /// Caveats about the inputs: lost events, different kernels, containers not compared.
    public var notes: [String]
    /// The victims of either profile by process name, most wait first (empty when neither lists any).
    public var victims: [VictimComparison]
    /// The container starts' lock wait, when both profiles recorded starts.
    public var containerStarts: StartComparison?

    /// Compares `current` with `base`; the sources name the files in reports and errors.
    public init(base: Profile, current: Profile, baseSource: String, currentSource: String,
                settings: ComparisonSettings) throws {
        try base.requireDuration(source: baseSource)
        try current.requireDuration(source: currentSource)
        self.baseSource = baseSource
        self.currentSource = currentSource
        self.settings = settings
        let labels = LockLabels([base, current])
        let baseStats = Subject.stats(in: base, grouping: settings.grouping, labels: labels)
        let currentStats = Subject.stats(in: current, grouping: settings.grouping, labels: labels)
        let baseSpin = Subject.spin(in: base, grouping: settings.grouping, labels: labels)
        let currentSpin = Subject.spin(in: current, grouping: settings.grouping, labels: labels)
        let (keys, unmatchedContainers) = try Comparison.subjectsToCompare(
            base: Set(baseStats.keys), current: Set(currentStats.keys), baseSource: baseSource,
            currentSource: currentSource, settings: settings)
        let weighted = keys.map { subject in
            let weight = Swift.max(Metric.total.value(of: baseStats[subject] ?? .empty, durationNs: base.durationNs),
                                   Metric.total.value(of: currentStats[subject] ?? .empty, durationNs: current.durationNs))
            let row = Comparison.compare(subject, base: baseStats[subject], current: currentStats[subject],
                                         baseSpin: baseSpin[subject] ?? SampledSpin(),
                                         currentSpin: currentSpin[subject] ?? SampledSpin(),
                                         baseDurationNs: base.durationNs, currentDurationNs: current.durationNs,
                                         settings: settings)
            return (row: row, weight: weight)
        }
        subjects = weighted.sorted { ($1.weight, $0.row.subject.label) < ($0.weight, $1.row.subject.label) }.map(\.row)
        notes = Comparison.notes(base: base, current: current, baseSource: baseSource, currentSource: currentSource)
        victims = VictimComparison.match(base: base.victims ?? [], current: current.victims ?? [])
        containerStarts = StartComparison(base: base, current: current)
        if unmatchedContainers > 0 {
            notes.append("\(unmatchedContainers) container\(unmatchedContainers == 1 ? "" : "s") recorded in only one of the profiles \(unmatchedContainers == 1 ? "is" : "are") not compared: containers are matched by id")
        }
    }

    /// The subjects of either profile, less those in a container recorded in only one profile
    /// (counted), restricted to `lockNames` (which are all listed, contended or not).
    private static func subjectsToCompare(base: Set<Subject>, current: Set<Subject>, baseSource: String,
                                          currentSource: String,
                                          settings: ComparisonSettings) throws -> (Set<Subject>, unmatchedContainers: Int) {
        var keys = base.union(current)
        var unmatchedContainers = 0
        if settings.grouping == .container {
            let baseContainers = Set(base.compactMap(\.container))
            let currentContainers = Set(current.compactMap(\.container))
            let shared = baseContainers.intersection(currentContainers)
            if shared.isEmpty && !baseContainers.isEmpty && !currentContainers.isEmpty {
                throw UserError("--by container: \(baseSource) and \(currentSource) have no container id in common (containers are matched by id, and ids change when containers are recreated); compare --by lock instead")
            }
            keys = keys.filter { $0.container.map(shared.contains) ?? true }
            unmatchedContainers = baseContainers.union(currentContainers).count - shared.count
        }
        if let names = settings.lockNames {
            keys = keys.filter { key in names.contains { LockLabels.label(key.lock, isNamed: $0) } }
            for name in names where !keys.contains(where: { LockLabels.label($0.lock, isNamed: name) }) {
                keys.insert(Subject(lock: name))
            }
        }
        return (keys, unmatchedContainers)
    }

    /// Every regressed metric, subject by subject.
    public var regressions: [(subject: SubjectComparison, metric: MetricComparison)] {
        findings(.regressed)
    }

    /// Every improved metric, subject by subject.
    public var improvements: [(subject: SubjectComparison, metric: MetricComparison)] {
        findings(.improved)
    }

    public var passed: Bool { !subjects.contains { $0.verdict == .regressed } }

    private func findings(_ verdict: Verdict) -> [(subject: SubjectComparison, metric: MetricComparison)] {
        subjects.flatMap { subject in subject.metrics.filter { $0.verdict == verdict }.map { (subject, $0) } }
    }

    private static func compare(_ subject: Subject, base: WaitStats?, current: WaitStats?, baseSpin: SampledSpin,
                                currentSpin: SampledSpin, baseDurationNs: UInt64, currentDurationNs: UInt64,
                                settings: ComparisonSettings) -> SubjectComparison {
        let baseStats = base ?? .empty
        let currentStats = current ?? .empty
        let minimum = settings.minContentions
        let enoughVolume = baseStats.contentions >= minimum || currentStats.contentions >= minimum
        // Spin is judged on its samples: a change beyond the limits counts only when the two-sample Poisson
        // test tells it from sampling error (5%, two-sided); otherwise the samples cannot tell.
        let anySamples = baseSpin.samples > 0 || currentSpin.samples > 0
        let period = Double(Swift.max(baseSpin.periodNs, currentSpin.periodNs))
        let spinDiffers = PoissonRateTest.differs(
            base: baseSpin.samples, baseExposure: Double(baseDurationNs) / Double(baseSpin.periodNs > 0 ? Double(baseSpin.periodNs) : period),
            current: currentSpin.samples,
            currentExposure: Double(currentDurationNs) / Double(currentSpin.periodNs > 0 ? Double(currentSpin.periodNs) : period))
        let metrics = settings.metrics.map { metric in
            let required = settings.requiredContentions(for: metric)
            let enoughShape = [baseStats, currentStats].allSatisfy { $0.contentions == 0 || $0.contentions >= required }
            var comparison = MetricComparison(
                metric: metric, base: metric.value(of: baseStats, spinNs: baseSpin.ns, durationNs: baseDurationNs),
                current: metric.value(of: currentStats, spinNs: currentSpin.ns, durationNs: currentDurationNs),
                limit: settings.limit(for: metric),
                judged: metric == .spin ? anySamples : enoughVolume && (!metric.describesDistribution || enoughShape))
            if metric == .spin, comparison.verdict == .regressed || comparison.verdict == .improved, !spinDiffers {
                comparison.verdict = .notEnoughData
            }
            return comparison
        }
        let presence: Presence = switch (base != nil, current != nil) {
        case (true, true): .both
        case (false, true): .onlyInCurrent
        case (true, false): .onlyInBaseline
        case (false, false): .neither
        }
        let verdicts = metrics.map(\.verdict)
        let verdict: Verdict = [.regressed, .improved, .unchanged].first(where: verdicts.contains) ?? .notEnoughData
        return SubjectComparison(subject: subject, presence: presence, baseContentions: baseStats.contentions,
                                 currentContentions: currentStats.contentions, metrics: metrics, verdict: verdict)
    }

    private static func notes(base: Profile, current: Profile, baseSource: String, currentSource: String) -> [String] {
        var notes = [(base, baseSource), (current, currentSource)].compactMap { profile, source in
            profile.lossNote(source: source)
        }
        if base.kernel != current.kernel {
            notes.append("the profiles come from different kernels (\(base.kernel) and \(current.kernel)): locks named caller+0xoff may not match between them")
        }
        return notes
    }
}

extension Profile {
    /// Rates and totals per second need a recording that lasted.
    func requireDuration(source: String) throws {
        guard durationNs > 0 else {
            throw UserError("\(source) has a recording duration of 0 ns, so totals and rates per second cannot be computed; record it again")
        }
    }

    /// A caveat when more than 1% of the events were lost: counts, totals and rates then read low.
    func lossNote(source: String) -> String? {
        guard dropRatio > 0.01 else { return nil }
        return "\(source) lost \(String(format: "%.1f%%", dropRatio * 100)) of its events: its contention counts, totals and rates read low"
    }
}
