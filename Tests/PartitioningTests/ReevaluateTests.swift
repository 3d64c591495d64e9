import Profiles
import Testing

import Partitioning

@Suite("Re-scoring a plan on live figures, for the re-plan decision")
struct ReevaluateTests {
    @Test("unchanged figures reproduce the plan's predictions; a slowed tier raises its bottleneck")
    func rescore() throws {
        var rng = SeededGenerator(seed: 21)
        var checked = 0
        for _ in 0..<200 {
            let instance = RandomInstances.make(
                blocks: Int.random(in: 3...30, using: &rng), tiers: 3, uniform: false, using: &rng)
            guard let plan = instance.plan().partition else { continue }
            let same = try #require(
                Planner.reevaluate(plan, model: instance.model, topology: instance.topology, workload: instance.workload)
                    .partition)
            #expect(same.bottleneckSeconds == plan.bottleneckSeconds)
            #expect(same.idleLatencySeconds == plan.idleLatencySeconds)

            var slowed = instance.topology
            for tier in slowed.tiers.indices {
                for node in slowed.tiers[tier].nodes.indices {
                    slowed.tiers[tier].nodes[node].figures = slowed.tiers[tier].nodes[node].figures.scaled(bySpeed: 0.5)
                }
            }
            let live = try #require(
                Planner.reevaluate(plan, model: instance.model, topology: slowed, workload: instance.workload).partition)
            #expect(live.bottleneckSeconds >= plan.bottleneckSeconds)
            checked += 1
        }
        #expect(checked > 50)
    }

    @Test("a stage whose tier lost its nodes makes the plan unserveable")
    func membershipLoss() throws {
        var rng = SeededGenerator(seed: 8)
        let instance = RandomInstances.make(blocks: 12, tiers: 3, uniform: true, using: &rng)
        let plan = try #require(instance.plan().partition)
        var shrunk = instance.topology
        shrunk.tiers[1].nodes = []
        let outcome = Planner.reevaluate(plan, model: instance.model, topology: shrunk, workload: instance.workload)
        #expect(outcome.infeasibility?.tierName == "t1")
        #expect(
            Planner.plan(model: instance.model, topology: shrunk, workload: instance.workload, policy: .bsdp, requireEveryTier: true)
                .partition == nil)
        // Without that requirement a fresh plan goes around the tier.
        let around = try #require(
            Planner.plan(model: instance.model, topology: shrunk, workload: instance.workload, policy: .bsdp).partition)
        #expect(around.stages.map(\.tierName) == ["t0", "t2"])
    }

    @Test("empty models and topologies are refused, not crashed on")
    func emptyInputs() {
        let none = LayerCost(flopsPerToken: 0, weightBytes: 0, kvBytesPerToken: 0, activationBytesPerToken: 0)
        let model = ModelProfile(name: "empty", blocks: [], embedding: none, head: none)
        let node = Topology.Node(id: "a", figures: DeviceFigures(flops: 1, memoryBandwidthBytesPerSecond: nil, memoryBytes: 1))
        for policy in PartitionPolicy.allCases {
            #expect(
                Planner.plan(model: model, topology: Topology(tiers: [.init(name: "a", nodes: [node])]), workload: .default,
                    policy: policy).partition == nil)
            let oneBlock = ModelProfile(name: "one", blocks: [none], embedding: none, head: none)
            #expect(Planner.plan(model: oneBlock, topology: Topology(tiers: []), workload: .default, policy: policy).partition == nil)
        }
    }
}
