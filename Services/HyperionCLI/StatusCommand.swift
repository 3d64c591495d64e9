import AMQP
import ArgumentParser
import JSON
import Messages
import Partitioning
import ServiceSupport

/// `hyperion status`: the current plan, and per tier the live nodes with their load and speed.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the current plan and every live node: state, queue depth, sequences, utilisation, speed.",
        discussion: """
            Asks the planner for the plan (hyperion.plan.get) and listens to worker heartbeats on
            hyperion.telemetry for --listen seconds. Needs a user that may read telemetry (not the
            least-privileged 'client').

            Examples:
              HYPERION_AMQP_URL=$(cat .run/admin_url) hyperion status
              hyperion status --amqp-url "$(cat .run/admin_url)" --listen 5 --json
            """)

    @OptionGroup
    var broker: BrokerOptions
    var amqpURL: String { broker.amqpURL }

    @Option(parsing: .unconditional, help: "Seconds to listen for heartbeats (> 0; workers beat every 1 s by default).")
    var listen: Double = 2.5

    @Flag(help: "Print JSON: {\"plan\":…,\"nodes\":[telemetry…]}.")
    var json = false

    func validate() throws {
        guard listen > 0, listen.isFinite else { throw ValidationError("--listen must be > 0 seconds, got \(listen)") }
    }

    func run() async throws {
        let connection: AMQPConnection
        do {
            (_, connection) = try await RemoteGeneration.connect(to: amqpURL, name: "hyperion-status")
        } catch {
            printError("hyperion status: \(error)")
            throw ExitCode(error.exitCode)
        }
        defer { Task { await connection.close() } }

        var beats: [String: Telemetry] = [:]
        var planner: PlannerHeartbeat?
        do {
            let queue = try await connection.declare(AMQPQueue(name: "", durable: false, exclusive: true, autoDelete: true))
            try await connection.bind(.queue(queue.name, to: Names.Exchange.telemetry, routingKey: "worker.#"))
            try await connection.bind(.queue(queue.name, to: Names.Exchange.telemetry, routingKey: Names.RoutingKey.plannerTelemetry))
            let consumer = try await connection.consume(queue: queue.name, prefetchCount: 0, noAck: true)
            let stop = Task {
                try? await Task.sleep(for: .seconds(listen))
                try? await consumer.cancel()
            }
            defer { stop.cancel() }
            for try await delivery in consumer {
                if let beat = try? decodeMessage(Telemetry.self, from: delivery.body) {
                    beats[beat.node] = beat
                } else if let beat = try? decodeMessage(PlannerHeartbeat.self, from: delivery.body) {
                    planner = beat
                }
            }
        } catch {
            printError("hyperion status: cannot listen to telemetry: \(error)")
            throw ExitCode.failure
        }

        var planValue: JSONValue = .null
        if let rpc = try? await AMQPRPCClient.start(on: connection),
            let reply = try? await rpc.call(
                AMQPMessage(body: encodeMessage(PlanRequest()), properties: AMQPProperties(contentType: Names.ContentType.json)),
                exchange: Names.Exchange.internal, routingKey: Names.Queue.planGet, timeoutSeconds: 3)
        {
            planValue = (try? JSONValue.parse(bytes: reply.body)) ?? .null
        }
        var depths: [String: Int] = [:]
        for beat in beats.values {
            if let status = try? await connection.inspectQueue(Names.Queue.stage(tier: beat.tier, node: beat.node)) {
                depths[beat.node] = Int(status.messageCount)
            }
        }

        let nodes = beats.values.sorted { ($0.tier, $0.node) < ($1.tier, $1.node) }
        if json {
            let nodeValues = nodes.compactMap { try? JSONCoding.encodeValue($0) }
            let plannerValue = planner.flatMap { try? JSONCoding.encodeValue($0) } ?? .null
            print(JSONValue.object(JSONObject([("plan", planValue), ("planner", plannerValue), ("nodes", .array(nodeValues))])).serialized(pretty: true))
            return
        }
        if let plan = try? PlanDocument.parse(planValue) {
            print("plan \(plan.version) (\(plan.partition.policy.rawValue)), model \(plan.modelName); bottleneck \(format(plan.partition.bottleneckSeconds)) s per request as planned")
            if let live = planner?.liveBottleneckSeconds, planner?.planVersion == plan.version {
                print("  on the nodes' measured compute speeds: \(format(live)) s per request")
            }
            for stage in plan.partition.stages {
                print("  \(stage.tierName.padding(8))blocks \(stage.blockRange)")
            }
        } else {
            print("plan: none (is the partition-planner running?)")
        }
        let tiers = (try? PlanDocument.parse(planValue))?.partition.stages.map(\.tierName) ?? Array(Set(nodes.map(\.tier))).sorted()
        print("")
        print("tier    node                  state     plan            queue  seqs  busy   speed  tok/s  kv free")
        for tier in tiers + Array(Set(nodes.map(\.tier)).subtracting(tiers)).sorted() {
            let members = nodes.filter { $0.tier == tier }
            if members.isEmpty { print("\(tier.padding(8))(no heartbeat within \(format(listen)) s)") }
            for beat in members {
                let queue = depths[beat.node].map(String.init) ?? "?"
                print(
                    "\(tier.padding(8))\(beat.node.padding(22))\(beat.state.rawValue.padding(10))\((beat.planVersion.map(String.init) ?? "-").padding(16))\(queue.padding(7))\(String(beat.activeSequences).padding(6))\(format(beat.busyFraction * 100, digits: 0).padding(4))%  \(format(beat.speed).padding(7))\(format(beat.tokensPerSecond, digits: 1).padding(7))\(format(beat.kvFreeBytes / 1_048_576, digits: 0)) MiB"
                )
            }
        }
    }
}

private func format(_ value: Double, digits: Int = 3) -> String {
    let scale = pow10(digits)
    let rounded = (value * scale).rounded() / scale
    return digits == 0 ? String(Int(rounded)) : String(rounded)
}

private func pow10(_ n: Int) -> Double { (0..<n).reduce(1.0) { acc, _ in acc * 10 } }

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
