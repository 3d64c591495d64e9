import JSON

/// A simulation scenario (`examples/scenarios/*.json`): a topology and a model, the workloads to
/// offer, the load points, and events such as a node slowing down mid-run.
///
/// Parsing is pure: file references (a topology path, a model file) are resolved through closures
/// the caller passes, so tests read scenarios from strings and the CLI from disk.
public struct Scenario: Sendable {
    /// A name for reports (default: the file's name).
    public var name: String
    public var topology: Topology
    public var model: ModelSource
    public var workloads: [ScenarioWorkload]
    public var arrival: ArrivalProcess
    /// Open-loop arrival rates in requests per second.
    public var rates: [Double]
    /// Open-loop rates as fractions of `hyperion`'s simulated saturated throughput.
    public var rateFractions: [Double]
    /// Closed-loop load points: clients each sending a new request when their last one ends.
    public var concurrency: [Int]
    /// Requests per load point.
    public var requests: Int
    public var seed: UInt64
    /// Systems to compare (`hyperion`, `gpipe`, `heft`, or `partition+routing`), as written.
    public var systems: [String]
    public var drift: [DriftEvent]
    /// Seconds between two heartbeats of a node (what the scheduler's view of it lags by).
    public var heartbeatSeconds: Double
    public var batching: Batching
    /// A request that finds no route for this long ends as failed (docs/design.md §4 `deadline_s`).
    public var deadlineSeconds: Double

    public static let defaultSystems = ["hyperion", "gpipe", "heft"]
    public static let defaultRateFractions = [0.3, 0.5, 0.7, 0.9]

    public init(
        name: String, topology: Topology, model: ModelSource, workloads: [ScenarioWorkload],
        arrival: ArrivalProcess = .poisson, rates: [Double] = [], rateFractions: [Double] = [], concurrency: [Int] = [],
        requests: Int = 1000, seed: UInt64 = 1, systems: [String] = Scenario.defaultSystems, drift: [DriftEvent] = [],
        heartbeatSeconds: Double = 1, batching: Batching = Batching(), deadlineSeconds: Double = 600
    ) {
        self.name = name
        self.topology = topology
        self.model = model
        self.workloads = workloads
        self.arrival = arrival
        self.rates = rates
        self.rateFractions = rateFractions
        self.concurrency = concurrency
        self.requests = requests
        self.seed = seed
        self.systems = systems
        self.drift = drift
        self.heartbeatSeconds = heartbeatSeconds
        self.batching = batching
        self.deadlineSeconds = deadlineSeconds
    }

    /// How requests arrive in open-loop load points.
    public enum ArrivalProcess: Sendable, Hashable {
        /// Exponential gaps at the load point's rate.
        case poisson
        /// Bursts of a geometric number of requests (mean `meanBurstSize`) arriving together, the
        /// bursts Poisson at rate / mean size, so the mean rate is the load point's.
        case bursty(meanBurstSize: Double)
    }

    /// How a node batches ready steps of different requests (the stage worker's limits).
    public struct Batching: Sendable, Hashable {
        /// Most steps in one batch; 1 turns batching off.
        public var maxSteps: Int
        /// Most tokens in one batch (a prefill chunk counts all its tokens).
        public var maxTokens: Int

        public init(maxSteps: Int = 16, maxTokens: Int = 512) {
            self.maxSteps = max(1, maxSteps)
            self.maxTokens = max(1, maxTokens)
        }
    }

    /// A node's real speed changes, while what it advertises (its nominal device) does not.
    public struct DriftEvent: Sendable, Hashable {
        public enum When: Sendable, Hashable {
            /// Simulated seconds after the load point starts.
            case seconds(Double)
            /// When this fraction of the load point's requests has arrived.
            case fraction(Double)
        }

        public var node: String
        public var when: When
        /// Factor on the node's step times from then on (2 = twice as slow).
        public var slowdown: Double

        public init(node: String, when: When, slowdown: Double) {
            self.node = node
            self.when = when
            self.slowdown = slowdown
        }
    }

    /// Reads a scenario. `topologyFile` and `modelNamed` resolve a topology given as a path and a
    /// model given as a preset or path; errors they throw are reported at the field's path.
    public static func parse(
        _ value: JSONValue, name defaultName: String = "scenario", path: String = "scenario",
        topologyFile: (String) throws(JSONError) -> Topology,
        modelNamed: (String) throws(JSONError) -> ModelSource
    ) throws(JSONError) -> Scenario {
        let fields = try FieldReader(value, path: path)
        let name = try fields.optionalString("name") ?? defaultName

        let topology: Topology
        guard let topologyValue = fields.object["topology"], !topologyValue.isNull else {
            throw JSONError(path: fields.fieldPath("topology"), message: "required field is missing (expected a file path or an object)")
        }
        if let file = topologyValue.stringValue {
            do { topology = try topologyFile(file) } catch { throw error.at(fields.fieldPath("topology")) }
        } else {
            topology = try Topology.parse(topologyValue, path: fields.fieldPath("topology"))
        }

        let model: ModelSource
        guard let modelValue = fields.object["model"], !modelValue.isNull else {
            throw JSONError(path: fields.fieldPath("model"), message: "required field is missing (expected a preset such as phi-3-medium:q4_0, a file path, or a profile object)")
        }
        if let named = modelValue.stringValue {
            do { model = try modelNamed(named) } catch { throw error.at(fields.fieldPath("model")) }
        } else {
            model = .fixed(try ModelProfile.parse(modelValue, path: fields.fieldPath("model")))
        }

        let workloadEntries = try fields.array("workloads", required: true)
        if workloadEntries.isEmpty {
            throw JSONError(path: fields.fieldPath("workloads"), message: "expected at least one workload")
        }
        var workloads: [ScenarioWorkload] = []
        var workloadNames: Set<String> = []
        for (index, entry) in workloadEntries.enumerated() {
            let workload = try ScenarioWorkload.parse(entry.value, path: entry.path, index: index)
            guard workloadNames.insert(workload.name).inserted else {
                throw JSONError(path: entry.path + ".name", message: "workload name '\(workload.name)' is used twice")
            }
            workloads.append(workload)
        }

        var arrival = ArrivalProcess.poisson
        switch try fields.optionalString("arrival") ?? "poisson" {
        case "poisson": break
        case "bursty":
            let size = try fields.optionalNumber("burst_size", .positive) ?? 8
            guard size >= 1 else {
                throw JSONError(path: fields.fieldPath("burst_size"), message: "expected a number ≥ 1")
            }
            arrival = .bursty(meanBurstSize: size)
        case let other:
            throw JSONError(path: fields.fieldPath("arrival"), message: "expected \"poisson\" or \"bursty\", found '\(other)'")
        }

        func numbers(_ key: String, _ rule: NumberRule) throws(JSONError) -> [Double] {
            var values: [Double] = []
            for entry in try fields.array(key, required: false) {
                guard let number = entry.value.doubleValue, number.isFinite, rule.admits(number) else {
                    throw JSONError(path: entry.path, message: "expected \(rule.expectation)")
                }
                values.append(number)
            }
            return values
        }
        let rates = try numbers("rates", .positive)
        let rateFractions = try numbers("rate_fractions", .positive)
        var concurrency: [Int] = []
        for entry in try fields.array("concurrency", required: false) {
            guard let count = entry.value.intValue, count >= 1, count <= 10_000_000 else {
                throw JSONError(path: entry.path, message: "expected an integer ≥ 1")
            }
            concurrency.append(Int(count))
        }
        let noLoadGiven =
            rates.isEmpty && rateFractions.isEmpty && concurrency.isEmpty && workloads.allSatisfy(\.rates.isEmpty)

        var systems: [String] = []
        for entry in try fields.array("systems", required: false) {
            guard let system = entry.value.stringValue, !system.isEmpty else {
                throw JSONError(path: entry.path, message: "expected a system name (hyperion, gpipe, heft or partition+routing)")
            }
            systems.append(system)
        }

        let nodeIds = Set(topology.tiers.flatMap { $0.nodes.map(\.id) })
        var drift: [DriftEvent] = []
        for entry in try fields.array("drift", required: false) {
            let event = try FieldReader(entry.value, path: entry.path)
            let node = try event.string("node")
            guard nodeIds.contains(node) else {
                throw JSONError(path: event.fieldPath("node"), message: "no node '\(node)' in the topology")
            }
            let seconds = try event.optionalNumber("at_s", .nonNegative)
            let fraction = try event.optionalNumber("at_fraction", .nonNegative)
            let when: DriftEvent.When
            switch (seconds, fraction) {
            case (let seconds?, nil): when = .seconds(seconds)
            case (nil, let fraction?):
                guard fraction <= 1 else {
                    throw JSONError(path: event.fieldPath("at_fraction"), message: "expected a fraction between 0 and 1")
                }
                when = .fraction(fraction)
            default:
                throw JSONError(path: entry.path, message: "expected exactly one of at_s (seconds) or at_fraction (of the requests)")
            }
            drift.append(DriftEvent(node: node, when: when, slowdown: try event.number("slowdown", .positive)))
        }

        var batching = Batching()
        if let batch = try fields.nested("batching") {
            batching = Batching(
                maxSteps: try batch.optionalInteger("max_steps", minimum: 1) ?? batching.maxSteps,
                maxTokens: try batch.optionalInteger("max_tokens", minimum: 1) ?? batching.maxTokens)
        }
        let seed = try fields.optionalInteger("seed", minimum: 0) ?? 1

        return Scenario(
            name: name, topology: topology, model: model, workloads: workloads, arrival: arrival, rates: rates,
            rateFractions: noLoadGiven ? defaultRateFractions : rateFractions, concurrency: concurrency,
            requests: try fields.optionalInteger("requests", minimum: 1) ?? 1000, seed: UInt64(seed),
            systems: systems.isEmpty ? defaultSystems : systems, drift: drift,
            heartbeatSeconds: try fields.optionalNumber("heartbeat_s", .positive) ?? 1, batching: batching,
            deadlineSeconds: try fields.optionalNumber("deadline_s", .positive) ?? 600)
    }
}

/// One kind of traffic of a scenario: request lengths, how they vary, and the workload the
/// planner is given for it (§6: the mean lengths plus chunking, batching and KV reserve).
public struct ScenarioWorkload: Sendable, Hashable {
    public var name: String
    public var distribution: LengthDistribution
    /// What the planner optimises for; its prompt and output tokens are the means of the draws.
    public var planning: Workload
    /// Open-loop rates (requests/s) for this workload alone, in place of the scenario's `rates`:
    /// workloads of very different lengths saturate a system at very different rates.
    public var rates: [Double]

    public var promptTokens: Int { planning.promptTokens }
    public var outputTokens: Int { planning.outputTokens }

    public init(name: String, distribution: LengthDistribution = .fixed, planning: Workload, rates: [Double] = []) {
        self.name = name
        self.distribution = distribution
        self.planning = planning
        self.rates = rates
    }

    /// How each request's prompt and output lengths are drawn around the means.
    public enum LengthDistribution: String, Sendable, Hashable, CaseIterable {
        /// Every request has exactly the mean lengths.
        case fixed
        /// Uniform integers in `1 ... 2·mean − 1` (the mean preserved).
        case uniform
        /// Geometric with the given mean (≥ 1): many short requests, a few long ones.
        case exponential
    }

    static func parse(_ value: JSONValue, path: String, index: Int) throws(JSONError) -> ScenarioWorkload {
        let fields = try FieldReader(value, path: path)
        let name = try fields.optionalString("name") ?? "workload-\(index)"
        let prompt = try fields.optionalInteger("prompt_tokens", minimum: 1)
        let output = try fields.optionalInteger("output_tokens", minimum: 1)
        guard let prompt else {
            throw JSONError(path: fields.fieldPath("prompt_tokens"), message: "required field is missing (expected an integer ≥ 1)")
        }
        guard let output else {
            throw JSONError(path: fields.fieldPath("output_tokens"), message: "required field is missing (expected an integer ≥ 1)")
        }
        let distributionName = try fields.optionalString("distribution") ?? "fixed"
        guard let distribution = LengthDistribution(rawValue: distributionName) else {
            throw JSONError(
                path: fields.fieldPath("distribution"),
                message: "expected one of \(LengthDistribution.allCases.map(\.rawValue).joined(separator: ", ")), found '\(distributionName)'")
        }
        // The rest of the §6 workload (chunk, batch, KV reserve) reads like a workload file.
        var defaults = Workload.default
        defaults.promptTokens = prompt
        defaults.outputTokens = output
        defaults.context = max(defaults.context, prompt + output)
        let planning = try Workload.parse(value, defaults: defaults, path: path)
        var rates: [Double] = []
        for entry in try fields.array("rates", required: false) {
            guard let rate = entry.value.doubleValue, rate.isFinite, rate > 0 else {
                throw JSONError(path: entry.path, message: "expected a number > 0")
            }
            rates.append(rate)
        }
        return ScenarioWorkload(name: name, distribution: distribution, planning: planning, rates: rates)
    }
}

extension JSONError {
    /// The same error reported at `path` (a referenced file's own errors keep their message, so the
    /// user sees which field referenced the file and what is wrong inside it).
    func at(_ path: String) -> JSONError {
        var moved = self
        moved.path = self.path.isEmpty ? path : "\(path) → \(self.path)"
        return moved
    }
}
