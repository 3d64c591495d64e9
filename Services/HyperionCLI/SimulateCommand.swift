import ArgumentParser
import Foundation
import JSON
import Partitioning
import Profiles
import Simulation
import Measurement

/// `hyperion simulate`: the discrete-event simulator on a scenario file, comparing systems at
/// load points, with the same planner and router the services run.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate systems on a scenario (topology, model, workloads, load points) and compare them.",
        discussion: """
            Each system is planned with the planner the services use (bsdp, gpipe or heft) and its \
            requests are routed by the scheduler's router (arts, round-robin or heft). Nodes run one \
            step or batch at a time for its roofline time on their device; inter-tier links are FIFO \
            byte servers shared by all their traffic plus latency; the scheduler sees nodes through \
            one-second heartbeats. A system whose plan does not fit memory is reported infeasible, \
            never repaired.

            Systems: hyperion (bsdp+arts), gpipe (gpipe+round-robin), heft (heft+heft), or any \
            partition+routing pair such as bsdp+round-robin or gpipe+arts.

            Load points: --rates in requests/s, --rate-fractions of hyperion's simulated saturated \
            throughput (measured first, closed loop), --concurrency for closed loops. Flags replace \
            the scenario's load points. Progress goes to stderr.

            Scenario files: see examples/scenarios/README.md.

            Examples:
              hyperion simulate --scenario examples/scenarios/tiny.json
              hyperion simulate --scenario examples/scenarios/tiny.json \\
                --systems hyperion,gpipe,bsdp+round-robin --rate-fractions 0.3,0.9 --json
            """
    )

    @Option(help: ArgumentHelp("The scenario file.", valueName: "file.json"))
    var scenario: String?

    @Option(help: ArgumentHelp("Systems to compare, comma-separated (default: the scenario's).", valueName: "list"))
    var systems: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Open-loop arrival rates in requests/s, comma-separated.", valueName: "r1,r2"))
    var rates: String?

    @Option(
        name: .customLong("rate-fractions"),
        help: ArgumentHelp("Rates as fractions of hyperion's simulated saturated throughput.", valueName: "f1,f2"))
    var rateFractions: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Closed-loop client counts, comma-separated.", valueName: "c1,c2"))
    var concurrency: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Requests per load point (default: the scenario's).", valueName: "N"))
    var requests: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Seed of arrivals, lengths and heartbeat phases (default: the scenario's).", valueName: "N"))
    var seed: String?

    @Flag(help: "Print the results as JSON ({\"results\":[…]}) instead of the table.")
    var json = false

    struct BadInput: Error {
        let message: String
    }

    func run() throws {
        let experiment: Experiment
        do {
            experiment = try makeExperiment()
        } catch {
            FileHandle.standardError.write(Data("hyperion simulate: \(error.message)\n".utf8))
            throw ExitCode(2)
        }
        let clock = ContinuousClock()
        let started = clock.now
        let report = experiment.run { line in
            let elapsed = clock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            FileHandle.standardError.write(Data((String(format: "[%6.1f s] ", seconds) + line + "\n").utf8))
        }
        if json {
            print(report.jsonValue.serialized(pretty: true))
        } else {
            print(Self.table(report))
        }
    }

    func makeExperiment() throws(BadInput) -> Experiment {
        guard let path = scenario else {
            throw BadInput(message: "--scenario is required (a scenario file, e.g. examples/scenarios/tiny.json)")
        }
        let loaded: Scenario
        do {
            loaded = try Scenario.load(path)
        } catch {
            throw BadInput(message: "\(path): \(error.description)")
        }
        var experiment: Experiment
        do {
            experiment = try Experiment(scenario: loaded)
            if let systems {
                experiment.systems = try Experiment.systems(Self.list(systems), path: "--systems")
            }
        } catch {
            throw BadInput(message: "\(error.description)")
        }
        if rates != nil || rateFractions != nil || concurrency != nil {
            experiment.rates = try rates.map { text throws(BadInput) in try Self.positiveNumbers(text, flag: "--rates") } ?? []
            experiment.workloadRates = [:]
            experiment.rateFractions =
                try rateFractions.map { text throws(BadInput) in try Self.positiveNumbers(text, flag: "--rate-fractions") } ?? []
            experiment.concurrency =
                try concurrency.map { text throws(BadInput) in try Self.positiveIntegers(text, flag: "--concurrency") } ?? []
        }
        if let requests {
            guard let count = Int(requests), count >= 1 else {
                throw BadInput(message: "--requests: expected an integer ≥ 1, got '\(requests)'")
            }
            experiment.requests = count
        }
        if let seed {
            guard let value = UInt64(seed) else { throw BadInput(message: "--seed: expected an integer ≥ 0, got '\(seed)'") }
            experiment.seed = value
        }
        return experiment
    }

    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    static func positiveNumbers(_ text: String, flag: String) throws(BadInput) -> [Double] {
        var values: [Double] = []
        for item in list(text) {
            guard let value = Double(item), value.isFinite, value > 0 else {
                throw BadInput(message: "\(flag): expected numbers > 0, got '\(item)'")
            }
            values.append(value)
        }
        if values.isEmpty { throw BadInput(message: "\(flag): expected at least one number") }
        return values
    }

    static func positiveIntegers(_ text: String, flag: String) throws(BadInput) -> [Int] {
        var values: [Int] = []
        for item in list(text) {
            guard let value = Int(item), value >= 1 else {
                throw BadInput(message: "\(flag): expected integers ≥ 1, got '\(item)'")
            }
            values.append(value)
        }
        if values.isEmpty { throw BadInput(message: "\(flag): expected at least one integer") }
        return values
    }

    /// One line per (workload, system, load point); utilisation per tier at the end.
    static func table(_ report: ExperimentReport) -> String {
        var lines = ["scenario \(report.scenario), \(report.requests) requests per point, seed \(report.seed)"]
        for saturation in report.saturation {
            if let rate = saturation.requestsPerSecond {
                let planned = saturation.plannedRequestsPerSecond.map { String(format: " (plan: %.3f)", $0) } ?? ""
                lines.append(
                    "\(saturation.workload): hyperion saturates at "
                        + String(format: "%.3f req/s", rate) + planned + " with \(saturation.concurrency) clients")
            }
        }
        lines += report.notes
        lines.append("")
        let header = [
            padded("workload", 12), padded("system", 18), padded("load", 20), padded("mean", 10), padded("p95", 10), padded("ttft", 10),
            padded("tokens/s", 10), padded("done", 7), padded("failed", 7), "utilisation (tiers, links)",
        ].joined()
        lines.append(header)
        for point in report.points {
            var load: String
            switch point.load {
            case .rate(let rate): load = String(format: "%.3f/s", rate)
            case .concurrency(let clients): load = "\(clients) clients"
            }
            if let fraction = point.rateFraction { load += String(format: " (%.2f)", fraction) }
            let prefix = padded(point.workload, 12) + padded(point.system.name, 18) + padded(load, 20)
            guard let result = point.result else {
                lines.append(prefix + "infeasible: " + (point.plan.infeasibility?.reason ?? "no plan"))
                continue
            }
            let utilisation = (result.tierUtilization + result.linkUtilization)
                .map { "\($0.name) \(String(format: "%.2f", $0.fraction))" }.joined(separator: " ")
            lines.append(
                prefix + padded(PlanTable.seconds(result.meanLatencySeconds), 10)
                    + padded(PlanTable.seconds(result.p95LatencySeconds), 10) + padded(PlanTable.seconds(result.meanTTFTSeconds), 10)
                    + padded(String(format: "%.1f", result.tokensPerSecond), 10) + padded("\(result.completed)", 7)
                    + padded("\(result.failed)", 7) + utilisation)
        }
        return lines.joined(separator: "\n")
    }

}
