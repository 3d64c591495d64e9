import AMQP
import Foundation
import IntegrationSupport
import Messages
import Testing

/// Faults injected into the running system (docs/design.md §10): a worker and a scheduler killed with
/// SIGKILL mid-run, the broker application stopped and started, a client that vanishes. Each
/// test counts the requests in flight when the fault hit, the results, and what was lost.
@Suite("Faults: nothing lost, nothing doubled", .serialized)
struct FaultTests {
    static let prompts = ["1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "Once upon a time, in a small village,"]
    static let maxTokens = 32

    /// The single-process tokens for each prompt: what every run must produce, faults or not.
    static func references() throws -> [String: [Int32]] {
        var references: [String: [Int32]] = [:]
        for prompt in prompts {
            references[prompt] = PipelineTests.withoutEndOfGeneration(try localGeneration(prompt: prompt, chat: false, maxTokens: maxTokens).tokens)
        }
        return references
    }

    /// `count` streaming requests over the prompts in turn, as (prompt, request).
    static func streamingRequests(_ count: Int, idPrefix: String, on client: AMQPConnection) async throws -> [(String, ClientRequest)] {
        var requests: [(String, ClientRequest)] = []
        for index in 0..<count {
            let prompt = prompts[index % prompts.count]
            let request = InferenceRequest(id: "\(idPrefix)\(index)", input: .prompt(prompt), maxTokens: maxTokens, stream: true)
            requests.append((prompt, try await ClientRequest(request, on: client)))
        }
        return requests
    }

    /// Streamed token replies must agree wherever an index repeats (a redone request streams
    /// again from index 0); returns the indices that disagree.
    static func conflictingIndices(_ tokens: [TokenReply]) -> [Int] {
        var seen: [Int: Int32] = [:]
        var conflicts: [Int] = []
        for token in tokens {
            if let earlier = seen[token.index], earlier != token.token { conflicts.append(token.index) }
            seen[token.index] = token.token
        }
        return conflicts
    }

    @Test("SIGKILL of a middle-tier worker with 8 requests in flight: 8 results, the no-fault tokens, each index once")
    func workerKilled() async throws {
        let references = try Self.references()
        let workers = [
            Cluster.Worker(tier: "edge", id: "edge-1"), Cluster.Worker(tier: "fog", id: "fog-1"),
            Cluster.Worker(tier: "fog", id: "fog-2"), Cluster.Worker(tier: "cloud", id: "cloud-1"),
        ]
        try await Cluster.with(workers: workers, schedulerArguments: ["--step-timeout-seconds", "5"]) { cluster in
            let requests = try await Self.streamingRequests(8, idPrefix: "k", on: cluster.client)
            let inFlightRequests = requests
            let streaming = await eventually(timeoutSeconds: 120) { inFlightRequests.allSatisfy { $0.1.tokens.count >= 2 } ? true : nil }
            #expect(streaming == true, "not every request streamed before the fault; logs:\n\(cluster.logs)")
            let inFlight = requests.filter { $0.1.finalReplyCount == 0 }.count
            try #require(inFlight == requests.count, "a request finished before the fault")
            let victim = try #require(cluster.workers["fog-1"])
            victim.kill()
            var completed = 0
            var failedOver = 0
            for (prompt, request) in requests {
                let result = try #require(await request.result(timeoutSeconds: 180), "\(request.id) got no result; logs:\n\(cluster.logs)")
                completed += 1
                #expect(result.tokens == references[prompt], "\(request.id): tokens differ from the no-fault run")
                let indices = request.tokens.map(\.index)
                #expect(indices == Array(0..<result.tokens.count), "\(request.id): streamed indices \(indices)")
                // Every request was still generating when fog-1 died: none can have finished there.
                #expect(!result.route.contains("fog-1"), "\(request.id) finished on the dead node (route \(result.route))")
                if result.attempts > 1 { failedOver += 1 }
            }
            #expect(failedOver > 0, "no request was on fog-1 when it died, so nothing was tested; logs:\n\(cluster.logs)")
            print("worker fault: \(inFlight) in flight at the kill, \(completed) completed, \(failedOver) failed over, \(requests.count - completed) lost")
        }
    }

    @Test("SIGKILL of the only worker of a tier: the request waits for a node until its deadline, then ends unavailable")
    func noSpareNode() async throws {
        try await Cluster.with { cluster in
            let request = try await ClientRequest(
                InferenceRequest(id: "alone", input: .prompt(Self.prompts[0]), maxTokens: 2000, stream: true, deadlineSeconds: 8),
                on: cluster.client)
            let streaming = await eventually(timeoutSeconds: 60) { request.tokens.count >= 2 ? true : nil }
            #expect(streaming == true, "the request never streamed; logs:\n\(cluster.logs)")
            try #require(cluster.workers["fog-1"]).kill()
            guard case .error(let error) = await request.final(timeoutSeconds: 30) else {
                Issue.record("no error reply; logs:\n\(cluster.logs)")
                return
            }
            #expect(error.code == .unavailable, "\(error)")
            #expect(error.id == "alone")
            print("no spare node: ended \(error.code.rawValue): \(error.message)")
        }
    }

    @Test("SIGKILL of one of two schedulers: every request gets a result; repeats are identical to the first")
    func schedulerKilled() async throws {
        let references = try Self.references()
        try await Cluster.with(schedulers: 2) { cluster in
            let requests = try await Self.streamingRequests(8, idPrefix: "s", on: cluster.client)
            let inFlightRequests = requests
            let streaming = await eventually(timeoutSeconds: 120) { inFlightRequests.filter { $0.1.tokens.count >= 2 }.count >= 4 ? true : nil }
            #expect(streaming == true, "requests did not stream before the fault; logs:\n\(cluster.logs)")
            let inFlight = requests.filter { $0.1.finalReplyCount == 0 }.count
            cluster.schedulers[0].kill()
            var completed = 0
            var redone = 0
            for (prompt, request) in requests {
                let result = try #require(await request.result(timeoutSeconds: 180), "\(request.id) got no result; logs:\n\(cluster.logs)")
                completed += 1
                #expect(result.tokens == references[prompt], "\(request.id): tokens differ from the no-fault run")
                #expect(Self.conflictingIndices(request.tokens).isEmpty, "\(request.id): a repeated token index carried another token")
                if Set(request.tokens.map(\.index)).count < request.tokens.count { redone += 1 }
            }
            // Give a redone request's second result time to arrive, then compare every final reply.
            try await Task.sleep(for: .seconds(1))
            for (prompt, request) in requests where request.finalReplyCount > 1 {
                #expect(request.results.allSatisfy { $0.tokens == references[prompt] }, "\(request.id): a repeated result differs")
            }
            #expect(redone > 0, "no request was redone, so the killed scheduler held none; logs:\n\(cluster.logs)")
            print("scheduler fault: \(inFlight) in flight at the kill, \(completed) completed, \(redone) redone by the other scheduler, \(requests.count - completed) lost")
        }
    }

    @Test("the broker application stopped and started mid-run: every accepted request gets its result, and the system serves again")
    func brokerRestart() async throws {
        let references = try Self.references()
        // Two long requests, still generating when the broker stops even on a fast machine where
        // the short ones may all finish while rabbitmqctl starts.
        let longTokens = 256
        let longPrompt = Self.prompts[1]
        let longReference = PipelineTests.withoutEndOfGeneration(
            try localGeneration(prompt: longPrompt, chat: false, maxTokens: longTokens).tokens)
        try await Cluster.with { cluster in
            let replies = try await ReplyQueue.declare(on: cluster.client)
            var sent: [String: String] = [:]
            var expectedTokens: [String: [Int32]] = [:]
            for index in 0..<6 {
                let prompt = Self.prompts[index % Self.prompts.count]
                let id = "b\(index)"
                try await replies.send(
                    InferenceRequest(id: id, input: .prompt(prompt), maxTokens: Self.maxTokens, stream: true), id: id, on: cluster.client)
                sent[id] = prompt
                expectedTokens[id] = references[prompt]
            }
            for index in 0..<2 {
                let id = "long\(index)"
                try await replies.send(
                    InferenceRequest(id: id, input: .prompt(longPrompt), maxTokens: longTokens, stream: true), id: id, on: cluster.client)
                sent[id] = longPrompt
                expectedTokens[id] = longReference
            }
            // Stop the broker once generation is well under way, with every request still running.
            _ = await eventually(timeoutSeconds: 60) { replies.tokens.count >= 8 ? true : nil }
            try #require(sent.count - Set(replies.results.map(\.id)).count > 0, "every request finished before the fault; nothing would be tested")
            try await cluster.host.rabbitmqctl(["stop_app"])
            // Counted once the broker has closed every connection: on a busy machine rabbitmqctl
            // takes seconds to start and the short requests may all finish first; the long ones not.
            let inFlight = sent.count - Set(replies.results.map(\.id)).count
            #expect(inFlight > 0, "every request finished before the broker stopped; nothing was in flight")
            try await Task.sleep(for: .seconds(2))
            try await cluster.host.rabbitmqctl(["start_app"])
            let expected = sent.count
            let all = await eventually(timeoutSeconds: 180) { Set(replies.results.map(\.id)).count == expected ? true : nil }
            #expect(all == true, "results for \(Set(replies.results.map(\.id)).sorted()) of \(sent.keys.sorted()); logs:\n\(cluster.logs)")
            for result in replies.results {
                #expect(result.tokens == expectedTokens[result.id], "\(result.id): tokens differ from the no-fault run")
            }
            // Every service serves again: a new request after the restart completes.
            let after = try await ClientRequest(InferenceRequest(id: "after", input: .prompt(Self.prompts[1]), maxTokens: 8), on: cluster.client)
            let result = await after.result(timeoutSeconds: 60)
            #expect(result?.tokens == references[Self.prompts[1]].map { Array($0.prefix(8)) }, "no service after the restart; logs:\n\(cluster.logs)")
            // The requests taken on the lost channel are redone from ingress, not relayed on.
            let scheduler = try #require(cluster.schedulers.first)
            #expect(await scheduler.logLine(containing: "lost the ingress channel", timeoutSeconds: 1) != nil, "logs:\n\(cluster.logs)")
            let completed = Set(replies.results.map(\.id)).count
            print(
                "broker restart: \(inFlight) in flight at stop_app, \(completed) completed, \(sent.count - completed) lost, "
                    + "\(replies.results.count - completed) results repeated")
            await replies.delete(on: cluster.client)
        }
    }

    @Test("a client that deletes its reply queue mid-stream: the request is cancelled and every KV cache freed")
    func clientVanishes() async throws {
        try await Cluster.with { cluster in
            let replies = try await ReplyQueue.declare(on: cluster.client, durable: false)
            try await replies.send(
                InferenceRequest(id: "gone", input: .prompt(Self.prompts[0]), maxTokens: 2000, stream: true), id: "gone", on: cluster.client)
            let streaming = await eventually(timeoutSeconds: 60) { replies.tokens.count >= 3 ? true : nil }
            #expect(streaming == true, "the request never streamed; logs:\n\(cluster.logs)")
            await replies.delete(on: cluster.client)
            let scheduler = try #require(cluster.schedulers.first)
            let noticed = await scheduler.logLine(containing: "is gone", timeoutSeconds: 10)
            #expect(noticed != nil, "the scheduler did not notice the vanished client; its log:\n\(scheduler.log)")
            for id in ["edge-1", "fog-1", "cloud-1"] {
                let beat = await cluster.freshHeartbeat(of: id, timeoutSeconds: 10) { $0.activeSequences == 0 }
                #expect(beat != nil, "\(id) still holds the vanished client's KV cache")
            }
            // The generation stopped: no further steps are computed for it.
            let ingress = try await cluster.client.inspectQueue(Names.Queue.ingress)
            #expect(ingress.messageCount == 0)
        }
    }
}

/// A client's own named reply queue, for faults a direct reply-to address does not survive: a
/// durable one outlives a broker restart, and deleting one is how a client vanishes.
final class ReplyQueue: Sendable {
    let name: String
    private let deliveries: Inbox

    private init(name: String, deliveries: Inbox) {
        self.name = name
        self.deliveries = deliveries
    }

    static func declare(on connection: AMQPConnection, durable: Bool = true) async throws -> ReplyQueue {
        let name = "client.test.\(UUID().uuidString)"
        _ = try await connection.declare(AMQPQueue(name: name, durable: durable, exclusive: false, autoDelete: false))
        return ReplyQueue(name: name, deliveries: try await Inbox(queue: name, on: connection))
    }

    /// Publishes a persistent request onto ingress, confirmed: once this returns it is accepted.
    func send(_ request: InferenceRequest, id: String, on connection: AMQPConnection) async throws {
        try await connection.publishConfirmed(
            AMQPMessage(
                body: encodeMessage(request),
                properties: AMQPProperties(contentType: Names.ContentType.json, deliveryMode: 2, correlationID: id, replyTo: name)),
            exchange: Names.Exchange.ingress, routingKey: Names.Queue.ingress)
    }

    private var replies: [Reply] { deliveries.all.compactMap { try? decodeMessage(Reply.self, from: $0.body) } }

    var results: [ResultReply] { replies.compactMap { if case .result(let result) = $0 { result } else { nil } } }
    var tokens: [TokenReply] { replies.compactMap { if case .token(let token) = $0 { token } else { nil } } }

    func delete(on connection: AMQPConnection) async {
        _ = try? await connection.deleteQueue(name)
    }
}
