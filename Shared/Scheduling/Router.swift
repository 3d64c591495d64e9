/// How requests are mapped to one node per stage (DESIGN.md §6 "Policies", §7).
public enum RoutingPolicy: String, Sendable, CaseIterable {
    /// ARTS: least `(backlog + work) / measured speed`, from live queue depth and telemetry.
    case arts
    /// Each tier's nodes in turn, ignoring load and speed.
    case roundRobin = "round-robin"
    /// Earliest estimated finish from the scheduler's own bookkeeping at nominal speed.
    case heft
}

/// One request's demand on each stage, in predicted seconds on a given node.
public struct StageDemand: Sendable {
    /// KV bytes the request's context needs on each stage's node.
    public var kvBytes: [Double]
    /// Predicted seconds of this request's prefill plus expected decode on stage `j` of `node`,
    /// at the node's nominal speed.
    public var work: @Sendable (_ stage: Int, _ node: NodeStatus) -> Double

    public init(kvBytes: [Double], work: @escaping @Sendable (_ stage: Int, _ node: NodeStatus) -> Double) {
        self.kvBytes = kvBytes
        self.work = work
    }
}

/// A chosen node per stage, with the work charged to each so it can be returned.
public struct Route: Sendable, Equatable {
    public var nodes: [NodeStatus]
    public var chargedSeconds: [Double]

    public var queues: [String] { nodes.map(\.queue) }
    public var ids: [String] { nodes.map(\.id) }
}

/// Picks routes under one policy. Pure: every input, including the time, is passed in.
///
/// Between two heartbeats of a node the router adds the work it has itself sent there, so a burst
/// of admissions does not pile onto the node that looked idle a second ago.
public struct Router: Sendable {
    public let policy: RoutingPolicy
    /// Predicted seconds routed to each node since its last heartbeat (ARTS) or still unfinished
    /// by the router's own reckoning (HEFT).
    private var pendingSeconds: [String: Double] = [:]
    /// KV bytes of requests routed to each node since its last heartbeat, which its reported
    /// free KV does not reflect yet (every policy: it is admission, not preference).
    private var pendingKVBytes: [String: Double] = [:]
    /// HEFT: when each node is expected to be free, by nominal speed.
    private var busyUntil: [String: Double] = [:]
    /// Round-robin: next index per tier.
    private var nextIndex: [String: Int] = [:]

    public init(policy: RoutingPolicy) {
        self.policy = policy
    }

    /// A heartbeat from `node` accounts for what was routed to it before: start counting afresh.
    public mutating func heartbeatArrived(node: String) {
        if policy == .arts { pendingSeconds[node] = 0 }
        pendingKVBytes[node] = 0
    }

    /// Seconds of work ARTS believes waits on `node` before a new request's work: its ready
    /// steps, the remaining work of the sequences it reports active (priced at half of
    /// `sequenceSeconds`, one request's work there, as they are on average half done), and what
    /// this router sent it since its last heartbeat.
    public func backlogSeconds(_ node: NodeStatus, sequenceSeconds: Double) -> Double {
        Double(node.readyMessages) * node.meanStepSeconds
            + Double(node.activeSequences) * 0.5 * sequenceSeconds
            + (pendingSeconds[node.id] ?? 0)
    }

    /// Chooses one node per stage from `candidates[j]` (the tier's serving nodes), or nil when
    /// some stage has no node with KV room for the request. Nodes in `avoiding` are taken only
    /// when a stage has no other choice (a failover steers clear of the node that failed).
    public mutating func route(
        candidates: [[NodeStatus]], demand: StageDemand, now: Double, avoiding: Set<String> = []
    ) -> Route? {
        var chosen: [NodeStatus] = []
        var charged: [Double] = []
        for (stage, tierNodes) in candidates.enumerated() {
            let need = stage < demand.kvBytes.count ? demand.kvBytes[stage] : 0
            let roomy = tierNodes.filter { $0.kvFreeBytes - (pendingKVBytes[$0.id] ?? 0) >= need }
            let preferred = avoiding.isEmpty ? roomy : roomy.filter { !avoiding.contains($0.id) }
            let eligible = preferred.isEmpty ? roomy : preferred
            guard !eligible.isEmpty else { return nil }
            let pick: NodeStatus
            switch policy {
            case .arts:
                func cost(_ node: NodeStatus) -> Double {
                    let work = demand.work(stage, node)
                    return (backlogSeconds(node, sequenceSeconds: work) + work) / max(node.speed, 1e-9)
                }
                // One cost per node (not two per comparison): the least cost, ties to the least id.
                var best = 0
                var bestCost = cost(eligible[0])
                for index in eligible.indices.dropFirst() {
                    let candidate = cost(eligible[index])
                    if candidate < bestCost || (candidate == bestCost && eligible[index].id < eligible[best].id) {
                        best = index
                        bestCost = candidate
                    }
                }
                pick = eligible[best]
            case .roundRobin:
                let tier = eligible[0].tier
                let index = nextIndex[tier, default: 0]
                pick = eligible[index % eligible.count]
                nextIndex[tier] = index &+ 1
            case .heft:
                pick = eligible.min { a, b in
                    let fa = max(now, busyUntil[a.id] ?? 0) + demand.work(stage, a)
                    let fb = max(now, busyUntil[b.id] ?? 0) + demand.work(stage, b)
                    return fa < fb || (fa == fb && a.id < b.id)
                } ?? eligible[0]
            }
            let work = demand.work(stage, pick)
            chosen.append(pick)
            charged.append(work)
        }
        for (stage, node) in chosen.enumerated() where stage < demand.kvBytes.count {
            pendingKVBytes[node.id, default: 0] += demand.kvBytes[stage]
        }
        for (node, work) in zip(chosen, charged) {
            switch policy {
            case .arts: pendingSeconds[node.id, default: 0] += work
            case .heft: busyUntil[node.id] = max(now, busyUntil[node.id] ?? 0) + work
            case .roundRobin: break
            }
        }
        return Route(nodes: chosen, chargedSeconds: charged)
    }

    /// A request finished or failed over: HEFT's bookkeeping releases work it charged but that
    /// will not run.
    public mutating func released(_ route: Route, unusedFraction: Double, now: Double) {
        guard policy == .heft, unusedFraction > 0 else { return }
        for (node, work) in zip(route.nodes, route.chargedSeconds) {
            if let until = busyUntil[node.id] { busyUntil[node.id] = max(now, until - work * unusedFraction) }
        }
    }
}
