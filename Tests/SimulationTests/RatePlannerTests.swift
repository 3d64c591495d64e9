import Partitioning
import Profiles
import Scheduling
import Testing

import Simulation

/// Choosing the plan for an arrival rate, on the paper's testbed: the candidates are a real
/// trade-off, light load picks a different plan than heavy load, and the choice holds on a seed
/// it was not made on.
@Suite("Plans chosen for an arrival rate")
struct RatePlannerTests {
    static func planner() throws -> RatePlanner {
        let scenario = try ExperimentScenarioTests.load("paper-testbed")
        let short = try #require(scenario.workloads.first { $0.name == "short" })
        return RatePlanner(model: scenario.model, topology: scenario.topology, workload: short, requests: 300)
    }

    static func signature(_ partition: Partition) -> String {
        partition.stages.map { "\($0.tierName) \($0.blockRange)" }.joined(separator: ", ")
    }

    @Test("the candidates run from the least bottleneck to the least idle latency, and include the GPipe and HEFT plans")
    func candidates() throws {
        let planner = try Self.planner()
        let candidates = planner.candidates()
        let ladder = candidates.filter { $0.label != "gpipe" && $0.label != "heft" }.map(\.partition)
        #expect(candidates.contains { $0.label.hasSuffix("heft") } && candidates.contains { $0.label.hasSuffix("gpipe") })
        #expect(ladder.count >= 3)
        #expect(candidates.first?.label == "least bottleneck")
        // A trade-off: each rung gives up bottleneck for idle latency.
        for (before, after) in zip(ladder, ladder.dropFirst()) {
            #expect(after.bottleneckSeconds >= before.bottleneckSeconds)
            #expect(after.idleLatencySeconds <= before.idleLatencySeconds)
        }
        let profile = planner.model.profile(for: planner.workload.planning)
        for policy in [PartitionPolicy.gpipe, .heft] {
            let baseline = try #require(
                Planner.plan(model: profile, topology: planner.topology, workload: planner.workload.planning, policy: policy).partition)
            #expect(candidates.contains { Self.signature($0.partition) == Self.signature(baseline) }, "\(policy)")
        }
        #expect(Set(candidates.map { Self.signature($0.partition) }).count == candidates.count, "no plan twice")
    }

    @Test("light load picks a shorter path than heavy load, and the choice beats HEFT and GPipe on another seed")
    func choice() throws {
        let planner = try Self.planner()
        let light = try #require(planner.choose(rate: 0.5))
        let heavy = try #require(planner.choose(rate: 4))
        let lightPlan = light.candidates[light.chosen].partition
        let heavyPlan = heavy.candidates[heavy.chosen].partition
        #expect(Self.signature(lightPlan) != Self.signature(heavyPlan))
        #expect(lightPlan.idleLatencySeconds < heavyPlan.idleLatencySeconds)
        #expect(lightPlan.bottleneckSeconds > heavyPlan.bottleneckSeconds)

        // Judged on seed 1 (the choice used its own seed), against the baselines as they run.
        let scenario = try ExperimentScenarioTests.load("paper-testbed")
        var experiment = try Experiment(scenario: scenario)
        experiment.seed = 1
        let workload = planner.workload
        func mean(_ system: SystemSpec, partition: Partition, rate: Double) -> Double {
            var planned = experiment.plan(system, for: workload)
            planned.stageCosts = StepCostModel(source: scenario.model).stages(of: partition)
            let result = Simulator.run(
                experiment.input(planned, partition: partition, workload: workload, load: .rate(rate), requests: 500))
            #expect(result.failed == 0)
            return result.meanLatencySeconds
        }
        for (rate, chosen) in [(0.5, lightPlan), (4.0, heavyPlan)] {
            let ours = mean(.hyperion, partition: chosen, rate: rate)
            for baseline in [SystemSpec.gpipe, .heft] {
                let plan = try #require(experiment.plan(baseline, for: workload).outcome.partition)
                let theirs = mean(baseline, partition: plan, rate: rate)
                #expect(ours <= 1.03 * theirs, "\(rate) req/s: chosen \(ours) s, \(baseline.name) \(theirs) s")
            }
        }
    }
}
