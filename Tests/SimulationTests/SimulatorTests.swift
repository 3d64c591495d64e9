import Foundation
import JSON
import Partitioning
import Profiles
import Scheduling
import Testing

import Simulation

/// Small pipelines whose figures are easy to check by hand.
enum Fixtures {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A one-block model whose single step costs exactly `flopsPerToken` per token, with no
    /// weights to stream: service times are pure FLOPs, deterministic.
    static func flatModel(flopsPerToken: Double, blocks: Int = 1, activationBytes: Double = 0) -> ModelProfile {
        let block = LayerCost(
            flopsPerToken: flopsPerToken / Double(blocks), weightBytes: 1e6, kvBytesPerToken: 1e3,
            activationBytesPerToken: activationBytes)
        let empty = LayerCost(flopsPerToken: 0, weightBytes: 0, kvBytesPerToken: 0, activationBytesPerToken: 0)
        return ModelProfile(name: "flat", blocks: Array(repeating: block, count: blocks), embedding: empty, head: empty)
    }

    static func node(_ id: String, flops: Double, bandwidth: Double? = nil, memory: Double = 1e12) -> Topology.Node {
        Topology.Node(id: id, figures: DeviceFigures(flops: flops, memoryBandwidthBytesPerSecond: bandwidth, memoryBytes: memory))
    }

    static func workload(prompt: Int, output: Int, chunk: Int? = nil, distribution: ScenarioWorkload.LengthDistribution = .fixed)
        -> ScenarioWorkload
    {
        ScenarioWorkload(
            name: "w", distribution: distribution,
            planning: Workload(
                promptTokens: prompt, outputTokens: output, prefillChunk: chunk ?? prompt, decodeBatch: 1,
                context: prompt + output, concurrency: 1))
    }

    /// Plans `system` and builds the input of one run. Every tier gets blocks, so that the
    /// pipelines these tests build (a link between two stages, two nodes of one stage) exist
    /// whatever BSDP would prefer.
    static func input(
        model: ModelSource, topology: Topology, workload: ScenarioWorkload, system: SystemSpec = .hyperion,
        load: LoadPoint, requests: Int, seed: UInt64 = 1, batching: Scenario.Batching = Scenario.Batching(maxSteps: 1),
        drift: [Scenario.DriftEvent] = []
    ) throws -> SimulationInput {
        let partition = try #require(
            Planner.plan(
                model: model.profile(for: workload.planning), topology: topology, workload: workload.planning,
                policy: system.partition, requireEveryTier: true
            ).partition)
        return SimulationInput(
            topology: topology, partition: partition, stageCosts: StepCostModel(source: model).stages(of: partition),
            routing: system.routing, workload: workload, load: load, requests: requests, seed: seed, drift: drift,
            batching: batching)
    }
}

@Suite("Discrete-event simulator")
struct SimulatorTests {
    @Test(
        "one node, single-step requests, Poisson arrivals: mean wait matches Pollaczek–Khinchine M/D/1 within 5%",
        arguments: [0.5, 0.8])
    func mD1(utilization: Double) throws {
        // Service: one prefill step of 1 token at 1e9 FLOPs on a 1e9 FLOP/s node = 1 s, no weights
        // to stream, one output token: the request is exactly one step.
        let topology = Topology(tiers: [Topology.Tier(name: "only", nodes: [Fixtures.node("n", flops: 1e9)])])
        let model = ModelSource.fixed(Fixtures.flatModel(flopsPerToken: 1e9))
        let service = 1.0
        let input = try Fixtures.input(
            model: model, topology: topology, workload: Fixtures.workload(prompt: 1, output: 1),
            load: .rate(utilization / service), requests: 200_000, seed: 42)
        let result = Simulator.run(input)
        #expect(result.completed == 200_000)
        let wait = result.meanLatencySeconds - service
        let theory = utilization * service / (2 * (1 - utilization))
        #expect(abs(wait - theory) / theory < 0.05, "mean wait \(wait) s, M/D/1 \(theory) s")
        #expect(abs(result.tierUtilization[0].fraction - utilization) < 0.02)
    }

    @Test("one node per tier, enough clients: saturated throughput = 1 / the plan's bottleneck within 2%")
    func saturatedThroughput() throws {
        let topology = Topology(tiers: [
            Topology.Tier(
                name: "edge", nodes: [Fixtures.node("e", flops: 10e12, bandwidth: 68e9)],
                linkToNext: .init(bandwidthBytesPerSecond: 1.25e8, latencySeconds: 0.001)),
            Topology.Tier(
                name: "fog", nodes: [Fixtures.node("f", flops: 65e12, bandwidth: 320e9)],
                linkToNext: .init(bandwidthBytesPerSecond: 1.25e8, latencySeconds: 0.02)),
            Topology.Tier(name: "cloud", nodes: [Fixtures.node("c", flops: 312e12, bandwidth: 1555e9)]),
        ])
        let model = ModelSource.shape(ModelPreset.phi3Mini.shape(dtype: .q4_0))
        let workload = Fixtures.workload(prompt: 64, output: 256)
        // Each request has one step in flight and a 45 ms loop of link and return latencies per
        // token (idle latency 11.6 s against a 0.28 s bottleneck): a closed loop needs several
        // times 11.6 / 0.28 ≈ 41 clients before the busiest stage never idles.
        let input = try Fixtures.input(
            model: model, topology: topology, workload: workload, load: .concurrency(256), requests: 4000)
        let result = Simulator.run(input)
        let planned = input.partition.requestsPerSecond
        #expect(result.completed == 4000)
        #expect(
            abs(result.steadyRequestsPerSecond - planned) / planned < 0.02,
            "simulated \(result.steadyRequestsPerSecond) req/s, planned \(planned) req/s")
        let bottleneck = result.tierUtilization.map(\.fraction).max() ?? 0
        #expect(bottleneck > 0.98)
    }

    @Test("a link-bound pipeline saturates at the link's rate: the link is a FIFO shared by all traffic")
    func linkBound() throws {
        // Two nodes at the edge share one slow link to the cloud.
        let topology = Topology(tiers: [
            Topology.Tier(
                name: "edge", nodes: [Fixtures.node("e1", flops: 1e12), Fixtures.node("e2", flops: 1e12)],
                linkToNext: .init(bandwidthBytesPerSecond: 1e6, latencySeconds: 0.005)),
            Topology.Tier(name: "cloud", nodes: [Fixtures.node("c", flops: 1e13)]),
        ])
        let model = ModelSource.fixed(Fixtures.flatModel(flopsPerToken: 1e9, blocks: 4, activationBytes: 4096))
        let workload = Fixtures.workload(prompt: 32, output: 64)
        let input = try Fixtures.input(
            model: model, topology: topology, workload: workload, load: .concurrency(32), requests: 1500)
        let result = Simulator.run(input)
        let planned = input.partition.requestsPerSecond
        // The link carries (P + O − 1) token activations per request (the last token is never sent
        // on): a hair under the plan's (P + O).
        let expected = planned * Double(32 + 64) / Double(32 + 64 - 1)
        #expect(abs(result.steadyRequestsPerSecond - expected) / expected < 0.02)
        #expect(result.linkUtilization[0].fraction > 0.95)
    }

    @Test("a plan that leaves the first tier empty still sends tokens over its link, and pays the way back")
    func skippedTierCrossesLinks() throws {
        let topology = Topology(tiers: [
            Topology.Tier(
                name: "edge", nodes: [Fixtures.node("e", flops: 1e9)],
                linkToNext: .init(bandwidthBytesPerSecond: 1e9, latencySeconds: 0.05)),
            Topology.Tier(name: "cloud", nodes: [Fixtures.node("c", flops: 1e9)]),
        ])
        let profile = Fixtures.flatModel(flopsPerToken: 1e8)
        let workload = Fixtures.workload(prompt: 1, output: 3)
        let partition = try #require(
            CostModel(model: profile, topology: topology, workload: workload.planning)
                .evaluate(ranges: [nil, 0..<1], policy: .heft).partition)
        #expect(partition.stages.map(\.tierName) == ["cloud"])
        let input = SimulationInput(
            topology: topology, partition: partition,
            stageCosts: StepCostModel(source: .fixed(profile)).stages(of: partition), routing: .heft, workload: workload,
            load: .rate(0.01), requests: 20, seed: 3, batching: Scenario.Batching(maxSteps: 1))
        let result = Simulator.run(input)
        // Three steps of 0.1 s, each 50 ms out (4 bytes of token id) and 50 ms back.
        let expected = 3 * (0.05 + 4 / 1e9 + 0.1 + 0.05)
        #expect(abs(result.meanLatencySeconds - expected) < 1e-9)
        #expect(result.tierUtilization.first?.fraction == 0)
    }

    @Test("the same seed gives the same run; another seed another")
    func deterministic() throws {
        let scenario = try Scenario.load(Fixtures.packageRoot.appendingPathComponent("examples/scenarios/tiny.json").path)
        let experiment = try Experiment(scenario: scenario)
        let workload = scenario.workloads[0]
        let planned = experiment.plan(.hyperion, for: workload)
        let partition = try #require(planned.outcome.partition)
        let first = Simulator.run(experiment.input(planned, partition: partition, workload: workload, load: .rate(50), requests: 400))
        let again = Simulator.run(experiment.input(planned, partition: partition, workload: workload, load: .rate(50), requests: 400))
        #expect(first == again)
        var other = experiment
        other.seed = 8
        let different = Simulator.run(other.input(planned, partition: partition, workload: workload, load: .rate(50), requests: 400))
        #expect(different.meanLatencySeconds != first.meanLatencySeconds)
        #expect(first.completed == 400 && first.failed == 0)
    }

    @Test("ARTS beats round-robin on latency when one of two nodes is secretly slowed; the link is shared")
    func artsBeatsRoundRobin() throws {
        let topology = Topology(tiers: [
            Topology.Tier(
                name: "edge", nodes: [Fixtures.node("e1", flops: 1e12), Fixtures.node("e2", flops: 1e12)],
                linkToNext: .init(bandwidthBytesPerSecond: 1e8, latencySeconds: 0.002)),
            Topology.Tier(name: "cloud", nodes: [Fixtures.node("c", flops: 1e14)]),
        ])
        let model = ModelSource.fixed(Fixtures.flatModel(flopsPerToken: 2e9, blocks: 8, activationBytes: 2048))
        let workload = Fixtures.workload(prompt: 32, output: 16)
        // e2 runs 4× slower from the start while advertising the same device.
        let drift = [Scenario.DriftEvent(node: "e2", when: .seconds(0), slowdown: 4)]
        func run(_ system: SystemSpec) throws -> SimulationResult {
            let probe = try Fixtures.input(
                model: model, topology: topology, workload: workload, system: system, load: .rate(1), requests: 1)
            // The edge's real capacity is 1.25 of one node's; load it to 70% of that.
            let edge = probe.partition.stages[0]
            let perRequestOnOneNode = edge.computeSeconds * 2
            let rate = 0.7 * 1.25 / perRequestOnOneNode
            let input = try Fixtures.input(
                model: model, topology: topology, workload: workload, system: system, load: .rate(rate), requests: 3000,
                drift: drift)
            return Simulator.run(input)
        }
        let arts = try run(.hyperion)
        let roundRobin = try run(SystemSpec.named("bsdp+round-robin")!)
        #expect(arts.completed == 3000 && roundRobin.completed == 3000)
        #expect(
            arts.meanLatencySeconds < 0.7 * roundRobin.meanLatencySeconds,
            "ARTS \(arts.meanLatencySeconds) s vs round-robin \(roundRobin.meanLatencySeconds) s")
        // ARTS sends the slow node less than half of the work.
        let e1 = arts.nodeUtilization.first { $0.name == "e1" }?.fraction ?? 0
        let e2 = arts.nodeUtilization.first { $0.name == "e2" }?.fraction ?? 0
        #expect(e1 > 0.4 && e2 < 1)
    }

    @Test("batching several requests' decode steps raises a memory-bound node's throughput")
    func batchingHelps() throws {
        let topology = Topology(tiers: [Topology.Tier(name: "only", nodes: [Fixtures.node("n", flops: 65e12, bandwidth: 320e9)])])
        let model = ModelSource.shape(ModelPreset.phi3Mini.shape(dtype: .q4_0))
        let workload = Fixtures.workload(prompt: 32, output: 64)
        let single = Simulator.run(try Fixtures.input(
            model: model, topology: topology, workload: workload, load: .concurrency(16), requests: 200))
        let batched = Simulator.run(try Fixtures.input(
            model: model, topology: topology, workload: workload, load: .concurrency(16), requests: 200,
            batching: Scenario.Batching(maxSteps: 16, maxTokens: 512)))
        #expect(batched.meanBatchSteps > 4)
        #expect(batched.tokensPerSecond > 4 * single.tokensPerSecond)
        #expect(batched.completed == 200 && single.completed == 200)
    }

    @Test("a node short of KV gets no more than fits: routing counts KV sent since the last heartbeat, none is lost")
    func kvLimits() throws {
        // Room for the weights and about three requests' KV on each node.
        let model = ModelSource.fixed(Fixtures.flatModel(flopsPerToken: 1e9, blocks: 2))
        let memory = 1e6 * 2 + 3.5 * 2e3 * 96
        let topology = Topology(tiers: [
            Topology.Tier(name: "only", nodes: [Fixtures.node("a", flops: 1e12, memory: memory), Fixtures.node("b", flops: 1e12, memory: memory)])
        ])
        let result = Simulator.run(try Fixtures.input(
            model: model, topology: topology, workload: Fixtures.workload(prompt: 32, output: 64), load: .concurrency(20),
            requests: 300))
        // Requests wait for room instead of being sent where it has been promised to others.
        #expect(result.completed == 300)
        #expect(result.failed == 0)
        #expect(result.failovers == 0)
    }

    @Test("bursty arrivals and drawn lengths keep the mean rate and lengths")
    func burstyArrivals() throws {
        let topology = Topology(tiers: [Topology.Tier(name: "only", nodes: [Fixtures.node("n", flops: 1e15)])])
        let model = ModelSource.fixed(Fixtures.flatModel(flopsPerToken: 1e9))
        var input = try Fixtures.input(
            model: model, topology: topology, workload: Fixtures.workload(prompt: 20, output: 10, distribution: .exponential),
            load: .rate(100), requests: 20_000)
        input.arrival = .bursty(meanBurstSize: 5)
        let result = Simulator.run(input)
        #expect(result.completed == 20_000)
        #expect(abs(result.requestsPerSecond - 100) / 100 < 0.05)
        #expect(abs(result.tokensPerSecond / result.requestsPerSecond - 10) < 0.5)
    }
}
