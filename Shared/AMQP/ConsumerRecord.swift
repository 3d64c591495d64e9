/// Receives a consumer's deliveries on the connection's thread; must not block.
protocol DeliverySink: Sendable {
    func deliver(_ delivery: AMQPDelivery)
    /// `nil` ends the consumer normally (cancelled by its owner or the connection closed).
    func finish(_ error: AMQPError?)
    /// The connection dropped; the consumer will be restarted after the reconnect.
    func interrupted(_ error: AMQPError)
}

extension DeliverySink {
    func interrupted(_ error: AMQPError) {}
}

/// What a caller asks for when starting a consumer.
struct ConsumerSpec: Sendable {
    let queue: String
    let tag: String
    let prefetchCount: UInt16
    let noAck: Bool
    let exclusive: Bool
    let arguments: AMQPTable
    let sink: any DeliverySink
    /// Puts the consumer's channel in confirm mode, for publishes that must go out on it.
    var confirmsPublishes = false
}

/// A consumer as the thread knows it, kept so it can be started again after a reconnect.
final class ConsumerRecord {
    let queue: String
    let tag: String
    let prefetchCount: UInt16
    let noAck: Bool
    let exclusive: Bool
    let arguments: AMQPTable
    let sink: any DeliverySink
    let confirmsPublishes: Bool
    /// Resolved by the first consume-ok; nil once the consumer has started.
    var started: Promise<Void>?
    var active = false
    /// Cut off by a dropped connection: restore() subscribes it again, once.
    var needsRestore = false

    init(_ spec: ConsumerSpec) {
        queue = spec.queue
        tag = spec.tag
        prefetchCount = spec.prefetchCount
        noAck = spec.noAck
        exclusive = spec.exclusive
        arguments = spec.arguments
        sink = spec.sink
        confirmsPublishes = spec.confirmsPublishes
    }
}
