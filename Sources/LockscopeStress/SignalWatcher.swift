import Foundation
import Glibc
import Synchronization

/// The write end of the active watcher's self-pipe, read by the signal handler; -1 when none is active.
private let signalPipeWriteEnd = Atomic<Int32>(-1)

/// Writes the signal's number into the self-pipe: the only async-signal-safe way to wake the run loop.
private func forwardSignalToPipe(_ signal: Int32) {
    let fd = signalPipeWriteEnd.load(ordering: .acquiring)
    guard fd >= 0 else { return }
    let savedErrno = errno
    var byte = UInt8(truncatingIfNeeded: signal)
    _ = write(fd, &byte, 1)
    errno = savedErrno
}

/// Turns the stop signals and SIGCHLD into bytes on a pipe that the parent's run loop polls, so a
/// worker's exit or a request to stop wakes it whichever thread the signal lands on.
/// One watcher may be active per process; ``restore()`` puts the previous handlers back.
final class SignalWatcher {
    /// The signals that stop a run cleanly: Ctrl-C, kill, a closed terminal (SIGHUP) and Ctrl-\
    /// (SIGQUIT, which would otherwise dump core and leave the run's cgroups behind).
    static let stopSignals = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]
    private static let watchedSignals = stopSignals + [SIGCHLD]
    private let readEnd: Int32
    private let writeEnd: Int32
    private var previousActions: [Int32: sigaction] = [:]
    /// The first stop signal seen, if any.
    private(set) var stopSignal: Int32?

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw StressError.setupFailed("cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        (readEnd, writeEnd) = (fds[0], fds[1])
        guard signalPipeWriteEnd.compareExchange(expected: -1, desired: writeEnd, ordering: .acquiringAndReleasing).exchanged else {
            close(readEnd)
            close(writeEnd)
            throw StressError.setupFailed("another stress run is already in progress in this process: wait for it to finish")
        }
        for signal in Self.watchedSignals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = forwardSignalToPipe
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART | (signal == SIGCHLD ? SA_NOCLDSTOP : 0)
            var previous = sigaction()
            sigaction(signal, &action, &previous)
            previousActions[signal] = previous
        }
    }

    /// Waits up to `milliseconds` for a signal, then records any stop signal that arrived.
    func wait(milliseconds: Int32) {
        var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, milliseconds)
        checkForStop()
    }

    /// Records any stop signal that arrived, without waiting.
    func checkForStop() {
        var byte: UInt8 = 0
        while read(readEnd, &byte, 1) == 1 {
            let signal = Int32(byte)
            if stopSignal == nil, Self.stopSignals.contains(signal) {
                stopSignal = signal
            }
        }
    }

    /// Reinstalls the handlers that were in place before, and closes the pipe.
    func restore() {
        for (signal, var previous) in previousActions {
            sigaction(signal, &previous, nil)
        }
        previousActions = [:]
        signalPipeWriteEnd.store(-1, ordering: .releasing)
        close(readEnd)
        close(writeEnd)
    }
}
