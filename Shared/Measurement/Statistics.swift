/// Percentiles as every figure of the project reports them: the nearest-rank definition. The
/// p-th percentile of n values is the value at rank ⌈p·n⌉ (1-based) in ascending order, clamped to
/// 1…n: always one of the measured values, never an interpolation, and the p100 is the maximum.
/// Of no values it is 0.
public enum Percentile {
    /// The percentile of values already sorted ascending.
    public static func of(sorted: [Double], _ fraction: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    /// The percentile of values in any order.
    public static func of(_ values: [Double], _ fraction: Double) -> Double {
        of(sorted: values.sorted(), fraction)
    }
}

/// The arithmetic mean; 0 of no values.
public func mean(_ values: [Double]) -> Double {
    values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
}

/// `text` left-aligned in a column of `width` characters, with at least one space after it.
public func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}
