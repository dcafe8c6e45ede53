import Foundation
import Synchronization

/// What the recorder's thread publishes and the server's threads read: the metrics, the last finished
/// window's pprof body, and whether the poll loop is alive.
public final class AgentState: Sendable {
    /// Longer than this since the poll loop last went round: `/healthz` answers 503.
    public static let stallLimitNs: UInt64 = 5_000_000_000

    public let metrics: AgentMetrics
    private let published = Mutex(Published())

    struct Published {
        var pprof: Data?
        var lastPollNs: UInt64?
        var failure: String?
    }

    public init(metrics: AgentMetrics) { self.metrics = metrics }

    /// The poll loop went round at `nowNs` (CLOCK_MONOTONIC).
    public func polled(atNs nowNs: UInt64 = AgentState.nowNs()) { published.withLock { $0.lastPollNs = nowNs } }

    /// Recording cannot go on (attaching failed): `/healthz` says why.
    public func failed(_ reason: String) { published.withLock { $0.failure = reason } }

    public func publish(pprof: Data) { published.withLock { $0.pprof = pprof } }

    public var pprof: Data? { published.withLock { $0.pprof } }

    /// `/healthz`'s answer: nil when healthy, else the reason.
    public func unhealthy(atNs nowNs: UInt64 = AgentState.nowNs()) -> String? {
        let (lastPoll, failure) = published.withLock { ($0.lastPollNs, $0.failure) }
        if let failure { return failure }
        guard let lastPoll else { return "not recording yet: the BPF programs are being attached" }
        let since = nowNs - min(nowNs, lastPoll)
        if since > Self.stallLimitNs { return "the poll loop has not run for \(since / 1_000_000) ms" }
        return nil
    }

    /// CLOCK_MONOTONIC, as the recorder's clock.
    public static func nowNs() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}
