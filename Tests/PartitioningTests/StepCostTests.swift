import Profiles
import Testing

import Partitioning

@Suite("Step cost model")
struct StepCostTests {
    static let phi3 = ModelSource.shape(ModelPreset.phi3Medium.shape(dtype: .q4_0))

    static func node(_ id: String, _ preset: DevicePreset) -> Topology.Node {
        Topology.Node(id: id, device: preset.rawValue, figures: preset.figures)
    }

    /// A request's steps summed on one node, the way the §6 objective counts them: one prefill
    /// chunk of P tokens (K ≥ P) and O decode steps at contexts P … P+O−1.
    static func summedSeconds(_ stage: StageStepCost, prompt: Int, output: Int, on device: DeviceFigures) -> Double {
        var seconds = stage.seconds(.prefill(position: 0, tokens: prompt), on: device)
        for context in prompt..<(prompt + output) { seconds += stage.seconds(.decode(context: context), on: device) }
        return seconds
    }

    @Test(
        "a request's summed step costs on one node match the planner's c_k for B = 1 and K = P",
        arguments: [DevicePreset.a100_40GB, .t4, .jetsonOrinNano, .serverCPU])
    func matchesCostModel(device: DevicePreset) throws {
        let workload = Workload(promptTokens: 512, outputTokens: 128, prefillChunk: 512, decodeBatch: 1, context: 1024, concurrency: 1)
        let topology = Topology(tiers: [Topology.Tier(name: "only", nodes: [Self.node("n", device)])])
        let memoryless = Topology(tiers: topology.tiers.map { tier in
            var tier = tier
            tier.nodes = tier.nodes.map { var node = $0; node.figures.memoryBytes = 1e12; return node }
            return tier
        })
        let plan = try #require(
            Planner.plan(model: Self.phi3.profile(for: workload), topology: memoryless, workload: workload, policy: .bsdp)
                .partition)
        let stage = StepCostModel(source: Self.phi3).stages(of: plan)[0]
        let summed = Self.summedSeconds(stage, prompt: 512, output: 128, on: device.figures)
        let planned = plan.stages[0].computeSeconds
        // The objective prices attention at the mean context (P/2, P + O/2); steps read 0…q, which
        // adds half a position per token: well under a percent here.
        #expect(abs(summed - planned) / planned < 0.005, "summed \(summed) s vs planned \(planned) s")
    }

    @Test("every stage of a three-tier plan: summed steps match the stage's c_k")
    func matchesEveryStage() throws {
        let workload = Workload(promptTokens: 256, outputTokens: 64, prefillChunk: 256, decodeBatch: 1, context: 1024, concurrency: 1)
        let topology = Topology(tiers: [
            Topology.Tier(name: "edge", nodes: [Self.node("e", .jetsonAGXOrin)], linkToNext: .init(bandwidthBytesPerSecond: 1.25e8, latencySeconds: 0.001)),
            Topology.Tier(name: "fog", nodes: [Self.node("f", .t4)], linkToNext: .init(bandwidthBytesPerSecond: 1.25e8, latencySeconds: 0.02)),
            Topology.Tier(name: "cloud", nodes: [Self.node("c", .a100_40GB)]),
        ])
        let plan = try #require(
            Planner.plan(model: Self.phi3.profile(for: workload), topology: topology, workload: workload, policy: .bsdp).partition)
        let costs = StepCostModel(source: Self.phi3).stages(of: plan)
        let devices = [DevicePreset.jetsonAGXOrin, .t4, .a100_40GB]
        for (index, stage) in plan.stages.enumerated() {
            let summed = Self.summedSeconds(costs[index], prompt: 256, output: 64, on: devices[stage.tierIndex].figures)
            #expect(abs(summed - stage.computeSeconds) / stage.computeSeconds < 0.01, "stage \(index)")
        }
        // What a stage holds is what the plan says it holds.
        #expect(costs.map(\.weightBytes) == plan.stages.map(\.weightBytes))
        #expect(costs[costs.count - 1].outputBytesPerToken == 0)
        #expect(costs[0].outputBytesPerToken == 5120.0 * 4)  // f32 activations of width d
    }

    @Test("the closed-form request work equals the sum of its steps, across the memory/compute crossover")
    func closedFormMatchesLoop() {
        let model = StepCostModel(source: Self.phi3)
        let stage = model.stage(firstBlock: 0, lastBlock: 9, holdsEmbedding: true, holdsHead: false)
        // A device whose decode turns compute-bound part-way through the contexts.
        let device = DeviceFigures(flops: 2e12, memoryBandwidthBytesPerSecond: 4e11, memoryBytes: 1e11)
        for (prompt, chunk, steps) in [(100, 64, 2000), (5, 512, 1), (0, 1, 50), (3000, 512, 300), (700, 700, 0)] {
            var looped = 0.0
            var position = 0
            while position < prompt {
                let tokens = min(chunk, prompt - position)
                looped += stage.seconds(.prefill(position: position, tokens: tokens), on: device)
                position += tokens
            }
            for context in prompt..<(prompt + steps) { looped += stage.seconds(.decode(context: context), on: device) }
            let closed = stage.requestSeconds(promptTokens: prompt, prefillChunk: chunk, decodeSteps: steps, on: device)
            #expect(abs(closed - looped) <= 1e-9 * max(looped, 1e-12), "P \(prompt) K \(chunk) steps \(steps)")
        }
    }

    @Test("a batch reads weights once: memory-bound decode steps batch almost for free, compute adds up")
    func batching() {
        let stage = StepCostModel(source: Self.phi3).stage(firstBlock: 0, lastBlock: 39, holdsEmbedding: true, holdsHead: true)
        let a100 = DevicePreset.a100_40GB.figures
        let one = stage.seconds(.decode(context: 100), on: a100)
        let eight = stage.seconds(batch: Array(repeating: .decode(context: 100), count: 8), on: a100)
        #expect(eight == one)  // still memory-bound at 8 sequences: the weights dominate
        let computeOnly = DeviceFigures(flops: 1e12, memoryBandwidthBytesPerSecond: nil, memoryBytes: 1e11)
        let single = stage.seconds(.decode(context: 100), on: computeOnly)
        let pair = stage.seconds(batch: [.decode(context: 100), .decode(context: 100)], on: computeOnly)
        #expect(abs(pair - 2 * single) <= 1e-12 * pair)
        // Attention grows with the context.
        #expect(stage.seconds(.decode(context: 4000), on: computeOnly) > stage.seconds(.decode(context: 10), on: computeOnly))
        #expect(stage.kvBytes(tokens: 10) == 10 * 40 * 2 * 1280 * 2)
    }

    @Test("a fixed custom profile keeps its per-token FLOPs whatever the context")
    func fixedProfile() {
        let layer = LayerCost(flopsPerToken: 1e9, weightBytes: 1e8, kvBytesPerToken: 1e3, activationBytesPerToken: 16)
        let profile = ModelProfile(name: "toy", blocks: [layer, layer], embedding: layer, head: layer)
        let stage = StepCostModel(source: .fixed(profile)).stage(firstBlock: 0, lastBlock: 1, holdsEmbedding: false, holdsHead: false)
        #expect(stage.attentionFlopsPerPosition == 0)
        #expect(stage.flops(.decode(context: 5000)) == 2e9)
        #expect(stage.flops(.prefill(position: 0, tokens: 10)) == 2e10)
    }
}
