import AMQP
import Foundation
import IntegrationSupport
import JSON
import Messages
import Testing

/// The whole system on the real broker with the real model: planner, stage workers of three
/// tiers, schedulers, and a client that publishes onto `hyperion.ingress`.
@Suite("Request lifecycle end to end", .serialized)
struct PipelineTests {
    /// A prompt the model continues for hundreds of tokens without an end-of-generation token.
    static let counting = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"

    /// Drops a final end-of-generation id, which the single-process command lists and a result does not.
    static func withoutEndOfGeneration(_ tokens: [Int32]) -> [Int32] {
        tokens.last.map { [0, 2].contains($0) } == true ? Array(tokens.dropLast()) : tokens
    }

    @Test("greedy generation through three tiers equals single-process generation, plain and chat")
    func matchesLocal() async throws {
        try await Cluster.with { cluster in
            for (prompt, chat) in [("The capital of France is", false), ("What is 2+2? Answer in one sentence.", true)] {
                let reference = try localGeneration(prompt: prompt, chat: chat, maxTokens: 24)
                let input: InferenceRequest.Input = chat ? .messages([ChatMessage(role: "user", content: prompt)]) : .prompt(prompt)
                let request = try await ClientRequest(InferenceRequest(id: nil, input: input, maxTokens: 24, stream: true), on: cluster.client)
                let result = try #require(await request.result(), "no result; logs:\n\(cluster.logs)")
                #expect(result.tokens == Self.withoutEndOfGeneration(reference.tokens), "\(prompt)")
                #expect(result.text == reference.text)
                #expect(result.route == ["edge-1", "fog-1", "cloud-1"])
                #expect(result.attempts == 1)
                // Every streamed index once, in order, spelling the result.
                let streamed = request.tokens
                #expect(streamed.map(\.index) == Array(0..<result.tokens.count))
                #expect(streamed.map(\.token) == result.tokens)
                #expect(streamed.map(\.text).joined() == result.text)
            }
        }
    }

    @Test("16 concurrent requests each get their own correct output, and no KV cache is left")
    func concurrentRequests() async throws {
        try await Cluster.with { cluster in
            let prompts = ["The capital of France is", "1, 2, 3, 4, 5,", "Water boils at", "The first president of the United States was"]
            var references: [String: [Int32]] = [:]
            for (index, prompt) in prompts.enumerated() {
                references[prompt] = Self.withoutEndOfGeneration(try localGeneration(prompt: prompt, chat: false, maxTokens: 8 + index * 4).tokens)
            }
            var requests: [(String, ClientRequest)] = []
            for index in 0..<16 {
                let prompt = prompts[index % prompts.count]
                let maxTokens = 8 + (index % prompts.count) * 4
                requests.append((prompt, try await ClientRequest(InferenceRequest(id: "r\(index)", input: .prompt(prompt), maxTokens: maxTokens), on: cluster.client)))
            }
            for (prompt, request) in requests {
                let result = try #require(await request.result(timeoutSeconds: 180), "request \(request.id) got no result; logs:\n\(cluster.logs)")
                #expect(result.id == request.id)
                #expect(result.tokens == references[prompt], "\(request.id): \(prompt)")
            }
            for id in ["edge-1", "fog-1", "cloud-1"] {
                let beat = await cluster.freshHeartbeat(of: id, timeoutSeconds: 5) { $0.activeSequences == 0 }
                #expect(beat != nil, "\(id) still holds KV caches after every request finished")
            }
        }
    }

    @Test("a cancel stops a long generation within a second, with two schedulers and a busy ingress")
    func cancel() async throws {
        try await Cluster.with(schedulers: 2) { cluster in
            var background: [ClientRequest] = []
            for index in 0..<6 {
                background.append(try await ClientRequest(InferenceRequest(id: "busy\(index)", input: .prompt("Once upon a time"), maxTokens: 40), on: cluster.client))
            }
            let long = try await ClientRequest(
                InferenceRequest(id: "long", input: .prompt(Self.counting), maxTokens: 2000, stream: true), on: cluster.client)
            let started = await eventually(timeoutSeconds: 120) { long.tokens.count >= 3 ? true : nil }
            #expect(started == true, "the long request never streamed; logs:\n\(cluster.logs)")
            let cancelledAt = Date()
            try await long.cancel()
            let result = try #require(await long.result(timeoutSeconds: 10))
            #expect(result.finishReason == .cancelled)
            #expect(Date().timeIntervalSince(cancelledAt) < 1.0, "the result came \(Date().timeIntervalSince(cancelledAt)) s after the cancel")
            #expect(result.tokens.count < 2000)
            for request in background {
                let finished = await request.result(timeoutSeconds: 180)
                #expect(finished?.finishReason == .length, "\(request.id) was disturbed by another request's cancel")
            }
        }
    }

    @Test("an expired deadline ends with finish_reason deadline; an over-long prompt gets too_long; bad fields get bad_request")
    func limits() async throws {
        try await Cluster.with { cluster in
            let slow = try await ClientRequest(
                InferenceRequest(id: "deadline", input: .prompt(Self.counting), maxTokens: 3000, deadlineSeconds: 1.5), on: cluster.client)
            let result = try #require(await slow.result(timeoutSeconds: 30))
            #expect(result.finishReason == .deadline)
            #expect(result.timings.totalSeconds >= 1.5 && result.timings.totalSeconds < 5)

            let huge = try await ClientRequest(
                InferenceRequest(id: "huge", input: .tokens(Array(repeating: 260, count: 9000)), maxTokens: 4), on: cluster.client)
            guard case .error(let error) = await huge.final(timeoutSeconds: 30) else {
                Issue.record("an over-long prompt was not refused")
                return
            }
            #expect(error.code == .tooLong)
            #expect(error.id == "huge")

            // A malformed body still gets an answer naming the field, and the scheduler keeps serving.
            let consumer = try await cluster.client.consume(queue: AMQPRPCClient.directReplyQueue, prefetchCount: 0, noAck: true)
            try await cluster.client.publish(
                AMQPMessage(
                    body: Array(#"{"v":1,"id":"bad","prompt":"hi","max_tokens":-3}"#.utf8),
                    properties: AMQPProperties(contentType: Names.ContentType.json, correlationID: "bad", replyTo: AMQPRPCClient.directReplyQueue)),
                exchange: Names.Exchange.ingress, routingKey: Names.Queue.ingress, onChannelOf: consumer.tag)
            var refusal: ErrorReply?
            for try await delivery in consumer {
                if case .error(let reply) = try? decodeMessage(Reply.self, from: delivery.body) { refusal = reply }
                break
            }
            #expect(refusal?.code == .badRequest)
            #expect(refusal?.message.contains("max_tokens") == true)
            let after = try await ClientRequest(InferenceRequest(id: "after", input: .prompt("Hello"), maxTokens: 2), on: cluster.client)
            #expect(await after.result() != nil)
        }
    }

    @Test("a scheduler stopped with SIGTERM finishes its request exactly once and leaves nothing in ingress")
    func gracefulSchedulerStop() async throws {
        try await Cluster.with { cluster in
            let request = try await ClientRequest(
                InferenceRequest(id: "stopping", input: .prompt(Self.counting), maxTokens: 40, stream: true), on: cluster.client)
            let started = await eventually(timeoutSeconds: 60) { request.tokens.count >= 2 ? true : nil }
            #expect(started == true, "no tokens streamed; logs:\n\(cluster.logs)")
            let scheduler = try #require(cluster.schedulers.first)
            let stopped = Task { await scheduler.terminate(timeoutSeconds: 30) }
            let result = try #require(await request.result(timeoutSeconds: 60), "no result; logs:\n\(cluster.logs)")
            #expect(result.tokens.count == 40 && result.finishReason == .length)
            #expect(await stopped.value == 0, "the scheduler did not exit cleanly; its log:\n\(scheduler.log)")
            try await Task.sleep(for: .seconds(1))
            #expect(request.finalReplyCount == 1)
            let ingress = try await cluster.client.inspectQueue(Names.Queue.ingress)
            #expect(ingress.messageCount == 0, "the finished request went back to ingress")
        }
    }

    @Test("a worker refuses a plan made for another model file")
    func refusesOtherModel() async throws {
        // A copy of the model with one byte appended: same weights, another sha256.
        let original = try TestPaths.modelFile()
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("hyperion-other-\(UUID().uuidString).gguf").path
        var data = try Data(contentsOf: URL(fileURLWithPath: original))
        data.append(0)
        try data.write(to: URL(fileURLWithPath: copy))
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try await Cluster.with { cluster in
            let stranger = try ServiceProcess(
                "stage-worker", arguments: ["--tier", "edge", "--node-id", "edge-other", "--model", copy], amqpURL: cluster.host.urlText,
                logLevel: "info")
            let line = await stranger.logLine(containing: "refusing plan", timeoutSeconds: 30)
            #expect(line != nil, "the worker with another model file did not refuse the plan; its log:\n\(stranger.log)")
            let beat = await cluster.freshHeartbeat(of: "edge-other", timeoutSeconds: 5)
            #expect(beat?.state == .loading, "it must not serve")
            _ = await stranger.terminate()
        }
    }

    @Test("the Python pika client receives each streamed token index once and the result")
    func pythonClient() async throws {
        try await Cluster.with { cluster in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", TestPaths.packageRoot.appendingPathComponent("examples/clients/generate.py").path, "What is 2+2?", "12"]
            process.environment = ProcessInfo.processInfo.environment.merging(["HYPERION_AMQP_URL": cluster.host.urlText]) { $1 }
            let output = Pipe()
            process.standardOutput = output
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let stderrText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus == 0, "pika client failed: \(stderrText)")
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            let values = try lines.map { try JSONValue.parse($0) }
            let result = try #require(values.last)
            #expect(result["type"] == "result")
            let indices = values.dropLast().compactMap { $0["index"]?.intValue }
            #expect(indices == Array(0..<Int64(indices.count)))
            #expect(Int64(indices.count) == Int64(result["tokens"]?.arrayValue?.count ?? -1))
        }
    }
}
