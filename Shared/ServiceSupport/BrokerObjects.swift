import AMQP
import Messages

/// The shared broker objects of DESIGN.md §3, declared identically by every service so that
/// whichever starts first creates them and the rest agree (RabbitMQ refuses a redeclaration with
/// different arguments).
public enum BrokerObjects {
    /// Most requests the ingress queue holds before publishers are refused (`reject-publish`).
    public static let defaultIngressMaxLength: Int64 = 10_000

    public static var exchanges: [AMQPExchange] {
        [
            AMQPExchange(name: Names.Exchange.ingress, kind: .direct),
            AMQPExchange(name: Names.Exchange.cancel, kind: .fanout),
            AMQPExchange(name: Names.Exchange.internal, kind: .direct),
            AMQPExchange(name: Names.Exchange.plan, kind: .fanout),
            AMQPExchange(name: Names.Exchange.telemetry, kind: .topic),
            AMQPExchange(name: Names.Exchange.dead, kind: .fanout),
        ]
    }

    /// The durable ingress queue: persistent requests, dead-lettered to `hyperion.dead`, bounded.
    public static func ingressQueue(maxLength: Int64 = defaultIngressMaxLength) -> AMQPQueue {
        AMQPQueue(name: Names.Queue.ingress, arguments: [
            "x-dead-letter-exchange": .string(Names.Exchange.dead),
            "x-max-length": .int64(maxLength),
            "x-overflow": .string(AMQPQueue.Overflow.rejectPublish.rawValue),
        ])
    }

    /// Declares every shared exchange and durable queue with its bindings.
    public static func declareShared(on connection: AMQPConnection, ingressMaxLength: Int64 = defaultIngressMaxLength) async throws(AMQPError) {
        for exchange in exchanges { try await connection.declare(exchange) }
        _ = try await connection.declare(ingressQueue(maxLength: ingressMaxLength))
        try await connection.bind(.queue(Names.Queue.ingress, to: Names.Exchange.ingress, routingKey: Names.Queue.ingress))
        _ = try await connection.declare(AMQPQueue(name: Names.Queue.dead))
        try await connection.bind(.queue(Names.Queue.dead, to: Names.Exchange.dead))
        _ = try await connection.declare(AMQPQueue(name: Names.Queue.planGet))
        try await connection.bind(.queue(Names.Queue.planGet, to: Names.Exchange.internal, routingKey: Names.Queue.planGet))
    }

    /// Declares a process's own exclusive queue on `hyperion.internal` (a stage queue or a
    /// scheduler's events queue). Exclusive: a second process with the same id fails loudly.
    public static func declareOwnQueue(_ name: String, on connection: AMQPConnection) async throws(AMQPError) {
        _ = try await connection.declare(AMQPQueue(name: name, durable: false, exclusive: true))
        try await connection.bind(.queue(name, to: Names.Exchange.internal, routingKey: name))
    }

    /// Dead-letters a message with a reason (DESIGN.md §3): publish it to `hyperion.dead` with
    /// `x-hyperion-error`, confirmed; the caller then acks the original.
    public static func deadLetter(_ message: AMQPMessage, reason: String, on connection: AMQPConnection) async throws(AMQPError) {
        var copy = message
        var headers = copy.properties.headers ?? [:]
        headers[Names.Header.error] = .string(reason)
        copy.properties.headers = headers
        try await connection.publishConfirmed(copy, exchange: Names.Exchange.dead, routingKey: "")
    }
}
