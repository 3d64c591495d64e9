import ArgumentParser
import Foundation
import JSON
import Profiles
import Reporting
import Simulation

/// `hyperion report`: the comparison of hyperion with GPipe, HEFT and the ablations, simulated
/// in-process and (from saved files) live, as one self-contained HTML page plus a JSON of every
/// figure.
struct ReportCommand: ParsableCommand {
    static let defaultScenarios = ["paper-testbed", "paper-testbed-f16", "fog-heavy", "cloud-light", "drift"].map {
        "examples/scenarios/\($0).json"
    }

    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Compare hyperion with GPipe, HEFT and the ablations; write an HTML report and a JSON of every figure.",
        discussion: """
            What it does, in order:
              1. Simulated results. For each scenario file it measures hyperion's saturated throughput \
            on each workload (a closed loop whose clients double while the rate still grows), then simulates every system at the scenario's load points \
            (0.3, 0.5, 0.7 and 0.9 of that throughput in the shipped scenarios), then runs each system \
            closed-loop at its own saturation (for utilisation at saturation). Same planner and \
            router as the services. With --simulated FILE it reads saved results instead \
            (`hyperion simulate --json`, or a file written by --simulated-output).
              2. Live results. Each --live FILE is a saved `hyperion bench load --json` result of \
            running services; it is shown beside the simulation, never mixed into it. \
            scripts/live-experiment writes one per system from the emulated paper testbed.
              3. Figures. Per workload: mean and p95 latency vs load per system, the latency CDF, \
            time to first token, utilisation per tier at the highest load and at saturation, and \
            planned vs measured stage times. Across workloads: the headline (hyperion's reduction \
            of mean latency against gpipe and heft at each load point), the ablation (how much of \
            it comes from the partition and how much from the routing), and every load point where \
            another system won, with the reason read from the plans and runs.

            Systems: hyperion (bsdp+arts), gpipe (gpipe+round-robin), heft (heft+heft) and the \
            ablations bsdp+round-robin, bsdp+heft, gpipe+arts, heft+arts. At an open-loop rate \
            hyperion first measures the rate over the point's first 100 arrivals and plans for it \
            (as hyperion plan --rate does); bsdp+arts written out keeps the least-bottleneck plan. \
            A plan that does not fit \
            memory is reported infeasible, never repaired. Progress goes to stderr; the headline \
            goes to stdout.

            Examples:
              hyperion report                                   # the five shipped scenarios
              hyperion report --requests 100 --output /tmp/r.html  # a quick, noisier pass
              hyperion report --scenarios examples/scenarios/paper-testbed.json \\
                --simulated-output results/sim.json
              hyperion report --simulated results/sim.json --live results/live-*.json
              hyperion report --skip-simulation --live results/live.json
            """
    )

    @Option(
        help: ArgumentHelp(
            "Scenario files to simulate, comma-separated (default: the five experiment scenarios in examples/scenarios/).", valueName: "a.json,b.json"))
    var scenarios: String?

    @Option(
        name: .customLong("simulated"), parsing: .upToNextOption,
        help: ArgumentHelp("Read saved simulated results instead of simulating (one or more files; repeatable).", valueName: "file.json"))
    var simulatedFiles: [String] = []

    @Option(
        name: .customLong("live"), parsing: .upToNextOption,
        help: ArgumentHelp(
            "Saved `hyperion bench load --json` results of running services (one or more files, so a shell glob works; repeatable).",
            valueName: "file.json"))
    var liveFiles: [String] = []

    @Option(help: ArgumentHelp("Systems to simulate, comma-separated (default: each scenario's).", valueName: "list"))
    var systems: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Requests per load point (default: each scenario's; fewer is faster and noisier).", valueName: "N"))
    var requests: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Seed of arrivals and lengths (default: each scenario's).", valueName: "N"))
    var seed: String?

    @Flag(name: .customLong("no-saturation"), help: "Skip the closed-loop run of every system at its own saturation.")
    var noSaturation = false

    @Flag(name: .customLong("skip-simulation"), help: "Report only the given result files; simulate nothing.")
    var skipSimulation = false

    @Option(help: ArgumentHelp("Where to write the HTML report.", valueName: "file.html"))
    var output = "report.html"

    @Option(
        name: .customLong("figures"),
        help: ArgumentHelp("Where to write every figure as JSON (default: the report's path with .json).", valueName: "file.json"))
    var figuresPath: String?

    @Option(
        name: .customLong("simulated-output"),
        help: ArgumentHelp("Also write the raw simulated results, to read back with --simulated.", valueName: "file.json"))
    var simulatedOutput: String?

    /// Old spellings of --output and --simulated-output, kept hidden for one release.
    @Option(name: .customLong("out"), help: .hidden)
    var oldOut: String?
    @Option(name: .customLong("save-results"), help: .hidden)
    var oldSaveResults: String?

    struct BadInput: Error {
        let message: String
    }

    mutating func validate() throws {
        if let oldOut { output = oldOut }
        if let oldSaveResults {
            guard simulatedOutput == nil else {
                throw ValidationError("--save-results and --simulated-output: give one (--save-results is the old spelling)")
            }
            simulatedOutput = oldSaveResults
        }
        if skipSimulation && simulatedFiles.isEmpty && liveFiles.isEmpty {
            throw ValidationError("--skip-simulation leaves nothing to report: give --live or --simulated result files")
        }
    }

    func run() throws {
        let clock = ContinuousClock()
        let started = clock.now
        func progress(_ line: String) {
            let elapsed = clock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            FileHandle.standardError.write(Data((String(format: "[%6.1f s] ", seconds) + line + "\n").utf8))
        }
        var results = ResultSet()
        var context: [String] = []
        do throws(BadInput) {
            let experiments = simulatedFiles.isEmpty && !skipSimulation ? try makeExperiments() : []
            let live = try liveFiles.map { path throws(BadInput) in (path, try Self.readResults(path, source: .live)) }
            for path in simulatedFiles {
                results.append(try Self.readResults(path, source: .simulated))
                context.append("Simulated results read from \(path).")
            }
            if !experiments.isEmpty {
                let documents = simulate(experiments, progress: progress)
                for (experiment, document) in zip(experiments, documents) {
                    results.append(
                        try Self.parse(document, source: .simulated, name: experiment.scenario.name, path: experiment.scenario.name))
                    context.append(
                        "Simulated: scenario \(experiment.scenario.name), \(experiment.requests) requests per load point, seed \(experiment.seed).")
                }
                if let simulatedOutput {
                    try Self.write(JSONValue.object(JSONObject([("runs", .array(documents))])).serialized(pretty: true), to: simulatedOutput)
                    progress("raw results written to \(simulatedOutput)")
                }
            }
            for (path, set) in live {
                results.append(set)
                let scale = set.timeScale.map { ", emulated at time scale \($0): latencies are wall-clock seconds, not divided by it" } ?? ""
                context.append("Live results read from \(path)\(scale) (broker overhead is real and unscaled).")
            }
        } catch {
            FileHandle.standardError.write(Data("hyperion report: \(error.message)\n".utf8))
            throw ExitCode(2)
        }
        let figures = ExperimentFigures(results)
        let figuresFile = figuresPath ?? Self.replacingExtension(of: output, with: "json")
        do throws(BadInput) {
            try Self.write(figures.jsonValue.serialized(pretty: true), to: figuresFile)
            try Self.write(ReportHTML.render(figures, title: "Hyperion against GPipe and HEFT", context: context), to: output)
        } catch {
            FileHandle.standardError.write(Data("hyperion report: \(error.message)\n".utf8))
            throw ExitCode(1)
        }
        progress("report written to \(output), figures to \(figuresFile)")
        print(Self.headline(figures))
    }

    // MARK: Simulation

    /// Reads each scenario with `hyperion simulate`'s own flag handling, so both commands accept
    /// and refuse the same --systems, --requests and --seed.
    func makeExperiments() throws(BadInput) -> [Experiment] {
        let paths = scenarios.map(SimulateCommand.list) ?? Self.defaultScenarios
        if paths.isEmpty { throw BadInput(message: "--scenarios: expected at least one scenario file") }
        var experiments: [Experiment] = []
        for path in paths {
            var arguments = ["--scenario", path]
            for (flag, value) in [("--systems", systems), ("--requests", requests), ("--seed", seed)] {
                if let value { arguments += [flag, value] }
            }
            do {
                experiments.append(try SimulateCommand.parse(arguments).makeExperiment())
            } catch let error as SimulateCommand.BadInput {
                throw BadInput(message: error.message)
            } catch {
                throw BadInput(message: SimulateCommand.message(for: error))
            }
        }
        return experiments
    }

    /// Runs every experiment and, unless --no-saturation, every system at its own saturation
    /// (the same closed-loop search that sets hyperion's, so the figures compare).
    func simulate(_ experiments: [Experiment], progress: (String) -> Void) -> [JSONValue] {
        var runs = 0
        var documents: [JSONValue] = []
        for (index, experiment) in experiments.enumerated() {
            let prefix = "scenario \(index + 1)/\(experiments.count) \(experiment.scenario.name)"
            func step(_ line: String) {
                runs += 1
                progress("[\(prefix), run \(runs)] \(line)")
            }
            var report = experiment.run(progress: step)
            if !noSaturation {
                for workload in experiment.scenario.workloads {
                    for system in experiment.systems {
                        if let point = experiment.saturationPoint(system, for: workload, progress: step) {
                            report.points.append(point)
                        }
                    }
                }
            }
            documents.append(report.jsonValue)
        }
        return documents
    }

    // MARK: Files

    static func readResults(_ path: String, source: ResultSource) throws(BadInput) -> ResultSet {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw BadInput(message: "\(path): cannot read (\(error.localizedDescription))")
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(text)
        } catch {
            throw BadInput(message: "\(path): \(error.description)")
        }
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return try parse(value, source: source, name: name, path: path)
    }

    static func parse(_ value: JSONValue, source: ResultSource, name: String, path: String) throws(BadInput) -> ResultSet {
        do {
            return try ResultSet.parse(value, source: source, defaultScenario: name)
        } catch {
            throw BadInput(message: "\(path): \(error.description)")
        }
    }

    static func write(_ text: String, to path: String) throws(BadInput) {
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        } catch {
            throw BadInput(message: "\(path): cannot write (\(error.localizedDescription))")
        }
    }

    static func replacingExtension(of path: String, with ext: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.pathExtension.isEmpty ? path + "." + ext : url.deletingPathExtension().appendingPathExtension(ext).path
    }

    /// The headline as text: one line per (source, scenario, workload, load).
    static func headline(_ figures: ExperimentFigures) -> String {
        var lines = ["mean latency reduction of hyperion (positive = hyperion faster; † = that system overloaded)"]
        for row in figures.headline {
            lines.append(
                "\(row.source.rawValue) \(row.scenario) \(row.workload) load \(ReportFormat.load(row.load)): "
                    + "vs \(row.baseline) \(ReportFormat.percent(row.reductionPercent))"
                    + " (hyperion \(ReportFormat.seconds(row.hyperionMeanSeconds))\(row.hyperionOverloaded ? " †" : ""), "
                    + "\(row.baseline) \(ReportFormat.seconds(row.baselineMeanSeconds))\(row.baselineOverloaded ? " †" : ""))")
        }
        if !figures.baselineWins.isEmpty {
            lines.append("\(figures.baselineWins.count) load points where another system beat hyperion: see the report")
        }
        return lines.joined(separator: "\n")
    }
}
