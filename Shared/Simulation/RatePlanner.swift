import Foundation
import Partitioning
import Profiles
import Scheduling

/// The plan for a known arrival rate: the partition whose requests, arriving at that rate, finish
/// soonest on average — not the one of least bottleneck, which only matters near saturation.
///
/// Candidates come from BSDP's trade-off between throughput and latency: the least-idle partition
/// within each bottleneck limit on a geometric ladder from the least bottleneck (BSDP's plan) to
/// the bottleneck of the partition one request alone finishes soonest on; the GPipe and HEFT
/// plans join them. Each candidate is then run in the simulator at the rate, with the workers'
/// batching and hyperion's router, on its own seed, and the least mean latency wins (a request
/// that fails counts at the deadline). With the rate unknown, BSDP's plan stands.
public struct RatePlanner: Sendable {
    /// One partition considered, and how it did at the rate.
    public struct Candidate: Sendable {
        /// Where it came from: `least bottleneck`, `within 1.2 s`, `least idle`, `gpipe`, `heft`
        /// (`within 355 ms = heft` when a baseline's plan is also on the ladder).
        public var label: String
        public var partition: Partition
        public var result: SimulationResult?
        /// Mean seconds over every request offered, a failed one counted at the deadline.
        public var meanLatencySeconds: Double {
            guard let result else { return .infinity }
            let offered = result.completed + result.failed
            guard offered > 0 else { return .infinity }
            return (Double(result.completed) * result.meanLatencySeconds + Double(result.failed) * deadlineSeconds)
                / Double(offered)
        }
        let deadlineSeconds: Double
    }

    public var model: ModelSource
    public var topology: Topology
    public var workload: ScenarioWorkload
    public var requireEveryTier: Bool
    /// Requests simulated per candidate.
    public var requests: Int
    /// Seed of the scoring runs (not the one experiments report with).
    public var seed: UInt64
    public var batching: Scenario.Batching
    public var deadlineSeconds: Double
    /// Rungs of the bottleneck ladder between its two ends.
    public var ladderSteps: Int

    public init(
        model: ModelSource, topology: Topology, workload: ScenarioWorkload, requireEveryTier: Bool = false,
        requests: Int = 500, seed: UInt64 = 0x5EED_0F_0A7E, batching: Scenario.Batching = Scenario.Batching(),
        deadlineSeconds: Double = 600, ladderSteps: Int = 8
    ) {
        self.model = model
        self.topology = topology
        self.workload = workload
        self.requireEveryTier = requireEveryTier
        self.requests = requests
        self.seed = seed
        self.batching = batching
        self.deadlineSeconds = deadlineSeconds
        self.ladderSteps = ladderSteps
    }

    /// The distinct partitions worth scoring, BSDP's least-bottleneck plan first; empty when no
    /// partition fits (then `Planner.plan` says why).
    public func candidates() -> [Candidate] {
        let profile = model.profile(for: workload.planning)
        let planning = workload.planning
        guard
            let fastest = Planner.plan(
                model: profile, topology: topology, workload: planning, policy: .bsdp, requireEveryTier: requireEveryTier
            ).partition
        else { return [] }
        var found: [Candidate] = []
        var seen: Set<String> = []
        func add(_ label: String, _ partition: Partition?) {
            guard let partition else { return }
            let signature = Self.signature(partition)
            guard seen.insert(signature).inserted else {
                // A baseline's plan already found on the ladder: say so on its line.
                if label == "gpipe" || label == "heft", let index = found.firstIndex(where: { Self.signature($0.partition) == signature }) {
                    found[index].label += " = \(label)"
                }
                return
            }
            found.append(Candidate(label: label, partition: partition, result: nil, deadlineSeconds: deadlineSeconds))
        }
        add("least bottleneck", fastest)
        let least = fastest.bottleneckSeconds
        let idlest = Planner.leastIdle(
            model: profile, topology: topology, workload: planning, bottleneckSeconds: .infinity,
            requireEveryTier: requireEveryTier
        ).partition
        if let idlest, idlest.bottleneckSeconds > least, least > 0, ladderSteps > 0 {
            let ratio = idlest.bottleneckSeconds / least
            for step in 1..<(ladderSteps + 1) {
                let limit = least * pow(ratio, Double(step) / Double(ladderSteps + 1))
                let rung = Planner.leastIdle(
                    model: profile, topology: topology, workload: planning, bottleneckSeconds: limit,
                    requireEveryTier: requireEveryTier
                ).partition
                add("within \(Self.seconds(limit))", rung)
            }
        }
        add("least idle", idlest)
        for policy in [PartitionPolicy.gpipe, .heft] {
            add(policy.rawValue, Planner.plan(model: profile, topology: topology, workload: planning, policy: policy).partition)
        }
        return found
    }

    /// Scores every candidate at `rate` requests per second; returns them in candidate order and
    /// the index of the one of least mean latency (the earliest among equals). `progress` hears a
    /// line per candidate.
    public func choose(rate: Double, progress: (String) -> Void = { _ in }) -> (candidates: [Candidate], chosen: Int)? {
        var scored = candidates()
        guard !scored.isEmpty else { return nil }
        let costs = StepCostModel(source: model)
        for index in scored.indices {
            let partition = scored[index].partition
            let input = SimulationInput(
                topology: topology, partition: partition, stageCosts: costs.stages(of: partition), routing: .arts,
                workload: workload, load: .rate(rate), requests: requests, seed: seed, batching: batching,
                deadlineSeconds: deadlineSeconds)
            scored[index].result = Simulator.run(input)
            progress(
                "\(scored[index].label): \(partition.stages.map { "\($0.tierName) \($0.blockRange)" }.joined(separator: ", ")) "
                    + "→ \(Self.seconds(scored[index].meanLatencySeconds)) mean at \(rate) req/s")
        }
        var chosen = 0
        for index in scored.indices where scored[index].meanLatencySeconds < scored[chosen].meanLatencySeconds {
            chosen = index
        }
        return (scored, chosen)
    }

    /// The stages' tiers and ranges: two partitions with the same signature are the same plan.
    static func signature(_ partition: Partition) -> String {
        partition.stages.map { "\($0.tierIndex):\($0.firstBlock)-\($0.lastBlock)" }.joined(separator: ",")
    }

    static func seconds(_ value: Double) -> String {
        guard value.isFinite else { return "∞" }
        return value >= 1 ? "\((value * 100).rounded() / 100) s" : "\((value * 1000 * 10).rounded() / 10) ms"
    }
}
