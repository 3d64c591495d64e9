import ArgumentParser
import Foundation
import Partitioning
import Profiles
import Simulation

/// `hyperion bench plan`: how long planning takes, for the sizes docs/design.md §6 promises.
struct BenchPlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Time BSDP (and the GPipe and HEFT baselines) on three problem sizes.",
        discussion: """
            Scenarios: phi-3-medium:q4_0 on a Jetson Orin Nano / T4 / A100 testbed (3 tiers, target \
            < 1 ms), 80 blocks on 8 tiers, and 1,000 blocks on 16 tiers (target < 1 s), the last two \
            synthetic with a fixed seed; the link-bound variant (slow links set the bottleneck, so \
            every tier has slack) is the worst case of the idle-latency tie-break. Each is planned repeatedly; the median and minimum wall time \
            are printed, with the bottleneck found so runs can be compared.

            Then the choice for an arrival rate (`hyperion plan --rate`) on the same testbed: building \
            the candidates alone (target < 10 ms), and with each simulated at the rate over 500 requests \
            (targets < 2 s for the short workload, < 10 s for the long one), three runs each.

            Examples:
              hyperion bench plan
              hyperion bench plan --seconds 2
            """
    )

    @Option(help: "Least wall time spent per scenario and policy, in seconds.")
    var seconds: Double = 0.5

    @Option(help: "Most runs per scenario and policy.")
    var maxRuns: Int = 2000

    func run() throws {
        let scenarios: [(name: String, target: String, instance: BenchScenario)] = [
            ("phi-3-medium:q4_0 × 3 tiers", "< 1 ms", .phi3MediumTestbed()),
            ("80 blocks × 8 tiers", "", .synthetic(blocks: 80, tiers: 8, seed: 80)),
            ("1,000 blocks × 16 tiers", "< 1 s", .synthetic(blocks: 1000, tiers: 16, seed: 1000)),
            ("1,000 × 16, link-bound", "< 1 s", .synthetic(blocks: 1000, tiers: 16, seed: 1000, linkBound: true)),
        ]
        print("scenario                      policy  runs    median        min           bottleneck")
        for scenario in scenarios {
            for policy in PartitionPolicy.allCases {
                let (runs, median, minimum, outcome) = time(scenario.instance, policy: policy)
                let result: String
                switch outcome {
                case .plan(let partition): result = PlanTable.seconds(partition.bottleneckSeconds) + " /request"
                case .infeasible(let reason): result = "infeasible: \(reason.reason)"
                }
                let target = policy == .bsdp && !scenario.target.isEmpty ? "  (target \(scenario.target))" : ""
                print(
                    scenario.name.padding(toLength: 30, withPad: " ", startingAt: 0)
                        + policy.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                        + String(runs).padding(toLength: 8, withPad: " ", startingAt: 0)
                        + PlanTable.seconds(median).padding(toLength: 14, withPad: " ", startingAt: 0)
                        + PlanTable.seconds(minimum).padding(toLength: 14, withPad: " ", startingAt: 0)
                        + result + target)
            }
        }
        timeRateChoice()
    }

    /// The rate-aware choice on the testbed: candidates alone, then with the scoring runs.
    private func timeRateChoice() {
        print("\nchoice for a rate                    step         runs  median        min           chosen")
        let testbed = BenchScenario.phi3MediumTestbed()
        let cases: [(name: String, dtype: WeightDType, prompt: Int, output: Int, rate: Double, target: String)] = [
            ("phi-3-medium:q4_0 short, 2 req/s", .q4_0, 256, 64, 2, "< 2 s"),
            ("phi-3-medium:f16 long, 0.5 req/s", .f16, 512, 1024, 0.5, "< 10 s"),
        ]
        let clock = ContinuousClock()
        func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        }
        for entry in cases {
            var planning = Workload.default
            planning.promptTokens = entry.prompt
            planning.outputTokens = entry.output
            planning.context = max(planning.context, entry.prompt + entry.output)
            let planner = RatePlanner(
                model: .shape(ModelPreset.phi3Medium.shape(dtype: entry.dtype)), topology: testbed.topology,
                workload: ScenarioWorkload(name: "bench", distribution: .uniform, planning: planning))
            var building: [Double] = []
            var scoring: [Double] = []
            var chosen = ""
            for _ in 0..<3 {
                let start = clock.now
                _ = planner.candidates()
                building.append(seconds(clock.now - start))
                let scored = clock.now
                if let choice = planner.choose(rate: entry.rate) {
                    chosen = choice.candidates[choice.chosen].partition.stages.map { "\($0.tierName) \($0.blockRange)" }
                        .joined(separator: ", ")
                }
                scoring.append(seconds(clock.now - scored))
            }
            building.sort()
            scoring.sort()
            for (step, samples, target) in [("candidates", building, "< 10 ms"), ("+ scoring", scoring, entry.target)] {
                print(
                    entry.name.padding(toLength: 37, withPad: " ", startingAt: 0)
                        + step.padding(toLength: 13, withPad: " ", startingAt: 0) + "3     "
                        + PlanTable.seconds(samples[1]).padding(toLength: 14, withPad: " ", startingAt: 0)
                        + PlanTable.seconds(samples[0]).padding(toLength: 14, withPad: " ", startingAt: 0)
                        + (step == "+ scoring" ? chosen + "  " : "") + "(target \(target))")
            }
        }
    }

    private func time(_ scenario: BenchScenario, policy: PartitionPolicy) -> (Int, Double, Double, PlanOutcome) {
        let clock = ContinuousClock()
        var samples: [Double] = []
        var outcome = PlanOutcome.infeasible(
            Infeasibility(policy: policy, tierIndex: 0, tierName: "", needBytes: 0, maxNodeBytes: 0, reason: "not run"))
        let started = clock.now
        while samples.count < max(maxRuns, 1) {
            let start = clock.now
            outcome = Planner.plan(
                model: scenario.model, topology: scenario.topology, workload: scenario.workload, policy: policy)
            let elapsed = clock.now - start
            samples.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
            if samples.count >= 3, (clock.now - started) > .milliseconds(Int(seconds * 1000)) { break }
        }
        samples.sort()
        return (samples.count, samples[samples.count / 2], samples[0], outcome)
    }
}

/// A planning problem for the benchmark.
struct BenchScenario {
    var model: ModelProfile
    var topology: Topology
    var workload: Workload

    /// Phi-3-medium (q4_0) on two Jetson Orin Nano edge nodes (6 GB usable), two T4 fog nodes and one
    /// A100 40 GB over 1 Gbit/s links: the shape of examples/paper-testbed.json.
    static func phi3MediumTestbed() -> BenchScenario {
        let workload = Workload.default
        let model = ModelPreset.phi3Medium.shape(dtype: .q4_0).profile(for: workload)
        func nodes(_ prefix: String, _ count: Int, _ device: DevicePreset) -> [Topology.Node] {
            (1...count).map { Topology.Node(id: "\(prefix)\($0)", device: device.rawValue, figures: device.figures) }
        }
        var edgeNodes = nodes("edge", 2, .jetsonOrinNano)
        for index in edgeNodes.indices { edgeNodes[index].figures.memoryBytes = 6e9 }
        let topology = Topology(tiers: [
            .init(name: "edge", nodes: edgeNodes,
                linkToNext: .init(bandwidthBytesPerSecond: 125e6, latencySeconds: 0.001)),
            .init(name: "fog", nodes: nodes("fog", 2, .t4),
                linkToNext: .init(bandwidthBytesPerSecond: 125e6, latencySeconds: 0.02)),
            .init(name: "cloud", nodes: nodes("cloud", 1, .a100_40GB)),
        ])
        return BenchScenario(model: model, topology: topology, workload: workload)
    }

    /// Heterogeneous blocks and tiers from a fixed seed, memory ample enough to be feasible but
    /// tight enough that not every node fits every range. `linkBound` makes the links so slow that
    /// one of them is the bottleneck and the tie-break DP must weigh nearly every range.
    static func synthetic(blocks: Int, tiers: Int, seed: UInt64, linkBound: Bool = false) -> BenchScenario {
        var state = seed
        func uniform() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
        let layers = (0..<blocks).map { _ in
            LayerCost(
                flopsPerToken: 1e9 * (0.5 + uniform()), weightBytes: 2e8 * (0.5 + uniform()),
                kvBytesPerToken: 4e4 * (0.5 + uniform()), activationBytesPerToken: 8192)
        }
        let none = LayerCost(flopsPerToken: 0, weightBytes: 1e8, kvBytesPerToken: 0, activationBytesPerToken: 8192)
        let model = ModelProfile(name: "synthetic-\(blocks)", blocks: layers, embedding: none, head: none)
        let share = model.totalWeightBytes / Double(tiers)
        let tierList = (0..<tiers).map { tier in
            Topology.Tier(
                name: "t\(tier)",
                nodes: (0..<3).map { node in
                    Topology.Node(
                        id: "t\(tier)n\(node)",
                        figures: DeviceFigures(
                            flops: 1e12 * (1 + 50 * uniform()), memoryBandwidthBytesPerSecond: 1e11 * (1 + 10 * uniform()),
                            memoryBytes: share * (linkBound ? Double(tiers) * 2 : 1.5 + 3 * uniform())))
                },
                linkToNext: tier == tiers - 1
                    ? nil
                    : .init(
                        bandwidthBytesPerSecond: (linkBound ? 1e5 : 1e8) * (1 + 10 * uniform()),
                        latencySeconds: 0.001 + 0.01 * uniform()))
        }
        return BenchScenario(model: model, topology: Topology(tiers: tierList), workload: .default)
    }
}
