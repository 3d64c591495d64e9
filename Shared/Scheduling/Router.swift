/// How requests are mapped to one node per stage (docs/design.md §6 "Policies", §7).
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
    /// KV bytes reserved on each node for the request's context, returned by `Router.released`.
    public var kvBytes: [Double] = []

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
    /// KV bytes of this router's live routes through each node, from routing until release
    /// (every policy: it is admission, not preference). A node's heartbeat reports how much of it
    /// the node already counts (`kvReservedForScheduler`); the rest is still on its way there.
    private var reservedKVBytes: [String: Double] = [:]
    /// Released reservations a node may still count (its release message may be behind its
    /// heartbeat), each with the heartbeats heard since; dropped at the second.
    private var releasingKVBytes: [String: [(bytes: Double, heartbeats: Int)]] = [:]
    /// Nodes that refused a request for KV (`kv_full`) since their last heartbeat: another
    /// scheduler filled them, so they take nothing more until they report again.
    private var refusedKV: Set<String> = []
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
        refusedKV.remove(node)
        if var releasing = releasingKVBytes[node] {
            for index in releasing.indices { releasing[index].heartbeats += 1 }
            releasing.removeAll { $0.heartbeats >= 2 }
            releasingKVBytes[node] = releasing.isEmpty ? nil : releasing
        }
    }

    /// KV bytes a new request may take on `node` by this router's reckoning: what the node
    /// reported free, less this router's reservations it did not count yet, less releases it may
    /// not have seen; none after a `kv_full` refusal until its next heartbeat.
    public func kvRoomBytes(_ node: NodeStatus) -> Double {
        guard !refusedKV.contains(node.id) else { return 0 }
        let releasing = releasingKVBytes[node.id]?.reduce(0) { $0 + $1.bytes } ?? 0
        return node.kvFreeBytes + node.kvReservedForScheduler - (reservedKVBytes[node.id] ?? 0) - releasing
    }

    /// A node refused a request's first step for want of KV (`kv_full`).
    public mutating func kvRefused(node: String) {
        refusedKV.insert(node)
    }

    /// Seconds of work ARTS believes waits on `node` before a new request's work: its ready
    /// steps (priced at the node's mean step as it batches them), the remaining work of the
    /// sequences it reports active (half of `sequenceSeconds`, one request's work there, as they
    /// are on average half done), and what this router sent it since its last heartbeat. The
    /// sequences' work counts at the node's `batchShare`: steps batched together share its time.
    public func backlogSeconds(_ node: NodeStatus, sequenceSeconds: Double) -> Double {
        Double(node.readyMessages) * node.meanStepSeconds
            + (Double(node.activeSequences) * 0.5 * sequenceSeconds + (pendingSeconds[node.id] ?? 0))
            * min(1, max(node.batchShare, 0))
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
            let roomy = tierNodes.filter { kvRoomBytes($0) >= need }
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
        let kvBytes = chosen.indices.map { $0 < demand.kvBytes.count ? demand.kvBytes[$0] : 0 }
        for (node, bytes) in zip(chosen, kvBytes) { reservedKVBytes[node.id, default: 0] += bytes }
        for (node, work) in zip(chosen, charged) {
            switch policy {
            case .arts: pendingSeconds[node.id, default: 0] += work
            case .heft: busyUntil[node.id] = max(now, busyUntil[node.id] ?? 0) + work
            case .roundRobin: break
            }
        }
        return Route(nodes: chosen, chargedSeconds: charged, kvBytes: kvBytes)
    }

    /// A request finished or failed over: its KV reservations go (the nodes free them when the
    /// release or cancel reaches them), and HEFT's bookkeeping releases work it charged but that
    /// will not run.
    public mutating func released(_ route: Route, unusedFraction: Double, now: Double) {
        for (node, bytes) in zip(route.nodes, route.kvBytes) where bytes > 0 {
            reservedKVBytes[node.id] = max(0, (reservedKVBytes[node.id] ?? 0) - bytes)
            releasingKVBytes[node.id, default: []].append((bytes, 0))
        }
        guard policy == .heft, unusedFraction > 0 else { return }
        for (node, work) in zip(route.nodes, route.chargedSeconds) {
            if let until = busyUntil[node.id] { busyUntil[node.id] = max(now, until - work * unusedFraction) }
        }
    }
}
