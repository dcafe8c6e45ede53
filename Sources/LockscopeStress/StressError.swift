import Foundation

/// Why a stress run could not start or finish. Each description is one line: what is wrong and what to do.
public enum StressError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// An option is out of range (exit code 2).
    case invalidOption(String)
    /// The machine lacks a privilege or kernel feature the storm needs (exit code 2).
    case unsupported(String)
    /// The run could not prepare or clean up its scratch directory or cgroups (exit code 1).
    case setupFailed(String)
    /// A stop signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) ended the run; everything it created was removed first.
    case interrupted(signal: Int32)

    public var description: String {
        switch self {
        case .invalidOption(let message), .unsupported(let message), .setupFailed(let message):
            return message
        case .interrupted(let signal):
            return "interrupted by \(signalName(signal)): the workers were stopped and all mounts, directories and cgroups removed"
        }
    }

    public var errorDescription: String? { description }

    /// The process exit code this error calls for: 2 for bad input or a missing privilege or feature,
    /// 128 + the signal after an interruption, 1 otherwise.
    public var exitCode: Int32 {
        switch self {
        case .invalidOption, .unsupported: return 2
        case .setupFailed: return 1
        case .interrupted(let signal): return 128 + signal
        }
    }
}

/// "SIGINT", "SIGTERM", "SIGHUP" or "SIGQUIT"; "signal N" for any other.
func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGINT: "SIGINT"
    case SIGTERM: "SIGTERM"
    case SIGHUP: "SIGHUP"
    case SIGQUIT: "SIGQUIT"
    default: "signal \(signal)"
    }
}
