import Profiles

/// BSDP: the partition into one non-empty contiguous range per tier that minimises the pipeline
/// bottleneck of docs/design.md §6, ties broken by idle latency, then by the lexicographically smallest
/// cuts.
///
/// Why it is exact: a range's tier time grows with the range (more work, fewer nodes with room), so
/// for a candidate bottleneck `v` the ranges a tier can take from a start form an interval, and one
/// sweep per tier decides whether some partition stays within `v`. Feasibility is monotone in `v`,
/// and the optimum is one of the computed range or link times, so bisecting over the bit patterns
/// of non-negative doubles (ordered like their values) finds the least feasible computed value in at
/// most 64 sweeps. A DP over (tier, prefix) restricted to ranges within the tie window then picks
/// the smallest idle latency.
enum BSDP {
    static func plan(_ costs: CostModel) -> PlanOutcome {
        let tierCount = costs.tierCount
        let blockCount = costs.blockCount
        if blockCount < tierCount {
            let starved = max(blockCount, 0)
            return .infeasible(
                Infeasibility(
                    policy: .bsdp, tierIndex: starved, tierName: costs.tierNames[starved], needBytes: 0,
                    maxNodeBytes: costs.tiers[starved].maxMemory,
                    reason: "\(blockCount) blocks cannot give each of \(tierCount) tiers a non-empty range"))
        }
        let search = Sweep(costs: costs)
        if let shortfall = search.memoryShortfall() { return .infeasible(shortfall) }

        // Least v (as a non-negative double's bits) at which the sweep finds a partition.
        var low: UInt64 = 0
        var high = Double.infinity.bitPattern
        if search.reach(within: 0) != nil {
            high = 0
        } else {
            while high - low > 1 {
                let middle = low + (high - low) / 2
                if search.reach(within: Double(bitPattern: middle)) != nil { high = middle } else { low = middle }
            }
        }
        let optimum = Double(bitPattern: high)
        let window = optimum + 1e-9 * optimum
        guard let cuts = search.leastIdleCuts(within: window) else {
            // Unreachable: the window contains the optimum found above.
            return .infeasible(search.memoryShortfall() ?? costs.memoryShortfall(
                policy: .bsdp, tier: 0, needBytes: 0, what: "the model"))
        }
        return costs.evaluate(cuts: cuts, policy: .bsdp)
    }

    /// The per-tier sweeps shared by the feasibility test, the tie-break DP and the memory check.
    struct Sweep {
        let costs: CostModel

        var tierCount: Int { costs.tierCount }
        var blockCount: Int { costs.blockCount }

        /// Highest end a tier starting at block `first` may take and leave a block to each later tier.
        func lastEnd(tier: Int) -> Int { tier == tierCount - 1 ? blockCount : blockCount - (tierCount - 1 - tier) }

        /// Whether tier `tier` can run `[first, end)` within `limit` seconds per request.
        func fits(tier: Int, first: Int, end: Int, within limit: Double) -> Bool {
            let cost = costs.rangeCost(first, end, embedding: tier == 0, head: tier == tierCount - 1)
            let eligible = costs.eligibleCount(tier: tier, memoryNeed: cost.memoryNeed)
            guard eligible > 0 else { return false }
            return limit == .infinity || costs.sharedSeconds(tier: tier, eligible: eligible, cost: cost) <= limit
        }

        /// Whether the cut after block `end - 1` leaves tier `tier`'s link within `limit`.
        func linkFits(tier: Int, end: Int, within limit: Double) -> Bool {
            tier == tierCount - 1 || costs.linkSeconds(link: tier, lastBlock: end - 1) <= limit
        }

        /// For each tier, which prefixes `[0, end)` the tiers up to it can cover within `limit`
        /// (`reach[j][end]`); nil when the last tier cannot finish the model.
        func reach(within limit: Double) -> [[Bool]]? {
            var reachable = [Bool](repeating: false, count: blockCount + 1)
            reachable[0] = true
            var all: [[Bool]] = []
            all.reserveCapacity(tierCount)
            for tier in 0..<tierCount {
                var next = [Bool](repeating: false, count: blockCount + 1)
                var any = false
                if tier == tierCount - 1 {
                    // Only [first, N) is allowed; the latest reachable start is the cheapest.
                    if let first = (0..<blockCount).last(where: { reachable[$0] }),
                        fits(tier: tier, first: first, end: blockCount, within: limit)
                    {
                        next[blockCount] = true
                        any = true
                    }
                } else {
                    let limitEnd = lastEnd(tier: tier)
                    var end = 0  // largest end known to fit for the current start (monotone in start)
                    var filled = 0  // ends up to here have been decided
                    for first in 0..<limitEnd where reachable[first] {
                        if end < first { end = first }
                        while end < limitEnd, fits(tier: tier, first: first, end: end + 1, within: limit) { end += 1 }
                        if end <= first { continue }
                        var candidate = max(first + 1, filled + 1)
                        while candidate <= end {
                            if linkFits(tier: tier, end: candidate, within: limit) {
                                next[candidate] = true
                                any = true
                            }
                            candidate += 1
                        }
                        filled = max(filled, end)
                    }
                }
                if !any { return nil }
                all.append(next)
                reachable = next
            }
            return all
        }

        /// The first tier that cannot hold any range left to it by memory alone, with the least
        /// memory it would need; nil when some partition fits.
        func memoryShortfall() -> Infeasibility? {
            var reachable = [Bool](repeating: false, count: blockCount + 1)
            reachable[0] = true
            for tier in 0..<tierCount {
                var next = [Bool](repeating: false, count: blockCount + 1)
                var any = false
                var leastNeed = Double.infinity
                let isLast = tier == tierCount - 1
                let limitEnd = lastEnd(tier: tier)
                var end = 0
                for first in 0..<limitEnd where reachable[first] {
                    let smallestEnd = isLast ? blockCount : first + 1
                    let smallest = costs.rangeCost(first, smallestEnd, embedding: tier == 0, head: isLast)
                    leastNeed = min(leastNeed, smallest.memoryNeed)
                    if end < first { end = first }
                    while end < limitEnd, fits(tier: tier, first: first, end: end + 1, within: .infinity) { end += 1 }
                    if isLast {
                        if end == blockCount { next[blockCount] = true; any = true }
                    } else if end > first {
                        for candidate in (first + 1)...end { next[candidate] = true }
                        any = true
                    }
                }
                if !any {
                    return costs.memoryShortfall(
                        policy: .bsdp, tier: tier, needBytes: leastNeed, what: "any range of blocks left to it")
                }
                reachable = next
            }
            return nil
        }

        /// Among partitions whose every tier and link stays within `limit`, the cuts of least idle
        /// latency, the lexicographically smallest among equals.
        func leastIdleCuts(within limit: Double) -> [Int]? {
            guard let reach = reach(within: limit) else { return nil }
            // starts[j][a]: tier j may start at block a (a prefix the earlier tiers can cover).
            var starts: [[Bool]] = [[Bool](repeating: false, count: blockCount + 1)]
            starts[0][0] = true
            starts.append(contentsOf: reach.dropLast())
            // best[j][a]: least idle seconds of tiers j… when tier j starts at a.
            var best = [[Double]](repeating: [Double](repeating: .infinity, count: blockCount + 1), count: tierCount + 1)
            best[tierCount][blockCount] = 0
            for tier in stride(from: tierCount - 1, through: 0, by: -1) {
                for first in 0..<blockCount where starts[tier][first] {
                    var end = first + 1
                    let limitEnd = lastEnd(tier: tier)
                    if tier == tierCount - 1 { end = blockCount }
                    while end <= limitEnd {
                        guard let seconds = stageIdleSeconds(tier: tier, first: first, end: end, within: limit) else {
                            break  // the tier's time only grows with the range
                        }
                        let total = seconds + best[tier + 1][end]
                        if total < best[tier][first] { best[tier][first] = total }
                        end += 1
                    }
                }
            }
            guard best[0][0].isFinite else { return nil }
            var cuts: [Int] = []
            var first = 0
            for tier in 0..<(tierCount - 1) {
                let target = best[tier][first]
                let tolerance = 1e-12 * abs(target)
                var chosen: Int?
                var end = first + 1
                while end <= lastEnd(tier: tier) {
                    guard let seconds = stageIdleSeconds(tier: tier, first: first, end: end, within: limit) else { break }
                    if seconds + best[tier + 1][end] <= target + tolerance {
                        chosen = end
                        break
                    }
                    end += 1
                }
                guard let chosen else { return nil }
                cuts.append(chosen)
                first = chosen
            }
            return cuts
        }

        /// Idle seconds of tier `tier` on `[first, end)` (fastest node, plus its outgoing link's
        /// transfer and per-step delays), or nil when the range does not fit within `limit`.
        /// A range whose link is over the limit returns infinity so the caller keeps extending it.
        private func stageIdleSeconds(tier: Int, first: Int, end: Int, within limit: Double) -> Double? {
            let cost = costs.rangeCost(first, end, embedding: tier == 0, head: tier == tierCount - 1)
            let eligible = costs.eligibleCount(tier: tier, memoryNeed: cost.memoryNeed)
            guard eligible > 0, costs.sharedSeconds(tier: tier, eligible: eligible, cost: cost) <= limit else {
                return nil
            }
            guard linkFits(tier: tier, end: end, within: limit) else { return .infinity }
            var seconds = costs.fastestSeconds(tier: tier, eligible: eligible, cost: cost)
            if tier < tierCount - 1 { seconds += costs.linkIdleSeconds(link: tier, lastBlock: end - 1) }
            return seconds
        }
    }
}
