import Foundation
import LockscopeCore

/// The terminal while `lockscope top` draws on it: keys arrive one at a time, unechoed, and reading
/// never blocks; the screen is the terminal's alternate one, so the shell's comes back untouched.
/// `restore()` puts everything back; `top` calls it on every way out (a key, the duration, a stop
/// signal, an error). Ctrl-C still sends SIGINT (which stops `top` like `q`); Ctrl-Z is ignored
/// while the terminal is raw, so the shell never gets it back half-configured.
final class RawTerminal {
    private let input: Int32
    private let output: Int32
    private var saved = termios()
    private var savedStop: sighandler_t?
    private var active = false

    /// The terminal on standard input and output; nil when either is not a terminal.
    init?(input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO) {
        guard isatty(input) != 0, isatty(output) != 0 else { return nil }
        self.input = input
        self.output = output
    }

    /// Raw input, the alternate screen, no cursor.
    func enter() throws {
        guard tcgetattr(input, &saved) == 0 else {
            throw UserError("cannot read the terminal's settings: \(String(cString: strerror(errno)))")
        }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        withUnsafeMutableBytes(of: &raw.c_cc) { characters in
            characters[Int(VMIN)] = 0
            characters[Int(VTIME)] = 0
        }
        savedStop = signal(SIGTSTP, SIG_IGN)
        guard tcsetattr(input, TCSANOW, &raw) == 0 else {
            throw UserError("cannot set the terminal to raw mode: \(String(cString: strerror(errno)))")
        }
        active = true
        write("\u{1B}[?1049h\u{1B}[?25l")
    }

    /// The settings and screen from before `enter()`; does nothing the second time.
    func restore() {
        guard active else { return }
        active = false
        write("\u{1B}[?25h\u{1B}[?1049l")
        tcsetattr(input, TCSAFLUSH, &saved)
        if let savedStop { signal(SIGTSTP, savedStop) }
    }

    /// The next key pressed, if any (never waits).
    func readKey() -> Character? {
        var byte: UInt8 = 0
        guard read(input, &byte, 1) == 1 else { return nil }
        return Character(Unicode.Scalar(byte))
    }

    /// The screen's rows and columns (24 × 80 when the terminal does not say).
    var size: (rows: Int, columns: Int) {
        var window = winsize()
        guard ioctl(output, UInt(TIOCGWINSZ), &window) == 0, window.ws_row > 0, window.ws_col > 0 else { return (24, 80) }
        return (Int(window.ws_row), Int(window.ws_col))
    }

    /// Replaces the screen with `lines`, each cut to the width, as many as fit.
    func draw(_ lines: [String]) {
        let (rows, columns) = size
        let shown = lines.prefix(rows).map { String($0.prefix(columns)) }
        write("\u{1B}[H\u{1B}[2J" + shown.joined(separator: "\r\n"))
    }

    private func write(_ text: String) {
        FileHandle(fileDescriptor: output, closeOnDealloc: false).write(Data(text.utf8))
    }
}
