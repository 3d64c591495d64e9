import AMQP
import Foundation
import IntegrationSupport
import JSON
import Messages
import Testing

/// The experiment's three systems live, at a small time scale: Phi-3-medium emulated on the
/// paper testbed (profile-executor workers, `link-emulator` links), each system planned and routed
/// by its own policies, a burst of requests served, and the results read back by `hyperion report`
/// as a live result file. What a user checks before trusting a long live run.
@Suite("Experiment systems live on the emulated paper testbed", .serialized)
struct ExperimentLiveTests {
    static let model = "phi-3-medium:q4_0"
    static let timeScale = "0.01"
    static let requests = 6
    static let maxTokens = 16
    static let promptTokens = 256
    static let topology = TestPaths.packageRoot.appendingPathComponent("examples/paper-testbed.json").path

    /// The paper testbed's nodes; a plan that leaves a tier empty (HEFT's) gets no workers there.
    static func workers(tiers: Set<String>) -> [Cluster.Worker] {
        let nodes: [(tier: String, id: String, device: String, extra: [String])] = [
            ("edge", "edge-1", "jetson-orin-nano", ["--memory-bytes", "6e9", "--link", "edge-fog"]),
            ("edge", "edge-2", "jetson-orin-nano", ["--memory-bytes", "6e9", "--link", "edge-fog"]),
            ("fog", "fog-1", "t4", ["--link", "fog-cloud"]),
            ("fog", "fog-2", "t4", ["--link", "fog-cloud"]),
            ("cloud", "cloud-1", "a100-40gb", ["--return-link", "return"]),
        ]
        return nodes.filter { tiers.contains($0.tier) }.map { node in
            Cluster.Worker(
                tier: node.tier, id: node.id,
                arguments: ["--executor", "profile", "--model", model, "--device", node.device, "--time-scale", timeScale] + node.extra)
        }
    }

    struct System: Sendable, CustomStringConvertible {
        var name: String
        var partition: String
        var routing: String
        /// Tiers its plan uses on this testbed (`hyperion plan` shows HEFT keeps all 40 blocks on the A100).
        var tiers: [String]
        var description: String { name }
    }

    static let systems = [
        System(name: "hyperion", partition: "bsdp", routing: "arts", tiers: ["edge", "fog", "cloud"]),
        System(name: "gpipe", partition: "gpipe", routing: "round-robin", tiers: ["edge", "fog", "cloud"]),
        System(name: "heft", partition: "heft", routing: "heft", tiers: ["cloud"]),
    ]

    /// One system's burst: every request's result, or a failure with the cluster's logs.
    static func run(_ system: System) async throws -> [ResultReply] {
        let planning = ["--partition", system.partition, "--prompt-tokens", "\(promptTokens)", "--output-tokens", "\(maxTokens)"]
        return try await Cluster.with(
            workers: workers(tiers: Set(system.tiers)), routing: system.routing, topology: topology,
            plannerArguments: ["--model", model] + planning,
            // The scheduler sits with the edge: a plan starting past it is reached over the links.
            schedulerArguments: ["--emulated-model", model, "--link", "edge-fog", "--link-from-tier", "edge"]
        ) { cluster in
            let links = try ["edge-fog", "fog-cloud", "return"].map { name in
                try ServiceProcess(
                    "link-emulator", arguments: ["--topology", topology, "--link", name, "--time-scale", timeScale],
                    amqpURL: cluster.host.urlText, logLevel: "info")
            }
            defer { for link in links { link.kill() } }
            for link in links { _ = await link.logLine(containing: "emulating link", timeoutSeconds: 20) }
            var sent: [ClientRequest] = []
            for index in 0..<requests {
                let prompt = (0..<promptTokens).map { Int32(1000 + ($0 + index) % 500) }
                sent.append(
                    try await ClientRequest(
                        InferenceRequest(id: nil, input: .tokens(prompt), maxTokens: maxTokens, stream: true), on: cluster.client))
            }
            var results: [ResultReply] = []
            for request in sent {
                let result = try #require(await request.result(timeoutSeconds: 60), "\(system): no result; logs:\n\(cluster.logs)")
                results.append(result)
            }
            return results
        }
    }

    @Test("hyperion, gpipe and heft each serve a burst on the emulated testbed, and the report reads the results")
    func threeSystems() async throws {
        var points: [JSONValue] = []
        for system in Self.systems {
            let results = try await Self.run(system)
            #expect(results.count == Self.requests)
            for result in results {
                #expect(result.tokens.count == Self.maxTokens, "\(system)")
                #expect(result.finishReason == .length)
                // One node per tier the system's plan uses, in tier order.
                #expect(result.route.map { $0.split(separator: "-").first.map(String.init) ?? "" } == system.tiers, "\(system): \(result.route)")
            }
            let routed = Set(results.flatMap(\.route))
            if system.name == "gpipe" {
                // Round-robin spreads the burst over both replicas of each two-node tier.
                #expect(routed.isSuperset(of: ["edge-1", "edge-2", "fog-1", "fog-2"]), "\(routed)")
            }
            let latencies = results.map(\.timings.totalSeconds).sorted()
            let mean = latencies.reduce(0, +) / Double(latencies.count)
            points.append(
                [
                    "system": .string(system.name), "workload": "burst", "concurrency": .int(Int64(Self.requests)),
                    "mean_latency_s": .double(mean), "p95_latency_s": .double(latencies.last ?? 0),
                    "mean_ttft_s": .double(results.map(\.timings.timeToFirstTokenSeconds).reduce(0, +) / Double(results.count)),
                    "completed": .int(Int64(results.count)), "failed": 0,
                ])
        }
        // The same figures through `hyperion report --live` (closed-loop points: no headline, but
        // every system appears with its saturation figures).
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("live-report-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("live.json")
        try Data(JSONValue.object(JSONObject([("time_scale", .double(0.01)), ("results", .array(points))])).serialized().utf8).write(to: file)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ServiceProcess.binaryPath("hyperion"))
        process.arguments = ["report", "--skip-simulation", "--live", file.path, "--output", directory.appendingPathComponent("r.html").path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let figures = try JSONValue.parse(String(contentsOf: directory.appendingPathComponent("r.json"), encoding: .utf8))
        let live = try #require(figures["groups"]?.arrayValue?.first { $0["source"]?.stringValue == "live" })
        #expect(live["systems"]?.arrayValue?.compactMap(\.stringValue) == ["hyperion", "gpipe", "heft"])
    }
}
