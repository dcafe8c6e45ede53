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
    }
}
