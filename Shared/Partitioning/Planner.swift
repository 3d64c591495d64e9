import Profiles

/// The planner's pure core: a model, a topology and a workload in, a partition (or why none fits)
/// out. No clock, broker or file: the CLI and the planner service call it with what they loaded.
public enum Planner {
    /// Plans with `policy`. The workload must satisfy `Workload.violations` (callers validate user
    /// input first); the topology is as `Topology.parse` accepts it. BSDP may leave a tier without
    /// blocks unless `requireEveryTier` (the paper's formulation: one non-empty range per tier).
    public static func plan(
        model: ModelProfile, topology: Topology, workload: Workload, policy: PartitionPolicy,
        requireEveryTier: Bool = false
    ) -> PlanOutcome {
        if let empty = emptyInput(model: model, topology: topology, policy: policy) { return .infeasible(empty) }
        let costs = CostModel(model: model, topology: topology, workload: workload)
        switch policy {
        case .bsdp: return BSDP.plan(costs, requireEveryTier: requireEveryTier)
        case .gpipe: return GPipe.plan(costs)
        case .heft: return HEFT.plan(costs)
        }
    }

    /// The BSDP partition of least idle latency among those whose bottleneck is at most
    /// `bottleneckSeconds`: with the least bottleneck it is `plan`'s answer, with infinity the
    /// partition one request alone finishes soonest on. Between the two lie the plans a load
    /// between light and saturating prefers.
    public static func leastIdle(
        model: ModelProfile, topology: Topology, workload: Workload, bottleneckSeconds: Double,
        requireEveryTier: Bool = false
    ) -> PlanOutcome {
        if let empty = emptyInput(model: model, topology: topology, policy: .bsdp) { return .infeasible(empty) }
        let costs = CostModel(model: model, topology: topology, workload: workload)
        return BSDP.leastIdle(costs, within: bottleneckSeconds, requireEveryTier: requireEveryTier)
    }

    /// Scores an existing partition's ranges on new figures (live speeds, nodes that joined or left),
    /// matching stages to tiers by name: what the planner service compares against a fresh plan
    /// before deciding to re-plan. Infeasible when a stage's tier is gone or none of its nodes
    /// still has room.
    public static func reevaluate(
        _ partition: Partition, model: ModelProfile, topology: Topology, workload: Workload
    ) -> PlanOutcome {
        if let empty = emptyInput(model: model, topology: topology, policy: partition.policy) {
            return .infeasible(empty)
        }
        var ranges = [Range<Int>?](repeating: nil, count: topology.tiers.count)
        for stage in partition.stages {
            guard let tier = topology.tiers.firstIndex(where: { $0.name == stage.tierName }),
                stage.firstBlock >= 0, stage.lastBlock < model.blocks.count, stage.firstBlock <= stage.lastBlock
            else {
                return .infeasible(
                    Infeasibility(
                        policy: partition.policy, tierIndex: stage.tierIndex, tierName: stage.tierName, needBytes: 0,
                        maxNodeBytes: 0,
                        reason: "stage '\(stage.tierName)' (blocks \(stage.firstBlock)–\(stage.lastBlock)) "
                            + "has no such tier or blocks in the current topology and model"))
            }
            ranges[tier] = stage.firstBlock..<(stage.lastBlock + 1)
        }
        let covered = ranges.compactMap { $0 }.sorted { $0.lowerBound < $1.lowerBound }
        var next = 0
        for range in covered {
            guard range.lowerBound == next else { break }
            next = range.upperBound
        }
        guard next == model.blocks.count else {
            return .infeasible(
                Infeasibility(
                    policy: partition.policy, tierIndex: 0, tierName: topology.tiers[0].name, needBytes: 0,
                    maxNodeBytes: 0, reason: "the partition's stages do not cover blocks 0–\(model.blocks.count - 1) in order"))
        }
        return CostModel(model: model, topology: topology, workload: workload).evaluate(
            ranges: ranges, policy: partition.policy)
    }

    private static func emptyInput(model: ModelProfile, topology: Topology, policy: PartitionPolicy) -> Infeasibility? {
        if topology.tiers.isEmpty {
            return Infeasibility(
                policy: policy, tierIndex: 0, tierName: "", needBytes: 0, maxNodeBytes: 0, reason: "the topology has no tiers")
        }
        if model.blocks.isEmpty {
            return Infeasibility(
                policy: policy, tierIndex: 0, tierName: topology.tiers[0].name, needBytes: 0, maxNodeBytes: 0,
                reason: "the model has no blocks")
        }
        return nil
    }
}
