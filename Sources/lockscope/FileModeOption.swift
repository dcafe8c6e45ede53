import ArgumentParser
import Foundation
import LockscopeCore

/// `--mode`, on every command that writes files: their permissions, exactly (the umask does not
/// apply). Private by default: profiles and what is derived from them hold kernel addresses, host
/// names, container ids and command lines.
struct FileModeOption: ParsableArguments {
    @Option(help: "Permissions of the files written, in octal (default 0600: profiles hold kernel addresses and host names).",
            transform: FileModeOption.parse)
    var mode: mode_t = AtomicFile.defaultMode

    static func parse(_ text: String) throws -> mode_t {
        guard let mode = AtomicFile.parseMode(text) else { throw ValidationError("give octal permissions like 0600 or 0644") }
        return mode
    }
}
