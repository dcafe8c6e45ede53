import Foundation
import LockscopeCore

/// The quantity a flame graph or an export measures.
public enum ExportWeight: String, CaseIterable, Sendable {
    /// Total time waited, in nanoseconds.
    case wait
    /// Number of contended acquisitions.
    case count
}

/// Synthetic root frames that split a flame graph by where its waits happened, outermost first.
///
/// Written on the command line as `none`, one dimension (`lock`), or a comma-separated list
/// (`container,lock`): each dimension adds one frame above the kernel stack, in the order given.
public struct StackGrouping: Equatable, Sendable, CustomStringConvertible {
    /// One synthetic frame level.
    public enum Dimension: String, CaseIterable, Sendable {
        /// `[lock] namespace_sem`
        case lock
        /// `[container] 3f2a9c1b7d4e` (container ids are shortened to 12 characters).
        case container
        /// `[cpu 3]`
        case cpu
        /// `[socket 1]`, from the profile's topology.
        case socket
    }

    public var dimensions: [Dimension]

    public init(_ dimensions: [Dimension]) {
        self.dimensions = dimensions
    }

    /// No synthetic frames: stacks of different locks that share their frames merge.
    public static let none = StackGrouping([])
    /// One `[lock] NAME` frame at the root: the default.
    public static let lock = StackGrouping([.lock])

    /// Parses `none`, a dimension, or a comma-separated list of distinct dimensions.
    public init?(parsing text: String) {
        if text == "none" {
            self = .none
            return
        }
        var dimensions: [Dimension] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let dimension = Dimension(rawValue: String(part)), !dimensions.contains(dimension) else { return nil }
            dimensions.append(dimension)
        }
        self.init(dimensions)
    }

    public var description: String {
        dimensions.isEmpty ? "none" : dimensions.map(\.rawValue).joined(separator: ",")
    }

    /// Refuses a grouping the profile cannot answer: by socket without a recorded topology.
    /// `source` names the profile in the message.
    public func validate(for profile: Profile, source: String) throws {
        if dimensions.contains(.socket) && profile.topology == nil {
            throw UserError("\(source) has no CPU topology, so its waits cannot be grouped by socket; group by cpu instead")
        }
    }

    /// How waits recorded without a stack are split, for grouping and labels: the profile knows them per
    /// container and per CPU, but not per pair, so the first of those dimensions named wins (container by default).
    var splitsStacklessWaitsByCPU: Bool {
        guard let first = dimensions.first(where: { $0 != .lock }) else { return false }
        return first == .cpu || first == .socket
    }
}

/// A file format `lockscope export` writes.
public enum ExportFormat: String, CaseIterable, Sendable {
    /// Brendan Gregg's folded stacks: `root;...;leaf 1234` per line.
    case folded
    /// One row per lock and dimension value, RFC 4180.
    case csv
    /// speedscope's JSON file format.
    case speedscope
    /// pprof: a gzip-compressed perftools.profiles.Profile protocol buffer.
    case pprof

    /// Whether the output is binary (and so never written to a terminal).
    public var isBinary: Bool { self == .pprof }

    /// Whether `--weight` and `--group` change the output.
    public var isStackBased: Bool { self != .csv }
}

/// Renders any export format.
public enum ProfileExporter {
    /// The complete file for `format`. `weight` and `grouping` are ignored by CSV.
    public static func export(_ profile: Profile, format: ExportFormat, weight: ExportWeight = .wait,
                              grouping: StackGrouping = .lock, samples: SampleType = .wait) throws -> Data {
        switch format {
        case .folded: return Data(try FoldedExporter.render(profile, weight: weight, grouping: grouping).utf8)
        case .csv: return Data(CSVExporter.render(profile).utf8)
        case .speedscope: return try SpeedscopeExporter.render(profile, weight: weight, grouping: grouping, samples: samples)
        case .pprof: return try PprofExporter.render(profile, weight: weight, grouping: grouping, samples: samples)
        }
    }
}
