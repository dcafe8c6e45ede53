import Foundation

/// One finished run of the `lockscope` binary.
public struct LockscopeRun {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    /// Runs the binary (``LockscopeBinary/path()``) with `arguments` and waits for it to exit.
    public static func run(_ arguments: [String]) throws -> LockscopeRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try LockscopeBinary.path())
        process.arguments = arguments
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return LockscopeRun(status: process.terminationStatus, stdout: String(decoding: output, as: UTF8.self),
                            stderr: String(decoding: errors, as: UTF8.self))
    }
}
