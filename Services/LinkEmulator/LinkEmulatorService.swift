import AMQP
import Emulation
import Logging
import Messages
import ServiceSupport

/// Everything a link emulator is configured with.
struct LinkEmulatorSettings: Sendable {
    var amqpURL: String
    var link: LinkSpecification
    var timeScale: TimeScale
    /// Messages taken from the link's queue before earlier ones are delivered: enough that the
    /// FIFO, not the prefetch, decides when each crosses.
    var prefetch: Int
    var reportSeconds: Double
    /// Longest wait, after SIGTERM, for messages already on the emulated wire.
    var drainSeconds: Double
}

struct LinkEmulatorError: Error, CustomStringConvertible {
    var description: String
}

/// What the emulator's loop reacts to, one at a time.
private enum LinkEvent: Sendable {
    case delivery(AMQPDelivery)
    case tick
    case terminate
    case consumerEnded(String)
}

/// A message on the emulated wire: delivered to `routingKey` at `arrivesAt` (monotonic seconds).
private struct InFlight: Sendable {
    var delivery: AMQPDelivery
    var message: AMQPMessage
    var routingKey: String
    var arrivesAt: Double
}

/// The `link-emulator` process (docs/design.md §11): every message of one inter-tier link passes
/// through its queue `hyperion.link.<name>`; a `LinkSchedule` FIFO decides when each would reach
/// the far end, and the message is published to its `x-link-to` destination then. Senders never
/// wait for it: their publish to the link queue is confirmed at once.
final class LinkEmulatorService: @unchecked Sendable {
    // Sendable: `schedule` and the counters are touched only by the task running `run()`'s loop.
    private let settings: LinkEmulatorSettings
    private let logger: Logger
    private var schedule: LinkSchedule
    private var messagesInInterval = 0
    private var bytesInInterval = 0
    private var waitInInterval = 0.0
    private var busyAtLastReport = 0.0
    private var lastReport = Clock.monotonicSeconds()
    private let startedAt = Clock.monotonicSeconds()
    private var totalMessages = 0
    private var totalBytes = 0
    private var totalWait = 0.0

    init(settings: LinkEmulatorSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        schedule = LinkSchedule(
            bandwidthBytesPerSecond: settings.link.bandwidthBytesPerSecond, latencySeconds: settings.link.latencySeconds,
            timeScale: settings.timeScale)
    }

    func run() async throws {
        let url: AMQPURL
        do { url = try AMQPURL(settings.amqpURL) } catch { throw LinkEmulatorError(description: "\(error)") }
        let name = settings.link.name
        let inbound = try await AMQPConnection.connect(
            to: url, configuration: AMQPConnectionConfiguration(connectionName: "link-\(name)-in", heartbeatSeconds: 10), logger: logger)
        let outbound = try await AMQPConnection.connect(
            to: url, configuration: AMQPConnectionConfiguration(connectionName: "link-\(name)-out", heartbeatSeconds: 10), logger: logger)
        try await BrokerObjects.declareShared(for: .worker, on: inbound)
        try await BrokerObjects.declareLinkQueue(settings.link.queue, on: inbound)
        for next in [settings.link.nextLink].compactMap({ $0 }) {
            try await BrokerObjects.declareLinkQueue(Names.Queue.link(next), on: inbound)
        }

        let (stream, continuation) = AsyncStream.makeStream(of: LinkEvent.self)
        let (wire, wireInput) = AsyncStream.makeStream(of: InFlight.self)
        let consumer = try await inbound.consume(queue: settings.link.queue, prefetchCount: UInt16(clamping: settings.prefetch))
        EventPump.forward(consumer, named: settings.link.queue, into: continuation, as: LinkEvent.delivery, ended: LinkEvent.consumerEnded)
        EventPump.tick(every: settings.reportSeconds, into: continuation, .tick)
        let signals = TerminationSignals { _ in continuation.yield(.terminate) }
        defer { signals.cancel() }
        let heapSignal = HeapStatisticsSignal(logger: logger)
        defer { heapSignal.cancel() }
        let sender = Task { await Self.deliver(wire, on: outbound, logger: logger) }
        logger.info(
            "emulating link \(name): \(describe(settings.link)); consuming \(settings.link.queue) (\(settings.timeScale.note))")

        loop: for await event in stream {
            switch event {
            case .delivery(let delivery):
                await admit(delivery, into: wireInput, outbound: outbound)
            case .tick:
                report()
            case .terminate:
                logger.info("stopping (SIGTERM): delivering what is on the emulated wire")
                try? await consumer.cancel()
                break loop
            case .consumerEnded(let queue):
                logger.error("consumer of \(queue) ended; exiting")
                wireInput.finish()
                _ = await sender.value
                throw LinkEmulatorError(description: "the broker cancelled the consumer of \(queue)")
            }
        }
        wireInput.finish()
        let drained = Task {
            try? await Task.sleep(for: .seconds(settings.drainSeconds))
            sender.cancel()
        }
        _ = await sender.value
        drained.cancel()
        report(final: true)
        await inbound.close()
        await outbound.close()
    }

    /// Puts one message on the emulated wire, or dead-letters it when it names no destination.
    private func admit(_ delivery: AMQPDelivery, into wire: AsyncStream<InFlight>.Continuation, outbound: AMQPConnection) async {
        var message = delivery.message
        var headers = message.properties.headers ?? [:]
        guard let destination = headers[Names.Header.linkDestination]?.stringValue, !destination.isEmpty else {
            logger.warning("dead-lettering a message without \(Names.Header.linkDestination)")
            try? await BrokerObjects.deadLetter(
                delivery.message, reason: "\(settings.link.queue): no \(Names.Header.linkDestination) header naming its destination",
                on: outbound)
            delivery.ack()
            return
        }
        let now = Clock.monotonicSeconds()
        let passage = schedule.admit(bytes: message.body.count, at: now)
        let hop = settings.link.nextHop(destination: destination)
        if hop == destination {
            headers[Names.Header.linkDestination] = nil
            message.properties.headers = headers.isEmpty ? nil : headers
        }
        messagesInInterval += 1
        bytesInInterval += message.body.count
        waitInInterval += passage.startsAt - now
        wire.yield(InFlight(delivery: delivery, message: message, routingKey: hop, arrivesAt: passage.arrivesAt))
    }

    /// Publishes each message at its arrival time, in order (arrival times never decrease), and
    /// acks its input once the broker confirms the publish.
    private static func deliver(_ wire: AsyncStream<InFlight>, on outbound: AMQPConnection, logger: Logger) async {
        for await item in wire {
            let wait = item.arrivesAt - Clock.monotonicSeconds()
            if wait > 0 { try? await Task.sleep(for: .seconds(wait)) }
            do throws(AMQPError) {
                let confirm = try await outbound.startConfirmedPublish(
                    item.message, exchange: Names.Exchange.internal, routingKey: item.routingKey, mandatory: true)
                let delivery = item.delivery
                let routingKey = item.routingKey
                Task {
                    do throws(AMQPError) {
                        try await confirm.wait()
                        delivery.ack()
                    } catch .returned {
                        // The destination is gone: its scheduler fails the request over.
                        logger.warning("\(routingKey) is unreachable; dropping a message for it")
                        delivery.ack()
                    } catch {
                        logger.warning("publish to \(routingKey) failed (\(error)); requeueing it on the link")
                        delivery.nack(requeue: true)
                    }
                }
            } catch {
                logger.warning("publish to \(item.routingKey) failed (\(error)); requeueing it on the link")
                item.delivery.nack(requeue: true)
            }
        }
    }

    /// Logs the traffic since the last report, or over the whole run at exit, in emulated figures.
    private func report(final: Bool = false) {
        let now = Clock.monotonicSeconds()
        totalMessages += messagesInInterval
        totalBytes += bytesInInterval
        totalWait += waitInInterval
        if messagesInInterval > 0 || final {
            let interval = max(now - (final ? startedAt : lastReport), 1e-9)
            let messages = final ? totalMessages : messagesInInterval
            let bytes = final ? totalBytes : bytesInInterval
            let busy = schedule.busySeconds - (final ? 0 : busyAtLastReport)
            let meanWait = messages > 0 ? (final ? totalWait : waitInInterval) / Double(messages) : 0
            let emulatedInterval = settings.timeScale.emulatedSeconds(wall: interval)
            logger.info(
                "\(final ? "in total" : "last \(Int(interval.rounded())) s"): \(messages) messages, \(bytes) bytes; utilisation \(Self.percent(busy / interval)), \(Self.rate(Double(bytes) / emulatedInterval)) emulated, mean queueing \(Self.milliseconds(settings.timeScale.emulatedSeconds(wall: meanWait))) emulated (\(settings.timeScale.note))"
            )
        }
        messagesInInterval = 0
        bytesInInterval = 0
        waitInInterval = 0
        busyAtLastReport = schedule.busySeconds
        lastReport = now
    }

    private func describe(_ link: LinkSpecification) -> String {
        let bandwidth = link.bandwidthBytesPerSecond.map { Self.rate($0) } ?? "no bandwidth limit"
        let onward = link.nextLink.map { "; steps for tiers beyond \(link.toTier ?? "?") go on to link \($0)" } ?? ""
        return "\(bandwidth), latency \(Self.milliseconds(link.latencySeconds))\(onward)"
    }

    private static func percent(_ fraction: Double) -> String { "\((min(1, fraction) * 1000).rounded() / 10)%" }
    private static func milliseconds(_ seconds: Double) -> String { "\((seconds * 1e6).rounded() / 1e3) ms" }
    private static func rate(_ bytesPerSecond: Double) -> String { "\((bytesPerSecond / 1e4).rounded() / 100) MB/s" }
}
