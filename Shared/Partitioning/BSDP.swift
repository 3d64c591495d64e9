import Profiles

/// BSDP: the partition into contiguous block ranges, one per tier in pipeline order, that
/// minimises the pipeline bottleneck of docs/design.md §6; ties broken by idle latency, then by
/// the lexicographically smallest tier ends. A tier may hold no blocks (its link then only passes
/// on what crosses it) unless `requireEveryTier` asks for the paper's formulation, where every
/// tier holds a non-empty range.
///
/// Why it is exact: a range's tier time only grows with the range (more work, fewer nodes with
/// room), so for a candidate bottleneck `v` the ends a tier can take from a start form an interval
/// that moves right with the start, and one sweep per tier over (tier, blocks covered so far)
/// decides whether some partition stays within `v` — O(T·N). Feasibility is monotone in `v` and
/// the optimum is one of the computed range or link times, so bisecting over the bit patterns of
/// non-negative doubles (ordered like their values) finds the least feasible computed value in at
/// most 64 sweeps. A DP over the same states, restricted to ranges within the tie window, then
/// picks the least idle latency.
enum BSDP {
    /// The least-idle partition whose bottleneck stays within `limit` seconds per request: the
    /// latency end of the trade-off that `plan` takes at its throughput end. Infeasible when no
    /// partition fits memory or stays within `limit`.
    static func leastIdle(_ costs: CostModel, within limit: Double, requireEveryTier: Bool = false) -> PlanOutcome {
        let search = Search(costs: costs, requireEveryTier: requireEveryTier)
        if requireEveryTier, costs.blockCount < costs.tierCount { return plan(costs, requireEveryTier: true) }
        guard search.reach(within: .infinity) != nil else { return .infeasible(search.memoryShortfall()) }
        guard let reach = search.reach(within: limit), let best = search.leastIdle(within: limit, reach: reach) else {
            return .infeasible(
                Infeasibility(
                    policy: .bsdp, tierIndex: 0, tierName: costs.tierNames[0], needBytes: 0, maxNodeBytes: costs.tiers[0].maxMemory,
                    reason: "no partition keeps every tier and link within \(limit) s per request"))
        }
        return costs.evaluate(ends: search.ends(best, within: limit), policy: .bsdp)
    }

    static func plan(_ costs: CostModel, requireEveryTier: Bool = false) -> PlanOutcome {
        let tierCount = costs.tierCount
        let blockCount = costs.blockCount
        if requireEveryTier, blockCount < tierCount {
            let starved = max(blockCount, 0)
            return .infeasible(
                Infeasibility(
                    policy: .bsdp, tierIndex: starved, tierName: costs.tierNames[starved], needBytes: 0,
                    maxNodeBytes: costs.tiers[starved].maxMemory,
                    reason: "\(blockCount) blocks cannot give each of \(tierCount) tiers a non-empty range"))
        }
        let search = Search(costs: costs, requireEveryTier: requireEveryTier)
        guard search.reach(within: .infinity) != nil else { return .infeasible(search.memoryShortfall()) }

        // Least v (as a non-negative double's bits) within which some partition fits.
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
        guard let reach = search.reach(within: window), let best = search.leastIdle(within: window, reach: reach) else {
            // Unreachable: the window contains the optimum found above.
            return .infeasible(search.memoryShortfall())
        }
        return costs.evaluate(ends: search.ends(best, within: window), policy: .bsdp)
    }

    /// The DP shared by the feasibility test, the tie-break and the memory diagnosis.
    ///
    /// State `(tier, covered)`: tiers before `tier` hold blocks `[0, covered)`. Tier `tier` either
    /// takes `[covered, end)` or, when allowed, nothing; what then crosses its outgoing link is
    /// token ids (nothing covered yet), the activations of block `covered − 1`, or nothing (every
    /// block covered: the sampled token goes back over the return path).
    struct Search {
        let costs: CostModel
        let requireEveryTier: Bool

        var tierCount: Int { costs.tierCount }
        var blockCount: Int { costs.blockCount }

        /// The ends tier `tier` may take from `covered`, smallest first (an empty range is `covered`).
        func ends(tier: Int, covered: Int) -> ClosedRange<Int>? {
            if requireEveryTier {
                // Every later tier needs a block; the last takes the rest.
                if tier == tierCount - 1 { return covered < blockCount ? blockCount...blockCount : nil }
                let last = blockCount - (tierCount - 1 - tier)
                return covered + 1 <= last ? (covered + 1)...last : nil
            }
            return tier == tierCount - 1 ? (covered == blockCount ? covered...covered : blockCount...blockCount) : covered...blockCount
        }

        /// Tier `tier` on `[first, end)`: its shared and fastest-node seconds, or nil when no node has room.
        func stage(tier: Int, first: Int, end: Int) -> (shared: Double, fastest: Double)? {
            let cost = costs.rangeCost(first, end, embedding: first == 0, head: end == blockCount)
            let eligible = costs.eligibleCount(tier: tier, memoryNeed: cost.memoryNeed)
            guard eligible > 0 else { return nil }
            return (
                costs.sharedSeconds(tier: tier, eligible: eligible, cost: cost),
                costs.fastestSeconds(tier: tier, eligible: eligible, cost: cost)
            )
        }

        /// What crosses tier `tier`'s outgoing link once `[0, covered)` is done: its seconds per
        /// request (the bottleneck term) and its idle-latency contribution; zero past the last tier
        /// or when every block is covered.
        func outgoing(tier: Int, covered: Int) -> (seconds: Double, idle: Double) {
            guard tier < tierCount - 1, covered < blockCount else { return (0, 0) }
            if covered == 0 { return (costs.entryLinkSeconds(link: tier), costs.entryLinkIdleSeconds(link: tier)) }
            return (
                costs.linkSeconds(link: tier, lastBlock: covered - 1), costs.linkIdleSeconds(link: tier, lastBlock: covered - 1)
            )
        }

        /// Idle seconds of tier `tier` taking `[covered, end)` (nothing when equal) and its link,
        /// or nil when that does not fit within `limit`.
        func stepIdle(tier: Int, covered: Int, end: Int, within limit: Double) -> Double? {
            let link = outgoing(tier: tier, covered: end)
            guard link.seconds <= limit else { return nil }
            guard end > covered else { return link.idle }
            guard let times = stage(tier: tier, first: covered, end: end), times.shared <= limit else { return nil }
            let back = end == blockCount ? costs.returnIdleSeconds(lastTier: tier) : 0
            return times.fastest + link.idle + back
        }

        /// `reach[tier][covered]`: tiers before `tier` can hold `[0, covered)` with every stage and
        /// link within `limit`; nil when no partition fits.
        func reach(within limit: Double) -> [[Bool]]? {
            let reach = reachTable(within: limit)
            return reach[tierCount][blockCount] ? reach : nil
        }

        /// The table `reach` returns, whether or not the last tier finishes the model.
        func reachTable(within limit: Double) -> [[Bool]] {
            var reach = [[Bool]](repeating: [Bool](repeating: false, count: blockCount + 1), count: tierCount + 1)
            reach[0][0] = true
            for tier in 0..<tierCount {
                let from = reach[tier]
                var next = [Bool](repeating: false, count: blockCount + 1)
                if tier == tierCount - 1 {
                    // The last tier takes every block left; the latest start is the cheapest.
                    if !requireEveryTier, from[blockCount] { next[blockCount] = true }
                    if let first = (0..<blockCount).last(where: { from[$0] }), rangeFits(tier: tier, first: first, end: blockCount, within: limit) {
                        next[blockCount] = true
                    }
                } else {
                    let lastEnd = requireEveryTier ? blockCount - (tierCount - 1 - tier) : blockCount
                    if !requireEveryTier {
                        for covered in 0...blockCount where from[covered] && outgoing(tier: tier, covered: covered).seconds <= limit {
                            next[covered] = true
                        }
                    }
                    var end = 0  // largest end known to fit for the current start (it only moves right)
                    var marked = 0  // ends up to here are decided
                    for first in 0..<blockCount where from[first] {
                        if end < first { end = first }
                        while end < lastEnd, rangeFits(tier: tier, first: first, end: end + 1, within: limit) { end += 1 }
                        var candidate = max(first + 1, marked + 1)
                        while candidate <= end {
                            if outgoing(tier: tier, covered: candidate).seconds <= limit { next[candidate] = true }
                            candidate += 1
                        }
                        marked = max(marked, end)
                    }
                }
                reach[tier + 1] = next
            }
            return reach
        }

        /// `best[tier][covered]`: the least idle seconds of tiers `tier…` from that state, every
        /// stage and link within `limit`, over the states `reach` marks; nil when no partition fits.
        func leastIdle(within limit: Double, reach: [[Bool]]) -> [[Double]]? {
            var best = [[Double]](repeating: [Double](repeating: .infinity, count: blockCount + 1), count: tierCount + 1)
            best[tierCount][blockCount] = 0
            for tier in stride(from: tierCount - 1, through: 0, by: -1) {
                for covered in 0...blockCount where reach[tier][covered] {
                    guard let ends = ends(tier: tier, covered: covered) else { continue }
                    for end in ends {
                        guard best[tier + 1][end].isFinite else { continue }
                        guard let seconds = stepIdle(tier: tier, covered: covered, end: end, within: limit) else {
                            // A longer range only costs the tier more (an empty one does not count).
                            if end > covered, !rangeFits(tier: tier, first: covered, end: end, within: limit) { break }
                            continue
                        }
                        best[tier][covered] = min(best[tier][covered], seconds + best[tier + 1][end])
                    }
                }
            }
            return best[0][0].isFinite ? best : nil
        }

        /// Whether tier `tier` alone (not its link) can run `[first, end)` within `limit`.
        func rangeFits(tier: Int, first: Int, end: Int, within limit: Double) -> Bool {
            guard let times = stage(tier: tier, first: first, end: end) else { return false }
            return times.shared <= limit
        }

        /// Each tier's end on a least-idle path of `best`, the smallest end wherever several tie.
        func ends(_ best: [[Double]], within limit: Double) -> [Int] {
            var result: [Int] = []
            var covered = 0
            for tier in 0..<tierCount {
                let target = best[tier][covered]
                let tolerance = 1e-12 * abs(target)
                var chosen = blockCount
                for end in ends(tier: tier, covered: covered) ?? blockCount...blockCount {
                    guard best[tier + 1][end].isFinite,
                        let seconds = stepIdle(tier: tier, covered: covered, end: end, within: limit)
                    else { continue }
                    if seconds + best[tier + 1][end] <= target + tolerance {
                        chosen = end
                        break
                    }
                }
                result.append(chosen)
                covered = chosen
            }
            return result
        }

        /// Why no partition fits memory: the first block no tier can take after the blocks before
        /// it are placed (the last tier: the blocks left), on the tier with the most memory among
        /// those that could take it next.
        func memoryShortfall() -> Infeasibility {
            // A block no node of any tier can hold says the most.
            let largest = (0..<tierCount).max { costs.tiers[$0].maxMemory < costs.tiers[$1].maxMemory } ?? 0
            for block in 0..<blockCount {
                let need = costs.rangeCost(block, block + 1, embedding: block == 0, head: block == blockCount - 1).memoryNeed
                if need > costs.tiers[largest].maxMemory {
                    var shortfall = costs.memoryShortfall(policy: .bsdp, tier: largest, needBytes: need, what: "block \(block)")
                    if tierCount > 1 { shortfall.reason += ", the largest node of any tier" }
                    return shortfall
                }
            }
            // Where placements that fit memory get stuck (links and times do not count here).
            let reach = reachTable(within: .infinity)
            let stuck = (0...blockCount).last { covered in (0..<tierCount).contains { reach[$0][covered] } } ?? 0
            let candidates = (0..<tierCount).filter { reach[$0][stuck] }
            let tier = candidates.max { costs.tiers[$0].maxMemory < costs.tiers[$1].maxMemory } ?? 0
            // The last tier must take every block left; any other tier could take one.
            let end = tier == tierCount - 1 ? blockCount : min(stuck + 1, blockCount)
            let need = costs.rangeCost(stuck, end, embedding: stuck == 0, head: end == blockCount).memoryNeed
            let what = end - stuck == 1 ? "block \(stuck)" : "blocks \(stuck)–\(end - 1)"
            var shortfall = costs.memoryShortfall(policy: .bsdp, tier: tier, needBytes: need, what: what)
            if !requireEveryTier, candidates.count > 1 {
                shortfall.reason += ", and no other tier that could take it has more"
            }
            return shortfall
        }
    }
}
