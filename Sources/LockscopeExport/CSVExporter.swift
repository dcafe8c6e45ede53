import Foundation
import LockscopeCore

/// Every lock's wait statistics as CSV (RFC 4180: CRLF line ends, fields quoted when needed): one row for
/// the lock as a whole (`total`), then one per value of each dimension the profile recorded, in the
/// profile's order: cpu, socket, node, llc, container, process, handoff. Times are integer nanoseconds.
public enum CSVExporter {
    static let header = ["lock", "kind", "identity", "address", "instances", "dimension", "key", "contentions", "total_wait_ns",
                         "mean_wait_ns", "min_wait_ns", "max_wait_ns", "p50_wait_ns", "p90_wait_ns", "p99_wait_ns",
                         "p999_wait_ns"]

    public static func render(_ profile: Profile) -> String {
        var rows = [header]
        for lock in profile.locks {
            func row(_ dimension: String, _ key: String, _ stats: WaitStats) -> [String] {
                [lock.name, lock.kind.rawValue, lock.identity.rawValue, lock.address, String(lock.instances), dimension, key]
                    + [stats.contentions, stats.totalWaitNs, stats.meanWaitNs, stats.minWaitNs, stats.maxWaitNs,
                       stats.p50WaitNs, stats.p90WaitNs, stats.p99WaitNs, stats.p999WaitNs].map(String.init)
            }
            rows.append(row("total", "", lock.stats))
            let dimensions: [(String, [KeyedStats])] = [
                ("cpu", lock.byCpu), ("socket", lock.bySocket), ("node", lock.byNode), ("llc", lock.byLlc),
                ("container", lock.byContainer), ("process", lock.byProcess),
            ]
            for (dimension, values) in dimensions {
                rows += values.map { row(dimension, $0.key, $0.stats) }
            }
            rows += lock.handoffs.map { row("handoff", $0.handoff.rawValue, $0.stats) }
        }
        return rows.map { $0.map(field).joined(separator: ",") + "\r\n" }.joined()
    }

    /// A field quoted, with its quotes doubled, when it holds a comma, a quote or a line break.
    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
