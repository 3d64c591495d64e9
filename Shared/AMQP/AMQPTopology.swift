/// The kind of an exchange; `custom` covers plugin types such as `x-consistent-hash`.
public enum AMQPExchangeKind: Sendable, Hashable {
    case direct, fanout, topic, headers
    case custom(String)

    var name: String {
        switch self {
        case .direct: "direct"
        case .fanout: "fanout"
        case .topic: "topic"
        case .headers: "headers"
        case let .custom(name): name
        }
    }
}

/// An exchange to declare. Declared exchanges are declared again after a reconnect.
public struct AMQPExchange: Sendable, Hashable {
    public var name: String
    public var kind: AMQPExchangeKind
    public var durable: Bool
    public var autoDelete: Bool
    public var `internal`: Bool
    public var arguments: AMQPTable

    public init(
        name: String, kind: AMQPExchangeKind, durable: Bool = true, autoDelete: Bool = false,
        internal: Bool = false, arguments: AMQPTable = [:]
    ) {
        self.name = name
        self.kind = kind
        self.durable = durable
        self.autoDelete = autoDelete
        self.internal = `internal`
        self.arguments = arguments
    }
}

/// A queue to declare, with RabbitMQ's common arguments as typed fields (they end up in
/// `arguments`, which can carry anything else). Declared queues are declared again after a
/// reconnect.
public struct AMQPQueue: Sendable, Hashable {
    /// What RabbitMQ does when a bounded queue is full.
    public enum Overflow: String, Sendable, Hashable {
        case dropHead = "drop-head"
        case rejectPublish = "reject-publish"
        case rejectPublishDeadLetter = "reject-publish-dlx"
    }

    public var name: String
    public var durable: Bool
    /// Only this connection may use it; deleted when the connection closes.
    public var exclusive: Bool
    public var autoDelete: Bool
    public var arguments: AMQPTable

    public init(
        name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
        arguments: AMQPTable = [:]
    ) {
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.autoDelete = autoDelete
        self.arguments = arguments
    }

    /// `x-queue-type: quorum` — replicated; RabbitMQ requires durable and non-exclusive.
    public var isQuorum: Bool {
        get { arguments["x-queue-type"]?.stringValue == "quorum" }
        set { arguments["x-queue-type"] = newValue ? .string("quorum") : nil }
    }
    public var deadLetterExchange: String? {
        get { arguments["x-dead-letter-exchange"]?.stringValue }
        set { arguments["x-dead-letter-exchange"] = newValue.map(AMQPFieldValue.string) }
    }
    public var deadLetterRoutingKey: String? {
        get { arguments["x-dead-letter-routing-key"]?.stringValue }
        set { arguments["x-dead-letter-routing-key"] = newValue.map(AMQPFieldValue.string) }
    }
    public var maxLength: Int64? {
        get { arguments["x-max-length"]?.int64Value }
        set { arguments["x-max-length"] = newValue.map(AMQPFieldValue.int64) }
    }
    public var overflow: Overflow? {
        get { arguments["x-overflow"]?.stringValue.flatMap(Overflow.init(rawValue:)) }
        set { arguments["x-overflow"] = newValue.map { .string($0.rawValue) } }
    }
    public var messageTTLMilliseconds: Int64? {
        get { arguments["x-message-ttl"]?.int64Value }
        set { arguments["x-message-ttl"] = newValue.map(AMQPFieldValue.int64) }
    }
    /// The queue is deleted after this long without consumers or declarations.
    public var expiresMilliseconds: Int64? {
        get { arguments["x-expires"]?.int64Value }
        set { arguments["x-expires"] = newValue.map(AMQPFieldValue.int64) }
    }
    public var singleActiveConsumer: Bool {
        get { arguments["x-single-active-consumer"]?.boolValue ?? false }
        set { arguments["x-single-active-consumer"] = newValue ? .bool(true) : nil }
    }
}

/// A binding from an exchange to a queue or to another exchange.
public struct AMQPBinding: Sendable, Hashable {
    /// What a binding routes to: a queue, or another exchange (a RabbitMQ extension).
    public enum Destination: Sendable, Hashable {
        case queue(String)
        case exchange(String)
    }
    public var destination: Destination
    public var exchange: String
    public var routingKey: String
    public var arguments: AMQPTable

    public init(destination: Destination, exchange: String, routingKey: String = "", arguments: AMQPTable = [:]) {
        self.destination = destination
        self.exchange = exchange
        self.routingKey = routingKey
        self.arguments = arguments
    }

    public static func queue(
        _ queue: String, to exchange: String, routingKey: String = "", arguments: AMQPTable = [:]
    ) -> AMQPBinding {
        AMQPBinding(destination: .queue(queue), exchange: exchange, routingKey: routingKey, arguments: arguments)
    }
}

/// What `queue.declare-ok` reports. `messageCount` counts *ready* messages only (not unacked ones).
public struct AMQPQueueStatus: Sendable, Hashable {
    public var name: String
    public var messageCount: UInt32
    public var consumerCount: UInt32
}
