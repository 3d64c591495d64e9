import AMQP
import Foundation
import IntegrationSupport
import JSON
import Messages
import Testing

/// Bad input at every consumer of the running system (docs/design.md §10): thousands of malformed
/// messages at ingress, cancel, the stage queues (steps and control), the scheduler's events queue,
/// telemetry, plans and plan.get, with valid requests in between. Every process keeps serving, the
/// valid requests give exactly the tokens of a run without the flood, every malformed request
/// with a `reply_to` gets one error reply, the rest are dead-lettered with a reason, and no body
/// or password reaches a log.
@Suite("Malformed messages at every consumer", .serialized)
struct MalformedInputTests {
    /// In every malformed body, so a log line that repeats a body is found.
    static let marker = "QZX7-BODY-MARKER"
    /// Cases per consumer; `HYPERION_FUZZ_CASES` raises it for a longer manual run.
    static let casesPerConsumer = ProcessInfo.processInfo.environment["HYPERION_FUZZ_CASES"].flatMap { Int($0) } ?? 1_000
    static let prompts = ["The capital of France is", "1, 2, 3, 4, 5,", "Water boils at", "Once upon a time"]
    static let maxOutputTokens = 64

    /// Where each family of malformed messages goes.
    enum Consumer: String, CaseIterable {
        case ingress, cancel, steps, control, events, telemetry, plans, planGet = "plan.get"
    }

    @Test("1,000 malformed messages at each consumer: no crash, clear errors, valid requests unchanged, no body in logs")
    func everyConsumerSurvivesMalformedMessages() async throws {
        try await Cluster.with(schedulerArguments: ["--max-output-tokens", "\(Self.maxOutputTokens)"]) { cluster in
            let client = cluster.client
            // Malformed messages go out on a connection of their own, apart from the valid requests.
            let fuzzer = try await cluster.host.connect("fuzzer")
            // The run without malformed messages, for comparison.
            var reference: [String: [Int32]] = [:]
            for prompt in Self.prompts {
                let request = try await ClientRequest(InferenceRequest(id: nil, input: .prompt(prompt), maxTokens: 8), on: client)
                reference[prompt] = try #require(await request.result(), "no result before the flood; logs:\n\(cluster.logs)").tokens
            }

            // What the malformed messages are made from, and the queues that collect their answers.
            let rpc = try await AMQPRPCClient.start(on: client)
            let planReply = try await rpc.call(
                AMQPMessage(body: encodeMessage(PlanRequest())), exchange: Names.Exchange.internal, routingKey: Names.Queue.planGet,
                timeoutSeconds: 10)
            let plan = try JSONValue.parse(bytes: planReply.body)
            let planVersion = try #require(plan["version"]?.intValue)
            let heartbeat = try #require(await cluster.heartbeat(of: "edge-1"))
            let replies = try await client.declare(AMQPQueue(name: "", durable: false, exclusive: true, autoDelete: true))
            let replyInbox = try await Inbox(queue: replies.name, on: client)
            let stepErrorQueue = "hyperion.sched.fuzz"
            _ = try await client.declare(AMQPQueue(name: stepErrorQueue, durable: false, exclusive: true, autoDelete: true))
            try await client.bind(.queue(stepErrorQueue, to: Names.Exchange.internal, routingKey: stepErrorQueue))
            let stepErrors = try await Inbox(queue: stepErrorQueue, on: client)
            let deadLetters = try await Inbox(queue: Names.Queue.dead, on: client)
            let stageQueues = ["edge-1": "edge", "fog-1": "fog", "cloud-1": "cloud"].map { Names.Queue.stage(tier: $1, node: $0) }.sorted()
            let route = [Names.Queue.stage(tier: "edge", node: "edge-1"), Names.Queue.stage(tier: "fog", node: "fog-1"), Names.Queue.stage(tier: "cloud", node: "cloud-1")]

            var messages = MalformedMessages(seed: 20_261_125, marker: Self.marker)
            let fixed = messages.fixedBodies
            var sent: [Consumer: Int] = [:]
            var ingressWithReply = 0
            var ingressExpectedDead = 0
            var planGetWithReply = 0
            var valid: [(String, ClientRequest)] = []

            func publish(_ body: [UInt8], _ properties: AMQPProperties, exchange: String, routingKey: String, as consumer: Consumer) async throws {
                try await fuzzer.publish(AMQPMessage(body: body, properties: properties), exchange: exchange, routingKey: routingKey)
                sent[consumer, default: 0] += 1
                // Valid requests in the middle of the flood: two per consumer.
                if sent[consumer, default: 0] % (Self.casesPerConsumer / 2) == 0 {
                    let prompt = Self.prompts[valid.count % Self.prompts.count]
                    valid.append((prompt, try await ClientRequest(InferenceRequest(id: nil, input: .prompt(prompt), maxTokens: 8), on: client)))
                }
            }
            /// The fixed nasty bodies first, then mutations of `seed`, kept only when `keep` says so.
            func bodies(from seed: [UInt8], keep: ([UInt8]) -> Bool = { _ in true }) -> [[UInt8]] {
                var result = fixed.filter(keep)
                while result.count < Self.casesPerConsumer {
                    let body = messages.mutate(json: seed)
                    if keep(body) { result.append(body) }
                }
                return result
            }

            // Ingress: requests, half with a reply queue (each must get one error reply), half without (dead-lettered).
            let requestSeed = Array(#"{"v":1,"id":"fz","prompt":"\#(Self.marker) say hi","max_tokens":4,"temperature":0.5,"top_p":0.9,"top_k":5,"seed":1,"stop":["\n"],"stream":true,"deadline_s":30,"messages_unused":[{"role":"user","content":"x"}]}"#.utf8)
            // Requests that would validly run are left out: the flood is about refusals.
            let refused: ([UInt8]) -> Bool = { body in
                guard body.count <= 1 << 20, let request = try? decodeMessage(InferenceRequest.self, from: body) else { return true }
                return request.maxTokens > Self.maxOutputTokens
            }
            for (index, body) in bodies(from: requestSeed, keep: refused).enumerated() {
                var properties = messages.strayProperties()
                properties.correlationID = "fz-ingress-\(index)"
                if index % 2 == 0 {
                    properties.replyTo = replies.name
                    ingressWithReply += 1
                } else {
                    ingressExpectedDead += 1
                }
                try await publish(body, properties, exchange: Names.Exchange.ingress, routingKey: Names.Queue.ingress, as: .ingress)
            }

            // Cancels, seen by the scheduler.
            let cancelSeed = Array(#"{"v":1,"type":"cancel","id":"\#(Self.marker)"}"#.utf8)
            for body in bodies(from: cancelSeed) {
                var properties = messages.strayProperties()
                properties.replyTo = replies.name
                try await publish(body, properties, exchange: Names.Exchange.cancel, routingKey: "", as: .cancel)
            }

            // Steps: valid step headers for each stage, mutated, with token or activation bodies.
            let hidden = 576
            for index in 0..<Self.casesPerConsumer {
                let stage = index % 3
                var headers: AMQPTable = [
                    Names.Header.version: .int32(1), Names.Header.key: .string("fz-step-\(index)"), Names.Header.attempt: .int32(1),
                    Names.Header.scheduler: .string(stepErrorQueue), Names.Header.planVersion: .int64(planVersion),
                    Names.Header.route: .array(route.map { .string($0) }), Names.Header.stage: .int32(Int32(stage)),
                    Names.Header.kind: .string("prefill"), Names.Header.position: .int32(0), Names.Header.tokenCount: .int32(3),
                    Names.Header.dtype: .string(stage == 0 ? "i32" : "f32"),
                    Names.Header.shape: .array(stage == 0 ? [.int32(3)] : [.int32(3), .int32(Int32(hidden))]),
                    Names.Header.timings: .array((0..<stage).map { _ in .array([.string("x"), .double(0), .double(0)]) }),
                    Names.Header.temperature: .double(0), Names.Header.topP: .double(1), Names.Header.topK: .int32(0), Names.Header.seed: .int64(0),
                ]
                var body = stage == 0 ? [UInt8](repeating: 1, count: 12) : [UInt8](repeating: 0, count: 3 * hidden * 4)
                switch index % 50 {
                case 0:  // a shape whose byte count overflows
                    headers[Names.Header.dtype] = .string("f32")
                    headers[Names.Header.tokenCount] = .int32(Int32.max)
                    headers[Names.Header.shape] = .array([.int32(Int32.max), .int32(Int32.max)])
                case 1:  // token ids outside the vocabulary, at the first stage
                    body = StepBody.encode(tokens: [Int32.max, -7, 1 << 20])
                case 2:  // far more tokens than a batch or the context allows, body to match
                    headers[Names.Header.tokenCount] = .int32(20_000)
                    headers[Names.Header.shape] = .array(stage == 0 ? [.int32(20_000)] : [.int32(20_000), .int32(Int32(hidden))])
                    body = [UInt8](repeating: 0, count: 20_000 * (stage == 0 ? 4 : hidden * 4))
                case 3:  // a position beyond any context
                    headers[Names.Header.position] = .int32(Int32.max - 1)
                case 4:  // a huge oversize body
                    body = [UInt8](repeating: 0x41, count: 2 << 20)
                default:
                    (headers, body) = messages.mutate(stepHeaders: headers, body: body)
                }
                var properties = AMQPProperties(contentType: Names.ContentType.step)
                properties.headers = headers
                try await publish(body, properties, exchange: Names.Exchange.internal, routingKey: route[stage], as: .steps)
            }

            // Control messages (JSON) on the stage queues.
            let controlSeed = Array(#"{"v":1,"type":"release","key":"\#(Self.marker)","attempt":1}"#.utf8)
            for (index, body) in bodies(from: controlSeed).enumerated() {
                var properties = messages.strayProperties()
                if index % 4 != 0 { properties.contentType = Names.ContentType.json }
                try await publish(body, properties, exchange: Names.Exchange.internal, routingKey: stageQueues[index % 3], as: .control)
            }

            // Events to the scheduler: sampled and step_error for requests it never owned.
            let sampledSeed = Array(#"{"v":1,"type":"sampled","key":"\#(Self.marker)","attempt":1,"pos":3,"token":5,"logprob":-0.5,"timings":[{"node":"edge-1","compute_s":0.01,"wait_s":0.0}]}"#.utf8)
            let stepErrorSeed = Array(#"{"v":1,"type":"step_error","key":"\#(Self.marker)","attempt":1,"node":"edge-1","code":"missing_cache","message":"\#(Self.marker)"}"#.utf8)
            for (index, body) in (bodies(from: sampledSeed).prefix(Self.casesPerConsumer / 2) + bodies(from: stepErrorSeed).prefix(Self.casesPerConsumer / 2)).enumerated() {
                var properties = messages.strayProperties()
                if index % 4 != 0 { properties.contentType = Names.ContentType.json }
                try await publish(body, properties, exchange: Names.Exchange.internal, routingKey: Names.Queue.scheduler("sched-1"), as: .events)
            }

            // Telemetry under worker, scheduler and planner keys; a heartbeat that still decodes
            // would add a node, which is not malformed, so it is left out.
            let telemetrySeed = encodeMessage(heartbeat)
            let undecodable: ([UInt8]) -> Bool = { (try? decodeMessage(Telemetry.self, from: $0)) == nil }
            for (index, body) in bodies(from: telemetrySeed, keep: undecodable).enumerated() {
                let key = ["worker.edge.fuzz-node", "scheduler.fuzz", "planner"][index % 3]
                try await publish(body, messages.strayProperties(), exchange: Names.Exchange.telemetry, routingKey: key, as: .telemetry)
            }

            // Plans: mutations of the current plan made one version older, so one that still
            // parses is never newer than what the workers serve.
            let olderPlan = Array(String(decoding: planReply.body, as: UTF8.self)
                .replacingOccurrences(of: "\"version\":\(planVersion)", with: "\"version\":\(planVersion - 1)").utf8)
            let notNewer: ([UInt8]) -> Bool = { body in
                guard let version = (try? JSONValue.parse(bytes: body))?["version"]?.intValue else { return true }
                return version < planVersion
            }
            for body in bodies(from: olderPlan, keep: notNewer) {
                try await publish(body, messages.strayProperties(), exchange: Names.Exchange.plan, routingKey: "", as: .plans)
            }

            // plan.get requests to the planner, half with a reply queue (each must get one reply).
            let planGetSeed = Array(#"{"v":1,"type":"plan.get","note":"\#(Self.marker)"}"#.utf8)
            for (index, body) in bodies(from: planGetSeed).enumerated() {
                var properties = messages.strayProperties()
                properties.correlationID = "fz-plan-\(index)"
                if index % 2 == 0 {
                    properties.replyTo = replies.name
                    planGetWithReply += 1
                }
                try await publish(body, properties, exchange: Names.Exchange.internal, routingKey: Names.Queue.planGet, as: .planGet)
            }

            // Every valid request completes with the tokens of the run without the flood.
            for (prompt, request) in valid {
                let result = try #require(await request.result(timeoutSeconds: 120), "no result during the flood; logs:\n\(cluster.logs.suffix(20_000))")
                #expect(result.tokens == reference[prompt], "\(prompt)")
            }
            // Every malformed message with a reply queue is answered once.
            @Sendable func finalReplies(_ prefix: String) -> [AMQPDelivery] {
                replyInbox.all.filter {
                    ($0.properties.correlationID ?? "").hasPrefix(prefix)
                        && (try? decodeMessage(TokenReply.self, from: $0.body)) == nil
                }
            }
            let expectedReplies = (ingress: ingressWithReply, planGet: planGetWithReply)
            _ = await eventually(timeoutSeconds: 60) {
                finalReplies("fz-ingress-").count >= expectedReplies.ingress && finalReplies("fz-plan-").count >= expectedReplies.planGet ? true : nil
            }
            let ingressReplies = finalReplies("fz-ingress-")
            #expect(ingressReplies.count == ingressWithReply, "error replies to malformed requests")
            let codes = Dictionary(grouping: ingressReplies.compactMap { try? decodeMessage(ErrorReply.self, from: $0.body) }, by: \.code)
                .mapValues(\.count)
            #expect(codes.keys.allSatisfy { [.badRequest, .tooLong].contains($0) }, "\(codes)")
            #expect(codes.values.reduce(0, +) == ingressReplies.count, "every reply to a malformed request is an error reply")
            #expect(finalReplies("fz-plan-").count == planGetWithReply, "replies to plan.get requests")

            // The rest are dead-lettered, each with its reason.
            let expectedDead = ingressExpectedDead
            _ = await eventually(timeoutSeconds: 30) {
                deadLetters.all.count >= expectedDead ? true : nil
            }
            try await Task.sleep(for: .seconds(2))
            let reasons = deadLetters.all.map { $0.properties.headers?[Names.Header.error]?.stringValue ?? "" }
            #expect(reasons.allSatisfy { !$0.isEmpty }, "every dead letter says why")
            let deadIngress = reasons.filter { $0.hasPrefix("bad_request") || $0.hasPrefix("too_long") }.count
            #expect(deadIngress == ingressExpectedDead, "malformed requests without reply_to are dead-lettered")
            #expect(reasons.contains { $0.hasPrefix("step headers") }, "steps with bad headers are dead-lettered")
            #expect(reasons.contains { $0.hasPrefix("control message") }, "malformed control messages are dead-lettered")
            #expect(reasons.contains { $0.hasPrefix("scheduler event") }, "malformed events are dead-lettered")
            #expect(!stepErrors.all.isEmpty, "steps with bad values get step_error replies")

            // Every process still runs, and no log holds a body or a password.
            #expect(cluster.planner?.isRunning == true, "planner")
            for (id, worker) in cluster.workers { #expect(worker.isRunning, "worker \(id)") }
            for scheduler in cluster.schedulers { #expect(scheduler.isRunning, "scheduler") }
            let logLines = cluster.logs.split(separator: "\n")
            let leaks = logLines.filter { $0.contains(Self.marker) || $0.contains(":\(cluster.host.url.password)@") }
            #expect(leaks.isEmpty, "log lines with a message body or password:\n\(leaks.prefix(10).joined(separator: "\n"))")

            let byReason = Dictionary(grouping: reasons, by: { String($0.prefix { $0 != ":" }) }).mapValues(\.count)
            print("malformed messages sent: \(Consumer.allCases.map { "\($0.rawValue) \(sent[$0, default: 0])" }.joined(separator: ", "))")
            print("error replies \(ingressReplies.count) \(codes), plan.get replies \(finalReplies("fz-plan-").count), step_error \(stepErrors.all.count), dead letters \(reasons.count) \(byReason)")
            print("valid requests during the flood: \(valid.count), all equal to the run without it; log lines \(logLines.count)")
            await fuzzer.close()
        }
    }
}
