import AMQP
import Foundation
import IntegrationSupport
import Messages
import Testing

/// An emulated cluster (docs/design.md §11) on the real broker: Phi-3-medium on a Jetson Orin Nano,
/// a T4 and an A100, every tier a profile-executor worker, every link a `link-emulator` process.
@Suite("Emulated tiers and links end to end", .serialized)
struct EmulationPipelineTests {
    static let model = "phi-3-medium:q4_0"
    static let timeScale = "0.01"

    /// Three tiers with the paper testbed's devices and links, one node each.
    static func topologyFile() throws -> String {
        let text = """
            {"tiers": [
              {"name": "edge", "nodes": [{"id": "edge-1", "device": "jetson-orin-nano", "memory_bytes": 6.0e9}],
               "link_to_next": {"bandwidth_bytes_per_s": 1.25e8, "latency_s": 0.001}},
              {"name": "fog", "nodes": [{"id": "fog-1", "device": "t4"}],
               "link_to_next": {"bandwidth_bytes_per_s": 1.25e8, "latency_s": 0.020}},
              {"name": "cloud", "nodes": [{"id": "cloud-1", "device": "a100-40gb"}]}
            ]}
            """
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("emulated-testbed-\(UUID().uuidString.prefix(8)).json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func worker(_ tier: String, device: String, memory: String? = nil, links: [String]) -> Cluster.Worker {
        Cluster.Worker(
            tier: tier, id: "\(tier)-1",
            arguments: ["--executor", "profile", "--model", model, "--device", device, "--time-scale", timeScale]
                + (memory.map { ["--memory-bytes", $0] } ?? []) + links)
    }

    @Test("a profile pipeline of three emulated tiers, through three emulated links, returns max_tokens tokens; blocks too big for a node's memory are refused")
    func profilePipelineThroughLinks() async throws {
        let topology = try Self.topologyFile()
        defer { try? FileManager.default.removeItem(atPath: topology) }
        let workers = [
            Self.worker("edge", device: "jetson-orin-nano", memory: "6e9", links: ["--link", "edge-fog"]),
            Self.worker("fog", device: "t4", links: ["--link", "fog-cloud"]),
            Self.worker("cloud", device: "a100-40gb", links: ["--return-link", "return"]),
        ]
        try await Cluster.with(
            workers: workers, topology: topology, plannerArguments: ["--model", Self.model],
            schedulerArguments: ["--emulated-model", Self.model]
        ) { cluster in
            let links = try ["edge-fog", "fog-cloud", "return"].map { name in
                try ServiceProcess(
                    "link-emulator", arguments: ["--topology", topology, "--link", name, "--time-scale", Self.timeScale],
                    amqpURL: cluster.host.urlText, logLevel: "info")
            }
            var linkLogs = ""
            do {
                for link in links { _ = await link.logLine(containing: "emulating link", timeoutSeconds: 20) }
                let maxTokens = 12
                let request = try await ClientRequest(
                    InferenceRequest(id: nil, input: .prompt("The capital of France is"), maxTokens: maxTokens, stream: true), on: cluster.client)
                let result = try #require(await request.result(timeoutSeconds: 30), "no result; logs:\n\(cluster.logs)")
                #expect(result.tokens.count == maxTokens)
                #expect(result.finishReason == .length)
                #expect(Set(result.tokens) == [260], "the profile executor answers with its dummy token")
                #expect(result.route == ["edge-1", "fog-1", "cloud-1"])
                #expect(request.tokens.map(\.index) == Array(0..<maxTokens))
                // A node whose memory cannot hold its tier's blocks refuses the plan, as the device would.
                let small = try ServiceProcess(
                    "stage-worker",
                    arguments: ["--tier", "edge", "--node-id", "edge-small"] + Self.worker("edge", device: "jetson-orin-nano", memory: "1e8", links: []).arguments,
                    amqpURL: cluster.host.urlText, logLevel: "info")
                let refusal = await small.logLine(containing: "refusing plan", timeoutSeconds: 20)
                #expect(refusal?.contains("more than the emulated device's 100000000 bytes of memory") == true, "\(small.log)")
                let beat = await cluster.freshHeartbeat(of: "edge-small", timeoutSeconds: 5)
                #expect(beat != nil && beat?.state != .serving && beat?.planVersion == nil)
                _ = await small.terminate(timeoutSeconds: 5)
            } catch {
                for link in links { _ = await link.terminate(timeoutSeconds: 5) }
                throw error
            }
            // Every step crossed both forward links and every token came back over the return link:
            // one prefill chunk and 11 decode steps each way.
            for link in links {
                _ = await link.terminate(timeoutSeconds: 10)
                linkLogs += link.log + "\n"
            }
            for name in ["edge-fog", "fog-cloud", "return"] {
                let total = linkLogs.split(separator: "\n").first { $0.contains("link=\(name)") && $0.contains("in total:") }
                #expect(total?.contains("in total: 12 messages") == true, "link \(name): \(total.map(String.init) ?? "no total")\n\(linkLogs)")
            }
        }
    }
}
