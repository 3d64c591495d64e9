import AMQP
import Foundation
import Testing

/// Against the real private broker. Serialized: one test restarts the broker application.
@Suite("AMQP against a real broker", .serialized)
struct BrokerTests {
    /// Queues left behind by a failed run disappear on their own.
    static let leftoverExpiry: AMQPTable = ["x-expires": .int32(120_000)]

    @Test func tenThousandConfirmedPersistentMessagesArriveExactlyOnce() async throws {
        let connection = try await TestBroker.connect("ten-thousand")
        let consumerConnection = try await TestBroker.connect("ten-thousand-consumer")
        let queue = TestBroker.uniqueName("exactly-once")
        try await connection.declare(AMQPQueue(name: queue, arguments: Self.leftoverExpiry))

        let count = 10_000
        var pending: [AMQPPendingConfirm] = []
        pending.reserveCapacity(count)
        for index in 0..<count {
            var properties = AMQPProperties(messageID: String(index))
            properties.isPersistent = true
            pending.append(
                try await connection.startConfirmedPublish(
                    AMQPMessage(text: String(index), properties: properties), routingKey: queue))
        }
        for confirm in pending { try await confirm.wait() }
        #expect(try await connection.inspectQueue(queue).messageCount == UInt32(count))

        let consumer = try await consumerConnection.consume(queue: queue, prefetchCount: 500)
        var seen = Set<Int>()
        var duplicates = 0
        for try await delivery in consumer {
            let index = Int(String(decoding: delivery.body, as: UTF8.self)) ?? -1
            if !seen.insert(index).inserted { duplicates += 1 }
            #expect(delivery.properties.isPersistent)
            delivery.ack()
            if seen.count == count { break }
        }
        try await consumer.cancel()
        #expect(duplicates == 0)
        #expect(seen == Set(0..<count))
        #expect(try await connection.deleteQueue(queue) == 0)
        await consumerConnection.close()
        await connection.close()
    }

    @Test func sixteenMebibyteBodyArrivesIntact() async throws {
        let connection = try await TestBroker.connect("large-body")
        let queue = TestBroker.uniqueName("large")
        try await connection.declare(AMQPQueue(name: queue, durable: false, arguments: Self.leftoverExpiry))
        let body = patternBytes(count: 16 * 1024 * 1024, seed: 42)
        try await connection.publishConfirmed(AMQPMessage(body: body), routingKey: queue)
        let consumer = try await connection.consume(queue: queue, prefetchCount: 1)
        var received: [UInt8]? = nil
        for try await delivery in consumer {
            received = delivery.body
            delivery.ack()
            break
        }
        try await consumer.cancel()
        #expect(received?.count == body.count)
        #expect(received == body)
        try await connection.deleteQueue(queue)
        await connection.close()
    }

    @Test func headersOfEveryFieldTypeAndAllPropertiesRoundTrip() async throws {
        let connection = try await TestBroker.connect("headers")
        let queue = TestBroker.uniqueName("headers")
        try await connection.declare(AMQPQueue(name: queue, durable: false, arguments: Self.leftoverExpiry))
        let headers: AMQPTable = [
            "bool": .bool(true), "int8": .int8(-8), "uint8": .uint8(200), "int16": .int16(-30_000),
            "uint16": .uint16(60_000), "int32": .int32(-2_000_000_000), "uint32": .uint32(4_000_000_000),
            "int64": .int64(Int64.min), "float": .float(1.5), "double": .double(-2.25e100),
            "decimal": .decimal(AMQPDecimal(scale: 2, value: 12_345)), "string": .string("héllo ✓"),
            "bytes": .bytes([0, 255, 1, 254]), "timestamp": .timestamp(1_700_000_000), "void": .void,
            "array": .array([.int32(1), .string("two"), .array([.bool(false)]), .table(["k": .double(3)])]),
            "table": .table(["nested": .table(["deeper": .array([.int64(7), .void])]), "x": .uint8(1)]),
        ]
        let properties = AMQPProperties(
            contentType: "application/octet-stream", contentEncoding: "identity", headers: headers, deliveryMode: 2,
            priority: 3, correlationID: "corr-1", replyTo: "somewhere", expiration: "60000", messageID: "msg-1",
            timestamp: 1_700_000_123, type: "kind", userID: "guest", appID: "hyperion-tests")
        try await connection.publishConfirmed(AMQPMessage(body: [1, 2, 3], properties: properties), routingKey: queue)
        let consumer = try await connection.consume(queue: queue)
        var received: AMQPDelivery? = nil
        for try await delivery in consumer {
            received = delivery
            delivery.ack()
            break
        }
        try await consumer.cancel()
        #expect(received?.properties == properties)
        #expect(received?.properties.headers == headers)
        #expect(received?.routingKey == queue)
        #expect(received?.exchange == "")
        try await connection.deleteQueue(queue)
        await connection.close()
    }

    @Test func passiveDepthCountsConfirmedUnconsumedMessages() async throws {
        let connection = try await TestBroker.connect("depth")
        let queue = TestBroker.uniqueName("depth")
        try await connection.declare(AMQPQueue(name: queue, arguments: Self.leftoverExpiry))
        for index in 0..<37 {
            try await connection.publishConfirmed(AMQPMessage(text: "m\(index)"), routingKey: queue)
        }
        let full = try await connection.inspectQueue(queue)
        #expect(full.messageCount == 37)
        #expect(full.consumerCount == 0)

        let consumer = try await connection.consume(queue: queue, prefetchCount: 10)
        var taken = 0
        for try await delivery in consumer {
            delivery.ack()
            taken += 1
            if taken == 10 { break }
        }
        let whileConsuming = try await connection.inspectQueue(queue)
        #expect(whileConsuming.consumerCount == 1)
        try await consumer.cancel()
        // Acks and the cancel travel on the consumer's channel; the cancel-ok proves they arrived.
        let after = try await connection.inspectQueue(queue)
        #expect(after.messageCount == 27)
        #expect(after.consumerCount == 0)
        try await connection.deleteQueue(queue)
        await connection.close()
    }

    @Test func queueArgumentsAreAppliedAndBrokerErrorsAreTyped() async throws {
        let connection = try await TestBroker.connect("arguments")
        let dlx = TestBroker.uniqueName("dlx")
        try await connection.declare(AMQPExchange(name: dlx, kind: .fanout, durable: false, autoDelete: true))

        var bounded = AMQPQueue(name: TestBroker.uniqueName("bounded"), arguments: Self.leftoverExpiry)
        bounded.maxLength = 2
        bounded.overflow = .rejectPublish
        bounded.messageTTLMilliseconds = 60_000
        bounded.deadLetterExchange = dlx
        try await connection.declare(bounded)
        try await connection.publishConfirmed(AMQPMessage(text: "1"), routingKey: bounded.name)
        try await connection.publishConfirmed(AMQPMessage(text: "2"), routingKey: bounded.name)
        await #expect(throws: AMQPError.nacked) {
            try await connection.publishConfirmed(AMQPMessage(text: "3"), routingKey: bounded.name)
        }

        var quorum = AMQPQueue(name: TestBroker.uniqueName("quorum"), arguments: Self.leftoverExpiry)
        quorum.isQuorum = true
        quorum.singleActiveConsumer = true
        try await connection.declare(quorum)
        #expect(try await connection.inspectQueue(quorum.name).messageCount == 0)

        // Redeclaring with other arguments: 406 from the broker, and the connection carries on.
        var conflicting = bounded
        conflicting.maxLength = 3
        await #expect {
            try await connection.declare(conflicting)
        } throws: { error in
            (error as? AMQPError)?.replyCode == 406
        }
        await #expect {
            _ = try await connection.inspectQueue(TestBroker.uniqueName("missing"))
        } throws: { error in
            (error as? AMQPError)?.replyCode == 404
        }
        await #expect(
            throws: AMQPError.returned(replyCode: 312, replyText: "NO_ROUTE", exchange: dlx, routingKey: "nowhere")
        ) {
            // A fanout exchange with no queue bound routes nowhere.
            try await connection.publishConfirmed(AMQPMessage(text: "x"), exchange: dlx, routingKey: "nowhere", mandatory: true)
        }
        try await connection.publish(AMQPMessage(text: "y"), exchange: dlx, routingKey: "unconfirmed", mandatory: true)
        var returns = connection.returnedMessages.makeAsyncIterator()
        let returned = await returns.next()
        #expect(returned?.replyCode == 312)
        #expect(returned?.message.body == Array("y".utf8))

        #expect(try await connection.deleteQueue(bounded.name) == 2)
        try await connection.deleteQueue(quorum.name)
        try await connection.deleteExchange(dlx)
        await connection.close()
    }

    @Test func bindingsRouteUntilUnbound() async throws {
        let connection = try await TestBroker.connect("bindings")
        let front = TestBroker.uniqueName("front")
        let back = TestBroker.uniqueName("back")
        let queue = TestBroker.uniqueName("bound")
        try await connection.declare(AMQPExchange(name: front, kind: .topic, durable: false))
        try await connection.declare(AMQPExchange(name: back, kind: .direct, durable: false))
        try await connection.declare(AMQPQueue(name: queue, durable: false, exclusive: true))
        let exchangeBinding = AMQPBinding(destination: .exchange(back), exchange: front, routingKey: "step.#")
        let queueBinding = AMQPBinding.queue(queue, to: back, routingKey: "step.decode")
        try await connection.bind(exchangeBinding)
        try await connection.bind(queueBinding)
        try await connection.publishConfirmed(AMQPMessage(text: "routed"), exchange: front, routingKey: "step.decode", mandatory: true)
        #expect(try await connection.inspectQueue(queue).messageCount == 1)

        try await connection.unbind(queueBinding)
        await #expect(throws: AMQPError.returned(replyCode: 312, replyText: "NO_ROUTE", exchange: front, routingKey: "step.decode")) {
            try await connection.publishConfirmed(AMQPMessage(text: "lost"), exchange: front, routingKey: "step.decode", mandatory: true)
        }
        try await connection.unbind(exchangeBinding)
        try await connection.deleteExchange(front)
        await #expect { try await connection.inspectExchange(front) } throws: { ($0 as? AMQPError)?.replyCode == 404 }
        #expect(try await connection.purgeQueue(queue) == 1)
        try await connection.deleteExchange(back)
        await connection.close()
    }

    @Test func deadLetteringCarriesAReason() async throws {
        let connection = try await TestBroker.connect("dead-letter")
        let deadExchange = TestBroker.uniqueName("dead")
        let deadQueue = TestBroker.uniqueName("dead")
        let work = TestBroker.uniqueName("work")
        try await connection.declare(AMQPExchange(name: deadExchange, kind: .fanout, durable: false, autoDelete: true))
        try await connection.declare(AMQPQueue(name: deadQueue, arguments: Self.leftoverExpiry))
        try await connection.bind(.queue(deadQueue, to: deadExchange))
        var workQueue = AMQPQueue(name: work, arguments: Self.leftoverExpiry)
        workQueue.deadLetterExchange = deadExchange
        try await connection.declare(workQueue)

        try await connection.publishConfirmed(AMQPMessage(text: "poison", properties: AMQPProperties(messageID: "p1")), routingKey: work)
        try await connection.publishConfirmed(AMQPMessage(text: "rejected", properties: AMQPProperties(messageID: "r1")), routingKey: work)
        let consumer = try await connection.consume(queue: work)
        var handled = 0
        for try await delivery in consumer {
            if delivery.properties.messageID == "p1" {
                // Hyperion's way: republish to the dead exchange with the reason, then ack.
                var message = delivery.message
                message.properties.headers = (message.properties.headers ?? [:])
                message.properties.headers?["x-hyperion-error"] = .string("unsupported version 9")
                try await connection.publishConfirmed(message, exchange: deadExchange, routingKey: work)
                delivery.ack()
            } else {
                delivery.nack(requeue: false)  // the broker's own dead-lettering: reason "rejected"
            }
            handled += 1
            if handled == 2 { break }
        }
        try await consumer.cancel()

        let deadConsumer = try await connection.consume(queue: deadQueue)
        var reasons: [String: String] = [:]
        for try await delivery in deadConsumer {
            let headers = delivery.properties.headers ?? [:]
            if let reason = headers["x-hyperion-error"]?.stringValue {
                reasons[String(decoding: delivery.body, as: UTF8.self)] = reason
            } else if let death = headers["x-death"]?.arrayValue?.first?.tableValue {
                reasons[String(decoding: delivery.body, as: UTF8.self)] = death["reason"]?.stringValue
            }
            delivery.ack()
            if reasons.count == 2 { break }
        }
        try await deadConsumer.cancel()
        #expect(reasons == ["poison": "unsupported version 9", "rejected": "rejected"])
        #expect(try await connection.inspectQueue(work).messageCount == 0)
        try await connection.deleteQueue(work)
        try await connection.deleteQueue(deadQueue)
        await connection.close()
    }

    @Test func rpcGetsItsReplyAndTimesOutWithoutOne() async throws {
        let server = try await TestBroker.connect("rpc-server")
        let client = try await TestBroker.connect("rpc-client")
        let service = TestBroker.uniqueName("rpc")
        let silent = TestBroker.uniqueName("rpc-silent")
        try await server.declare(AMQPQueue(name: service, durable: false, exclusive: true))
        try await server.declare(AMQPQueue(name: silent, durable: false, exclusive: true))
        let requests = try await server.consume(queue: service)
        let responder = Task {
            for try await request in requests {
                guard let replyTo = request.properties.replyTo else { continue }
                let reply = AMQPMessage(
                    body: Array("echo:".utf8) + request.body,
                    properties: AMQPProperties(correlationID: request.properties.correlationID))
                try await server.publish(reply, routingKey: replyTo)
                request.ack()
            }
        }

        let rpc = try await AMQPRPCClient.start(on: client)
        async let first = rpc.call(AMQPMessage(text: "one"), routingKey: service, timeoutSeconds: 10)
        async let second = rpc.call(AMQPMessage(text: "two"), routingKey: service, timeoutSeconds: 10)
        let replies = try await [first, second].map { String(decoding: $0.body, as: UTF8.self) }
        #expect(replies == ["echo:one", "echo:two"])

        await #expect(throws: AMQPError.timeout(seconds: 0.3)) {
            _ = try await rpc.call(AMQPMessage(text: "anyone?"), routingKey: silent, timeoutSeconds: 0.3)
        }
        try await requests.cancel()
        _ = try await responder.value
        try await rpc.close()
        await client.close()
        await server.close()
    }

    @Test func forwarderOnTheConnectionExecutorRelaysEveryMessage() async throws {
        let inbound = try await TestBroker.connect("executor-in")
        let outbound = try await TestBroker.connect("executor-out")
        let source = TestBroker.uniqueName("forward-source")
        let target = TestBroker.uniqueName("forward-target")
        try await inbound.declare(AMQPQueue(name: source, durable: false, exclusive: true))
        try await outbound.declare(AMQPQueue(name: target, durable: false, exclusive: true))
        let sourceConsumer = try await inbound.consume(queue: source)
        let count = 500
        let forwarder = Task {
            try await withTaskExecutorPreference(inbound.executor) {
                var forwarded = 0
                for try await delivery in sourceConsumer {
                    try await outbound.publish(delivery.message, routingKey: target)
                    delivery.ack()
                    forwarded += 1
                    if forwarded == count { break }
                }
                return forwarded
            }
        }
        let targetConsumer = try await outbound.consume(queue: target)
        for index in 0..<count { try await outbound.publish(AMQPMessage(text: String(index)), routingKey: source) }
        var received: [Int] = []
        for try await delivery in targetConsumer {
            received.append(Int(String(decoding: delivery.body, as: UTF8.self)) ?? -1)
            delivery.ack()
            if received.count == count { break }
        }
        #expect(try await forwarder.value == count)
        #expect(received == Array(0..<count))
        await inbound.close()
        await outbound.close()
    }

    @Test func deletedQueueCancelsItsConsumerVisibly() async throws {
        let connection = try await TestBroker.connect("cancel")
        let other = try await TestBroker.connect("cancel-deleter")
        let queue = TestBroker.uniqueName("doomed")
        try await connection.declare(AMQPQueue(name: queue, durable: false, arguments: Self.leftoverExpiry))
        let consumer = try await connection.consume(queue: queue)
        try await other.deleteQueue(queue)
        await #expect(throws: AMQPError.consumerCancelled(queue: queue)) {
            for try await delivery in consumer { delivery.ack() }
        }
        // The connection itself is unharmed.
        let status = try await connection.declare(AMQPQueue(name: "", durable: false, exclusive: true))
        #expect(status.name.hasPrefix("amq.gen-"))
        await other.close()
        await connection.close()
    }

    @Test func brokerSeesTheConnectionNameAndCancelNotification() async throws {
        let name = TestBroker.uniqueName("named")
        let connection = try await AMQPConnection.connect(
            to: TestBroker.url(), configuration: AMQPConnectionConfiguration(connectionName: name))
        let listing = try await TestBroker.rabbitmqctl(["list_connections", "client_properties"])
        let line = listing.split(separator: "\n").first { $0.contains(name) }
        #expect(line != nil)
        #expect(line?.contains("{\"consumer_cancel_notify\",true}") == true)
        await connection.close()
    }

    @Test func idleConnectionOutlivesThreeHeartbeatIntervals() async throws {
        let heartbeatSeconds = 1
        let connection = try await TestBroker.connect("idle", heartbeatSeconds: heartbeatSeconds, reconnect: .disabled)
        let queue = TestBroker.uniqueName("idle")
        try await connection.declare(AMQPQueue(name: queue, durable: false, exclusive: true))
        try await Task.sleep(for: .seconds(3 * heartbeatSeconds + 2))
        // With reconnect disabled a dropped connection would now refuse every operation.
        #expect(try await connection.inspectQueue(queue).consumerCount == 0)
        await connection.close()
    }

    @Test func aForcedCloseIsReportedAndSurvived() async throws {
        let (name, connection) = try await quicklyReconnecting("forced")
        let other = try await TestBroker.connect("forced-other")
        let queue = TestBroker.uniqueName("forced")
        try await connection.declare(AMQPQueue(name: queue, durable: false, exclusive: true))
        let consumer = try await connection.consume(queue: queue)
        var events = connection.events.makeAsyncIterator()

        try await TestBroker.closeConnection(named: name, reason: "test says goodbye")
        #expect(
            await events.next()
                == .disconnected(.connectionClosedByBroker(replyCode: 320, replyText: "CONNECTION_FORCED - test says goodbye")))
        #expect(await events.next() == .reconnected)
        // Its exclusive queue was declared again and the consumer resumed.
        try await publishUntilRouted(other, text: "still here", to: queue)
        var deliveries = consumer.makeAsyncIterator()
        #expect(try await deliveries.next()?.body == Array("still here".utf8))

        // Without reconnect the same close ends the consumer with the broker's reason.
        let fragileName = TestBroker.uniqueName("fragile")
        let fragile = try await AMQPConnection.connect(
            to: TestBroker.url(), configuration: AMQPConnectionConfiguration(connectionName: fragileName, reconnect: .disabled))
        let fragileQueue = TestBroker.uniqueName("fragile")
        try await fragile.declare(AMQPQueue(name: fragileQueue, durable: false, exclusive: true))
        let fragileConsumer = try await fragile.consume(queue: fragileQueue)
        try await TestBroker.closeConnection(named: fragileName, reason: "no second chance")
        await #expect(
            throws: AMQPError.connectionClosedByBroker(replyCode: 320, replyText: "CONNECTION_FORCED - no second chance")
        ) {
            for try await delivery in fragileConsumer { delivery.ack() }
        }
        await #expect(throws: AMQPError.connectionClosed) { try await fragile.declare(AMQPQueue(name: "", exclusive: true)) }
        await other.close()
        await connection.close()
    }

    /// A consumer started right after a reconnect, while the connection is still declaring its
    /// recorded queues again, must be subscribed once: a second `basic.consume` with its tag makes
    /// the broker close its channel, and a direct reply-to answer then has nowhere to go. Also: a
    /// binding to a server-named queue is not replayed (the queue died with the connection).
    @Test func aConsumerStartedDuringTheReplayIsSubscribedOnce() async throws {
        let (name, connection) = try await quicklyReconnecting("replay")
        let echo = try await TestBroker.connect("replay-echo")
        // Enough recorded queues that replaying them takes many round trips.
        let recorded = (0..<2000).map { TestBroker.uniqueName("replay-\($0)") }
        for queue in recorded { try await connection.declare(AMQPQueue(name: queue, durable: false, autoDelete: false)) }
        let temporary = try await connection.declare(AMQPQueue(name: "", durable: false, exclusive: true, autoDelete: true)).name
        try await connection.bind(AMQPBinding(destination: .queue(temporary), exchange: "amq.fanout"))
        // Answers every request on its reply-to address.
        let requests = TestBroker.uniqueName("replay-requests")
        try await echo.declare(AMQPQueue(name: requests, durable: false))
        let echoConsumer = try await echo.consume(queue: requests)
        let answering = Task {
            for try await delivery in echoConsumer {
                if let replyTo = delivery.properties.replyTo {
                    try await echo.publish(AMQPMessage(text: "answer"), routingKey: replyTo)
                }
                delivery.ack()
            }
        }
        var events = connection.events.makeAsyncIterator()

        try await TestBroker.closeConnection(named: name, reason: "replay race")
        guard case .disconnected = await events.next() else { Issue.record("no disconnect event"); return }
        #expect(await events.next() == .reconnected)
        // At once, before the 2,000 declarations are answered.
        let replies = try await connection.consume(queue: AMQPRPCClient.directReplyQueue, prefetchCount: 0, noAck: true)
        try await connection.publish(
            AMQPMessage(text: "question", properties: AMQPProperties(replyTo: AMQPRPCClient.directReplyQueue)),
            exchange: "", routingKey: requests, onChannelOf: replies.tag)
        let answers = Task {
            var bodies: [[UInt8]] = []
            for try await delivery in replies {
                bodies.append(delivery.body)
                if bodies.count == 2 { break }
            }
            return bodies
        }
        let timeout = Task {
            try await Task.sleep(for: .seconds(20))
            answers.cancel()
        }
        // A declaration on the control channel is answered after the whole replay: by then a
        // second subscription, if any, has been sent and refused.
        let check = TestBroker.uniqueName("replay-check")
        try await connection.declare(AMQPQueue(name: check, durable: false, exclusive: true))
        try await Task.sleep(for: .milliseconds(200))
        // The same consumer still gets an answer to a question asked after the replay.
        try await connection.publish(
            AMQPMessage(text: "again", properties: AMQPProperties(replyTo: AMQPRPCClient.directReplyQueue)),
            exchange: "", routingKey: requests, onChannelOf: replies.tag)
        let bodies = (try? await answers.value) ?? []
        timeout.cancel()
        #expect(bodies == [Array("answer".utf8), Array("answer".utf8)], "the direct reply-to consumer started during the replay got \(bodies.count) of 2 answers")

        answering.cancel()
        for queue in recorded + [requests] { _ = try? await echo.deleteQueue(queue) }
        await echo.close()
        await connection.close()
    }

    @Test func consumerAndPublisherSurviveABrokerRestart() async throws {
        _ = try TestBroker.nodeName()
        let publisher = try await TestBroker.connect("restart-publisher", heartbeatSeconds: 2)
        let consumerConnection = try await TestBroker.connect("restart-consumer", heartbeatSeconds: 2)
        let queue = TestBroker.uniqueName("restart")
        try await publisher.declare(AMQPQueue(name: queue))
        let consumer = try await consumerConnection.consume(queue: queue, prefetchCount: 50)
        let exclusiveQueue = TestBroker.uniqueName("restart-exclusive")
        try await consumerConnection.declare(AMQPQueue(name: exclusiveQueue, durable: false, exclusive: true))
        let exclusiveConsumer = try await consumerConnection.consume(queue: exclusiveQueue)
        let seen = Shared(Set<Int>())
        let received = Task {
            for try await delivery in consumer {
                let index = Int(String(decoding: delivery.body, as: UTF8.self)) ?? -1
                seen.withLock { _ = $0.insert(index) }
                delivery.ack()
            }
        }

        // Publish steadily (1 ms apart) from before the restart until 200 messages after it.
        let restartDone = Shared(false)
        var restart: Task<Void, any Error>? = nil
        var published = 0
        var publishedAfterRestart = 0
        while publishedAfterRestart < 200 {
            if published == 200 {
                restart = Task {
                    defer { restartDone.withLock { $0 = true } }
                    try await TestBroker.rabbitmqctl(["stop_app"])
                    try await TestBroker.rabbitmqctl(["start_app"])
                }
            }
            var properties = AMQPProperties()
            properties.isPersistent = true
            // At-least-once: anything not confirmed is published again.
            while true {
                do {
                    try await publisher.publishConfirmed(
                        AMQPMessage(text: String(published), properties: properties), routingKey: queue)
                    break
                } catch {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            published += 1
            if restartDone.withLock({ $0 }) { publishedAfterRestart += 1 }
            try await Task.sleep(for: .milliseconds(1))
        }
        try await restart?.value

        // Every confirmed message arrives (redeliveries of unacked ones are allowed).
        var waits = 0
        while seen.withLock({ $0.count }) < published, waits < 600 {
            try await Task.sleep(for: .milliseconds(100))
            waits += 1
        }
        #expect(seen.withLock { $0 } == Set(0..<published))
        #expect(published > 400)
        try await consumer.cancel()
        try await received.value

        // An exclusive queue vanished with the old connection: it is declared again and its
        // consumer resumes, so a message published now still arrives.
        let confirmedAfter = try await publishUntilConfirmed(publisher, text: "after", to: exclusiveQueue)
        var afterRestart = exclusiveConsumer.makeAsyncIterator()
        let lateDelivery = try await afterRestart.next()
        lateDelivery?.ack()
        #expect(confirmedAfter)
        #expect(lateDelivery?.body == Array("after".utf8))
        try await publisher.deleteQueue(queue)
        await consumerConnection.close()
        await publisher.close()
    }

    /// A connection under a unique name that reconnects within half a second of a drop.
    private func quicklyReconnecting(_ label: String) async throws -> (name: String, connection: AMQPConnection) {
        let name = TestBroker.uniqueName(label)
        let connection = try await AMQPConnection.connect(
            to: TestBroker.url(),
            configuration: AMQPConnectionConfiguration(connectionName: name, reconnect: .init(maxDelaySeconds: 0.5)))
        return (name, connection)
    }

    private func publishUntilRouted(_ connection: AMQPConnection, text: String, to queue: String) async throws {
        let routed = try await publishUntilConfirmed(connection, text: text, to: queue)
        #expect(routed, "no queue \(queue) to route to")
    }

    /// Publishes with confirm and mandatory until the broker routes and confirms it (a queue being
    /// re-declared after a reconnect is briefly missing); false if that never happens.
    private func publishUntilConfirmed(_ connection: AMQPConnection, text: String, to queue: String) async throws -> Bool {
        for _ in 0..<200 {
            do {
                try await connection.publishConfirmed(AMQPMessage(text: text), routingKey: queue, mandatory: true)
                return true
            } catch {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        return false
    }
}
