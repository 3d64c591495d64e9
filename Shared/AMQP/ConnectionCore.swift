import CRabbitMQ
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the thread reports to the public handle.
struct ConnectionOutlets: Sendable {
    let events: AsyncStream<AMQPConnectionEvent>.Continuation
    let returns: AsyncStream<AMQPReturnedMessage>.Continuation
}

/// Everything that must stay on one connection's thread: the rabbitmq-c state and all protocol
/// bookkeeping. Reached only through `CommandQueue` commands and the thread's own loop.
final class ConnectionCore {
    let settings: ConnectionSettings
    let commands: CommandQueue
    let outlets: ConnectionOutlets
    var logger: Logger { settings.logger }

    private(set) var state: amqp_connection_state_t?
    let arena = Arena()
    private var channels: [UInt16: Channel] = [:]
    private var freeChannelIDs: [UInt16] = []
    private var nextChannelID: UInt16 = 3
    private var epochCounter: UInt64 = 0
    private var terminated = false
    /// Why the connection last dropped: what consumers see when reconnect is disabled.
    private var lastDropError: AMQPError?
    /// Channels whose consumers queued acks during the current batch of commands.
    private var channelsWithAcks: [Channel] = []
    private var topology: [TopologyItem] = []
    /// Names the broker gave to queues declared without one: they do not survive the connection.
    private var serverNamedQueues: Set<String> = []
    private let controlChannel = Channel(id: 1, role: .control)
    private let confirmChannel = Channel(id: 2, role: .confirm)

    enum TopologyItem {
        case exchange(AMQPExchange)
        case queue(AMQPQueue)
        case binding(AMQPBinding)
    }

    init(settings: ConnectionSettings, commands: CommandQueue, outlets: ConnectionOutlets) {
        self.settings = settings
        self.commands = commands
        self.outlets = outlets
        channels[1] = controlChannel
        channels[2] = confirmChannel
    }

    deinit {
        if let state { amqp_destroy_connection(state) }
    }

    // MARK: - Thread loop

    /// Runs until the connection is closed by its owner, or dropped with reconnect disabled.
    func run(connected: Promise<Void>) {
        do {
            try connect()
        } catch {
            connected.fail(error)
            terminate(error: error)
            return
        }
        connected.succeed(())
        var spunSinceWork = false
        while true {
            let batch = commands.drain()
            for command in batch { command(self) }
            flushAcks()
            if commands.isClosed {
                for command in commands.drain() { command(self) }
                flushAcks()
                closeGracefully()
                return
            }
            if state == nil {
                if settings.reconnect.enabled, reconnect() { continue }
                // Closed by its owner while reconnecting, or dropped with reconnect disabled.
                terminate(error: commands.isClosed ? .connectionClosed : lastDropError ?? .connectionLost(reason: "dropped"))
                return
            }
            let framesRead = readFrames(limit: 512)
            if !batch.isEmpty || framesRead > 0 || hasBufferedInput {
                spunSinceWork = false
                continue
            }
            // Traffic comes in bursts and request/reply hops: spin briefly before paying for a
            // sleep and a wake-up (which would dominate a sub-millisecond hop).
            if !spunSinceWork {
                spunSinceWork = true
                if spinUntilWork() { continue }
            }
            if commands.prepareToSleep() {
                // Bounded sleeps keep heartbeats flowing: the next readFrames sends one when due.
                waitForInput(timeoutMilliseconds: pollIntervalMilliseconds)
                commands.wokeUp()
            }
        }
    }

    /// Returns true when work arrived within the spin window.
    private func spinUntilWork() -> Bool {
        let spinNanoseconds = settings.configuration.spinMicroseconds * 1000
        guard spinNanoseconds > 0, let state else { return false }
        var socket = pollfd(fd: amqp_get_sockfd(state), events: Int16(POLLIN), revents: 0)
        let start = ContinuousClock.now
        let limit = Duration.nanoseconds(spinNanoseconds)
        repeat {
            if commands.hasCommands || poll(&socket, 1, 0) > 0 { return true }
            sched_yield()
        } while ContinuousClock.now - start < limit
        return false
    }

    private var hasBufferedInput: Bool {
        guard let state else { return false }
        return amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0
    }

    private var pollIntervalMilliseconds: Int32 {
        let heartbeat = settings.heartbeatSeconds
        return heartbeat > 0 ? Int32(max(50, min(500, heartbeat * 250))) : 500
    }

    private func waitForInput(timeoutMilliseconds: Int32) {
        var fds = [pollfd(fd: commands.wakeReadFD, events: Int16(POLLIN), revents: 0)]
        if let state { fds.append(pollfd(fd: amqp_get_sockfd(state), events: Int16(POLLIN), revents: 0)) }
        _ = poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
    }

    /// Reads what has arrived without blocking; returns how many frames were handled.
    private func readFrames(limit: Int) -> Int {
        var count = 0
        var frame = amqp_frame_t()
        var immediately = timeval(tv_sec: 0, tv_usec: 0)
        while count < limit, let state {
            let status = amqp_simple_wait_frame_noblock(state, &frame, &immediately)
            if status == AMQP_STATUS_TIMEOUT.rawValue { break }
            guard status == AMQP_STATUS_OK.rawValue else {
                drop(AMQPError.connectionLost(reason: ConnectionCore.describe(status)))
                break
            }
            count += 1
            handle(frame)
            if let current = self.state { amqp_maybe_release_buffers_on_channel(current, frame.channel) }
        }
        return count
    }

    // MARK: - Connecting

    private func connect() throws(AMQPError) {
        let url = settings.url
        guard let newState = amqp_new_connection() else {
            throw .connectionFailed(url: url.description, reason: "out of memory")
        }
        var keep = false
        defer { if !keep { amqp_destroy_connection(newState) } }
        let socket = url.isTLS ? try tlsSocket(on: newState) : amqp_tcp_socket_new(newState)
        guard let socket else { throw .connectionFailed(url: url.description, reason: "cannot create socket") }
        var timeout = timeval(tv_sec: Int(settings.connectTimeoutSeconds), tv_usec: 0)
        _ = amqp_set_handshake_timeout(newState, &timeout)
        let opened = amqp_socket_open_noblock(socket, url.host, Int32(url.port), &timeout)
        guard opened == AMQP_STATUS_OK.rawValue else {
            if opened == AMQP_STATUS_SOCKET_ERROR.rawValue || opened == AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED.rawValue
                || opened == AMQP_STATUS_TIMEOUT.rawValue
            {
                throw .brokerUnreachable(url: url.description, reason: ConnectionCore.describeOpenFailure(opened, url: url))
            }
            throw .connectionFailed(url: url.description, reason: ConnectionCore.describeOpenFailure(opened, url: url))
        }
        var properties = clientProperties()
        let reply = hyperion_amqp_login_plain(
            newState, url.virtualHost, 0, 131_072, Int32(settings.heartbeatSeconds), &properties, url.user,
            url.password)
        arena.reset()
        if let error = ConnectionCore.error(from: reply) {
            if case .connectionClosedByBroker(let code, let text) = error, code == 403 || code == 530 {
                // 403 ACCESS_REFUSED: user or password; 530 NOT_ALLOWED: the virtual host.
                throw .loginRefused(
                    url: url.description,
                    reason: "\(code) \(text) (check the user, password and virtual host in the URL)")
            }
            var reason = error.description
            if case .library(let status, _) = error {
                if !url.isTLS {
                    // A TLS listener answers the plain AMQP header by closing the socket.
                    reason += " (the broker ended the AMQP handshake: if this port expects TLS, use amqps://)"
                } else if status == AMQP_STATUS_SSL_ERROR.rawValue {
                    // With TLS 1.3 a refused client certificate shows only after the handshake.
                    reason += " (the broker ended the TLS session: does it require a client certificate, certfile and keyfile?)"
                }
            }
            throw .connectionFailed(url: url.description, reason: reason)
        }
        // Only the closing handshake uses rabbitmq-c's blocking RPC; never wait on it forever.
        var closeTimeout = timeval(tv_sec: 5, tv_usec: 0)
        _ = amqp_set_rpc_timeout(newState, &closeTimeout)
        keep = true
        state = newState
        logger.debug("AMQP connected", metadata: ["url": "\(url)", "name": "\(settings.connectionName)"])
    }

    /// An SSL socket set up from the URL's TLS options. A certificate file that cannot be used is
    /// an error naming it, found before any network traffic.
    private func tlsSocket(on state: amqp_connection_state_t) throws(AMQPError) -> OpaquePointer {
        let url = settings.url
        func failure(_ reason: String) -> AMQPError { .connectionFailed(url: url.description, reason: reason) }
        guard let socket = amqp_ssl_socket_new(state) else { throw failure("cannot create a TLS socket") }
        let options = url.tls
        if let ca = options.caCertificatePath ?? settings.tlsCACertificatePath {
            guard amqp_ssl_socket_set_cacert(socket, ca) == AMQP_STATUS_OK.rawValue else {
                throw failure("cacertfile: cannot load CA certificates from '\(ca)' (a readable PEM file?)")
            }
        }
        if let certificate = options.clientCertificatePath, let key = options.clientKeyPath {
            guard amqp_ssl_socket_set_key(socket, certificate, key) == AMQP_STATUS_OK.rawValue else {
                throw failure(
                    "certfile, keyfile: cannot load the client certificate '\(certificate)' with key '\(key)' "
                        + "(readable PEM files, an unencrypted key that matches the certificate?)")
            }
        }
        amqp_ssl_socket_set_verify_peer(socket, options.verifyPeer ? 1 : 0)
        amqp_ssl_socket_set_verify_hostname(socket, options.verifyPeer ? 1 : 0)
        return socket
    }

    /// Why a socket did not open, with what to check for the TLS failures.
    static func describeOpenFailure(_ status: Int32, url: AMQPURL) -> String {
        let text = describe(status)
        switch status {
        case AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue:
            return "\(text): the broker's certificate is not signed by a trusted CA (check cacertfile)"
        case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue:
            return "\(text): the broker's certificate does not name host '\(url.host)'"
        case AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue:
            return "\(text): TLS handshake failed (is port \(url.port) a TLS listener? is the CA right? "
                + "does the broker require a client certificate, certfile and keyfile?)"
        case AMQP_STATUS_SOCKET_ERROR.rawValue:
            return "connection refused at \(url.host):\(url.port): is the broker up?"
        case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED.rawValue:
            return "cannot resolve host '\(url.host)'"
        case AMQP_STATUS_TIMEOUT.rawValue:
            return "no answer from \(url.host):\(url.port) in time: is the broker up, and the port right?"
        default:
            return text
        }
    }

    private func clientProperties() -> amqp_table_t {
        arena.table([
            "connection_name": .string(settings.connectionName),
            "product": .string("Hyperion"),
            "capabilities": .table([
                "consumer_cancel_notify": .bool(true),
                "publisher_confirms": .bool(true),
                "basic.nack": .bool(true),
                "exchange_exchange_bindings": .bool(true),
                "connection.blocked": .bool(true),
                "authentication_failure_close": .bool(true),
            ]),
        ])
    }

    /// Backs off and reconnects, then declares the recorded topology and restarts consumers.
    /// Returns false when the owner closed the connection meanwhile.
    private func reconnect() -> Bool {
        var delaySeconds = settings.reconnect.initialDelaySeconds
        while !commands.isClosed {
            sleepInterruptibly(seconds: delaySeconds)
            if commands.isClosed { return false }
            do {
                try connect()
                restore()
                logger.info("AMQP reconnected", metadata: ["url": "\(settings.url)"])
                outlets.events.yield(.reconnected)
                return true
            } catch {
                logger.debug("AMQP reconnect failed", metadata: ["error": "\(error)"])
                delaySeconds = min(delaySeconds * 2, settings.reconnect.maxDelaySeconds)
            }
        }
        return false
    }

    private func sleepInterruptibly(seconds: Double) {
        var fds = [pollfd(fd: commands.wakeReadFD, events: Int16(POLLIN), revents: 0)]
        if poll(&fds, 1, Int32(seconds * 1000)) > 0 { commands.wokeUp() }  // drain, or the next sleep is skipped
    }

    /// Declares the recorded topology again, then (once the broker has answered the last
    /// declaration) restarts consumers: an exclusive queue must exist again before its consumer.
    private func restore() {
        let items = topology
        guard !items.isEmpty else {
            restoreConsumers()
            return
        }
        let replay: [ChannelCall] = items.enumerated().map { index, item in
            let isLast = index == items.count - 1
            return ChannelCall(
                expect: ConnectionCore.reply(to: item),
                send: { core, channel in core.send(item, passive: false, channel: channel) },
                onReply: { [unowned self] _ in if isLast { restoreConsumers() } },
                onError: { [unowned self] error in
                    logger.warning("AMQP re-declare failed", metadata: ["error": "\(error)"])
                    if isLast, state != nil { restoreConsumers() }
                })
        }
        controlChannel.waiting.insert(contentsOf: replay, at: 0)
        for channel in channels.values { pump(channel) }
    }

    /// Subscribes again the consumers the drop cut off, once each. A consumer started after the
    /// reconnect (while the topology was still being replayed) already has its own subscription:
    /// a second `basic.consume` with its tag would make the broker close its channel.
    private func restoreConsumers() {
        for channel in channels.values {
            guard let consumer = channel.consumer, consumer.needsRestore else { continue }
            consumer.needsRestore = false
            submitConsumerSetup(consumer, on: channel)
        }
    }

    // MARK: - Losing and closing

    /// Tears down the socket after a failure; everything in flight fails with `error`, unsent calls
    /// wait for the reconnect.
    func drop(_ error: AMQPError) {
        guard let current = state else { return }
        state = nil
        lastDropError = error
        amqp_destroy_connection(current)
        serverNamedQueues.removeAll()  // gone with the connection
        logger.warning("AMQP connection lost", metadata: ["error": "\(error)"])
        for channel in channels.values {
            channel.isOpen = false
            channel.incoming = nil
            channel.pendingReturn = nil
            let sent = channel.sent
            channel.sent.removeAll()
            for call in sent { call.onError(error) }
            failConfirms(on: channel, error: error)
            if channel.role == .consumer {
                // Started consumers are restarted by restore(); the rest fail and free their channel.
                discardWaiting(on: channel, error: error)
                if let consumer = channel.consumer, consumer.active {
                    consumer.needsRestore = true
                    consumer.sink.interrupted(error)
                    continue
                }
                channel.consumer?.started?.fail(error)
                channel.consumer = nil
                channels[channel.id] = nil
                freeChannelIDs.append(channel.id)
            }
        }
        outlets.events.yield(.disconnected(error))
    }

    private func discardWaiting(on channel: Channel, error: AMQPError) {
        let waiting = channel.waiting
        channel.waiting.removeAll()
        for call in waiting { call.onError(error) }
    }

    private func failConfirms(on channel: Channel, error: AMQPError) {
        let confirms = channel.confirms
        channel.confirms.removeAll()
        for (_, promise) in confirms { promise.fail(error) }
        channel.nextPublishSeq = 1
        channel.lowestUnconfirmed = 1
    }

    private func closeGracefully() {
        if let current = state {
            _ = amqp_connection_close(current, AMQP_REPLY_SUCCESS)
            state = nil
            amqp_destroy_connection(current)
        }
        terminate(error: .connectionClosed)
    }

    /// Fails everything still waiting and ends every stream; the thread exits after this.
    private func terminate(error: AMQPError) {
        if let current = state {
            state = nil
            amqp_destroy_connection(current)
        }
        terminated = true
        commands.close()
        for channel in channels.values {
            let calls = channel.sent + channel.waiting
            channel.sent.removeAll()
            channel.waiting.removeAll()
            for call in calls { call.onError(error) }
            failConfirms(on: channel, error: error)
            if let consumer = channel.consumer {
                channel.consumer = nil
                consumer.sink.finish(error == .connectionClosed ? nil : error)
            }
        }
        for command in commands.drain() { command(self) }
        outlets.events.finish()
        outlets.returns.finish()
    }

    // MARK: - Channels

    private func openChannel(_ channel: Channel) {
        guard let state else { return }
        epochCounter += 1
        channel.epoch = epochCounter
        channel.isOpen = true
        channel.incoming = nil
        channel.acks = AckCoalescer()
        var open = amqp_channel_open_t()
        var status = amqp_send_method(state, channel.id, Method.channelOpen, &open)
        channel.sent.append(ChannelCall(expect: Method.channelOpenOK, send: { _, _ in 0 }))
        if channel.confirmsPublishes, status == AMQP_STATUS_OK.rawValue {
            failConfirms(on: channel, error: .connectionLost(reason: "channel reopened"))
            var select = amqp_confirm_select_t()
            status = amqp_send_method(state, channel.id, Method.confirmSelect, &select)
            channel.sent.append(ChannelCall(expect: Method.confirmSelectOK, send: { _, _ in 0 }))
        }
        if status != AMQP_STATUS_OK.rawValue { drop(.connectionLost(reason: ConnectionCore.describe(status))) }
    }

    /// Sends waiting calls that may go now: after (re)opening the channel, and one synchronous
    /// call at a time.
    private func pump(_ channel: Channel) {
        while state != nil, !channel.waiting.isEmpty {
            if !channel.isOpen {
                openChannel(channel)
                continue
            }
            guard channel.sent.isEmpty else { return }
            let call = channel.waiting.removeFirst()
            let status = call.send(self, channel.id)
            arena.reset()
            if call.expect != 0 { channel.sent.append(call) }
            if status != AMQP_STATUS_OK.rawValue {
                if call.expect == 0 { call.onError(.connectionLost(reason: ConnectionCore.describe(status))) }
                drop(.connectionLost(reason: ConnectionCore.describe(status)))
                return
            }
        }
    }

    func submit(_ call: ChannelCall, on channel: Channel) {
        guard !terminated else {
            call.onError(.connectionClosed)
            return
        }
        channel.waiting.append(call)
        pump(channel)
    }

    func submitControl(_ call: ChannelCall) { submit(call, on: controlChannel) }

    private func newChannel(role: Channel.Role) -> Channel? {
        let id: UInt16
        if let free = freeChannelIDs.popLast() {
            id = free
        } else {
            let channelMax = state.map { amqp_get_channel_max($0) } ?? 0
            guard channelMax == 0 || Int32(nextChannelID) <= channelMax, nextChannelID < UInt16.max else { return nil }
            id = nextChannelID
            nextChannelID += 1
        }
        let channel = Channel(id: id, role: role)
        channels[id] = channel
        return channel
    }

    /// Closes a channel we no longer need; its id is reused after close-ok.
    private func release(_ channel: Channel, then done: @escaping () -> Void = {}) {
        channel.consumer = nil
        guard channel.isOpen, state != nil else {
            channels[channel.id] = nil
            freeChannelIDs.append(channel.id)
            done()
            return
        }
        channel.releasing = true
        discardWaiting(on: channel, error: .connectionClosed)
        submit(
            ChannelCall(
                expect: Method.channelCloseOK,
                send: { core, id in
                    var close = amqp_channel_close_t()
                    close.reply_code = UInt16(AMQP_REPLY_SUCCESS)
                    return amqp_send_method(core.state, id, Method.channelClose, &close)
                },
                onReply: { [unowned self] _ in
                    channels[channel.id] = nil
                    freeChannelIDs.append(channel.id)
                    done()
                },
                onError: { _ in done() }),
            on: channel)
    }

    // MARK: - Frames from the broker

    private func handle(_ frame: amqp_frame_t) {
        switch Int32(frame.frame_type) {
        case AMQP_FRAME_METHOD:
            handleMethod(frame.payload.method, channelID: frame.channel)
        case AMQP_FRAME_HEADER:
            guard let channel = channels[frame.channel], channel.incoming != nil else { return }
            if let decoded = frame.payload.properties.decoded {
                channel.incoming?.properties = AMQPProperties(decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee)
            }
            let size = Int(frame.payload.properties.body_size)
            channel.incoming?.bodySize = size
            channel.incoming?.body.reserveCapacity(size)
            if size == 0 { completeIncoming(on: channel) }
        case AMQP_FRAME_BODY:
            guard let channel = channels[frame.channel], channel.incoming != nil else { return }
            let fragment = frame.payload.body_fragment
            if let bytes = fragment.bytes, fragment.len > 0 {
                channel.incoming?.body.append(contentsOf: UnsafeRawBufferPointer(start: bytes, count: fragment.len))
            }
            if let incoming = channel.incoming, incoming.body.count >= incoming.bodySize { completeIncoming(on: channel) }
        default:
            break
        }
    }

    private func completeIncoming(on channel: Channel) {
        guard let incoming = channel.incoming else { return }
        channel.incoming = nil
        let message = AMQPMessage(body: incoming.body, properties: incoming.properties)
        switch incoming.kind {
        case let .delivery(consumerTag, deliveryTag, redelivered):
            guard let consumer = channel.consumer else { return }
            consumer.sink.deliver(
                AMQPDelivery(
                    message: message, exchange: incoming.exchange, routingKey: incoming.routingKey,
                    redelivered: redelivered, deliveryTag: deliveryTag, consumerTag: consumerTag,
                    settler: consumer.noAck ? nil : Settler(commands: commands, channel: channel.id, epoch: channel.epoch)))
        case let .returned(replyCode, replyText):
            let returned = AMQPReturnedMessage(
                replyCode: replyCode, replyText: replyText, exchange: incoming.exchange,
                routingKey: incoming.routingKey, message: message)
            if channel.confirmsPublishes {
                channel.pendingReturn = returned
            } else {
                outlets.returns.yield(returned)
            }
        }
    }

    private func handleMethod(_ method: amqp_method_t, channelID: UInt16) {
        let decoded = method.decoded
        func fields<T>(_ type: T.Type) -> T? { decoded?.assumingMemoryBound(to: T.self).pointee }

        if channelID == 0 {
            switch method.id {
            case Method.connectionClose:
                let close = fields(amqp_connection_close_t.self)
                var ok = amqp_connection_close_ok_t()
                if let state { _ = amqp_send_method(state, 0, Method.connectionCloseOK, &ok) }
                drop(
                    .connectionClosedByBroker(replyCode: close?.reply_code ?? 0, replyText: close?.reply_text.string ?? ""))
            case Method.connectionBlocked:
                outlets.events.yield(.blocked(reason: fields(amqp_connection_blocked_t.self)?.reason.string ?? ""))
            case Method.connectionUnblocked:
                outlets.events.yield(.unblocked)
            default:
                break
            }
            return
        }
        guard let channel = channels[channelID] else { return }
        switch method.id {
        case Method.basicDeliver:
            guard let deliver = fields(amqp_basic_deliver_t.self) else { return }
            channel.incoming = Channel.Incoming(
                kind: .delivery(
                    consumerTag: deliver.consumer_tag.string, deliveryTag: deliver.delivery_tag,
                    redelivered: deliver.redelivered != 0),
                exchange: deliver.exchange.string, routingKey: deliver.routing_key.string)
        case Method.basicReturn:
            guard let returned = fields(amqp_basic_return_t.self) else { return }
            channel.incoming = Channel.Incoming(
                kind: .returned(replyCode: returned.reply_code, replyText: returned.reply_text.string),
                exchange: returned.exchange.string, routingKey: returned.routing_key.string)
        case Method.basicAck:
            guard let ack = fields(amqp_basic_ack_t.self) else { return }
            settleConfirms(on: channel, upTo: ack.delivery_tag, multiple: ack.multiple != 0, nacked: false)
        case Method.basicNack:
            guard let nack = fields(amqp_basic_nack_t.self) else { return }
            settleConfirms(on: channel, upTo: nack.delivery_tag, multiple: nack.multiple != 0, nacked: true)
        case Method.basicCancel:
            // The broker cancelled this consumer (its queue was deleted, or it failed over).
            guard let cancel = fields(amqp_basic_cancel_t.self) else { return }
            if cancel.nowait == 0, let state {
                var ok = amqp_basic_cancel_ok_t()
                ok.consumer_tag = cancel.consumer_tag
                _ = amqp_send_method(state, channelID, Method.basicCancelOK, &ok)
            }
            if let consumer = channel.consumer {
                release(channel)
                consumer.sink.finish(.consumerCancelled(queue: consumer.queue))
            }
        case Method.channelClose:
            let close = fields(amqp_channel_close_t.self)
            let error = AMQPError.channelClosed(
                replyCode: close?.reply_code ?? 0, replyText: close?.reply_text.string ?? "",
                classID: close?.class_id ?? 0, methodID: close?.method_id ?? 0)
            var ok = amqp_channel_close_ok_t()
            if let state { _ = amqp_send_method(state, channelID, Method.channelCloseOK, &ok) }
            channelClosedByBroker(channel, error: error)
        case Method.channelFlow:
            var ok = amqp_channel_flow_ok_t()
            ok.active = fields(amqp_channel_flow_t.self)?.active ?? 1
            if let state { _ = amqp_send_method(state, channelID, Method.channelFlowOK, &ok) }
        default:
            guard !channel.sent.isEmpty else {
                logger.debug("AMQP unexpected method", metadata: ["method": "\(method.id)", "channel": "\(channelID)"])
                return
            }
            let call = channel.sent.removeFirst()
            if call.expect != method.id {
                logger.warning(
                    "AMQP reply out of order", metadata: ["expected": "\(call.expect)", "got": "\(method.id)"])
            }
            call.onReply(decoded)
            pump(channel)
        }
    }

    private func channelClosedByBroker(_ channel: Channel, error: AMQPError) {
        channel.isOpen = false
        channel.incoming = nil
        channel.pendingReturn = nil
        let sent = channel.sent
        let someoneWaited = !sent.isEmpty || !channel.confirms.isEmpty
        channel.sent.removeAll()
        for call in sent { call.onError(error) }
        failConfirms(on: channel, error: error)
        if channel.releasing {
            channels[channel.id] = nil
            freeChannelIDs.append(channel.id)
            return
        }
        if let consumer = channel.consumer {
            channel.consumer = nil
            channels[channel.id] = nil
            freeChannelIDs.append(channel.id)
            consumer.sink.finish(error)
            return
        }
        if !someoneWaited {
            // Nobody waited on this channel (e.g. an unconfirmed publish to a missing exchange).
            logger.warning("AMQP channel closed by broker", metadata: ["channel": "\(channel.id)", "error": "\(error)"])
        }
        pump(channel)
    }

    /// Settles publisher confirms; a `basic.return` just before an ack marks that message returned.
    private func settleConfirms(on channel: Channel, upTo tag: UInt64, multiple: Bool, nacked: Bool) {
        let returned = channel.pendingReturn
        channel.pendingReturn = nil
        func outcome(for seq: UInt64) -> Result<Void, AMQPError> {
            if nacked { return .failure(.nacked) }
            if seq == tag, let returned {
                return .failure(
                    .returned(
                        replyCode: returned.replyCode, replyText: returned.replyText, exchange: returned.exchange,
                        routingKey: returned.routingKey))
            }
            return .success(())
        }
        if multiple {
            var seq = channel.lowestUnconfirmed
            while seq <= tag {
                channel.confirms.removeValue(forKey: seq)?.resolve(outcome(for: seq))
                seq += 1
            }
            channel.lowestUnconfirmed = max(channel.lowestUnconfirmed, tag + 1)
        } else {
            channel.confirms.removeValue(forKey: tag)?.resolve(outcome(for: tag))
            while channel.lowestUnconfirmed < channel.nextPublishSeq,
                channel.confirms[channel.lowestUnconfirmed] == nil
            {
                channel.lowestUnconfirmed += 1
            }
        }
    }

    // MARK: - Operations (called by commands)

    func publish(
        _ message: AMQPMessage, exchange: String, routingKey: String, mandatory: Bool,
        confirm: Promise<Void>?, consumerTag: String? = nil
    ) {
        let channel: Channel
        if let consumerTag {
            guard let owner = channels.values.first(where: { $0.consumer?.tag == consumerTag }) else {
                confirm?.fail(.connectionLost(reason: "reply consumer is gone"))
                commands.publishDone(bytes: message.body.count)
                return
            }
            channel = owner
        } else {
            channel = confirm == nil ? controlChannel : confirmChannel
        }
        guard !terminated else {
            confirm?.fail(.connectionClosed)
            commands.publishDone(bytes: message.body.count)
            return
        }
        if channel.isIdle, state != nil {
            sendPublish(message, exchange: exchange, routingKey: routingKey, mandatory: mandatory, confirm: confirm, on: channel)
            return
        }
        // Behind a channel (re)open, confirm.select or a declare: keep the order.
        submit(
            ChannelCall(
                expect: 0,
                send: { core, _ in
                    core.sendPublish(
                        message, exchange: exchange, routingKey: routingKey, mandatory: mandatory, confirm: confirm,
                        on: channel)
                    return AMQP_STATUS_OK.rawValue
                },
                onError: { [commands] error in
                    // Never sent: the channel went away first.
                    confirm?.fail(error)
                    commands.publishDone(bytes: message.body.count)
                }), on: channel)
    }

    private func sendPublish(
        _ message: AMQPMessage, exchange: String, routingKey: String, mandatory: Bool, confirm: Promise<Void>?,
        on channel: Channel
    ) {
        defer { commands.publishDone(bytes: message.body.count) }
        guard let state else {
            confirm?.fail(.connectionLost(reason: "not connected"))
            return
        }
        var properties = arena.properties(message.properties)
        let status = message.body.withUnsafeBytes { body in
            amqp_basic_publish(
                state, channel.id, arena.bytes(exchange), arena.bytes(routingKey), mandatory ? 1 : 0, 0, &properties,
                amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
        }
        arena.reset()
        if let confirm {
            channel.confirms[channel.nextPublishSeq] = confirm
            channel.nextPublishSeq += 1
        }
        if status != AMQP_STATUS_OK.rawValue { drop(.connectionLost(reason: ConnectionCore.describe(status))) }
    }

    /// Single acks wait for the end of the current batch of commands (see `AckCoalescer`);
    /// everything else goes out at once, after the acks queued before it.
    func settle(_ kind: Settler.Kind, tag: UInt64, channel id: UInt16, epoch: UInt64) {
        guard let state, let channel = channels[id], channel.isOpen, channel.epoch == epoch else { return }
        if case .ack(multiple: false) = kind {
            if !channel.acks.hasPending { channelsWithAcks.append(channel) }
            channel.acks.add(tag)
            return
        }
        flushAcks(on: channel)
        guard self.state != nil else { return }
        let status: Int32
        switch kind {
        case let .ack(multiple):
            status = amqp_basic_ack(state, id, tag, multiple ? 1 : 0)
            channel.acks.sent(tag, multiple: multiple)
        case let .nack(requeue, multiple):
            status = amqp_basic_nack(state, id, tag, multiple ? 1 : 0, requeue ? 1 : 0)
            channel.acks.sent(tag, multiple: multiple)
        case let .reject(requeue):
            status = amqp_basic_reject(state, id, tag, requeue ? 1 : 0)
            channel.acks.sent(tag, multiple: false)
        }
        if status != AMQP_STATUS_OK.rawValue { drop(.connectionLost(reason: ConnectionCore.describe(status))) }
    }

    private func flushAcks() {
        guard !channelsWithAcks.isEmpty else { return }
        let waiting = channelsWithAcks
        channelsWithAcks.removeAll(keepingCapacity: true)
        for channel in waiting { flushAcks(on: channel) }
    }

    private func flushAcks(on channel: Channel) {
        for frame in channel.acks.flush() {
            guard let state, channel.isOpen else { return }
            let status = amqp_basic_ack(state, channel.id, frame.tag, frame.multiple ? 1 : 0)
            if status != AMQP_STATUS_OK.rawValue {
                drop(.connectionLost(reason: ConnectionCore.describe(status)))
                return
            }
        }
    }

    /// Declares (or, with `passive`, checks) a topology item and records it for reconnects.
    func declare(_ item: TopologyItem, passive: Bool, promise: Promise<AMQPQueueStatus>) {
        submitControl(
            ChannelCall(
                expect: ConnectionCore.reply(to: item),
                send: { core, channel in core.send(item, passive: passive, channel: channel) },
                onReply: { [unowned self] decoded in
                    var ok: amqp_queue_declare_ok_t? = nil
                    if case let .queue(queue) = item {
                        ok = decoded?.assumingMemoryBound(to: amqp_queue_declare_ok_t.self).pointee
                        if queue.name.isEmpty, let ok { serverNamedQueues.insert(ok.queue.string) }
                    }
                    if !passive { record(item) }
                    promise.succeed(
                        ok.map { AMQPQueueStatus(name: $0.queue.string, messageCount: $0.message_count, consumerCount: $0.consumer_count) }
                            ?? AMQPQueueStatus(name: "", messageCount: 0, consumerCount: 0))
                },
                onError: { promise.fail($0) }))
    }

    private static func reply(to item: TopologyItem) -> UInt32 {
        switch item {
        case .exchange: Method.exchangeDeclareOK
        case .queue: Method.queueDeclareOK
        case let .binding(binding):
            if case .queue = binding.destination { Method.queueBindOK } else { Method.exchangeBindOK }
        }
    }

    private func send(_ item: TopologyItem, passive: Bool, channel: UInt16) -> Int32 {
        switch item {
        case let .exchange(exchange):
            var method = amqp_exchange_declare_t()
            method.exchange = arena.bytes(exchange.name)
            method.type = arena.bytes(exchange.kind.name)
            method.passive = passive ? 1 : 0
            method.durable = exchange.durable ? 1 : 0
            method.auto_delete = exchange.autoDelete ? 1 : 0
            method.internal = exchange.internal ? 1 : 0
            method.arguments = arena.table(exchange.arguments)
            return amqp_send_method(state, channel, Method.exchangeDeclare, &method)
        case let .queue(queue):
            var method = amqp_queue_declare_t()
            method.queue = arena.bytes(queue.name)
            method.passive = passive ? 1 : 0
            method.durable = queue.durable ? 1 : 0
            method.exclusive = queue.exclusive ? 1 : 0
            method.auto_delete = queue.autoDelete ? 1 : 0
            method.arguments = arena.table(queue.arguments)
            return amqp_send_method(state, channel, Method.queueDeclare, &method)
        case let .binding(binding):
            switch binding.destination {
            case let .queue(queue):
                var method = amqp_queue_bind_t()
                method.queue = arena.bytes(queue)
                method.exchange = arena.bytes(binding.exchange)
                method.routing_key = arena.bytes(binding.routingKey)
                method.arguments = arena.table(binding.arguments)
                return amqp_send_method(state, channel, Method.queueBind, &method)
            case let .exchange(destination):
                var method = amqp_exchange_bind_t()
                method.destination = arena.bytes(destination)
                method.source = arena.bytes(binding.exchange)
                method.routing_key = arena.bytes(binding.routingKey)
                method.arguments = arena.table(binding.arguments)
                return amqp_send_method(state, channel, Method.exchangeBind, &method)
            }
        }
    }

    private func record(_ item: TopologyItem) {
        switch item {
        case let .exchange(exchange):
            topology.removeAll { if case let .exchange(old) = $0 { old.name == exchange.name } else { false } }
        case let .queue(queue):
            guard !queue.name.isEmpty else { return }  // a server-named queue gets a new name each time
            topology.removeAll { if case let .queue(old) = $0 { old.name == queue.name } else { false } }
        case let .binding(binding):
            // A binding to a server-named queue dies with it: replaying it would fail with 404.
            if case let .queue(queue) = binding.destination, serverNamedQueues.contains(queue) { return }
            topology.removeAll { if case let .binding(old) = $0 { old == binding } else { false } }
        }
        topology.append(item)
    }

    func unbind(_ binding: AMQPBinding, promise: Promise<Void>) {
        submitControl(
            ChannelCall(
                expect: { if case .queue = binding.destination { Method.queueUnbindOK } else { Method.exchangeUnbindOK } }(),
                send: { core, channel in
                    let arena = core.arena
                    switch binding.destination {
                    case let .queue(queue):
                        var method = amqp_queue_unbind_t()
                        method.queue = arena.bytes(queue)
                        method.exchange = arena.bytes(binding.exchange)
                        method.routing_key = arena.bytes(binding.routingKey)
                        method.arguments = arena.table(binding.arguments)
                        return amqp_send_method(core.state, channel, Method.queueUnbind, &method)
                    case let .exchange(destination):
                        var method = amqp_exchange_unbind_t()
                        method.destination = arena.bytes(destination)
                        method.source = arena.bytes(binding.exchange)
                        method.routing_key = arena.bytes(binding.routingKey)
                        method.arguments = arena.table(binding.arguments)
                        return amqp_send_method(core.state, channel, Method.exchangeUnbind, &method)
                    }
                },
                onReply: { [unowned self] _ in
                    topology.removeAll { if case let .binding(old) = $0 { old == binding } else { false } }
                    promise.succeed(())
                },
                onError: { promise.fail($0) }))
    }

    func deleteExchange(_ name: String, ifUnused: Bool, promise: Promise<Void>) {
        submitControl(
            ChannelCall(
                expect: Method.exchangeDeleteOK,
                send: { core, channel in
                    var method = amqp_exchange_delete_t()
                    method.exchange = core.arena.bytes(name)
                    method.if_unused = ifUnused ? 1 : 0
                    return amqp_send_method(core.state, channel, Method.exchangeDelete, &method)
                },
                onReply: { [unowned self] _ in
                    topology.removeAll { item in
                        switch item {
                        case let .exchange(old): old.name == name
                        case let .binding(binding): binding.exchange == name || binding.destination == .exchange(name)
                        case .queue: false
                        }
                    }
                    promise.succeed(())
                },
                onError: { promise.fail($0) }))
    }

    /// Deletes (or, with `purge`, empties) a queue; the promise gets the number of messages dropped.
    func removeMessages(queue name: String, delete: Bool, ifUnused: Bool, ifEmpty: Bool, promise: Promise<UInt32>) {
        submitControl(
            ChannelCall(
                expect: delete ? Method.queueDeleteOK : Method.queuePurgeOK,
                send: { core, channel in
                    if delete {
                        var method = amqp_queue_delete_t()
                        method.queue = core.arena.bytes(name)
                        method.if_unused = ifUnused ? 1 : 0
                        method.if_empty = ifEmpty ? 1 : 0
                        return amqp_send_method(core.state, channel, Method.queueDelete, &method)
                    }
                    var method = amqp_queue_purge_t()
                    method.queue = core.arena.bytes(name)
                    return amqp_send_method(core.state, channel, Method.queuePurge, &method)
                },
                onReply: { [unowned self] decoded in
                    if delete {
                        topology.removeAll { item in
                            switch item {
                            case let .queue(old): old.name == name
                            case let .binding(binding): binding.destination == .queue(name)
                            case .exchange: false
                            }
                        }
                    }
                    // queue.delete-ok and queue.purge-ok both carry just the message count.
                    promise.succeed(decoded?.assumingMemoryBound(to: amqp_queue_delete_ok_t.self).pointee.message_count ?? 0)
                },
                onError: { promise.fail($0) }))
    }

    func startConsumer(_ consumer: ConsumerRecord, started: Promise<Void>) {
        guard !terminated, let channel = newChannel(role: .consumer) else {
            started.fail(terminated ? .connectionClosed : .library(status: 0, message: "no free channel"))
            return
        }
        consumer.started = started
        channel.consumer = consumer
        channel.confirmsPublishes = consumer.confirmsPublishes
        submitConsumerSetup(consumer, on: channel)
    }

    private func submitConsumerSetup(_ consumer: ConsumerRecord, on channel: Channel) {
        if consumer.prefetchCount > 0 {
            submit(
                ChannelCall(
                    expect: Method.basicQosOK,
                    send: { core, id in
                        var qos = amqp_basic_qos_t()
                        qos.prefetch_count = consumer.prefetchCount
                        return amqp_send_method(core.state, id, Method.basicQos, &qos)
                    }), on: channel)
        }
        submit(
            ChannelCall(
                expect: Method.basicConsumeOK,
                send: { core, id in
                    var consume = amqp_basic_consume_t()
                    consume.queue = core.arena.bytes(consumer.queue)
                    consume.consumer_tag = core.arena.bytes(consumer.tag)
                    consume.no_ack = consumer.noAck ? 1 : 0
                    consume.exclusive = consumer.exclusive ? 1 : 0
                    consume.arguments = core.arena.table(consumer.arguments)
                    return amqp_send_method(core.state, id, Method.basicConsume, &consume)
                },
                onReply: { _ in
                    consumer.active = true
                    consumer.started?.succeed(())
                    consumer.started = nil
                },
                onError: { error in
                    // drop() and channelClosedByBroker() end the consumer; only its starter needs telling.
                    consumer.started?.fail(error)
                }), on: channel)
    }

    func cancelConsumer(tag: String, done: Promise<Void>) {
        guard let channel = channels.values.first(where: { $0.consumer?.tag == tag }), let consumer = channel.consumer
        else {
            done.succeed(())
            return
        }
        submit(
            ChannelCall(
                expect: Method.basicCancelOK,
                send: { core, id in
                    var cancel = amqp_basic_cancel_t()
                    cancel.consumer_tag = core.arena.bytes(tag)
                    return amqp_send_method(core.state, id, Method.basicCancel, &cancel)
                },
                onReply: { [unowned self] _ in
                    // Unsettled deliveries go back to the queue when the channel closes: report
                    // the cancel done only then, so the queue's depth already counts them.
                    consumer.sink.finish(nil)
                    release(channel) { done.succeed(()) }
                },
                onError: { error in
                    done.fail(error)
                }), on: channel)
    }

    // MARK: - Errors

    static func describe(_ status: Int32) -> String {
        guard let text = amqp_error_string2(status) else { return "status \(status)" }
        return String(cString: text)
    }

    static func error(from reply: amqp_rpc_reply_t) -> AMQPError? {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return nil
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if reply.reply.id == Method.connectionClose,
                let close = reply.reply.decoded?.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            {
                return .connectionClosedByBroker(replyCode: close.reply_code, replyText: close.reply_text.string)
            }
            if reply.reply.id == Method.channelClose,
                let close = reply.reply.decoded?.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            {
                return .channelClosed(
                    replyCode: close.reply_code, replyText: close.reply_text.string, classID: close.class_id,
                    methodID: close.method_id)
            }
            return .library(status: 0, message: "unexpected server method \(reply.reply.id)")
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return .library(status: reply.library_error, message: describe(reply.library_error))
        default:
            return .library(status: 0, message: "no reply")
        }
    }
}
