import Synchronization
import Foundation
import LockscopeCore
import Prometheus

/// The agent's Prometheus metrics: a swift-prometheus registry that each window's `WindowMetrics` is
/// added to. Counters are cumulative over the agent's life (a window adds to them, nothing resets
/// them). Thread-safe: the recorder's thread adds, the server's threads render.
public final class AgentMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let windowEnd: Gauge
    private let lastRuns = Mutex<[String: (runTimeNs: UInt64, runs: UInt64)]>([:])
    /// Each container's counters, to unregister when it is let go (`WindowMetrics.expiredContainers`).
    private let containerCounters = Mutex<[WindowMetrics.ContainerKey: [Counter]]>([:])

    /// The metrics every agent has from the start (the drops by each reason, the overflow of each
    /// table, the build), so a scraper sees them before the first window ends.
    public init(version: String) {
        registry.makeGauge(descriptor: Self.describe("lockscope_build_info", "The lockscope build that serves these metrics (always 1)."),
                           labels: [("version", version)]).set(Double(1))
        windowEnd = registry.makeGauge(descriptor: Self.describe(
            "lockscope_window_end_timestamp_seconds", "When the last finished window ended (Unix time): the window these metrics last grew by."))
        for key in Drops.CodingKeys.allCases { _ = dropped(key.profileKey) }
        for table in [MetricsMapper.locksTable, MetricsMapper.containersTable] { _ = overflow(table) }
    }

    static func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private func counter(_ name: String, _ help: String, _ labels: [(String, String)]) -> Counter {
        registry.makeCounter(descriptor: Self.describe(name, help), labels: labels)
    }

    private func dropped(_ reason: String) -> Counter {
        counter("lockscope_events_dropped_total",
                "Data lost on the way, by the profile's drop reason (ringbuf_full, task_map_full... see docs/profile-format.md).",
                [("reason", reason)])
    }

    private func overflow(_ table: String) -> Counter {
        counter("lockscope_cardinality_overflow_total",
                "Label values summed under \"other\" because the table was full (--max-locks, --max-containers), counted once per window each.",
                [("table", table)])
    }

    /// Adds one window.
    public func add(_ window: WindowMetrics, endedAt end: Date) {
        for (key, histogram) in window.lockWaits {
            let labels = [("lock", key.lock), ("kind", key.kind)]
            let waits = registry.makeValueHistogram(
                descriptor: Self.describe("lockscope_lock_wait_seconds",
                                          "Contended lock waits, by lock and kind: power-of-two buckets from 1.024us to 17.2s; _sum is the exact total wait."),
                labels: labels, buckets: WaitBuckets.boundsSeconds)
            for observation in histogram.observations() {
                for _ in 0..<observation.count { waits.record(observation.seconds) }
            }
            counter("lockscope_lock_contentions_total", "Contended acquisitions, by lock and kind.", labels)
                .increment(by: Int64(clamping: histogram.count))
        }
        for (syscall, count) in window.mountSyscalls {
            counter("lockscope_mount_syscalls_total", "Mount-family syscalls, by syscall.", [("syscall", syscall)])
                .increment(by: Int64(clamping: count))
        }
        func containerCounter(_ key: WindowMetrics.ContainerKey, _ counter: Counter) -> Counter {
            containerCounters.withLock { counters in
                if !(counters[key]?.contains { $0 === counter } ?? false) { counters[key, default: []].append(counter) }
            }
            return counter
        }
        for (key, count) in window.containerMountSyscalls {
            containerCounter(key.container, counter("lockscope_container_mount_syscalls_total",
                    "Mount-family syscalls, by the container (and pod) they were for and syscall.",
                    [("container", key.container.container), ("pod", key.container.pod), ("syscall", key.syscall)]))
                .increment(by: Int64(clamping: count))
        }
        for (key, ns) in window.containerLockWaitNs {
            containerCounter(key.container, counter("lockscope_container_lock_wait_seconds_total", "Lock wait, by the waiting container (and pod) and lock.",
                    [("container", key.container.container), ("pod", key.container.pod), ("lock", key.lock)]))
                .increment(by: Double(ns) / 1e9)
        }
        for (reason, count) in window.dropped where count > 0 { dropped(reason).increment(by: Int64(clamping: count)) }
        for (table, count) in window.overflow where count > 0 { overflow(table).increment(by: Int64(clamping: count)) }
        // Containers let go: their series leave /metrics (a scraper sees them end, as a finished pod's do).
        let expired = containerCounters.withLock { counters in window.expiredContainers.flatMap { counters.removeValue(forKey: $0) ?? [] } }
        for counter in expired { registry.unregisterCounter(counter) }
        windowEnd.set(Double(end.timeIntervalSince1970))
    }

    /// The agent's own BPF programs' cost so far (the kernel's cumulative counts): the counters grow by
    /// what was added since the last reading.
    public func addProgramRuns(_ runs: [(program: String, runTimeNs: UInt64, runs: UInt64)]) {
        let increments = lastRuns.withLock { last in
            runs.map { run in
                let before = last[run.program] ?? (0, 0)
                last[run.program] = (run.runTimeNs, run.runs)
                return (run.program, run.runTimeNs - min(run.runTimeNs, before.runTimeNs), run.runs - min(run.runs, before.runs))
            }
        }
        for (program, runTimeNs, count) in increments {
            counter("lockscope_bpf_program_run_seconds_total",
                    "Time the kernel spent in lockscope's own BPF programs (needs BPF statistics on: the agent's default).",
                    [("program", program)]).increment(by: Double(runTimeNs) / 1e9)
            counter("lockscope_bpf_program_runs_total", "Runs of lockscope's own BPF programs.", [("program", program)])
                .increment(by: Int64(clamping: count))
        }
    }

    /// The Prometheus text exposition of every metric.
    public func render() -> [UInt8] { registry.emitToBuffer() }
}
