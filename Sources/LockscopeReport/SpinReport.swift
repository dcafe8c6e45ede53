import LockscopeCore

/// The report's lines about sampled on-CPU time (`record --spin-hz`): the sampler's counts in the
/// header, and each lock's waiting and spinning side by side.
extension SpinProfile {
    /// The spinning to show beside a lock's waits: outside traced waits, or all of it in profiles written
    /// before the two were told apart.
    var besideWaits: SampledTime { outsideWaits ?? time }
}

extension ReportRenderer {
    /// `on-CPU samples: ...` and the sampler's losses, one per line; empty when sampling was off.
    func samplingHeader() -> String {
        guard let samples = profile.cpuSamples else { return "" }
        let counters = samples.counters
        let spinning = samples.samples(.spinFunction) + samples.samples(.pause)
        var out = "on-CPU samples at \(samples.hz) Hz: \(counters.samples) (\(counters.idle) idle, \(counters.user) user, "
            + "\(counters.kernel) kernel)\n  \(spinning) spinning, \(samples.unattributedSpin) of them on no known lock\n"
        if counters.filtered > 0 { out += "  \(counters.filtered) of other tasks left out (--pid, --container)\n" }
        let losses: [(String, UInt64, String)] = [
            ("map_full", counters.mapFull, "samples lost: the kernel's sample map was full"),
            ("stack_failed", counters.stackFailed, "kernel samples without a stack (not classified)"),
            ("text_unreadable", counters.textUnreadable, "instruction unreadable (not checked for PAUSE)"),
            ("syscall_unlinked", counters.syscallUnlinked, "in a mount syscall, kept without it (table full)"),
        ]
        // Each fits 80 columns with a count of up to 20 digits.
        for (name, count, meaning) in losses where count > 0 { out += "  \(name) \(count): \(meaning)\n" }
        return out
    }

    /// `namespace_sem: 402 waits, 691 ms waiting; ~120 ms ± 12 ms spinning on CPU (...)` for every lock
    /// with spin samples, most spinning first; empty when there is none. The spin beside the waits is the
    /// spin outside traced waits, which the waiting time does not contain; the spin inside waits (already
    /// in the waiting time) is on the detail line, so that nothing is counted twice side by side.
    func spinSection() -> String {
        let spinning = profile.locks.compactMap { lock in lock.spin.map { (lock, $0) } }
            .sorted { ($0.1.besideWaits.samples, $1.0.name) > ($1.1.besideWaits.samples, $0.0.name) }
        guard !spinning.isEmpty else { return "" }
        var out = "waiting, and spinning outside waits (samples x period, 95% interval):\n"
        for (lock, spin) in spinning.prefix(options.top > 0 ? options.top : spinning.count) {
            out += "  " + ReportRenderer.waitAndSpin(lock, spin) + "\n    " + ReportRenderer.spinDetail(spin) + "\n"
            out += "    " + ReportRenderer.insideWaitsDetail(spin) + "\n"
        }
        return out
    }

    /// With `report --by cpu|socket|container`: the lock's spin samples under each key, after its waits'
    /// table; empty for other dimensions and locks without spin samples.
    func spinBreakdown(_ lock: LockProfile, _ dimension: ReportDimension) -> String {
        guard let spin = lock.spin else { return "" }
        let entries: [KeyedSamples]
        switch dimension {
        case .cpu: entries = spin.byCpu
        case .socket: entries = spin.bySocket
        case .container: entries = spin.byContainer.map { KeyedSamples(key: ContainerName.short($0.key), samples: $0.samples) }
        default: return ""
        }
        let title = "\(shown(lock.name)) spin by \(dimension.rawValue) (inside and outside waits)"
        guard !entries.isEmpty else { return "\n\(title):\n  no \(dimension.rawValue) breakdown of the samples\n" }
        var rows = [["key", "samples", "~cpu time", "share"]]
        for entry in entries.prefix(options.breakdownRows) {
            rows.append([shown(entry.key), String(entry.samples), Units.duration(entry.samples &* spin.periodNs),
                         percent(entry.samples, of: spin.time.samples)])
        }
        var out = "\n\(title):\n" + TextTable.render(rows, rightAligned: 1..<4, indent: 2)
        if entries.count > options.breakdownRows {
            let rest = entries.dropFirst(options.breakdownRows).reduce(UInt64(0)) { $0 + $1.samples }
            out += "  ... \(entries.count - options.breakdownRows) more, \(rest) samples (\(percent(rest, of: spin.time.samples)))\n"
        }
        return out
    }

    /// One lock's line: its waits, then the estimate of its spinning outside them.
    static func waitAndSpin(_ lock: LockProfile, _ spin: SpinProfile) -> String {
        let waits = "\(shown(lock.name)): \(Units.count(lock.stats.contentions, "wait")), "
            + "\(Units.duration(lock.stats.totalWaitNs)) waiting"
        return "\(waits); ~\(estimate(spin.besideWaits)) spinning on CPU"
    }

    /// `120 ms ± 12 ms`; below 100 samples the (exact Poisson) interval is lopsided: shown as its bounds.
    static func estimate(_ time: SampledTime) -> String {
        time.samples >= 100 ? "\(Units.duration(time.estimatedNs)) ± \(Units.duration(time.halfWidthNs))"
            : "\(Units.duration(time.estimatedNs)) (95%: \(Units.duration(time.ciLowNs)) to \(Units.duration(time.ciHighNs)))"
    }

    /// Where the spin estimate comes from: its samples by class.
    static func spinDetail(_ spin: SpinProfile) -> String {
        "\(Units.count(spin.time.samples, "sample")): \(spin.spinFunctionSamples) in spin functions, \(spin.pauseSamples) at PAUSE"
    }

    /// The samples inside traced waits (their time is in the waiting time already), or that the profile
    /// does not tell them apart.
    static func insideWaitsDetail(_ spin: SpinProfile) -> String {
        guard let inside = spin.insideWaits else { return "(this profile does not tell spin inside waits apart)" }
        return "\(inside.samples) of them inside traced waits (~\(Units.duration(inside.estimatedNs)), already in the waiting time)"
    }
}
