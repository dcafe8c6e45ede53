import Foundation

/// `--callstack-filter NAME,...` (perf lock contention's -S): keep the waits whose kernel stack has a
/// frame whose function name contains one of the names.
public struct CallstackFilter: Sendable, Equatable {
    public let names: [String]

    /// Parses a comma-separated list of names (each non-empty).
    public init(parsing text: String) throws {
        let names = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty, !names.contains(where: \.isEmpty) else {
            throw UserError("'\(text)' is not a list of function names: give one or more, comma-separated, like do_move_mount,path_umount")
        }
        self.names = names
    }

    public init(names: [String]) { self.names = names }

    /// Whether a stack, as symbolized frames (`func` or `func [module]`), has a matching frame.
    public func matches<Frames: Sequence<String>>(_ frames: Frames) -> Bool {
        frames.contains { frame in names.contains { frame.contains($0) } }
    }
}

/// Applies a `CallstackFilter` to waits by their stack id while recording: each stack id is symbolized
/// and judged once (a stack map's ids are stable for the recording), and the waits with no stack are
/// counted, since nothing says whether they would have matched.
public final class StackSelector {
    public let filter: CallstackFilter
    private var symbolizer: Symbolizer
    private var decisions: [Int32: Bool] = [:]
    /// Waits left out for having no stack (`Drops.callstackFilterNoStack`).
    public private(set) var noStack: UInt64 = 0
    /// Waits left out because no frame matched.
    public private(set) var leftOut: UInt64 = 0

    public init(filter: CallstackFilter, stackAddresses: @escaping (Int32) -> [UInt64]?, symbols: Kallsyms?, maxDepth: Int) {
        self.filter = filter
        symbolizer = Symbolizer(stackAddresses: stackAddresses, symbols: symbols, maxDepth: maxDepth)
    }

    /// Whether to keep a wait whose stack id is `stackID` (negative: no stack).
    public func keeps(stackID: Int32) -> Bool {
        if let decided = decisions[stackID] {
            if !decided { leftOut += 1 }
            return decided
        }
        let frames = stackID >= 0 ? symbolizer.frames(stackID) : []
        guard !frames.isEmpty, frames != [Symbolizer.unknownStackFrame] else {
            noStack += 1
            return false
        }
        let keep = filter.matches(frames)
        decisions[stackID] = keep
        if !keep { leftOut += 1 }
        return keep
    }
}
