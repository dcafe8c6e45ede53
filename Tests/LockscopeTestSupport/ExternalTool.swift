import Foundation

/// Outside programs that tests hand lockscope's output to (go tool pprof, an XML schema validator): the
/// real consumers of what lockscope writes.
///
/// Locally a test whose tool is missing is skipped; with LOCKSCOPE_REQUIRE_TOOLS=1 (CI, where `.ci/run`
/// installs them) it runs and fails, so a missing install step cannot pass unnoticed.
public enum ExternalTool {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    public static var required: Bool { ProcessInfo.processInfo.environment["LOCKSCOPE_REQUIRE_TOOLS"] == "1" }

    /// The executable `name` on $PATH (or the usual system directories), if any.
    public static func path(of name: String) -> String? {
        let searched = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/local/bin", "/usr/bin", "/bin"]
        return searched.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Whether a test needing this tool should run: it is there, or it is required (and then fails if missing).
    public static func shouldRun(_ name: String) -> Bool { required || path(of: name) != nil }

    /// Whether python3 can import `module`.
    public static func pythonHas(_ module: String) -> Bool {
        guard let python = path(of: "python3"), let result = try? run(python, ["-c", "import \(module)"]) else { return false }
        return result.status == 0
    }

    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs `path` with `arguments` and waits; stdout is read while it runs, stderr goes through a file.
    public static func run(_ path: String, _ arguments: [String]) throws -> Output {
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-tool-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let errFile = try FileHandle(forWritingTo: errURL)
        defer { try? errFile.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = errFile
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self))
    }

    /// Runs the named tool, failing when it is missing or exits non-zero.
    public static func check(_ name: String, _ arguments: [String], install: String) throws -> String {
        guard let path = path(of: name) else { throw Failure("\(name) is not installed: \(install)") }
        let output = try run(path, arguments)
        guard output.status == 0 else {
            throw Failure("\(name) \(arguments.joined(separator: " ")) exited \(output.status): \(output.stderr)")
        }
        return output.stdout
    }
}
