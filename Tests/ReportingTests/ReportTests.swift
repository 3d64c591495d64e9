import Foundation
import JSON
import Testing

import Reporting

/// A small saved result set in the shape `hyperion simulate --json` writes: one scenario, one
/// workload, five systems at two load points, one closed-loop saturation point, and one system
/// whose plan does not fit.
enum SmallResults {
    /// mean latency of each system at loads 0.5 and 0.9.
    static let means: [String: (Double, Double)] = [
        "hyperion": (1.0, 1.5),
        "gpipe": (2.0, 30.0),
        "heft": (0.8, 3.0),
        "bsdp+round-robin": (1.2, 2.0),
        "gpipe+arts": (1.9, 25.0),
    ]

    static func point(_ system: String, fraction: Double, mean: Double) -> String {
        let rate = fraction * 2
        let served = rate
        let percentiles = (0...100).map { String(mean * (0.5 + Double($0) / 100)) }.joined(separator: ",")
        let cuts = system.hasPrefix("gpipe") ? (3, 6) : (1, 6)
        return """
            {"system":"\(system)","workload":"short","rate":\(rate),"rate_fraction":\(fraction),
             "mean_latency_s":\(mean),"p50_latency_s":\(mean),"p95_latency_s":\(mean * 2),"p99_latency_s":\(mean * 3),
             "mean_ttft_s":\(mean / 10),"p95_ttft_s":\(mean / 5),"latency_percentiles_s":[\(percentiles)],
             "tokens_per_s":10,"requests_per_s":\(served),"steady_requests_per_s":\(served),
             "utilization":{"edge":0.2,"cloud":0.6},"completed":100,"failed":0,
             "plan":{"bottleneck_s":0.5,"idle_latency_s":0.9,"stages":[
               {"tier":"edge","first_block":0,"last_block":\(cuts.0),"nodes":["e1"],"planned_compute_s":0.1,
                "planned_node_seconds_per_request":0.1,"measured_node_seconds_per_request":0.12,"link_s":0.01},
               {"tier":"cloud","first_block":\(cuts.0 + 1),"last_block":\(cuts.1),"nodes":["c1"],"planned_compute_s":0.4,
                "planned_node_seconds_per_request":0.4,"measured_node_seconds_per_request":0.38,"link_s":0}]}}
            """
    }

    static var text: String {
        var points: [String] = []
        for system in ["hyperion", "gpipe", "heft", "bsdp+round-robin", "gpipe+arts"] {
            guard let means = means[system] else { continue }
            points.append(point(system, fraction: 0.5, mean: means.0))
            points.append(point(system, fraction: 0.9, mean: means.1))
        }
        points.append(
            #"{"system":"heft+arts","workload":"short","rate":1.0,"rate_fraction":0.5,"infeasible":{"tier":"edge","need_bytes":9e9,"max_node_bytes":6e9,"reason":"edge: 9 GB needed, 6 GB on the largest node"},"completed":0,"failed":0}"#
        )
        // gpipe saturates at 1.5 req/s: overloaded at 0.9 (1.8 req/s), not at 0.5 (1.0 req/s).
        points.append(
            #"{"system":"gpipe","workload":"short","concurrency":8,"mean_latency_s":9,"p95_latency_s":12,"requests_per_s":1.4,"steady_requests_per_s":1.5,"utilization":{"edge":0.9,"cloud":0.3},"completed":200,"failed":0}"#
        )
        points.append(
            #"{"system":"hyperion","workload":"short","concurrency":16,"mean_latency_s":4,"p95_latency_s":6,"mean_ttft_s":0.5,"p95_ttft_s":1,"requests_per_s":2.0,"steady_requests_per_s":2.1,"utilization":{"edge":0.4,"cloud":0.95},"completed":200,"failed":0}"#
        )
        return #"{"scenario":"small","seed":1,"requests":100,"results":["# + points.joined(separator: ",")
            + #"],"saturation":[{"system":"hyperion","workload":"short","requests_per_s":2.0,"concurrency":16}]}"#
    }

    static func figures() throws -> ExperimentFigures {
        ExperimentFigures(try ResultSet.parse(JSONValue.parse(text), source: .simulated, defaultScenario: "unnamed"))
    }
}

@Suite("Experiment report: figures, HTML and JSON")
struct ReportTests {
    @Test("the headline is hyperion's reduction of mean latency against each baseline at each load")
    func headline() throws {
        let figures = try SmallResults.figures()
        let rows = figures.headline.map { "\($0.baseline)@\(ReportFormat.load($0.load))=\(ReportFormat.percent($0.reductionPercent))" }
        #expect(rows == ["gpipe@0.50=50.0%", "heft@0.50=-25.0%", "gpipe@0.90=95.0%", "heft@0.90=50.0%"])
        let overloaded = figures.headline.filter(\.baselineOverloaded).map { "\($0.baseline)@\($0.load)" }
        #expect(overloaded == ["gpipe@0.9"])
    }

    @Test("the ablation splits the reduction into partition-only and routing-only swaps")
    func ablation() throws {
        let figures = try SmallResults.figures()
        let gpipe = try #require(figures.ablation.first { $0.baseline == "gpipe" && $0.load == 0.5 })
        #expect(gpipe.totalPercent.map(ReportFormat.percent) == "50.0%")
        #expect(gpipe.partitionOnlySystem == "bsdp+round-robin")
        #expect(gpipe.partitionOnlyPercent.map(ReportFormat.percent) == "40.0%")
        #expect(gpipe.routingOnlySystem == "gpipe+arts")
        #expect(gpipe.routingOnlyPercent.map(ReportFormat.percent) == "5.0%")
        // heft's ablations: bsdp+heft is absent, heft+arts is infeasible.
        #expect(!figures.ablation.contains { $0.baseline == "heft" })
        // Routing alone on hyperion's partition: bsdp+round-robin 1.2 s → hyperion 1.0 s.
        let routing = try #require(figures.ablation.first { $0.baseline == "bsdp+round-robin" && $0.load == 0.5 })
        #expect(routing.partitionOnlyPercent == nil)
        #expect(routing.routingOnlySystem == "hyperion")
        #expect(routing.routingOnlyPercent.map(ReportFormat.percent) == "16.7%")
    }

    @Test("a load point where a baseline wins is listed with a reason naming the plans")
    func baselineWins() throws {
        let figures = try SmallResults.figures()
        #expect(figures.baselineWins.map { "\($0.system)@\($0.load)" } == ["heft@0.5"])
        let reason = try #require(figures.baselineWins.first?.reason)
        #expect(reason.contains("same partition as hyperion"))
        #expect(reason.contains("HEFT's earliest-finish routing"))
    }

    @Test("the HTML has every chart, and each headline and ablation number is the JSON's")
    func htmlMatchesJSON() throws {
        let figures = try SmallResults.figures()
        let html = ReportHTML.render(figures, title: "test", context: ["from a saved set"])
        for title in [
            "Mean latency vs load", "p95 latency vs load", "Mean time to first token vs load", "Latency CDF at load 0.50",
            "Utilisation per tier at load 0.90", "Utilisation per tier at each system&#39;s saturation",
            "Stage time per request, planned vs measured, at load 0.50",
        ] {
            #expect(html.contains("<title>\(title)</title>"), "missing chart \(title)")
        }
        #expect(html.components(separatedBy: "<svg ").count - 1 == 7)
        #expect(html.contains("heft+arts: infeasible — edge: 9 GB needed"))

        let json = try JSONValue.parse(figures.jsonValue.serialized())
        let headline = try #require(json["headline"]?.arrayValue)
        #expect(headline.count == 4)
        for row in headline {
            let key = try #require(row["key"]?.stringValue)
            let value = try #require(row["reduction_pct"]?.doubleValue)
            let mark = row["baseline_overloaded"]?.boolValue == true ? " †" : ""
            #expect(html.contains("data-key=\"\(key)\">\(ReportFormat.percent(value))\(mark)</td>"), "headline \(key)")
        }
        for row in try #require(json["ablation"]?.arrayValue) {
            let key = try #require(row["key"]?.stringValue)
            for (part, field) in [("total", "total_reduction_pct"), ("partition", "partition_only_reduction_pct"), ("routing", "routing_only_reduction_pct")] {
                guard let value = row[field]?.doubleValue else { continue }
                #expect(html.contains("data-key=\"\(key)/\(part)\">\(ReportFormat.percent(value))</td>"), "ablation \(key)/\(part)")
            }
        }
        let group = try #require(json["groups"]?[0])
        #expect(group["hyperion_saturation_requests_per_s"]?.doubleValue == 2.0)
        #expect(group["latency_cdf"]?["systems"]?.arrayValue?.count == 5)
        #expect(group["saturation"]?[0]?["requests_per_s"]?.doubleValue == 2.1)
        #expect(group["stage_times"]?["systems"]?[0]?["stages"]?[0]?["measured_s"]?.doubleValue == 0.12)
    }

    @Test("a result file with a bad field is refused with its path")
    func refusal() throws {
        let bad = SmallResults.text.replacingOccurrences(of: #""mean_latency_s":1.0,"#, with: #""mean_latency_s":"slow","#)
        #expect {
            try ResultSet.parse(JSONValue.parse(bad), source: .live, defaultScenario: "x")
        } throws: { error in
            (error as? ReportError)?.path == "results[0].mean_latency_s"
        }
    }
}
