import Foundation
import Partitioning
import Profiles
import Testing

import Simulation

/// The scenarios `hyperion report` runs: they validate, compare the seven systems at the load
/// points fixed before measuring, and on the paper's testbed every system's plan fits.
@Suite("Experiment scenario files")
struct ExperimentScenarioTests {
    static let names = ["paper-testbed", "fog-heavy", "cloud-light", "drift"]

    static func load(_ name: String) throws -> Scenario {
        try Scenario.load(Fixtures.packageRoot.appendingPathComponent("examples/scenarios/\(name).json").path)
    }

    @Test("each experiment scenario validates, with all seven systems and the four load fractions", arguments: names)
    func validates(name: String) throws {
        let scenario = try Self.load(name)
        #expect(scenario.name == name)
        #expect(scenario.topology.tiers.map(\.name) == ["edge", "fog", "cloud"])
        #expect(scenario.rateFractions == [0.3, 0.5, 0.7, 0.9])
        let systems = try Experiment(scenario: scenario).systems.map(\.name)
        #expect(systems == ["hyperion", "gpipe", "heft", "bsdp+round-robin", "bsdp+heft", "gpipe+arts", "heft+arts"])
        #expect(scenario.workloads.map(\.name).first == "short")
    }

    @Test("on paper-testbed, hyperion's, GPipe's and HEFT's plans fit memory for both workloads")
    func paperTestbedFits() throws {
        let scenario = try Self.load("paper-testbed")
        #expect(scenario.workloads.map(\.name) == ["short", "long"])
        let experiment = try Experiment(scenario: scenario)
        for workload in scenario.workloads {
            for system in [SystemSpec.hyperion, .gpipe, .heft] {
                let planned = experiment.plan(system, for: workload)
                #expect(planned.outcome.partition != nil, "\(system.name) on \(workload.name): \(planned.outcome.infeasibility?.reason ?? "")")
            }
        }
    }

    @Test("saturation doubles the closed loop's clients until the rate stops growing: more than the plan's count alone reaches")
    func saturationSearch() throws {
        var experiment = try Experiment(scenario: try Self.load("paper-testbed"))
        experiment.requests = 200
        let workload = experiment.scenario.workloads[0]
        let planned = experiment.plan(.hyperion, for: workload)
        let partition = try #require(planned.outcome.partition)
        let first = experiment.saturationConcurrency(partition)
        let single = Simulator.run(
            experiment.input(planned, partition: partition, workload: workload, load: .concurrency(first), requests: 4 * first))
        let point = try #require(experiment.saturationPoint(.hyperion, for: workload))
        guard case .concurrency(let clients) = point.load else {
            Issue.record("a saturation point is a closed loop, got \(point.load)")
            return
        }
        #expect(clients > first)
        let rate = try #require(point.result?.steadyRequestsPerSecond)
        #expect(rate > 1.05 * single.steadyRequestsPerSecond, "\(rate) req/s at \(clients) clients against \(single.steadyRequestsPerSecond) at \(first)")
        #expect(point.result?.failed == 0)
    }

    @Test("the drift scenario slows one fog node mid-run without changing its advertised device")
    func drift() throws {
        let scenario = try Self.load("drift")
        #expect(scenario.drift == [Scenario.DriftEvent(node: "fog-1", when: .fraction(0.5), slowdown: 3)])
        let fog = try #require(scenario.topology.tiers.first { $0.name == "fog" })
        #expect(fog.nodes.map(\.id) == ["fog-1", "fog-2"])
        #expect(fog.nodes[0].figures == fog.nodes[1].figures)
    }
}
