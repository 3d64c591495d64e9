import JSON
import Simulation

extension ExperimentFigures {
    /// Every figure as JSON (what `hyperion report --figures` writes): the data behind each chart
    /// and table of the HTML, with the same numbers.
    public var jsonValue: JSONValue {
        [
            "v": 1,
            "headline": .array(headline.map(\.jsonValue)),
            "ablation": .array(ablation.map(\.jsonValue)),
            "baseline_wins": .array(baselineWins.map(\.jsonValue)),
            "groups": .array(groups.map(\.jsonValue)),
            "notes": .array(notes.map(JSONValue.string)),
        ]
    }
}

private func optional(_ value: Double?) -> JSONValue { value.map(JSONValue.double) ?? .null }

private func fractions(_ shares: [Share]) -> JSONValue {
    .object(JSONObject(shares.map { ($0.name, JSONValue.double($0.fraction)) }))
}

extension ExperimentFigures.Reduction {
    var jsonValue: JSONValue {
        [
            "key": .string(key), "source": .string(source.rawValue), "scenario": .string(scenario),
            "workload": .string(workload), "load": .double(load), "load_is_fraction": .bool(loadIsFraction),
            "baseline": .string(baseline), "hyperion_mean_latency_s": .double(hyperionMeanSeconds),
            "baseline_mean_latency_s": .double(baselineMeanSeconds), "reduction_pct": .double(reductionPercent),
            "baseline_overloaded": .bool(baselineOverloaded), "hyperion_overloaded": .bool(hyperionOverloaded),
        ]
    }
}

extension ExperimentFigures.AblationRow {
    var jsonValue: JSONValue {
        [
            "key": .string(key), "source": .string(source.rawValue), "scenario": .string(scenario),
            "workload": .string(workload), "load": .double(load), "baseline": .string(baseline),
            "total_reduction_pct": optional(totalPercent),
            "partition_only_system": .string(partitionOnlySystem), "partition_only_reduction_pct": optional(partitionOnlyPercent),
            "routing_only_system": .string(routingOnlySystem), "routing_only_reduction_pct": optional(routingOnlyPercent),
        ]
    }
}

extension ExperimentFigures.BaselineWin {
    var jsonValue: JSONValue {
        [
            "source": .string(source.rawValue), "scenario": .string(scenario), "workload": .string(workload),
            "load": .double(load), "system": .string(system), "system_mean_latency_s": .double(systemMeanSeconds),
            "hyperion_mean_latency_s": .double(hyperionMeanSeconds), "reason": .string(reason),
        ]
    }
}

extension ExperimentFigures.WorkloadGroup {
    var jsonValue: JSONValue {
        let latency: [JSONValue] = systems.compactMap { system in
            guard let points = series[system] else { return nil }
            return [
                "system": .string(system),
                "points": .array(
                    points.map { point in
                        [
                            "load": optional(point.loadValue), "rate": optional(point.rate),
                            "mean_latency_s": .double(point.meanLatencySeconds),
                            "p95_latency_s": .double(point.p95LatencySeconds),
                            "mean_ttft_s": .double(point.meanTTFTSeconds), "p95_ttft_s": .double(point.p95TTFTSeconds),
                            "requests_per_s": .double(point.requestsPerSecond),
                            "completed": .int(Int64(point.completed)), "failed": .int(Int64(point.failed)),
                            "overloaded": .bool(point.overloaded),
                        ]
                    }),
            ]
        }
        let cdf: [JSONValue] = systems.compactMap { system in
            guard let point = point(system, at: cdfLoad), !point.latencyPercentilesSeconds.isEmpty else { return nil }
            return ["system": .string(system), "latency_percentiles_s": .array(point.latencyPercentilesSeconds.map(JSONValue.double))]
        }
        let utilization: [JSONValue] = systems.compactMap { system in
            guard let point = point(system, at: utilizationLoad) else { return nil }
            return ["system": .string(system), "tiers": fractions(point.utilization)]
        }
        let saturation: [JSONValue] = systems.compactMap { system in
            guard let point = saturated[system] else { return nil }
            return [
                "system": .string(system), "concurrency": .int(Int64(point.concurrency ?? 0)),
                "requests_per_s": .double(point.steadyRequestsPerSecond ?? point.requestsPerSecond),
                "tiers": fractions(point.utilization),
            ]
        }
        let stageTimes: [JSONValue] = systems.compactMap { system in
            guard let plan = point(system, at: stageTimeLoad)?.plan else { return nil }
            return [
                "system": .string(system),
                "stages": .array(
                    plan.stages.map { stage in
                        [
                            "tier": .string(stage.tier), "first_block": .int(Int64(stage.firstBlock)),
                            "last_block": .int(Int64(stage.lastBlock)), "planned_s": .double(stage.plannedSeconds),
                            "measured_s": optional(stage.measuredSeconds),
                        ]
                    }),
            ]
        }
        return [
            "key": .string(key), "source": .string(source.rawValue), "scenario": .string(scenario),
            "workload": .string(workload), "load_is_fraction": .bool(loadIsFraction),
            "hyperion_saturation_requests_per_s": optional(hyperionSaturationRequestsPerSecond),
            "systems": .array(systems.map(JSONValue.string)),
            "infeasible": .object(JSONObject(systems.compactMap { s in infeasible[s].map { (s, JSONValue.string($0)) } })),
            "latency_vs_load": .array(latency),
            "latency_cdf": ["load": optional(cdfLoad), "systems": .array(cdf)],
            "utilization": ["load": optional(utilizationLoad), "systems": .array(utilization)],
            "saturation": .array(saturation),
            "stage_times": ["load": optional(stageTimeLoad), "systems": .array(stageTimes)],
        ]
    }
}
