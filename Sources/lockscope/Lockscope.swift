import ArgumentParser
import Foundation
import LockscopeCore

/// `lockscope`: where container start-up waits on kernel locks.
@main
struct Lockscope: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lockscope",
        abstract: "An eBPF lock-contention profiler: which kernel lock, how long, where, in which container, from which call path.",
        version: LockscopeVersion.current,
        subcommands: [RecordCommand.self, ReportCommand.self, DoctorCommand.self, ExportCommand.self,
                      FlamegraphCommand.self, TimelineCommand.self, CheckCommand.self, DiffCommand.self, MergeCommand.self,
                      TopCommand.self, RedactCommand.self, StressCommand.self, SweepCommand.self,
                      AgentCommand.self, StressWorkerCommand.self])

    /// Runs the command; user errors and bad options print one line and exit 2.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as UserError {
            FileHandle.standardError.write(Data("lockscope: \(error.description)\n".utf8))
            Foundation.exit(2)
        } catch {
            let code = exitCode(for: error)
            if code == .success || code.rawValue == 1 || error is ExitCode || error is CleanExit {
                exit(withError: error)
            }
            // Usage and validation errors: one line, ArgumentParser's message, then status 2 like every bad input.
            let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            let subcommand = CommandLine.arguments.dropFirst().first.flatMap { argument in
                configuration.subcommands.map { $0._commandName }.first { $0 == argument }
            }
            let help = ["lockscope", subcommand, "--help"].compactMap { $0 }.joined(separator: " ")
            FileHandle.standardError.write(Data("lockscope: \(message) (see `\(help)`)\n".utf8))
            Foundation.exit(2)
        }
    }
}
