import Synchronization

/// Request/reply over RabbitMQ's direct reply-to: replies come back on `amq.rabbitmq.reply-to`
/// (consumed with no-ack on the client's own channel, before any request is published) and are
/// matched to callers by correlation id. Many calls may be in flight at once.
public final class AMQPRPCClient: Sendable {
    /// RabbitMQ's pseudo-queue for direct replies.
    public static let directReplyQueue = "amq.rabbitmq.reply-to"

    let connection: AMQPConnection
    let tag: String
    let router: ReplyRouter

    init(connection: AMQPConnection, tag: String, router: ReplyRouter) {
        self.connection = connection
        self.tag = tag
        self.router = router
    }

    /// Starts the reply consumer on a channel of its own.
    public static func start(on connection: AMQPConnection) async throws(AMQPError) -> AMQPRPCClient {
        let tag = "hyperion-rpc-\(AMQPConnection.randomSuffix())"
        let router = ReplyRouter()
        try await connection.startConsumer(
            ConsumerSpec(
                queue: directReplyQueue, tag: tag, prefetchCount: 0, noAck: true, exclusive: false, arguments: [:],
                sink: router))
        return AMQPRPCClient(connection: connection, tag: tag, router: router)
    }

    /// Publishes `request` with `reply_to` and a correlation id (the message's own, else a new one)
    /// and waits for the reply. Throws `timeout` when none arrives in time, `connectionLost` when the
    /// connection drops first (the reply could no longer reach this client).
    public func call(
        _ request: AMQPMessage, exchange: String = "", routingKey: String, timeoutSeconds: Double
    ) async throws(AMQPError) -> AMQPDelivery {
        var request = request
        let correlationID = request.properties.correlationID ?? "rpc-\(AMQPConnection.randomSuffix())"
        request.properties.correlationID = correlationID
        request.properties.replyTo = AMQPRPCClient.directReplyQueue
        let promise = Promise<AMQPDelivery>()
        try router.register(correlationID, promise)
        defer { router.forget(correlationID) }
        let timer = Task {
            try? await Task.sleep(for: .seconds(timeoutSeconds))
            promise.fail(.timeout(seconds: timeoutSeconds))
        }
        defer { timer.cancel() }
        try await connection.publish(request, exchange: exchange, routingKey: routingKey, onChannelOf: tag)
        return try await promise.value()
    }

    /// Stops the reply consumer; calls in flight fail.
    public func close() async throws(AMQPError) {
        try await connection.cancelConsumer(tag: tag)
    }
}

/// Routes replies to waiting calls by correlation id.
final class ReplyRouter: DeliverySink {
    private struct State {
        var waiting: [String: Promise<AMQPDelivery>] = [:]
        var end: AMQPError?
    }

    private let state = Mutex(State())

    func register(_ correlationID: String, _ promise: Promise<AMQPDelivery>) throws(AMQPError) {
        let end: AMQPError? = state.withLock { state in
            if let end = state.end { return end }
            state.waiting[correlationID] = promise
            return nil
        }
        if let end { throw end }
    }

    func forget(_ correlationID: String) {
        _ = state.withLock { $0.waiting.removeValue(forKey: correlationID) }
    }

    func deliver(_ delivery: AMQPDelivery) {
        guard let id = delivery.properties.correlationID else { return }
        state.withLock { $0.waiting.removeValue(forKey: id) }?.succeed(delivery)
    }

    func finish(_ error: AMQPError?) {
        let waiting = state.withLock { state in
            state.end = error ?? .connectionClosed
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for promise in waiting.values { promise.fail(error ?? .connectionClosed) }
    }

    func interrupted(_ error: AMQPError) {
        let waiting = state.withLock { state in
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for promise in waiting.values { promise.fail(error) }
    }
}
