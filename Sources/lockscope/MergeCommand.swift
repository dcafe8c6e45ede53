import ArgumentParser
import Foundation
import LockscopeCompare
import LockscopeCore

/// `lockscope merge A.json B.json ... -o fleet.json`: one profile from several hosts' profiles.
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge several hosts' profiles into one, with each lock's waits by host.",
        discussion: """
        Locks are matched by name and kind, as diff and check match them; their waits add up and by_host \
        keeps each host's. CPUs, sockets and processes are keyed host/key. Timelines add up second by \
        second from each recording's own start. One profile per host: a hostname seen twice is refused. \
        The result reads in report, flamegraph, export, diff and check. See docs/profile-format.md.
        """)

    @Argument(help: "The profiles to merge, one per host (written by `lockscope record -o`).")
    var profiles: [String] = []

    @Option(name: .shortAndLong, help: "The merged profile to write.")
    var output: String

    @OptionGroup var fileMode: FileModeOption

    func run() throws {
        let merged = try ProfileMerge.run(paths: profiles, output: output, mode: fileMode.mode)
        print("\(TerminalText.escaped(output)): \(profiles.count) hosts merged, \(merged.locks.count) locks")
    }
}
