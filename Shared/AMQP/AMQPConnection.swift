import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A connection to a RabbitMQ broker.
///
/// rabbitmq-c is not thread-safe and its calls block, so each connection owns one dedicated thread
/// that holds the C state and services heartbeats while idle; every method here only queues work for
/// that thread and awaits the result, so nothing blocks Swift's cooperative pool. One connection can
/// publish, consume and declare at once; for the highest throughput give publishers and consumers
/// separate connections (separate threads).
///
/// Reconnects automatically (unless disabled): exchanges, queues and bindings declared through it
/// are declared again and consumers resume on the new connection. Operations in flight when it
/// drops fail with `AMQPError.connectionLost` (confirmed publishes should be republished);
/// unconfirmed publishes are at-most-once.
public final class AMQPConnection: Sendable {
    let commands: CommandQueue
    let finished: Promise<Void>
    /// Connection-level events (drops, reconnects, flow control). Read it from one task.
    public let events: AsyncStream<AMQPConnectionEvent>
    /// Mandatory messages published with `publish` (no confirm) that could not be routed.
    public let returnedMessages: AsyncStream<AMQPReturnedMessage>
    public let url: AMQPURL
    /// Runs tasks on this connection's thread; see `AMQPConnectionExecutor`.
    public let executor: AMQPConnectionExecutor

    private init(url: AMQPURL, commands: CommandQueue, finished: Promise<Void>, events: AsyncStream<AMQPConnectionEvent>, returns: AsyncStream<AMQPReturnedMessage>) {
        self.url = url
        self.commands = commands
        self.finished = finished
        self.events = events
        self.returnedMessages = returns
        self.executor = AMQPConnectionExecutor(commands: commands)
    }

    deinit { commands.close() }

    /// Connects and logs in; throws when the broker cannot be reached now (reconnects only happen
    /// after a first success).
    public static func connect(
        to url: AMQPURL, configuration: AMQPConnectionConfiguration = AMQPConnectionConfiguration(),
        logger: Logger = Logger(label: "hyperion.amqp")
    ) async throws(AMQPError) -> AMQPConnection {
        let commands = try CommandQueue()
        let (events, eventsContinuation) = AsyncStream.makeStream(
            of: AMQPConnectionEvent.self, bufferingPolicy: .bufferingNewest(64))
        let (returns, returnsContinuation) = AsyncStream.makeStream(
            of: AMQPReturnedMessage.self, bufferingPolicy: .bufferingNewest(256))
        let connected = Promise<Void>()
        let finished = Promise<Void>()
        let settings = ConnectionSettings(url: url, configuration: configuration, logger: logger)
        let outlets = ConnectionOutlets(events: eventsContinuation, returns: returnsContinuation)
        try startThread(name: "amqp-\(configuration.connectionName)") {
            let core = ConnectionCore(settings: settings, commands: commands, outlets: outlets)
            core.run(connected: connected)
            finished.succeed(())
        }
        try await connected.value()
        return AMQPConnection(url: url, commands: commands, finished: finished, events: events, returns: returns)
    }

    /// Connects to the URL in `HYPERION_AMQP_URL`.
    public static func connect(
        environment: [String: String], configuration: AMQPConnectionConfiguration = AMQPConnectionConfiguration(),
        logger: Logger = Logger(label: "hyperion.amqp")
    ) async throws(AMQPError) -> AMQPConnection {
        try await connect(to: AMQPURL.fromEnvironment(environment), configuration: configuration, logger: logger)
    }

    /// Closes the connection cleanly: queued work is sent first, consumers end, pending confirms fail.
    public func close() async {
        commands.close()
        _ = try? await finished.value()
    }

    // MARK: - Topology

    /// Declares an exchange; it is declared again after every reconnect until deleted.
    public func declare(_ exchange: AMQPExchange) async throws(AMQPError) {
        _ = try await declare(.exchange(exchange), passive: false)
    }

    /// Declares a queue; the status carries the broker-chosen name when `queue.name` is empty.
    @discardableResult
    public func declare(_ queue: AMQPQueue) async throws(AMQPError) -> AMQPQueueStatus {
        try await declare(.queue(queue), passive: false)
    }

    /// Binds a queue or exchange; the binding is made again after every reconnect until unbound.
    public func bind(_ binding: AMQPBinding) async throws(AMQPError) {
        _ = try await declare(.binding(binding), passive: false)
    }

    /// A passive declare: the queue's live ready-message and consumer counts, or
    /// `channelClosed(404, …)` when it does not exist.
    public func inspectQueue(_ name: String) async throws(AMQPError) -> AMQPQueueStatus {
        try await declare(.queue(AMQPQueue(name: name)), passive: true)
    }

    /// Checks that an exchange exists (404 `channelClosed` when it does not).
    public func inspectExchange(_ name: String) async throws(AMQPError) {
        _ = try await declare(.exchange(AMQPExchange(name: name, kind: .direct)), passive: true)
    }

    /// Removes a binding (and forgets it for reconnects).
    public func unbind(_ binding: AMQPBinding) async throws(AMQPError) {
        let promise = Promise<Void>()
        submit(promise) { core in core.unbind(binding, promise: promise) }
        try await promise.value()
    }

    /// Deletes an exchange and forgets it, and bindings to or from it, for reconnects.
    public func deleteExchange(_ name: String, ifUnused: Bool = false) async throws(AMQPError) {
        let promise = Promise<Void>()
        submit(promise) { core in core.deleteExchange(name, ifUnused: ifUnused, promise: promise) }
        try await promise.value()
    }

    /// Deletes a queue (its consumers are cancelled); returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) async throws(AMQPError)
        -> UInt32
    {
        let promise = Promise<UInt32>()
        submit(promise) { core in
            core.removeMessages(queue: name, delete: true, ifUnused: ifUnused, ifEmpty: ifEmpty, promise: promise)
        }
        return try await promise.value()
    }

    /// Drops a queue's ready messages; returns how many.
    @discardableResult
    public func purgeQueue(_ name: String) async throws(AMQPError) -> UInt32 {
        let promise = Promise<UInt32>()
        submit(promise) { core in
            core.removeMessages(queue: name, delete: false, ifUnused: false, ifEmpty: false, promise: promise)
        }
        return try await promise.value()
    }

    private func declare(_ item: ConnectionCore.TopologyItem, passive: Bool) async throws(AMQPError) -> AMQPQueueStatus {
        let promise = Promise<AMQPQueueStatus>()
        submit(promise) { core in core.declare(item, passive: passive, promise: promise) }
        return try await promise.value()
    }

    private func submit<Value>(_ promise: Promise<Value>, _ command: @escaping Command) {
        if !commands.enqueue(command) { promise.fail(.connectionClosed) }
    }

    // MARK: - Publishing

    /// Publishes without waiting for the broker: returns once the message is queued for the
    /// connection's thread (waiting only while many megabytes are queued unsent). At most once: a
    /// message in flight when the connection drops is lost. Unroutable mandatory messages appear on
    /// `returnedMessages`.
    public func publish(
        _ message: AMQPMessage, exchange: String = "", routingKey: String, mandatory: Bool = false
    ) async throws(AMQPError) {
        await commands.waitForPublishSpace()
        let queued = commands.enqueue(publishBytes: message.body.count) { core in
            core.publish(message, exchange: exchange, routingKey: routingKey, mandatory: mandatory, confirm: nil)
        }
        if !queued { throw .connectionClosed }
    }

    /// Publishes and waits for the broker to take responsibility (publisher confirm). Many calls
    /// may be in flight at once from different tasks; each resumes on its own ack.
    ///
    /// Throws `returned` for an unroutable mandatory message, `nacked`, `channelClosed` (e.g. 404
    /// for a missing exchange) or `connectionLost` — in every case the message should be considered
    /// not delivered.
    public func publishConfirmed(
        _ message: AMQPMessage, exchange: String = "", routingKey: String, mandatory: Bool = false
    ) async throws(AMQPError) {
        try await startConfirmedPublish(message, exchange: exchange, routingKey: routingKey, mandatory: mandatory).wait()
    }

    /// Publishes with a confirm and returns at once; await the result later. Lets one task keep
    /// many confirmed publishes in flight.
    public func startConfirmedPublish(
        _ message: AMQPMessage, exchange: String = "", routingKey: String, mandatory: Bool = false
    ) async throws(AMQPError) -> AMQPPendingConfirm {
        await commands.waitForPublishSpace()
        let promise = Promise<Void>()
        let queued = commands.enqueue(publishBytes: message.body.count) { core in
            core.publish(message, exchange: exchange, routingKey: routingKey, mandatory: mandatory, confirm: promise)
        }
        if !queued { throw .connectionClosed }
        return AMQPPendingConfirm(promise: promise)
    }

    /// Publishes on the channel of one of this connection's consumers (at most once, like
    /// `publish`). Direct reply-to needs it: a request whose replies come to
    /// `amq.rabbitmq.reply-to` must go out on the channel consuming them, e.g. a client that
    /// reads a stream of replies.
    public func publish(_ message: AMQPMessage, exchange: String, routingKey: String, onChannelOf consumerTag: String)
        async throws(AMQPError)
    {
        await commands.waitForPublishSpace()
        let queued = commands.enqueue(publishBytes: message.body.count) { core in
            core.publish(
                message, exchange: exchange, routingKey: routingKey, mandatory: false, confirm: nil,
                consumerTag: consumerTag)
        }
        if !queued { throw .connectionClosed }
    }

    /// Publishes on the channel of a consumer started with `confirmsPublishes` and waits for the
    /// broker's confirm: a direct reply-to client that must learn whether its request was taken
    /// (a queue full with `reject-publish` nacks it).
    public func publishConfirmed(_ message: AMQPMessage, exchange: String, routingKey: String, onChannelOf consumerTag: String)
        async throws(AMQPError)
    {
        await commands.waitForPublishSpace()
        let promise = Promise<Void>()
        let queued = commands.enqueue(publishBytes: message.body.count) { core in
            core.publish(
                message, exchange: exchange, routingKey: routingKey, mandatory: false, confirm: promise,
                consumerTag: consumerTag)
        }
        if !queued { throw .connectionClosed }
        try await AMQPPendingConfirm(promise: promise).wait()
    }

    // MARK: - Consuming

    /// Starts a consumer on its own channel. With `noAck` false (the default) every delivery must be
    /// acked, nacked or rejected; `prefetchCount` bounds how many are unsettled at once.
    ///
    /// The sequence ends with `AMQPError.consumerCancelled` when the broker cancels the consumer
    /// (e.g. its queue was deleted), with `channelClosed` on a channel error, and normally after
    /// `cancel()` or when the connection is closed. Across reconnects it simply keeps delivering.
    /// `confirmsPublishes` puts its channel in confirm mode, for `publishConfirmed(_:…onChannelOf:)`.
    public func consume(
        queue: String, prefetchCount: UInt16 = 100, noAck: Bool = false, exclusive: Bool = false,
        arguments: AMQPTable = [:], consumerTag: String? = nil, confirmsPublishes: Bool = false
    ) async throws(AMQPError) -> AMQPConsumer {
        let tag = consumerTag ?? "hyperion-\(AMQPConnection.randomSuffix())"
        let buffer = DeliveryBuffer()
        let spec = ConsumerSpec(
            queue: queue, tag: tag, prefetchCount: prefetchCount, noAck: noAck, exclusive: exclusive,
            arguments: arguments, sink: buffer, confirmsPublishes: confirmsPublishes)
        try await startConsumer(spec)
        return AMQPConsumer(connection: self, tag: tag, queue: queue, buffer: buffer)
    }

    func startConsumer(_ spec: ConsumerSpec) async throws(AMQPError) {
        let started = Promise<Void>()
        submit(started) { core in core.startConsumer(ConsumerRecord(spec), started: started) }
        try await started.value()
    }

    func cancelConsumer(tag: String) async throws(AMQPError) {
        let done = Promise<Void>()
        submit(done) { core in core.cancelConsumer(tag: tag, done: done) }
        try await done.value()
    }

    static func randomSuffix() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }
}

/// Runs `body` on a new detached thread, so blocking C calls never occupy a Swift executor.
func startThread(name: String, _ body: @escaping @Sendable () -> Void) throws(AMQPError) {
    final class Box: Sendable {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
    let box = Unmanaged.passRetained(Box(name: name, body: body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(
        &thread, nil,
        { argument in
            guard let argument else { return nil }
            let box = Unmanaged<Box>.fromOpaque(argument).takeRetainedValue()
            box.body()
            return nil
        }, box)
    guard status == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        throw .library(status: status, message: "cannot start the connection thread")
    }
    pthread_detach(thread)
}
