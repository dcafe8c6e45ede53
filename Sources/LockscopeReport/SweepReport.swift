import Foundation
import LockscopeCore

/// `lockscope sweep`'s text: the table of a sweep, its warnings, and two sweeps compared.
public enum SweepReport {
    /// One row per point: medians with their [lowest-highest] over the runs, and the CPUs the storm's
    /// waits were recorded on with what they say of the placement.
    public static func table(_ sweep: Sweep) -> String {
        var rows = [["placement", "parallel", "set-up p99 ms", "namespace_sem wait ms", "mount_lock wait ms",
                     "namespace_sem spin ms", "mount_lock spin ms", "mount ops/s", "CPUs seen"]]
        for placement in sweep.placements {
            for point in sweep.points(of: placement.name) {
                func cell(_ metric: SweepMetric, _ format: String) -> String {
                    let spread = point.spread(metric)
                    return String(format: "\(format) [\(format)-\(format)]", spread.median, spread.min, spread.max)
                }
                let seen = point.cpusSeen.map(String.init).joined(separator: ",")
                rows.append([placement.name, String(point.parallel), cell(.setupP99, "%.1f"), cell(.namespaceSemWait, "%.1f"),
                             cell(.mountLockWait, "%.2f"), cell(.namespaceSemSpin, "%.1f"), cell(.mountLockSpin, "%.2f"),
                             cell(.mountOpsPerSecond, "%.0f"), (seen.isEmpty ? "-" : seen) + note(point.check)])
            }
        }
        return "sweep on \(sweep.hostname): \(sweep.workload); \(sweep.confinement.rawValue) confinement, "
            + "\(sweep.points.first?.runs.count ?? 0) runs a point, median [min-max]; spin is sampled on-CPU time (estimated)\n"
            + TextTable.render(rows, rightAligned: 1..<9, indent: 2)
    }

    static func note(_ check: PlacementCheck) -> String {
        switch check {
        case .confined: ""
        case .unverified: " (unverified)"
        case .outside: " (outside the placement!)"
        }
    }

    /// What stderr says of a point whose placement the recording does not confirm; nil when it does.
    public static func warning(_ point: SweepPoint, placement: Placement) -> String? {
        let cpus = CPUList.describe(placement.cpus)
        switch point.check {
        case .confined:
            return nil
        case .outside:
            let outside = point.cpusSeen.filter { !placement.cpus.contains($0) }.map(String.init).joined(separator: ",")
            return "warning: \(point.placement) parallel \(point.parallel): the storm's containers waited on CPU \(outside), "
                + "outside the placement (\(cpus)); the confinement did not hold"
        case .unverified:
            if point.runs.contains(where: { $0.waitsChecked == 0 }) {
                return "warning: \(point.placement) parallel \(point.parallel): a run recorded no wait of the storm's containers, "
                    + "so its placement (\(cpus)) is unverified"
            }
            return "warning: \(point.placement) parallel \(point.parallel): \(point.uncheckedWaits) waits past the container cap "
                + "(\(Aggregator.otherContainersKey)) were taken outside the placement (\(cpus)): unverified"
        }
    }

    /// Two sweeps compared: every metric at every point both have, before and after as median
    /// [lowest-highest], the ratio of the medians, and `higher`/`lower` only when each median lies
    /// outside the other's spread; then the points only one of them has.
    public static func comparison(_ comparison: SweepComparison) -> String {
        var rows = [["placement", "parallel", "metric", "before", "after", "ratio", "change"]]
        for row in comparison.rows {
            for change in row.metrics {
                let metric = SweepMetric(rawValue: change.metric)
                let format = metric == .mountOpsPerSecond ? "%.0f" : metric == .mountLockWait || metric == .mountLockSpin ? "%.2f" : "%.1f"
                func cell(_ spread: Spread) -> String {
                    String(format: "\(format) [\(format)-\(format)]", spread.median, spread.min, spread.max)
                }
                let (a, b) = (change.before.median, change.after.median)
                // Nothing before: a ratio would divide by zero; nothing before and after is no change.
                let ratio = a > 0 ? String(format: "×%.2f", b / a) : b > 0 ? "new" : "×1.00"
                let label = (metric?.label ?? change.metric) + (metric.map { " \($0.unit)" } ?? "")
                rows.append([row.placement, String(row.parallel), label, cell(change.before), cell(change.after), ratio,
                             change.change == .unchanged ? "" : change.change.rawValue])
            }
        }
        var text = "\(comparison.before.hostname) (\(comparison.before.startedAt), \(comparison.before.runsPerPoint) runs a point) → "
            + "\(comparison.after.hostname) (\(comparison.after.startedAt), \(comparison.after.runsPerPoint) runs a point): "
            + "median [min-max]; a change is flagged only outside both spreads\n"
        text += comparison.rows.isEmpty ? "  the two sweeps have no point (placement and parallelism) in common\n"
            : TextTable.render(rows, rightAligned: 1..<6, indent: 2)
        func list(_ keys: [SweepComparison.PointKey]) -> String {
            keys.map { "\($0.placement) parallel \($0.parallel)" }.joined(separator: ", ")
        }
        if !comparison.onlyBefore.isEmpty { text += "only before: \(list(comparison.onlyBefore))\n" }
        if !comparison.onlyAfter.isEmpty { text += "only after: \(list(comparison.onlyAfter))\n" }
        return text
    }
}
