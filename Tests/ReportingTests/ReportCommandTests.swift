import Foundation
import IntegrationSupport
import JSON
import Testing

import Reporting

/// `hyperion report` as a user runs it: the built binary on saved result files, what it writes
/// and how it refuses bad flags. The binary is the `hyperion` product beside this test bundle
/// (`swift build --build-tests` builds both), or `HYPERION_BIN`.
@Suite("hyperion report: from saved results to HTML and figures")
struct ReportCommandTests {
    typealias Run = CommandRun

    static func hyperion(_ arguments: [String]) throws -> Run {
        var path = ProcessInfo.processInfo.environment["HYPERION_BIN"] ?? ""
        if path.isEmpty {
            let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
            while directory.path.contains(".xctest") { directory.deleteLastPathComponent() }
            path = directory.appendingPathComponent("hyperion").path
        }
        try #require(FileManager.default.isExecutableFile(atPath: path), "hyperion not built at \(path)")
        return try runToEnd(path, arguments)
    }

    static func scratch() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hyperion-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    static let drift = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/scenarios/drift.json").path

    /// A live result in the shape `hyperion bench load --json` writes: rates, no fractions, no plan.
    static let live = """
        {"results":[
          {"system":"hyperion","workload":"short","rate":0.5,"mean_latency_s":2.0,"p95_latency_s":3.0,"mean_ttft_s":0.4,
           "tokens_per_s":30,"utilization":{"edge":0.3,"fog":0.2,"cloud":0.1},"completed":20,"failed":0},
          {"system":"gpipe","workload":"short","rate":0.5,"mean_latency_s":2.5,"p95_latency_s":4.0,"mean_ttft_s":0.5,
           "tokens_per_s":28,"utilization":{"edge":0.5,"fog":0.2,"cloud":0.1},"completed":20,"failed":0}]}
        """

    @Test("saved simulated and live results become an HTML report whose headline numbers are the figures JSON's")
    func fromSavedResults() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let simulated = directory.appendingPathComponent("small.json")
        let live = directory.appendingPathComponent("live-small.json")
        try Data(SmallResults.text.utf8).write(to: simulated)
        try Data(Self.live.utf8).write(to: live)
        let html = directory.appendingPathComponent("out/report.html")
        let run = try Self.hyperion(["report", "--simulated", simulated.path, "--live", live.path, "--output", html.path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("simulated small short load 0.50: vs gpipe 50.0%"))
        #expect(run.stdout.contains("live live-small short load 0.50: vs gpipe 20.0%"))
        #expect(run.stderr.contains("report written to"))

        let page = try String(contentsOf: html, encoding: .utf8)
        let figures = try JSONValue.parse(String(contentsOf: directory.appendingPathComponent("out/report.json"), encoding: .utf8))
        let headline = try #require(figures["headline"]?.arrayValue)
        #expect(headline.count == 5)
        for row in headline {
            let key = try #require(row["key"]?.stringValue)
            let value = try #require(row["reduction_pct"]?.doubleValue)
            let mark = row["baseline_overloaded"]?.boolValue == true ? " †" : ""
            #expect(page.contains("data-key=\"\(key)\">\(ReportFormat.percent(value))\(mark)</td>"), "headline \(key)")
        }
        #expect(page.contains("<h2>Headline (live): mean latency reduction of hyperion</h2>"))
        #expect(page.contains("Live results read from \(live.path)"))
        #expect(page.components(separatedBy: "<svg ").count - 1 >= 10)
    }

    @Test("--live takes the files a shell glob expands to, several after one flag")
    func liveGlob() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = directory.appendingPathComponent("live-a.json")
        let second = directory.appendingPathComponent("live-b.json")
        try Data(Self.live.utf8).write(to: first)
        try Data(Self.live.utf8).write(to: second)
        let html = directory.appendingPathComponent("report.html")
        let run = try Self.hyperion(["report", "--skip-simulation", "--live", first.path, second.path, "--output", html.path])
        #expect(run.status == 0, "\(run.stderr)")
        let page = try String(contentsOf: html, encoding: .utf8)
        #expect(page.contains("Live results read from \(first.path)") && page.contains("Live results read from \(second.path)"))
    }

    @Test("bad flags and unreadable files exit 2 with the reason", arguments: [
        (["report", "--requests", "0"], "--requests"),
        (["report", "--scenarios", Self.drift, "--systems", "hyperion,fastest"], "unknown system 'fastest'"),
        (["report", "--scenarios", "/nonexistent/scenario.json"], "/nonexistent/scenario.json"),
        (["report", "--simulated", "/nonexistent/results.json"], "/nonexistent/results.json"),
        (["report", "--skip-simulation"], "--skip-simulation leaves nothing to report"),
        (["report", "--requests", "-5"], "--requests"),
    ])
    func refusals(arguments: [String], reason: String) throws {
        let run = try Self.hyperion(arguments + ["--output", FileManager.default.temporaryDirectory.appendingPathComponent("unused-report.html").path])
        #expect(run.status == 2)
        #expect(run.stderr.contains(reason), "\(run.stderr)")
    }
}
