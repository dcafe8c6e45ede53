import ArgumentParser
import Foundation
import LockscopeCore
import LockscopeKernel
import LockscopeReport

extension LiveSort: ExpressibleByArgument {}

/// `lockscope top`: lock contention second by second, live, while a rollout runs.
struct TopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Watch lock contention live: each second's heaviest locks, waiting containers, mount syscalls and drops.",
        discussion: """
            Records like `lockscope record` (root needed) and redraws every second. Keys: w sorts by wait, c by \
            contentions, m by the longest wait, q quits (Ctrl-C too). When standard output is not a terminal, \
            prints one block per second instead. See docs/cli.md.
            """)

    @Option(name: .shortAndLong, parsing: .unconditional, help: "Stop after this long (e.g. 30, 30s, 2m).",
            transform: RecordArgument.positiveDuration)
    var duration: UInt64?

    @Option(help: LockChoice.help, transform: RecordArgument.locks)
    var locks = LockChoice.mount

    @Option(parsing: .unconditional, help: "Lock and container rows at most.", transform: TopCommand.rowCount)
    var rows = 10

    @Option(help: "The order of the locks at the start: wait, contentions or max.")
    var sort: LiveSort = .wait

    static func rowCount(_ text: String) throws -> Int {
        guard let rows = Int(text), rows > 0 else { throw ValidationError("give a number of rows from 1") }
        return rows
    }

    func run() throws {
        // The same lock selection, kernel filters and refusals as `record --locks`; no user stacks (top
        // shows no stacks).
        let plan = try RecordPlan(command: try RecordCommand.parse(["--locks", locks.text, "--user-stacks", "none"]))
        try Privileges.current().requireForRecording()
        let recorder = try Recorder(options: plan.options)
        StopSignal.install()
        try recorder.attach()
        let terminal = RawTerminal()
        FileHandle.standardError.write(Data(("lockscope: attached (\(plan.describe)); refreshing every second"
            + (duration.map { " for \(Units.duration($0))" } ?? "") + (terminal == nil ? "" : ", q to quit") + "\n").utf8))
        var screen = TopScreen(hostname: recorder.kernel.hostname, sort: sort, rows: rows, terminal: terminal)
        // The recorder detaches its programs when it goes away: `top` keeps no profile, so it does not
        // build one on the way out (`finish()` would, for seconds after a busy recording).
        try terminal?.enter()
        defer { terminal?.restore() }
        let deadline = duration.map { monotonicNs() + $0 }
        recorder.run(shouldStop: {
            if StopSignal.requested || screen.quit { return true }
            screen.readKeys()
            if let deadline, monotonicNs() >= deadline { return true }
            return screen.quit
        }, status: { status in
            screen.show(LiveSample(profile: recorder.snapshot(), elapsedNs: status.elapsedNs))
        })
    }
}

/// What `top` shows and how: the last two samples, the sort, and where the lines go.
struct TopScreen {
    let hostname: String
    var sort: LiveSort
    let rows: Int
    let terminal: RawTerminal?
    private(set) var quit = false
    private var previous: LiveSample?
    private var window: LiveWindow?

    init(hostname: String, sort: LiveSort, rows: Int, terminal: RawTerminal?) {
        self.hostname = hostname
        self.sort = sort
        self.rows = rows
        self.terminal = terminal
    }


    /// A new second: the window since the last sample, drawn.
    mutating func show(_ sample: LiveSample) {
        window = LiveWindow(from: previous, to: sample)
        previous = sample
        draw()
    }

    /// Acts on the keys pressed since the last call: a sort key redraws at once.
    mutating func readKeys() {
        guard let terminal else { return }
        while let key = terminal.readKey() {
            if key == "q" || key == "Q" {
                quit = true
            } else if let sort = LiveSort(key: Character(key.lowercased())), sort != self.sort {
                self.sort = sort
                draw()
            }
        }
    }

    private func draw() {
        guard let window else { return }
        let lines = LiveView(window: window, sort: sort, hostname: hostname, rows: rows, interactive: terminal != nil).render()
        if let terminal {
            terminal.draw(lines)
        } else {
            // One block a second, a blank line after each.
            FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n\n").utf8))
        }
    }
}
