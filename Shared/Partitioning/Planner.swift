import Profiles

/// The planner's pure core: a model, a topology and a workload in, a partition (or why none fits)
/// out. No clock, broker or file: the CLI and the planner service call it with what they loaded.
public enum Planner {
    /// Plans with `policy`. The workload must satisfy `Workload.violations` (callers validate user
    /// input first); the topology is as `Topology.parse` accepts it.
    public static func plan(
        model: ModelProfile, topology: Topology, workload: Workload, policy: PartitionPolicy
    ) -> PlanOutcome {
        let costs = CostModel(model: model, topology: topology, workload: workload)
        switch policy {
        case .bsdp: return BSDP.plan(costs)
        case .gpipe: return GPipe.plan(costs)
        case .heft: return HEFT.plan(costs)
        }
    }
}
