import Foundation

/// The `lockscope` binary running in the background, for tests that signal it or act on its files
/// while it records: stdout and stderr go to hidden files in the test's directory.
public final class LockscopeProcess {
    public let process = Process()
    private let stdoutPath: String
    private let stderrPath: String

    /// Starts `lockscope arguments...`, or `prefix... lockscope arguments...` (setpriv, unshare, ...).
    public init(_ arguments: [String], prefix: [String] = [], directory: String) throws {
        let binary = try LockscopeBinary.path()
        process.executableURL = URL(fileURLWithPath: prefix.first ?? binary)
        process.arguments = prefix.isEmpty ? arguments : Array(prefix.dropFirst()) + [binary] + arguments
        let name = UUID().uuidString
        stdoutPath = "\(directory)/.\(name).stdout"
        stderrPath = "\(directory)/.\(name).stderr"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var pid: pid_t { process.processIdentifier }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }

    /// Waits until stderr says the programs are attached (false if it exits or `timeout` passes first).
    @discardableResult
    public func waitUntilAttached(timeout: TimeInterval = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if stderr.contains("lockscope: attached") { return true }
            if !process.isRunning { return false }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    public func signal(_ number: Int32) { kill(pid, number) }

    /// Waits for the exit and returns the status as a shell shows it (128 + signal when killed).
    public func waitForExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }
}
