import AMQP
import Foundation
import JSON
import Logging
import Messages
import Partitioning
import PlanningOptions
import Profiles
import ServiceSupport

/// Everything the planner service is configured with.
struct PartitionPlannerSettings: Sendable {
    var amqpURL: AMQPURL
    var input: PlanningInput
    var replan: ReplanController.Policy
    /// The heartbeat interval of every process: the planner's own, and the one it expects from
    /// workers (a node silent for 3 intervals is out).
    var heartbeatSeconds: Double
    /// Distinguishes this planner's queues and log lines from another's.
    var plannerID: String

    /// How long the planner listens to telemetry before its first plan, so that the plan already
    /// counts the live nodes and outnumbers the version they serve.
    var startupListenSeconds: Double { 1.5 * heartbeatSeconds }
}

/// A start-up failure a user can act on.
struct PartitionPlannerError: Error, CustomStringConvertible {
    var description: String
}

/// A plan as it goes on the wire: its version and its §4 JSON body.
private struct PublishedPlan: Sendable {
    var version: Int64
    var body: [UInt8]
}

/// What the planner's loop reacts to, one at a time.
private enum PlannerEvent: Sendable {
    case telemetry(AMQPDelivery)
    case planRequest(AMQPDelivery)
    case tick
    case connection(AMQPConnectionEvent)
    case consumerEnded(queue: String, error: AMQPError?)
    case resubscribe(queue: String)
    case terminate
}

/// The partition-planner process: the broker shell around `LivePlanner` (docs/design.md §2, §9).
///
/// It plans at start and publishes the plan on `hyperion.plan`, answers `hyperion.plan.get`,
/// folds worker telemetry into the topology and publishes a new plan when `LivePlanner` decides
/// to, re-publishing the current one after every reconnect so that new subscribers get it. Bad
/// messages go to `hyperion.dead` with their reason (or get an error reply) and the loop goes on.
///
/// Not Sendable: all state lives in the task running `run()`; the tasks it starts hold only the
/// connection and the event stream's continuation.
final class PartitionPlannerService {
    private let settings: PartitionPlannerSettings
    private let logger: Logger
    private let instance = ProcessEnvironment.uuid()
    private let profile: ModelProfile
    private var core: LivePlanner
    /// The plan in force as published: what `plan.get` answers and a reconnect publishes again.
    private var published: PublishedPlan?
    private var listening = true
    private var stopping = false
    /// Nodes already warned about (unknown tier, other model file), so each is logged once.
    private var warnedNodes: Set<String> = []
    private let telemetryQueue: String

    init(settings: PartitionPlannerSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        let input = settings.input
        profile = input.model.profile(for: input.workload)
        core = LivePlanner(
            model: profile, topology: input.topology, workload: input.workload,
            configuration: LivePlanner.Configuration(
                policy: input.policy, replan: settings.replan, silenceSeconds: 3 * settings.heartbeatSeconds,
                requireEveryTier: input.requireEveryTier))
        telemetryQueue = Names.Queue.subscription(owner: Names.Queue.planner(settings.plannerID), purpose: "telemetry")
    }

    func run() async throws {
        let connection: AMQPConnection
        do {
            connection = try await AMQPConnection.connect(
                to: settings.amqpURL,
                configuration: AMQPConnectionConfiguration(
                    connectionName: "partition-planner-\(settings.plannerID)", heartbeatSeconds: 10),
                logger: logger)
            try await BrokerObjects.declareShared(for: .planner, on: connection)
        } catch {
            throw PartitionPlannerError(description: "cannot use the broker at \(settings.amqpURL): \(error)")
        }
        let (events, continuation) = AsyncStream.makeStream(of: PlannerEvent.self)
        let (outbox, outboxContinuation) = AsyncStream.makeStream(of: PublishedPlan.self)
        let publisher = startPlanPublisher(outbox, on: connection)
        let signals = TerminationSignals { _ in continuation.yield(.terminate) }
        let heapSignal = HeapStatisticsSignal(logger: logger)
        let watcher = Task { [connection] in
            for await event in connection.events { continuation.yield(.connection(event)) }
        }
        let ticker = startTicker(continuation)
        var consumers: [String: AMQPConsumer] = [:]
        defer {
            signals.cancel()
            heapSignal.cancel()
            watcher.cancel()
            ticker.cancel()
        }

        do {
            consumers[telemetryQueue] = try await subscribe(telemetryQueue, on: connection, events: continuation)
        } catch {
            await connection.close()
            throw PartitionPlannerError(description: "cannot subscribe to worker telemetry: \(error)")
        }
        let input = settings.input
        logger.info(
            "listening to worker telemetry before the first plan",
            metadata: [
                "model": "\(input.model.name)", "sha256": "\(profile.sha256.map { String($0.prefix(12)) } ?? "-")",
                "topology": "\(input.topologyPath)", "partition": "\(input.policy.rawValue)",
                "seconds": "\(settings.startupListenSeconds)",
            ])

        loop: for await event in events {
            switch event {
            case .telemetry(let delivery):
                await handleTelemetry(delivery, on: connection)
            case .planRequest(let delivery):
                await answer(delivery, on: connection)
            case .tick:
                await tick(on: connection, outbox: outboxContinuation)
                if listening {
                    listening = false
                    do {
                        consumers[Names.Queue.planGet] = try await subscribe(Names.Queue.planGet, on: connection, events: continuation)
                    } catch {
                        logger.error("cannot consume \(Names.Queue.planGet): \(error); retrying")
                        retry(Names.Queue.planGet, events: continuation)
                    }
                }
            case .connection(let change):
                handleConnection(change, outbox: outboxContinuation)
            case .consumerEnded(let queue, let error):
                consumers[queue] = nil
                if stopping { break }
                logger.warning("the consumer of \(queue) ended (\(error.map { "\($0)" } ?? "cancelled")); subscribing again")
                retry(queue, events: continuation)
            case .resubscribe(let queue):
                do {
                    consumers[queue] = try await subscribe(queue, on: connection, events: continuation)
                    logger.info("consuming \(queue) again")
                } catch {
                    logger.warning("cannot consume \(queue) yet: \(error)")
                    retry(queue, events: continuation)
                }
            case .terminate:
                logger.info("terminating on signal")
                break loop
            }
        }
        stopping = true
        for consumer in consumers.values { try? await consumer.cancel() }
        outboxContinuation.finish()
        await publisher.value
        await connection.close()
    }

    // MARK: Subscriptions

    /// Declares (for telemetry) and consumes `queue`, forwarding deliveries to the loop.
    private func subscribe(
        _ queue: String, on connection: AMQPConnection, events: AsyncStream<PlannerEvent>.Continuation
    ) async throws(AMQPError) -> AMQPConsumer {
        let consumer: AMQPConsumer
        if queue == Names.Queue.planGet {
            consumer = try await connection.consume(queue: queue, prefetchCount: 32)
        } else {
            try await BrokerObjects.declareSubscription(
                queue, to: Names.Exchange.telemetry, routingKey: "worker.#", on: connection)
            consumer = try await connection.consume(queue: queue, prefetchCount: 512)
        }
        let isPlanGet = queue == Names.Queue.planGet
        Task {
            do {
                for try await delivery in consumer {
                    events.yield(isPlanGet ? .planRequest(delivery) : .telemetry(delivery))
                }
                events.yield(.consumerEnded(queue: queue, error: nil))
            } catch {
                events.yield(.consumerEnded(queue: queue, error: error as? AMQPError))
            }
        }
        return consumer
    }

    private func retry(_ queue: String, events: AsyncStream<PlannerEvent>.Continuation) {
        Task {
            try? await Task.sleep(for: .seconds(1))
            events.yield(.resubscribe(queue: queue))
        }
    }

    private func startTicker(_ events: AsyncStream<PlannerEvent>.Continuation) -> Task<Void, Never> {
        let first = settings.startupListenSeconds
        let interval = settings.heartbeatSeconds
        return Task {
            try? await Task.sleep(for: .seconds(first))
            while !Task.isCancelled {
                events.yield(.tick)
                try? await Task.sleep(for: .seconds(interval))
            }
        }
    }

    /// Publishes plans one at a time, in order, persistent and confirmed. A plan that cannot be
    /// published now is logged; the loop publishes the current plan again after the reconnect.
    private func startPlanPublisher(_ outbox: AsyncStream<PublishedPlan>, on connection: AMQPConnection) -> Task<Void, Never> {
        let logger = logger
        return Task {
            for await plan in outbox {
                let message = AMQPMessage(
                    body: plan.body, properties: AMQPProperties(contentType: Names.ContentType.json, deliveryMode: 2, type: "plan"))
                do {
                    try await connection.publishConfirmed(message, exchange: Names.Exchange.plan, routingKey: "")
                    logger.debug("plan \(plan.version) published")
                } catch {
                    logger.warning("plan \(plan.version) not published (\(error)); it goes out again after the reconnect")
                }
            }
        }
    }

    // MARK: Planning

    /// Publishes the planner's heartbeat, then lets the core drop silent nodes and decide.
    private func tick(on connection: AMQPConnection, outbox: AsyncStream<PublishedPlan>.Continuation) async {
        let now = Clock.monotonicSeconds()
        let wallSeconds = Clock.wallSeconds()
        let (changes, directive) = core.evaluate(at: now, wallMilliseconds: Int64((wallSeconds * 1000).rounded(.down)))
        for change in changes { logger.info("membership: \(change)") }
        switch directive {
        case .publish(let plan, let reason):
            let document = PlanDocument(
                version: plan.version, createdAt: Self.iso8601(wallSeconds: wallSeconds), modelName: settings.input.model.name,
                modelSHA256: profile.sha256, workload: settings.input.workload, partition: plan.partition)
            let body = Array(document.jsonValue.serialized().utf8)
            published = PublishedPlan(version: plan.version, body: body)
            let stages = plan.partition.stages.map { "\($0.tierName) \($0.blockRange) ×\($0.nodes.count)" }
            logger.info(
                "plan \(plan.version): \(reason)",
                metadata: [
                    "stages": "\(stages.joined(separator: ", "))",
                    "bottleneck_s": "\(plan.partition.bottleneckSeconds)",
                    "idle_latency_s": "\(plan.partition.idleLatencySeconds)",
                ])
            outbox.yield(PublishedPlan(version: plan.version, body: body))
        case .keep(let reason, let notable):
            if notable { logger.info("\(reason)") } else { logger.trace("\(reason)") }
        }
        await publishHeartbeat(on: connection, wallSeconds: wallSeconds)
    }

    private func publishHeartbeat(on connection: AMQPConnection, wallSeconds: Double) async {
        let heartbeat = PlannerHeartbeat(
            instance: instance, planVersion: core.current?.version, liveNodes: core.membership.liveNodeIDs.count,
            drifting: core.isDrifting, timestamp: wallSeconds, liveBottleneckSeconds: core.liveBottleneckSeconds)
        let message = AMQPMessage(body: encodeMessage(heartbeat), properties: AMQPProperties(contentType: Names.ContentType.json))
        do {
            try await connection.publish(message, exchange: Names.Exchange.telemetry, routingKey: Names.RoutingKey.plannerTelemetry)
        } catch {
            logger.debug("heartbeat not sent: \(error)")
        }
    }

    private func handleConnection(_ change: AMQPConnectionEvent, outbox: AsyncStream<PublishedPlan>.Continuation) {
        switch change {
        case .disconnected(let error):
            logger.warning("lost the broker (\(error)); reconnecting")
        case .reconnected:
            if let published {
                logger.info("reconnected; publishing plan \(published.version) again for new subscribers")
                outbox.yield(published)
            } else {
                logger.info("reconnected")
            }
        case .blocked(let reason):
            logger.warning("the broker blocks publishing: \(reason)")
        case .unblocked:
            logger.info("the broker accepts publishing again")
        }
    }

    // MARK: Telemetry

    /// Folds a worker heartbeat into the live topology; a malformed one is dead-lettered.
    private func handleTelemetry(_ delivery: AMQPDelivery, on connection: AMQPConnection) async {
        defer { delivery.ack() }
        let telemetry: Telemetry
        do {
            telemetry = try decodeMessage(Telemetry.self, from: delivery.body)
        } catch {
            await deadLetter(delivery, reason: "telemetry: \(error)", on: connection)
            return
        }
        let expectedKey = Names.RoutingKey.workerTelemetry(tier: telemetry.tier, node: telemetry.node)
        guard delivery.routingKey == expectedKey else {
            await deadLetter(
                delivery,
                reason: "telemetry: routing key '\(delivery.routingKey)' does not match the body's tier and node ('\(expectedKey)')",
                on: connection)
            return
        }
        if let version = telemetry.planVersion { core.noteVersionSeen(version) }
        guard settings.input.topology.tiers.contains(where: { $0.name == telemetry.tier }) else {
            warnOnce(telemetry.node, "node \(telemetry.node) reports tier '\(telemetry.tier)', which the topology does not have; not counted")
            return
        }
        if let theirs = telemetry.modelSHA256, let ours = profile.sha256, theirs != ours {
            warnOnce(
                telemetry.node,
                "node \(telemetry.node) runs model file \(theirs.prefix(12))…, not this plan's \(ours.prefix(12))…; not counted")
            return
        }
        let heartbeat = LiveMembership.Heartbeat(
            nodeID: telemetry.node, tierName: telemetry.tier, device: telemetry.device,
            nominal: DeviceFigures(
                flops: telemetry.nominal.flops, memoryBandwidthBytesPerSecond: telemetry.nominal.memoryBandwidthBytesPerSecond,
                memoryBytes: telemetry.nominal.memoryBytes),
            speed: telemetry.speed, planVersion: telemetry.planVersion, computeSpeed: telemetry.computeSpeed,
            computeConfidence: telemetry.computeConfidence)
        if let change = core.record(heartbeat, at: Clock.monotonicSeconds()) {
            logger.info("membership: \(change)", metadata: ["speed": "\(telemetry.speed)", "state": "\(telemetry.state.rawValue)"])
        }
    }

    private func warnOnce(_ node: String, _ message: String) {
        guard warnedNodes.insert(node).inserted else { return }
        logger.warning("\(message)")
    }

    // MARK: plan.get

    /// Answers a plan request to its `reply_to` with the same `correlation_id`: the plan, the
    /// infeasible answer, or an error reply. A request with nowhere to reply is dead-lettered.
    private func answer(_ delivery: AMQPDelivery, on connection: AMQPConnection) async {
        defer { delivery.ack() }
        let properties = delivery.properties
        guard let replyTo = properties.replyTo, !replyTo.isEmpty else {
            await deadLetter(delivery, reason: "plan.get: the request has no reply_to, so there is nowhere to send the plan", on: connection)
            return
        }
        let body: [UInt8]
        if let problem = Self.problem(withRequest: delivery.body) {
            body = encodeMessage(ErrorReply(id: properties.correlationID ?? "", code: .badRequest, message: "plan.get: \(problem)"))
        } else if let published {
            body = published.body
        } else if let infeasibility = core.infeasibility {
            body = Array(PlanDocument.infeasibleJSON(infeasibility).serialized().utf8)
        } else {
            body = encodeMessage(
                ErrorReply(id: properties.correlationID ?? "", code: .unavailable, message: "the planner has no plan yet"))
        }
        let reply = AMQPMessage(
            body: body, properties: AMQPProperties(contentType: Names.ContentType.json, correlationID: properties.correlationID))
        do {
            try await connection.publish(reply, exchange: Names.Exchange.default, routingKey: replyTo)
        } catch {
            logger.warning("could not reply to a plan request: \(error)")
        }
    }

    /// What is wrong with a plan request's body; an empty body is a valid request.
    private static func problem(withRequest body: [UInt8]) -> MessageError? {
        guard !body.isEmpty else { return nil }
        do {
            _ = try decodeMessage(PlanRequest.self, from: body)
            return nil
        } catch {
            return error
        }
    }

    private func deadLetter(_ delivery: AMQPDelivery, reason: String, on connection: AMQPConnection) async {
        logger.warning("dead-lettering a message from \(delivery.exchange.isEmpty ? "(default)" : delivery.exchange): \(reason)")
        do {
            try await BrokerObjects.deadLetter(delivery.message, reason: reason, on: connection)
        } catch {
            logger.error("could not dead-letter a message: \(error)")
        }
    }

    private static func iso8601(wallSeconds: Double) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: wallSeconds))
    }
}
