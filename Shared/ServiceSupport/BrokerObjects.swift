import AMQP
import Messages

/// The shared broker objects of docs/design.md §3, declared identically by every service so that
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

    /// Which service is declaring: each declares only what its broker permissions allow
    /// (a non-passive declare needs configure permission even when the object exists).
    public enum Role: Sendable {
        case scheduler, planner, worker
    }

    /// Declares the shared objects `role` is responsible for, with their bindings.
    public static func declareShared(
        for role: Role, on connection: AMQPConnection, ingressMaxLength: Int64 = defaultIngressMaxLength
    ) async throws(AMQPError) {
        let names: Set<String>
        switch role {
        case .scheduler: names = Set(exchanges.map(\.name))
        case .planner, .worker:
            names = [Names.Exchange.internal, Names.Exchange.plan, Names.Exchange.telemetry, Names.Exchange.dead]
        }
        for exchange in exchanges where names.contains(exchange.name) { try await connection.declare(exchange) }
        switch role {
        case .scheduler:
            _ = try await connection.declare(ingressQueue(maxLength: ingressMaxLength))
            try await connection.bind(.queue(Names.Queue.ingress, to: Names.Exchange.ingress, routingKey: Names.Queue.ingress))
            _ = try await connection.declare(AMQPQueue(name: Names.Queue.dead))
            try await connection.bind(.queue(Names.Queue.dead, to: Names.Exchange.dead))
        case .planner:
            _ = try await connection.declare(AMQPQueue(name: Names.Queue.planGet))
            try await connection.bind(.queue(Names.Queue.planGet, to: Names.Exchange.internal, routingKey: Names.Queue.planGet))
        case .worker:
            break
        }
    }

    /// Declares a scheduler's events queue: exclusive to its connection, bound to
    /// `hyperion.internal` under its own name.
    public static func declareEventsQueue(_ name: String, on connection: AMQPConnection) async throws(AMQPError) {
        _ = try await connection.declare(AMQPQueue(name: name, durable: false, exclusive: true))
        try await connection.bind(.queue(name, to: Names.Exchange.internal, routingKey: name))
    }

    /// Declares a stage worker's queue. Not exclusive, because schedulers read its depth with a
    /// passive declare (RabbitMQ refuses that on another connection's exclusive queue); instead it
    /// auto-deletes when its consumer goes (a worker that loses its connection loses its steps)
    /// and the worker consumes it exclusively (a duplicate node id fails loudly at start).
    public static func declareStageQueue(_ name: String, on connection: AMQPConnection) async throws(AMQPError) {
        _ = try await connection.declare(AMQPQueue(name: name, durable: false, exclusive: false, autoDelete: true))
        try await connection.bind(.queue(name, to: Names.Exchange.internal, routingKey: name))
    }

    /// Declares an emulated link's queue (docs/design.md §11). Both the `link-emulator` and the workers
    /// that send through it declare it, so nothing sent before the link process starts is lost;
    /// it outlives a link process's restart (not auto-delete), which then resumes the backlog.
    public static func declareLinkQueue(_ name: String, on connection: AMQPConnection) async throws(AMQPError) {
        _ = try await connection.declare(AMQPQueue(name: name, durable: false, exclusive: false, autoDelete: false))
        try await connection.bind(.queue(name, to: Names.Exchange.internal, routingKey: name))
    }

    /// Declares an exclusive subscription queue `name` bound to `exchange` with `routingKey`.
    ///
    /// Named by the caller (see `Names.Queue.subscription`) rather than by the server, so the
    /// connection declares the same queue again after a reconnect and its consumer resumes.
    public static func declareSubscription(
        _ name: String, to exchange: String, routingKey: String = "", on connection: AMQPConnection
    ) async throws(AMQPError) {
        _ = try await connection.declare(AMQPQueue(name: name, durable: false, exclusive: true, autoDelete: true))
        try await connection.bind(.queue(name, to: exchange, routingKey: routingKey))
    }

    /// Dead-letters a message with a reason (docs/design.md §3): publish it to `hyperion.dead` with
    /// `x-hyperion-error`, confirmed; the caller then acks the original.
    public static func deadLetter(_ message: AMQPMessage, reason: String, on connection: AMQPConnection) async throws(AMQPError) {
        var copy = message
        var headers = copy.properties.headers ?? [:]
        headers[Names.Header.error] = .string(reason)
        copy.properties.headers = headers
        try await connection.publishConfirmed(copy, exchange: Names.Exchange.dead, routingKey: "")
    }
}
