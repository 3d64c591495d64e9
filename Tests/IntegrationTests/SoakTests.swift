import AMQP
import Foundation
import IntegrationSupport
import JSON
import Messages
import Testing

/// A fixed number of requests through the whole system in equal phases; after each phase has
/// drained, every service reports the bytes its C heap has in use (SIGUSR1 makes it log
/// `heap_in_use_bytes`, from glibc's `malloc_info`), and the test reads its anonymous resident
/// memory (`RssAnon`: heap and stacks, not the mmapped model file). Counting requests rather than
/// seconds makes the load the same on a busy machine and an idle one.
///
/// Bytes in use, not resident memory, decide: resident memory also grows when the allocator's
/// arenas fragment or grow under contention, in steps that depend on thread timing (a busy machine
/// showed 3 MiB of such growth in a half with no leak), while bytes in use grow only when memory
/// is kept. Kept memory is not always a leak either: a pool sized by the most requests a stage
/// ever held at once grows in one step of a few MiB whenever a new peak happens, which can be late
/// in the run. A leak grows with every request, so in every phase. The verdict, per service: the
/// bytes in use grew less than 64 KiB in at least one of the last half's phases (64 requests
/// each: a leak of 1 KiB per request or more grows every phase by more) and less than 8 MiB over
/// the whole last half; and `RssAnon` grew less than 16 MiB over the last half (memory outside
/// malloc: thread stacks, mappings). A leak of 16 KiB per request is 1 MiB in every phase,
/// sixteen times the limit: the second test injects exactly that into the scheduler and requires
/// the verdict to fail.
///
/// `HYPERION_SOAK_REQUESTS` (default 512) and `HYPERION_SOAK_CONCURRENCY` (16) for longer runs.
@Suite("Soak: a fixed load in phases, flat memory", .serialized)
struct SoakTests {
    static let requests = ProcessInfo.processInfo.environment["HYPERION_SOAK_REQUESTS"].flatMap { Int($0) } ?? 512
    static let concurrency = ProcessInfo.processInfo.environment["HYPERION_SOAK_CONCURRENCY"].flatMap { Int($0) } ?? 16
    static let phases = 8
    static let phaseGrowthLimitKiB = 64
    static let lastHalfLimitKiB = 8192
    static let residentLimitKiB = 16384
    static let injectedLeakBytes = 16_384
    static let prompts = ["The capital of France is", "1, 2, 3, 4, 5,", "Water boils at", "Once upon a time", "The best way to learn is"]

    @Test("a fixed number of requests in phases: no service's heap keeps growing, every prompt keeps its answer")
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
            func resident() -> [Int] { services.map { anonymousKilobytes(pid: $0.process.processID) ?? 0 } }
            func heap() async -> [Int] {
                var kilobytes: [Int] = []
                for service in services { kilobytes.append(await service.process.heapInUseBytes().map { $0 / 1024 } ?? -1) }
                return kilobytes
            }

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
            var samples = [resident()]
            var heapSamples = [await heap()]
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
                samples.append(resident())
                heapSamples.append(await heap())
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
                    + "; after each phase, KiB of heap in use / RssAnon")
            print("  phase " + services.map { $0.name.padding(toLength: 18, withPad: " ", startingAt: 0) }.joined())
            for (phase, kilobytes) in samples.enumerated() {
                let cells = kilobytes.indices.map { "\(heapSamples[phase][$0]) / \(kilobytes[$0])".padding(toLength: 18, withPad: " ", startingAt: 0) }
                print(String(format: "  %5d ", phase) + cells.joined())
            }
            var failures: [String] = []
            guard samples.count == phases + 1 else { return Report(failures: ["the soak did not finish its phases"]) }
            let middle = phases / 2
            func signed(_ kilobytes: Int) -> String { kilobytes >= 0 ? "+\(kilobytes)" : "\(kilobytes)" }
            for (index, service) in services.enumerated() {
                #expect(service.process.isRunning, "\(service.name) still runs")
                #expect(samples[0][index] > 0, "\(service.name): RssAnon readable")
                guard heapSamples.allSatisfy({ $0[index] >= 0 }) else {
                    failures.append("\(service.name): did not report its heap statistics on SIGUSR1")
                    continue
                }
                let first = heapSamples[middle][index] - heapSamples[0][index]
                let last = heapSamples[phases][index] - heapSamples[middle][index]
                let residentLast = samples[phases][index] - samples[middle][index]
                let steps = (middle..<phases).map { heapSamples[$0 + 1][index] - heapSamples[$0][index] }
                let steadyGrowth = steps.allSatisfy { $0 >= phaseGrowthLimitKiB }
                let heapFlat = !steadyGrowth && last < lastHalfLimitKiB
                let residentFlat = residentLast < residentLimitKiB
                print(
                    "  \(service.name): heap in use \(signed(first)) KiB over the first half, \(signed(last)) KiB over the last "
                        + "(\(steps.map(signed).joined(separator: ", "))); "
                        + "RssAnon \(signed(samples[middle][index] - samples[0][index])) then \(signed(residentLast)) KiB: "
                        + (heapFlat && residentFlat ? "flat" : "GROWING"))
                if !heapFlat {
                    failures.append(
                        "\(service.name): heap in use grew \(last) KiB over the last \(phases - middle) phases "
                            + "(\(steps.map(signed).joined(separator: ", ")) KiB) after \(first) KiB over the first")
                }
                if !residentFlat {
                    failures.append("\(service.name): RssAnon grew \(residentLast) KiB over the last \(phases - middle) phases")
                }
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
