import ArgumentParser
import Foundation
import LockscopeCore
import LockscopeReport

extension ReportSort: ExpressibleByArgument {}
extension ReportFormat: ExpressibleByArgument {}
extension ReportDimension: ExpressibleByArgument {}

/// `lockscope report FILE`: read a saved profile again, any time, without root.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Print the report of a saved profile.")

    @Argument(help: "A profile written by `lockscope record`.")
    var file: String

    // Unconditional, so that `--top -1` reaches the check below instead of reading as a missing value.
    @Option(parsing: .unconditional, help: "Locks to show, heaviest first; 0 for all of them. Also caps the victims and container starts listed.")
    var top = 10

    @Option(help: "Order locks by: \(ReportSort.allCases.map(\.rawValue).joined(separator: "|")).")
    var sort: ReportSort = .total

    @Option(help: "Output: \(ReportFormat.allCases.map(\.rawValue).joined(separator: "|")).")
    var format: ReportFormat = .table

    @Option(help: "Break each top lock down by: \(ReportDimension.allCases.filter(\.isPerLock).map(\.rawValue).joined(separator: "|")); or victim: the processes that waited without mounting, and whom they waited behind; or thread: every thread's wait across the locks, as perf -t (repeatable).")
    var by: [ReportDimension] = []

    @Flag(help: "Add each lock instance (address) of the top locks, with its symbol when known (perf -l).")
    var instances = false

    @Flag(help: "Add mount-syscall accounting: calls, latency, mount ops per container with its pod and how it was attributed, and the container starts with the most lock wait.")
    var mounts = false

    func run() throws {
        guard top >= 0 else { throw UserError("--top \(top): give a number of locks, or 0 for all of them") }
        let profile = try Profile.load(path: file)
        let options = ReportOptions(top: top, sort: sort, format: format, by: by, mounts: mounts, instances: instances)
        let renderer = ReportRenderer(profile: profile, options: options)
        print(renderer.render(), terminator: "")
        if let note = renderer.cutNote { FileHandle.standardError.write(Data((note + "\n").utf8)) }
    }
}
