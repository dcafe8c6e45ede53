import Foundation
import LockscopeCore

/// `lockscope sweep`'s text: the table of a sweep, and two sweeps compared.
public enum SweepReport {
    /// One row per point: medians with their [lowest-highest] over the runs, and the CPUs the storm's
    /// waits were recorded on.
    public static func table(_ sweep: Sweep) -> String {
        var rows = [["placement", "parallel", "set-up p99 ms", "namespace_sem ms", "mount_lock ms", "mount ops/s", "CPUs seen"]]
        for placement in sweep.placements {
            for point in sweep.points(of: placement.name) {
                func cell(_ metric: SweepMetric, _ format: String) -> String {
                    let spread = point.spread(metric)
                    return String(format: "\(format) [\(format)-\(format)]", spread.median, spread.min, spread.max)
                }
                let seen = Set(point.runs.flatMap(\.cpusSeen)).sorted().map(String.init).joined(separator: ",")
                rows.append([placement.name, String(point.parallel), cell(.setupP99, "%.1f"), cell(.namespaceSemWait, "%.1f"),
                             cell(.mountLockWait, "%.2f"), cell(.mountOpsPerSecond, "%.0f"),
                             (seen.isEmpty ? "-" : seen) + (point.confined ? "" : " (outside the placement!)")])
            }
        }
        return "sweep on \(sweep.hostname): \(sweep.workload); \(sweep.confinement) confinement, "
            + "\(sweep.points.first?.runs.count ?? 0) runs a point, median [min-max]\n"
            + TextTable.render(rows, rightAligned: 1..<7, indent: 2)
    }

    /// `before` against `after`: the medians at every point both have, and their ratio.
    public static func comparison(_ before: Sweep, _ after: Sweep) -> String {
        var rows = [["placement", "parallel", "set-up p99 ms", "", "namespace_sem ms", ""]]
        for point in before.points.sorted(by: { ($0.placement, $0.parallel) < ($1.placement, $1.parallel) }) {
            guard let later = after.points.first(where: { $0.placement == point.placement && $0.parallel == point.parallel })
            else { continue }
            func change(_ metric: SweepMetric) -> [String] {
                let (a, b) = (point.spread(metric).median, later.spread(metric).median)
                // Nothing before: a ratio would divide by zero; nothing before and after is no change.
                let ratio = a > 0 ? String(format: "×%.2f", b / a) : b > 0 ? "new" : "×1.00"
                return [String(format: "%.1f → %.1f", a, b), ratio]
            }
            rows.append([point.placement, String(point.parallel)] + change(.setupP99) + change(.namespaceSemWait))
        }
        guard rows.count > 1 else { return "the two sweeps have no point (placement and parallelism) in common\n" }
        return "\(before.hostname) (\(before.startedAt)) → \(after.hostname) (\(after.startedAt)), medians\n"
            + TextTable.render(rows, rightAligned: 1..<6, indent: 2)
    }
}
