import LockscopeCore

/// The report's lines about sampled on-CPU time (`record --spin-hz`): the sampler's counts in the
/// header, and each lock's waiting and spinning side by side.
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
        ]
        // Each fits 80 columns with a count of up to 20 digits.
        for (name, count, meaning) in losses where count > 0 { out += "  \(name) \(count): \(meaning)\n" }
        return out
    }

    /// `namespace_sem: 402 waits, 691 ms waiting; ~120 ms ± 12 ms spinning on CPU (...)` for every lock
    /// with spin samples, most spinning first; empty when there is none.
    func spinSection() -> String {
        let spinning = profile.locks.compactMap { lock in lock.spin.map { (lock, $0) } }
            .sorted { ($0.1.time.samples, $1.0.name) > ($1.1.time.samples, $0.0.name) }
        guard !spinning.isEmpty else { return "" }
        var out = "waiting and spinning (spin: samples x period, 95% interval):\n"
        for (lock, spin) in spinning.prefix(options.top > 0 ? options.top : spinning.count) {
            out += "  " + ReportRenderer.waitAndSpin(lock, spin) + "\n    " + ReportRenderer.spinDetail(spin) + "\n"
        }
        return out
    }

    /// One lock's line: its waits, then its spin estimate.
    static func waitAndSpin(_ lock: LockProfile, _ spin: SpinProfile) -> String {
        let waits = "\(shown(lock.name)): \(Units.count(lock.stats.contentions, "wait")), "
            + "\(Units.duration(lock.stats.totalWaitNs)) waiting"
        // Below 100 samples the (exact Poisson) interval is lopsided: shown as its bounds rather than ±.
        let interval = spin.time.samples >= 100 ? "± \(Units.duration(spin.time.halfWidthNs))"
            : "(95%: \(Units.duration(spin.time.ciLowNs)) to \(Units.duration(spin.time.ciHighNs)))"
        return "\(waits); ~\(Units.duration(spin.time.estimatedNs)) \(interval) spinning on CPU"
    }

    /// Where the spin estimate comes from: its samples by class.
    static func spinDetail(_ spin: SpinProfile) -> String {
        "\(Units.count(spin.time.samples, "sample")): \(spin.spinFunctionSamples) in spin functions, \(spin.pauseSamples) at PAUSE"
    }
}
