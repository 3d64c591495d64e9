import AMQP
import ArgumentParser
import Foundation
import ServiceSupport
import Measurement

/// `hyperion bench amqp`: this AMQP layer against a minimal loop straight on rabbitmq-c, same
/// broker, same run, for the two body sizes Hyperion's steps have.
struct BenchAMQPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amqp",
        abstract: "Measure AMQP throughput and one-hop latency beside raw rabbitmq-c.",
        discussion: """
            For 2.3 KiB bodies (one SmolLM2-135M decode activation, 576 f32) and 460 KiB bodies (a \
            200-token prefill chunk): publish→consume messages per second with manual acks, without \
            and with publisher confirms, and the one-hop latency (publish → delivery) p50/p99. Each \
            figure is printed beside the same figure from a minimal rabbitmq-c loop, with the ratio. \
            Both sides use one publisher and one consumer connection and a transient queue; the \
            Hyperion latency loop runs on the consumer connection's executor (no thread hop per \
            delivery), as a latency-sensitive forwarder would. \
            Targets: throughput ≥ 0.5× raw, hop p50 ≤ 1.5× raw.

            Examples:
              hyperion bench amqp
              hyperion bench amqp --amqp-url "$(cat .run/admin_url)" --rounds 1
            """
    )

    @OptionGroup
    var broker: BrokerOptions

    /// The old spelling of --amqp-url, kept hidden for one release.
    @Option(name: .customLong("url"), help: .hidden)
    var oldURL: String?

    @Option(help: "Messages per throughput run with 2.3 KiB bodies.")
    var smallMessages = 20_000

    @Option(help: "Messages per throughput run with 460 KiB bodies.")
    var largeMessages = 1_000

    @Option(help: "Latency samples per body size.")
    var samples = 2_000

    @Option(help: "Throughput runs per figure and side (alternating; the median is printed).")
    var rounds = 3

    @Option(help: "Consumer prefetch count (both sides).")
    var prefetch: UInt16 = 100

    @Option(help: "Most unconfirmed publishes in flight when confirming (both sides).")
    var confirmWindow = 100

    mutating func validate() throws {
        try broker.adopt(alias: oldURL, spelled: "--url")
    }

    func run() async throws {
        let brokerURL = try AMQPURL(broker.amqpURL)
        let control = try await AMQPConnection.connect(
            to: brokerURL, configuration: AMQPConnectionConfiguration(connectionName: "bench-control"))
        let queue = "hyperion.bench.\(UInt32.random(in: 0...UInt32.max))"
        try await control.declare(AMQPQueue(name: queue, durable: false, arguments: ["x-expires": .int32(600_000)]))

        print(
            "hyperion bench amqp: \(brokerURL), prefetch \(prefetch), confirm window \(confirmWindow), "
                + "median of \(rounds) throughput runs, latency in 10 alternating rounds")
        print(Row.header)
        let bench = Bench(url: brokerURL, queue: queue, prefetch: prefetch, confirmWindow: confirmWindow)
        do {
            for (label, bytes, messages) in [("2.3 KiB", 2_304, smallMessages), ("460 KiB", 460_800, largeMessages)] {
                // Warm both sides up (connections, broker queue process, allocator) before measuring.
                _ = try await bench.raw(bytes: bytes, messages: max(messages / 10, 10), confirm: false)
                _ = try await bench.hyperion(bytes: bytes, messages: max(messages / 10, 10), confirm: false)
                for confirm in [false, true] {
                    // Alternate the sides and keep each one's median, so load changes hit both.
                    var rawRates: [Double] = []
                    var ourRates: [Double] = []
                    for _ in 0..<max(rounds, 1) {
                        rawRates.append(try await bench.raw(bytes: bytes, messages: messages, confirm: confirm))
                        ourRates.append(try await bench.hyperion(bytes: bytes, messages: messages, confirm: confirm))
                    }
                    let raw = Percentile.of(rawRates.sorted(), 0.5)
                    let ours = Percentile.of(ourRates.sorted(), 0.5)
                    let figure = confirm ? "msg/s, manual acks + confirms" : "msg/s, manual acks"
                    print(Row(body: label, figure: figure, raw: raw, ours: ours, unit: .rate, target: "≥ 0.5×"))
                }
                // Alternate the two sides in rounds so a change in machine load hits both alike.
                let count = bytes > 100_000 ? max(samples / 4, 10) : samples
                let latencyRounds = 10
                var rawHops: [Double] = []
                var ourHops: [Double] = []
                for _ in 0..<latencyRounds {
                    rawHops += try await RawRabbitMQBaseline.hopSeconds(
                        url: brokerURL, queue: queue, bodyBytes: bytes, samples: max(count / latencyRounds, 1))
                    ourHops += try await bench.hyperionHops(bytes: bytes, samples: max(count / latencyRounds, 1))
                }
                rawHops.sort()
                ourHops.sort()
                print(
                    Row(
                        body: label, figure: "one-hop latency p50", raw: Percentile.of(rawHops, 0.5),
                        ours: Percentile.of(ourHops, 0.5), unit: .milliseconds, target: "≤ 1.5×"))
                print(
                    Row(
                        body: label, figure: "one-hop latency p99", raw: Percentile.of(rawHops, 0.99),
                        ours: Percentile.of(ourHops, 0.99), unit: .milliseconds, target: ""))
            }
        } catch {
            _ = try? await control.deleteQueue(queue)
            await control.close()
            throw error
        }
        try await control.deleteQueue(queue)
        await control.close()
    }

}

/// The two sides of each measurement.
private struct Bench {
    let url: AMQPURL
    let queue: String
    let prefetch: UInt16
    let confirmWindow: Int

    func raw(bytes: Int, messages: Int, confirm: Bool) async throws -> Double {
        try await RawRabbitMQBaseline.throughput(
            url: url, queue: queue, bodyBytes: bytes, messages: messages, prefetchCount: prefetch,
            confirmWindow: confirm ? confirmWindow : nil)
    }

    private func connect(_ name: String) async throws -> AMQPConnection {
        try await AMQPConnection.connect(
            to: url, configuration: AMQPConnectionConfiguration(connectionName: name, reconnect: .disabled))
    }

    /// Consumed messages per second, from the first publish to the last delivery.
    func hyperion(bytes: Int, messages: Int, confirm: Bool) async throws -> Double {
        let publisher = try await connect("bench-publisher")
        let consumerConnection = try await connect("bench-consumer")
        let consumer = try await consumerConnection.consume(queue: queue, prefetchCount: prefetch)
        let consuming = Task {
            var count = 0
            for try await delivery in consumer {
                delivery.ack()
                count += 1
                if count == messages { break }
            }
            return ContinuousClock.now
        }
        let message = AMQPMessage(body: [UInt8](repeating: 0x5A, count: bytes))
        let start = ContinuousClock.now
        if confirm {
            var window: [AMQPPendingConfirm] = []
            var oldest = 0
            window.reserveCapacity(messages)
            for _ in 0..<messages {
                if window.count - oldest >= confirmWindow {
                    try await window[oldest].wait()
                    oldest += 1
                }
                window.append(try await publisher.startConfirmedPublish(message, routingKey: queue))
            }
            for pending in window[oldest...] { try await pending.wait() }
        } else {
            for _ in 0..<messages { try await publisher.publish(message, routingKey: queue) }
        }
        let end = try await consuming.value
        try await consumer.cancel()
        await consumerConnection.close()
        await publisher.close()
        return Double(messages) / Self.seconds(end - start)
    }

    /// Publish one message, wait for its delivery, repeat — the loop running on the consumer
    /// connection's executor, as a latency-sensitive forwarder would.
    func hyperionHops(bytes: Int, samples: Int) async throws -> [Double] {
        let publisher = try await connect("bench-latency-publisher")
        let consumerConnection = try await connect("bench-latency-consumer")
        let consumer = try await consumerConnection.consume(queue: queue, prefetchCount: 10)
        let message = AMQPMessage(body: [UInt8](repeating: 0x5A, count: bytes))
        let queue = queue
        let loop: @Sendable () async throws -> [Double] = {
            var deliveries = consumer.makeAsyncIterator()
            var hops: [Double] = []
            hops.reserveCapacity(samples)
            for _ in 0..<samples {
                let start = ContinuousClock.now
                try await publisher.publish(message, routingKey: queue)
                guard let delivery = try await deliveries.next() else { throw AMQPError.connectionClosed }
                hops.append(Self.seconds(ContinuousClock.now - start))
                delivery.ack()
            }
            return hops
        }
        let hops = try await withTaskExecutorPreference(consumerConnection.executor) { try await loop() }
        try await consumer.cancel()
        await consumerConnection.close()
        await publisher.close()
        return hops
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}

/// One printed line: a figure for both sides and their ratio.
private struct Row: CustomStringConvertible {
    enum Unit { case rate, milliseconds }

    static let header =
        "body      figure                           raw rabbitmq-c     hyperion AMQP    ratio   target"

    let body: String
    let figure: String
    let raw: Double
    let ours: Double
    let unit: Unit
    let target: String

    var description: String {
        func show(_ value: Double) -> String {
            switch unit {
            case .rate: String(format: "%.0f msg/s", value)
            case .milliseconds: String(format: "%.3f ms", value * 1000)
            }
        }
        return body.padding(toLength: 10, withPad: " ", startingAt: 0)
            + figure.padding(toLength: 31, withPad: " ", startingAt: 0)
            + show(raw).leftPadded(16) + show(ours).leftPadded(18)
            + String(format: "%7.2f×", ours / raw).leftPadded(9) + "   " + target
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
