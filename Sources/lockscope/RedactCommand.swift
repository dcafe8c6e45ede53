import ArgumentParser
import Foundation
import LockscopeCore

/// `lockscope redact FILE -o OUT`: a copy of a profile that can be shared outside the machine.
struct RedactCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redact",
        abstract: "Write a copy of a profile without kernel addresses, hostname, container ids, pod UIDs, cgroup paths, process names or the command.",
        discussion: """
            Each such value becomes a stable pseudonym (host-1f3a9c, ctr-8c1e44d2a9b0, addr-5e2b91c0), keyed \
            with HMAC-SHA256: the same value gets the same pseudonym in every profile redacted with the same \
            key, so redacted profiles still diff lock by lock and container by container. The default key, \
            /etc/machine-id, is stable per machine; share a --key-file between machines to compare their \
            profiles. Lock and kernel function names, counts and times stay. See docs/cli.md.
            """)

    @Argument(help: "The profile to redact (written by `lockscope record -o`).")
    var file: String

    @Option(name: .shortAndLong, help: "The redacted profile to write.")
    var output: String

    @Option(help: ArgumentHelp("The secret that keys the pseudonyms (its bytes as they are). Default: \(Redactor.defaultKeyFile).",
                               valueName: "FILE"))
    var keyFile: String = Redactor.defaultKeyFile

    @OptionGroup var fileMode: FileModeOption

    func run() throws {
        try AtomicFile.checkWritable(output)
        let redactor = try Redactor(keyFile: keyFile)
        try redactor.redact(try Profile.load(path: file)).write(to: output, mode: fileMode.mode)
    }
}
