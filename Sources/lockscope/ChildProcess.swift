import Foundation
import Glibc
import LockscopeCore
import LockscopeKernel
import Synchronization

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT ask the recording to stop; the poll loop sees them within
/// 100 ms. Each is counted, with whether the terminal sent it (then the profiled command, in the same
/// foreground process group, got it too and must not get it twice).
enum StopSignal {
    static let handled: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]
    private static let count = Atomic<Int>(0)
    private static let first = Atomic<Int32>(0)
    private static let firstFromTerminal = Atomic<Bool>(false)

    static func install() {
        for signal in handled {
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = { number, info, _ in
                if StopSignal.count.load(ordering: .relaxed) == 0 {
                    StopSignal.first.store(number, ordering: .relaxed)
                    // SI_KERNEL: sent by the kernel, as the terminal driver does for Ctrl-C and hang-ups.
                    StopSignal.firstFromTerminal.store(info?.pointee.si_code == 0x80, ordering: .relaxed)
                }
                StopSignal.count.add(1, ordering: .relaxed)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_SIGINFO | SA_RESTART
            sigaction(signal, &action, nil)
        }
    }

    /// How many stop signals have arrived.
    static var requests: Int { count.load(ordering: .relaxed) }
    static var requested: Bool { requests > 0 }
    static var signal: Int32 { first.load(ordering: .relaxed) }
    static var fromTerminal: Bool { firstFromTerminal.load(ordering: .relaxed) }
}

/// The profiled command: spawned in lockscope's own process group, so it stays in the terminal's
/// foreground group and can read from the terminal; stopped on request with the signal lockscope got,
/// and killed if it has not exited `killAfterNs` later (or at a second stop signal).
final class ChildProcess {
    let pid: pid_t
    let killAfterNs: UInt64
    private var exitStatus: Int32?
    private var stopRequestsActedOn = 0
    private var killAt: UInt64?
    private var killed = false
    /// The signal that started the grace period.
    private var stopSignal = SIGTERM

    /// The executable that `arguments[0]` names, looked up in PATH like a shell does; refuses what
    /// cannot be run, so that this happens before anything is attached.
    static func resolve(_ arguments: [String]) throws -> String {
        guard let name = arguments.first, !name.isEmpty else {
            throw UserError("no command after --: give the command to profile, or drop the --")
        }
        if name.contains("/") {
            guard access(name, X_OK) == 0, !isDirectory(name) else {
                throw UserError("cannot run '\(name)': \(isDirectory(name) ? "it is a directory" : String(cString: strerror(errno))); give an executable")
            }
            return name
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        guard let found = path.split(separator: ":").map({ "\($0)/\(name)" })
            .first(where: { access($0, X_OK) == 0 && !isDirectory($0) }) else {
            throw UserError("cannot run '\(name)': not found in PATH; give the command's full path")
        }
        return found
    }

    private static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    init(executable: String, arguments: [String], killAfterNs: UInt64) throws {
        self.killAfterNs = killAfterNs
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The command starts with no signal blocked and lockscope's stop signals at their defaults.
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for signal in StopSignal.handled + [SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, nil, &attributes, argv, environ)
        guard result == 0 else {
            throw UserError("cannot run '\(arguments[0])': \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    /// Whether the command has exited (reaps it when it has).
    var hasExited: Bool {
        if exitStatus != nil { return true }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid else { return false }
        // Like a shell: the exit code, or 128 + the signal that ended it.
        let signal = status & 0x7f
        exitStatus = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        return true
    }

    /// Acts on stop signals that arrived since the last call: the first is passed on (unless the
    /// terminal already sent it to the command) and starts the grace period; a second, or the end of
    /// the grace period, kills the command.
    func supervise() {
        guard !hasExited else { return }
        let requests = StopSignal.requests
        if requests > stopRequestsActedOn {
            if stopRequestsActedOn == 0, killAt == nil {
                stop(with: StopSignal.signal, send: !StopSignal.fromTerminal)
            } else {
                forceKill(reason: "another stop signal arrived while it was being stopped")
            }
            stopRequestsActedOn = requests
        }
        if let killAt, !killed, monotonicNs() >= killAt {
            forceKill(reason: "it did not exit within \(Units.duration(killAfterNs)) of \(signalName(stopSignal))")
        }
    }

    /// Asks the command to stop (when `send`: it may have the signal from the terminal already) and
    /// starts the grace period after which it is killed.
    func stop(with signal: Int32 = SIGTERM, send: Bool = true) {
        guard killAt == nil, !hasExited else { return }
        stopSignal = signal
        if send { kill(pid, signal) }
        killAt = monotonicNs() + killAfterNs
    }

    /// Waits for the command to exit, still acting on stop signals; returns its status as a shell would.
    func waitForExit() -> Int32 {
        while !hasExited {
            supervise()
            usleep(20_000)
        }
        return exitStatus ?? 0
    }

    private func forceKill(reason: String) {
        guard !killed else { return }
        killed = true
        kill(pid, SIGKILL)
        FileHandle.standardError.write(Data("lockscope: killed the command (pid \(pid)): \(reason)\n".utf8))
    }

    private func signalName(_ signal: Int32) -> String {
        [SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGHUP: "SIGHUP", SIGQUIT: "SIGQUIT"][signal] ?? "signal \(signal)"
    }
}
