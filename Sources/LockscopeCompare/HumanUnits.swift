import Foundation
import LockscopeCore

/// Formats and parses metric values in human units: `850 ns`, `12.3 us`, `2.10 ms/s`, `48.3/s`.
public enum HumanUnits {
    /// A value of `quantity` with three significant digits and its unit.
    public static func format(_ value: Double, _ quantity: Metric.Quantity) -> String {
        switch quantity {
        case .latency: duration(value)
        case .waitPerSecond: duration(value) + "/s"
        case .perSecond: rate(value)
        }
    }

    /// A signed difference: `+1.98 ms`, `-12.0/s`, `0 ns`.
    public static func formatDelta(_ delta: Double, _ quantity: Metric.Quantity) -> String {
        let magnitude = format(abs(delta), quantity)
        if delta > 0 { return "+" + magnitude }
        if delta < 0 { return "-" + magnitude }
        return magnitude
    }

    /// A relative change: `+1650%`, `-35%`, `+4.2%`, `0%`, and from +10000% on the factor, `×12471`;
    /// without its sign when `signed` is false.
    public static func formatPercent(_ percent: Double, signed: Bool = true) -> String {
        if percent >= 10_000 { return String(format: "×%.0f", 1 + percent / 100) }
        let sign = !signed ? "" : percent > 0 ? "+" : percent < 0 ? "-" : ""
        let magnitude = abs(percent)
        if magnitude == 0 { return "0%" }
        return sign + (magnitude < 10 ? String(format: "%.1f%%", magnitude) : String(format: "%.0f%%", magnitude))
    }

    /// Nanoseconds as the rest of the CLI writes them (`Units.duration`): `850 ns`, `4.10 us`, `2.10 ms`.
    static func duration(_ nanoseconds: Double) -> String {
        Units.duration(roundedFrom: nanoseconds)
    }

    /// Events per second: `0.50/s`, `48.3/s`, `1.21k/s`.
    static func rate(_ perSecond: Double) -> String {
        Units.rate(perSecond)
    }

    /// Parses a limit value for `metric`: a duration for latency metrics (`50us`, `2ms`, `1.5s`, bare
    /// numbers are ns), a duration per second for `total` (`1ms` or `1ms/s`), a number per second for
    /// `rate` (`10` or `10/s`). Returns the value in the metric's unit.
    public static func parseValue(_ text: String, for metric: Metric) -> Double? {
        var text = text.trimmingCharacters(in: .whitespaces)
        if metric.quantity != .latency, text.hasSuffix("/s") { text.removeLast(2) }
        if metric.quantity == .perSecond { return nonNegative(Double(text)) }
        return Units.parseDuration(text, defaultUnit: 1).map { Double($0) }
    }

    /// Parses a percentage: `20` or `20%`.
    public static func parsePercent(_ text: String) -> Double? {
        var text = text.trimmingCharacters(in: .whitespaces)
        if text.hasSuffix("%") { text.removeLast() }
        return nonNegative(Double(text))
    }

    /// How a value for `metric` is written, for error messages.
    static func valueSyntax(for metric: Metric) -> String {
        switch metric.quantity {
        case .latency: "a duration like 50us, 2ms or 1.5s (a bare number is ns)"
        case .waitPerSecond: "a wait per second like 1ms or 1ms/s (a bare number is ns/s)"
        case .perSecond: "a number per second like 10 or 10/s"
        }
    }

    private static func nonNegative(_ value: Double?) -> Double? {
        guard let value, value.isFinite, value >= 0 else { return nil }
        return value
    }
}
