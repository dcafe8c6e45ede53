import LockscopeCore

/// Brendan Gregg's folded stacks, as read by flamegraph.pl, inferno and speedscope: one line per distinct
/// call path, frames root-to-leaf joined by `;`, a space, and the path's weight as an integer.
///
/// Lines are sorted and paths with zero weight are left out; the weights add up to the profile's total
/// (wait nanoseconds or contentions), waits recorded without a stack included as `[no stack]`.
public enum FoldedExporter {
    public static func render(_ profile: Profile, weight: ExportWeight = .wait, grouping: StackGrouping = .lock) throws -> String {
        try LockSamples(profile, grouping: grouping).mergedPaths()
            .filter { $0.amount.value(weight) > 0 }
            .map { "\($0.frames.joined(separator: ";")) \($0.amount.value(weight))\n" }
            .joined()
    }
}
