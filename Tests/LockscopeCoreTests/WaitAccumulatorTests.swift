import XCTest

@testable import LockscopeCore

/// The 32-bit histogram spills into a 64-bit one before a count could overflow; with a low threshold
/// the spill happens often, and every statistic must come out exactly as without it.
final class WaitAccumulatorTests: XCTestCase {
    /// Log-uniform waits from 100 ns to ~10 ms, rising over the run so the histogram keeps growing.
    private func waits(_ count: Int, seed: UInt64) -> [UInt64] {
        var generator = SplitMix(seed: seed)
        return (0..<count).map { index in
            let ceiling = 2 + 3 * Double(index) / Double(count)
            return UInt64(100 * pow(10, Double(generator.next() % 1_000_000) / 1_000_000 * ceiling))
        }
    }

    private func accumulate(_ values: [UInt64], spillThreshold: UInt32 = .max) -> WaitAccumulator {
        var accumulator = WaitAccumulator(precision: .two, spillThreshold: spillThreshold)
        for value in values { accumulator.record(value) }
        return accumulator
    }

    func testSpillingKeepsEveryStatistic() {
        let values = waits(5_000, seed: 3)
        let reference = accumulate(values).stats
        XCTAssertEqual(reference.contentions, 5_000)
        for threshold: UInt32 in [1, 7, 4_096] {
            XCTAssertEqual(accumulate(values, spillThreshold: threshold).stats, reference, "threshold \(threshold)")
        }
    }

    /// The 32-bit histogram never holds more waits than the threshold, so none of its counts can overflow.
    func testThe32BitHistogramNeverPassesTheThreshold() {
        var accumulator = WaitAccumulator(precision: .two, spillThreshold: 7)
        for value in waits(100, seed: 9) {
            accumulator.record(value)
            XCTAssertLessThanOrEqual(accumulator.unspilledCount, 7)
        }
        for other in [accumulate(waits(6, seed: 10), spillThreshold: 7), accumulate(waits(50, seed: 11), spillThreshold: 7)] {
            var converted = WaitAccumulator(precision: .two, spillThreshold: 7)
            converted.merge(other)
            accumulator.merge(converted)
            XCTAssertLessThanOrEqual(accumulator.unspilledCount, 7)
        }
        XCTAssertEqual(accumulator.count, 156)
    }

    func testMergingSpilledAndUnspilledAccumulators() {
        let first = waits(700, seed: 5), second = waits(1_300, seed: 6)
        let reference = accumulate(first + second).stats
        for (a, b) in [(UInt32(9), UInt32(9)), (9, .max), (.max, 9), (1_000, 1_000), (.max, .max)] {
            var merged = accumulate(first, spillThreshold: a)
            merged.merge(accumulate(second, spillThreshold: b))
            XCTAssertEqual(merged.stats, reference, "thresholds \(a), \(b)")
            // Merging into an empty accumulator (as roll-ups do) changes nothing either.
            var rollUp = WaitAccumulator(precision: .two, spillThreshold: a)
            rollUp.merge(merged)
            XCTAssertEqual(rollUp.stats, reference, "roll-up, thresholds \(a), \(b)")
        }
    }
}
