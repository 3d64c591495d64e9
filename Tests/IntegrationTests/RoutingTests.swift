import Foundation
import IntegrationSupport
import JSON
import Messages
import Testing

/// ARTS against round-robin on real workers: two edge nodes advertise the same capacity, but one
/// runs four times slower. ARTS notices from measured speed; round-robin cannot.
@Suite("Routing across replicas of a tier", .serialized)
struct RoutingTests {
    /// examples/local-topology.json with a second, identical edge node.
    static func twoEdgeTopology() throws -> String {
        var topology = try JSONValue.parse(String(contentsOfFile: TestPaths.localTopology, encoding: .utf8))
        guard case .object(var root) = topology, case .array(var tiers)? = root["tiers"], case .object(var edge) = tiers[0],
            case .array(var nodes)? = edge["nodes"], case .object(var second) = nodes[0]
        else { throw TestPaths.Missing(description: "unexpected shape of \(TestPaths.localTopology)") }
        second["id"] = "edge-2"
        nodes.append(.object(second))
        edge["nodes"] = .array(nodes)
        tiers[0] = .object(edge)
        root["tiers"] = .array(tiers)
        topology = .object(root)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("two-edge-\(UUID().uuidString).json").path
        try topology.serialized(pretty: true).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Sends a request every 0.4 s for 12 s; returns the share of those sent after the first
    /// 3 s that went to the slow node.
    static func slowShare(routing: String) async throws -> (share: Double, counted: Int, logs: String) {
        let topology = try twoEdgeTopology()
        defer { try? FileManager.default.removeItem(atPath: topology) }
        return try await Cluster.with(
            workers: [
                .init(tier: "edge", id: "edge-1"), .init(tier: "edge", id: "edge-2", arguments: ["--slowdown", "4"]),
                .init(tier: "fog", id: "fog-1"), .init(tier: "cloud", id: "cloud-1"),
            ],
            routing: routing, topology: topology) { cluster in
            var sent: [(Double, ClientRequest)] = []
            let start = Date()
            for index in 0..<30 {
                let request = try await ClientRequest(
                    InferenceRequest(id: "q\(index)", input: .prompt("The capital of France is"), maxTokens: 6), on: cluster.client)
                sent.append((Date().timeIntervalSince(start), request))
                try await Task.sleep(for: .milliseconds(400))
            }
            var slow = 0
            var counted = 0
            for (at, request) in sent {
                let result = try #require(await request.result(timeoutSeconds: 120), "no result for \(request.id)")
                guard at >= 3 else { continue }
                counted += 1
                if result.route.first == "edge-2" { slow += 1 }
            }
            return (Double(slow) / Double(max(counted, 1)), counted, cluster.logs)
        }
    }

    @Test("ARTS sends at most 35% of new requests to an edge node running 4x slower than it advertises")
    func artsLearns() async throws {
        let (share, counted, logs) = try await Self.slowShare(routing: "arts")
        #expect(counted >= 20)
        #expect(share <= 0.35, "ARTS sent \(Int(share * 100))% to the slow node; logs:\n\(logs.suffix(4000))")
    }

    @Test("round-robin keeps sending half of the requests to the slow node")
    func roundRobinDoesNot() async throws {
        let (share, counted, _) = try await Self.slowShare(routing: "round-robin")
        #expect(counted >= 20)
        #expect(share >= 0.4 && share <= 0.6, "round-robin sent \(Int(share * 100))% to the slow node")
    }
}
