import AMQP
import Foundation
import IntegrationSupport
import JSON
import Messages
import Partitioning
import ServiceSupport
import Testing

/// The `partition-planner` service against a real broker: what a worker, a scheduler and an
/// operator see of it.
@Suite("partition-planner against a real broker")
struct PlannerServiceTests {
    /// Small intervals so a test runs in seconds: heartbeats every 0.2 s (nodes out after 0.6 s).
    static func arguments(model: String = "smollm2-135m:q4_1", extra: [String] = []) -> [String] {
        ["--model", model, "--topology", TestPaths.localTopology, "--heartbeat-seconds", "0.2"] + extra
    }

    /// Runs `body` in a fresh virtual host with every shared broker object declared, and a
    /// queue `test.plans` that keeps every plan published (it survives connection losses).
    static func withBroker(_ body: (TestVirtualHost, AMQPConnection, Inbox) async throws -> Void) async throws {
        let host = try await TestVirtualHost.create(prefix: "test-planner")
        do {
            let connection = try await host.connect("planner-test")
            try await BrokerObjects.declareShared(for: .scheduler, on: connection)
            try await connection.declare(AMQPQueue(name: "test.plans", durable: false))
            try await connection.bind(.queue("test.plans", to: Names.Exchange.plan))
            let plans = try await Inbox(queue: "test.plans", on: connection)
            try await body(host, connection, plans)
            await connection.close()
        } catch {
            await host.delete()
            throw error
        }
        await host.delete()
    }

    static func plan(_ delivery: AMQPDelivery) throws -> PlanDocument {
        try PlanDocument.parse(try JSONValue.parse(bytes: delivery.body))
    }

    static func planGet(_ rpc: AMQPRPCClient, correlationID: String, body: String = #"{"v":1,"type":"plan.get"}"#)
        async throws -> AMQPDelivery
    {
        let request = AMQPMessage(
            text: body, properties: AMQPProperties(contentType: Names.ContentType.json, correlationID: correlationID))
        return try await rpc.call(request, exchange: Names.Exchange.internal, routingKey: Names.Queue.planGet, timeoutSeconds: 10)
    }

    @Test("the service gives every tier blocks unless HYPERION_REQUIRE_EVERY_TIER=false lets it leave a too-small tier out")
    func emptyTier() async throws {
        // The edge node has 1 MB: no block fits it.
        let topology = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-edge-\(UUID().uuidString).json")
        try #"{"tiers":[{"name":"edge","nodes":[{"id":"edge-1","flops":4e9,"memory_bytes":1e6}],"link_to_next":{"bandwidth_bytes_per_s":2e8,"latency_s":0.00015}},{"name":"cloud","nodes":[{"id":"cloud-1","flops":4e9,"mem_bw_bytes_per_s":5e9,"memory_bytes":1e9}]}]}"#
            .write(to: topology, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: topology) }
        let arguments = ["--model", "smollm2-135m:q4_1", "--topology", topology.path, "--heartbeat-seconds", "0.2"]
        try await Self.withBroker { host, _, plans in
            let planner = try ServiceProcess(
                "partition-planner", arguments: arguments, amqpURL: host.urlText, environment: ["HYPERION_REQUIRE_EVERY_TIER": "false"])
            let published = try #require(await plans.first(timeoutSeconds: 30) { _ in true }, "no plan; log:\n\(planner.log)")
            #expect(try Self.plan(published).partition.stages.map(\.tierName) == ["cloud"])
            #expect(await planner.terminate() == 0)
        }
        for extra in [[String: String](), ["HYPERION_REQUIRE_EVERY_TIER": "true"]] {
            try await Self.withBroker { host, _, plans in
                let planner = try ServiceProcess("partition-planner", arguments: arguments, amqpURL: host.urlText, environment: extra)
                let refused = await planner.logLine(containing: "no bsdp partition fits", timeoutSeconds: 30)
                #expect(refused?.contains("edge") == true, "\(extra) log:\n\(planner.log)")
                #expect(plans.all.isEmpty)
                _ = await planner.terminate()
            }
        }
        try await Self.withBroker { host, _, _ in
            let planner = try ServiceProcess(
                "partition-planner", arguments: arguments, amqpURL: host.urlText, environment: ["HYPERION_REQUIRE_EVERY_TIER": "maybe"])
            #expect(await planner.waitForExit(timeoutSeconds: 30) == 2)
            #expect(planner.log.contains("HYPERION_REQUIRE_EVERY_TIER: expected true or false, got 'maybe'"), "log:\n\(planner.log)")
        }
    }

    @Test("at start it publishes the plan, persistent, naming the GGUF file's sha256; plan.get answers the same plan")
    func planAtStart() async throws {
        try await Self.withBroker { host, connection, plans in
            let startMilliseconds = Int64(Date().timeIntervalSince1970 * 1000)
            let planner = try ServiceProcess(
                "partition-planner",
                arguments: Self.arguments(model: try TestPaths.modelFile(), extra: ["--prompt-tokens", "64", "--output-tokens", "32"]),
                amqpURL: host.urlText)
            let published = try #require(await plans.first(timeoutSeconds: 30) { _ in true }, "no plan published; log:\n\(planner.log)")
            #expect(published.properties.isPersistent)
            #expect(published.properties.contentType == Names.ContentType.json)
            let document = try Self.plan(published)
            #expect(document.modelSHA256 == (try TestPaths.modelSHA256()))
            #expect(document.modelName == "SmolLM2-135M-Instruct.Q4_1.gguf")
            #expect(document.workload.promptTokens == 64 && document.workload.outputTokens == 32)
            #expect(document.partition.stages.map(\.tierName) == ["edge", "fog", "cloud"])
            #expect(document.partition.stages.first?.firstBlock == 0 && document.partition.stages.last?.lastBlock == 29)
            #expect(document.version >= startMilliseconds, "versions are epoch milliseconds at creation")

            let rpc = try await AMQPRPCClient.start(on: connection)
            let reply = try await Self.planGet(rpc, correlationID: "test-corr-1")
            #expect(reply.properties.correlationID == "test-corr-1")
            #expect(reply.body == published.body, "plan.get answers exactly the published plan")
            let empty = try await Self.planGet(rpc, correlationID: "test-corr-2", body: "")
            #expect(empty.body == published.body, "an empty request body asks for the plan too")

            #expect(await planner.terminate() == 0, "SIGTERM ends the planner cleanly; log:\n\(planner.log)")
            #expect(plans.all.count == 1)
        }
    }

    @Test("bad messages go to hyperion.dead with their reason, bad requests get an error reply, and it keeps answering")
    func badInput() async throws {
        try await Self.withBroker { host, connection, plans in
            let dead = try await Inbox(queue: Names.Queue.dead, on: connection)
            let planner = try ServiceProcess("partition-planner", arguments: Self.arguments(), amqpURL: host.urlText)
            let published = try #require(await plans.first { _ in true }, "no plan published; log:\n\(planner.log)")

            // A plan request with nowhere to reply.
            try await connection.publishConfirmed(
                AMQPMessage(text: #"{"v":1,"type":"plan.get"}"#), exchange: Names.Exchange.internal,
                routingKey: Names.Queue.planGet)
            // Telemetry that is not JSON, lacks a field, has an unknown version, or lies in its key.
            let badTelemetry: [(key: String, body: String)] = [
                ("worker.edge.bad1", "{not json"),
                ("worker.edge.bad2", #"{"v":1,"node":"bad2","tier":"edge"}"#),
                ("worker.edge.bad3", #"{"v":2,"node":"bad3"}"#),
                ("worker.cloud.bad4", Self.telemetryText(node: "bad4", tier: "edge")),
            ]
            for (key, body) in badTelemetry {
                try await connection.publishConfirmed(AMQPMessage(text: body), exchange: Names.Exchange.telemetry, routingKey: key)
            }
            let reasons = await eventually(timeoutSeconds: 10) { () -> [String]? in
                let all = dead.all.compactMap { $0.properties.headers?[Names.Header.error]?.stringValue }
                return all.count >= 5 ? all : nil
            }
            let found = try #require(reasons, "dead letters: \(dead.all.count); log:\n\(planner.log)")
            #expect(found.contains { $0.hasPrefix("plan.get") && $0.contains("reply_to") })
            #expect(found.contains { $0.hasPrefix("telemetry") && $0.contains("line 1") }, "\(found)")
            #expect(found.contains { $0.hasPrefix("telemetry") && $0.contains("instance") }, "\(found)")
            #expect(found.contains { $0.hasPrefix("telemetry") && $0.contains("unsupported schema version 2") }, "\(found)")
            #expect(found.contains { $0.contains("routing key 'worker.cloud.bad4'") }, "\(found)")

            // A malformed request with a reply_to gets an error reply naming what is wrong.
            let rpc = try await AMQPRPCClient.start(on: connection)
            let refused = try await Self.planGet(rpc, correlationID: "bad-1", body: #"{"v":1,"type":"plan.put"}"#)
            let error = try JSONCoding.decode(ErrorReply.self, from: String(decoding: refused.body, as: UTF8.self))
            #expect(error.code == .badRequest)
            #expect(error.id == "bad-1")
            #expect(error.message.contains("type"))

            // And it keeps serving.
            let reply = try await Self.planGet(rpc, correlationID: "good-1")
            #expect(reply.body == published.body)
            #expect(planner.isRunning)
            #expect(await planner.terminate() == 0)
        }
    }

    @Test("plan versions grow across restarts, and outnumber a version a worker still serves")
    func versionsAcrossRestarts() async throws {
        try await Self.withBroker { host, connection, plans in
            var versions: [Int64] = []
            for _ in 0..<2 {
                let planner = try ServiceProcess("partition-planner", arguments: Self.arguments(), amqpURL: host.urlText)
                let count = versions.count
                let delivery = try #require(
                    await eventually(timeoutSeconds: 10) { plans.all.count > count ? plans.all[count] : nil },
                    "no plan; log:\n\(planner.log)")
                versions.append(try Self.plan(delivery).version)
                #expect(await planner.terminate() == 0)
            }
            #expect(versions[1] > versions[0])

            // A worker serving a plan stamped an hour ahead (another planner's clock): the next
            // planner's first plan is newer still.
            let ahead = versions[1] + 3_600_000
            let workers = FakeWorkers(
                [FakeWorkers.Node(id: "edge-1", tier: "edge", planVersion: ahead)], on: connection, intervalSeconds: 0.1)
            defer { workers.stop() }
            let planner = try ServiceProcess("partition-planner", arguments: Self.arguments(), amqpURL: host.urlText)
            let third = try #require(
                await eventually(timeoutSeconds: 10) { plans.all.count > 2 ? plans.all[2] : nil }, "no plan; log:\n\(planner.log)")
            #expect(try Self.plan(third).version == ahead + 1)
            #expect(await planner.terminate() == 0)
        }
    }

    @Test("a gain shorter than the dwell time does not re-plan; one that lasts does, and the log gives the figures")
    func replanOnSustainedDrift() async throws {
        try await Self.withBroker { host, connection, plans in
            let workers = FakeWorkers(FakeWorkers.localNodes, on: connection, intervalSeconds: 0.1)
            defer { workers.stop() }
            let planner = try ServiceProcess(
                "partition-planner",
                arguments: Self.arguments(extra: ["--replan-dwell-seconds", "2"]),
                amqpURL: host.urlText)
            let first = try Self.plan(try #require(await plans.first { _ in true }, "no plan; log:\n\(planner.log)"))
            #expect(await planner.logLine(containing: "node cloud-1 joined tier cloud") != nil)

            // Noise: the cloud node reads slow for well under the dwell time.
            workers.setSpeed(0.3, of: "cloud-1")
            #expect(await planner.logLine(containing: "gain started") != nil, "log:\n\(planner.log)")
            try await Task.sleep(for: .milliseconds(600))
            workers.setSpeed(1, of: "cloud-1")
            #expect(await planner.logLine(containing: "gain ended") != nil, "log:\n\(planner.log)")
            #expect(plans.all.count == 1, "noise re-planned; log:\n\(planner.log)")

            // Sustained: a new plan gives the slowed tier fewer blocks (or none).
            workers.setSpeed(0.3, of: "cloud-1")
            let second = try #require(
                await eventually(timeoutSeconds: 15) { plans.all.count > 1 ? plans.all[1] : nil }, "no re-plan; log:\n\(planner.log)")
            let replanned = try Self.plan(second)
            #expect(replanned.version > first.version)
            func cloudBlocks(_ document: PlanDocument) -> Int {
                document.partition.stages.first { $0.tierName == "cloud" }?.blockCount ?? 0
            }
            #expect(cloudBlocks(replanned) < cloudBlocks(first))
            let why = await planner.logLine(containing: "plan \(replanned.version):")
            #expect(why?.contains("better (needs 20.0%)") == true, "log:\n\(planner.log)")
            #expect(await planner.terminate() == 0)
        }
    }

    @Test("after losing its connection it publishes its plan again and still hears telemetry")
    func republishAfterReconnect() async throws {
        try await Self.withBroker { host, connection, plans in
            let planner = try ServiceProcess("partition-planner", arguments: Self.arguments(), amqpURL: host.urlText)
            let first = try #require(await plans.first { _ in true }, "no plan; log:\n\(planner.log)")
            try await host.closeAllConnections()
            let again = try #require(
                await eventually(timeoutSeconds: 15) { plans.all.count > 1 ? plans.all[1] : nil },
                "no plan after the reconnect; log:\n\(planner.log)")
            #expect(again.body == first.body, "the same plan, for subscribers that joined meanwhile")

            let workers = FakeWorkers([FakeWorkers.Node(id: "fog-9", tier: "fog")], on: connection, intervalSeconds: 0.1)
            defer { workers.stop() }
            #expect(await planner.logLine(containing: "node fog-9 joined tier fog", timeoutSeconds: 15) != nil, "log:\n\(planner.log)")
            #expect(await planner.terminate() == 0)
        }
    }

    static func telemetryText(node: String, tier: String) -> String {
        let telemetry = Telemetry(
            node: node, instance: "i", tier: tier, planVersion: nil, state: .serving,
            nominal: .init(flops: 4e9, memoryBandwidthBytesPerSecond: 5e9, memoryBytes: 1e9), kvFreeBytes: 1e8,
            queueDepth: 0, activeSequences: 0, busyFraction: 0, speed: 1, tokensPerSecond: 0, modelSHA256: nil, timestamp: 0)
        return String(decoding: encodeMessage(telemetry), as: UTF8.self)
    }
}
