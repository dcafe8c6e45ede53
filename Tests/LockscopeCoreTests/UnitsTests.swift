import XCTest

@testable import LockscopeCore

final class UnitsTests: XCTestCase {
    func testCountIsPluralUnlessOne() {
        XCTAssertEqual(Units.count(0, "contention"), "0 contentions")
        XCTAssertEqual(Units.count(UInt64(1), "contention"), "1 contention")
        XCTAssertEqual(Units.count(2, "NUMA node"), "2 NUMA nodes")
    }

    func testParseDuration() {
        XCTAssertEqual(Units.parseDuration("30"), 30_000_000_000)
        XCTAssertEqual(Units.parseDuration("30s"), 30_000_000_000)
        XCTAssertEqual(Units.parseDuration("1.5s"), 1_500_000_000)
        XCTAssertEqual(Units.parseDuration("500ms"), 500_000_000)
        XCTAssertEqual(Units.parseDuration("250us"), 250_000)
        XCTAssertEqual(Units.parseDuration("100ns"), 100)
        XCTAssertEqual(Units.parseDuration("2m"), 120_000_000_000)
        XCTAssertEqual(Units.parseDuration("10", defaultUnit: 1), 10)
        XCTAssertNil(Units.parseDuration("-1s"))
        XCTAssertNil(Units.parseDuration("soon"))
        XCTAssertNil(Units.parseDuration(""))
    }

    func testParseSize() {
        XCTAssertEqual(Units.parseSize("8M"), 8 << 20)
        XCTAssertEqual(Units.parseSize("256k"), 256 << 10)
        XCTAssertEqual(Units.parseSize("1G"), 1 << 30)
        XCTAssertEqual(Units.parseSize("4096"), 4096)
        XCTAssertEqual(Units.parseSize("8MB"), 8 << 20)
        XCTAssertNil(Units.parseSize("lots"))
    }

    func testDurationFormatting() {
        XCTAssertEqual(Units.duration(812), "812 ns")
        XCTAssertEqual(Units.duration(4_210), "4.21 us")
        XCTAssertEqual(Units.duration(12_345_678), "12.3 ms")
        XCTAssertEqual(Units.duration(250_000_000), "250 ms")
        XCTAssertEqual(Units.duration(2_500_000_000), "2.50 s")
        XCTAssertEqual(Units.duration(999_600), "1.00 ms")
        XCTAssertEqual(Units.duration(999_999_999), "1.00 s")
        XCTAssertEqual(Units.duration(.max), "18446744074 s")
    }

    /// Waits per second and other derived values need not be whole or fit 64 bits.
    func testDurationOfAnyDouble() {
        XCTAssertEqual(Units.duration(roundedFrom: 812.4), "812 ns")
        XCTAssertEqual(Units.duration(roundedFrom: 999.6), "1.00 us")
        XCTAssertEqual(Units.duration(roundedFrom: 1.5e28), "15000000000000000000 s")
        XCTAssertEqual(Units.duration(roundedFrom: -5), "0 ns")
        XCTAssertEqual(Units.duration(roundedFrom: .nan), "0 ns")
    }

    func testSaturatingArithmetic() {
        XCTAssertEqual(UInt64.max.addingSaturated(1), .max)
        XCTAssertEqual((UInt64(1) << 63).addingSaturated(1 << 63), .max)
        XCTAssertEqual(UInt64(40).addingSaturated(2), 42)
        XCTAssertEqual([UInt64.max, 1, 2].saturatedSum(), .max)
        XCTAssertEqual([UInt64(1), 2, 3].saturatedSum(), 6)
        XCTAssertEqual(UInt64(saturating: 1e300), .max)
        XCTAssertEqual(UInt64(saturating: 18_446_744_073_709_549_568.0), 18_446_744_073_709_549_568)
        XCTAssertEqual(UInt64(saturating: -1), 0)
        XCTAssertEqual(UInt64(saturating: .nan), 0)
        XCTAssertEqual(UInt64(saturating: 2.5), 3)
    }

    /// events + dropped past 2^64 crashed every report header.
    func testDropRatioOfCountsBeyond64Bits() {
        var profile = Profile(hostname: "h", kernel: "k", startedAt: "t", durationNs: 1, events: .max, drops: Drops(),
                              recording: Recording(), topology: nil, containers: [], mounts: nil, locks: [])
        profile.dropped = .max
        XCTAssertEqual(profile.dropRatio, 0.5)
        XCTAssertEqual(Units.lossSummary(profile), "dropped 18446744073709551615 events (50.0%)")
    }

    func testTerminalTextEscapesEveryControlCharacter() {
        XCTAssertEqual(TerminalText.escaped("namespace_sem"), "namespace_sem")
        XCTAssertEqual(TerminalText.escaped("caf\u{e9} \u{1F512}"), "caf\u{e9} \u{1F512}")
        XCTAssertEqual(TerminalText.escaped("a\u{1b}[2Jb\u{0}c\td\ne\u{7f}"), #"a\x1b[2Jb\x00c\x09d\x0ae\x7f"#)
        XCTAssertEqual(TerminalText.escaped("\u{9b}31m\u{85}\u{a0}"), "\\x9b31m\\x85\u{a0}")
        XCTAssertEqual(TerminalText.escaped("abc\u{202e}fed\u{2028}"), #"abc\u{202e}fed\u{2028}"#)
    }
}
