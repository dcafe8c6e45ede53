import ArgumentParser
import LockscopeKernel

/// `lockscope doctor`: can this machine record, and what to do if not.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor", abstract: "Check what this kernel and this process support for recording.")

    func run() throws {
        let checks = Doctor.run()
        for check in checks {
            print("\(check.status.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0))\(check.name): \(check.detail)")
        }
        if checks.contains(where: { $0.status == .missing }) { throw ExitCode(1) }
    }
}
