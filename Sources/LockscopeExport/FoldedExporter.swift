import Foundation
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

    /// The unit flamegraph.pl should call the weights (`--countname`): folded lines carry no unit.
    public static func countName(_ weight: ExportWeight, samples: SampleType) -> String {
        switch weight {
        case .wait: return "ns"
        case .count: return samples == .wait ? "contentions" : "samples"
        }
    }

    /// The command line that draws `file` with flamegraph.pl, its unit and title included; `file` and the
    /// SVG beside it are quoted for a POSIX shell.
    /// The title is the one `lockscope flamegraph` gives the same graph.
    public static func flamegraphCommand(_ file: String, weight: ExportWeight, samples: SampleType) -> String {
        let svg = file.hasSuffix(".folded") ? String(file.dropLast(".folded".count)) + ".svg" : file + ".svg"
        let title = samples != .wait ? samples.title : weight == .wait ? "Lock wait time" : "Lock contentions"
        return "flamegraph.pl --countname=\(countName(weight, samples: samples)) --title=\(shellQuoted(title)) \(shellQuoted(file)) > \(shellQuoted(svg))"
    }

    /// `text` as one word for a POSIX shell: unchanged when plain, else in single quotes.
    static func shellQuoted(_ text: String) -> String {
        let plain = !text.isEmpty && text.unicodeScalars.allSatisfy {
            $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "@%+=:,./_-".unicodeScalars.contains($0))
        }
        return plain ? text : "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
