/// Counts of events over simulated time in equal buckets, for a rate over the middle of a run.
///
/// The run's length is unknown in advance, so the buckets start narrow and merge in pairs when
/// time outgrows them: at most `limit` buckets, never fewer than half of it once time has grown.
struct RateHistogram {
    private(set) var bucketSeconds: Double
    private var counts: [Int] = []
    private let limit: Int

    init(initialBucketSeconds: Double = 1e-3, limit: Int = 4096) {
        bucketSeconds = initialBucketSeconds
        self.limit = max(limit, 2)
    }

    mutating func record(at seconds: Double) {
        var index = Int(max(seconds, 0) / bucketSeconds)
        while index >= limit {
            var merged = [Int](repeating: 0, count: (counts.count + 1) / 2)
            for (position, count) in counts.enumerated() { merged[position / 2] += count }
            counts = merged
            bucketSeconds *= 2
            index = Int(max(seconds, 0) / bucketSeconds)
        }
        if index >= counts.count { counts.append(contentsOf: repeatElement(0, count: index - counts.count + 1)) }
        counts[index] += 1
    }

    /// Events per second over the whole buckets inside `[start, end]`; nil when none fits.
    func rate(from start: Double, to end: Double) -> Double? {
        let first = Int((start / bucketSeconds).rounded(.up))
        let last = min(Int((end / bucketSeconds).rounded(.down)), counts.count)
        guard last > first else { return nil }
        let total = counts[first..<last].reduce(0, +)
        return Double(total) / (Double(last - first) * bucketSeconds)
    }
}
