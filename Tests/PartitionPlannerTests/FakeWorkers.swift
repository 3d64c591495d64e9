import AMQP
import IntegrationSupport
import Foundation
import JSON
import Messages

/// A fake stage worker's heartbeats, published every `intervalSeconds` until `stop()`; the
/// test changes speeds while it runs.
final class FakeWorkers: Sendable {
    struct Node: Sendable {
        var id: String
        var tier: String
        var speed: Double = 1
        var planVersion: Int64?
    }

    private let nodes: Locked<[Node]>
    private let task = Locked<Task<Void, Never>?>(nil)

    init(_ nodes: [Node], on connection: AMQPConnection, intervalSeconds: Double) {
        self.nodes = Locked(nodes)
        let instance = UUID().uuidString
        let task = Task { [self] in
            while !Task.isCancelled {
                for node in self.nodes.withLock({ $0 }) {
                    let telemetry = Telemetry(
                        node: node.id, instance: instance, tier: node.tier, planVersion: node.planVersion, state: .serving,
                        nominal: .init(flops: 4e9, memoryBandwidthBytesPerSecond: 5e9, memoryBytes: 1e9), kvFreeBytes: 1e8,
                        queueDepth: 0, activeSequences: 0, busyFraction: 0, speed: node.speed, tokensPerSecond: 0,
                        modelSHA256: nil, timestamp: Date().timeIntervalSince1970)
                    try? await connection.publish(
                        AMQPMessage(body: encodeMessage(telemetry), properties: AMQPProperties(contentType: Names.ContentType.json)),
                        exchange: Names.Exchange.telemetry, routingKey: Names.RoutingKey.workerTelemetry(tier: node.tier, node: node.id))
                }
                try? await Task.sleep(for: .seconds(intervalSeconds))
            }
        }
        self.task.withLock { $0 = task }
    }

    /// The three nodes of examples/local-topology.json.
    static let localNodes = [Node(id: "edge-1", tier: "edge"), Node(id: "fog-1", tier: "fog"), Node(id: "cloud-1", tier: "cloud")]

    func setSpeed(_ speed: Double, of id: String) {
        nodes.withLock { nodes in
            for index in nodes.indices where nodes[index].id == id { nodes[index].speed = speed }
        }
    }

    func add(_ node: Node) { nodes.withLock { $0.append(node) } }

    func stop() { task.withLock { $0?.cancel() } }

    deinit { stop() }
}

