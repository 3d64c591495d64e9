import JSON
import Partitioning

extension ExperimentReport {
    /// The report as `hyperion simulate --json` prints it: `{"results":[…]}` in the shape of
    /// `hyperion bench load` (system, workload, rate or concurrency, latency, TTFT, tokens/s,
    /// utilisation per tier, completed, failed), each with the extra figures the simulator knows.
    public var jsonValue: JSONValue {
        var root: [(String, JSONValue)] = [
            ("scenario", .string(scenario)),
            ("seed", .int(Int64(truncatingIfNeeded: seed))),
            ("requests", .int(Int64(requests))),
            ("results", .array(points.map(\.jsonValue))),
        ]
        if !saturation.isEmpty {
            root.append(("saturation", .array(saturation.map(\.jsonValue))))
        }
        if !notes.isEmpty { root.append(("notes", .array(notes.map(JSONValue.string)))) }
        return .object(JSONObject(root))
    }
}

extension Experiment.Saturation {
    var jsonValue: JSONValue {
        var fields: [(String, JSONValue)] = [
            ("system", "hyperion"), ("workload", .string(workload)),
            ("requests_per_s", requestsPerSecond.map(JSONValue.double) ?? .null),
            ("concurrency", .int(Int64(concurrency))),
            ("planned_requests_per_s", plannedRequestsPerSecond.map(JSONValue.double) ?? .null),
        ]
        if let infeasible { fields.append(("infeasible", PlanDocument.infeasibleJSON(infeasible)["infeasible"] ?? .null)) }
        return .object(JSONObject(fields))
    }
}

extension ExperimentPoint {
    var jsonValue: JSONValue {
        var fields: [(String, JSONValue)] = [
            ("system", .string(system.name)),
            ("partition", .string(system.partition.rawValue)),
            ("routing", .string(system.routing.rawValue)),
            ("workload", .string(workload)),
        ]
        switch load {
        case .rate(let rate): fields.append(("rate", .double(rate)))
        case .concurrency(let clients): fields.append(("concurrency", .int(Int64(clients))))
        }
        if let rateFraction { fields.append(("rate_fraction", .double(rateFraction))) }
        if let learnedRate { fields.append(("learned_rate", .double(learnedRate))) }
        switch plan {
        case .infeasible(let reason):
            fields.append(("infeasible", PlanDocument.infeasibleJSON(reason)["infeasible"] ?? .null))
            fields.append(("completed", 0))
            fields.append(("failed", 0))
            return .object(JSONObject(fields))
        case .plan(let partition):
            guard let result else { return .object(JSONObject(fields)) }
            fields += [
                ("mean_latency_s", .double(result.meanLatencySeconds)),
                ("p50_latency_s", .double(result.p50LatencySeconds)),
                ("p95_latency_s", .double(result.p95LatencySeconds)),
                ("p99_latency_s", .double(result.p99LatencySeconds)),
                ("mean_ttft_s", .double(result.meanTTFTSeconds)),
                ("p95_ttft_s", .double(result.p95TTFTSeconds)),
                ("latency_percentiles_s", .array(result.latencyPercentilesSeconds.map(JSONValue.double))),
                ("tokens_per_s", .double(result.tokensPerSecond)),
                ("requests_per_s", .double(result.requestsPerSecond)),
                ("steady_requests_per_s", .double(result.steadyRequestsPerSecond)),
                ("utilization", Self.shares(result.tierUtilization)),
                ("completed", .int(Int64(result.completed))),
                ("failed", .int(Int64(result.failed))),
                ("node_utilization", Self.shares(result.nodeUtilization)),
                ("link_utilization", Self.shares(result.linkUtilization)),
                ("mean_batch_steps", .double(result.meanBatchSteps)),
                ("failovers", .int(Int64(result.failovers))),
                ("simulated_s", .double(result.simulatedSeconds)),
                ("events", .int(Int64(result.events))),
                ("plan", Self.planJSON(partition, measured: result)),
            ]
            return .object(JSONObject(fields))
        }
    }

    /// Busy fractions by name, as every load point reports them (also `hyperion bench load`).
    public static func shares(_ shares: [Share]) -> JSONValue {
        .object(JSONObject(shares.map { ($0.name, JSONValue.double($0.fraction)) }))
    }

    /// The plan's stages with planned and measured seconds per request side by side.
    static func planJSON(_ partition: Partition, measured: SimulationResult) -> JSONValue {
        let stages: [JSONValue] = partition.stages.enumerated().map { index, stage in
            let busy = index < measured.stageBusySecondsPerRequest.count ? measured.stageBusySecondsPerRequest[index] : 0
            return [
                "tier": .string(stage.tierName),
                "first_block": .int(Int64(stage.firstBlock)),
                "last_block": .int(Int64(stage.lastBlock)),
                "nodes": .array(stage.nodes.map(JSONValue.string)),
                "planned_compute_s": .double(stage.computeSeconds),
                "planned_node_seconds_per_request": .double(stage.computeSeconds * Double(stage.nodes.count)),
                "measured_node_seconds_per_request": .double(busy),
                "link_s": .double(stage.linkSeconds),
            ]
        }
        return [
            "bottleneck_s": .double(partition.bottleneckSeconds),
            "idle_latency_s": .double(partition.idleLatencySeconds),
            "stages": .array(stages),
        ]
    }
}
