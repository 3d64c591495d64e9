import AMQP
import Testing

/// A direct reply-to client publishes its request on the channel that consumes the replies; with
/// `confirmsPublishes` that channel is in confirm mode, so a full `reject-publish` queue is
/// reported to the client (a nack) instead of dropping the request silently.
@Suite("Confirmed publishes on a reply channel")
struct ReplyChannelConfirmTests {
    @Test("a full reject-publish queue nacks the publish; replies still arrive on the same channel")
    func fullQueueNacks() async throws {
        let connection = try await TestBroker.connect("reply-confirms")
        let queue = TestBroker.uniqueName("bounded-requests")
        var bounded = AMQPQueue(name: queue, durable: false, exclusive: true)
        bounded.maxLength = 2
        bounded.overflow = .rejectPublish
        _ = try await connection.declare(bounded)
        let replies = try await connection.consume(
            queue: AMQPRPCClient.directReplyQueue, prefetchCount: 0, noAck: true, confirmsPublishes: true)
        var request = AMQPMessage(body: Array("request".utf8))
        request.properties.replyTo = AMQPRPCClient.directReplyQueue
        try await connection.publishConfirmed(request, exchange: "", routingKey: queue, onChannelOf: replies.tag)
        try await connection.publishConfirmed(request, exchange: "", routingKey: queue, onChannelOf: replies.tag)
        await #expect(throws: AMQPError.nacked) {
            try await connection.publishConfirmed(request, exchange: "", routingKey: queue, onChannelOf: replies.tag)
        }
        // The server side answers one taken request through the broker's reply-to address.
        let server = try await connection.consume(queue: queue, prefetchCount: 1)
        var answered = false
        for try await delivery in server {
            if let replyTo = delivery.properties.replyTo {
                try await connection.publishConfirmed(AMQPMessage(body: Array("reply".utf8)), routingKey: replyTo)
            }
            delivery.ack()
            answered = true
            break
        }
        #expect(answered)
        var reply: [UInt8]? = nil
        for try await delivery in replies {
            reply = delivery.body
            break
        }
        #expect(reply == Array("reply".utf8))
        await connection.close()
    }
}
