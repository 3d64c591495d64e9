import JSON
import Simulation

/// Where a result was measured: in the discrete-event simulator, or on running services
/// (`hyperion bench load`).
public enum ResultSource: String, Sendable, Hashable, CaseIterable {
    case simulated
    case live
}

/// One stage of a point's plan: what the planner predicted against what the run measured, both
/// as node-busy seconds per request.
public struct StageTime: Sendable, Hashable {
    public var tier: String
    public var firstBlock: Int
    public var lastBlock: Int
    public var plannedSeconds: Double
    public var measuredSeconds: Double?
}

/// The plan a point ran on, as far as a result file records it.
public struct PlanFigures: Sendable, Hashable {
    public var bottleneckSeconds: Double
    public var idleLatencySeconds: Double
    public var stages: [StageTime]

    /// The cuts, for telling whether two systems ran the same partition.
    public var ranges: [String] { stages.map { "\($0.tier) \($0.firstBlock)–\($0.lastBlock)" } }
}

/// One system at one load point of one workload, read from a result file
/// (`hyperion simulate --json` or `hyperion bench load --json`, the same shape).
public struct MeasuredPoint: Sendable, Hashable {
    public var source: ResultSource
    public var scenario: String
    public var system: String
    public var workload: String
    /// Offered open-loop rate, requests/s.
    public var rate: Double?
    /// The rate as a fraction of hyperion's saturated throughput.
    public var rateFraction: Double?
    /// Closed-loop clients (a saturation run).
    public var concurrency: Int?
    /// Why the system has no plan here; the figures below are then zero.
    public var infeasible: String?
    public var meanLatencySeconds = 0.0
    public var p95LatencySeconds = 0.0
    public var meanTTFTSeconds = 0.0
    public var p95TTFTSeconds = 0.0
    public var requestsPerSecond = 0.0
    /// Requests/s over the middle of the run (the simulator's steady rate), when known.
    public var steadyRequestsPerSecond: Double?
    public var tokensPerSecond = 0.0
    public var completed = 0
    public var failed = 0
    public var utilization: [Share] = []
    /// Latency at percentiles 0…100, when the file has them.
    public var latencyPercentilesSeconds: [Double] = []
    public var plan: PlanFigures?

    /// The load axis value: the rate fraction when known, else the rate.
    public var loadValue: Double? { rateFraction ?? rate }

    /// The system's own saturated throughput on this workload (its closed-loop run), when the
    /// results have one; set when the figures are built.
    public var capacityRequestsPerSecond: Double?

    /// True when the system could not keep up with the offered rate: the rate exceeds its own
    /// saturated throughput, or requests failed. Its mean latency then grows with the run's
    /// length instead of settling. (An open loop's served rate over a finite run is no test: the
    /// run's drain lowers it at every load.)
    public var overloaded: Bool {
        guard infeasible == nil else { return false }
        if failed > 0 { return true }
        guard let rate, let capacity = capacityRequestsPerSecond else { return false }
        return rate > capacity
    }
}

/// Every point of one or more result files, with the saturated throughputs the load points
/// were scaled from.
public struct ResultSet: Sendable {
    public var points: [MeasuredPoint] = []
    /// hyperion's saturated throughput per (source, scenario, workload), requests/s.
    public var saturation: [SaturationFigure] = []
    public var notes: [String] = []
    /// The emulation time scale a live result file states (`time_scale`), if any.
    public var timeScale: Double?

    public init() {}

    /// hyperion's saturated throughput on one workload, as the file states it.
    public struct SaturationFigure: Sendable, Hashable {
        public var source: ResultSource
        public var scenario: String
        public var workload: String
        public var requestsPerSecond: Double
    }

    public mutating func append(_ other: ResultSet) {
        points += other.points
        timeScale = timeScale ?? other.timeScale
        saturation += other.saturation
        notes += other.notes
    }

    /// Reads a result document: `{"scenario"?, "results":[…], "saturation"?, "notes"?}`, or
    /// several of them as `{"runs":[…]}` (what `hyperion report --save-results` writes).
    /// `defaultScenario` names results whose document has no `scenario`.
    public static func parse(
        _ value: JSONValue, source: ResultSource, defaultScenario: String, path: String = ""
    ) throws(ReportError) -> ResultSet {
        let document = try ResultReader(value, path: path)
        var set = ResultSet()
        if let runs = document.object["runs"] {
            guard let list = runs.arrayValue else { throw ReportError(document.path("runs"), "expected an array of result documents") }
            for (index, run) in list.enumerated() {
                set.append(try parse(run, source: source, defaultScenario: defaultScenario, path: document.path("runs[\(index)]")))
            }
            return set
        }
        let scenario = try document.optionalString("scenario") ?? defaultScenario
        set.timeScale = try document.optionalNumber("time_scale")
        for (index, entry) in try document.array("results").enumerated() {
            set.points.append(try point(entry, source: source, scenario: scenario, path: document.path("results[\(index)]")))
        }
        for (index, entry) in try document.array("saturation", required: false).enumerated() {
            let fields = try ResultReader(entry, path: document.path("saturation[\(index)]"))
            guard let rate = try fields.optionalNumber("requests_per_s") else { continue }
            set.saturation.append(
                SaturationFigure(source: source, scenario: scenario, workload: try fields.string("workload"), requestsPerSecond: rate))
        }
        for note in try document.array("notes", required: false) {
            if let text = note.stringValue { set.notes.append("\(scenario): \(text)") }
        }
        return set
    }

    static func point(_ value: JSONValue, source: ResultSource, scenario: String, path: String) throws(ReportError)
        -> MeasuredPoint
    {
        let fields = try ResultReader(value, path: path)
        var point = MeasuredPoint(
            source: source, scenario: try fields.optionalString("scenario") ?? scenario, system: try fields.string("system"),
            workload: try fields.optionalString("workload") ?? "default", rate: try fields.optionalNumber("rate"),
            rateFraction: try fields.optionalNumber("rate_fraction"),
            concurrency: try fields.optionalNumber("concurrency").map { Int($0) })
        if point.rate == nil && point.concurrency == nil {
            throw ReportError(path, "expected a load point: \"rate\" (requests/s) or \"concurrency\" (clients)")
        }
        if let infeasible = fields.object["infeasible"], !infeasible.isNull {
            point.infeasible = infeasible["reason"]?.stringValue ?? "the plan does not fit"
            return point
        }
        point.meanLatencySeconds = try fields.number("mean_latency_s")
        point.p95LatencySeconds = try fields.number("p95_latency_s")
        point.meanTTFTSeconds = try fields.optionalNumber("mean_ttft_s") ?? 0
        point.p95TTFTSeconds = try fields.optionalNumber("p95_ttft_s") ?? 0
        point.requestsPerSecond = try fields.optionalNumber("requests_per_s") ?? 0
        point.steadyRequestsPerSecond = try fields.optionalNumber("steady_requests_per_s")
        point.tokensPerSecond = try fields.optionalNumber("tokens_per_s") ?? 0
        point.completed = Int(try fields.optionalNumber("completed") ?? 0)
        point.failed = Int(try fields.optionalNumber("failed") ?? 0)
        point.utilization = try fields.fractions("utilization")
        for (index, entry) in try fields.array("latency_percentiles_s", required: false).enumerated() {
            guard let seconds = entry.doubleValue, seconds.isFinite, seconds >= 0 else {
                throw ReportError(fields.path("latency_percentiles_s[\(index)]"), "expected seconds ≥ 0")
            }
            point.latencyPercentilesSeconds.append(seconds)
        }
        if let plan = fields.object["plan"], !plan.isNull {
            point.plan = try planFigures(plan, path: fields.path("plan"))
        }
        return point
    }

    static func planFigures(_ value: JSONValue, path: String) throws(ReportError) -> PlanFigures {
        let fields = try ResultReader(value, path: path)
        var stages: [StageTime] = []
        for (index, entry) in try fields.array("stages").enumerated() {
            let stage = try ResultReader(entry, path: fields.path("stages[\(index)]"))
            var planned = try stage.optionalNumber("planned_node_seconds_per_request")
            if planned == nil { planned = try stage.number("planned_compute_s") }
            stages.append(
                StageTime(
                    tier: try stage.string("tier"), firstBlock: Int(try stage.number("first_block")),
                    lastBlock: Int(try stage.number("last_block")),
                    plannedSeconds: planned ?? 0,
                    measuredSeconds: try stage.optionalNumber("measured_node_seconds_per_request")))
        }
        return PlanFigures(
            bottleneckSeconds: try fields.number("bottleneck_s"), idleLatencySeconds: try fields.number("idle_latency_s"),
            stages: stages)
    }
}

/// A result file that cannot be read, naming the field.
public struct ReportError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// Fields of one object of a result file, with the path of each for errors.
struct ResultReader {
    let object: JSONObject
    let prefix: String

    init(_ value: JSONValue, path: String) throws(ReportError) {
        guard let object = value.objectValue else { throw ReportError(path, "expected an object, found \(value.typeName)") }
        self.object = object
        prefix = path
    }

    func path(_ key: String) -> String { prefix.isEmpty ? key : "\(prefix).\(key)" }

    func optionalNumber(_ key: String) throws(ReportError) -> Double? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let number = value.doubleValue, number.isFinite, number >= 0 else {
            throw ReportError(path(key), "expected a number ≥ 0, found \(value.typeName)")
        }
        return number
    }

    func number(_ key: String) throws(ReportError) -> Double {
        guard let number = try optionalNumber(key) else { throw ReportError(path(key), "required field is missing (a number)") }
        return number
    }

    func optionalString(_ key: String) throws(ReportError) -> String? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let text = value.stringValue else { throw ReportError(path(key), "expected a string, found \(value.typeName)") }
        return text
    }

    func string(_ key: String) throws(ReportError) -> String {
        guard let text = try optionalString(key) else { throw ReportError(path(key), "required field is missing (a string)") }
        return text
    }

    func array(_ key: String, required: Bool = true) throws(ReportError) -> [JSONValue] {
        guard let value = object[key], !value.isNull else {
            if required { throw ReportError(path(key), "required field is missing (an array)") }
            return []
        }
        guard let list = value.arrayValue else { throw ReportError(path(key), "expected an array, found \(value.typeName)") }
        return list
    }

    /// `{"edge":0.4,…}` in key order.
    func fractions(_ key: String) throws(ReportError) -> [Share] {
        guard let value = object[key], !value.isNull else { return [] }
        guard let shares = value.objectValue else { throw ReportError(path(key), "expected an object of fractions") }
        var result: [Share] = []
        for (name, share) in shares {
            guard let fraction = share.doubleValue, fraction.isFinite else {
                throw ReportError(path("\(key).\(name)"), "expected a number")
            }
            result.append(Share(name: name, fraction: fraction))
        }
        return result
    }
}
