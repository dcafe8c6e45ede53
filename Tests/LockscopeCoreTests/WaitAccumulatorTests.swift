import XCTest

@testable import LockscopeCore

/// Merging accumulators (as roll-ups do) gives exactly what accumulating every wait in one would.
final class WaitAccumulatorTests: XCTestCase {
    /// Log-uniform waits from 100 ns to ~10 ms, rising over the run so the histogram keeps growing.
    private func waits(_ count: Int, seed: UInt64) -> [UInt64] {
        var generator = SplitMix(seed: seed)
        return (0..<count).map { index in
            let ceiling = 2 + 3 * Double(index) / Double(count)
            return UInt64(100 * pow(10, Double(generator.next() % 1_000_000) / 1_000_000 * ceiling))
        }
    }

    private func accumulate(_ values: [UInt64]) -> WaitAccumulator {
        var accumulator = WaitAccumulator(precision: .two)
        for value in values { accumulator.record(value) }
        return accumulator
    }

    func testMergingKeepsEveryStatistic() {
        let first = waits(700, seed: 5), second = waits(1_300, seed: 6)
        let reference = accumulate(first + second).stats
        XCTAssertEqual(reference.contentions, 2_000)
        var merged = accumulate(first)
        merged.merge(accumulate(second))
        XCTAssertEqual(merged.stats, reference)
        var rollUp = WaitAccumulator(precision: .two)
        rollUp.merge(merged)
        XCTAssertEqual(rollUp.stats, reference, "merged into an empty accumulator")
    }
}
