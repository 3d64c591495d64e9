import AMQP
import Foundation
import IntegrationSupport
import JSON
import Messages
import Testing

/// A fixed number of requests through the whole system in equal phases, every service's anonymous
/// resident memory (`RssAnon`: heap and stacks, not the mmapped model file) read after each phase
/// has drained. Counting requests rather than seconds makes the verdict the same on a busy machine
/// and an idle one; `MALLOC_ARENA_MAX=2` keeps glibc from opening a new arena whenever threads
/// contend, which is growth without a leak.
///
/// The verdict, per service: over the last half of the phases it grew less than 2 MiB, and less
/// than a quarter of what it grew over the first half (warm-up: caches, buffers, arenas) — or less
/// than 512 KiB, for a service that barely grows at all. A leak of 16 KiB per request is 4 MiB over
/// the last half of the default 512 requests: the second test injects exactly that into the
/// scheduler and requires the verdict to fail.
///
/// `HYPERION_SOAK_REQUESTS` (default 512) and `HYPERION_SOAK_CONCURRENCY` (16) for longer runs.
@Suite("Soak: a fixed load in phases, flat memory", .serialized)
struct SoakTests {
    static let requests = ProcessInfo.processInfo.environment["HYPERION_SOAK_REQUESTS"].flatMap { Int($0) } ?? 512
    static let concurrency = ProcessInfo.processInfo.environment["HYPERION_SOAK_CONCURRENCY"].flatMap { Int($0) } ?? 16
    static let phases = 8
    static let lastHalfLimitKiB = 2048
    static let noiseKiB = 512
    static let injectedLeakBytes = 16_384
    static let prompts = ["The capital of France is", "1, 2, 3, 4, 5,", "Water boils at", "Once upon a time", "The best way to learn is"]

    @Test("a fixed number of requests in phases: no service's RssAnon keeps growing, every prompt keeps its answer")
    func memoryStaysFlat() async throws {
        let report = try await Self.soak(leakBytesPerRequest: 0)
        #expect(report.failures.isEmpty, "\(report.failures.joined(separator: "; "))")
    }

    @Test("the soak catches a scheduler that keeps 16 KiB of every request")
    func injectedLeakFails() async throws {
        let report = try await Self.soak(leakBytesPerRequest: Self.injectedLeakBytes)
        #expect(report.failures.contains { $0.hasPrefix("scheduler-1:") }, "the leaking scheduler passed: \(report.failures)")
    }

    struct Report {
        var failures: [String]
    }

    /// Runs the soak on a fresh cluster and returns the services that failed the verdict. Checks
    /// that every request was answered, with one answer per prompt, and that every service runs.
    static func soak(leakBytesPerRequest: Int) async throws -> Report {
        let environment = ["MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"]
        let schedulerEnvironment = leakBytesPerRequest > 0 ? ["HYPERION_TEST_RETAIN_BYTES_PER_REQUEST": "\(leakBytesPerRequest)"] : [:]
        return try await Cluster.with(environment: environment, schedulerEnvironment: schedulerEnvironment) { cluster in
            var services: [(name: String, process: ServiceProcess)] = []
            if let planner = cluster.planner { services.append(("planner", planner)) }
            for (id, worker) in cluster.workers.sorted(by: { $0.key < $1.key }) { services.append((id, worker)) }
            for (index, scheduler) in cluster.schedulers.enumerated() { services.append(("scheduler-\(index + 1)", scheduler)) }
            func sample() -> [Int] { services.map { anonymousKilobytes(pid: $0.process.processID) ?? 0 } }

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

            let perPhase = max(1, requests / phases)
            let start = Date()
            var samples = [sample()]
            var sent: [String: String] = [:]  // request id → prompt
            for _ in 0..<phases {
                let phaseEnd = sent.count + perPhase
                while sent.count < phaseEnd {
                    // Keep `concurrency` requests in flight.
                    if sent.count - results.withLock({ $0.count }) >= concurrency {
                        try await Task.sleep(for: .milliseconds(5))
                        continue
                    }
                    let id = "soak-\(sent.count)"
                    let prompt = prompts[sent.count % prompts.count]
                    let request = InferenceRequest(id: id, input: .prompt(prompt), maxTokens: 8, stream: sent.count % 2 == 0)
                    try await client.publish(
                        AMQPMessage(
                            body: encodeMessage(request),
                            properties: AMQPProperties(contentType: Names.ContentType.json, deliveryMode: 2, correlationID: id, replyTo: replyQueue)),
                        exchange: Names.Exchange.ingress, routingKey: Names.Queue.ingress)
                    sent[id] = prompt
                }
                let expected = sent.count
                guard await eventually(timeoutSeconds: 120, { results.withLock { $0.count } >= expected ? true : nil }) != nil else {
                    Issue.record("phase \(samples.count): answered \(results.withLock { $0.count }) of \(expected) within 120 s")
                    break
                }
                // Let the services finish their bookkeeping (acks, releases) before reading.
                try await Task.sleep(for: .milliseconds(500))
                samples.append(sample())
            }

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

            let seconds = Date().timeIntervalSince(start)
            print(
                "soak: \(sent.count) requests in \(phases) phases, \(concurrency) in flight, \(String(format: "%.0f", seconds)) s"
                    + (leakBytesPerRequest > 0 ? ", scheduler keeping \(leakBytesPerRequest) bytes per request" : "")
                    + "; RssAnon in KiB after each phase")
            print("  phase " + services.map { $0.name.padding(toLength: 12, withPad: " ", startingAt: 0) }.joined())
            for (phase, kilobytes) in samples.enumerated() {
                print(String(format: "  %5d ", phase) + kilobytes.map { "\($0)".padding(toLength: 12, withPad: " ", startingAt: 0) }.joined())
            }
            var failures: [String] = []
            guard samples.count == phases + 1 else { return Report(failures: ["the soak did not finish its phases"]) }
            let middle = phases / 2
            for (index, service) in services.enumerated() {
                #expect(service.process.isRunning, "\(service.name) still runs")
                #expect(samples[0][index] > 0, "\(service.name): RssAnon readable")
                let first = samples[middle][index] - samples[0][index]
                let last = samples[phases][index] - samples[middle][index]
                let flat = last < lastHalfLimitKiB && (last * 4 <= first || last <= noiseKiB)
                print("  \(service.name): +\(first) KiB over the first half, \(last >= 0 ? "+" : "")\(last) KiB over the last: \(flat ? "flat" : "GROWING")")
                if !flat { failures.append("\(service.name): grew \(last) KiB over the last \(phases - middle) phases after \(first) KiB over the first") }
            }
            return Report(failures: failures)
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
