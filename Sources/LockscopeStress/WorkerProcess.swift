import Foundation
import Glibc

/// A running worker process whose stdout comes back through a pipe.
struct WorkerProcess {
    let pid: pid_t
    /// The read end of the worker's stdout.
    let outputFD: Int32
    /// The write end of the worker's stdin when it was started with one: closing it tells the worker to stop.
    let inputFD: Int32?

    /// posix_spawn `executable` with `arguments` (and `argv0` as argv[0], the executable's path if nil)
    /// in `environment` (this process's if nil), stdout on a pipe, stdin on another if `withInput`, the
    /// signals a run stops on and SIGCHLD at their default actions and no signal blocked.
    static func spawn(executable: String, arguments: [String], argv0: String? = nil, environment: [String]? = nil,
                      withInput: Bool = false) throws -> WorkerProcess {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw spawnError(executable, errno) }
        var input: [Int32] = [-1, -1]
        if withInput, pipe(&input) != 0 {
            close(fds[0])
            close(fds[1])
            throw spawnError(executable, errno)
        }
        for fd in fds + input where fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer {
            close(fds[1])
            if withInput { close(input[0]) }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO)
        if withInput { posix_spawn_file_actions_adddup2(&actions, input[0], STDIN_FILENO) }

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

        let argv = ([argv0 ?? executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = environment.map { $0.map { strdup($0) } + [nil] }
        defer { envp?.forEach { free($0) } }
        var pid: pid_t = 0
        let result = envp.map { posix_spawn(&pid, executable, &actions, &attributes, argv, $0) }
            ?? posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            close(fds[0])
            if withInput { close(input[1]) }
            throw spawnError(executable, result)
        }
        return WorkerProcess(pid: pid, outputFD: fds[0], inputFD: withInput ? input[1] : nil)
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
        defer { close(outputFD) }
        return String(decoding: (try? readToEnd(outputFD)) ?? [], as: UTF8.self)
    }
}
