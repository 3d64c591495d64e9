import AMQP
import Inference
import JSON
import Logging
import Messages
import Partitioning
import Profiles
import Scheduling
import ServiceSupport
import Synchronization
import GGUF

/// Everything a scheduler is configured with.
struct SchedulerServiceSettings: Sendable {
    var amqpURL: String
    var id: String
    var routing: RoutingPolicy
    var maxInFlight: Int
    var modelPath: String
    var maxDeadlineSeconds: Double
    var maxOutputTokens: Int
    var maxRequestBytes: Int
    var stepTimeoutSeconds: Double
    var maxAttempts: Int
    var heartbeatSeconds: Double
    /// Longest wait for in-flight requests after SIGTERM; what is left is redone by another scheduler.
    var drainSeconds: Double
    /// The model emulated by profile workers (docs/design.md §11), when it is not `modelPath`'s: ARTS
    /// prices steps with its profile, while the tokenizer still comes from `modelPath`.
    var emulatedModel: String? = nil
    /// Emulated link crossed by steps whose first stage is not of `linkFromTier` (nil: none).
    var link: String? = nil
    var linkFromTier: String? = nil

    /// Longest prompt in tokens; nil: the model's context window decides (`too_long`).
    var maxPromptTokens: Int? = nil
    /// `x-max-length` of the ingress queue; must be the same for every scheduler on a broker.
    var ingressMaxLength: Int64 = BrokerObjects.defaultIngressMaxLength

    var eventsQueue: String { Names.Queue.scheduler(id) }
}

struct SchedulerError: Error, CustomStringConvertible {
    var description: String
}

/// What the scheduler's loop reacts to, one at a time.
private enum LoopEvent: Sendable {
    case ingress(AMQPDelivery)
    case cancel(AMQPDelivery)
    case stageEvent(AMQPDelivery)
    case telemetry(AMQPDelivery)
    case plan(AMQPDelivery)
    case returned(AMQPReturnedMessage)
    case depths([String: Int])
    case tick
    case terminate
    case consumerEnded(String)
    /// The inbound connection dropped: the requests taken on it are back on ingress.
    case ingressLost(AMQPError)
}

/// Turns generated ids into text with the model's tokenizer, for the scheduler core.
private struct DetokenizerStream: TokenTextStream {
    var inner: StreamingDetokenizer
    mutating func append(_ token: Int32) -> String { inner.append(token) }
}

/// The scheduler process: the broker shell around `SchedulerCore`.
final class SchedulerService: @unchecked Sendable {
    // Sendable: mutable state is touched only by the task running `run()`'s event loop.
    private let settings: SchedulerServiceSettings
    private let logger: Logger
    private let tokenizer: Tokenizer
    private let config: ModelConfig
    private let modelSHA256: String
    private let costs: StepCostModel
    private var core: SchedulerCore
    private var ingressDeliveries: [UInt64: AMQPDelivery] = [:]
    private var nextIngressTag: UInt64 = 0
    private var plans: [Int64: PlanDocument] = [:]
    private var nodeStages: [String: (tier: String, queue: String)] = [:]
    private var depthPollRunning = false
    private var terminating = false
    private var drainDeadline = Double.infinity
    /// Requests delivered after SIGTERM: never settled, so the broker hands them to another
    /// scheduler when this one's connection closes.
    private var heldBack = 0
    /// Finishing requests (result confirm, then ingress ack) still in progress.
    private let finishing = Atomic<Int>(0)
    /// Error replies logged in the current window, and those left out of the log.
    private var errorLog = ErrorReplyLog()
    private var inbound: AMQPConnection?
    private var outbound: AMQPConnection?
    private var depthConnection: AMQPConnection?
    private var events: AsyncStream<LoopEvent>.Continuation?
    /// Test only: bytes kept forever per finished request (`HYPERION_TEST_RETAIN_BYTES_PER_REQUEST`,
    /// at most 16 KiB), so the soak test can show it catches a leak of that size.
    private let retainPerRequest: Int
    private var retained: [[UInt8]] = []

    init(settings: SchedulerServiceSettings) throws {
        self.settings = settings
        var logger = Logger(label: "hyperion.scheduler")
        logger[metadataKey: "scheduler"] = "\(settings.id)"
        self.logger = logger
        let retain = ProcessEnvironment.string("HYPERION_TEST_RETAIN_BYTES_PER_REQUEST").flatMap { Int($0) } ?? 0
        retainPerRequest = min(max(retain, 0), 16_384)
        if retainPerRequest > 0 {
            logger.warning("test only: keeping \(retainPerRequest) bytes per finished request forever (HYPERION_TEST_RETAIN_BYTES_PER_REQUEST)")
        }
        do {
            let file = try GGUFFile(path: settings.modelPath)
            tokenizer = try Tokenizer(gguf: file)
            config = try ModelConfig(file: file)
            modelSHA256 = SHA256.hex(file.bytes)
            costs = StepCostModel(source: try ModelSource.load(settings.emulatedModel ?? settings.modelPath))
        } catch {
            throw SchedulerError(description: "cannot load model \(settings.modelPath): \(error)")
        }
        let tokenizer = tokenizer
        core = SchedulerCore(
            settings: SchedulerSettings(
                eventsQueue: settings.eventsQueue, policy: settings.routing, heartbeatSeconds: settings.heartbeatSeconds,
                stepTimeoutSeconds: settings.stepTimeoutSeconds, maxAttempts: settings.maxAttempts,
                contextTokens: config.contextLength),
            vocabulary: Vocabulary(
                makeTextStream: { DetokenizerStream(inner: StreamingDetokenizer(tokenizer: tokenizer)) },
                isEndOfGeneration: { tokenizer.isEndOfGeneration($0) }))
    }

    func run() async throws {
        let url: AMQPURL
        do { url = try AMQPURL(settings.amqpURL) } catch { throw SchedulerError(description: "\(error)") }
        func connect(_ role: String) async throws -> AMQPConnection {
            try await AMQPConnection.connect(
                to: url, configuration: AMQPConnectionConfiguration(connectionName: "scheduler-\(settings.id)-\(role)", heartbeatSeconds: 10),
                logger: logger)
        }
        let inbound = try await connect("in")
        let outbound = try await connect("out")
        let depthConnection = try await connect("depth")
        self.inbound = inbound
        self.outbound = outbound
        self.depthConnection = depthConnection
        try await BrokerObjects.declareShared(for: .scheduler, on: inbound, ingressMaxLength: settings.ingressMaxLength)
        try await BrokerObjects.declareEventsQueue(settings.eventsQueue, on: inbound)

        let (stream, continuation) = AsyncStream.makeStream(of: LoopEvent.self)
        events = continuation
        let owner = settings.eventsQueue
        let subscriptions: [(String, String, String, @Sendable (AMQPDelivery) -> LoopEvent)] = [
            (Names.Queue.subscription(owner: owner, purpose: "cancel"), Names.Exchange.cancel, "", LoopEvent.cancel),
            (Names.Queue.subscription(owner: owner, purpose: "telemetry"), Names.Exchange.telemetry, "worker.#", LoopEvent.telemetry),
            (Names.Queue.subscription(owner: owner, purpose: "plan"), Names.Exchange.plan, "", LoopEvent.plan),
        ]
        for (queue, exchange, key, wrap) in subscriptions {
            try await BrokerObjects.declareSubscription(queue, to: exchange, routingKey: key, on: inbound)
            EventPump.forward(try await inbound.consume(queue: queue, prefetchCount: 256, noAck: true), named: queue, into: continuation, as: wrap, ended: LoopEvent.consumerEnded)
        }
        EventPump.forward(try await inbound.consume(queue: owner, prefetchCount: 1024, noAck: true), named: owner, into: continuation, as: LoopEvent.stageEvent, ended: LoopEvent.consumerEnded)
        Task {
            for await returned in outbound.returnedMessages { continuation.yield(.returned(returned)) }
        }
        Task {
            for await event in inbound.events {
                if case .disconnected(let error) = event { continuation.yield(.ingressLost(error)) }
            }
        }
        let planFetch = PlanFetch.start(on: outbound) { continuation.yield(.plan($0)) }
        defer { planFetch.cancel() }
        let ingress = try await inbound.consume(queue: Names.Queue.ingress, prefetchCount: UInt16(settings.maxInFlight))
        EventPump.forward(ingress, named: Names.Queue.ingress, into: continuation, as: LoopEvent.ingress, ended: LoopEvent.consumerEnded)
        EventPump.tick(every: 0.05, into: continuation, .tick)
        let signals = TerminationSignals { _ in continuation.yield(.terminate) }
        defer { signals.cancel() }
        let heapSignal = HeapStatisticsSignal(logger: logger)
        defer { heapSignal.cancel() }
        logger.info("admitting up to \(settings.maxInFlight) requests at a time, routing by \(settings.routing.rawValue)")

        for await event in stream {
            let now = Clock.monotonicSeconds()
            switch event {
            case .ingress(let delivery):
                if terminating {
                    heldBack += 1
                } else {
                    await admit(delivery, now: now)
                }
            case .cancel(let delivery): cancel(delivery, now: now)
            case .stageEvent(let delivery): stageEvent(delivery, now: now)
            case .telemetry(let delivery): heartbeat(delivery, now: now)
            case .plan(let delivery): planArrived(delivery, now: now)
            case .returned(let returned): self.returned(returned, now: now)
            case .depths(let depths):
                depthPollRunning = false
                for (node, ready) in depths { core.queueDepth(node: node, readyMessages: ready) }
            case .tick:
                execute(core.tick(now: now))
                pollDepths()
            case .terminate:
                if !terminating {
                    // The ingress consumer stays: cancelling it would close its channel and requeue
                    // the requests being finished, whose acks would then be lost (served twice).
                    terminating = true
                    drainDeadline = now + settings.drainSeconds
                    logger.info("stopping: no new requests; finishing \(core.inFlight) in flight (at most \(Int(settings.drainSeconds)) s)")
                }
            case .ingressLost(let error):
                // Deliveries of the lost channel can no longer be acked and the broker requeues
                // them; whoever takes them next (this scheduler too, once reconnected) redoes them.
                if core.inFlight > 0 {
                    logger.warning("lost the ingress channel (\(error)); leaving \(core.inFlight) requests to be redone from ingress")
                }
                execute(core.abandonAll())
                ingressDeliveries.removeAll()
                heldBack = 0
            case .consumerEnded(let name):
                if terminating { break }
                throw SchedulerError(description: "the consumer of \(name) ended")
            }
            if terminating && (core.inFlight == 0 || now > drainDeadline) {
                if core.inFlight > 0 { logger.warning("drain time is up: \(core.inFlight) requests go back to ingress for another scheduler") }
                if heldBack > 0 { logger.info("\(heldBack) requests received while stopping go back to ingress") }
                break
            }
        }
        // Let every confirmed result's ingress ack go out before the connection closes.
        for _ in 0..<500 where finishing.load(ordering: .acquiring) > 0 { try? await Task.sleep(for: .milliseconds(20)) }
        await inbound.close()
        await outbound.close()
        await depthConnection.close()
    }

    // MARK: Requests

    private func admit(_ delivery: AMQPDelivery, now: Double) async {
        let properties = delivery.properties
        let replyTo = properties.replyTo
        func refuse(_ code: ReplyErrorCode, _ message: String, id: String?) async {
            logger.info("refused a request: \(message)")
            if let replyTo, let outbound {
                let reply = Reply.error(ErrorReply(id: id ?? properties.correlationID ?? "", code: code, message: message))
                try? await outbound.publishConfirmed(
                    AMQPMessage(body: encodeMessage(reply), properties: AMQPProperties(contentType: Names.ContentType.json, correlationID: properties.correlationID)),
                    exchange: Names.Exchange.default, routingKey: replyTo)
                delivery.ack()
            } else {
                if let outbound { try? await BrokerObjects.deadLetter(delivery.message, reason: "\(code.rawValue): \(message)", on: outbound) }
                delivery.ack()
            }
        }
        guard delivery.body.count <= settings.maxRequestBytes else {
            await refuse(.badRequest, "request of \(delivery.body.count) bytes exceeds the limit of \(settings.maxRequestBytes)", id: nil)
            return
        }
        let request: InferenceRequest
        do {
            request = try decodeMessage(InferenceRequest.self, from: delivery.body)
        } catch {
            await refuse(.badRequest, error.description, id: nil)
            return
        }
        let id: String
        do { id = try request.resolvedID(correlationID: properties.correlationID) } catch {
            await refuse(.badRequest, error.description, id: nil)
            return
        }
        guard request.maxTokens <= settings.maxOutputTokens else {
            await refuse(.badRequest, "max_tokens: \(request.maxTokens) exceeds the limit of \(settings.maxOutputTokens)", id: id)
            return
        }
        let tokens: [Int32]
        switch request.input {
        case .prompt(let text):
            tokens = tokenizer.encode(text)
        case .messages(let messages):
            do { tokens = try tokenizer.encodeChat(messages.map { ChatTurn(role: $0.role, content: $0.content) }) } catch {
                await refuse(.badRequest, "messages: \(error)", id: id)
                return
            }
        case .tokens(let ids):
            if let bad = ids.first(where: { Int($0) >= tokenizer.vocabularySize }) {
                await refuse(.badRequest, "tokens: id \(bad) is outside the vocabulary of \(tokenizer.vocabularySize)", id: id)
                return
            }
            tokens = ids
        }
        guard !tokens.isEmpty else {
            await refuse(.badRequest, "the prompt is empty after tokenisation", id: id)
            return
        }
        if let limit = settings.maxPromptTokens, tokens.count > limit {
            await refuse(.tooLong, "the prompt has \(tokens.count) tokens; the limit is \(limit)", id: id)
            return
        }
        nextIngressTag += 1
        ingressDeliveries[nextIngressTag] = delivery
        let deadline = min(request.deadlineSeconds ?? settings.maxDeadlineSeconds, settings.maxDeadlineSeconds)
        let admission = Admission(
            key: ProcessEnvironment.uuid(), id: id, replyTo: replyTo, correlationID: properties.correlationID,
            ingressTag: nextIngressTag, promptTokens: tokens, maxTokens: request.maxTokens, stopStrings: request.stop ?? [],
            stream: request.stream ?? false,
            sampling: SamplingParameters(
                temperature: request.temperature ?? 0, topP: request.topP ?? 1, topK: request.topK ?? 0, seed: request.seed ?? 0),
            deadline: now + deadline, receivedAt: now)
        execute(core.admit(admission, now: now))
    }

    private func cancel(_ delivery: AMQPDelivery, now: Double) {
        guard let message = try? decodeMessage(CancelRequest.self, from: delivery.body) else {
            logger.debug("ignored a malformed cancel")
            return
        }
        execute(core.cancel(id: message.id, replyTo: delivery.properties.replyTo, now: now))
    }

    private func stageEvent(_ delivery: AMQPDelivery, now: Double) {
        do {
            let event = try decodeMessage(SchedulerEvent.self, from: delivery.body)
            execute(core.event(event, now: now))
        } catch {
            logger.warning("dead-lettering an event: \(error)")
            if let outbound {
                let message = delivery.message
                Task { try? await BrokerObjects.deadLetter(message, reason: "scheduler event: \(error)", on: outbound) }
            }
        }
    }

    private func returned(_ returned: AMQPReturnedMessage, now: Double) {
        if returned.exchange == Names.Exchange.default {
            // A reply nobody can receive: the client is gone.
            logger.info("client \(returned.routingKey) is gone (\(returned.replyCode) \(returned.replyText)); cancelling its requests")
            execute(core.clientVanished(replyTo: returned.routingKey, now: now))
        } else if let header = try? StepHeader(amqpHeaders: returned.message.properties.headers) {
            // A step whose node queue is gone: fail the attempt over now rather than at the timeout.
            let node = header.route[header.stage]
            let event = StepErrorEvent(key: header.key, attempt: header.attempt, node: nodeID(ofQueue: node), code: .internal, message: "\(node) is unreachable")
            execute(core.event(.stepError(event), now: now))
        }
    }

    private func nodeID(ofQueue queue: String) -> String {
        nodeStages.first { $0.value.queue == queue }?.key ?? queue
    }

    // MARK: Membership and plans

    private func heartbeat(_ delivery: AMQPDelivery, now: Double) {
        guard let beat = try? decodeMessage(Telemetry.self, from: delivery.body) else {
            logger.debug("ignored malformed telemetry")
            return
        }
        if let sha = beat.modelSHA256, sha != modelSHA256 {
            logger.warning("node \(beat.node) serves another model file (\(sha.prefix(12))…); not routing to it")
            return
        }
        let queue = Names.Queue.stage(tier: beat.tier, node: beat.node)
        nodeStages[beat.node] = (beat.tier, queue)
        let state: NodeStatus.State = switch beat.state {
        case .loading: .loading
        case .serving: .serving
        case .draining: .draining
        }
        // The node's own figure per step as it batches, when it sends one; else a decode step alone.
        let stepSeconds = beat.stepSeconds.flatMap { $0 > 0 ? $0 : nil }
            ?? meanStepSeconds(tier: beat.tier, flops: beat.nominal.flops, bandwidth: beat.nominal.memoryBandwidthBytesPerSecond)
        var status = NodeStatus(
            id: beat.node, queue: queue, tier: beat.tier, instance: beat.instance, planVersion: beat.planVersion,
            state: state, speed: beat.speed, kvFreeBytes: beat.kvFreeBytes, activeSequences: beat.activeSequences,
            readyMessages: 0, meanStepSeconds: stepSeconds,
            lastHeard: now, nominalFlops: beat.nominal.flops, nominalMemoryBandwidth: beat.nominal.memoryBandwidthBytesPerSecond)
        status.kvReservedForScheduler = beat.kvReservedBytes?[settings.eventsQueue] ?? 0
        status.batchShare = beat.batchShare ?? 1
        execute(core.heartbeat(status, now: now))
    }

    private func planArrived(_ delivery: AMQPDelivery, now: Double) {
        let document: PlanDocument
        do {
            document = try PlanDocument.parse(try JSONValue.parse(bytes: delivery.body))
        } catch {
            logger.warning("ignoring a plan message: \(error)")
            return
        }
        if let sha = document.modelSHA256, sha != modelSHA256 {
            logger.error("ignoring plan \(document.version): it is for another model file")
            return
        }
        guard plans[document.version] == nil else { return }
        plans[document.version] = document
        logger.info("plan \(document.version): \(document.partition.stages.map { "\($0.tierName) \($0.blockRange)" }.joined(separator: ", "))")
        execute(core.planArrived(planView(document), now: now))
    }

    /// The plan as the core needs it: tiers in order, KV bytes per token per stage in the
    /// runtime's units, and the §6 roofline of a request on a stage of a given node.
    private func planView(_ document: PlanDocument) -> PlanView {
        let stages = document.partition.stages
        let stageCosts = costs.stages(of: document.partition)
        let chunk = document.workload.prefillChunk
        let kvPerToken = stages.map { Double(($0.lastBlock - $0.firstBlock + 1) * config.kvBytesPerPositionPerBlock) }
        return PlanView(
            version: document.version, tiers: stages.map(\.tierName), kvBytesPerToken: kvPerToken, prefillChunk: chunk,
            workSeconds: { stage, node, prompt, output in
                stageCosts[stage].requestSeconds(
                    promptTokens: prompt, prefillChunk: chunk, decodeSteps: max(0, output - 1),
                    on: DeviceFigures(flops: node.nominalFlops, memoryBandwidthBytesPerSecond: node.nominalMemoryBandwidth, memoryBytes: 0))
            })
    }

    private func meanStepSeconds(tier: String, flops: Double, bandwidth: Double?) -> Double {
        guard let plan = plans.values.max(by: { $0.version < $1.version }),
            let range = plan.partition.stages.first(where: { $0.tierName == tier })
        else { return 0 }
        let cost = costs.stage(firstBlock: range.firstBlock, lastBlock: range.lastBlock, holdsEmbedding: range.holdsEmbedding, holdsHead: range.holdsHead)
        return cost.seconds(.decode(context: plan.workload.promptTokens), on: DeviceFigures(flops: flops, memoryBandwidthBytesPerSecond: bandwidth, memoryBytes: 0))
    }

    // MARK: Directives

    private func execute(_ directives: [SchedulerDirective]) {
        guard let outbound else { return }
        for directive in directives {
            switch directive {
            case .step(let queue, let header, let body):
                var headers = header.amqpHeaders
                var routingKey = queue
                if let link = settings.link, let home = settings.linkFromTier, Names.Queue.tier(ofStage: queue) != home {
                    // A plan that starts past the scheduler's tier (HEFT's): the token ids travel
                    // the emulated links as they would from where requests enter.
                    headers[Names.Header.linkDestination] = .string(queue)
                    routingKey = Names.Queue.link(link)
                }
                let message = AMQPMessage(body: body, properties: AMQPProperties(contentType: Names.ContentType.step, headers: headers))
                Task { try? await outbound.publish(message, exchange: Names.Exchange.internal, routingKey: routingKey, mandatory: true) }
            case .reply(let replyTo, let correlationID, let reply):
                let message = AMQPMessage(body: encodeMessage(reply), properties: AMQPProperties(contentType: Names.ContentType.json, correlationID: correlationID))
                Task { try? await outbound.publish(message, exchange: Names.Exchange.default, routingKey: replyTo, mandatory: detectsVanishing(replyTo)) }
            case .control(let queue, let control):
                let message = AMQPMessage(body: encodeMessage(control), properties: AMQPProperties(contentType: Names.ContentType.json))
                Task { try? await outbound.publish(message, exchange: Names.Exchange.internal, routingKey: queue) }
            case .finish(let completion):
                if retainPerRequest > 0 { retained.append([UInt8](repeating: 0xA5, count: retainPerRequest)) }
                if case .error(let error) = completion.reply {
                    let (log, left) = errorLog.admit(now: Clock.monotonicSeconds())
                    if log {
                        let more = left > 0 ? " (\(left) more error replies since the last one logged)" : ""
                        logger.warning("request \(error.id) failed: \(error.code.rawValue): \(error.message)\(more)")
                    }
                }
                let delivery = ingressDeliveries.removeValue(forKey: completion.ingressTag)
                let logger = logger
                finishing.add(1, ordering: .relaxed)
                Task {
                    defer { self.finishing.subtract(1, ordering: .releasing) }
                    // The result first, confirmed; only then is the request done with (docs/design.md §8).
                    if let replyTo = completion.replyTo {
                        let message = AMQPMessage(
                            body: encodeMessage(completion.reply),
                            properties: AMQPProperties(contentType: Names.ContentType.json, correlationID: completion.correlationID))
                        do throws(AMQPError) {
                            try await outbound.publishConfirmed(
                                message, exchange: Names.Exchange.default, routingKey: replyTo, mandatory: detectsVanishing(replyTo))
                        } catch .returned {
                            logger.info("the client of \(completion.reply.id) is gone; dropping its result")
                        } catch {
                            // Not confirmed: leave the ingress message unacked so it is redone (at least once).
                            logger.warning("result for \(completion.reply.id) not confirmed (\(error)); requeueing the request")
                            delivery?.nack(requeue: true)
                            return
                        }
                    }
                    delivery?.ack()
                    for target in completion.controls {
                        let message = AMQPMessage(body: encodeMessage(target.message), properties: AMQPProperties(contentType: Names.ContentType.json))
                        try? await outbound.publish(message, exchange: Names.Exchange.internal, routingKey: target.queue)
                    }
                }
            }
        }
    }

    // MARK: Plumbing

    /// Whether a mandatory publish to `replyTo` tells a vanished client apart. Not for direct
    /// reply-to: RabbitMQ treats `amq.rabbitmq.reply-to.*` as no queue, so a mandatory reply there
    /// comes back as unroutable even when it was delivered.
    private func detectsVanishing(_ replyTo: String) -> Bool {
        !replyTo.hasPrefix(Names.Queue.directReplyTo)
    }

    /// Reads the ready depth of every known node's queue on a connection used for nothing else.
    private func pollDepths() {
        guard !depthPollRunning, let depthConnection, let events else { return }
        let queues = nodeStages.mapValues(\.queue)
        guard !queues.isEmpty else { return }
        depthPollRunning = true
        Task {
            var depths: [String: Int] = [:]
            for (node, queue) in queues {
                if let status = try? await depthConnection.inspectQueue(queue) { depths[node] = Int(status.messageCount) }
            }
            events.yield(.depths(depths))
        }
    }
}

/// Rate limit for logging error replies: at most `perWindow` lines per `windowSeconds`; the
/// replies left out are counted into the next line logged.
struct ErrorReplyLog {
    var perWindow = 10
    var windowSeconds = 10.0
    private var windowStart = -Double.infinity
    private var logged = 0
    private var left = 0

    /// Whether to log this reply, and how many were left out before it.
    mutating func admit(now: Double) -> (log: Bool, leftOut: Int) {
        if now - windowStart >= windowSeconds {
            windowStart = now
            logged = 0
        }
        guard logged < perWindow else {
            left += 1
            return (false, 0)
        }
        logged += 1
        defer { left = 0 }
        return (true, left)
    }
}
