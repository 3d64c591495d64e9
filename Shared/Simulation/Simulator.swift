import Partitioning
import Profiles
import Scheduling
import Measurement

/// The discrete-event simulator of docs/design.md §11: nodes, queues, batches, links, sticky routes and
/// the decode loop, with requests routed by the same `Router` the scheduler service uses.
///
/// What it models, as the services do it:
/// - the scheduler sends all prefill chunks of a request to the first node of its route at once;
///   the last chunk's sampled token is the first generated token; each further token is one
///   decode step sent after the previous token came back (O − 1 decode steps);
/// - a node runs one batch at a time: ready steps of different requests in arrival order, at
///   most one per request, within the step and token limits (the stage worker's rule); the batch
///   takes its roofline time (`StageStepCost`) times the node's slowdown;
/// - each inter-tier link is a FIFO serialising bytes at its bandwidth shared by all traffic,
///   plus propagation latency; the return path to the scheduler adds its latency. The scheduler
///   sits with the first tier: a plan that leaves leading tiers empty still sends its tokens
///   across their links;
/// - the scheduler sees nodes through heartbeats: queue depth, active sequences, KV room and
///   measured speed (`SpeedMeter`, the worker's own meter) as of the node's last heartbeat;
/// - a node reserves KV for a request's whole context at its first step and refuses a request
///   that does not fit (`kv_full`), which fails the attempt over to a new route.
///
/// Not modelled: node or broker failures, plan changes, queue depths fresher than a heartbeat
/// (the passive declare), and broker overhead.
public enum Simulator {
    /// Runs one load point to the end: every request completed or failed. Pure and deterministic
    /// for a given input (the seed fixes arrivals, lengths and heartbeat phases).
    public static func run(_ input: SimulationInput) -> SimulationResult {
        var run = SimulationRun(input)
        return run.run()
    }
}

/// The mutable state of one run. A struct with mutating methods, so that the inner loop works on
/// its arrays in place without reference counting or dynamic exclusivity checks.
struct SimulationRun {
    // MARK: Fixed inputs

    let input: SimulationInput
    let stageCount: Int
    let costs: [StageStepCost]
    /// Topology tier of each stage.
    let stageTier: [Int]
    let returnLatencySeconds: Double
    let prefillChunk: Int
    let tierNames: [String]

    // MARK: Nodes, links, routing

    var nodes: [NodeState] = []
    var nodeIds: [String] = []
    var nodeIndex: [String: Int] = [:]
    var links: [LinkState] = []
    var router: Router
    /// What the scheduler knows of each stage's nodes (sorted by id, as `NodeBook.serving` lists
    /// them), refreshed at heartbeats.
    var candidates: [[NodeStatus]]
    /// Where each node sits in `candidates` (stage, position); nil for nodes the plan leaves idle.
    var candidateSlot: [(stage: Int, position: Int)?] = []
    /// Device class of each node (nodes with the same nominal figures price work alike).
    var nodeClass: [String: Int] = [:]
    var classFigures: [DeviceFigures] = []
    /// The device class shared by every node of a stage, or −1 when the stage mixes classes.
    var uniformClass: [Int] = []
    /// ARTS work per (context, remaining output) → seconds per stage × class.
    var workTables: [WorkKey: [Double]] = [:]

    // MARK: Requests

    var requests: [RequestState] = []
    /// route[request * stageCount + stage] = node index.
    var routes: [Int32] = []
    /// Whether the request's current attempt holds KV on its stage's node.
    var held: [Bool] = []
    /// Requests with no route yet, oldest first (`waitingHead` is the first still waiting).
    var waiting: [Int32] = []
    var waitingHead = 0
    var issued = 0
    var ended = 0
    var failovers = 0

    // MARK: Time and randomness

    var events = EventQueue()
    var now = 0.0
    var eventCount = 0
    /// Arrivals and lengths, drawn as `hyperion bench load` draws them for the same seed.
    var traffic: LoadTraffic
    /// Drift events triggered by a fraction of arrivals: (request index, node, slowdown), sorted.
    var fractionDrifts: [(index: Int, node: Int, slowdown: Double)] = []
    var firstArrival = Double.infinity
    var lastEnd = 0.0
    var latencies: [Double] = []
    var ttfts: [Double] = []
    var generatedTokens = 0
    /// When each token was generated, for the steady rate.
    var tokenTimes = RateHistogram()
    /// Reused buffers of batch formation: steps scanned but not taken, and requests seen.
    var scratchKept: [SimStep] = []
    var scratchSeen: [Int32] = []

    init(_ input: SimulationInput) {
        self.input = input
        costs = input.stageCosts
        stageCount = input.partition.stages.count
        stageTier = input.partition.stages.map(\.tierIndex)
        // The scheduler sits with the first tier (where clients are): tokens reach a first stage
        // on a later tier over the links in between, and sampled tokens come back over the
        // return path from the last stage's tier.
        let lastTier = input.partition.stages.last?.tierIndex ?? 0
        returnLatencySeconds =
            input.topology.returnLatencySeconds
            ?? input.topology.tiers.prefix(lastTier).reduce(0) { $0 + ($1.linkToNext?.latencySeconds ?? 0) }
        prefillChunk = max(1, input.workload.planning.prefillChunk)
        tierNames = input.topology.tiers.map(\.name)
        router = Router(policy: input.routing)
        traffic = LoadTraffic(seed: input.seed, arrival: input.arrival, workload: input.workload)
        var phaseRandom = SimulationRandom(seed: input.seed, stream: 3)
        candidates = Array(repeating: [], count: input.partition.stages.count)

        // Nodes in topology order; each serves the stage of its tier when the plan lists it.
        var stageOfNode: [String: Int] = [:]
        for (stage, prediction) in input.partition.stages.enumerated() {
            for id in prediction.nodes { stageOfNode[id] = stage }
        }
        for (tierIndex, tier) in input.topology.tiers.enumerated() {
            for node in tier.nodes {
                let stage = stageOfNode[node.id] ?? -1
                let weights = stage >= 0 ? input.partition.stages[stage].weightBytes : 0
                nodeIndex[node.id] = nodes.count
                nodeIds.append(node.id)
                if let known = classFigures.firstIndex(of: node.figures) {
                    nodeClass[node.id] = known
                } else {
                    nodeClass[node.id] = classFigures.count
                    classFigures.append(node.figures)
                }
                nodes.append(NodeState(tier: tierIndex, stage: stage, nominal: node.figures, kvBudget: max(0, node.memoryBytes - weights)))
            }
            if let link = tier.linkToNext {
                links.append(LinkState(bandwidth: link.bandwidthBytesPerSecond, latency: link.latencySeconds))
            } else {
                links.append(LinkState(bandwidth: .infinity, latency: 0))
            }
        }
        candidateSlot = Array(repeating: nil, count: nodes.count)
        for stage in 0..<stageCount {
            let ids = input.partition.stages[stage].nodes.filter { nodeIndex[$0] != nil }.sorted()
            for (position, id) in ids.enumerated() {
                guard let index = nodeIndex[id] else { continue }
                candidateSlot[index] = (stage, position)
                candidates[stage].append(status(of: index, at: 0))
            }
        }
        uniformClass = candidates.map { statuses in
            let classes = Set(statuses.map { nodeClass[$0.id] ?? 0 })
            return classes.count == 1 ? classes.first ?? -1 : -1
        }
        // Heartbeats start at a random phase per node, as independent processes would.
        for index in nodes.indices where nodes[index].stage >= 0 {
            let phase = phaseRandom.unitOpenBelow() * input.heartbeatSeconds
            events.push(Event(time: phase, kind: .heartbeat, target: Int32(index)))
        }
        for (position, drift) in input.drift.enumerated() {
            guard let index = nodeIndex[drift.node] else { continue }
            switch drift.when {
            case .seconds(let seconds):
                events.push(Event(time: seconds, kind: .drift, target: Int32(position)))
            case .fraction(let fraction):
                let at = min(Int((fraction * Double(input.requests)).rounded(.down)), max(input.requests - 1, 0))
                fractionDrifts.append((at, index, drift.slowdown))
            }
        }
        fractionDrifts.sort { $0.index < $1.index }
        let count = max(0, input.requests)
        requests.reserveCapacity(count)
        routes = Array(repeating: -1, count: count * stageCount)
        held = Array(repeating: false, count: count * stageCount)
        latencies.reserveCapacity(count)
        ttfts.reserveCapacity(count)
    }

    // MARK: The loop

    mutating func run() -> SimulationResult {
        let total = max(0, input.requests)
        switch input.load {
        case .rate:
            if total > 0 { events.push(Event(time: 0, kind: .arrival, target: 0)) }
        case .concurrency(let clients):
            for _ in 0..<min(max(clients, 0), total) { issueRequest() }
        }
        while ended < total, let event = events.pop() {
            now = event.time
            eventCount += 1
            switch event.kind {
            case .arrival: arrivals()
            case .batchDone: batchDone(node: Int(event.target))
            case .stepArrives: enqueue(event.step, node: Int(event.target))
            case .linkEnter: cross(event.step, link: Int(event.target))
            case .sampled: sampled(event.step, refusedBy: Int(event.target))
            case .heartbeat: heartbeat(node: Int(event.target))
            case .drift:
                let drift = input.drift[Int(event.target)]
                if let index = nodeIndex[drift.node] { nodes[index].slowdown = drift.slowdown }
            }
        }
        return result()
    }

    // MARK: Arrivals

    /// An open-loop arrival: one request (or a burst), then the next arrival.
    mutating func arrivals() {
        guard case .rate(let rate) = input.load, rate > 0 else { return }
        let (burst, gap) = traffic.nextArrival(ratePerSecond: rate)
        for _ in 0..<burst where issued < input.requests { issueRequest() }
        if issued < input.requests {
            events.push(Event(time: now + gap, kind: .arrival, target: 0))
        }
    }

    /// A new request enters the scheduler now.
    mutating func issueRequest() {
        let index = issued
        issued += 1
        while let drift = fractionDrifts.first, drift.index <= index {
            nodes[drift.node].slowdown = drift.slowdown
            fractionDrifts.removeFirst()
        }
        let (prompt, output) = traffic.nextLengths()
        requests.append(RequestState(arrival: now, prompt: Int32(prompt), output: Int32(output)))
        firstArrival = min(firstArrival, now)
        if !start(Int32(index), avoiding: []) { waiting.append(Int32(index)) }
    }

    // MARK: Scheduler

    /// Routes a request's current attempt and sends its prefill chunks (prompt plus tokens
    /// already generated); false when no route exists now.
    mutating func start(_ request: Int32, avoiding: Set<String>) -> Bool {
        let r = Int(request)
        let context = Int(requests[r].prompt) + Int(requests[r].emitted)
        let remaining = max(1, Int(requests[r].output) - Int(requests[r].emitted))
        let table = workTable(context: context, remaining: remaining)
        let classes = nodeClass
        let classCount = classFigures.count
        let uniform = uniformClass
        let total = Double(context + remaining)
        let demand = StageDemand(
            kvBytes: costs.map { $0.kvBytesPerToken * total },
            work: { stage, node in
                // Most tiers are one device class: no lookup by node id then.
                let nodeClass = uniform[stage] >= 0 ? uniform[stage] : (classes[node.id] ?? 0)
                return table[stage * classCount + nodeClass]
            })
        guard let route = router.route(candidates: candidates, demand: demand, now: now, avoiding: avoiding) else {
            return false
        }
        requests[r].attempt += 1
        requests[r].routed = true
        requests[r].route = route
        if requests[r].attempt > 1 { failovers += 1 }
        for (stage, node) in route.nodes.enumerated() {
            routes[r * stageCount + stage] = Int32(nodeIndex[node.id] ?? 0)
        }
        var position = 0
        while position < context {
            let tokens = min(prefillChunk, context - position)
            let step = SimStep(
                request: request, attempt: requests[r].attempt, stage: 0, position: Int32(position), tokens: Int32(tokens),
                isPrefill: true, yieldsToken: position + tokens == context)
            sendToFirstStage(step)
            position += tokens
        }
        return true
    }

    /// Predicted seconds of a request on each stage for each device class (ARTS' `work`).
    mutating func workTable(context: Int, remaining: Int) -> [Double] {
        let key = WorkKey(context: Int32(context), remaining: Int32(remaining))
        if let table = workTables[key] { return table }
        var table: [Double] = []
        table.reserveCapacity(stageCount * classFigures.count)
        for stage in 0..<stageCount {
            for figures in classFigures {
                table.append(
                    costs[stage].requestSeconds(
                        promptTokens: context, prefillChunk: prefillChunk,
                        decodeSteps: StageStepCost.decodeSteps(outputTokens: remaining), on: figures))
            }
        }
        if workTables.count < 100_000 { workTables[key] = table }
        return table
    }

    /// A sampled token reached the scheduler, or a refusal from node `refusedBy` (a step that
    /// yields no token and carries no tokens).
    mutating func sampled(_ step: SimStep, refusedBy node: Int) {
        let r = Int(step.request)
        guard requests[r].attempt == step.attempt, !requests[r].ended else { return }
        if !step.yieldsToken {
            // The node refused the attempt's first step (kv_full): fail over, avoiding it.
            failOver(step.request, avoiding: nodeIds[node])
            return
        }
        requests[r].emitted += 1
        tokenTimes.record(at: now)
        if requests[r].firstTokenAt < 0 { requests[r].firstTokenAt = now }
        if requests[r].emitted >= requests[r].output {
            finish(step.request, completed: true)
            return
        }
        let position = Int(requests[r].prompt) + Int(requests[r].emitted) - 1
        let next = SimStep(
            request: step.request, attempt: step.attempt, stage: 0, position: Int32(position), tokens: 1,
            isPrefill: false, yieldsToken: true)
        sendToFirstStage(next)
    }

    /// The scheduler publishes a step (token ids) to the route's first node: at once when that
    /// node is on the first tier, else across the links up to its tier.
    mutating func sendToFirstStage(_ step: SimStep) {
        if stageTier[0] == 0 {
            enqueue(step, node: Int(routes[Int(step.request) * stageCount]))
        } else {
            cross(step, link: 0)
        }
    }

    mutating func failOver(_ request: Int32, avoiding node: String) {
        let r = Int(request)
        releaseHeld(r)
        if Int(requests[r].attempt) >= input.maxAttempts {
            finish(request, completed: false)
            return
        }
        if !start(request, avoiding: [node]) {
            requests[r].routed = false
            waiting.append(request)
        }
    }

    mutating func finish(_ request: Int32, completed: Bool) {
        let r = Int(request)
        releaseHeld(r)
        requests[r].ended = true
        ended += 1
        lastEnd = max(lastEnd, now)
        if completed {
            latencies.append(now - requests[r].arrival)
            ttfts.append(requests[r].firstTokenAt - requests[r].arrival)
            generatedTokens += Int(requests[r].emitted)
        }
        if case .concurrency = input.load, issued < input.requests { issueRequest() }
    }

    /// Frees the KV a request's attempt holds on its route (`release` / `cancel`).
    mutating func releaseHeld(_ r: Int) {
        if let route = requests[r].route {
            router.released(route, unusedFraction: 0, now: now)
            requests[r].route = nil
        }
        let total = Double(Int(requests[r].prompt) + Int(requests[r].output))
        for stage in 0..<stageCount where held[r * stageCount + stage] {
            held[r * stageCount + stage] = false
            let node = Int(routes[r * stageCount + stage])
            nodes[node].kvReserved -= costs[stage].kvBytesPerToken * total
            nodes[node].active -= 1
        }
    }

    /// Waiting requests get a route in arrival order; the first that still finds none stops the
    /// pass (later ones would overtake it). Those past their deadline fail.
    mutating func retryWaiting() {
        while waitingHead < waiting.count {
            let request = waiting[waitingHead]
            let r = Int(request)
            if requests[r].ended || requests[r].routed {
                waitingHead += 1
                continue
            }
            if now - requests[r].arrival > input.deadlineSeconds {
                waitingHead += 1
                finish(request, completed: false)
                continue
            }
            guard start(request, avoiding: []) else { break }
            waitingHead += 1
        }
        if waitingHead > 4096, waitingHead * 2 > waiting.count {
            waiting.removeFirst(waitingHead)
            waitingHead = 0
        }
    }

    // MARK: Nodes

    /// A step reaches a node: refused, dropped (a cancelled attempt's) or queued.
    mutating func enqueue(_ step: SimStep, node: Int) {
        let r = Int(step.request)
        guard requests[r].attempt == step.attempt, !requests[r].ended else { return }
        let slot = r * stageCount + Int(step.stage)
        if !held[slot] {
            guard step.position == 0 else { return }  // the attempt was refused here: missing cache
            let need = costs[Int(step.stage)].kvBytesPerToken * Double(Int(requests[r].prompt) + Int(requests[r].output))
            if nodes[node].kvReserved + need > nodes[node].kvBudget {
                var refusal = step
                refusal.yieldsToken = false
                refusal.tokens = 0
                events.push(Event(time: now + returnLatencySeconds, kind: .sampled, target: Int32(node), step: refusal))
                return
            }
            held[slot] = true
            nodes[node].kvReserved += need
            nodes[node].active += 1
        }
        nodes[node].queue.append(step)
        if !nodes[node].busy { startBatch(node) }
    }

    /// Takes the next batch from a node's queue and holds the node for its time.
    mutating func startBatch(_ node: Int) {
        let limits = input.batching
        let costIndex = nodes[node].stage
        guard costIndex >= 0 else { return }
        let cost = costs[costIndex]
        var flops = 0.0
        var aloneSeconds = 0.0
        var tokens = 0
        scratchKept.removeAll(keepingCapacity: true)
        scratchSeen.removeAll(keepingCapacity: true)
        nodes[node].batch.removeAll(keepingCapacity: true)
        var index = nodes[node].head
        let end = nodes[node].queue.count
        var scanned = 0
        while index < end {
            let step = nodes[node].queue[index]
            index += 1
            let r = Int(step.request)
            if requests[r].attempt != step.attempt || requests[r].ended { continue }  // cancelled: acked
            scanned += 1
            let fits =
                nodes[node].batch.count < limits.maxSteps
                && (nodes[node].batch.isEmpty || tokens + Int(step.tokens) <= limits.maxTokens)
            if fits && !scratchSeen.contains(step.request) {
                nodes[node].batch.append(step)
                tokens += Int(step.tokens)
                let stepFlops = cost.flops(
                    StepShape(kind: step.isPrefill ? .prefill : .decode, position: Int(step.position), tokens: Int(step.tokens)))
                flops += stepFlops
                aloneSeconds += cost.seconds(flops: stepFlops, on: nodes[node].nominal)
            } else {
                scratchKept.append(step)
            }
            scratchSeen.append(step.request)
            if nodes[node].batch.count >= limits.maxSteps || tokens >= limits.maxTokens || scanned >= 256 { break }
        }
        // Steps scanned but not taken go back in front of the rest, in order.
        let newHead = index - scratchKept.count
        for offset in scratchKept.indices { nodes[node].queue[newHead + offset] = scratchKept[offset] }
        nodes[node].head = newHead
        if nodes[node].head == nodes[node].queue.count {
            nodes[node].queue.removeAll(keepingCapacity: true)
            nodes[node].head = 0
        } else if nodes[node].head > 1024, nodes[node].head * 2 > nodes[node].queue.count {
            nodes[node].queue.removeFirst(nodes[node].head)
            nodes[node].head = 0
        }
        guard !nodes[node].batch.isEmpty else { return }
        let predicted = cost.seconds(flops: flops, on: nodes[node].nominal)
        let actual = predicted * nodes[node].slowdown
        nodes[node].busy = true
        nodes[node].batchPredicted = predicted
        nodes[node].batchAloneSeconds = aloneSeconds
        nodes[node].batchActual = actual
        events.push(Event(time: now + actual, kind: .batchDone, target: Int32(node)))
    }

    /// A node finished its batch: outputs go on to the next stage or back to the scheduler.
    mutating func batchDone(node: Int) {
        let predicted = nodes[node].batchPredicted
        let actual = nodes[node].batchActual
        let count = nodes[node].batch.count
        nodes[node].busy = false
        nodes[node].busySeconds += actual
        nodes[node].batches += 1
        nodes[node].steps += count
        nodes[node].speed.record(predictedSeconds: predicted, busySeconds: actual)
        nodes[node].batchMeter.record(predictedSeconds: predicted, aloneSeconds: nodes[node].batchAloneSeconds, steps: count)
        let stage = nodes[node].stage
        for position in 0..<count {
            let step = nodes[node].batch[position]
            let r = Int(step.request)
            guard requests[r].attempt == step.attempt, !requests[r].ended else { continue }
            if stage == stageCount - 1 {
                if step.yieldsToken {
                    events.push(Event(time: now + returnLatencySeconds, kind: .sampled, target: 0, step: step))
                }
            } else {
                var next = step
                next.stage = Int32(stage + 1)
                cross(next, link: stageTier[stage])
            }
        }
        nodes[node].batch.removeAll(keepingCapacity: true)
        if nodes[node].head < nodes[node].queue.count { startBatch(node) }
    }

    /// A step heading for stage `step.stage` enters link `link` now: it is serialised behind the
    /// link's earlier traffic, then propagates; a stage that skips tiers crosses each link.
    mutating func cross(_ step: SimStep, link: Int) {
        let destinationStage = Int(step.stage)
        // A first stage takes token ids (i32); later ones the previous stage's activations.
        let bytesPerToken = destinationStage == 0 ? 4 : costs[destinationStage - 1].outputBytesPerToken
        let bytes = Double(step.tokens) * bytesPerToken
        let start = max(now, links[link].freeAt)
        let transfer = bytes / links[link].bandwidth
        links[link].freeAt = start + transfer
        links[link].busySeconds += transfer
        let arrival = start + transfer + links[link].latency
        if link + 1 < stageTier[destinationStage] {
            events.push(Event(time: arrival, kind: .linkEnter, target: Int32(link + 1), step: step))
        } else {
            let r = Int(step.request)
            let node = Int(routes[r * stageCount + destinationStage])
            events.push(Event(time: arrival, kind: .stepArrives, target: Int32(node), step: step))
        }
    }

    // MARK: Telemetry

    /// What the scheduler learns from a node's heartbeat.
    func status(of node: Int, at time: Double) -> NodeStatus {
        let state = nodes[node]
        let tier = tierNames[state.tier]
        var status = NodeStatus(
            id: nodeIds[node], queue: "hyperion.stage.\(tier).\(nodeIds[node])", tier: tier, instance: nodeIds[node],
            planVersion: 1, state: .serving, speed: state.speed.speed,
            kvFreeBytes: max(0, state.kvBudget - state.kvReserved), activeSequences: state.active,
            readyMessages: state.queue.count - state.head, meanStepSeconds: state.batchMeter.stepSeconds, lastHeard: time)
        // One scheduler: every reservation the node holds is its own.
        status.kvReservedForScheduler = state.kvReserved
        status.batchShare = state.batchMeter.batchShare
        return status
    }

    mutating func heartbeat(node: Int) {
        if let slot = candidateSlot[node] {
            candidates[slot.stage][slot.position] = status(of: node, at: now)
            router.heartbeatArrived(node: nodeIds[node])
        }
        events.push(Event(time: now + input.heartbeatSeconds, kind: .heartbeat, target: Int32(node)))
        retryWaiting()
    }

    // MARK: Figures

    func result() -> SimulationResult {
        let span = max(lastEnd - (firstArrival.isFinite ? firstArrival : 0), 1e-12)
        let sortedLatency = latencies.sorted()
        let sortedTTFT = ttfts.sorted()
        // Steady rate: tokens generated over the middle 80% of the span (a closed loop's clients
        // start together and finish in waves, so completions come in bursts; tokens do not),
        // divided by the tokens of a completed request.
        let done = latencies.count
        let start = firstArrival.isFinite ? firstArrival : 0
        var steady = done > 0 ? Double(done) / span : 0
        if done > 0, generatedTokens > 0,
            let tokenRate = tokenTimes.rate(from: start + 0.1 * span, to: start + 0.9 * span)
        {
            steady = tokenRate / (Double(generatedTokens) / Double(done))
        }
        var tierBusy = [Double](repeating: 0, count: tierNames.count)
        var tierNodes = [Int](repeating: 0, count: tierNames.count)
        var stageBusy = [Double](repeating: 0, count: stageCount)
        var batches = 0
        var steps = 0
        for node in nodes {
            tierBusy[node.tier] += node.busySeconds
            tierNodes[node.tier] += 1
            if node.stage >= 0 { stageBusy[node.stage] += node.busySeconds }
            batches += node.batches
            steps += node.steps
        }
        let linkShares = (0..<max(0, tierNames.count - 1)).map { index in
            Share(name: "\(tierNames[index])->\(tierNames[index + 1])", fraction: min(1, links[index].busySeconds / span))
        }
        return SimulationResult(
            completed: done, failed: ended - done, meanLatencySeconds: mean(latencies),
            p50LatencySeconds: Percentile.of(sorted: sortedLatency, 0.5), p95LatencySeconds: Percentile.of(sorted: sortedLatency, 0.95),
            p99LatencySeconds: Percentile.of(sorted: sortedLatency, 0.99), meanTTFTSeconds: mean(ttfts),
            p95TTFTSeconds: Percentile.of(sorted: sortedTTFT, 0.95),
            latencyPercentilesSeconds: sortedLatency.isEmpty
                ? [] : (0...100).map { Percentile.of(sorted: sortedLatency, Double($0) / 100) },
            tokensPerSecond: Double(generatedTokens) / span,
            requestsPerSecond: Double(done) / span, steadyRequestsPerSecond: steady,
            tierUtilization: tierNames.indices.map {
                Share(name: tierNames[$0], fraction: tierNodes[$0] > 0 ? min(1, tierBusy[$0] / (Double(tierNodes[$0]) * span)) : 0)
            },
            nodeUtilization: nodes.indices.map { Share(name: nodeIds[$0], fraction: min(1, nodes[$0].busySeconds / span)) },
            linkUtilization: linkShares,
            stageBusySecondsPerRequest: stageBusy.map { done > 0 ? $0 / Double(done) : 0 },
            meanBatchSteps: batches > 0 ? Double(steps) / Double(batches) : 0, failovers: failovers,
            simulatedSeconds: now, events: eventCount)
    }
}

/// One node of the simulated pipeline.
struct NodeState {
    var tier: Int
    /// Stage of the plan it serves; −1 when the plan leaves it idle.
    var stage: Int
    var nominal: DeviceFigures
    /// Factor on its real step times (drift); what it advertises stays `nominal`.
    var slowdown = 1.0
    /// Ready steps; those before `head` are gone.
    var queue: [SimStep] = []
    var head = 0
    var batch: [SimStep] = []
    var busy = false
    var batchPredicted = 0.0
    var batchActual = 0.0
    var busySeconds = 0.0
    var batches = 0
    var steps = 0
    var speed = SpeedMeter()
    var batchAloneSeconds = 0.0
    /// Predicted seconds per step as batched and the batch share (what the scheduler prices
    /// queued messages and active sequences with).
    var batchMeter = BatchMeter()
    var kvBudget: Double
    var kvReserved = 0.0
    /// Requests holding KV here.
    var active = 0

    init(tier: Int, stage: Int, nominal: DeviceFigures, kvBudget: Double) {
        self.tier = tier
        self.stage = stage
        self.nominal = nominal
        self.kvBudget = kvBudget
    }
}

/// An inter-tier link: a FIFO byte server.
struct LinkState {
    var bandwidth: Double
    var latency: Double
    /// When the link finishes serialising what it has been given.
    var freeAt = 0.0
    var busySeconds = 0.0
}

/// One request's progress.
struct RequestState {
    var arrival: Double
    var prompt: Int32
    var output: Int32
    var emitted: Int32 = 0
    var attempt: Int32 = 0
    var routed = false
    var ended = false
    var firstTokenAt = -1.0
    /// The router's reservations for the current attempt, returned when it ends.
    var route: Route?

    init(arrival: Double, prompt: Int32, output: Int32) {
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
    }
}

struct WorkKey: Hashable {
    var context: Int32
    var remaining: Int32
}
