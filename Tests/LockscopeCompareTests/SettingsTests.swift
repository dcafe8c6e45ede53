import LockscopeCore
import XCTest
@testable import LockscopeCompare

final class SettingsTests: XCTestCase {
    func testDocumentedDefaults() {
        let settings = ComparisonSettings()
        XCTAssertEqual(settings.metrics, [.p50, .p99, .p999, .max, .total, .rate])
        XCTAssertEqual(settings.minContentions, 50)
        XCTAssertEqual(settings.grouping, .lock)
        XCTAssertNil(settings.lockNames)
        XCTAssertEqual(Metric.allCases.map { settings.limit(for: $0) }, [
            MetricLimit(maxChangePercent: 20, minDelta: 10_000),
            MetricLimit(maxChangePercent: 20, minDelta: 10_000),
            MetricLimit(maxChangePercent: 30, minDelta: 10_000),
            MetricLimit(maxChangePercent: 50, minDelta: 100_000),
            MetricLimit(maxChangePercent: 20, minDelta: 1_000_000),
            MetricLimit(maxChangePercent: 20, minDelta: 10),
            MetricLimit(maxChangePercent: 20, minDelta: 1_000_000),
        ])
        XCTAssertEqual(Metric.allCases.map { settings.limit(for: $0).describe(for: $0) }, [
            "+20% and 10.0 us", "+20% and 10.0 us", "+30% and 10.0 us", "+50% and 100 us", "+20% and 1.00 ms/s",
            "+20% and 10.0/s", "+20% and 1.00 ms/s",
        ])
    }

    func testParsesEveryOption() throws {
        let settings = try ComparisonSettings.parse(
            metrics: ["p99", "total,rate"], maxRegressions: ["p99=35%", "rate=5"],
            minDeltas: ["p99=50us", "p50=700", "p999=2µs", "max=1.5s", "total=2ms/s", "rate=25/s"],
            minContentions: 200, grouping: "container", locks: ["namespace_sem, mount_lock", "x"])
        XCTAssertEqual(settings.metrics, [.p99, .total, .rate])
        XCTAssertEqual(settings.limit(for: .p99), MetricLimit(maxChangePercent: 35, minDelta: 50_000))
        XCTAssertEqual(settings.limit(for: .rate), MetricLimit(maxChangePercent: 5, minDelta: 25))
        XCTAssertEqual(settings.limit(for: .p50).minDelta, 700)
        XCTAssertEqual(settings.limit(for: .p999).minDelta, 2_000)
        XCTAssertEqual(settings.limit(for: .max).minDelta, 1_500_000_000)
        XCTAssertEqual(settings.limit(for: .total), MetricLimit(maxChangePercent: 20, minDelta: 2_000_000))
        XCTAssertEqual(settings.minContentions, 200)
        XCTAssertEqual(settings.grouping, .container)
        XCTAssertEqual(settings.lockNames, ["namespace_sem", "mount_lock", "x"])
    }

    func testOptionErrorsAreOneLineNamingTheOption() {
        let cases: [(() throws -> ComparisonSettings, String)] = [
            ({ try .parse(maxRegressions: ["p99"]) }, "--max-regression p99: expected METRIC=PCT, for example p99=20"),
            ({ try .parse(maxRegressions: ["p98=20"]) },
             "--max-regression p98=20: unknown metric \"p98\"; valid metrics: p50, p99, p999, max, total, rate, spin"),
            ({ try .parse(maxRegressions: ["p99=lots"]) },
             "--max-regression p99=lots: \"lots\" is not a percentage; write it like p99=20 or p99=20%"),
            ({ try .parse(maxRegressions: ["p99=-5"]) },
             "--max-regression p99=-5: \"-5\" is not a percentage; write it like p99=20 or p99=20%"),
            ({ try .parse(minDeltas: ["p99"]) }, "--min-delta p99: expected METRIC=VALUE, for example p99=50us"),
            ({ try .parse(minDeltas: ["p99=5 parsecs"]) },
             "--min-delta p99=5 parsecs: \"5 parsecs\" is not a valid value for p99; write a duration like 50us, 2ms or 1.5s (a bare number is ns)"),
            ({ try .parse(minDeltas: ["rate=5ms"]) },
             "--min-delta rate=5ms: \"5ms\" is not a valid value for rate; write a number per second like 10 or 10/s"),
            ({ try .parse(minDeltas: ["total=fast"]) },
             "--min-delta total=fast: \"fast\" is not a valid value for total; write a wait per second like 1ms or 1ms/s (a bare number is ns/s)"),
            ({ try .parse(metrics: ["p99,p100"]) }, "--metric: unknown metric \"p100\"; valid metrics: p50, p99, p999, max, total, rate, spin"),
            ({ try .parse(minContentions: 0) }, "--min-contentions 0: must be at least 1"),
            ({ try .parse(grouping: "cpu") }, "--by cpu: unknown grouping; valid: lock, container"),
        ]
        for (parse, message) in cases {
            XCTAssertThrowsError(try parse()) { XCTAssertEqual(($0 as? UserError)?.description, message) }
        }
        XCTAssertThrowsError(try Diff.parseFormat("html")) {
            XCTAssertEqual(($0 as? UserError)?.description, "--format html: unknown format; valid: table, markdown, json")
        }
    }

    func testHumanUnits() {
        XCTAssertEqual([0, 850, 999.4, 999.6, 4_100, 12_345, 999_600, 2_100_000, 1_500_000_000, 3_600_000_000_000]
            .map { HumanUnits.format($0, .latency) },
                       ["0 ns", "850 ns", "999 ns", "1.00 us", "4.10 us", "12.3 us", "1.00 ms", "2.10 ms", "1.50 s", "3600 s"])
        XCTAssertEqual(HumanUnits.format(1_000_000, .waitPerSecond), "1.00 ms/s")
        XCTAssertEqual([0, 0.5, 48.3, 999.4, 1_210, 2_000_000].map { HumanUnits.format($0, .perSecond) },
                       ["0/s", "0.50/s", "48.3/s", "999/s", "1.21k/s", "2.00M/s"])
        XCTAssertEqual([1650, -35, 4.2, 0, 9_999, 1_247_057].map { HumanUnits.formatPercent($0) },
                       ["+1650%", "-35%", "+4.2%", "0%", "+9999%", "×12472"])
        XCTAssertEqual(HumanUnits.formatPercent(20, signed: false), "20%")
        XCTAssertEqual([1_900_000, -12, 0].map { HumanUnits.formatDelta($0, $0 == -12 ? .perSecond : .latency) },
                       ["+1.90 ms", "-12.0/s", "0 ns"])
    }

    func testParsingValues() {
        XCTAssertEqual(HumanUnits.parseValue("50us", for: .p99), 50_000)
        XCTAssertEqual(HumanUnits.parseValue("50µs", for: .p99), 50_000)
        XCTAssertEqual(HumanUnits.parseValue("3ns", for: .max), 3)
        XCTAssertEqual(HumanUnits.parseValue("1ms/s", for: .total), 1_000_000)
        XCTAssertEqual(HumanUnits.parseValue("1ms/s", for: .p99), nil)
        XCTAssertEqual(HumanUnits.parseValue("0.5", for: .rate), 0.5)
        XCTAssertEqual(HumanUnits.parseValue("-1", for: .rate), nil)
        XCTAssertEqual(HumanUnits.parseValue("inf", for: .rate), nil)
        XCTAssertEqual(HumanUnits.parsePercent("12.5%"), 12.5)
    }
}
