import AMQP
import ArgumentParser
import Emulation
import Foundation
import Messages
import Partitioning
import Profiles
import ServiceSupport

/// `hyperion bench emulation`: how faithfully the emulation instruments keep their durations on
/// this machine — the profile executor's holds against the roofline, and a real `link-emulator`
/// process's delivered throughput and latency against the link's figures.
struct BenchEmulationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emulation",
        abstract: "Measure profile-executor holds and link-emulator throughput against their emulated figures.",
        discussion: """
            Holds: the model is planned (BSDP) on the topology; for each stage, on the device of its \
            tier's first node, a 512-token prefill chunk, a lone decode and a batch of 8 decodes are \
            held as the profile executor holds them (the same EmulatedStage and clock), repeatedly, at \
            each time scale. Printed: the roofline seconds, the hold asked for (roofline × time scale), \
            and measured wall time / hold of single holds (mean, median, p90, max) — above 1 is this \
            machine's timer and scheduling overshoot (a loaded machine preempts the holding thread now \
            and then), weighing most on sub-millisecond holds — and, as "stream", the wall time of the \
            same holds run back to back on the device's timeline over their sum: what a busy node \
            delivers, since a late hold is made up by the next.

            Link: a link-emulator is started beside hyperion on the broker (HYPERION_AMQP_URL, under a \
            queue name of its own, so a running Hyperion is not disturbed), --messages messages of \
            --message-bytes are published to it at once, and their arrivals at a destination queue are \
            timed. At time scale s the link is given bandwidth --link-wall-bytes-per-second × s, so its \
            wall-clock rate stays within what the broker moves. Printed: delivered throughput between \
            a tenth of the arrivals on (the slope of a least-squares line through arrival time against \
            bytes) against the link's rate (emulated, and wall = emulated / s); then the median delay of 5 lone messages on the idle link against serialisation + \
            latency (× s). Broker overhead is real and unscaled: it adds to every delay, so the delay \
            ratio grows as s shrinks.

            Examples:
              hyperion bench emulation
              hyperion bench emulation --time-scales 1,0.1,0.01 --holds-only
            """)

    @Option(help: "Model to plan and emulate: a preset, a profile .json or a GGUF file.")
    var model: String = "phi-3-medium:q4_0"

    @Option(help: "Topology whose tiers give the devices.")
    var topology: String = "examples/paper-testbed.json"

    @Option(help: "Comma-separated time scales to measure at.")
    var timeScales: String = "1,0.1"

    @Option(help: "Least wall time per hold case, in seconds (at least 3 runs each).")
    var secondsPerCase: Double = 0.4

    @Flag(help: "Measure holds only (no broker needed).")
    var holdsOnly = false

    @OptionGroup
    var broker: BrokerOptions
    var amqpURL: String { broker.amqpURL }

    @Option(help: "Size of each message sent through the link.")
    var messageBytes: Int = 1_048_576

    @Option(help: "Messages sent through the link per time scale.")
    var messages: Int = 120

    @Option(help: "Wall-clock rate the link is set to at every time scale (its emulated bandwidth is this × the scale).")
    var linkWallBytesPerSecond: Double = 1.25e8

    @Option(help: "The link's emulated one-way latency in seconds.")
    var linkLatencySeconds: Double = 0.02

    mutating func validate() throws {
        guard !scales.isEmpty else { throw ValidationError("--time-scales: expected numbers > 0 separated by commas, got '\(timeScales)'") }
        guard secondsPerCase > 0 else { throw ValidationError("--seconds-per-case: expected a number > 0") }
        guard messageBytes >= 1 else { throw ValidationError("--message-bytes: expected an integer >= 1") }
        guard messages >= 2 else { throw ValidationError("--messages: expected an integer >= 2") }
        guard linkWallBytesPerSecond > 0 else { throw ValidationError("--link-wall-bytes-per-second: expected a number > 0") }
        guard linkLatencySeconds >= 0 else { throw ValidationError("--link-latency-seconds: expected a number >= 0") }
    }

    private var scales: [TimeScale] {
        let parts = timeScales.split(separator: ",")
        let parsed = parts.compactMap { Double($0.trimmingCharacters(in: .whitespaces)).flatMap { try? TimeScale($0) } }
        return parsed.count == parts.count ? parsed : []
    }

    func run() async throws {
        let source: ModelSource
        let testbed: Topology
        do {
            source = try ModelSource.load(model)
            testbed = try Topology.parse(ProfileFiles.readJSON(topology))
        } catch {
            printError("bench emulation: \(error)")
            throw ExitCode(2)
        }
        try measureHolds(source: source, topology: testbed, named: topology)
        if !holdsOnly { try await measureLink() }
    }

    // MARK: Holds

    private func measureHolds(source: ModelSource, topology: Topology, named topologyPath: String) throws {
        guard case .plan(let partition) = Planner.plan(model: source.profile(for: .default), topology: topology, workload: .default, policy: .bsdp)
        else {
            printError("bench emulation: \(model) does not fit \(topologyPath)")
            throw ExitCode.failure
        }
        let costs = StepCostModel(source: source)
        let clock = MonotonicHoldClock()
        let cases: [(String, [StepShape])] = [
            ("prefill 512", [.prefill(position: 0, tokens: 512)]),
            ("decode @512", [.decode(context: 512)]),
            ("decode ×8 @2048", Array(repeating: .decode(context: 2048), count: 8)),
        ]
        print("Profile executor holds: \(model), BSDP plan on \(topologyPath); measured wall time / hold asked for")
        print(row(["stage", "device", "step", "roofline", "scale", "hold", "runs", "mean", "median", "p90", "max", "stream"]))
        var worst = 0.0
        for stage in partition.stages {
            guard let node = topology.tiers.first(where: { $0.name == stage.tierName })?.nodes.first else { continue }
            let cost = costs.stage(firstBlock: stage.firstBlock, lastBlock: stage.lastBlock, holdsEmbedding: stage.holdsEmbedding, holdsHead: stage.holdsHead)
            for scale in scales {
                let emulated: EmulatedStage
                do {
                    emulated = try EmulatedStage(cost: cost, device: node.figures, timeScale: scale, blocks: "\(stage.blockRange)")
                } catch {
                    print("\(stage.tierName): \(error)")
                    continue
                }
                for (name, batch) in cases {
                    let hold = emulated.holdSeconds(batch)
                    let runs = max(3, min(500, Int((secondsPerCase / max(hold, 1e-6)).rounded(.up))))
                    var ratios: [Double] = []
                    for _ in 0..<runs {
                        let start = clock.now()
                        emulated.hold(batch, startedAt: start, on: clock)
                        ratios.append((clock.now() - start) / hold)
                    }
                    ratios.sort()
                    let median = ratios[ratios.count / 2]
                    let mean = ratios.reduce(0, +) / Double(ratios.count)
                    // The same holds back to back on the device's timeline, as a busy node runs them.
                    var timeline = DeviceTimeline()
                    let streamStart = clock.now()
                    for _ in 0..<runs {
                        emulated.hold(batch, startedAt: timeline.start(readyAt: streamStart, seconds: hold), on: clock)
                    }
                    let stream = (clock.now() - streamStart) / (hold * Double(runs))
                    worst = max(worst, median, stream)
                    print(row([
                        "\(stage.tierName) \(stage.firstBlock)-\(stage.lastBlock)", node.device ?? "custom", name,
                        PlanTable.seconds(emulated.rooflineSeconds(batch)), "\(scale)", PlanTable.seconds(hold), "\(runs)",
                        Self.ratio(mean), Self.ratio(median), Self.ratio(ratios[min(ratios.count - 1, ratios.count * 9 / 10)]), Self.ratio(ratios.last ?? 0),
                        Self.ratio(stream),
                    ]))
                }
            }
        }
        print("worst of the medians and stream ratios: \(Self.ratio(worst)) (target within 10%: ≤ 1.10)\n")
    }

    // MARK: Link

    private func measureLink() async throws {
        // Publishing and timing arrivals on separate connections: one connection thread writing the
        // burst would hold back the deliveries it reads and bunch their arrival times.
        let connection: AMQPConnection
        let publisher: AMQPConnection
        do {
            connection = try await AMQPConnection.connect(
                to: try AMQPURL(amqpURL),
                configuration: AMQPConnectionConfiguration(connectionName: "hyperion-bench-emulation", heartbeatSeconds: 10, reconnect: .disabled))
            publisher = try await AMQPConnection.connect(
                to: try AMQPURL(amqpURL),
                configuration: AMQPConnectionConfiguration(
                    connectionName: "hyperion-bench-emulation-publisher", heartbeatSeconds: 10, reconnect: .disabled))
        } catch {
            printError("bench emulation: cannot reach the broker at \(AMQPURL.redacted(amqpURL)) for the link measurement: \(error) (--holds-only skips it)")
            throw ExitCode.failure
        }
        let registry = ChildRegistry()
        let signals = TerminationSignals { _ in
            registry.interrupt()
            Foundation.exit(130)
        }
        defer { signals.cancel() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hyperion-bench-emulation-\(ProcessEnvironment.uuid().prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        print("Link emulator: \(messages) × \(messageBytes) bytes published at once, latency \(linkLatencySeconds) s emulated; broker overhead real and unscaled")
        print(row(["scale", "emulated B/s", "wall B/s", "delivered B/s", "ratio", "lone delay", "expected", "ratio"]))
        var failure: Error?
        for scale in scales {
            do {
                try await measureLink(at: scale, connection: connection, publisher: publisher, registry: registry, directory: directory)
            } catch {
                failure = error
                break
            }
        }
        await connection.close()
        await publisher.close()
        if let failure {
            printError("bench emulation: \(failure)")
            throw ExitCode.failure
        }
    }

    private func measureLink(
        at scale: TimeScale, connection: AMQPConnection, publisher: AMQPConnection, registry: ChildRegistry, directory: URL
    ) async throws {
        let name = "bench-\(ProcessEnvironment.uuid().prefix(8))"
        let bandwidth = linkWallBytesPerSecond * scale.factor
        let child = try ChildProcess(
            executable: Self.sibling("link-emulator"), label: "link-emulator",
            arguments: [
                "--link", name, "--bandwidth-bytes-per-second", "\(bandwidth)", "--latency-seconds", "\(linkLatencySeconds)",
                "--time-scale", "\(scale.factor)",
            ],
            amqpURL: amqpURL, logFile: directory.appendingPathComponent("\(name).log"), stopsFirst: false)
        registry.add(child)
        defer {
            child.terminate()
            registry.remove(child)
        }
        try await connection.declare(AMQPExchange(name: Names.Exchange.internal, kind: .direct))
        try await BrokerObjects.declareLinkQueue(Names.Queue.link(name), on: connection)
        let destination = try await connection.declare(AMQPQueue(name: "", durable: false, exclusive: true, autoDelete: true))
        try await connection.bind(.queue(destination.name, to: Names.Exchange.internal, routingKey: destination.name))
        let arrivals = try await connection.consume(queue: destination.name, prefetchCount: 0, noAck: true)
        // Wait for the link to consume its queue, so its start-up is not timed.
        let ready = Clock.monotonicSeconds() + 20
        while (try? await connection.inspectQueue(Names.Queue.link(name)).consumerCount) ?? 0 == 0 {
            guard Clock.monotonicSeconds() < ready, child.isRunning else {
                throw BenchEmulationFailure(description: "link-emulator did not start; its log:\n\(child.logTail(lines: 20))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let body = [UInt8](repeating: 0, count: messageBytes)
        let message = AMQPMessage(
            body: body,
            properties: AMQPProperties(contentType: Names.ContentType.step, headers: [Names.Header.linkDestination: .string(destination.name)]))
        var received = arrivals.makeAsyncIterator()
        let deadline = Task {
            try? await Task.sleep(for: .seconds(60 + Double(messages * messageBytes) / linkWallBytesPerSecond * 4))
            try? await arrivals.cancel()
        }
        defer {
            deadline.cancel()
            Task { try? await arrivals.cancel() }
        }
        func failure(_ count: Int) -> BenchEmulationFailure {
            BenchEmulationFailure(description: "only \(count) of \(messages) messages crossed the link; its log:\n\(child.logTail(lines: 20))")
        }
        // Throughput: a burst keeps the link busy; from the tenth of the messages on (once the
        // broker has taken the burst in), the slope of a least-squares line through arrival time
        // against bytes delivered, so one late or early arrival barely moves it.
        for _ in 0..<messages {
            try await publisher.publish(message, exchange: Names.Exchange.internal, routingKey: Names.Queue.link(name))
        }
        var times: [Double] = []
        while times.count < messages {
            guard try await received.next() != nil else { throw failure(times.count) }
            times.append(Clock.monotonicSeconds())
        }
        let delivered = Self.fittedRate(arrivals: Array(times.dropFirst(messages / 10)), bytesEach: messageBytes)
        // Latency: lone messages on the idle link, each waited for.
        var delays: [Double] = []
        for _ in 0..<5 {
            let sentAt = Clock.monotonicSeconds()
            try await publisher.publish(message, exchange: Names.Exchange.internal, routingKey: Names.Queue.link(name))
            guard try await received.next() != nil else { throw failure(messages + delays.count) }
            delays.append(Clock.monotonicSeconds() - sentAt)
        }
        let delay = delays.sorted()[delays.count / 2]
        let expectedDelay = scale.wallSeconds(Double(messageBytes) / bandwidth + linkLatencySeconds)
        print(row([
            "\(scale)", String(format: "%.3g", bandwidth), String(format: "%.3g", linkWallBytesPerSecond), String(format: "%.3g", delivered),
            Self.ratio(delivered / linkWallBytesPerSecond), PlanTable.seconds(delay), PlanTable.seconds(expectedDelay),
            Self.ratio(delay / expectedDelay),
        ]))
    }

    /// An executable beside this one (the release build puts every product in one folder).
    private static func sibling(_ name: String) -> URL {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(name)
    }

    /// Bytes per second of the least-squares line through (bytes delivered so far, arrival time).
    static func fittedRate(arrivals: [Double], bytesEach: Int) -> Double {
        let n = Double(arrivals.count)
        let xs = arrivals.indices.map { Double($0 * bytesEach) }
        let meanX = xs.reduce(0, +) / n
        let meanY = arrivals.reduce(0, +) / n
        let covariance = zip(xs, arrivals).reduce(0) { $0 + ($1.0 - meanX) * ($1.1 - meanY) }
        let variance = xs.reduce(0) { $0 + ($1 - meanX) * ($1 - meanX) }
        return covariance > 0 ? variance / covariance : .infinity
    }

    private func row(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in cell.padding(toLength: index < 3 ? 17 : 14, withPad: " ", startingAt: 0) }.joined()
    }

    private static func ratio(_ value: Double) -> String { String(format: "%.3f", value) }
}

/// The link measurement could not complete.
struct BenchEmulationFailure: Error, CustomStringConvertible {
    var description: String
}
