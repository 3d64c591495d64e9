import Foundation
import IntegrationSupport
import Messages
import Testing

/// Continuous batching and KV admission with the real broker and model: batches change no token,
/// a node short of KV makes requests wait instead of failing, and no node ever overruns its budget.
@Suite("Batching and KV admission end to end", .serialized)
struct LoadTests {
    /// Prompts of different lengths (token ids of "1, 2, 3, …") with different output lengths, so
    /// requests join and leave the running batches at different steps.
    static func mixedRequests(prefix: String) -> [InferenceRequest] {
        let counting: [Int32] = [33, 28, 216, 30, 28, 216, 31, 28, 216, 32, 28, 216, 33, 30, 28, 216, 33, 31, 28, 216, 33, 32]
        return (0..<6).map { index in
            InferenceRequest(
                id: "\(prefix)-\(index)", input: .tokens(Array(counting.prefix(4 + 3 * index))), maxTokens: 6 + 3 * (index % 3),
                temperature: 0, stream: true)
        }
    }

    /// Sends the requests a little apart, so later ones join batches already running.
    static func results(of requests: [InferenceRequest], on cluster: Cluster) async throws -> [[Int32]] {
        var sent: [ClientRequest] = []
        for request in requests {
            sent.append(try await ClientRequest(request, on: cluster.client))
            try await Task.sleep(for: .milliseconds(40))
        }
        var tokens: [[Int32]] = []
        for request in sent {
            let result = try #require(await request.result(timeoutSeconds: 60), "\(request.id): no result; logs:\n\(cluster.logs)")
            tokens.append(result.tokens)
        }
        return tokens
    }

    @Test("batched generation equals one-step-at-a-time generation token for token, requests joining and leaving")
    func batchedEqualsUnbatched() async throws {
        let single = Cluster.localWorkers.map { Cluster.Worker(tier: $0.tier, id: $0.id, arguments: ["--max-batch-steps", "1"]) }
        let unbatched = try await Cluster.with(workers: single) { cluster in
            try await Self.results(of: Self.mixedRequests(prefix: "one"), on: cluster)
        }
        let (batched, largestBatch) = try await Cluster.with { cluster in
            let tokens = try await Self.results(of: Self.mixedRequests(prefix: "many"), on: cluster)
            // Batches of more than one step really ran (as the edge worker's heartbeats tell).
            let beat = await cluster.heartbeat(of: "edge-1", timeoutSeconds: 3) { ($0.batches?.maxSteps ?? 0) > 1 }
            return (tokens, beat?.batches?.maxSteps ?? 0)
        }
        #expect(largestBatch > 1, "no batch of more than one step ran; the comparison proves nothing")
        #expect(unbatched.allSatisfy { !$0.isEmpty })
        #expect(batched == unbatched)
    }

    @Test("a worker short of KV makes requests wait for room: all complete, none fails with kv_full")
    func admissionWaitsForRoom() async throws {
        // About 1.5 MB of KV on fog: room for one to three of these requests at a time.
        let workers = [
            Cluster.Worker(tier: "edge", id: "edge-1"), Cluster.Worker(tier: "fog", id: "fog-1", arguments: ["--kv-budget-bytes", "1.5e6"]),
            Cluster.Worker(tier: "cloud", id: "cloud-1"),
        ]
        try await Cluster.with(workers: workers) { cluster in
            var sent: [ClientRequest] = []
            for index in 0..<6 {
                let request = InferenceRequest(
                    id: "kv-\(index)", input: .tokens(Array(repeating: 33, count: 20)), maxTokens: 24, temperature: 0)
                sent.append(try await ClientRequest(request, on: cluster.client))
            }
            for request in sent {
                let reply = await request.final(timeoutSeconds: 60)
                guard case .result(let result) = reply else {
                    Issue.record("\(request.id) ended with \(String(describing: reply)); logs:\n\(cluster.logs)")
                    continue
                }
                #expect(!result.tokens.isEmpty && result.tokens.count <= 24)
            }
            let beat = try #require(await cluster.freshHeartbeat(of: "fog-1", timeoutSeconds: 5))
            let budget = try #require(beat.kvBudgetBytes)
            #expect(budget == 1.5e6)
            let peak = try #require(beat.kvPeakBytes)
            #expect(peak > budget / 3, "fog never held much: the requests did not compete for its KV")
            #expect(peak <= budget)
        }
    }

    @Test("two schedulers bursting at one node short of KV never overrun it, and every request completes")
    func twoSchedulersBurst() async throws {
        let workers = [
            Cluster.Worker(tier: "edge", id: "edge-1"), Cluster.Worker(tier: "fog", id: "fog-1", arguments: ["--kv-budget-bytes", "1.5e6"]),
            Cluster.Worker(tier: "cloud", id: "cloud-1"),
        ]
        try await Cluster.with(workers: workers, schedulers: 2) { cluster in
            var sent: [ClientRequest] = []
            for index in 0..<8 {
                let request = InferenceRequest(
                    id: "burst-\(index)", input: .tokens(Array(repeating: 34, count: 20)), maxTokens: 20, temperature: 0)
                sent.append(try await ClientRequest(request, on: cluster.client))
            }
            var attempts: [Int] = []
            for request in sent {
                let reply = await request.final(timeoutSeconds: 90)
                guard case .result(let result) = reply else {
                    Issue.record("\(request.id) ended with \(String(describing: reply)); logs:\n\(cluster.logs)")
                    continue
                }
                #expect(!result.tokens.isEmpty && result.tokens.count <= 20)
                attempts.append(result.attempts)
            }
            let beat = try #require(await cluster.freshHeartbeat(of: "fog-1", timeoutSeconds: 5))
            let peak = try #require(beat.kvPeakBytes)
            #expect(peak <= (beat.kvBudgetBytes ?? 0), "fog reserved \(peak) bytes of KV, over its budget")
            #expect(peak > 0)
            // Both schedulers admitted on the same heartbeat, so fog had to refuse some (kv_full),
            // which came back later on a new attempt.
            #expect(attempts.contains { $0 > 1 }, "no request was refused by fog: the burst did not test the node's own refusal")
        }
    }
}
