import Foundation
import Histogram
import XCTest

@testable import LockscopeCore

/// The aggregator's compact histograms must give exactly what a `WaitAccumulator` fed the same waits
/// gives: the same buckets, so the same percentiles.
final class CompactHistogramTests: XCTestCase {
    /// Log-uniform waits from 1 ns to ~100 s, with the edges: 0 and the largest values.
    private func waits(_ count: Int, seed: UInt64, decades: Double = 11) -> [UInt64] {
        var generator = SplitMix(seed: seed)
        return (0..<count).map { _ in UInt64(pow(10, Double(generator.next() % 1_000_000) / 1_000_000 * decades)) }
            + [0, 1, 31, 32, 33, 1 << 40, UInt64.max >> 2]  // the HDR library overflows past 2^63
    }

    private func reference(_ values: [UInt64], precision: SignificantDigits) -> WaitAccumulator {
        var accumulator = WaitAccumulator(precision: precision)
        for value in values { accumulator.record(value) }
        return accumulator
    }

    func testBucketsAreTheHDRHistogramsOwn() {
        for (precision, magnitude) in [(SignificantDigits.one, UInt8(4)), (.two, 7)] {
            let hdr = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: .max / 2,
                                        numberOfSignificantValueDigits: precision)
            for value in waits(2_000, seed: 1) where value <= .max / 2 {
                let bucket = CompactHistogram.bucket(of: value, magnitude: magnitude)
                let lowest = CompactHistogram.lowestValue(ofBucket: bucket, magnitude: magnitude)
                XCTAssertEqual(lowest, hdr.lowestEquivalentForValue(value), "value \(value)")
                XCTAssertEqual(CompactHistogram.bucket(of: lowest, magnitude: magnitude), bucket)
            }
        }
    }

    func testSameStatisticsAsAWaitAccumulator() {
        for precision in [SignificantDigits.one, .two] {
            let values = waits(20_000, seed: 2)
            var pool = CountsPool()
            var histogram = CompactHistogram(precision: precision)
            for value in values { pool.record(value, in: &histogram) }
            pool.applyPending()
            XCTAssertEqual(pool.accumulator(histogram).stats, reference(values, precision: precision).stats)
        }
    }

    /// Many histograms in one pool, each growing its range at its own pace: regions move and are reused,
    /// and every histogram still holds exactly its own waits.
    func testHistogramsSharingAPoolKeepTheirOwnWaits() {
        var pool = CountsPool()
        var histograms = (0..<40).map { _ in CompactHistogram(precision: .one) }
        var values = [[UInt64]](repeating: [], count: 40)
        var generator = SplitMix(seed: 3)
        for step in 0..<40_000 {
            let index = Int(generator.next() % 40)
            // Waits rise over the run, so ranges grow upward as well as downward.
            let decades = 1 + 9 * Double(step) / 40_000 * Double(index + 1) / 40
            let value = UInt64(pow(10, Double(generator.next() % 1_000_000) / 1_000_000 * decades))
            values[index].append(value)
            pool.record(value, in: &histograms[index])
        }
        pool.applyPending()
        for index in histograms.indices {
            XCTAssertEqual(pool.accumulator(histograms[index]).stats, reference(values[index], precision: .one).stats,
                           "histogram \(index)")
        }
        // Every count handed out is in a live histogram's region or in a region given back.
        let held = histograms.reduce(0) { $0 + Int($1.groups) } * 16
        let regions = pool.regionCounts
        XCTAssertEqual(regions.allocated - regions.free, held)
    }

    /// A region given back when a histogram moves is the next one handed out at that size.
    func testRegionsGivenBackAreReused() {
        var pool = CountsPool()
        var first = CompactHistogram(precision: .one), second = CompactHistogram(precision: .one)
        pool.record(1_000, in: &first)  // one group
        pool.record(2_000, in: &first)  // moves to two groups, gives back the first
        XCTAssertEqual(pool.regionCounts.allocated, 3 * 16)
        XCTAssertEqual(pool.regionCounts.free, 16)
        pool.record(5, in: &second)  // one group: the one given back
        pool.applyPending()
        XCTAssertEqual(pool.regionCounts.allocated, 3 * 16)
        XCTAssertEqual(pool.regionCounts.free, 0)
        XCTAssertEqual(pool.accumulator(first).stats.contentions, 2)
        XCTAssertEqual(pool.buckets(of: second).map(\.value), [5])
    }
}

/// Bucket increments are noted and applied in batches; the pool still behaves as a value.
final class CountsPoolTests: XCTestCase {
    /// Noted increments are applied when the batch fills, when a histogram's region moves, and by
    /// `applyPending`; none is lost or applied twice.
    func testNotedIncrementsAreAppliedExactlyOnce() {
        var pool = CountsPool()
        var histogram = CompactHistogram(precision: .one)
        let waits = 3 * CountsPool.pendingLimit + 5  // three full batches and a part
        for index in 0..<waits { pool.record(UInt64(1_000 + index % 16), in: &histogram) }
        pool.record(1 << 30, in: &histogram)  // moves the region with increments still noted
        pool.applyPending()
        pool.applyPending()  // nothing left to apply
        let buckets = pool.buckets(of: histogram)
        XCTAssertEqual(buckets.reduce(0) { $0 + $1.count }, UInt64(waits + 1))
        XCTAssertEqual(buckets.last?.count, 1)
        XCTAssertEqual(histogram.count, UInt64(waits + 1))
    }

}

/// `FlatTable` finds what was inserted, through growth, and nothing else.
final class FlatTableTests: XCTestCase {
    private struct Key: FlatTableKey {
        var word: UInt64
        static let unused = Key(word: 0)
        var hashWord: UInt64 { word }
    }

    func testFindsEveryKeyThroughGrowth() {
        var table = FlatTable<Key, Int>(empty: -1)
        var generator = SplitMix(seed: 4)
        var expected: [UInt64: Int] = [:]
        while expected.count < 5_000 {
            let word = generator.next() % 20_000 + 1  // repeats: existing keys are updated in place
            let index = table.index(of: Key(word: word), adding: 0)
            table[index] += 1
            expected[word, default: 0] += 1
        }
        XCTAssertEqual(table.count, 5_000)
        var entries: [UInt64: Int] = [:]
        table.forEachEntry { entries[$0.key.word] = $0.value }
        XCTAssertEqual(entries, expected)
        for word in 1...20_000 as ClosedRange<UInt64> {
            XCTAssertEqual(table.index(of: Key(word: word)).map { table[$0] }, expected[word])
        }
        XCTAssertLessThanOrEqual(table.count * 10, table.capacity * 7, "at most 70% full")
    }

}

/// `PaddedBuffer` lays elements out so that none straddles more cache lines than its size needs.
final class PaddedBufferTests: XCTestCase {
    private struct Bytes48 { var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) }
    private struct Bytes88 { var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) }

    func testElementsSitInAsFewCacheLinesAsTheirSize() {
        XCTAssertEqual(PaddedBuffer<UInt8>.stride, 1)
        XCTAssertEqual(PaddedBuffer<(UInt64, UInt32)>.stride, 16)
        XCTAssertEqual(PaddedBuffer<(UInt64, UInt64, UInt32)>.stride, 32)
        XCTAssertEqual(PaddedBuffer<Bytes48>.stride, 64)
        XCTAssertEqual(PaddedBuffer<Bytes88>.stride, 128)
        XCTAssertEqual(FlatTable<LockTaskKey, CompactHistogram>.slotBytes, 64)
        XCTAssertEqual(FlatTable<LockContextKey, Aggregator.Tally>.slotBytes, 64)

        let element = Bytes48(words: (1, 2, 3, 4, 5, 6))
        let buffer = PaddedBuffer<Bytes48>(capacity: 5, repeating: element)
        XCTAssertEqual(Int(bitPattern: buffer.base) % 64, 0, "the buffer starts on a cache line")
        for index in 0..<5 {
            let address = Int(bitPattern: buffer.pointer(index))
            XCTAssertEqual(address % 64, 0, "element \(index) starts on a line")
            XCTAssertEqual(buffer.pointer(index).pointee.words.5, 6)
        }
        buffer.pointer(3).pointee.words.0 = 42
        let copy = buffer.copy(capacity: 8)
        XCTAssertEqual(copy.count, 5)
        XCTAssertEqual((0..<5).map { copy.pointer($0).pointee.words.0 }, [1, 1, 1, 42, 1])
    }
}
