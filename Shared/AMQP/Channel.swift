/// One AMQP channel: its pending synchronous calls, confirm bookkeeping and the message being
/// assembled from method, header and body frames.
final class Channel {
    enum Role { case control, confirm, consumer }

    struct Incoming {
        enum Kind {
            case delivery(consumerTag: String, deliveryTag: UInt64, redelivered: Bool)
            case returned(replyCode: UInt16, replyText: String)
        }
        var kind: Kind
        var exchange: String
        var routingKey: String
        var properties = AMQPProperties()
        var bodySize = 0
        var body: [UInt8] = []
    }

    let id: UInt16
    let role: Role
    /// Publishes on this channel are confirmed: always for the confirm channel, and for a consumer
    /// channel whose consumer asked for it (direct reply-to clients).
    var confirmsPublishes: Bool
    var isOpen = false
    /// Which opening of this channel id is current; deliveries remember it so stale acks are dropped.
    var epoch: UInt64 = 0
    /// Sent, awaiting replies in order.
    var sent: [ChannelCall] = []
    /// Not sent yet: on the control channel one synchronous call runs at a time, so a failing
    /// declare cannot take a later, unrelated call down with its channel.
    var waiting: [ChannelCall] = []
    var nextPublishSeq: UInt64 = 1
    var lowestUnconfirmed: UInt64 = 1
    var confirms: [UInt64: Promise<Void>] = [:]
    var pendingReturn: AMQPReturnedMessage?
    var consumer: ConsumerRecord?
    var incoming: Incoming?
    /// Closed by us on purpose: the id is freed when close-ok arrives.
    var releasing = false
    var acks = AckCoalescer()

    init(id: UInt16, role: Role) {
        self.id = id
        self.role = role
        self.confirmsPublishes = role == .confirm
    }

    var isIdle: Bool { isOpen && sent.isEmpty && waiting.isEmpty }
}

/// A synchronous AMQP method sent on a channel, and what to do with the broker's reply.
/// `expect == 0` marks an asynchronous method (a publish) queued behind synchronous ones.
final class ChannelCall {
    let expect: UInt32
    let send: (ConnectionCore, UInt16) -> Int32
    let onReply: (UnsafeMutableRawPointer?) -> Void
    let onError: (AMQPError) -> Void

    init(
        expect: UInt32, send: @escaping (ConnectionCore, UInt16) -> Int32,
        onReply: @escaping (UnsafeMutableRawPointer?) -> Void = { _ in },
        onError: @escaping (AMQPError) -> Void = { _ in }
    ) {
        self.expect = expect
        self.send = send
        self.onReply = onReply
        self.onError = onError
    }
}
