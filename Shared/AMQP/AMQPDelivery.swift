/// A message delivered to a consumer, with the means to settle it.
///
/// `ack`, `nack` and `reject` only queue the frame for the connection's thread and return at once.
/// A delivery received before a reconnect can no longer be settled (its delivery tag belonged to
/// the old channel); settling it does nothing, and the broker redelivers it with `redelivered` set.
public struct AMQPDelivery: Sendable {
    public var message: AMQPMessage
    public var exchange: String
    public var routingKey: String
    public var redelivered: Bool
    public var deliveryTag: UInt64
    public var consumerTag: String
    let settler: Settler?

    public var body: [UInt8] { message.body }
    public var properties: AMQPProperties { message.properties }

    /// Tells the broker the message is handled; `multiple` also covers every earlier delivery.
    public func ack(multiple: Bool = false) {
        settler?.settle(.ack(multiple: multiple), tag: deliveryTag)
    }

    /// Hands the message back: requeued, or dead-lettered when the queue has a DLX and
    /// `requeue` is false.
    public func nack(requeue: Bool = true, multiple: Bool = false) {
        settler?.settle(.nack(requeue: requeue, multiple: multiple), tag: deliveryTag)
    }

    public func reject(requeue: Bool = true) {
        settler?.settle(.reject(requeue: requeue), tag: deliveryTag)
    }
}

/// Where a delivery's settlement goes: its channel, as it was opened when the message arrived.
struct Settler: Sendable {
    enum Kind: Sendable {
        case ack(multiple: Bool)
        case nack(requeue: Bool, multiple: Bool)
        case reject(requeue: Bool)
    }

    let commands: CommandQueue
    let channel: UInt16
    /// Distinguishes this opening of the channel from later ones (after a reconnect or a broker close).
    let epoch: UInt64

    func settle(_ kind: Kind, tag: UInt64) {
        let channel = channel
        let epoch = epoch
        commands.enqueue { core in core.settle(kind, tag: tag, channel: channel, epoch: epoch) }
    }
}
