/// What the scheduler knows about one stage-worker node, from its heartbeats and queue depth.
public struct NodeStatus: Sendable, Equatable {
    public enum State: String, Sendable {
        case loading, serving, draining
    }

    public var id: String
    /// The node's stage queue (`hyperion.stage.<tier>.<node>`), which routes name.
    public var queue: String
    public var tier: String
    /// Per-start UUID: a new one means the node restarted and lost its caches.
    public var instance: String
    public var planVersion: Int64?
    public var state: State
    /// Measured / predicted work rate; 1 until measured.
    public var speed: Double
    public var kvFreeBytes: Double
    /// Sequences the node reported holding at its last heartbeat.
    public var activeSequences: Int
    /// Ready steps in its queue at the last passive declare.
    public var readyMessages: Int
    /// Mean predicted seconds of one step on this node (for pricing queued messages).
    public var meanStepSeconds: Double
    /// Clock time of the last heartbeat.
    public var lastHeard: Double
    /// What the node advertises: effective FLOP/s and memory bandwidth (nil: compute-bound only).
    public var nominalFlops: Double
    public var nominalMemoryBandwidth: Double?
    /// KV bytes the node reports reserved for this scheduler's requests (included in what
    /// `kvFreeBytes` leaves out), so the router can tell which of its admissions the node counts.
    public var kvReservedForScheduler: Double = 0
    /// Predicted seconds a sequence's step costs on this node as it batches, over the same step
    /// run alone (0…1; 1 when steps are compute-bound or run one at a time): how much less the
    /// work of sequences it already serves delays a new one when the node batches them together.
    public var batchShare: Double = 1

    public init(
        id: String, queue: String, tier: String, instance: String, planVersion: Int64?, state: State,
        speed: Double = 1, kvFreeBytes: Double, activeSequences: Int = 0, readyMessages: Int = 0,
        meanStepSeconds: Double = 0, lastHeard: Double, nominalFlops: Double = 1e12, nominalMemoryBandwidth: Double? = nil
    ) {
        self.id = id
        self.queue = queue
        self.tier = tier
        self.instance = instance
        self.planVersion = planVersion
        self.state = state
        self.speed = speed
        self.kvFreeBytes = kvFreeBytes
        self.activeSequences = activeSequences
        self.readyMessages = readyMessages
        self.meanStepSeconds = meanStepSeconds
        self.lastHeard = lastHeard
        self.nominalFlops = nominalFlops
        self.nominalMemoryBandwidth = nominalMemoryBandwidth
    }
}

/// The live membership of every tier, kept from heartbeats. Pure: the caller passes the clock.
public struct NodeBook: Sendable {
    /// Seconds between heartbeats; a node silent for three of them is out.
    public var heartbeatSeconds: Double
    public private(set) var nodes: [String: NodeStatus] = [:]

    public init(heartbeatSeconds: Double = 1) {
        self.heartbeatSeconds = heartbeatSeconds
    }

    /// Folds in a heartbeat. Returns true when it came from a new instance of a known node (a
    /// restart: its caches are gone, so attempts routed through it must fail over).
    @discardableResult
    public mutating func record(_ status: NodeStatus) -> Bool {
        let previous = nodes[status.id]
        var merged = status
        if let previous, status.readyMessages == 0 { merged.readyMessages = previous.readyMessages }
        nodes[status.id] = merged
        return previous.map { $0.instance != status.instance } ?? false
    }

    /// Folds in a fresh passive-declare depth for a node's queue.
    public mutating func recordQueueDepth(node: String, readyMessages: Int) {
        nodes[node]?.readyMessages = readyMessages
    }

    /// A node refused a step of `version` as replaced: it serves no plan until its next heartbeat
    /// says which one it serves now.
    public mutating func planReplaced(node: String, version: Int64) {
        if nodes[node]?.planVersion == version { nodes[node]?.planVersion = nil }
    }

    /// Forgets a node (it was found dead by other means).
    public mutating func remove(_ node: String) {
        nodes[node] = nil
    }

    public func isAlive(_ node: NodeStatus, now: Double) -> Bool {
        now - node.lastHeard <= 3 * heartbeatSeconds
    }

    /// Nodes of `tier` that can take new work of `planVersion` now, sorted by id for determinism.
    public func serving(tier: String, planVersion: Int64, now: Double) -> [NodeStatus] {
        nodes.values
            .filter { $0.tier == tier && $0.state == .serving && $0.planVersion == planVersion && isAlive($0, now: now) }
            .sorted { $0.id < $1.id }
    }

    /// Nodes not heard from for three heartbeat intervals.
    public func silent(now: Double) -> [NodeStatus] {
        nodes.values.filter { !isAlive($0, now: now) }.sorted { $0.id < $1.id }
    }
}
