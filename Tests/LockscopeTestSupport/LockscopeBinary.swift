import Foundation

/// Where tests find the `lockscope` binary that stress workers and CLI tests run.
public enum LockscopeBinary {
    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    /// $LOCKSCOPE_BINARY, or `lockscope` in the build directory that holds this test executable
    /// (`swift build` and `swift test` put both in .build/<triple>/debug).
    public static func path() throws -> String {
        if let path = ProcessInfo.processInfo.environment["LOCKSCOPE_BINARY"] { return path }
        let buildDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let candidate = buildDirectory.appendingPathComponent("lockscope").path
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw Missing(description: "no lockscope binary at \(candidate): run `swift build` first, or set LOCKSCOPE_BINARY")
        }
        return candidate
    }
}
