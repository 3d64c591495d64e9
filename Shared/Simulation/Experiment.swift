import JSON
import Partitioning
import Profiles
import Scheduling

/// A scenario's comparison: every system on every workload at every load point, each planned by
/// the same `Planner` the planner service runs and simulated with the same `Router` the scheduler
/// uses. A system whose plan does not fit is reported infeasible, never repaired.
public struct Experiment: Sendable {
    public var scenario: Scenario
    public var systems: [SystemSpec]
    public var rates: [Double]
    /// Rates of one workload in place of `rates` (the scenario's per-workload `rates`), by name.
    public var workloadRates: [String: [Double]]
    public var rateFractions: [Double]
    public var concurrency: [Int]
    public var requests: Int
    public var seed: UInt64
    /// Whether `hyperion` plans open-loop points for the rate it measures arriving (the live
    /// planner's behaviour) rather than for the least bottleneck alone.
    public var rateAware = true
    /// Arrivals `hyperion` watches before it plans (`learnedRate`).
    public var learningArrivals = 100
    /// Requests simulated per candidate plan when `hyperion` chooses for a rate.
    public var scoringRequests = 300

    /// The scenario's own systems and load points; callers override them from flags.
    public init(scenario: Scenario) throws(SimulationError) {
        self.scenario = scenario
        systems = try Self.systems(scenario.systems, path: "scenario.systems")
        rates = scenario.rates
        workloadRates = Dictionary(
            scenario.workloads.filter { !$0.rates.isEmpty }.map { ($0.name, $0.rates) }, uniquingKeysWith: { first, _ in first })
        rateFractions = scenario.rateFractions
        concurrency = scenario.concurrency
        requests = scenario.requests
        seed = scenario.seed
    }

    /// Reads system names; the error names the first unknown one.
    public static func systems(_ names: [String], path: String) throws(SimulationError) -> [SystemSpec] {
        var specs: [SystemSpec] = []
        for (index, name) in names.enumerated() {
            guard let spec = SystemSpec.named(name) else {
                throw SimulationError("\(path)[\(index)]: unknown system '\(name)' (expected \(SystemSpec.accepted))")
            }
            if !specs.contains(spec) { specs.append(spec) }
        }
        return specs
    }

    /// A system planned for one workload: its partition and step costs, or why it does not fit.
    public struct PlannedSystem: Sendable {
        public var system: SystemSpec
        public var outcome: PlanOutcome
        public var stageCosts: [StageStepCost]
    }

    public func plan(_ system: SystemSpec, for workload: ScenarioWorkload) -> PlannedSystem {
        let profile = scenario.model.profile(for: workload.planning)
        let outcome = Planner.plan(
            model: profile, topology: scenario.topology, workload: workload.planning, policy: system.partition)
        let costs = outcome.partition.map { StepCostModel(source: scenario.model).stages(of: $0) } ?? []
        return PlannedSystem(system: system, outcome: outcome, stageCosts: costs)
    }

    /// The input of one run of a planned system.
    public func input(
        _ planned: PlannedSystem, partition: Partition, workload: ScenarioWorkload, load: LoadPoint, requests: Int
    ) -> SimulationInput {
        SimulationInput(
            topology: scenario.topology, partition: partition, stageCosts: planned.stageCosts,
            routing: planned.system.routing, workload: workload, load: load, arrival: scenario.arrival,
            requests: requests, seed: seed, drift: scenario.drift, heartbeatSeconds: scenario.heartbeatSeconds,
            batching: scenario.batching, deadlineSeconds: scenario.deadlineSeconds)
    }

    /// Clients that keep every stage of `partition` busy: four times the requests in flight that
    /// cover the pipeline's idle latency at its planned throughput (Little's law; a closed loop
    /// with near-balanced stages approaches the bottleneck's rate slowly), and enough to fill
    /// full batches on every node of the widest stage twice.
    public func saturationConcurrency(_ partition: Partition) -> Int {
        let inFlight = partition.bottleneckSeconds > 0
            ? 4 * (partition.idleLatencySeconds / partition.bottleneckSeconds).rounded(.up) : 1
        let widest = partition.stages.map(\.nodes.count).max() ?? 1
        return max(8, Int(min(inFlight, 1e6)), 2 * scenario.batching.maxSteps * widest)
    }

    /// `hyperion`'s simulated saturated throughput on a workload (requests per second, the
    /// steady state of `saturationPoint`), or why there is none.
    public func saturatedThroughput(for workload: ScenarioWorkload, progress: (String) -> Void = { _ in }) -> Saturation {
        let planned = plan(.hyperion, for: workload)
        guard let partition = planned.outcome.partition,
            let point = saturationPoint(.hyperion, for: workload, progress: progress), let result = point.result,
            case .concurrency(let clients) = point.load
        else {
            return Saturation(workload: workload.name, requestsPerSecond: nil, concurrency: 0,
                infeasible: planned.outcome.infeasibility)
        }
        return Saturation(
            workload: workload.name, requestsPerSecond: result.steadyRequestsPerSecond, concurrency: clients,
            plannedRequestsPerSecond: partition.requestsPerSecond, infeasible: nil)
    }

    /// The arrival rate `hyperion` measures before it plans for an open-loop point: the mean over
    /// the point's first `learningArrivals` arrivals (requests over the time they took), as the
    /// live planner measures the scheduler's arrivals. Never the configured rate itself.
    public func learnedRate(for workload: ScenarioWorkload, rate: Double) -> Double {
        var traffic = LoadTraffic(seed: seed, arrival: scenario.arrival, workload: workload)
        var arrived = 0
        var elapsed = 0.0
        while arrived < max(2, min(learningArrivals, requests)) {
            let next = traffic.nextArrival(ratePerSecond: rate)
            arrived += next.requests
            elapsed += next.gapSeconds
        }
        return elapsed > 0 ? Double(arrived) / elapsed : rate
    }

    /// How `hyperion` chooses its plan at a learned rate (`RatePlanner`, on its own seed).
    public func ratePlanner(for workload: ScenarioWorkload) -> RatePlanner {
        RatePlanner(
            model: scenario.model, topology: scenario.topology, workload: workload, requests: scoringRequests,
            batching: scenario.batching, deadlineSeconds: scenario.deadlineSeconds)
    }

    /// The closed loop that saturates `system` on a workload: from `saturationConcurrency`
    /// clients, doubling while the steady rate still grows by more than 5% and no request fails
    /// (at most five doublings); the run with the highest steady rate. A closed loop of C clients
    /// cannot exceed C / latency (Little's law), so one fixed count stops short of the busiest
    /// stage's capacity when batching makes stages faster than the plan's one-step model. Nil
    /// when the system's plan does not fit.
    public func saturationPoint(
        _ system: SystemSpec, for workload: ScenarioWorkload, progress: (String) -> Void = { _ in }
    ) -> ExperimentPoint? {
        let planned = plan(system, for: workload)
        guard let partition = planned.outcome.partition else { return nil }
        var clients = saturationConcurrency(partition)
        var best: (clients: Int, result: SimulationResult)?
        for _ in 0...5 {
            progress("\(workload.name): \(system.name) closed loop at \(clients) clients")
            let result = Simulator.run(
                input(planned, partition: partition, workload: workload, load: .concurrency(clients),
                    requests: max(requests, 4 * clients)))
            let previous = best?.result.steadyRequestsPerSecond ?? 0
            if best == nil || (result.failed == 0 && result.steadyRequestsPerSecond > previous) {
                best = (clients, result)
            }
            if result.failed > 0 || result.steadyRequestsPerSecond < previous * 1.05 { break }
            clients *= 2
        }
        guard let best else { return nil }
        return ExperimentPoint(
            system: system, workload: workload.name, load: .concurrency(best.clients), rateFraction: nil,
            plan: planned.outcome, result: best.result)
    }

    public struct Saturation: Sendable {
        public var workload: String
        public var requestsPerSecond: Double?
        public var concurrency: Int
        /// 1 / the plan's bottleneck (§6), for comparison.
        public var plannedRequestsPerSecond: Double?
        public var infeasible: Infeasibility?

        public init(
            workload: String, requestsPerSecond: Double?, concurrency: Int, plannedRequestsPerSecond: Double? = nil,
            infeasible: Infeasibility?
        ) {
            self.workload = workload
            self.requestsPerSecond = requestsPerSecond
            self.concurrency = concurrency
            self.plannedRequestsPerSecond = plannedRequestsPerSecond
            self.infeasible = infeasible
        }
    }

    /// Runs everything, reporting progress (one line per run) through `progress`.
    public func run(progress: (String) -> Void = { _ in }) -> ExperimentReport {
        var report = ExperimentReport(scenario: scenario.name, seed: seed, requests: requests)
        for workload in scenario.workloads {
            var loads: [(load: LoadPoint, fraction: Double?)] = (workloadRates[workload.name] ?? rates).map { (.rate($0), nil) }
            if !rateFractions.isEmpty {
                progress("\(workload.name): measuring hyperion's saturated throughput")
                let saturation = saturatedThroughput(for: workload, progress: progress)
                report.saturation.append(saturation)
                if let peak = saturation.requestsPerSecond, peak > 0 {
                    loads += rateFractions.map { (.rate($0 * peak), $0) }
                } else {
                    report.notes.append(
                        "\(workload.name): rate fractions skipped: hyperion has no saturated throughput to scale"
                            + (saturation.infeasible.map { " (\($0.reason))" } ?? ""))
                }
            }
            loads += concurrency.map { (.concurrency($0), nil) }
            for system in systems {
                let planned = plan(system, for: workload)
                for (load, fraction) in loads {
                    var point = ExperimentPoint(
                        system: system, workload: workload.name, load: load, rateFraction: fraction, plan: planned.outcome,
                        result: nil)
                    if system == .hyperion, rateAware, case .rate(let rate) = load, planned.outcome.partition != nil {
                        let learned = learnedRate(for: workload, rate: rate)
                        progress("\(workload.name): hyperion at \(load): choosing a plan for the \((learned * 1000).rounded() / 1000) req/s it saw arrive")
                        if let choice = ratePlanner(for: workload).choose(rate: learned) {
                            let partition = choice.candidates[choice.chosen].partition
                            point.plan = .plan(partition)
                            point.learnedRate = learned
                            var chosen = planned
                            chosen.stageCosts = StepCostModel(source: scenario.model).stages(of: partition)
                            progress("\(workload.name): hyperion at \(load)")
                            point.result = Simulator.run(
                                input(chosen, partition: partition, workload: workload, load: load, requests: requests))
                            report.points.append(point)
                            continue
                        }
                    }
                    if let partition = planned.outcome.partition {
                        progress("\(workload.name): \(system.name) at \(load)")
                        point.result = Simulator.run(
                            input(planned, partition: partition, workload: workload, load: load, requests: requests))
                    }
                    report.points.append(point)
                }
            }
        }
        return report
    }
}

/// One system at one load point on one workload.
public struct ExperimentPoint: Sendable {
    public var system: SystemSpec
    public var workload: String
    public var load: LoadPoint
    /// The fraction of hyperion's saturated throughput this rate was set from.
    public var rateFraction: Double?
    public var plan: PlanOutcome
    /// Nil when the system's plan is infeasible.
    public var result: SimulationResult?
    /// The arrival rate `hyperion` measured and planned this point for (nil: planned for the
    /// least bottleneck).
    public var learnedRate: Double?

    public init(
        system: SystemSpec, workload: String, load: LoadPoint, rateFraction: Double?, plan: PlanOutcome,
        result: SimulationResult?
    ) {
        self.system = system
        self.workload = workload
        self.load = load
        self.rateFraction = rateFraction
        self.plan = plan
        self.result = result
    }
}

/// Everything an experiment measured.
public struct ExperimentReport: Sendable {
    public var scenario: String
    public var seed: UInt64
    public var requests: Int
    public var saturation: [Experiment.Saturation] = []
    public var points: [ExperimentPoint] = []
    public var notes: [String] = []

    public init(scenario: String, seed: UInt64, requests: Int) {
        self.scenario = scenario
        self.seed = seed
        self.requests = requests
    }
}

/// A refusal of an experiment's input, naming what is wrong.
public struct SimulationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
