/// Arithmetic on values read from a profile, which a crafted file can set to anything up to 2^64-1:
/// sums stop at the largest value instead of trapping, and a Double becomes the nearest integer in range.
extension UInt64 {
    /// `self + other`, or `UInt64.max` when the sum does not fit.
    public func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    /// `value` rounded to the nearest whole number in 0...UInt64.max; NaN is 0.
    public init(saturating value: Double) {
        if !(value > 0) {
            self = 0
        } else if value >= 18_446_744_073_709_551_616.0 {  // 2^64
            self = .max
        } else {
            self = UInt64(value.rounded())  // below 2^64 a Double is a multiple of 2048 apart, so rounding stays below
        }
    }
}

extension Sequence where Element == UInt64 {
    /// The sum, stopping at `UInt64.max`.
    public func saturatedSum() -> UInt64 { reduce(0) { $0.addingSaturated($1) } }
}
