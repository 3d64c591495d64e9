import AMQP
import Foundation
import JSON
import Messages

/// A whole Hyperion (planner, stage workers, schedulers) on a private virtual host of the test
/// broker, started from the release binaries beside the tests, plus a client connection.
public final class Cluster: @unchecked Sendable {
    // Sendable: processes are added only while starting, before the cluster is shared.

    /// A stage worker to start.
    public struct Worker: Sendable {
        public var tier: String
        public var id: String
        public var arguments: [String]
        public init(tier: String, id: String, arguments: [String] = []) {
            self.tier = tier
            self.id = id
            self.arguments = arguments
        }
    }

    public let host: TestVirtualHost
    public let client: AMQPConnection
    public private(set) var planner: ServiceProcess?
    public private(set) var workers: [String: ServiceProcess] = [:]
    public private(set) var schedulers: [ServiceProcess] = []
    private let telemetry: Inbox

    /// One worker per tier of examples/local-topology.json.
    public static let localWorkers = [
        Worker(tier: "edge", id: "edge-1"), Worker(tier: "fog", id: "fog-1"), Worker(tier: "cloud", id: "cloud-1"),
    ]

    private init(host: TestVirtualHost, client: AMQPConnection, telemetry: Inbox) {
        self.host = host
        self.client = client
        self.telemetry = telemetry
    }

    /// Starts everything and waits until every worker serves a plan. `environment` is set for
    /// every service; `schedulerEnvironment` for the schedulers only, after it.
    public static func start(
        workers: [Worker] = localWorkers, schedulers: Int = 1, routing: String = "arts",
        topology: String = TestPaths.localTopology, plannerArguments: [String] = [], schedulerArguments: [String] = [],
        environment: [String: String] = [:], schedulerEnvironment: [String: String] = [:]
    ) async throws -> Cluster {
        let model = try TestPaths.modelFile()
        let host = try await TestVirtualHost.create(prefix: "test-cluster")
        let client = try await host.connect("client")
        let queue = try await client.declare(AMQPQueue(name: "", durable: false, exclusive: true, autoDelete: true))
        try await client.declare(AMQPExchange(name: Names.Exchange.telemetry, kind: .topic))
        try await client.bind(.queue(queue.name, to: Names.Exchange.telemetry, routingKey: "worker.#"))
        let cluster = Cluster(host: host, client: client, telemetry: try await Inbox(queue: queue.name, on: client))
        let url = host.urlText
        cluster.planner = try ServiceProcess(
            "partition-planner",
            arguments: ["--model", model, "--topology", topology, "--replan-threshold", "1000"] + plannerArguments,
            amqpURL: url, logLevel: "info", environment: environment)
        for worker in workers {
            cluster.workers[worker.id] = try ServiceProcess(
                "stage-worker", arguments: ["--tier", worker.tier, "--node-id", worker.id, "--model", model] + worker.arguments,
                amqpURL: url, logLevel: "info", environment: environment)
        }
        for index in 0..<schedulers {
            cluster.schedulers.append(
                try ServiceProcess(
                    "scheduler", arguments: ["--node-id", "sched-\(index + 1)", "--model", model, "--routing", routing] + schedulerArguments,
                    amqpURL: url, logLevel: "info", environment: environment.merging(schedulerEnvironment) { _, new in new }))
        }
        for worker in workers {
            guard await cluster.heartbeat(of: worker.id, timeoutSeconds: 60, where: { $0.state == .serving }) != nil else {
                let log = cluster.workers[worker.id]?.log ?? ""
                await cluster.stop()
                throw TestPaths.Missing(description: "worker \(worker.id) did not serve a plan within 60 s; its log:\n\(log)")
            }
        }
        // Give the schedulers a heartbeat to see every worker.
        try await Task.sleep(for: .seconds(1.5))
        return cluster
    }

    /// Starts a cluster, runs `body` with it, and stops it whatever `body` does, so no process
    /// outlives its test.
    public static func with<T: Sendable>(
        workers: [Worker] = localWorkers, schedulers: Int = 1, routing: String = "arts",
        topology: String = TestPaths.localTopology, plannerArguments: [String] = [], schedulerArguments: [String] = [],
        environment: [String: String] = [:], schedulerEnvironment: [String: String] = [:],
        _ body: (Cluster) async throws -> T
    ) async throws -> T {
        let cluster = try await start(
            workers: workers, schedulers: schedulers, routing: routing, topology: topology,
            plannerArguments: plannerArguments, schedulerArguments: schedulerArguments,
            environment: environment, schedulerEnvironment: schedulerEnvironment)
        do {
            let value = try await body(cluster)
            await cluster.stop()
            return value
        } catch {
            await cluster.stop()
            throw error
        }
    }

    /// The newest heartbeat of `node` that satisfies `predicate`, waiting for one.
    public func heartbeat(
        of node: String, timeoutSeconds: Double = 10, where predicate: @escaping @Sendable (Telemetry) -> Bool = { _ in true }
    ) async -> Telemetry? {
        let since = telemetry.all.count
        _ = since
        return await eventually(timeoutSeconds: timeoutSeconds) {
            self.telemetry.all.reversed().lazy
                .compactMap { try? decodeMessage(Telemetry.self, from: $0.body) }
                .first { $0.node == node && predicate($0) }
        }
    }

    /// Heartbeats received after this call only.
    public func freshHeartbeat(
        of node: String, timeoutSeconds: Double = 10, where predicate: @escaping @Sendable (Telemetry) -> Bool = { _ in true }
    ) async -> Telemetry? {
        let start = telemetry.all.count
        return await eventually(timeoutSeconds: timeoutSeconds) {
            self.telemetry.all.dropFirst(start).lazy
                .compactMap { try? decodeMessage(Telemetry.self, from: $0.body) }
                .first { $0.node == node && predicate($0) }
        }
    }

    /// Stops every process (SIGTERM) and deletes the virtual host.
    public func stop() async {
        for scheduler in schedulers { _ = await scheduler.terminate(timeoutSeconds: 5) }
        for worker in workers.values { _ = await worker.terminate(timeoutSeconds: 5) }
        _ = await planner?.terminate(timeoutSeconds: 5)
        await client.close()
        await host.delete()
    }

    /// Every log line of every process, for failure messages.
    public var logs: String {
        var text = "== planner\n\(planner?.log ?? "")\n"
        for (id, worker) in workers.sorted(by: { $0.key < $1.key }) { text += "== \(id)\n\(worker.log)\n" }
        for (index, scheduler) in schedulers.enumerated() { text += "== scheduler \(index + 1)\n\(scheduler.log)\n" }
        return text
    }
}

/// One request in flight from a test client: its streamed tokens and final reply.
public final class ClientRequest: Sendable {
    public let id: String
    private let consumer: AMQPConsumer
    private let connection: AMQPConnection
    private let replies = Locked<[Reply]>([])
    private let tokenArrivals = Locked<[Date]>([])
    public let sentAt = Date()

    /// Publishes `request` onto ingress with direct reply-to.
    public init(_ request: InferenceRequest, on connection: AMQPConnection) async throws {
        var request = request
        let id = request.id ?? UUID().uuidString
        request.id = id
        self.id = id
        self.connection = connection
        consumer = try await connection.consume(queue: AMQPRPCClient.directReplyQueue, prefetchCount: 0, noAck: true)
        let replies = replies
        let arrivals = tokenArrivals
        let consumer = consumer
        Task {
            do {
                for try await delivery in consumer {
                    if let reply = try? decodeMessage(Reply.self, from: delivery.body) {
                        if case .token = reply { arrivals.withLock { $0.append(Date()) } }
                        replies.withLock { $0.append(reply) }
                    }
                }
            } catch {}
        }
        try await connection.publish(
            AMQPMessage(
                body: encodeMessage(request),
                properties: AMQPProperties(
                    contentType: Names.ContentType.json, deliveryMode: 2, correlationID: id, replyTo: AMQPRPCClient.directReplyQueue)),
            exchange: Names.Exchange.ingress, routingKey: Names.Queue.ingress, onChannelOf: consumer.tag)
    }

    /// Sends a cancel for this request on the request's own channel, so the broker gives it the
    /// same reply address.
    public func cancel() async throws {
        try await connection.publish(
            AMQPMessage(
                body: encodeMessage(CancelRequest(id: id)),
                properties: AMQPProperties(contentType: Names.ContentType.json, replyTo: AMQPRPCClient.directReplyQueue)),
            exchange: Names.Exchange.cancel, routingKey: "", onChannelOf: consumer.tag)
    }

    public var tokens: [TokenReply] {
        replies.withLock { $0 }.compactMap { if case .token(let token) = $0 { token } else { nil } }
    }

    /// The longest wait between two streamed tokens, in seconds (0 with fewer than two).
    public var largestTokenGapSeconds: Double {
        let times = tokenArrivals.withLock { $0 }
        return zip(times.dropFirst(), times).map { $0.timeIntervalSince($1) }.max() ?? 0
    }

    /// How many final replies (results or errors) arrived: one, unless a request was redone.
    public var finalReplyCount: Int {
        replies.withLock { $0 }.filter { if case .token = $0 { false } else { true } }.count
    }

    /// Every result received, in order: more than one only if the request was redone.
    public var results: [ResultReply] {
        replies.withLock { $0 }.compactMap { if case .result(let result) = $0 { result } else { nil } }
    }

    /// The final reply (result or error), waiting for it.
    public func final(timeoutSeconds: Double = 120) async -> Reply? {
        let reply = await eventually(timeoutSeconds: timeoutSeconds) {
            self.replies.withLock { $0 }.first { if case .token = $0 { false } else { true } }
        }
        return reply
    }

    /// The result, or nil (an error reply or no reply in time).
    public func result(timeoutSeconds: Double = 120) async -> ResultReply? {
        if case .result(let result) = await final(timeoutSeconds: timeoutSeconds) { return result }
        return nil
    }
}

/// `hyperion generate --local --json` for the same model: the single-process reference.
public func localGeneration(prompt: String, chat: Bool, maxTokens: Int) throws -> (tokens: [Int32], text: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try ServiceProcess.binaryPath("hyperion"))
    process.arguments = ["generate", "--local", "--json", "--model", try TestPaths.modelFile(), "--max-tokens", "\(maxTokens)"]
        + (chat ? ["--chat"] : []) + [prompt]
    let output = Pipe()
    process.standardOutput = output
    let errors = Pipe()
    process.standardError = errors
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0, process.terminationReason == .exit else {
        throw TestPaths.Missing(description: "hyperion generate --local exited with \(process.terminationStatus) (\(process.terminationReason == .exit ? "exit" : "signal")): \(errorText)")
    }
    let value = try JSONValue.parse(bytes: Array(data))
    let tokens = (value["tokens"]?.arrayValue ?? []).compactMap { $0.intValue.map { Int32($0) } }
    return (tokens, value["text"]?.stringValue ?? "")
}
