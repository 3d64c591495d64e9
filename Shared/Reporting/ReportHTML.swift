import Foundation

/// The experiment report as one self-contained HTML page: tables for the headline, the ablation
/// and every load point a baseline won, then per workload the charts (inline SVG).
public enum ReportHTML {
    /// Fixed colours per system, so a system looks the same in every chart.
    static let palette = ["#1b6ac9", "#d1462f", "#2e9e44", "#8e44ad", "#e08e0b", "#17a2b8", "#7f7f7f", "#b5651d"]
    static let tierPalette = ["#4c9f70", "#3d7ab8", "#a05195", "#e6a23c", "#888888"]

    static func color(_ system: String) -> String {
        let index = ExperimentFigures.systemOrder.firstIndex(of: system) ?? 7
        return palette[index % palette.count]
    }

    /// `context` lines (how the results were made: scenario files, commands, time scale) go under
    /// the title as written.
    public static func render(_ figures: ExperimentFigures, title: String, context: [String]) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(e(title))</title>
            <style>
            body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
            table{border-collapse:collapse;margin:1em 0;font-size:13px}
            th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
            th{background:#f3f3f3} td.l,th.l{text-align:left}
            .good{color:#1a7f37}.bad{color:#b42318}.note{color:#555;font-size:13px}
            .charts{display:flex;flex-wrap:wrap;gap:8px}
            h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:2em}
            </style></head><body>
            <h1>\(e(title))</h1>

            """
        for line in context { html += "<p class=\"note\">\(e(line))</p>\n" }
        html += """
            <p class="note">Reduction = (baseline − hyperion) / baseline × 100 of the mean end-to-end latency at the \
            same offered load: positive when hyperion is faster. Load is the fraction of hyperion's saturated \
            throughput on that workload (or the rate in requests/s). † marks a system that could not keep up with \
            the offered load (it served under 90% of it, or requests failed): its mean latency grows with the \
            length of the run, so its reduction says "overloaded" more than "how much faster".</p>

            """
        for source in ResultSource.allCases where figures.groups.contains(where: { $0.source == source }) {
            html += headlineTable(figures.headline.filter { $0.source == source }, source: source)
        }
        html += ablationTable(figures.ablation)
        html += winsList(figures.baselineWins)
        for group in figures.groups { html += section(group) }
        if !figures.notes.isEmpty {
            html += "<h2>Notes</h2><ul>" + figures.notes.map { "<li>\(e($0))</li>" }.joined() + "</ul>\n"
        }
        return html + "</body></html>\n"
    }

    static func e(_ text: String) -> String { SVGChart.escape(text) }

    static func loadText(_ load: Double, fraction: Bool) -> String {
        fraction ? ReportFormat.load(load) : ReportFormat.load(load) + " req/s"
    }

    static func percentCell(_ value: Double?, key: String, overloaded: Bool = false) -> String {
        guard let value else { return "<td>—</td>" }
        let style = value >= 0 ? "good" : "bad"
        return "<td class=\"\(style)\" data-key=\"\(e(key))\">\(ReportFormat.percent(value))\(overloaded ? " †" : "")</td>"
    }

    static func headlineTable(_ rows: [ExperimentFigures.Reduction], source: ResultSource) -> String {
        var html = "<h2>Headline (\(source.rawValue)): mean latency reduction of hyperion</h2>\n"
        guard !rows.isEmpty else { return html + "<p>No load point has both hyperion and a baseline.</p>\n" }
        html += "<table class=\"headline\" data-source=\"\(source.rawValue)\"><tr><th class=\"l\">scenario</th><th class=\"l\">workload</th><th>load</th><th>hyperion</th>"
        for baseline in ExperimentFigures.baselines { html += "<th>\(baseline)</th><th>vs \(baseline)</th>" }
        html += "</tr>\n"
        var keys: [String] = []
        var byRow: [String: [String: ExperimentFigures.Reduction]] = [:]
        for row in rows {
            let key = "\(row.scenario)|\(row.workload)|\(ReportFormat.load(row.load))"
            if byRow[key] == nil { keys.append(key) }
            byRow[key, default: [:]][row.baseline] = row
        }
        for key in keys {
            guard let cells = byRow[key], let any = cells.values.first else { continue }
            html += "<tr><td class=\"l\">\(e(any.scenario))</td><td class=\"l\">\(e(any.workload))</td>"
                + "<td>\(loadText(any.load, fraction: any.loadIsFraction))</td>"
                + "<td>\(ReportFormat.seconds(any.hyperionMeanSeconds))\(any.hyperionOverloaded ? " †" : "")</td>"
            for baseline in ExperimentFigures.baselines {
                if let row = cells[baseline] {
                    html += "<td>\(ReportFormat.seconds(row.baselineMeanSeconds))\(row.baselineOverloaded ? " †" : "")</td>"
                        + percentCell(row.reductionPercent, key: row.key, overloaded: row.baselineOverloaded)
                } else {
                    html += "<td>—</td><td>—</td>"
                }
            }
            html += "</tr>\n"
        }
        return html + "</table>\n"
    }

    static func ablationTable(_ rows: [ExperimentFigures.AblationRow]) -> String {
        var html = """
            <h2>Ablation: which stage contributes</h2>
            <p class="note">For each baseline, hyperion's total reduction beside the reduction from swapping only the \
            partition (the baseline's routing kept, its partition replaced by BSDP) and only the routing (the \
            baseline's partition kept, its routing replaced by ARTS).</p>

            """
        guard !rows.isEmpty else { return html + "<p>No ablation systems in these results.</p>\n" }
        html += "<table class=\"ablation\"><tr><th class=\"l\">source</th><th class=\"l\">scenario</th><th class=\"l\">workload</th><th>load</th><th class=\"l\">baseline</th><th>total (hyperion)</th><th class=\"l\">partition only</th><th></th><th class=\"l\">routing only</th><th></th></tr>\n"
        for row in rows {
            html += "<tr><td class=\"l\">\(row.source.rawValue)</td><td class=\"l\">\(e(row.scenario))</td><td class=\"l\">\(e(row.workload))</td>"
                + "<td>\(ReportFormat.load(row.load))</td><td class=\"l\">\(e(row.baseline))</td>"
                + percentCell(row.totalPercent, key: row.key + "/total")
                + "<td class=\"l\">\(e(row.partitionOnlySystem))</td>" + percentCell(row.partitionOnlyPercent, key: row.key + "/partition")
                + "<td class=\"l\">\(e(row.routingOnlySystem))</td>" + percentCell(row.routingOnlyPercent, key: row.key + "/routing")
                + "</tr>\n"
        }
        return html + "</table>\n"
    }

    static func winsList(_ wins: [ExperimentFigures.BaselineWin]) -> String {
        var html = "<h2>Where another system beats hyperion</h2>\n"
        guard !wins.isEmpty else { return html + "<p>At no load point did any other system have a lower mean latency.</p>\n" }
        html += "<table class=\"wins\"><tr><th class=\"l\">source</th><th class=\"l\">scenario</th><th class=\"l\">workload</th><th>load</th><th class=\"l\">system</th><th>its mean</th><th>hyperion's</th><th class=\"l\">why (from the plans and runs)</th></tr>\n"
        for win in wins {
            html += "<tr><td class=\"l\">\(win.source.rawValue)</td><td class=\"l\">\(e(win.scenario))</td><td class=\"l\">\(e(win.workload))</td>"
                + "<td>\(ReportFormat.load(win.load))</td><td class=\"l\">\(e(win.system))</td>"
                + "<td>\(ReportFormat.seconds(win.systemMeanSeconds))</td><td>\(ReportFormat.seconds(win.hyperionMeanSeconds))</td>"
                + "<td class=\"l\">\(e(win.reason))</td></tr>\n"
        }
        return html + "</table>\n"
    }

    /// One workload's charts.
    static func section(_ group: ExperimentFigures.WorkloadGroup) -> String {
        let xLabel = group.loadIsFraction ? "offered load (fraction of hyperion's saturated throughput)" : "offered rate (requests/s)"
        var html = "<h2 id=\"\(e(group.key))\">\(e(group.scenario)) · \(e(group.workload)) · \(group.source.rawValue)</h2>\n"
        if let saturation = group.hyperionSaturationRequestsPerSecond {
            html += "<p class=\"note\">hyperion's saturated throughput: \(ReportFormat.rate(saturation)).</p>\n"
        }
        for system in group.systems {
            if let reason = group.infeasible[system] { html += "<p class=\"note\">\(e(system)): infeasible — \(e(reason))</p>\n" }
        }
        func series(_ value: (MeasuredPoint) -> Double) -> [ChartSeries] {
            group.systems.compactMap { system in
                guard let points = group.series[system], !points.isEmpty else { return nil }
                return ChartSeries(
                    name: system, color: color(system), points: points.map { ($0.loadValue ?? 0, value($0)) },
                    hollow: points.map(\.overloaded), dashed: system.contains("+"))
            }
        }
        html += "<div class=\"charts\">"
        html += SVGChart.line(title: "Mean latency vs load", xLabel: xLabel, yLabel: "seconds", series: series(\.meanLatencySeconds))
        html += SVGChart.line(title: "p95 latency vs load", xLabel: xLabel, yLabel: "seconds", series: series(\.p95LatencySeconds))
        html += SVGChart.line(title: "Mean time to first token vs load", xLabel: xLabel, yLabel: "seconds", series: series(\.meanTTFTSeconds))
        html += cdfChart(group)
        html += utilizationChart(group)
        html += saturationChart(group)
        html += stageTimeChart(group)
        html += "</div>\n"
        html += latencyTable(group)
        return html
    }

    static func cdfChart(_ group: ExperimentFigures.WorkloadGroup) -> String {
        let lines: [ChartSeries] = group.systems.compactMap { system in
            guard let point = group.point(system, at: group.cdfLoad), point.latencyPercentilesSeconds.count > 1 else { return nil }
            let count = Double(point.latencyPercentilesSeconds.count - 1)
            return ChartSeries(
                name: system, color: color(system),
                points: point.latencyPercentilesSeconds.enumerated().map { ($0.element, Double($0.offset) / count) })
        }
        guard let load = group.cdfLoad, !lines.isEmpty else { return "" }
        let xs = lines.flatMap { $0.points.map(\.x) }.filter { $0 > 0 }
        let wide = (xs.max() ?? 1) / max(xs.min() ?? 1, 1e-9) > 30
        return SVGChart.line(
            title: "Latency CDF at load \(loadText(load, fraction: group.loadIsFraction))", xLabel: "latency (s)" + (wide ? ", log scale" : ""),
            yLabel: "fraction of requests", series: lines, xLog: wide, yMin: 0, yMax: 1, forceLinearY: true)
    }

    static func tierSeries(_ names: [String]) -> [(name: String, color: String)] {
        names.enumerated().map { ($0.element, tierPalette[$0.offset % tierPalette.count]) }
    }

    static func utilizationChart(_ group: ExperimentFigures.WorkloadGroup) -> String {
        let rows = group.systems.compactMap { system in group.point(system, at: group.utilizationLoad).map { (system, $0.utilization) } }
        guard let load = group.utilizationLoad, let tiers = rows.first?.1.map(\.name), !tiers.isEmpty else { return "" }
        return SVGChart.bars(
            title: "Utilisation per tier at load \(loadText(load, fraction: group.loadIsFraction))", yLabel: "busy fraction",
            categories: rows.map(\.0), series: tierSeries(tiers),
            values: rows.map { row in tiers.map { tier in row.1.first { $0.name == tier }?.fraction } }, yMax: 1)
    }

    static func saturationChart(_ group: ExperimentFigures.WorkloadGroup) -> String {
        let rows = group.systems.compactMap { system in group.saturated[system].map { (system, $0) } }
        guard let tiers = rows.first?.1.utilization.map(\.name), !tiers.isEmpty else { return "" }
        let categories = rows.map { "\($0.0) (\(ReportFormat.rate($0.1.steadyRequestsPerSecond ?? $0.1.requestsPerSecond)))" }
        return SVGChart.bars(
            title: "Utilisation per tier at each system's saturation", yLabel: "busy fraction", categories: categories,
            series: tierSeries(tiers), values: rows.map { row in tiers.map { tier in row.1.utilization.first { $0.name == tier }?.fraction } },
            yMax: 1)
    }

    static func stageTimeChart(_ group: ExperimentFigures.WorkloadGroup) -> String {
        // The three systems only: each ablation runs one of their partitions.
        let systems = group.systems.filter { !$0.contains("+") }
        let rows = systems.compactMap { system in group.point(system, at: group.stageTimeLoad)?.plan.map { (system, $0) } }
        guard let load = group.stageTimeLoad, !rows.isEmpty else { return "" }
        var categories: [String] = []
        var values: [[Double?]] = []
        for (system, plan) in rows {
            for stage in plan.stages {
                categories.append("\(system) \(stage.tier)")
                values.append([stage.plannedSeconds, stage.measuredSeconds])
            }
        }
        return SVGChart.bars(
            title: "Stage time per request, planned vs measured, at load \(loadText(load, fraction: group.loadIsFraction))",
            yLabel: "node-busy seconds per request", categories: categories,
            series: [("planned", "#9bbbe0"), ("measured", "#1b4f8a")], values: values)
    }

    static func latencyTable(_ group: ExperimentFigures.WorkloadGroup) -> String {
        var html = "<table class=\"points\" data-group=\"\(e(group.key))\"><tr><th class=\"l\">system</th><th>load</th><th>rate</th><th>mean</th><th>p95</th><th>TTFT</th><th>p95 TTFT</th><th>served req/s</th><th>done</th><th>failed</th><th class=\"l\">utilisation</th></tr>\n"
        for system in group.systems {
            for point in group.series[system] ?? [] {
                let utilisation = point.utilization.map { "\($0.name) \(String(format: "%.2f", $0.fraction))" }.joined(separator: ", ")
                html += "<tr><td class=\"l\">\(e(system))</td><td>\(point.loadValue.map(ReportFormat.load) ?? "—")\(point.overloaded ? " †" : "")</td>"
                    + "<td>\(point.rate.map(ReportFormat.rate) ?? "—")</td>"
                    + "<td>\(ReportFormat.seconds(point.meanLatencySeconds))</td><td>\(ReportFormat.seconds(point.p95LatencySeconds))</td>"
                    + "<td>\(ReportFormat.seconds(point.meanTTFTSeconds))</td><td>\(ReportFormat.seconds(point.p95TTFTSeconds))</td>"
                    + "<td>\(ReportFormat.rate(point.steadyRequestsPerSecond ?? point.requestsPerSecond))</td>"
                    + "<td>\(point.completed)</td><td>\(point.failed)</td><td class=\"l\">\(e(utilisation))</td></tr>\n"
            }
        }
        return html + "</table>\n"
    }
}
