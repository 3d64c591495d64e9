import Foundation

/// Every figure of the experiment report, computed from measured points alone (pure: no files,
/// no clock), so the HTML and the figures JSON show the same numbers.
public struct ExperimentFigures: Sendable {
    public var groups: [WorkloadGroup] = []
    /// Reduction of hyperion's mean latency against each baseline at each load point.
    public var headline: [Reduction] = []
    /// The same reduction split by stage: only the partition swapped, only the routing swapped.
    public var ablation: [AblationRow] = []
    /// Every load point where another system had a lower mean latency than hyperion.
    public var baselineWins: [BaselineWin] = []
    public var notes: [String] = []

    /// The systems of the paper's comparison and the ablations, in display order.
    public static let systemOrder = [
        "hyperion", "gpipe", "heft", "bsdp+round-robin", "bsdp+heft", "gpipe+arts", "heft+arts",
    ]
    public static let baselines = ["gpipe", "heft"]

    /// One (source, scenario, workload): the charts of one section of the report.
    public struct WorkloadGroup: Sendable {
        public var source: ResultSource
        public var scenario: String
        public var workload: String
        /// True when the load axis is the fraction of hyperion's saturated throughput.
        public var loadIsFraction: Bool
        public var hyperionSaturationRequestsPerSecond: Double?
        public var systems: [String]
        /// Open-loop points per system, by load.
        public var series: [String: [MeasuredPoint]]
        /// Closed-loop (saturation) point per system.
        public var saturated: [String: MeasuredPoint]
        public var infeasible: [String: String]
        /// The load at which the latency CDF is drawn (the one nearest 0.7 of saturation).
        public var cdfLoad: Double?
        /// The load at which utilisation is compared (the highest).
        public var utilizationLoad: Double?
        /// The load at which planned and measured stage times are compared (the lowest).
        public var stageTimeLoad: Double?

        public var key: String { "\(source.rawValue)/\(scenario)/\(workload)" }

        public func point(_ system: String, at load: Double?) -> MeasuredPoint? {
            guard let load else { return nil }
            return series[system]?.first { abs(($0.loadValue ?? -1) - load) < 1e-9 }
        }

        public var loads: [Double] {
            Array(Set(series.values.flatMap { $0.compactMap(\.loadValue) })).sorted()
        }
    }

    /// hyperion against one other system at one load point.
    public struct Reduction: Sendable {
        public var source: ResultSource
        public var scenario: String
        public var workload: String
        public var load: Double
        public var loadIsFraction: Bool
        public var baseline: String
        public var hyperionMeanSeconds: Double
        public var baselineMeanSeconds: Double
        /// (baseline − hyperion) / baseline × 100: positive when hyperion is faster.
        public var reductionPercent: Double
        public var baselineOverloaded: Bool
        public var hyperionOverloaded: Bool

        public var key: String { "\(source.rawValue)/\(scenario)/\(workload)/\(ReportFormat.load(load))/\(baseline)" }
    }

    /// For one baseline at one load point: hyperion's total reduction, and what swapping only the
    /// partition (baseline partition → bsdp, baseline routing kept) or only the routing (baseline
    /// routing → arts, baseline partition kept) gives. For the bsdp ablations the partition is
    /// already hyperion's: the row is ARTS against their routing alone.
    public struct AblationRow: Sendable {
        public var source: ResultSource
        public var scenario: String
        public var workload: String
        public var load: Double
        public var baseline: String
        public var totalPercent: Double?
        public var partitionOnlySystem: String
        public var partitionOnlyPercent: Double?
        public var routingOnlySystem: String
        public var routingOnlyPercent: Double?

        public var key: String { "\(source.rawValue)/\(scenario)/\(workload)/\(ReportFormat.load(load))/\(baseline)" }
    }

    /// A load point where `system` beat hyperion, and why in words.
    public struct BaselineWin: Sendable {
        public var source: ResultSource
        public var scenario: String
        public var workload: String
        public var load: Double
        public var system: String
        public var systemMeanSeconds: Double
        public var hyperionMeanSeconds: Double
        public var reason: String
    }

    /// Builds every figure from a result set.
    public init(_ results: ResultSet) {
        notes = results.notes
        var order: [String] = []
        var byGroup: [String: [MeasuredPoint]] = [:]
        for point in results.points {
            let key = "\(point.source.rawValue)/\(point.scenario)/\(point.workload)"
            if byGroup[key] == nil { order.append(key) }
            byGroup[key, default: []].append(point)
        }
        for key in order {
            guard let points = byGroup[key], let first = points.first else { continue }
            let saturation = results.saturation.last {
                $0.source == first.source && $0.scenario == first.scenario && $0.workload == first.workload
            }
            let group = Self.group(points, saturation: saturation?.requestsPerSecond)
            groups.append(group)
            headline += Self.reductions(group, against: Self.baselines)
            ablation += Self.ablation(group)
            baselineWins += Self.wins(group)
        }
    }

    static func group(_ points: [MeasuredPoint], saturation: Double?) -> WorkloadGroup {
        let first = points[0]
        let openLoop = points.filter { $0.concurrency == nil }
        let loadIsFraction = !openLoop.isEmpty && openLoop.allSatisfy { $0.rateFraction != nil }
        var series: [String: [MeasuredPoint]] = [:]
        var saturated: [String: MeasuredPoint] = [:]
        var infeasible: [String: String] = [:]
        var seen: [String] = []
        for point in points {
            if !seen.contains(point.system) { seen.append(point.system) }
            if let reason = point.infeasible {
                infeasible[point.system] = reason
                continue
            }
            if let clients = point.concurrency, point.rate == nil {
                if (saturated[point.system]?.concurrency ?? 0) <= clients { saturated[point.system] = point }
                continue
            }
            var normalized = point
            if !loadIsFraction { normalized.rateFraction = nil }
            series[point.system, default: []].append(normalized)
        }
        for system in series.keys {
            guard var points = series[system] else { continue }
            points.sort { ($0.loadValue ?? 0) < ($1.loadValue ?? 0) }
            if let capacity = saturated[system].map({ $0.steadyRequestsPerSecond ?? $0.requestsPerSecond }) {
                for index in points.indices { points[index].capacityRequestsPerSecond = capacity }
            }
            series[system] = points
        }
        let systems =
            systemOrder.filter { seen.contains($0) } + seen.filter { !systemOrder.contains($0) }
        var group = WorkloadGroup(
            source: first.source, scenario: first.scenario, workload: first.workload, loadIsFraction: loadIsFraction,
            hyperionSaturationRequestsPerSecond: saturation, systems: systems, series: series, saturated: saturated,
            infeasible: infeasible)
        let loads = group.loads
        if loadIsFraction {
            group.cdfLoad = loads.min { abs($0 - 0.7) < abs($1 - 0.7) }
        } else {
            group.cdfLoad = loads.isEmpty ? nil : loads[loads.count / 2]
        }
        group.utilizationLoad = loads.last
        group.stageTimeLoad = loads.first
        return group
    }

    static func reductions(_ group: WorkloadGroup, against baselines: [String]) -> [Reduction] {
        var rows: [Reduction] = []
        for load in group.loads {
            guard let ours = group.point("hyperion", at: load) else { continue }
            for baseline in baselines {
                guard let theirs = group.point(baseline, at: load), theirs.meanLatencySeconds > 0 else { continue }
                rows.append(
                    Reduction(
                        source: group.source, scenario: group.scenario, workload: group.workload, load: load,
                        loadIsFraction: group.loadIsFraction, baseline: baseline, hyperionMeanSeconds: ours.meanLatencySeconds,
                        baselineMeanSeconds: theirs.meanLatencySeconds,
                        reductionPercent: reduction(from: theirs.meanLatencySeconds, to: ours.meanLatencySeconds),
                        baselineOverloaded: theirs.overloaded, hyperionOverloaded: ours.overloaded))
            }
        }
        return rows
    }

    /// (from − to) / from × 100.
    static func reduction(from: Double, to: Double) -> Double { from > 0 ? (from - to) / from * 100 : 0 }

    static func ablation(_ group: WorkloadGroup) -> [AblationRow] {
        // baseline → (its routing kept on bsdp's partition, its partition kept under arts); the
        // last two rows are routing alone on hyperion's own partition.
        let swaps: [(String, String?, String)] = [
            ("gpipe", "bsdp+round-robin", "gpipe+arts"),
            ("heft", "bsdp+heft", "heft+arts"),
            ("bsdp+round-robin", nil, "hyperion"),
            ("bsdp+heft", nil, "hyperion"),
        ]
        var rows: [AblationRow] = []
        for load in group.loads {
            for (baseline, partitionOnly, routingOnly) in swaps {
                guard let base = group.point(baseline, at: load), base.meanLatencySeconds > 0 else { continue }
                func percent(_ system: String) -> Double? {
                    group.point(system, at: load).map { reduction(from: base.meanLatencySeconds, to: $0.meanLatencySeconds) }
                }
                let row = AblationRow(
                    source: group.source, scenario: group.scenario, workload: group.workload, load: load, baseline: baseline,
                    totalPercent: percent("hyperion"), partitionOnlySystem: partitionOnly ?? "—",
                    partitionOnlyPercent: partitionOnly.flatMap(percent), routingOnlySystem: routingOnly,
                    routingOnlyPercent: percent(routingOnly))
                if row.partitionOnlyPercent != nil || row.routingOnlyPercent != nil { rows.append(row) }
            }
        }
        return rows
    }

    static func wins(_ group: WorkloadGroup) -> [BaselineWin] {
        var wins: [BaselineWin] = []
        for load in group.loads {
            guard let ours = group.point("hyperion", at: load) else { continue }
            for system in group.systems where system != "hyperion" {
                guard let theirs = group.point(system, at: load), theirs.completed > 0,
                    theirs.meanLatencySeconds < ours.meanLatencySeconds
                else { continue }
                wins.append(
                    BaselineWin(
                        source: group.source, scenario: group.scenario, workload: group.workload, load: load, system: system,
                        systemMeanSeconds: theirs.meanLatencySeconds, hyperionMeanSeconds: ours.meanLatencySeconds,
                        reason: reason(system: theirs, hyperion: ours)))
            }
        }
        return wins
    }

    /// Why a system beat hyperion, from what the two runs record: same or different cuts, the
    /// planned idle latency and bottleneck, the routing, overload.
    static func reason(system: MeasuredPoint, hyperion: MeasuredPoint) -> String {
        let margin = reduction(from: hyperion.meanLatencySeconds, to: system.meanLatencySeconds)
        var parts: [String] = []
        let routing = system.system.split(separator: "+").last.map(String.init) ?? system.system
        if hyperion.overloaded {
            parts.append("hyperion itself could not keep up at this load (it served \(ReportFormat.rate(hyperion.steadyRequestsPerSecond ?? hyperion.requestsPerSecond)) of \(ReportFormat.rate(hyperion.rate ?? 0)) offered)")
        }
        if let theirs = system.plan, let ours = hyperion.plan {
            if theirs.ranges == ours.ranges {
                parts.append(
                    "same partition as hyperion (\(ours.ranges.joined(separator: ", "))); only the routing differs, "
                        + "\(routingName(system.system)) against ARTS")
                if margin >= 3 {
                    parts.append(
                        "ARTS routes on queue and speed figures up to one heartbeat old, and on replicas of one device "
                            + "class near saturation an even split or nominal-speed bookkeeping balances at least as well")
                }
            } else {
                parts.append(
                    "its partition (\(theirs.ranges.joined(separator: ", "))) has a planned idle latency of "
                        + "\(ReportFormat.seconds(theirs.idleLatencySeconds)) against hyperion's "
                        + "\(ReportFormat.seconds(ours.idleLatencySeconds)) (\(ours.ranges.joined(separator: ", "))), "
                        + "and a planned bottleneck of \(ReportFormat.seconds(theirs.bottleneckSeconds)) against "
                        + "\(ReportFormat.seconds(ours.bottleneckSeconds))")
                if system.overloaded {
                    parts.append(
                        "it is past its own saturation (\(ReportFormat.rate(system.capacityRequestsPerSecond ?? 0)) against "
                            + "\(ReportFormat.rate(system.rate ?? 0)) offered), so its queue grows through the run; over this "
                            + "run's requests its shorter path still kept its mean lower, and a longer run would raise it")
                } else if theirs.idleLatencySeconds < ours.idleLatencySeconds {
                    parts.append(
                        "below saturation a request's latency is mostly its path through the pipeline, and that path is shorter")
                } else if theirs.bottleneckSeconds > ours.bottleneckSeconds {
                    parts.append(
                        "the plan model (one decode step at a time) ranks it worse, but batching on the nodes "
                            + "changes which stage binds")
                }
            }
        } else if routing != "arts" {
            parts.append("routing by \(routingName(system.system)) instead of ARTS")
        }
        if margin < 3 {
            parts.append(String(format: "the margin (%.1f%%) is within the run-to-run spread of one seed", margin))
        }
        return parts.joined(separator: "; ")
    }

    static func routingName(_ system: String) -> String {
        switch system {
        case "gpipe": "round-robin"
        case "heft": "HEFT's earliest-finish routing"
        default:
            switch system.split(separator: "+").last.map(String.init) ?? "" {
            case "round-robin": "round-robin"
            case "heft": "HEFT's earliest-finish routing"
            default: "ARTS"
            }
        }
    }
}

/// How the report writes numbers, shared by the HTML and the tests that compare it to the JSON.
public enum ReportFormat {
    public static func percent(_ value: Double) -> String { String(format: "%.1f%%", value) }

    public static func seconds(_ value: Double) -> String {
        if value >= 100 { return String(format: "%.0f s", value) }
        if value >= 1 { return String(format: "%.2f s", value) }
        return String(format: "%.0f ms", value * 1000)
    }

    public static func rate(_ value: Double) -> String { String(format: "%.3f req/s", value) }

    /// A load point as written in keys and tables: `0.30` for fractions, `1.234` for rates.
    public static func load(_ value: Double) -> String { String(format: value < 1.0001 ? "%.2f" : "%.3f", value) }
}
