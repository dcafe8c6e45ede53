import LockscopeCore

/// The report's sections about what a mount storm cost: who suffered (`--by victim`) and how long each
/// container's start waited (`--mounts`). Both fit 80 columns; lists of locks and holders wrap.
extension ReportRenderer {
    /// Locks and holders listed per victim before the rest are counted.
    static let detailsPerVictim = 3

    /// The victims, most wait first, `top` of them: a row each with its waits, then its locks and the
    /// processes it waited behind.
    func victimsSection() -> String {
        guard let victims = profile.victims else {
            return "victims: not recorded in this profile (it has no mount syscall accounting, or predates it)\n"
        }
        guard !victims.isEmpty else { return "victims: none (every process that waited issued mount syscalls)\n" }
        let ordered = victims.sorted { ($0.totalWaitNs, $1.process) > ($1.totalWaitNs, $0.process) }
        let listed = options.top > 0 ? Array(ordered.prefix(options.top)) : ordered
        let total = victims.map(\.totalWaitNs).saturatedSum()
        let processes = victims.count == 1 ? "1 process" : "\(victims.count) processes"
        var out = "victims: \(processes) waited but issued no mount syscall, \(Units.duration(total)) in all\n"
        var rows = [["process", "container", "waits", "total", "max"]]
        for victim in listed {
            rows.append([victim.process, ContainerName.short(victim.container), String(victim.contentions),
                         Units.duration(victim.totalWaitNs), Units.duration(victim.maxWaitNs)])
        }
        let lines = TextTable.render(rows, rightAligned: 2..<5, indent: 2).split(separator: "\n")
        out += lines[0] + "\n"
        for (line, victim) in zip(lines.dropFirst(), listed) {
            out += line + "\n"
            let locks = victim.byLock.map { "\(shown($0.lock)) \(Units.duration($0.totalWaitNs)) (\(percent($0.totalWaitNs, of: victim.totalWaitNs)))" }
            out += detailLines(locks, prefix: "    locks: ")
            if victim.holders.isEmpty {
                out += "    behind: owner unknown (only mutex and rwsem-writer owners are recorded)\n"
            } else {
                let holders = victim.holders.map { holder in
                    "\(shown(holder.process)) in \(shown(ContainerName.short(holder.container))) \(Units.duration(holder.totalWaitNs))"
                }
                out += detailLines(holders, prefix: "    behind: ")
            }
        }
        if listed.count < ordered.count {
            let rest = ordered.dropFirst(listed.count)
            let more = rest.count == 1 ? "1 more process" : "\(rest.count) more processes"
            out += "  ... \(more), \(Units.duration(rest.map(\.totalWaitNs).saturatedSum())) (--top 0 lists all)\n"
        }
        return out
    }

    /// The first `detailsPerVictim` items, comma-separated and wrapped to 80 columns, then how many more.
    private func detailLines(_ items: [String], prefix: String) -> String {
        var words = Array(items.prefix(Self.detailsPerVictim))
        if items.count > words.count { words.append("and \(items.count - words.count) more") }
        return TerminalText.wrap(commaSeparated(words), prefix: prefix).joined(separator: "\n") + "\n"
    }

    /// The containers whose start was recorded, most lock wait first, `top` of them: set-up time, time
    /// in mount syscalls, the lock wait inside them, its share of the set-up, and the lock waited on most.
    func startsSection() -> String {
        let starts = (profile.mounts?.byContainer ?? []).compactMap { mounts in mounts.start.map { (mounts, $0) } }
        guard !starts.isEmpty else { return "" }
        let ordered = starts.sorted { a, b in
            a.1.lockWaitNs != b.1.lockWaitNs ? a.1.lockWaitNs > b.1.lockWaitNs : a.0.id < b.0.id
        }
        let listed = options.top > 0 ? Array(ordered.prefix(options.top)) : ordered
        let wait = starts.map(\.1.lockWaitNs).saturatedSum()
        var out = "\ncontainer starts: \(starts.count), \(Units.duration(wait)) of lock wait in their mount syscalls; most first\n"
        var rows = [["container", "pod", "setup", "in mounts", "lock wait", "share", "top lock"]]
        for (mounts, start) in listed {
            rows.append([ContainerName.short(mounts.id), mounts.pod.map(ContainerName.short) ?? "-",
                         start.setupNs.map(Units.duration) ?? "-", Units.duration(start.inSyscallsNs),
                         Units.duration(start.lockWaitNs), start.waitShare.map { String(format: "%.1f%%", $0 * 100) } ?? "-",
                         start.byLock.first?.lock ?? "-"])
        }
        out += TextTable.render(rows, rightAligned: 2..<6, indent: 2)
        if listed.count < ordered.count {
            out += "  ... \(Units.count(ordered.count - listed.count, "more container")) (--top 0 lists all)\n"
        }
        if starts.contains(where: { $0.1.setupNs == nil }) {
            out += "  setup - : the root filesystem was not mounted during the recording\n"
        }
        return out
    }
}
