import AMQP
import Foundation
import IntegrationSupport
import JSON
import Messages
import Testing

/// A steady stream of requests through the whole system for a while (2 minutes in CI;
/// `HYPERION_SOAK_SECONDS` for longer manual runs, `HYPERION_SOAK_RATE` requests per second): no
/// service's anonymous resident memory (`RssAnon`: heap and stacks, not the mmapped model file)
/// grows more than 10% past its level after warm-up, and every request keeps its deterministic
/// answer. Prints the figures.
@Suite("Soak: steady load, flat memory", .serialized)
struct SoakTests {
    static let seconds = ProcessInfo.processInfo.environment["HYPERION_SOAK_SECONDS"].flatMap { Double($0) } ?? 120
    static let requestsPerSecond = ProcessInfo.processInfo.environment["HYPERION_SOAK_RATE"].flatMap { Double($0) } ?? 2
    static let sampleEverySeconds = 5.0
    static let allowedGrowth = 0.10
    static let prompts = ["The capital of France is", "1, 2, 3, 4, 5,", "Water boils at", "Once upon a time", "The best way to learn is"]

    @Test("steady requests for the soak period: every service's RssAnon stays within 10% of its level after warm-up")
    func memoryStaysFlat() async throws {
        try await Cluster.with { cluster in
            var services: [(name: String, process: ServiceProcess)] = []
            if let planner = cluster.planner { services.append(("planner", planner)) }
            for (id, worker) in cluster.workers.sorted(by: { $0.key < $1.key }) { services.append((id, worker)) }
            for (index, scheduler) in cluster.schedulers.enumerated() { services.append(("scheduler-\(index + 1)", scheduler)) }

            let client = cluster.client
            let replyQueue = try await client.declare(AMQPQueue(name: "", durable: false, exclusive: true, autoDelete: true)).name
            let results = Locked<[String: Reply]>([:])
            let consumer = try await client.consume(queue: replyQueue, prefetchCount: 0, noAck: true)
            let reader = Task {
                for try await delivery in consumer {
                    guard let id = delivery.properties.correlationID, let reply = try? decodeMessage(Reply.self, from: delivery.body) else { continue }
                    if case .token = reply { continue }
                    results.withLock { $0[id] = reply }
                }
            }
            defer { reader.cancel() }

            let warmupSeconds = min(30, Self.seconds / 4)
            let start = Date()
            var samples: [(seconds: Double, kilobytes: [Int])] = []
            var sent: [String: String] = [:]  // request id → prompt
            var nextSample = 0.0
            var nextRequest = 0.0
            while true {
                let elapsed = Date().timeIntervalSince(start)
                if elapsed >= Self.seconds { break }
                if elapsed >= nextRequest {
                    let id = "soak-\(sent.count)"
                    let prompt = Self.prompts[sent.count % Self.prompts.count]
                    let request = InferenceRequest(id: id, input: .prompt(prompt), maxTokens: 8, stream: sent.count % 2 == 0)
                    try await client.publish(
                        AMQPMessage(
                            body: encodeMessage(request),
                            properties: AMQPProperties(contentType: Names.ContentType.json, deliveryMode: 2, correlationID: id, replyTo: replyQueue)),
                        exchange: Names.Exchange.ingress, routingKey: Names.Queue.ingress)
                    sent[id] = prompt
                    nextRequest += 1 / Self.requestsPerSecond
                }
                if elapsed >= nextSample {
                    samples.append((elapsed, services.map { Self.anonymousKilobytes(pid: $0.process.processID) ?? 0 }))
                    nextSample += Self.sampleEverySeconds
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            let expected = sent.count
            _ = await eventually(timeoutSeconds: 120) { results.withLock { $0.count } >= expected ? true : nil }
            samples.append((Date().timeIntervalSince(start), services.map { Self.anonymousKilobytes(pid: $0.process.processID) ?? 0 }))

            // Every request answered, each prompt always with the same tokens.
            let replies = results.withLock { $0 }
            #expect(replies.count == sent.count, "answered \(replies.count) of \(sent.count) requests")
            var tokensByPrompt: [String: Set<[Int32]>] = [:]
            for (id, prompt) in sent {
                guard case .result(let result) = replies[id] else {
                    Issue.record("\(id): \(String(describing: replies[id]))")
                    continue
                }
                tokensByPrompt[prompt, default: []].insert(result.tokens)
            }
            #expect(tokensByPrompt.values.allSatisfy { $0.count == 1 }, "one answer per prompt")

            // Memory: the level at the end of warm-up against every later sample.
            let baselineIndex = samples.firstIndex { $0.seconds >= warmupSeconds } ?? 0
            let baseline = samples[baselineIndex].kilobytes
            print("soak: \(sent.count) requests in \(Int(Self.seconds)) s (\(Self.requestsPerSecond)/s), warm-up \(Int(warmupSeconds)) s; RssAnon in KiB")
            print("  t(s)  " + services.map { $0.name.padding(toLength: 12, withPad: " ", startingAt: 0) }.joined())
            for sample in samples {
                print(String(format: "  %4.0f  ", sample.seconds) + sample.kilobytes.map { "\($0)".padding(toLength: 12, withPad: " ", startingAt: 0) }.joined())
            }
            for (index, service) in services.enumerated() {
                #expect(service.process.isRunning, "\(service.name) still runs")
                let peak = samples[baselineIndex...].map { $0.kilobytes[index] }.max() ?? 0
                let growth = baseline[index] > 0 ? Double(peak - baseline[index]) / Double(baseline[index]) : 0
                print("  \(service.name): \(baseline[index]) KiB after warm-up, peak \(peak) KiB later (\(String(format: "%+.1f", growth * 100))%)")
                #expect(baseline[index] > 0, "\(service.name): RssAnon readable")
                #expect(growth <= Self.allowedGrowth, "\(service.name): RssAnon grew from \(baseline[index]) to \(peak) KiB")
            }
        }
    }

    /// `RssAnon` of a process in KiB, from `/proc/<pid>/status`.
    static func anonymousKilobytes(pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("RssAnon:") })
        else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }
}
