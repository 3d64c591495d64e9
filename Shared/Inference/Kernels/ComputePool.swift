import Dispatch

/// Runs the independent pieces of one computation on a fixed number of threads.
///
/// Results never depend on the thread count: callers split work into pieces whose outputs are
/// disjoint and each computed by one fixed sequence of operations.
final class ComputePool: @unchecked Sendable {
    // Sendable: `threads` is immutable.
    let threads: Int

    init(threads: Int) { self.threads = max(1, threads) }

    /// Calls `body(i)` for every `i` in `0..<count`, spread over the pool's threads.
    func forEach(_ count: Int, _ body: @Sendable (Int) -> Void) {
        if threads == 1 || count <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: count) { body($0) }
    }

    /// Splits `0..<total` into about `threads` contiguous ranges of whole `granule`s and runs them.
    func forRanges(_ total: Int, granule: Int = 1, _ body: @Sendable (Range<Int>) -> Void) {
        let pieces = min(threads, max(1, total / max(granule, 1)))
        if pieces <= 1 {
            body(0..<total)
            return
        }
        let units = (total + granule - 1) / granule
        forEach(pieces) { piece in
            let lower = min(total, units * piece / pieces * granule)
            let upper = min(total, units * (piece + 1) / pieces * granule)
            if lower < upper { body(lower..<upper) }
        }
    }
}
