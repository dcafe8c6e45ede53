import Foundation
import LockscopeCore

/// How to order locks in a report.
public enum ReportSort: String, CaseIterable, Sendable {
    case total, max, count, p99
}

/// Output formats of `lockscope report`.
public enum ReportFormat: String, CaseIterable, Sendable {
    case table, json, csv
}

/// The "where" and "who" breakdowns a report can add under each lock; `victim`: the processes that
/// waited without mounting anything, and `thread`: every thread's wait (perf lock contention -t), once
/// for the whole profile.
public enum ReportDimension: String, CaseIterable, Sendable {
    /// `host`: each host's share, in a profile made by `lockscope merge`.
    case cpu, socket, node, llc, container, process, host, handoff, owner, victim, thread

    /// Whether it breaks each top lock down (`victim` and `thread` span every lock).
    public var isPerLock: Bool { self != .victim && self != .thread }
}

public struct ReportOptions: Sendable {
    /// Locks shown, heaviest first; 0 shows every lock. Also caps the victims and container starts shown.
    public var top: Int
    public var sort: ReportSort
    public var format: ReportFormat
    public var by: [ReportDimension]
    public var mounts: Bool
    /// Rows per breakdown table (CPUs beyond it are summarised).
    public var breakdownRows: Int
    /// Call paths shown per lock in the table.
    public var stacksPerLock: Int
    /// Each top lock's instances (addresses), as perf lock contention -l lists them.
    public var instances: Bool

    public init(top: Int = 10, sort: ReportSort = .total, format: ReportFormat = .table, by: [ReportDimension] = [],
                mounts: Bool = false, breakdownRows: Int = 8, stacksPerLock: Int = 2, instances: Bool = false) {
        self.top = top
        self.sort = sort
        self.format = format
        self.by = by
        self.mounts = mounts
        self.breakdownRows = breakdownRows
        self.stacksPerLock = stacksPerLock
        self.instances = instances
    }
}

/// Renders a profile as a table (like `perf lock contention`, plus a header), JSON or CSV.
/// Tables fit an 80-column terminal; every string from the profile in them has its control characters
/// escaped (`TerminalText`), while JSON and CSV carry them escaped as their formats do.
public struct ReportRenderer {
    public let profile: Profile
    public let options: ReportOptions

    public init(profile: Profile, options: ReportOptions) {
        self.profile = profile
        self.options = options
    }

    /// The locks shown, sorted and cut to `top` (all of them when `top` is 0).
    public var selectedLocks: [LockProfile] {
        let sorted = profile.locks.sorted { a, b in
            let (x, y): (UInt64, UInt64)
            switch options.sort {
            case .total: (x, y) = (a.stats.totalWaitNs, b.stats.totalWaitNs)
            case .max: (x, y) = (a.stats.maxWaitNs, b.stats.maxWaitNs)
            case .count: (x, y) = (a.stats.contentions, b.stats.contentions)
            case .p99: (x, y) = (a.stats.p99WaitNs, b.stats.p99WaitNs)
            }
            return x != y ? x > y : a.name < b.name
        }
        return options.top > 0 ? Array(sorted.prefix(options.top)) : sorted
    }

    /// For CSV and JSON, whose rows say nothing of the locks left out: one line for stderr when `top`
    /// cut some (`lockscope: 10 of 14 locks; --top 0 for all`); nil when every lock is in the output, or
    /// for the table.
    public var cutNote: String? {
        guard options.format != .table, options.top > 0, profile.locks.count > options.top else { return nil }
        return "lockscope: \(options.top) of \(profile.locks.count) locks; --top 0 for all"
    }

    public func render() -> String {
        switch options.format {
        case .table: return table()
        case .json: return json()
        case .csv: return csv()
        }
    }

    // MARK: - Table

    private func table() -> String {
        var out = header()
        let locks = selectedLocks
        if locks.isEmpty {
            out += "\nno lock contention recorded\n"
        } else {
            out += "\n" + lockTable(locks)
            let spin = spinSection()
            if !spin.isEmpty { out += "\n" + spin }
            for lock in locks.prefix(3) where options.stacksPerLock > 0 && !lock.stacks.isEmpty {
                out += "\n" + callPaths(lock)
                if let issuers = issuerPaths(lock) { out += issuers }
            }
            for dimension in options.by where dimension.isPerLock {
                for lock in locks.prefix(3) { out += "\n" + breakdown(lock, dimension) + spinBreakdown(lock, dimension) }
            }
            if options.instances {
                for lock in locks { out += "\n" + instancesSection(lock) }
            }
        }
        if options.by.contains(.victim) { out += "\n" + victimsSection() }
        if options.by.contains(.thread) { out += "\n" + threadsSection() }
        if options.mounts { out += "\n" + mountsSection() + startsSection() }
        if let timeline = profile.timeline, let chart = TimelineChart(timeline).render() { out += "\n" + chart }
        return out
    }

    func header() -> String {
        var out = "lockscope report: host \(shown(profile.hostname)), kernel \(shown(profile.kernel))\n"
        out += "recorded \(shown(profile.startedAt)) for \(Units.duration(profile.durationNs)), \(profile.events) events\n"
        out += Units.lossSummary(profile, oneLine: false) + "\n"
        if let topology = profile.topology { out += "topology: \(topology.summary())\n" }
        out += samplingHeader()
        return out
    }

    private func lockTable(_ locks: [LockProfile]) -> String {
        var rows = [["contended", "total", "max", "avg", "p99", "kind", "lock"]]
        for lock in locks {
            rows.append([String(lock.stats.contentions), Units.duration(lock.stats.totalWaitNs),
                         Units.duration(lock.stats.maxWaitNs), Units.duration(lock.stats.meanWaitNs),
                         Units.duration(lock.stats.p99WaitNs), lock.kind.rawValue, lock.name])
        }
        return TextTable.render(rows, rightAligned: 0..<5)
    }

    /// How the name was obtained, for the call-path heading.
    private func identityNote(_ lock: LockProfile) -> String {
        switch lock.identity {
        case .symbol: return "named by kernel symbol"
        case .inferred: return "recognised from its call paths"
        case .caller: return lock.instances > 1 ? "named after its caller, \(lock.instances) locks" : "named after its caller"
        }
    }

    private func callPaths(_ lock: LockProfile) -> String {
        let heading = lock.name.hasPrefix(Aggregator.otherLocksName)
            ? "lock addresses past the first \(Aggregator.maxLockAddresses)" : "\(identityNote(lock)), \(shown(lock.address))"
        var out = "call paths of \(shown(lock.name)) (\(heading)):\n"
        for stack in lock.stacks.prefix(options.stacksPerLock) {
            let share = percent(stack.totalWaitNs, of: lock.stats.totalWaitNs)
            out += "  \(share) \(stack.count)x  " + condensed(stack.frames) + "\n"
        }
        return out
    }

    /// Most user call paths shown per lock, and frames shown of each.
    static let issuerPathsPerLock = 3
    static let issuerFramesShown = 6

    /// The heaviest user call paths of the lock's waiters (`record --user-stacks`: for waits inside mount
    /// syscalls, the code that asked for the mount), summed over the kernel stacks they reached it by;
    /// nil when no stack has user frames.
    private func issuerPaths(_ lock: LockProfile) -> String? {
        var byPath: [[String]: (count: UInt64, totalWaitNs: UInt64)] = [:]
        for stack in lock.stacks {
            guard let user = stack.userFrames else { continue }
            let entry = byPath[user] ?? (0, 0)
            byPath[user] = (entry.count + stack.count, entry.totalWaitNs.addingSaturated(stack.totalWaitNs))
        }
        guard !byPath.isEmpty else { return nil }
        let heaviest = byPath.sorted { ($0.value.totalWaitNs, $1.key.joined()) > ($1.value.totalWaitNs, $0.key.joined()) }
            .prefix(Self.issuerPathsPerLock)
        var out = "user call paths of \(shown(lock.name)) (the waiters' own code, innermost first):\n"
        for (frames, tally) in heaviest {
            let shownFrames = frames.prefix(Self.issuerFramesShown).map { shown(Self.shortFrame($0)) }
            let more = frames.count > Self.issuerFramesShown ? " <- ..." : ""
            out += "  \(percent(tally.totalWaitNs, of: lock.stats.totalWaitNs)) \(tally.count)x  "
                + shownFrames.joined(separator: " <- ") + more + "\n"
        }
        return out
    }

    /// A user frame cut to fit a line: a demangled Swift name's argument list goes.
    static func shortFrame(_ frame: String) -> String {
        let maxLength = 60
        guard frame.count > maxLength else { return frame }
        if !frame.hasPrefix("closure"), let open = frame.firstIndex(of: "("), frame[..<open].contains(".") {
            return String(frame[..<open]) + "(...)"
        }
        return String(frame.prefix(maxLength - 3)) + "..."
    }

    /// The caller chain without lock primitives, innermost first, cut to fit one line.
    private func condensed(_ frames: [String]) -> String {
        let primitives = frames.prefix { LockNamer.isLockPrimitive($0) }
        let callers = frames.dropFirst(primitives.count).prefix(5)
        let first = primitives.last.map { [$0] } ?? []
        return (first + callers).map(shown).joined(separator: " <- ")
    }

    private func breakdown(_ lock: LockProfile, _ dimension: ReportDimension) -> String {
        let title = "\(shown(lock.name)) by \(dimension.rawValue)"
        switch dimension {
        case .handoff:
            let rows = lock.handoffs.map { KeyedStats(key: $0.handoff.rawValue, stats: $0.stats) }
            return keyedTable(title, rows, total: lock.stats, sortByWait: false,
                              empty: "no hand-offs recorded (needs two or more contended acquisitions and a topology)")
        case .owner:
            guard let owners = lock.owners else {
                return "\(title):\n  owner unknown: \(lock.kind.rawValue) owners are not recorded (only mutexes and rwsem writers have one)\n"
            }
            var rows = [["waiter", "owner", "pid", "comm", "contended", "total wait"]]
            for owner in owners.prefix(options.breakdownRows) {
                rows.append([ContainerName.short(owner.waiterContainer), ContainerName.short(owner.ownerContainer),
                             owner.ownerPid <= 0 ? "-" : String(owner.ownerPid), owner.ownerComm,
                             String(owner.contentions), Units.duration(owner.totalWaitNs)])
            }
            return "\(title):\n" + TextTable.render(rows, rightAligned: 4..<6, indent: 2)
        default:
            let rows: [KeyedStats]
            switch dimension {
            case .cpu: rows = lock.byCpu
            case .socket: rows = lock.bySocket
            case .node: rows = lock.byNode
            case .llc: rows = lock.byLlc
            case .container: rows = lock.byContainer.map { KeyedStats(key: ContainerName.short($0.key), stats: $0.stats) }
            case .process: rows = lock.byProcess
            case .host: rows = lock.byHost ?? []
            case .handoff, .owner, .victim, .thread: rows = []
            }
            return keyedTable(title, rows, total: lock.stats, sortByWait: dimension == .cpu || dimension == .host,
                              empty: dimension == .host ? "no host breakdown: only a profile made by `lockscope merge` has one"
                                  : "no \(dimension.rawValue) breakdown in this profile")
        }
    }

    /// The lock's addresses, heaviest first (perf lock contention -l), `top` of them.
    func instancesSection(_ lock: LockProfile) -> String {
        let title = "instances of \(shown(lock.name))"
        guard let instances = lock.byAddress, !instances.isEmpty else {
            return "\(title):\n  no per-address table in this profile (recorded before lockscope kept one): \(lock.instances) addresses\n"
        }
        var rows = [["contended", "total", "max", "avg", "address", "symbol"]]
        let shownRows = options.top > 0 ? Array(instances.prefix(options.top)) : instances
        for instance in shownRows {
            let address = instance.address == InstanceStats.otherAddresses
                ? "\(instance.address) (\(instance.addresses))" : instance.address
            rows.append([String(instance.contentions), Units.duration(instance.totalWaitNs), Units.duration(instance.maxWaitNs),
                         Units.duration(instance.meanWaitNs), address, instance.symbol ?? "-"])
        }
        var out = "\(title): \(lock.instances) address\(lock.instances == 1 ? "" : "es")\n"
            + TextTable.render(rows, rightAligned: 0..<4, indent: 2)
        if instances.count > shownRows.count {
            let rest = instances.dropFirst(shownRows.count)
            out += "  ... \(rest.count) more rows, \(Units.duration(rest.map(\.totalWaitNs).saturatedSum()))\n"
        }
        return out
    }

    /// Every thread's wait across the profile's locks (perf lock contention -t), `top` of them.
    func threadsSection() -> String {
        guard let threads = profile.threads else {
            return "lock wait by thread: no per-thread table in this profile (recorded before lockscope kept one)\n"
        }
        guard !threads.isEmpty else { return "lock wait by thread: no waits\n" }
        var rows = [["contended", "total", "max", "avg", "tid", "pid", "comm"]]
        let shownRows = options.top > 0 ? Array(threads.prefix(options.top)) : threads
        for thread in shownRows {
            rows.append([String(thread.contentions), Units.duration(thread.totalWaitNs), Units.duration(thread.maxWaitNs),
                         Units.duration(thread.meanWaitNs), thread.tid.map(String.init) ?? "-",
                         thread.pid.map(String.init) ?? "-", thread.comm])
        }
        var out = "lock wait by thread:\n" + TextTable.render(rows, rightAligned: 0..<6, indent: 2)
        if threads.count > shownRows.count {
            let rest = threads.dropFirst(shownRows.count)
            out += "  ... \(rest.count) more threads, \(Units.duration(rest.map(\.totalWaitNs).saturatedSum()))\n"
        }
        return out
    }

    private func keyedTable(_ title: String, _ entries: [KeyedStats], total: WaitStats, sortByWait: Bool,
                            empty: String) -> String {
        guard !entries.isEmpty else { return "\(title):\n  \(empty)\n" }
        let ordered = sortByWait ? entries.sorted { $0.stats.totalWaitNs > $1.stats.totalWaitNs } : entries
        var rows = [["key", "contended", "total wait", "share", "p50", "p99", "max"]]
        for entry in ordered.prefix(options.breakdownRows) {
            rows.append([entry.key, String(entry.stats.contentions), Units.duration(entry.stats.totalWaitNs),
                         percent(entry.stats.totalWaitNs, of: total.totalWaitNs), Units.duration(entry.stats.p50WaitNs),
                         Units.duration(entry.stats.p99WaitNs), Units.duration(entry.stats.maxWaitNs)])
        }
        var out = "\(title):\n" + TextTable.render(rows, rightAligned: 1..<7, indent: 2)
        if ordered.count > options.breakdownRows {
            let rest = ordered.dropFirst(options.breakdownRows)
            let restWait = rest.map(\.stats.totalWaitNs).saturatedSum()
            out += "  ... \(rest.count) more, \(Units.duration(restWait)) (\(percent(restWait, of: total.totalWaitNs)))\n"
        }
        return out
    }

    private func mountsSection() -> String {
        guard let mounts = profile.mounts else {
            return "mount syscalls: none recorded\n"
        }
        var rows = [["syscall", "calls", "errors", "p50", "p99", "max", "total"]]
        for call in mounts.bySyscall {
            rows.append([call.syscall, String(call.stats.contentions), String(call.errors),
                         Units.duration(call.stats.p50WaitNs), Units.duration(call.stats.p99WaitNs),
                         Units.duration(call.stats.maxWaitNs), Units.duration(call.stats.totalWaitNs)])
        }
        var out = "mount syscalls: \(mounts.totalOps) in all\n" + TextTable.render(rows, rightAligned: 1..<7, indent: 2)
        if let unlinked = mounts.unlinked, unlinked > 0 {
            out += "  \(unlinked) syscalls and waits unlinked (no container by path): by issuer or cgroup\n"
        }
        let containers = mounts.byContainer.filter { $0.runtime != "host" }
        if !containers.isEmpty {
            let perContainer = containers.reduce(0) { $0 + Double($1.ops) } / Double(containers.count)
            let over = containers.count == 1 ? "1 container" : "\(containers.count) containers"
            out += "mount ops per container: \(String(format: "%.1f", perContainer)) (\(over))\n"
            // Profiles that say how syscalls were tied to containers show that and the pod in place of the
            // runtime; the syscalls wrap under their column.
            let attributed = mounts.byContainer.contains { $0.pod != nil || $0.attribution != nil }
            var rows = [["container"] + (attributed ? ["pod", "attributed"] : ["runtime"]) + ["ops"]]
            var calls = [["by syscall"]]
            for container in mounts.byContainer.prefix(options.breakdownRows) {
                let identity = attributed ? [container.pod.map(ContainerName.short) ?? "-", container.attribution?.rawValue ?? "cgroup"]
                    : [container.runtime]
                rows.append([ContainerName.short(container.id)] + identity + [String(container.ops)])
                calls.append(commaSeparated(container.bySyscall.map { "\(shown($0.syscall)) \($0.stats.contentions)" }))
            }
            let table = TextTable.render(rows, rightAligned: (rows[0].count - 1)..<rows[0].count, indent: 2)
            for (line, words) in zip(table.split(separator: "\n"), calls) {
                out += (words.isEmpty ? [String(line)] : TerminalText.wrap(words, prefix: line + "  ")).joined(separator: "\n") + "\n"
            }
            if mounts.byContainer.count > options.breakdownRows {
                out += "  ... \(mounts.byContainer.count - options.breakdownRows) more containers\n"
            }
        }
        return out
    }

    // MARK: - JSON and CSV

    /// One row per lock: the numbers of the table, unformatted.
    struct LockRow: Codable {
        var name: String
        var identity: LockIdentity
        var kind: LockKind
        var address: String
        var contentions: UInt64
        var totalWaitNs: UInt64
        var maxWaitNs: UInt64
        var meanWaitNs: UInt64
        var p50WaitNs: UInt64
        var p90WaitNs: UInt64
        var p99WaitNs: UInt64
        var p999WaitNs: UInt64
        var readContentions: UInt64
        var writeContentions: UInt64
        /// Sampled spinning (`record --spin-hz`): samples, estimate and its 95% interval; absent when none.
        var spin: SampledTime?
        /// Its parts outside and inside traced waits; absent when none, or not told apart in the profile.
        var spinOutsideWaits: SampledTime?
        var spinInsideWaits: SampledTime?
        /// With `--by cpu`, `socket`, `container`: the spin samples under each key (JSON only).
        var spinByCpu: [KeyedSamples]?
        var spinBySocket: [KeyedSamples]?
        var spinByContainer: [KeyedSamples]?
        /// With `--instances`: the lock's addresses, as the profile has them.
        var instances: [InstanceStats]?

        init(_ lock: LockProfile, instances: Bool = false, by: [ReportDimension] = []) {
            name = lock.name
            identity = lock.identity
            kind = lock.kind
            address = lock.address
            contentions = lock.stats.contentions
            totalWaitNs = lock.stats.totalWaitNs
            maxWaitNs = lock.stats.maxWaitNs
            meanWaitNs = lock.stats.meanWaitNs
            p50WaitNs = lock.stats.p50WaitNs
            p90WaitNs = lock.stats.p90WaitNs
            p99WaitNs = lock.stats.p99WaitNs
            p999WaitNs = lock.stats.p999WaitNs
            readContentions = lock.read.contentions
            writeContentions = lock.write.contentions
            spin = lock.spin?.time
            spinOutsideWaits = lock.spin?.outsideWaits
            spinInsideWaits = lock.spin?.insideWaits
            if let lockSpin = lock.spin {
                spinByCpu = by.contains(.cpu) ? lockSpin.byCpu : nil
                spinBySocket = by.contains(.socket) ? lockSpin.bySocket : nil
                spinByContainer = by.contains(.container) ? lockSpin.byContainer : nil
            }
            self.instances = instances ? lock.byAddress : nil
        }

        var csvFields: [String] {
            [name, identity.rawValue, kind.rawValue, address] + [contentions, totalWaitNs, maxWaitNs, meanWaitNs,
                p50WaitNs, p90WaitNs, p99WaitNs, p999WaitNs, readContentions, writeContentions].map(String.init)
                + [spin?.samples, spin?.estimatedNs, spin?.ciLowNs, spin?.ciHighNs,
                   spinOutsideWaits?.samples, spinOutsideWaits?.estimatedNs, spinInsideWaits?.samples,
                   spinInsideWaits?.estimatedNs].map { $0.map(String.init) ?? "" }
        }

        /// The lock's column is `lock`, as in `export --format csv` (JSON keeps the key `name`).
        static let csvHeader = ["lock", "identity", "kind", "address", "contentions", "total_wait_ns", "max_wait_ns",
                                "mean_wait_ns", "p50_wait_ns", "p90_wait_ns", "p99_wait_ns", "p999_wait_ns",
                                "read_contentions", "write_contentions", "spin_samples", "spin_estimated_ns",
                                "spin_ci_low_ns", "spin_ci_high_ns", "spin_outside_waits_samples",
                                "spin_outside_waits_ns", "spin_inside_waits_samples", "spin_inside_waits_ns"]
    }

    struct JSONReport: Codable {
        var hostname: String
        var kernel: String
        var startedAt: String
        var durationNs: UInt64
        var events: UInt64
        var dropped: UInt64
        /// Locks in the profile, and of them in `locks` (fewer when `--top` cut the rest).
        var locksTotal: Int
        var locksShown: Int
        var locks: [LockRow]
        var mounts: MountSummary?
        /// With `--by victim`: the profile's victims, as it has them.
        var victims: [Victim]?
        /// With `--by thread`: the profile's threads, as it has them.
        var threads: [ThreadStats]?
    }

    /// One line (`jq .` indents it), the locks encoded one at a time: `--top 0` over a million locks in
    /// one piece took several times their size in memory.
    private func json() -> String {
        let locks = selectedLocks
        let shell = JSONReport(hostname: profile.hostname, kernel: profile.kernel, startedAt: profile.startedAt,
                               durationNs: profile.durationNs, events: profile.events, dropped: profile.dropped,
                               locksTotal: profile.locks.count, locksShown: locks.count, locks: [],
                               mounts: options.mounts ? profile.mounts : nil,
                               victims: options.by.contains(.victim) ? profile.victims : nil,
                               threads: options.by.contains(.thread) ? profile.threads : nil)
        var json = Data()
        do {
            try Profile.encode(shell, with: locks.map { LockRow($0, instances: options.instances, by: options.by) }, inPlaceOf: "locks",
                               encoder: Profile.makeEncoder(pretty: false)) { json.append($0) }
        } catch {
            json = Data("{}".utf8)  // only a value JSON cannot hold fails, and the report has none
        }
        return String(decoding: json, as: UTF8.self) + "\n"
    }

    /// RFC 4180 like `export --format csv`: a header row, CRLF line ends.
    private func csv() -> String {
        ([LockRow.csvHeader] + selectedLocks.map { LockRow($0).csvFields })
            .map { $0.map(CSV.field).joined(separator: ",") + "\r\n" }.joined()
    }
}

/// Text from the profile as the table prints it: control characters escaped.
func shown(_ text: String) -> String { TerminalText.escaped(text) }

func percent(_ part: UInt64, of whole: UInt64) -> String {
    whole == 0 ? "0.0%" : String(format: "%.1f%%", Double(part) * 100 / Double(whole))
}

/// Items to wrap as words, each but the last followed by a comma.
func commaSeparated(_ items: [String]) -> [String] {
    items.enumerated().map { $0.offset < items.count - 1 ? $0.element + "," : $0.element }
}

/// RFC 4180 quoting: a field with a comma, a quote or a line break (CR, LF or both) is quoted.
enum CSV {
    static func field(_ text: String) -> String {
        text.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline })
            ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }
}

/// Plain aligned columns, two spaces apart, cells `shown` (they hold names from the profile). A column is
/// at most `maxWidth` wide: a longer cell (a long cgroup path, or a crafted name) sticks out of its row
/// rather than padding every other row to it.
enum TextTable {
    static let maxWidth = 64

    static func render(_ rows: [[String]], rightAligned: Range<Int>, indent: Int = 0) -> String {
        let rows = rows.map { $0.map(shown) }
        guard let first = rows.first else { return "" }
        var widths = [Int](repeating: 0, count: first.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = min(max(widths[index], cell.count), maxWidth) } }
        let pad = String(repeating: " ", count: indent)
        return rows.map { row in
            pad + row.enumerated().map { index, cell in
                let fill = String(repeating: " ", count: max(0, widths[index] - cell.count))
                if index == row.count - 1 && !rightAligned.contains(index) { return cell }
                return rightAligned.contains(index) ? fill + cell : cell + fill
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
