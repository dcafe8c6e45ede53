import Foundation

/// Parsing and printing of durations and sizes, the same everywhere in the CLI.
public enum Units {
    /// `1 lock`, `3 locks`: a count and its noun, plural unless the count is one.
    public static func count<Number: BinaryInteger>(_ number: Number, _ noun: String) -> String {
        "\(number) \(noun)\(number == 1 ? "" : "s")"
    }

    /// Parses `30`, `30s`, `500ms`, `250us`, `100ns`, `2m`, `1h`, `1.5s`. A bare number is in
    /// `defaultUnit` nanoseconds (seconds unless told). Nil when malformed or negative.
    public static func parseDuration(_ text: String, defaultUnit: UInt64 = 1_000_000_000) -> UInt64? {
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            if suffix == "s", number.hasSuffix("m") || number.hasSuffix("u") || number.hasSuffix("n") { continue }
            return scaled(String(number), scale)
        }
        return scaled(trimmed, Double(defaultUnit))
    }

    private static func scaled(_ number: String, _ scale: Double) -> UInt64? {
        guard let value = Double(number), value >= 0, value.isFinite, value * scale < 1.8e19 else { return nil }
        return UInt64((value * scale).rounded())
    }

    /// Parses `8M`, `256K`, `1G`, `4096` into bytes.
    public static func parseSize(_ text: String) -> Int? {
        let scales: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        var digits = Substring(text.trimmingCharacters(in: .whitespaces).uppercased())
        if digits.hasSuffix("B") { digits = digits.dropLast() }
        var scale = 1
        if let last = digits.last, let unit = scales[last] {
            scale = unit
            digits = digits.dropLast()
        }
        guard let value = Int(digits), value >= 0, value <= Int.max / scale else { return nil }
        return value * scale
    }

    /// A duration for people: `812 ns`, `4.21 us`, `12.3 ms`, `2.50 s`, three significant digits.
    public static func duration(_ ns: UInt64) -> String {
        if ns < 1_000 { return "\(ns) ns" }
        // Pick the unit after rounding, so 999.6 us prints as 1.00 ms, not 1000 us: from 999.5 on,
        // a value rounds to 1000 (formatted once: a diff of a million locks formats millions of them).
        let value = Double(ns)
        if value < 999.5e3 { return significant(value / 1e3) + " us" }
        if value < 999.5e6 { return significant(value / 1e6) + " ms" }
        return significant(value / 1e9) + " s"
    }

    /// The same for a duration that may be fractional or beyond 2^64 ns (a wait per second of a very
    /// short recording): rounded to whole nanoseconds, negative and NaN as 0.
    public static func duration(roundedFrom ns: Double) -> String {
        ns.rounded() >= 18_446_744_073_709_551_616.0 ? significant(ns / 1e9) + " s" : duration(UInt64(saturating: ns))
    }

    private static func significant(_ value: Double) -> String {
        let decimals = value >= 100 ? 0 : (value >= 10 ? 1 : 2)
        return String(format: "%.\(decimals)f", value)
    }

    /// Events per second: `0/s`, `0.50/s`, `48.3/s`, `1.21k/s`, `3.40M/s`: three significant digits.
    public static func rate(_ perSecond: Double) -> String {
        if !(perSecond > 0) { return "0/s" }
        if perSecond < 999.5 { return threeDigits(perSecond) + "/s" }
        // The largest multiple that leaves at least 1 once rounded to three significant digits.
        let (divisor, suffix) = perSecond >= 999.5e6 ? (1e9, "G") : perSecond >= 999.5e3 ? (1e6, "M") : (1e3, "k")
        return threeDigits(perSecond / divisor) + suffix + "/s"
    }

    /// Three significant digits, without exponent: `4.10`, `12.3`, `120`, `1500`.
    private static func threeDigits(_ value: Double) -> String {
        if value < 9.995 { return String(format: "%.2f", value) }
        if value < 99.95 { return String(format: "%.1f", value) }
        return String(format: "%.0f", value)
    }

    /// `dropped 12 events (0.3%)`, then every loss counter that is not zero, by its name in the profile, with
    /// what it means or what to do: on one line for the end-of-recording warning, or one counter a line
    /// (indented, for the report's header, which keeps to 80 columns).
    public static func lossSummary(_ profile: Profile, oneLine: Bool = true) -> String {
        let dropped = "dropped \(profile.dropped) events (\(String(format: "%.1f", profile.dropRatio * 100))%)"
        let counters = profile.drops.nonZero.map { counter in
            "\(counter.key.profileKey) \(counter.value)" + (counter.key.advice.map { oneLine ? " (\($0))" : ": \($0)" } ?? "")
        }
        if counters.isEmpty { return dropped }
        return oneLine ? dropped + "; " + counters.joined(separator: ", ")
            : ([dropped] + counters.map { "  " + $0 }).joined(separator: "\n")
    }
}
