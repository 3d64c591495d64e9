import ArgumentParser
import Foundation
import Partitioning
import Profiles
import Simulation

/// `hyperion bench simulate`: how fast the simulator runs at the scale experiments need.
struct BenchSimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Time the simulator on 1,000 nodes and 100,000 short requests (target < 60 s).",
        discussion: """
            A synthetic three-tier topology (60% Jetson Orin Nano at the edge, 30% T4 in the fog, \
            10% A100 40 GB in the cloud, 10 Gbit/s links with 1 ms and 20 ms latency) serves \
            phi-3-mini:q4_0 planned by BSDP and routed by ARTS, with Poisson arrivals at a fraction \
            of the plan's throughput and stage workers batching up to 16 steps. Prints wall time, \
            simulated time, events and the run's figures.

            Examples:
              hyperion bench simulate
              hyperion bench simulate --nodes 100 --requests 10000 --routing round-robin
            """
    )

    @Option(help: "Nodes across the three tiers.")
    var nodes: Int = 1000

    @Option(help: "Requests to simulate.")
    var requests: Int = 100_000

    @Option(name: .customLong("prompt-tokens"), help: "Prompt tokens per request.")
    var promptTokens: Int = 128

    @Option(name: .customLong("output-tokens"), help: "Generated tokens per request.")
    var outputTokens: Int = 128

    @Option(help: "Arrival rate as a fraction of the plan's saturated throughput.")
    var load: Double = 0.7

    @Option(help: "Routing policy: arts, round-robin or heft.")
    var routing: String = "arts"

    @Option(help: "Seed.")
    var seed: UInt64 = 1

    func run() throws {
        guard nodes >= 3, requests >= 1, promptTokens >= 1, outputTokens >= 1, load > 0,
            let system = SystemSpec.named("bsdp+\(routing)")
        else {
            FileHandle.standardError.write(
                Data("hyperion bench simulate: expected --nodes ≥ 3, --requests, --prompt-tokens, --output-tokens ≥ 1, --load > 0, --routing arts|round-robin|heft\n".utf8))
            throw ExitCode(2)
        }
        let cloudCount = max(1, nodes / 10)
        let fogCount = max(1, nodes * 3 / 10)
        let edgeCount = max(1, nodes - fogCount - cloudCount)
        func tier(_ name: String, _ count: Int, _ device: DevicePreset, link: Topology.Link?) -> Topology.Tier {
            Topology.Tier(
                name: name,
                nodes: (0..<count).map { Topology.Node(id: "\(name)-\($0)", device: device.rawValue, figures: device.figures) },
                linkToNext: link)
        }
        let topology = Topology(tiers: [
            tier("edge", edgeCount, .jetsonOrinNano, link: .init(bandwidthBytesPerSecond: 1.25e9, latencySeconds: 0.001)),
            tier("fog", fogCount, .t4, link: .init(bandwidthBytesPerSecond: 1.25e9, latencySeconds: 0.02)),
            tier("cloud", cloudCount, .a100_40GB, link: nil),
        ])
        let workload = ScenarioWorkload(
            name: "short",
            planning: Workload(
                promptTokens: promptTokens, outputTokens: outputTokens, prefillChunk: 512, decodeBatch: 1,
                context: promptTokens + outputTokens, concurrency: 1))
        let model = ModelSource.shape(ModelPreset.phi3Mini.shape(dtype: .q4_0))
        let scenario = Scenario(
            name: "bench", topology: topology, model: model, workloads: [workload], rates: [], requests: requests,
            seed: seed, systems: [system.name])
        let experiment: Experiment
        do {
            experiment = try Experiment(scenario: scenario)
        } catch {
            FileHandle.standardError.write(Data("hyperion bench simulate: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let planned = experiment.plan(system, for: workload)
        guard let partition = planned.outcome.partition else {
            print("infeasible: \(planned.outcome.infeasibility?.reason ?? "no plan")")
            throw ExitCode(3)
        }
        let rate = load * partition.requestsPerSecond
        print("\(nodes) nodes (\(edgeCount) edge, \(fogCount) fog, \(cloudCount) cloud), \(requests) requests of "
            + "\(promptTokens) + \(outputTokens) tokens, \(system.name), Poisson at "
            + String(format: "%.1f req/s (%.2f of the plan's %.1f)", rate, load, partition.requestsPerSecond))
        print("plan: " + partition.stages.map { "\($0.tierName) blocks \($0.blockRange) on \($0.nodes.count) nodes" }
            .joined(separator: ", "))
        let clock = ContinuousClock()
        let start = clock.now
        let result = Simulator.run(
            experiment.input(planned, partition: partition, workload: workload, load: .rate(rate), requests: requests))
        let elapsed = clock.now - start
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        print(String(format: "wall time        %.2f s  (target < 60 s)", wall))
        print(String(format: "simulated time   %.1f s", result.simulatedSeconds))
        print(String(format: "events           %d  (%.2f M/s)", result.events, Double(result.events) / wall / 1e6))
        print("completed        \(result.completed), failed \(result.failed)")
        print(String(format: "latency          mean %.3f s, p95 %.3f s, ttft %.3f s", result.meanLatencySeconds,
            result.p95LatencySeconds, result.meanTTFTSeconds))
        print(String(format: "throughput       %.1f req/s, %.0f tokens/s, mean batch %.2f steps",
            result.requestsPerSecond, result.tokensPerSecond, result.meanBatchSteps))
        print("utilisation      " + result.tierUtilization.map { String(format: "\($0.name) %.2f", $0.fraction) }
            .joined(separator: ", "))
    }
}
