import Foundation
import Glibc

/// A running worker process whose stdout comes back through a pipe.
struct WorkerProcess {
    let pid: pid_t
    /// The read end of the worker's stdout.
    let outputFD: Int32

    /// posix_spawn `executable` with `arguments`, stdout on a pipe, the signals a run stops on and
    /// SIGCHLD at their default actions and no signal blocked.
    static func spawn(executable: String, arguments: [String]) throws -> WorkerProcess {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw spawnError(executable, errno) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer { close(fds[1]) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        for signal in SignalWatcher.stopSignals + [SIGCHLD] { sigaddset(&defaultSignals, signal) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            close(fds[0])
            throw spawnError(executable, result)
        }
        return WorkerProcess(pid: pid, outputFD: fds[0])
    }

    private static func spawnError(_ executable: String, _ code: Int32) -> StressError {
        .setupFailed("cannot start the worker \(executable): \(String(cString: strerror(code)))")
    }

    /// How a worker process ended.
    enum End: Equatable {
        case exited(code: Int32)
        case killed(signal: Int32)
        /// Someone else in this process already waited for it.
        case reapedElsewhere
    }

    /// Reaps the worker if it has ended; nil while it runs.
    func reapIfEnded() -> End? {
        var status: Int32 = 0
        switch waitpid(pid, &status, WNOHANG) {
        case pid: return status & 0x7f == 0 ? .exited(code: (status >> 8) & 0xff) : .killed(signal: status & 0x7f)
        case -1 where errno == ECHILD: return .reapedElsewhere
        default: return nil
        }
    }

    /// Everything the worker wrote to stdout, then closes the pipe. Call after the worker exited.
    func readOutput() -> String {
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(outputFD, &buffer, buffer.count)
            if count > 0 {
                output += buffer[..<count]
            } else if count == 0 || errno != EINTR {
                break
            }
        }
        close(outputFD)
        return String(decoding: output, as: UTF8.self)
    }
}
