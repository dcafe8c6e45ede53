import CPrefetch
import Histogram

/// One histogram of waits on the aggregator's per-event path: exact count, total, min and max, and
/// bucket counts kept in a shared `CountsPool`.
///
/// The buckets are the HDR histogram's own (`WaitAccumulator` turns this into one, bucket for bucket,
/// when the profile is built): with `magnitude` m, values below 2^(m+1) have a bucket each, and every
/// later power of two is split into 2^m buckets, a "group". At 1 significant digit (m = 4) a group is
/// 16 counts of 64 bits, two cache lines. A histogram holds counts only for the groups between its
/// smallest and largest wait, so recording a wait touches two cache lines: this header (stored inline
/// in the aggregator's tables) and the bucket.
struct CompactHistogram {
    var count: UInt64 = 0
    var totalNs: UInt64 = 0
    var minNs: UInt64 = .max
    var maxNs: UInt64 = 0
    /// Where the counts of group `firstGroup` start in the pool.
    fileprivate(set) var offset: UInt32 = 0
    fileprivate(set) var firstGroup: UInt8 = 0
    /// Groups held, 0 before the first wait.
    fileprivate(set) var groups: UInt8 = 0
    /// log2 of the buckets per group: 4 for 1 significant digit, 7 for 2.
    let magnitude: UInt8

    static let oneDigitMagnitude: UInt8 = 4
    static let twoDigitMagnitude: UInt8 = 7

    init(precision: SignificantDigits) {
        switch precision {
        case .one: magnitude = Self.oneDigitMagnitude
        case .two: magnitude = Self.twoDigitMagnitude
        default: preconditionFailure("compact histograms keep 1 or 2 significant digits")
        }
    }

    var precision: SignificantDigits { magnitude == Self.oneDigitMagnitude ? .one : .two }

    /// The HDR histogram's counts index of `value` (lowest discernible value 1). hdrhistogram-swift
    /// keeps this (`countsIndexForValue`) internal, so it is written out here, and checked against the
    /// library's public `lowestEquivalentForValue` by `testBucketsAreTheHDRHistogramsOwn`.
    @inline(__always)
    static func bucket(of value: UInt64, magnitude: UInt8) -> Int {
        let m = Int(magnitude)
        let shift = Swift.max(63 - value.leadingZeroBitCount - m, 0)
        return shift << m + Int(value >> shift)
    }

    /// The lowest value of a bucket (recorded into an HDR histogram of the same precision, it lands in
    /// the same bucket).
    static func lowestValue(ofBucket bucket: Int, magnitude: UInt8) -> UInt64 {
        let m = Int(magnitude)
        let shift = Swift.max((bucket >> m) - 1, 0)
        return UInt64(bucket - shift << m) << shift
    }

}

/// A wait and its bucket at each precision compact histograms keep, worked out once for all the
/// histograms one event updates.
struct BucketedWait {
    let ns: UInt64
    private let oneDigitBucket: Int
    private let twoDigitBucket: Int

    @inline(__always)
    init(_ ns: UInt64) {
        self.ns = ns
        oneDigitBucket = CompactHistogram.bucket(of: ns, magnitude: CompactHistogram.oneDigitMagnitude)
        twoDigitBucket = CompactHistogram.bucket(of: ns, magnitude: CompactHistogram.twoDigitMagnitude)
    }

    /// The bucket in a histogram of this magnitude.
    @inline(__always)
    func bucket(magnitude: UInt8) -> Int {
        magnitude == CompactHistogram.oneDigitMagnitude ? oneDigitBucket : twoDigitBucket
    }
}

/// Bucket counts of every `CompactHistogram` of an aggregator: a histogram's groups are a region of
/// one of its chunks (512 KiB each, so growing never copies what is already there). When a histogram's
/// waits reach a group outside its region it moves to a region just large enough, and the old region
/// is kept for the next histogram that needs that size (histograms grow through the same sizes).
///
/// Recording a wait updates the histogram's header at once but only notes which bucket to increment;
/// the increments are applied `pendingLimit` at a time, each bucket's cache line requested a few
/// increments ahead (`lockscope_prefetch`), so that the misses of many buckets overlap instead of
/// costing one stall each. Read nothing before `applyPending()`.
///
/// The pool is noncopyable: nothing else shares its chunks or its noted increments.
struct CountsPool: ~Copyable {
    /// A bucket's count: 64 bits, which no recording can overflow.
    typealias Count = UInt64
    private static let chunkCounts = 1 << 16
    /// Increments noted before they are applied.
    static let pendingLimit = 4096
    /// How many increments ahead a bucket is requested from memory.
    private static let prefetchDistance = 32

    /// The chunks, at fixed addresses.
    private var bases: [UnsafeMutablePointer<Count>] = []
    /// Positions of buckets to increment by one, the first `pendingCount` of `pendingLimit`.
    private let pending = UnsafeMutablePointer<UInt32>.allocate(capacity: pendingLimit)
    private var pendingCount = 0
    /// Counts used in the last chunk.
    private var used = chunkCounts
    /// Regions given back: their positions, in one list per size (`freeList(groups:magnitude:)`).
    private var freeRegions = [[UInt32]](repeating: [], count: 2 * (maxGroups + 1))
    /// The most groups a histogram spans: every power of two a 64-bit wait can fall in.
    private static let maxGroups = 65

    init() {}

    deinit {
        for base in bases { base.deallocate() }
        pending.deallocate()
    }

    /// A pool of its own with the same counts and noted increments.
    func copy() -> CountsPool {
        var copy = CountsPool()
        copy.bases = bases.map { base in
            let chunk = UnsafeMutablePointer<Count>.allocate(capacity: Self.chunkCounts)
            chunk.initialize(from: base, count: Self.chunkCounts)
            return chunk
        }
        copy.pending.initialize(from: pending, count: pendingCount)
        copy.pendingCount = pendingCount
        copy.used = used
        copy.freeRegions = freeRegions
        return copy
    }

    @inline(__always)
    private func pointer(_ position: UInt32) -> UnsafeMutablePointer<Count> {
        bases[Int(position >> 16)] + Int(position & 0xffff)
    }

    /// Bytes held (for the benchmarks).
    var bytes: Int { bases.count * Self.chunkCounts * MemoryLayout<Count>.stride }

    /// Counts handed out in regions so far, and those of them in regions given back (for tests).
    var regionCounts: (allocated: Int, free: Int) {
        var free = 0
        for magnitude in [CompactHistogram.oneDigitMagnitude, CompactHistogram.twoDigitMagnitude] {
            for groups in 1...Self.maxGroups {
                free += groups << magnitude * freeRegions[Self.freeList(groups: groups, magnitude: Int(magnitude))].count
            }
        }
        return (bases.isEmpty ? 0 : (bases.count - 1) * Self.chunkCounts + used, free)
    }

    /// Records one wait: the header now, the bucket with the next batch.
    @inline(__always)
    mutating func record(_ wait: BucketedWait, in histogram: inout CompactHistogram) {
        let position = account(wait, in: &histogram)
        pending[pendingCount] = position
        pendingCount &+= 1
        if _slowPath(pendingCount == Self.pendingLimit) { applyPending() }
    }

    /// Records one wait of `ns`.
    mutating func record(_ ns: UInt64, in histogram: inout CompactHistogram) {
        record(BucketedWait(ns), in: &histogram)
    }

    /// Updates the header and returns the position of the wait's bucket, moving the histogram first
    /// if its region does not hold it.
    @inline(__always)
    private mutating func account(_ wait: BucketedWait, in histogram: inout CompactHistogram) -> UInt32 {
        let ns = wait.ns
        histogram.count &+= 1
        histogram.totalNs &+= ns
        if ns < histogram.minNs { histogram.minNs = ns }
        if ns > histogram.maxNs { histogram.maxNs = ns }
        let m = Int(histogram.magnitude)
        let bucket = wait.bucket(magnitude: histogram.magnitude)
        let group = bucket >> m
        let first = Int(histogram.firstGroup)
        if group < first || group >= first + Int(histogram.groups) { grow(&histogram, toHold: group) }
        return histogram.offset &+ UInt32(truncatingIfNeeded: bucket &- Int(histogram.firstGroup) << m)
    }

    /// Applies every noted increment.
    mutating func applyPending() {
        guard pendingCount > 0 else { return }
        let positions = UnsafeBufferPointer(start: pending, count: pendingCount)
        bases.withUnsafeBufferPointer { bases in
            func bucket(_ position: UInt32) -> UnsafeMutablePointer<Count> {
                bases[Int(position >> 16)] + Int(position & 0xffff)
            }
            let ahead = Swift.min(Self.prefetchDistance, positions.count)
            for index in 0..<ahead { lockscope_prefetch(bucket(positions[index])) }
            for index in positions.indices {
                if index &+ ahead < positions.count { lockscope_prefetch(bucket(positions[index &+ ahead])) }
                bucket(positions[index]).pointee &+= 1
            }
        }
        pendingCount = 0
    }

    /// Moves the histogram to a region that also holds `group`.
    private mutating func grow(_ histogram: inout CompactHistogram, toHold group: Int) {
        applyPending()  // noted increments may be in the region that moves
        let m = Int(histogram.magnitude)
        let held = Int(histogram.groups)
        let low = held == 0 ? group : Swift.min(group, Int(histogram.firstGroup))
        let high = held == 0 ? group : Swift.max(group, Int(histogram.firstGroup) + held - 1)
        let offset = allocate(groups: high - low + 1, magnitude: m)
        if held > 0 {
            let old = histogram.offset, new = offset + UInt32((Int(histogram.firstGroup) - low) << m)
            let counts = held << m  // both regions lie inside one chunk each
            pointer(new).update(from: pointer(old), count: counts)
            pointer(old).update(repeating: 0, count: counts)
            freeRegions[Self.freeList(groups: held, magnitude: m)].append(old)
        }
        histogram.offset = offset
        histogram.firstGroup = UInt8(low)
        histogram.groups = UInt8(high - low + 1)
    }

    /// Where regions of `groups` groups of 2^`magnitude` counts are kept when given back.
    private static func freeList(groups: Int, magnitude: Int) -> Int {
        (magnitude == Int(CompactHistogram.oneDigitMagnitude) ? 0 : maxGroups + 1) + groups
    }

    /// An all-zero region of `groups` groups, inside one chunk.
    private mutating func allocate(groups: Int, magnitude m: Int) -> UInt32 {
        if let position = freeRegions[Self.freeList(groups: groups, magnitude: m)].popLast() { return position }
        let size = groups << m
        if used + size > Self.chunkCounts {
            precondition(bases.count < 1 << 16, "histogram counts past 2^32 slots")
            let chunk = UnsafeMutablePointer<Count>.allocate(capacity: Self.chunkCounts)
            chunk.initialize(repeating: 0, count: Self.chunkCounts)
            bases.append(chunk)
            used = 0
        }
        defer { used += size }
        return UInt32(bases.count - 1) << 16 | UInt32(used)
    }

    /// The histogram's non-empty buckets: (lowest value of the bucket, count).
    func buckets(of histogram: CompactHistogram) -> [(value: UInt64, count: UInt64)] {
        precondition(pendingCount == 0, "applyPending() before reading counts")
        let m = Int(histogram.magnitude)
        return (0..<(Int(histogram.groups) << m)).compactMap { index in
            let count = pointer(histogram.offset + UInt32(index)).pointee
            guard count > 0 else { return nil }
            let bucket = Int(histogram.firstGroup) << m + index
            return (CompactHistogram.lowestValue(ofBucket: bucket, magnitude: histogram.magnitude), count)
        }
    }

    /// The histogram as a `WaitAccumulator` (same buckets, so the same percentiles).
    func accumulator(_ histogram: CompactHistogram) -> WaitAccumulator {
        WaitAccumulator(precision: histogram.precision, count: histogram.count, totalNs: histogram.totalNs,
                        minNs: histogram.minNs, maxNs: histogram.maxNs, buckets: buckets(of: histogram))
    }
}
