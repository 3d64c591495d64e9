import Profiles

/// The §6 objective for one (model, topology, workload), with prefix sums so that the cost of any
/// contiguous block range on any tier takes O(nodes of the tier).
///
/// Every algorithm (BSDP, the baselines, tests' brute force) scores partitions through this one
/// type, so they all optimise and report the same numbers.
public struct CostModel: Sendable {
    public let blockCount: Int
    public let workload: Workload
    let tiers: [TierNodes]
    let tierNames: [String]
    let links: [Topology.Link?]
    let returnLatencySeconds: Double?

    private let prefixPrefillFlops: [Double]
    private let prefixDecodeFlops: [Double]
    private let prefixWeightBytes: [Double]
    private let prefixKVBytes: [Double]
    /// Activation bytes per token leaving each block.
    let activationBytes: [Double]
    private let embedding: LayerCost
    private let head: LayerCost
    private let promptTokens: Double
    private let outputTokens: Double
    private let prefillChunk: Double
    private let decodeBatch: Double
    private let kvTokens: Double

    /// A tier's nodes sorted by memory, largest first (stable), so the nodes that can hold a range
    /// are always a prefix and sums over them run in one fixed order: the cost of a range then
    /// grows monotonically with the range even in floating point, which the searches rely on.
    struct TierNodes: Sendable {
        var ids: [String]
        var flops: [Double]
        /// 0 when the node gives no bandwidth (no memory term in its roofline).
        var bandwidth: [Double]
        var memory: [Double]
        /// Position of each sorted node in the topology, to list eligible nodes in file order.
        var originalIndex: [Int]
        var maxMemory: Double { memory.first ?? 0 }
    }

    public init(model: ModelProfile, topology: Topology, workload: Workload) {
        blockCount = model.blocks.count
        self.workload = workload
        embedding = model.embedding
        head = model.head
        var prefill = [0.0]
        var decode = [0.0]
        var weights = [0.0]
        var kv = [0.0]
        for block in model.blocks {
            prefill.append(prefill[prefill.count - 1] + block.prefillFlopsPerToken)
            decode.append(decode[decode.count - 1] + block.decodeFlopsPerToken)
            weights.append(weights[weights.count - 1] + block.weightBytes)
            kv.append(kv[kv.count - 1] + block.kvBytesPerToken)
        }
        prefixPrefillFlops = prefill
        prefixDecodeFlops = decode
        prefixWeightBytes = weights
        prefixKVBytes = kv
        activationBytes = model.blocks.map(\.activationBytesPerToken)
        tiers = topology.tiers.map { tier in
            let order = tier.nodes.indices.sorted { lhs, rhs in
                let (a, b) = (tier.nodes[lhs].memoryBytes, tier.nodes[rhs].memoryBytes)
                return a != b ? a > b : lhs < rhs
            }
            return TierNodes(
                ids: order.map { tier.nodes[$0].id }, flops: order.map { tier.nodes[$0].flops },
                bandwidth: order.map { tier.nodes[$0].memoryBandwidthBytesPerSecond ?? 0 },
                memory: order.map { tier.nodes[$0].memoryBytes }, originalIndex: order)
        }
        tierNames = topology.tiers.map(\.name)
        links = topology.tiers.map(\.linkToNext)
        returnLatencySeconds = topology.returnLatencySeconds
        promptTokens = Double(workload.promptTokens)
        outputTokens = Double(workload.outputTokens)
        prefillChunk = Double(max(workload.prefillChunk, 1))
        decodeBatch = Double(max(workload.decodeBatch, 1))
        kvTokens = Double(workload.context) * Double(workload.concurrency)
    }

    public var tierCount: Int { tiers.count }

    /// What a range of blocks `[first, end)` costs a node, with the embedding and head when the
    /// stage holds them.
    struct RangeCost {
        var prefillFlops: Double
        var decodeFlops: Double
        /// Weight bytes read per step (the embedding's are not: a lookup reads one row).
        var streamedBytes: Double
        var weightBytes: Double
        var kvBytes: Double
        var memoryNeed: Double { weightBytes + kvBytes }
    }

    func rangeCost(_ first: Int, _ end: Int, embedding holdsEmbedding: Bool, head holdsHead: Bool) -> RangeCost {
        var prefill = prefixPrefillFlops[end] - prefixPrefillFlops[first]
        var decode = prefixDecodeFlops[end] - prefixDecodeFlops[first]
        var streamed = prefixWeightBytes[end] - prefixWeightBytes[first]
        var weights = streamed
        var kvPerToken = prefixKVBytes[end] - prefixKVBytes[first]
        if holdsEmbedding {
            prefill += embedding.prefillFlopsPerToken
            decode += embedding.decodeFlopsPerToken
            weights += embedding.weightBytes
            kvPerToken += embedding.kvBytesPerToken
        }
        if holdsHead {
            prefill += head.prefillFlopsPerToken
            decode += head.decodeFlopsPerToken
            streamed += head.weightBytes
            weights += head.weightBytes
            kvPerToken += head.kvBytesPerToken
        }
        return RangeCost(
            prefillFlops: prefill, decodeFlops: decode, streamedBytes: streamed, weightBytes: weights,
            kvBytes: kvTokens * kvPerToken)
    }

    /// Nodes of `tier` with at least `memoryNeed` bytes: a prefix of the sorted nodes.
    func eligibleCount(tier: Int, memoryNeed: Double) -> Int {
        let memory = tiers[tier].memory
        var count = 0
        while count < memory.count, memory[count] >= memoryNeed { count += 1 }
        return count
    }

    /// Seconds per request of node `node` (sorted index) of `tier` on `cost`: the roofline of each
    /// phase, weights read once per prefill chunk and once per decode batch.
    func nodeSeconds(tier: Int, node: Int, cost: RangeCost) -> Double {
        let flops = tiers[tier].flops[node]
        let bandwidth = tiers[tier].bandwidth[node]
        var prefill = cost.prefillFlops / flops
        var decode = cost.decodeFlops / flops
        if bandwidth > 0 {
            prefill = max(prefill, cost.streamedBytes / (prefillChunk * bandwidth))
            decode = max(decode, cost.streamedBytes / (decodeBatch * bandwidth))
        }
        return promptTokens * prefill + outputTokens * decode
    }

    /// `R_j`: the tier's eligible nodes share the requests, so their rates add up.
    func sharedSeconds(tier: Int, eligible: Int, cost: RangeCost) -> Double {
        var rate = 0.0
        for node in 0..<eligible { rate += 1 / nodeSeconds(tier: tier, node: node, cost: cost) }
        return 1 / rate
    }

    func fastestSeconds(tier: Int, eligible: Int, cost: RangeCost) -> Double {
        var fastest = Double.infinity
        for node in 0..<eligible { fastest = min(fastest, nodeSeconds(tier: tier, node: node, cost: cost)) }
        return fastest
    }

    /// `L_j`: seconds per request on link `link` carrying the activations of block `lastBlock`.
    func linkSeconds(link: Int, lastBlock: Int) -> Double {
        guard let bandwidth = links[link]?.bandwidthBytesPerSecond else { return 0 }
        return (promptTokens + outputTokens) * activationBytes[lastBlock] / bandwidth
    }

    /// The idle-latency contribution of link `link`: its transfer plus its delay once per step.
    func linkIdleSeconds(link: Int, lastBlock: Int) -> Double {
        linkSeconds(link: link, lastBlock: lastBlock) + stepLatencySeconds(link: link)
    }

    /// Bytes per token the scheduler sends a first stage: token ids (i32).
    static let tokenIDBytes = 4.0

    /// Seconds per request on link `link` carrying token ids from the scheduler (which sits with
    /// the first tier) to a first stage on a later tier.
    func entryLinkSeconds(link: Int) -> Double {
        guard let bandwidth = links[link]?.bandwidthBytesPerSecond else { return 0 }
        return (promptTokens + outputTokens) * Self.tokenIDBytes / bandwidth
    }

    /// The idle-latency contribution of link `link` on the way in: token ids plus the delay per step.
    func entryLinkIdleSeconds(link: Int) -> Double {
        entryLinkSeconds(link: link) + stepLatencySeconds(link: link)
    }

    /// Link `link`'s propagation delay, paid once by every step of a request.
    private func stepLatencySeconds(link: Int) -> Double {
        (Double(workload.prefillSteps) + outputTokens) * (links[link]?.latencySeconds ?? 0)
    }

    /// Seconds a request spends on the way back: each sampled token returns from the last stage's
    /// tier to the scheduler, over the topology's return path or else back over every link from the
    /// first tier to that tier (as the simulator and the emulated cluster send it).
    func returnIdleSeconds(lastTier: Int) -> Double {
        let latency = returnLatencySeconds ?? links.prefix(lastTier).reduce(0) { $0 + ($1?.latencySeconds ?? 0) }
        return outputTokens * latency
    }

    /// Scores an assignment of block ranges (`[first, end)`, nil for a skipped tier), checking
    /// memory. The embedding goes with the first non-empty stage and the head with the last; a
    /// stage's activations cross every link up to the next non-empty stage.
    public func evaluate(ranges: [Range<Int>?], policy: PartitionPolicy) -> PlanOutcome {
        let used = ranges.indices.filter { ranges[$0].map { !$0.isEmpty } ?? false }
        guard let firstTier = used.first, let lastTier = used.last else {
            return .infeasible(
                Infeasibility(
                    policy: policy, tierIndex: 0, tierName: tierNames.first ?? "", needBytes: 0,
                    maxNodeBytes: tiers.first?.maxMemory ?? 0, reason: "no tier holds any block"))
        }
        var stages: [StagePrediction] = []
        var bottleneck = 0.0
        var idle = 0.0
        // Token ids cross every link before the first stage's tier.
        for link in 0..<firstTier {
            bottleneck = max(bottleneck, entryLinkSeconds(link: link))
            idle += entryLinkIdleSeconds(link: link)
        }
        for (position, tier) in used.enumerated() {
            guard let range = ranges[tier] else { continue }
            let cost = rangeCost(range.lowerBound, range.upperBound, embedding: tier == firstTier, head: tier == lastTier)
            let eligible = eligibleCount(tier: tier, memoryNeed: cost.memoryNeed)
            if eligible == 0 {
                return .infeasible(
                    memoryShortfall(policy: policy, tier: tier, needBytes: cost.memoryNeed,
                        what: "blocks \(range.lowerBound)–\(range.upperBound - 1)"))
            }
            let shared = sharedSeconds(tier: tier, eligible: eligible, cost: cost)
            let fastest = fastestSeconds(tier: tier, eligible: eligible, cost: cost)
            bottleneck = max(bottleneck, shared)
            idle += fastest
            var link = 0.0
            var latency = 0.0
            if position + 1 < used.count {
                for crossed in tier..<used[position + 1] {
                    let seconds = linkSeconds(link: crossed, lastBlock: range.upperBound - 1)
                    bottleneck = max(bottleneck, seconds)
                    link += seconds
                    latency += links[crossed]?.latencySeconds ?? 0
                    idle += linkIdleSeconds(link: crossed, lastBlock: range.upperBound - 1)
                }
            }
            let nodes = tiers[tier].originalIndex.prefix(eligible).enumerated()
                .sorted { $0.element < $1.element }.map { tiers[tier].ids[$0.offset] }
            stages.append(
                StagePrediction(
                    tierIndex: tier, tierName: tierNames[tier], firstBlock: range.lowerBound,
                    lastBlock: range.upperBound - 1, holdsEmbedding: tier == firstTier, holdsHead: tier == lastTier,
                    nodes: nodes, weightBytes: cost.weightBytes, kvBytes: cost.kvBytes,
                    memoryLimitBytes: tiers[tier].maxMemory, computeSeconds: shared, fastestNodeSeconds: fastest,
                    linkSeconds: link, linkLatencySeconds: latency))
        }
        idle += returnIdleSeconds(lastTier: lastTier)
        return .plan(
            Partition(policy: policy, stages: stages, bottleneckSeconds: bottleneck, idleLatencySeconds: idle))
    }

    /// Scores BSDP-style cuts: tier `j` holds `[cuts[j-1], cuts[j])`, every tier non-empty.
    public func evaluate(cuts: [Int], policy: PartitionPolicy = .bsdp) -> PlanOutcome {
        evaluate(ends: cuts + [blockCount], policy: policy)
    }

    /// Scores a partition given as each tier's end: tier `j` holds `[ends[j-1], ends[j])`
    /// (from 0 for the first tier), empty when the two are equal; the last end is the block count.
    public func evaluate(ends: [Int], policy: PartitionPolicy = .bsdp) -> PlanOutcome {
        let starts = [0] + ends.dropLast()
        return evaluate(
            ranges: zip(starts, ends).map { $0 < $1 ? $0..<$1 : nil }, policy: policy)
    }

    func memoryShortfall(policy: PartitionPolicy, tier: Int, needBytes: Double, what: String) -> Infeasibility {
        let limit = tiers[tier].maxMemory
        let reason: String
        if tiers[tier].ids.isEmpty {
            reason = "tier '\(tierNames[tier])' has no nodes to hold \(what)"
        } else {
            reason = "tier '\(tierNames[tier])' cannot hold \(what): a node needs \(Self.bytesText(needBytes)) "
                + "(weights + KV reserve), its largest has \(Self.bytesText(limit))"
        }
        return Infeasibility(
            policy: policy, tierIndex: tier, tierName: tierNames[tier], needBytes: needBytes, maxNodeBytes: limit,
            reason: reason)
    }

    static func bytesText(_ bytes: Double) -> String {
        let gb = bytes / 1e9
        if gb >= 1 { return "\(rounded(gb)) GB" }
        return "\(rounded(bytes / 1e6)) MB"
    }

    private static func rounded(_ value: Double) -> String {
        let scaled = (value * 100).rounded() / 100
        return "\(scaled)"
    }
}
