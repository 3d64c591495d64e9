import Profiles

/// GPipe's partition: equal block counts per tier (the remainder to the earliest tiers), blind to
/// how fast or large each tier is. A tier left without blocks (fewer blocks than tiers) is skipped;
/// a range that does not fit memory makes the plan infeasible — baselines are never repaired.
enum GPipe {
    static func plan(_ costs: CostModel) -> PlanOutcome {
        let base = costs.blockCount / max(costs.tierCount, 1)
        let remainder = costs.blockCount % max(costs.tierCount, 1)
        var ranges: [Range<Int>?] = []
        var first = 0
        for tier in 0..<costs.tierCount {
            let count = base + (tier < remainder ? 1 : 0)
            ranges.append(count > 0 ? first..<(first + count) : nil)
            first += count
        }
        return costs.evaluate(ranges: ranges, policy: .gpipe)
    }
}

/// HEFT on the block chain: each block in order goes to the tier, not before the previous block's,
/// that finishes it earliest for one decode token — the previous block's finish, plus the latency
/// and transfer of every link crossed, plus the block's roofline time on that tier's fastest node
/// with room for the tier's blocks so far. Greedy: it ignores that tiers run concurrently, which is
/// what BSDP is measured against.
enum HEFT {
    static func plan(_ costs: CostModel) -> PlanOutcome {
        let blockCount = costs.blockCount
        let lastBlock = blockCount - 1
        var tierOfBlock: [Int] = []
        var firstBlockOfTier = [Int?](repeating: nil, count: costs.tierCount)
        var previousFinish = 0.0
        for block in 0..<blockCount {
            let previousTier = tierOfBlock.last ?? 0
            var bestTier: Int?
            var bestFinish = Double.infinity
            var transfer = 0.0
            for tier in previousTier..<costs.tierCount {
                if tier > previousTier, block > 0 {
                    let link = costs.links[tier - 1]
                    transfer += (link?.latencySeconds ?? 0)
                        + costs.activationBytes[block - 1] / (link?.bandwidthBytesPerSecond ?? .infinity)
                }
                // The tier's range so far, if the block joins it.
                let first = (tier == previousTier && block > 0) ? (firstBlockOfTier[tier] ?? block) : block
                let holdsEmbedding = first == 0
                let range = costs.rangeCost(first, block + 1, embedding: holdsEmbedding, head: block == lastBlock)
                let eligible = costs.eligibleCount(tier: tier, memoryNeed: range.memoryNeed)
                guard eligible > 0 else { continue }
                let own = costs.rangeCost(block, block + 1, embedding: block == 0, head: block == lastBlock)
                let finish = previousFinish + transfer + costs.fastestDecodeSecondsPerToken(tier: tier, eligible: eligible, cost: own)
                if finish < bestFinish {
                    bestFinish = finish
                    bestTier = tier
                }
            }
            guard let tier = bestTier else {
                let first = firstBlockOfTier[previousTier] ?? block
                let need = costs.rangeCost(first, block + 1, embedding: first == 0, head: block == lastBlock).memoryNeed
                var shortfall = costs.memoryShortfall(
                    policy: .heft, tier: previousTier, needBytes: need, what: "blocks \(first)–\(block)")
                shortfall.reason += ", and no later tier has room for block \(block)"
                return .infeasible(shortfall)
            }
            if firstBlockOfTier[tier] == nil || tier != previousTier { firstBlockOfTier[tier] = block }
            tierOfBlock.append(tier)
            previousFinish = bestFinish
        }
        var ranges = [Range<Int>?](repeating: nil, count: costs.tierCount)
        for (block, tier) in tierOfBlock.enumerated() {
            ranges[tier] = (ranges[tier]?.lowerBound ?? block)..<(block + 1)
        }
        return costs.evaluate(ranges: ranges, policy: .heft)
    }
}

extension CostModel {
    /// One token's decode time on the tier's fastest eligible node (HEFT's per-block cost).
    func fastestDecodeSecondsPerToken(tier: Int, eligible: Int, cost: RangeCost) -> Double {
        var fastest = Double.infinity
        for node in 0..<eligible {
            let flops = tiers[tier].flops[node]
            let bandwidth = tiers[tier].bandwidth[node]
            var seconds = cost.decodeFlops / flops
            if bandwidth > 0 { seconds = max(seconds, cost.streamedBytes / (Double(max(workload.decodeBatch, 1)) * bandwidth)) }
            fastest = min(fastest, seconds)
        }
        return fastest
    }
}
