import CRabbitMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A minimal publish/consume loop straight on rabbitmq-c: the yardstick `hyperion bench amqp`
/// compares this library against, measured in the same run. Not for production use: no error
/// recovery, blocking calls on threads of its own.
public enum RawRabbitMQBaseline {
    /// Publishes `messages` bodies of `bodyBytes` on one connection while another consumes them with
    /// manual acks (prefetch `prefetchCount`); with `confirmWindow` the publisher uses publisher
    /// confirms and keeps at most that many unconfirmed. Returns consumed messages per second.
    public static func throughput(
        url: AMQPURL, queue: String, bodyBytes: Int, messages: Int, prefetchCount: UInt16, confirmWindow: Int?
    ) async throws(AMQPError) -> Double {
        let consumerReady = Promise<Void>()
        let consumed = Promise<ContinuousClock.Instant>()
        let published = Promise<ContinuousClock.Instant>()
        try startThread(name: "raw-consumer") {
            do throws(AMQPError) {
                let connection = try RawConnection(url: url)
                try connection.startConsumer(queue: queue, prefetchCount: prefetchCount, noAck: false)
                consumerReady.succeed(())
                for _ in 0..<messages { try connection.ack(connection.receive()) }
                consumed.succeed(ContinuousClock.now)
            } catch {
                consumerReady.fail(error)
                consumed.fail(error)
            }
        }
        try await consumerReady.value()
        try startThread(name: "raw-publisher") {
            do throws(AMQPError) {
                let connection = try RawConnection(url: url)
                if confirmWindow != nil { try connection.selectConfirms() }
                let body = [UInt8](repeating: 0x5A, count: bodyBytes)
                published.succeed(ContinuousClock.now)
                var unconfirmed = 0
                for _ in 0..<messages {
                    try connection.publish(body, routingKey: queue)
                    if let window = confirmWindow {
                        unconfirmed += 1
                        while unconfirmed >= window { unconfirmed -= try connection.awaitConfirms() }
                    }
                }
                while unconfirmed > 0 { unconfirmed -= try connection.awaitConfirms() }
            } catch {
                published.fail(error)
                consumed.fail(error)
            }
        }
        let start = try await published.value()
        let end = try await consumed.value()
        return Double(messages) / (end - start).seconds
    }

    /// Publishes one message at a time and waits for its delivery (manual ack) on a second
    /// connection; returns each publish → delivery time in seconds.
    public static func hopSeconds(url: AMQPURL, queue: String, bodyBytes: Int, samples: Int) async throws(AMQPError)
        -> [Double]
    {
        let result = Promise<[Double]>()
        try startThread(name: "raw-latency") {
            do throws(AMQPError) {
                let publisher = try RawConnection(url: url)
                let consumer = try RawConnection(url: url)
                try consumer.startConsumer(queue: queue, prefetchCount: 10, noAck: false)
                let body = [UInt8](repeating: 0x5A, count: bodyBytes)
                var hops: [Double] = []
                hops.reserveCapacity(samples)
                for _ in 0..<samples {
                    let start = ContinuousClock.now
                    try publisher.publish(body, routingKey: queue)
                    let tag = try consumer.receive()
                    hops.append((ContinuousClock.now - start).seconds)
                    try consumer.ack(tag)
                }
                result.succeed(hops)
            } catch {
                result.fail(error)
            }
        }
        return try await result.value()
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) * 1e-18
    }
}

/// One rabbitmq-c connection with channel 1 open, used by one thread only.
private final class RawConnection {
    let state: amqp_connection_state_t

    init(url: AMQPURL) throws(AMQPError) {
        guard let state = amqp_new_connection() else { throw .connectionFailed(url: url.description, reason: "out of memory") }
        self.state = state
        guard let socket = amqp_tcp_socket_new(state) else {
            amqp_destroy_connection(state)
            throw .connectionFailed(url: url.description, reason: "cannot create socket")
        }
        let opened = amqp_socket_open(socket, url.host, Int32(url.port))
        guard opened == AMQP_STATUS_OK.rawValue else {
            amqp_destroy_connection(state)
            throw .connectionFailed(url: url.description, reason: ConnectionCore.describe(opened))
        }
        var properties = amqp_empty_table
        let login = hyperion_amqp_login_plain(state, url.virtualHost, 0, 131_072, 0, &properties, url.user, url.password)
        if let error = ConnectionCore.error(from: login) {
            amqp_destroy_connection(state)
            throw .connectionFailed(url: url.description, reason: error.description)
        }
        amqp_channel_open(state, 1)
        try check()
    }

    deinit {
        _ = amqp_channel_close(state, 1, AMQP_REPLY_SUCCESS)
        _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        amqp_destroy_connection(state)
    }

    private func check() throws(AMQPError) {
        if let error = ConnectionCore.error(from: amqp_get_rpc_reply(state)) { throw error }
    }

    func startConsumer(queue: String, prefetchCount: UInt16, noAck: Bool) throws(AMQPError) {
        amqp_basic_qos(state, 1, 0, prefetchCount, 0)
        try check()
        queue.withCString { name in
            _ = amqp_basic_consume(state, 1, amqp_cstring_bytes(name), amqp_empty_bytes, 0, noAck ? 1 : 0, 0, amqp_empty_table)
        }
        try check()
    }

    func selectConfirms() throws(AMQPError) {
        amqp_confirm_select(state, 1)
        try check()
    }

    func publish(_ body: [UInt8], routingKey: String) throws(AMQPError) {
        let status = routingKey.withCString { key in
            body.withUnsafeBytes { bytes in
                amqp_basic_publish(
                    state, 1, amqp_empty_bytes, amqp_cstring_bytes(key), 0, 0, nil,
                    amqp_bytes_t(len: bytes.count, bytes: UnsafeMutableRawPointer(mutating: bytes.baseAddress)))
            }
        }
        guard status == AMQP_STATUS_OK.rawValue else { throw .library(status: status, message: ConnectionCore.describe(status)) }
    }

    private var confirmedUpTo: UInt64 = 0

    /// Waits for the next basic.ack; returns how many publishes it confirms.
    func awaitConfirms() throws(AMQPError) -> Int {
        var frame = amqp_frame_t()
        while true {
            amqp_maybe_release_buffers(state)
            let status = amqp_simple_wait_frame(state, &frame)
            guard status == AMQP_STATUS_OK.rawValue else { throw .library(status: status, message: ConnectionCore.describe(status)) }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD), frame.payload.method.id == Method.basicAck,
                let ack = frame.payload.method.decoded?.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            else { continue }
            let count = ack.multiple != 0 ? Int(ack.delivery_tag - confirmedUpTo) : 1
            confirmedUpTo = max(confirmedUpTo, ack.delivery_tag)
            return count
        }
    }

    /// Waits for the next delivery (its body copied out, as any consumer would) and returns its tag.
    func receive() throws(AMQPError) -> UInt64 {
        amqp_maybe_release_buffers(state)
        var envelope = amqp_envelope_t()
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        let reply = amqp_consume_message(state, &envelope, &timeout, 0)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            throw ConnectionCore.error(from: reply) ?? .library(status: 0, message: "consume failed")
        }
        let body = envelope.message.body.array
        let tag = envelope.delivery_tag
        amqp_destroy_envelope(&envelope)
        return body.isEmpty && tag == 0 ? 0 : tag
    }

    func ack(_ tag: UInt64) throws(AMQPError) {
        let status = amqp_basic_ack(state, 1, tag, 0)
        guard status == AMQP_STATUS_OK.rawValue else { throw .library(status: status, message: ConnectionCore.describe(status)) }
    }
}
