import Messages

/// A request the scheduler has taken from ingress, validated and tokenised.
public struct Admission: Sendable {
    /// Fresh per ownership (a UUID): caches and steps are keyed by it, never by the client's id.
    public var key: String
    public var id: String
    public var replyTo: String?
    public var correlationID: String?
    /// Opaque handle of the ingress delivery, acknowledged once the final reply is confirmed.
    public var ingressTag: UInt64
    public var promptTokens: [Int32]
    public var maxTokens: Int
    public var stopStrings: [String]
    public var stream: Bool
    public var sampling: SamplingParameters
    /// Absolute clock time after which the request ends with what it has.
    public var deadline: Double
    /// Clock time the scheduler received it.
    public var receivedAt: Double

    public init(
        key: String, id: String, replyTo: String?, correlationID: String?, ingressTag: UInt64, promptTokens: [Int32],
        maxTokens: Int, stopStrings: [String] = [], stream: Bool = false, sampling: SamplingParameters = .init(),
        deadline: Double, receivedAt: Double
    ) {
        self.key = key
        self.id = id
        self.replyTo = replyTo
        self.correlationID = correlationID
        self.ingressTag = ingressTag
        self.promptTokens = promptTokens
        self.maxTokens = maxTokens
        self.stopStrings = stopStrings
        self.stream = stream
        self.sampling = sampling
        self.deadline = deadline
        self.receivedAt = receivedAt
    }
}

/// What the service shell must do, in the order given.
public enum SchedulerDirective: Sendable, Equatable {
    /// Publish a step to a node's queue through `hyperion.internal`.
    case step(queue: String, header: StepHeader, body: [UInt8])
    /// Publish a streamed reply (no confirm needed; a returned message means the client is gone).
    case reply(to: String, correlationID: String?, Reply)
    /// The request is over: publish `reply` with a confirm (when there is a `replyTo`), then ack
    /// the ingress delivery, then send each control message.
    case finish(Completion)
    /// Tell a node to drop or free a key's attempt (failover; no reply involved).
    case control(queue: String, ControlMessage)
}

/// The end of one request.
public struct Completion: Sendable, Equatable {
    public var key: String
    public var replyTo: String?
    public var correlationID: String?
    public var reply: Reply
    public var ingressTag: UInt64
    public var controls: [ControlTarget]
}

/// A control message addressed to one node queue.
public struct ControlTarget: Sendable, Equatable {
    public var queue: String
    public var message: ControlMessage
}

/// Settings of the scheduler core.
public struct SchedulerSettings: Sendable {
    /// Events queue of this scheduler (`hyperion.sched.<id>`), written into every step.
    public var eventsQueue: String
    public var policy: RoutingPolicy
    public var heartbeatSeconds: Double
    /// Longest wait for the `sampled` event of a step before the attempt is failed over.
    public var stepTimeoutSeconds: Double
    /// Attempts per request before it ends with an error.
    public var maxAttempts: Int
    /// The model's context window in tokens.
    public var contextTokens: Int

    public init(
        eventsQueue: String, policy: RoutingPolicy = .arts, heartbeatSeconds: Double = 1, stepTimeoutSeconds: Double = 30,
        maxAttempts: Int = 4, contextTokens: Int
    ) {
        self.eventsQueue = eventsQueue
        self.policy = policy
        self.heartbeatSeconds = heartbeatSeconds
        self.stepTimeoutSeconds = stepTimeoutSeconds
        self.maxAttempts = maxAttempts
        self.contextTokens = contextTokens
    }
}

/// The scheduler as a pure state machine (docs/design.md §7, §8, §10): events in, directives out.
///
/// It owns every admitted request from admission to its final reply: it routes it, sends its
/// prefill chunks and decode steps, streams tokens, applies stop rules, deadlines and cancels,
/// and fails attempts over to new routes by re-prefilling prompt + emitted tokens.
public struct SchedulerCore: Sendable {
    public let settings: SchedulerSettings
    private let vocabulary: Vocabulary
    public private(set) var book: NodeBook
    private var router: Router
    /// Known plans by version; new requests use the newest with a serving node on every stage.
    private var plans: [Int64: PlanView] = [:]
    private var requests: [String: RequestState] = [:]
    /// Keys waiting for a route, oldest first.
    private var waiting: [String] = []

    public init(settings: SchedulerSettings, vocabulary: Vocabulary) {
        self.settings = settings
        self.vocabulary = vocabulary
        self.book = NodeBook(heartbeatSeconds: settings.heartbeatSeconds)
        self.router = Router(policy: settings.policy)
    }

    /// Requests admitted and not finished.
    public var inFlight: Int { requests.count }
    /// Requests admitted but still without a route.
    public var waitingCount: Int { waiting.count }

    /// Keys of the requests whose current attempt routes through `node`.
    public func keys(routedThrough node: String) -> [String] {
        requests.values.filter { $0.route?.ids.contains(node) ?? false }.map(\.admission.key).sorted()
    }

    /// The route of a request's current attempt, if it has one.
    public func route(of key: String) -> Route? { requests[key]?.route }

    // MARK: Events

    /// A plan became known. Older plans stay usable for attempts already on them.
    public mutating func planArrived(_ plan: PlanView, now: Double) -> [SchedulerDirective] {
        plans[plan.version] = plan
        // Keep the newest two: in-flight attempts finish on their version or fail over.
        let keep = plans.keys.sorted().suffix(2)
        plans = plans.filter { keep.contains($0.key) }
        return retryWaiting(now: now)
    }

    /// A worker's heartbeat. A new instance of a known node lost its caches: fail its attempts over.
    public mutating func heartbeat(_ status: NodeStatus, now: Double) -> [SchedulerDirective] {
        let restarted = book.record(status)
        router.heartbeatArrived(node: status.id)
        var directives: [SchedulerDirective] = []
        if restarted {
            for key in keys(routedThrough: status.id) {
                directives += failOver(key, avoiding: [], now: now, reason: "node \(status.id) restarted")
            }
        }
        return directives + retryWaiting(now: now)
    }

    /// A fresh ready-message count for a node's queue.
    public mutating func queueDepth(node: String, readyMessages: Int) {
        book.recordQueueDepth(node: node, readyMessages: readyMessages)
    }

    /// A validated request taken from ingress.
    public mutating func admit(_ admission: Admission, now: Double) -> [SchedulerDirective] {
        if admission.promptTokens.count >= settings.contextTokens {
            return [.finish(Completion(
                key: admission.key, replyTo: admission.replyTo, correlationID: admission.correlationID,
                reply: .error(ErrorReply(
                    id: admission.id, code: .tooLong,
                    message: "the prompt has \(admission.promptTokens.count) tokens; the model's context window is \(settings.contextTokens)")),
                ingressTag: admission.ingressTag, controls: []))]
        }
        var admission = admission
        admission.maxTokens = min(admission.maxTokens, settings.contextTokens - admission.promptTokens.count)
        requests[admission.key] = RequestState(admission: admission, vocabulary: vocabulary)
        return start(admission.key, avoiding: [], now: now)
    }

    /// An event from a stage: a sampled token or a refused step.
    public mutating func event(_ event: SchedulerEvent, now: Double) -> [SchedulerDirective] {
        switch event {
        case .sampled(let sampled): return self.sampled(sampled, now: now)
        case .stepError(let error):
            guard var state = requests[error.key], state.attempt == error.attempt, state.route != nil else { return [] }
            if error.code == .kvFull {
                // Another scheduler filled the node first: wait for room, without spending an attempt.
                router.kvRefused(node: error.node)
                state.kvRefusals += 1
                requests[error.key] = state
            } else if error.code == .planMismatch {
                // Routed on a plan the node had just replaced: the request is not at fault, so it
                // takes the newer plan without spending an attempt. Until its next heartbeat the
                // node counts as serving no plan, so no other request is routed on the old one.
                if let version = state.planVersion { book.planReplaced(node: error.node, version: version) }
                state.kvRefusals += 1
                requests[error.key] = state
                return failOver(error.key, avoiding: [], now: now, reason: "\(error.node): \(error.code.rawValue): \(error.message)")
            }
            return failOver(error.key, avoiding: [error.node], now: now, reason: "\(error.node): \(error.code.rawValue): \(error.message)")
        }
    }

    /// A client's cancel: honoured only for the request matching both id and reply address.
    public mutating func cancel(id: String, replyTo: String?, now: Double) -> [SchedulerDirective] {
        guard let key = requests.values.first(where: { $0.admission.id == id && $0.admission.replyTo == replyTo })?.admission.key
        else { return [] }
        return finish(key, reason: .cancelled, now: now)
    }

    /// A reply came back unroutable: the client is gone. Cancel without replying and free caches.
    public mutating func clientVanished(replyTo: String, now: Double) -> [SchedulerDirective] {
        let keys = requests.values.filter { $0.admission.replyTo == replyTo }.map(\.admission.key).sorted()
        var directives: [SchedulerDirective] = []
        for key in keys {
            guard var state = requests[key] else { continue }
            state.admission.replyTo = nil
            requests[key] = state
            directives += finish(key, reason: .cancelled, now: now)
        }
        return directives
    }

    /// The channel the requests were taken from is gone: the broker has put them back on ingress
    /// for some scheduler to redo, so relaying them further would only serve them twice. Drops
    /// every request without a reply and cancels its attempts' caches (docs/design.md §10).
    public mutating func abandonAll() -> [SchedulerDirective] {
        let dropped = requests.keys.sorted().compactMap { requests.removeValue(forKey: $0) }
        waiting.removeAll()
        for state in dropped { releaseRoute(state, now: 0) }
        return dropped.flatMap { cancelControls($0).map { SchedulerDirective.control(queue: $0.queue, $0.message) } }
    }

    /// Time passes: deadlines, step timeouts, silent nodes, and waiting requests.
    public mutating func tick(now: Double) -> [SchedulerDirective] {
        var directives: [SchedulerDirective] = []
        let silent = Set(book.silent(now: now).map(\.id))
        for id in silent { book.remove(id) }
        for key in requests.keys.sorted() {
            guard let state = requests[key] else { continue }
            if now >= state.admission.deadline {
                if state.route == nil {
                    directives += fail(key, code: .unavailable, message: "no route could be found before the deadline", now: now)
                } else {
                    directives += finish(key, reason: .deadline, now: now)
                }
            } else if let route = state.route, let dead = route.ids.first(where: silent.contains) {
                directives += failOver(key, avoiding: [dead], now: now, reason: "node \(dead) stopped sending heartbeats")
            } else if state.route != nil, now - state.stepSentAt > settings.stepTimeoutSeconds {
                directives += failOver(key, avoiding: Set(state.route?.ids ?? []), now: now, reason: "no sampled event within \(settings.stepTimeoutSeconds) s")
            }
        }
        return directives + retryWaiting(now: now)
    }

    // MARK: Lifecycle

    private mutating func sampled(_ event: SampledEvent, now: Double) -> [SchedulerDirective] {
        guard var state = requests[event.key], state.attempt == event.attempt, let route = state.route else { return [] }
        state.record(event.timings)
        state.stepSentAt = now
        guard event.position == state.expectedPosition else {
            requests[event.key] = state  // an earlier prefill chunk: progress, not a token
            return []
        }
        var directives: [SchedulerDirective] = []
        let piece = state.generation.accept(event.token)
        if state.firstTokenAt == nil { state.firstTokenAt = now }
        if let piece, state.admission.stream, let replyTo = state.admission.replyTo {
            directives.append(.reply(to: replyTo, correlationID: state.admission.correlationID, .token(TokenReply(
                id: state.admission.id, attempt: state.attempt, index: state.generation.tokens.count - 1,
                token: event.token, text: piece))))
        }
        requests[event.key] = state
        if let finish = state.generation.finish {
            return directives + self.finish(event.key, reason: finish == .stop ? .stop : .length, now: now)
        }
        // Next decode step: the token just produced, at the position after the last one.
        let position = state.admission.promptTokens.count + state.generation.tokens.count - 1
        state.expectedPosition = position
        state.stepSentAt = now
        requests[event.key] = state
        directives.append(.step(
            queue: route.queues[0],
            header: header(state, route: route, kind: .decode, position: position, count: 1),
            body: StepBody.encode(tokens: [event.token])))
        return directives
    }

    /// Routes a request and sends its prefill (prompt plus tokens already emitted), or leaves it
    /// waiting when no route exists yet.
    private mutating func start(_ key: String, avoiding: Set<String>, now: Double) -> [SchedulerDirective] {
        guard var state = requests[key] else { return [] }
        let context = state.admission.promptTokens + state.generation.tokens
        guard let (plan, route) = pickRoute(for: state, contextTokens: context.count, avoiding: avoiding, now: now) else {
            if !waiting.contains(key) { waiting.append(key) }
            state.avoid.formUnion(avoiding)
            requests[key] = state
            return []
        }
        waiting.removeAll { $0 == key }
        state.attempt += 1
        state.route = route
        state.planVersion = plan.version
        state.prefillChunk = plan.prefillChunk
        state.avoid = []
        if state.firstStepAt == nil { state.firstStepAt = now }
        state.expectedPosition = context.count - 1
        state.stepSentAt = now
        requests[key] = state
        var directives: [SchedulerDirective] = []
        var position = 0
        while position < context.count {
            let end = min(context.count, position + plan.prefillChunk)
            directives.append(.step(
                queue: route.queues[0],
                header: header(state, route: route, kind: .prefill, position: position, count: end - position),
                body: StepBody.encode(tokens: Array(context[position..<end]))))
            position = end
        }
        return directives
    }

    private mutating func pickRoute(
        for state: RequestState, contextTokens: Int, avoiding: Set<String>, now: Double
    ) -> (PlanView, Route)? {
        let promptTokens = contextTokens
        let outputTokens = max(1, state.admission.maxTokens - state.generation.tokens.count)
        for version in plans.keys.sorted(by: >) {
            guard let plan = plans[version] else { continue }
            let candidates = plan.tiers.map { book.serving(tier: $0, planVersion: version, now: now) }
            guard !candidates.contains(where: \.isEmpty) else { continue }
            let total = Double(promptTokens + outputTokens)
            let demand = StageDemand(
                kvBytes: plan.kvBytesPerToken.map { $0 * total },
                work: { stage, node in plan.workSeconds(stage, node, promptTokens, outputTokens) })
            if let route = router.route(candidates: candidates, demand: demand, now: now, avoiding: avoiding.union(state.avoid)) {
                return (plan, route)
            }
        }
        return nil
    }

    private mutating func retryWaiting(now: Double) -> [SchedulerDirective] {
        var directives: [SchedulerDirective] = []
        for key in waiting {
            guard let state = requests[key] else { continue }
            directives += start(key, avoiding: state.avoid, now: now)
        }
        return directives
    }

    private mutating func failOver(_ key: String, avoiding: Set<String>, now: Double, reason: String) -> [SchedulerDirective] {
        guard var state = requests[key] else { return [] }
        var directives = cancelControls(state).map { SchedulerDirective.control(queue: $0.queue, $0.message) }
        state.failures.append(reason)
        releaseRoute(state, now: now)
        state.route = nil
        if state.attempt - state.kvRefusals >= settings.maxAttempts {
            requests[key] = state
            return directives + fail(key, code: .unavailable, message: "gave up after \(state.attempt) attempts; last: \(reason)", now: now, sendCancels: false)
        }
        requests[key] = state
        directives += start(key, avoiding: avoiding, now: now)
        return directives
    }

    /// Gives the router back the KV it reserved for the attempt's route. HEFT keeps the time it
    /// charged (unused fraction 0), as the simulator's HEFT does.
    private mutating func releaseRoute(_ state: RequestState, now: Double) {
        guard let route = state.route else { return }
        router.released(route, unusedFraction: 0, now: now)
    }

    private func cancelControls(_ state: RequestState) -> [ControlTarget] {
        guard let route = state.route else { return [] }
        return route.queues.map { ControlTarget(queue: $0, message: ControlMessage(kind: .cancel, key: state.admission.key, attempt: state.attempt)) }
    }

    private mutating func finish(_ key: String, reason: FinishReason, now: Double) -> [SchedulerDirective] {
        guard let state = requests.removeValue(forKey: key) else { return [] }
        waiting.removeAll { $0 == key }
        releaseRoute(state, now: now)
        let controls: [ControlTarget]
        if let route = state.route {
            let kind: ControlMessage.Kind = reason == .stop || reason == .length ? .release : .cancel
            controls = route.queues.map { ControlTarget(queue: $0, message: ControlMessage(kind: kind, key: key, attempt: state.attempt)) }
        } else {
            controls = []
        }
        let start = state.admission.receivedAt
        let result = ResultReply(
            id: state.admission.id, text: state.generation.text, tokens: state.generation.tokens, finishReason: reason,
            usage: .init(promptTokens: state.admission.promptTokens.count, completionTokens: state.generation.tokens.count),
            route: state.route?.ids ?? [], planVersion: state.planVersion ?? 0, attempts: state.attempt,
            timings: .init(
                queueSeconds: (state.firstStepAt ?? now) - start,
                timeToFirstTokenSeconds: state.firstTokenAt.map { $0 - start } ?? 0,
                totalSeconds: now - start,
                stages: state.stageTimings))
        return [.finish(Completion(
            key: key, replyTo: state.admission.replyTo, correlationID: state.admission.correlationID, reply: .result(result),
            ingressTag: state.admission.ingressTag, controls: controls))]
    }

    private mutating func fail(
        _ key: String, code: ReplyErrorCode, message: String, now: Double, sendCancels: Bool = true
    ) -> [SchedulerDirective] {
        guard let state = requests.removeValue(forKey: key) else { return [] }
        waiting.removeAll { $0 == key }
        releaseRoute(state, now: now)
        return [.finish(Completion(
            key: key, replyTo: state.admission.replyTo, correlationID: state.admission.correlationID,
            reply: .error(ErrorReply(id: state.admission.id, code: code, message: message)),
            ingressTag: state.admission.ingressTag, controls: sendCancels ? cancelControls(state) : []))]
    }

    private func header(_ state: RequestState, route: Route, kind: StepHeader.Kind, position: Int, count: Int) -> StepHeader {
        StepHeader(
            key: state.admission.key, attempt: state.attempt, scheduler: settings.eventsQueue,
            planVersion: state.planVersion ?? 0, route: route.queues, stage: 0, kind: kind, position: position,
            tokenCount: count, dtype: .i32, shape: [count], timings: [], sampling: state.admission.sampling,
            reserveTokens: state.admission.promptTokens.count + state.admission.maxTokens)
    }
}

/// One admitted request's bookkeeping.
struct RequestState: Sendable {
    var admission: Admission
    var generation: Generation
    var attempt = 0
    var route: Route?
    var planVersion: Int64?
    var prefillChunk = 512
    /// Position whose `sampled` event yields the next token.
    var expectedPosition = 0
    var stepSentAt = 0.0
    var firstStepAt: Double?
    var firstTokenAt: Double?
    /// Nodes to steer clear of on the next route.
    var avoid: Set<String> = []
    var failures: [String] = []
    /// Attempts a node refused for want of KV or for a plan it had just replaced: they wait for a
    /// route and do not count as failures.
    var kvRefusals = 0
    var stageTimings: [StageTiming] = []

    init(admission: Admission, vocabulary: Vocabulary) {
        self.admission = admission
        self.generation = Generation(maxTokens: admission.maxTokens, stopStrings: admission.stopStrings, vocabulary: vocabulary)
    }

    /// Adds a step's per-stage timings to the request's totals per node.
    mutating func record(_ timings: [StageTiming]) {
        for timing in timings {
            if let index = stageTimings.firstIndex(where: { $0.node == timing.node }) {
                stageTimings[index].computeSeconds += timing.computeSeconds
                stageTimings[index].waitSeconds += timing.waitSeconds
            } else {
                stageTimings.append(timing)
            }
        }
    }
}
