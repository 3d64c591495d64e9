import Foundation
import JSON
import Partitioning
import Profiles
import Testing

import Simulation

@Suite("Scenario files and experiments")
struct ScenarioTests {
    static let tinyPath = Fixtures.packageRoot.appendingPathComponent("examples/scenarios/tiny.json").path

    static func parse(_ text: String) throws -> Scenario {
        try Scenario.parse(
            JSONValue.parse(text),
            topologyFile: { (path: String) throws(JSONError) -> Topology in
                throw JSONError(message: "no files in this test (\(path))")
            },
            modelNamed: { (name: String) throws(JSONError) -> ModelSource in
                do throws(ModelSpecError) {
                    guard let shape = try ModelPreset.shape(named: name) else { throw ModelSpecError("unknown model '\(name)'") }
                    return .shape(shape)
                } catch {
                    throw JSONError(message: error.description)
                }
            })
    }

    static let topology = """
        {"tiers":[{"name":"edge","nodes":[{"id":"e1","device":"jetson-orin-nano","memory_bytes":2e9}],
          "link_to_next":{"bandwidth_bytes_per_s":1.25e8,"latency_s":0.001}},
          {"name":"cloud","nodes":[{"id":"c1","device":"a100-40gb"}]}]}
        """

    @Test("the example scenario validates and reads as written")
    func tinyExample() throws {
        let scenario = try Scenario.load(Self.tinyPath)
        #expect(scenario.name == "tiny")
        #expect(scenario.topology.tiers.map(\.name) == ["edge", "fog", "cloud"])
        #expect(scenario.workloads.map(\.name) == ["short"])
        #expect(scenario.workloads[0].distribution == .uniform)
        #expect(scenario.workloads[0].planning.prefillChunk == 128)
        #expect(scenario.rateFractions == [0.5, 0.9])
        #expect(scenario.drift == [Scenario.DriftEvent(node: "edge-2", when: .fraction(0.5), slowdown: 3)])
        #expect(try Experiment(scenario: scenario).systems.map(\.name) == ["hyperion", "gpipe", "heft", "bsdp+round-robin"])
    }

    @Test(
        "a bad field is refused with its path",
        arguments: [
            (#""workloads":[{"name":"a","prompt_tokens":10,"output_tokens":0}]"#, "scenario.workloads[0].output_tokens"),
            (#""workloads":[{"name":"a","prompt_tokens":10,"output_tokens":5,"distribution":"zipf"}]"#, "scenario.workloads[0].distribution"),
            (#""workloads":[{"prompt_tokens":10,"output_tokens":5,"decode_batch":0}]"#, "scenario.workloads[0].decode_batch"),
            (#""workloads":[{"prompt_tokens":10,"output_tokens":5}],"rates":[1,-2]"#, "scenario.rates[1]"),
            (#""workloads":[{"prompt_tokens":10,"output_tokens":5,"rates":[0]}]"#, "scenario.workloads[0].rates[0]"),
            (#""workloads":[{"prompt_tokens":10,"output_tokens":5}],"drift":[{"node":"x9","at_s":1,"slowdown":2}]"#, "scenario.drift[0].node"),
            (#""workloads":[{"prompt_tokens":10,"output_tokens":5}],"drift":[{"node":"e1","slowdown":2}]"#, "scenario.drift[0]"),
            (#""workloads":[{"prompt_tokens":10,"output_tokens":5}],"arrival":"uniform""#, "scenario.arrival"),
            (#""workloads":[]"#, "scenario.workloads"),
        ])
    func refusals(fragment: String, path: String) throws {
        let text = #"{"model":"phi-3-mini:q4_0","topology":"# + Self.topology + "," + fragment + "}"
        #expect {
            try Self.parse(text)
        } throws: { error in
            (error as? JSONError)?.path == path
        }
    }

    @Test("topology and model errors name the scenario field and the fault inside")
    func nestedErrors() throws {
        let badTopology = #"{"model":"phi-3-mini","topology":{"tiers":[{"name":"a","nodes":[{"id":"n","flops":0,"memory_bytes":1}]}]},"workloads":[{"prompt_tokens":1,"output_tokens":1}]}"#
        #expect { try Self.parse(badTopology) } throws: { ($0 as? JSONError)?.path == "scenario.topology.tiers[0].nodes[0].flops" }
        let badModel = #"{"model":"gpt-9","topology":"# + Self.topology + #","workloads":[{"prompt_tokens":1,"output_tokens":1}]}"#
        #expect { try Self.parse(badModel) } throws: { ($0 as? JSONError)?.path == "scenario.model" }
    }

    @Test("a workload's own rates replace the scenario's for it; the other workloads keep the scenario's")
    func workloadRates() throws {
        let text = #"{"model":"phi-3-mini:q4_0","topology":"# + Self.topology
            + #","workloads":[{"name":"a","prompt_tokens":64,"output_tokens":8,"context":128,"rates":[3,6]},"#
            + #"{"name":"b","prompt_tokens":64,"output_tokens":8,"context":128}],"systems":["hyperion"],"rates":[1],"requests":20}"#
        let scenario = try Self.parse(text)
        #expect(scenario.workloads[0].rates == [3, 6])
        #expect(scenario.rateFractions.isEmpty)
        let report = try Experiment(scenario: scenario).run()
        #expect(report.points.filter { $0.workload == "a" }.map(\.load) == [.rate(3), .rate(6)])
        #expect(report.points.filter { $0.workload == "b" }.map(\.load) == [.rate(1)])
        // Rates given per workload only are load points: no saturation run is added.
        let only = try Self.parse(text.replacingOccurrences(of: #","rates":[1]"#, with: ""))
        #expect(only.rateFractions.isEmpty)
    }

    @Test("an unknown system is refused by name")
    func unknownSystem() throws {
        var scenario = try Scenario.load(Self.tinyPath)
        scenario.systems = ["hyperion", "bsdp+fastest"]
        #expect(throws: SimulationError.self) { try Experiment(scenario: scenario) }
        #expect(SystemSpec.named("gpipe+arts") == SystemSpec(name: "gpipe+arts", partition: .gpipe, routing: .arts))
    }

    @Test("a system whose plan does not fit memory is reported infeasible, not repaired; the others run")
    func infeasibleReported() throws {
        // Phi-3-mini in f16 (~7.6 GB): half of it does not fit a 2 GB edge node, so GPipe's equal
        // split is infeasible, while BSDP gives the edge a block or two.
        let text = #"{"model":"phi-3-mini:f16","topology":"# + Self.topology
            + #","workloads":[{"name":"s","prompt_tokens":64,"output_tokens":16,"context":128}],"systems":["hyperion","gpipe"],"rates":[2],"requests":50}"#
        let scenario = try Self.parse(text)
        let report = try Experiment(scenario: scenario).run()
        let gpipe = try #require(report.points.first { $0.system == .gpipe })
        #expect(gpipe.result == nil)
        #expect(gpipe.plan.infeasibility?.tierName == "edge")
        let hyperion = try #require(report.points.first { $0.system == .hyperion })
        #expect(hyperion.result?.completed == 50)
        let json = report.jsonValue
        let results = try #require(json["results"]?.arrayValue)
        #expect(results.count == 2)
        #expect(results[1]["infeasible"]?["tier"]?.stringValue == "edge")
        #expect(results[0]["mean_latency_s"]?.doubleValue ?? 0 > 0)
        #expect(results[0]["utilization"]?["cloud"]?.doubleValue != nil)
    }

    @Test("rate fractions are set from hyperion's simulated saturated throughput, near the plan's")
    func rateFractions() throws {
        var scenario = try Scenario.load(Self.tinyPath)
        scenario.systems = ["hyperion"]
        scenario.drift = []
        scenario.requests = 200
        scenario.rateFractions = [0.5]
        let report = try Experiment(scenario: scenario).run()
        let saturation = try #require(report.saturation.first)
        let measured = try #require(saturation.requestsPerSecond)
        let planned = try #require(saturation.plannedRequestsPerSecond)
        // Batching lets the simulated pipeline beat the B = 1 plan; it never falls far below it.
        #expect(measured > 0.9 * planned)
        let point = try #require(report.points.first)
        #expect(point.rateFraction == 0.5)
        #expect(point.load == .rate(0.5 * measured))
    }
}
