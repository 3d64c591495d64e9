import Profiles

/// How blocks are assigned to tiers (docs/design.md §6).
public enum PartitionPolicy: String, Sendable, Hashable, CaseIterable {
    /// The exact minimiser of the pipeline bottleneck; a tier may hold no blocks (unless every
    /// tier is required to).
    case bsdp
    /// Equal block counts per tier, ignoring heterogeneity.
    case gpipe
    /// Greedy earliest-finish-time list scheduling of the block chain.
    case heft
}

/// What the planner predicts for one stage: the blocks a tier runs, whether they fit, and how long
/// a request keeps the tier and its outgoing link busy.
public struct StagePrediction: Sendable, Hashable {
    /// Index of the tier in the topology.
    public var tierIndex: Int
    public var tierName: String
    /// First and last block of the range, counted from 0, both inclusive.
    public var firstBlock: Int
    public var lastBlock: Int
    public var holdsEmbedding: Bool
    public var holdsHead: Bool
    /// Nodes of the tier with room for the range and its KV reserve, in the topology's order.
    public var nodes: [String]
    /// Weights held (embedding and head included when this stage holds them).
    public var weightBytes: Double
    /// KV reserve: context × concurrency × the range's KV bytes per token.
    public var kvBytes: Double
    /// Memory a node needs for this range (weights + KV reserve).
    public var memoryNeedBytes: Double { weightBytes + kvBytes }
    /// The tier's largest node memory: the limit the need is compared with.
    public var memoryLimitBytes: Double
    /// Tier compute seconds per request with the load shared by its eligible nodes (`R_j`).
    public var computeSeconds: Double
    /// Seconds per request on the tier's fastest eligible node (what one request waits, idle).
    public var fastestNodeSeconds: Double
    /// Seconds per request of the link(s) to the next stage (`L_j`; 0 for the last stage).
    public var linkSeconds: Double
    /// Propagation delay of the link(s) to the next stage, paid once per step.
    public var linkLatencySeconds: Double

    public init(
        tierIndex: Int, tierName: String, firstBlock: Int, lastBlock: Int, holdsEmbedding: Bool, holdsHead: Bool,
        nodes: [String], weightBytes: Double, kvBytes: Double, memoryLimitBytes: Double, computeSeconds: Double,
        fastestNodeSeconds: Double, linkSeconds: Double, linkLatencySeconds: Double
    ) {
        self.tierIndex = tierIndex
        self.tierName = tierName
        self.firstBlock = firstBlock
        self.lastBlock = lastBlock
        self.holdsEmbedding = holdsEmbedding
        self.holdsHead = holdsHead
        self.nodes = nodes
        self.weightBytes = weightBytes
        self.kvBytes = kvBytes
        self.memoryLimitBytes = memoryLimitBytes
        self.computeSeconds = computeSeconds
        self.fastestNodeSeconds = fastestNodeSeconds
        self.linkSeconds = linkSeconds
        self.linkLatencySeconds = linkLatencySeconds
    }

    public var blockCount: Int { lastBlock - firstBlock + 1 }
    /// The blocks as every message and table prints them: `0–11` (inclusive, an en dash).
    public var blockRange: String { "\(firstBlock)–\(lastBlock)" }
}

/// A feasible partition with its predictions.
public struct Partition: Sendable, Hashable {
    public var policy: PartitionPolicy
    /// One entry per non-empty tier, in pipeline order (a tier without blocks has none).
    public var stages: [StagePrediction]
    /// Seconds per request of the busiest resource (tier or link); 1 / this is the saturated
    /// throughput in requests per second.
    public var bottleneckSeconds: Double
    /// Seconds one request takes through an idle pipeline: compute on each stage's fastest node,
    /// transfers, per-step link latencies, and the return path for every output token.
    public var idleLatencySeconds: Double

    public init(policy: PartitionPolicy, stages: [StagePrediction], bottleneckSeconds: Double, idleLatencySeconds: Double) {
        self.policy = policy
        self.stages = stages
        self.bottleneckSeconds = bottleneckSeconds
        self.idleLatencySeconds = idleLatencySeconds
    }

    /// The first block of every stage after the first: the partition's cuts.
    public var cuts: [Int] { stages.dropFirst().map(\.firstBlock) }
    /// Saturated throughput in requests per second.
    public var requestsPerSecond: Double { bottleneckSeconds > 0 ? 1 / bottleneckSeconds : .infinity }
}

/// Why no partition fits: the tier that cannot hold any range left to it, and by how much.
public struct Infeasibility: Sendable, Hashable, Error, CustomStringConvertible {
    public var policy: PartitionPolicy
    public var tierIndex: Int
    public var tierName: String
    /// The least memory a node of this tier would need.
    public var needBytes: Double
    /// The tier's largest node memory (0 when it has no nodes).
    public var maxNodeBytes: Double
    public var reason: String

    public init(
        policy: PartitionPolicy, tierIndex: Int, tierName: String, needBytes: Double, maxNodeBytes: Double, reason: String
    ) {
        self.policy = policy
        self.tierIndex = tierIndex
        self.tierName = tierName
        self.needBytes = needBytes
        self.maxNodeBytes = maxNodeBytes
        self.reason = reason
    }

    public var description: String { reason }
}

/// The planner's answer: a partition, or why there is none.
public enum PlanOutcome: Sendable, Hashable {
    case plan(Partition)
    case infeasible(Infeasibility)

    public var partition: Partition? {
        if case .plan(let partition) = self { return partition }
        return nil
    }

    public var infeasibility: Infeasibility? {
        if case .infeasible(let reason) = self { return reason }
        return nil
    }
}
