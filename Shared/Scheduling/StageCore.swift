import Messages

/// Which part of which plan a stage worker serves.
public struct StageAssignment: Sendable, Equatable {
    public var planVersion: Int64
    /// Index of this stage in the pipeline.
    public var stage: Int
    public var stageCount: Int
    /// Width of the activations entering this stage (ignored for the first stage, which takes ids).
    public var hiddenSize: Int
    /// KV-cache bytes one position takes on this stage's blocks.
    public var kvBytesPerToken: Double

    public init(planVersion: Int64, stage: Int, stageCount: Int, hiddenSize: Int, kvBytesPerToken: Double) {
        self.planVersion = planVersion
        self.stage = stage
        self.stageCount = stageCount
        self.hiddenSize = hiddenSize
        self.kvBytesPerToken = kvBytesPerToken
    }

    public var isFirst: Bool { stage == 0 }
    public var isLast: Bool { stage == stageCount - 1 }
}

/// Limits of one stage worker.
public struct StageSettings: Sendable {
    public var node: String
    /// This node's queue name; steps must be addressed to it.
    public var queue: String
    public var kvBudgetBytes: Double
    /// Most steps (of distinct requests) in one batch.
    public var maxBatchSteps: Int
    /// Most tokens in one batch (prefill chunks count all their tokens).
    public var maxBatchTokens: Int
    /// A cache untouched this long is freed (its scheduler is gone or forgot to release it).
    public var idleCacheSeconds: Double
    /// The model's context window and vocabulary, when the executor knows them: a step beyond
    /// either is refused on arrival, alone, instead of failing the whole batch it would join.
    public var contextTokens: Int?
    public var vocabularySize: Int?
    /// How long a replaced plan version still takes new keys after a switch: steps routed on it
    /// just before the switch reach this node a little later (after the previous stages' queues).
    public var replacedPlanGraceSeconds: Double

    public init(
        node: String, queue: String, kvBudgetBytes: Double, maxBatchSteps: Int = 16, maxBatchTokens: Int = 512,
        idleCacheSeconds: Double = 600, contextTokens: Int? = nil, vocabularySize: Int? = nil,
        replacedPlanGraceSeconds: Double = 30
    ) {
        self.replacedPlanGraceSeconds = max(0, replacedPlanGraceSeconds)
        self.node = node
        self.queue = queue
        self.kvBudgetBytes = kvBudgetBytes
        self.maxBatchSteps = max(1, maxBatchSteps)
        self.maxBatchTokens = max(1, maxBatchTokens)
        self.idleCacheSeconds = idleCacheSeconds
        self.contextTokens = contextTokens
        self.vocabularySize = vocabularySize
    }
}

/// One attempt's cache on this node: a key's ownership by a scheduler, and its try number.
public struct CacheKey: Hashable, Sendable, CustomStringConvertible {
    public var key: String
    public var attempt: Int
    public init(key: String, attempt: Int) {
        self.key = key
        self.attempt = attempt
    }
    public var description: String { "\(key)/\(attempt)" }
}

/// A step received from the broker and not yet answered.
public struct QueuedStep: Sendable, Equatable {
    public var deliveryTag: UInt64
    public var header: StepHeader
    public var body: [UInt8]
    public var receivedAt: Double

    public init(deliveryTag: UInt64, header: StepHeader, body: [UInt8], receivedAt: Double) {
        self.deliveryTag = deliveryTag
        self.header = header
        self.body = body
        self.receivedAt = receivedAt
    }

    public var cache: CacheKey { CacheKey(key: header.key, attempt: header.attempt) }
}

/// What the worker shell must do besides computing.
public enum StageDirective: Sendable, Equatable {
    /// Acknowledge a delivery that needs no answer (a cancelled attempt's step).
    case ack(deliveryTag: UInt64)
    /// Send `error` to the owning scheduler's queue, then ack the delivery.
    case refuse(deliveryTag: UInt64, schedulerQueue: String, error: StepErrorEvent)
    /// Free the model-side cache of an attempt.
    case freeCache(CacheKey)
}

/// Where a computed step's output goes: the next node, or the scheduler as a sampled token.
public enum StageOutput: Sendable, Equatable {
    case forward(queue: String, header: StepHeader)
    case sampled(schedulerQueue: String, SampledEvent)
}

/// A stage worker's step handling as a pure state machine (docs/design.md §4, §8): validation,
/// KV-cache bookkeeping by position, batches of distinct requests, control messages, draining.
///
/// Plan switches never stall a request: the node serves the newest plan it was given for new
/// keys at once, and keeps each replaced plan's assignment (its block range) for the keys it
/// holds on it until they are released. A replaced plan also takes new keys for
/// `replacedPlanGraceSeconds` after the switch, for steps routed on it just before. The KV budget
/// covers the caches of every version held.
public struct StageCore: Sendable {
    public private(set) var settings: StageSettings
    /// The newest plan's assignment: new keys are served on it.
    public private(set) var assignment: StageAssignment
    /// Replaced assignments still serving the keys they hold, with when they were replaced.
    public private(set) var replaced: [Int64: (assignment: StageAssignment, since: Double)] = [:]
    public private(set) var draining = false
    /// Ready steps in arrival order.
    public private(set) var queued: [QueuedStep] = []
    /// Positions held per attempt (every position below the value is written), last use, and
    /// the plan version it runs on.
    private var caches: [CacheKey: (held: Int, lastUsed: Double, version: Int64)] = [:]
    /// KV positions reserved per attempt (never below what it holds or has queued), with its
    /// owning scheduler's queue: an attempt reserves its whole context at its first step, so
    /// the node refuses a request up front rather than running out in the middle of one.
    private var reservations: [CacheKey: (tokens: Int, scheduler: String, since: Double, version: Int64)] = [:]
    /// The most KV bytes reserved at once so far.
    public private(set) var kvPeakBytes = 0.0
    /// Where each attempt's step in the running batch ends, with its version: a request's next
    /// prefill chunk may arrive while its previous one computes.
    private var running: [CacheKey: (end: Int, version: Int64)] = [:]
    /// Attempts cancelled recently, with when: their late steps are dropped silently.
    private var cancelled: [CacheKey: Double] = [:]

    public init(settings: StageSettings, assignment: StageAssignment) {
        self.settings = settings
        self.assignment = assignment
    }

    public var activeSequences: Int { caches.count }
    /// Sequences held on a replaced plan version.
    public var replacedSequences: Int { caches.values.filter { $0.version != assignment.planVersion }.count }
    /// Every plan version this node serves: the newest first, then replaced ones still held.
    public var servedVersions: [Int64] { [assignment.planVersion] + replaced.keys.sorted(by: >) }
    public var kvUsedBytes: Double { caches.values.reduce(0) { $0 + Double($1.held) * kvBytesPerToken($1.version) } }
    /// KV bytes promised to the attempts this node holds or has queued (at least `kvUsedBytes`).
    public var kvReservedBytes: Double { reservations.values.reduce(0) { $0 + Double($1.tokens) * kvBytesPerToken($1.version) } }
    public var kvFreeBytes: Double { max(0, settings.kvBudgetBytes - max(kvReservedBytes, kvUsedBytes)) }
    /// Reserved KV bytes per owning scheduler queue (for telemetry).
    public var kvReservedBytesByScheduler: [String: Double] {
        var bytes: [String: Double] = [:]
        for reservation in reservations.values {
            bytes[reservation.scheduler, default: 0] += Double(reservation.tokens) * kvBytesPerToken(reservation.version)
        }
        return bytes
    }
    public var heldCaches: [CacheKey] { caches.keys.sorted { $0.description < $1.description } }

    /// The assignment of a plan version this node serves, newest or replaced.
    public func assignment(forVersion version: Int64) -> StageAssignment? {
        version == assignment.planVersion ? assignment : replaced[version]?.assignment
    }

    private func kvBytesPerToken(_ version: Int64) -> Double {
        assignment(forVersion: version)?.kvBytesPerToken ?? assignment.kvBytesPerToken
    }

    /// The plan version a queued or held attempt runs on.
    public func version(of cache: CacheKey) -> Int64? {
        caches[cache]?.version ?? reservations[cache]?.version
    }

    /// Stops taking new keys; steps of held caches still run.
    public mutating func drain() { draining = true }

    /// Serves `new` for new keys from now on. The replaced assignment keeps serving the keys it
    /// holds (and new ones for `replacedPlanGraceSeconds`) until `retireReplaced` drops it. A new
    /// block range holds other weights, so it comes with the KV budget left (nil: unchanged).
    public mutating func reassign(_ new: StageAssignment, kvBudgetBytes: Double? = nil, now: Double) {
        if let kvBudgetBytes { settings.kvBudgetBytes = kvBudgetBytes }
        guard new.planVersion != assignment.planVersion else {
            assignment = new
            return
        }
        replaced[assignment.planVersion] = (assignment, now)
        replaced[new.planVersion] = nil
        assignment = new
    }

    /// Sets the KV budget (the weights of the versions held changed).
    public mutating func setKVBudget(_ bytes: Double) {
        settings.kvBudgetBytes = bytes
    }

    /// Drops the replaced versions that hold no key, have nothing queued and are past their
    /// grace period; returns their versions (the shell unloads their blocks).
    public mutating func retireReplaced(now: Double) -> [Int64] {
        var busy = Set(caches.values.map(\.version))
        busy.formUnion(running.values.map(\.version))
        busy.formUnion(reservations.values.map(\.version))
        busy.formUnion(queued.map(\.header.planVersion))
        let retired = replaced.filter { version, entry in
            !busy.contains(version) && now - entry.since >= settings.replacedPlanGraceSeconds
        }.keys.sorted()
        for version in retired { replaced[version] = nil }
        return retired
    }

    /// A step arrived. Either it is queued (no directive) or refused right away.
    public mutating func receive(_ step: QueuedStep, now: Double) -> [StageDirective] {
        let header = step.header
        if cancelled[step.cache] != nil { return [.ack(deliveryTag: step.deliveryTag)] }
        func refuse(_ code: StepErrorCode, _ message: String) -> [StageDirective] {
            [.refuse(
                deliveryTag: step.deliveryTag, schedulerQueue: header.scheduler,
                error: StepErrorEvent(key: header.key, attempt: header.attempt, node: settings.node, code: code, message: message))]
        }
        do {
            try header.validate(bodyBytes: step.body.count)
        } catch {
            return refuse(.badStep, error.description)
        }
        guard let assignment = self.assignment(forVersion: header.planVersion) else {
            let served = servedVersions.map(String.init).joined(separator: ", ")
            return refuse(.planMismatch, "step is for plan \(header.planVersion); this node serves plan \(served)")
        }
        if header.route[header.stage] != settings.queue || header.stage != assignment.stage || header.route.count != assignment.stageCount {
            return refuse(.badStep, "step for stage \(header.stage) of \(header.route.count) addressed to \(header.route[header.stage]); this is \(settings.queue), stage \(assignment.stage) of \(assignment.stageCount)")
        }
        if assignment.isFirst ? header.dtype != .i32 : (header.dtype != .f32 || header.shape.last != assignment.hiddenSize) {
            return refuse(.badStep, assignment.isFirst
                ? "the first stage takes i32 token ids"
                : "this stage takes f32 activations of width \(assignment.hiddenSize), found \(header.dtype.rawValue) \(header.shape)")
        }
        if let context = settings.contextTokens, header.position + header.tokenCount > context {
            return refuse(.badStep, "step ends at position \(header.position + header.tokenCount), beyond the model's context of \(context)")
        }
        if assignment.isFirst, let vocabulary = settings.vocabularySize,
            let bad = Self.tokenIDs(step.body).first(where: { $0 < 0 || Int($0) >= vocabulary })
        {
            return refuse(.badStep, "token id \(bad) outside the vocabulary 0..<\(vocabulary)")
        }
        // Positions are checked against what will be held once the steps ahead of it have run.
        let held = heldAfterQueue(step.cache)
        if held == nil {
            if header.position != 0 { return refuse(.missingCache, "no cache for \(step.cache) on \(settings.node); step starts at position \(header.position)") }
            if draining { return refuse(.draining, "\(settings.node) is draining and takes no new requests") }
            if let entry = replaced[header.planVersion], now - entry.since >= settings.replacedPlanGraceSeconds {
                return refuse(.planMismatch, "plan \(header.planVersion) was replaced on \(settings.node) by plan \(self.assignment.planVersion); it serves only the requests it holds")
            }
        } else if let held, header.position > held {
            return refuse(.missingCache, "\(settings.node) holds positions 0..<\(held) of \(step.cache); step starts at \(header.position)")
        }
        // A new attempt reserves the context it may reach; any step beyond its reservation grows it.
        let reserved = reservations[step.cache]?.tokens ?? 0
        let wanted = max(reserved, header.position + header.tokenCount, held == nil ? header.reserveTokens ?? 0 : 0)
        if wanted > reserved {
            let growthBytes = Double(wanted - reserved) * assignment.kvBytesPerToken
            if kvReservedBytes + growthBytes > settings.kvBudgetBytes {
                return refuse(.kvFull, "\(settings.node) has \(Int(kvFreeBytes)) KV bytes free; \(step.cache) needs \(Int(growthBytes)) more")
            }
            reservations[step.cache] = (wanted, header.scheduler, reservations[step.cache]?.since ?? now, header.planVersion)
            kvPeakBytes = max(kvPeakBytes, kvReservedBytes)
        }
        queued.append(step)
        return []
    }

    /// The little-endian i32 token ids of a first-stage step's body (its length is validated).
    static func tokenIDs(_ body: [UInt8]) -> [Int32] {
        stride(from: 0, to: body.count - 3, by: 4).map { offset -> Int32 in
            var bits = UInt32(body[offset])
            bits |= UInt32(body[offset + 1]) << 8
            bits |= UInt32(body[offset + 2]) << 16
            bits |= UInt32(body[offset + 3]) << 24
            return Int32(bitPattern: bits)
        }
    }

    /// Positions an attempt will hold after its queued steps run (nil: no cache and none queued).
    private func heldAfterQueue(_ cache: CacheKey) -> Int? {
        var held = caches[cache]?.held
        if let end = running[cache]?.end { held = max(held ?? 0, end) }
        for step in queued where step.cache == cache {
            held = max(held ?? 0, step.header.position + step.header.tokenCount)
        }
        return held
    }

    /// The next batch: queued steps in arrival order, at most one per request, within limits,
    /// all of one plan version (the oldest step's: one block range runs a batch).
    /// The steps are removed from the queue; `completed` must be called for each.
    public mutating func nextBatch() -> [QueuedStep] {
        var batch: [QueuedStep] = []
        var keys: Set<String> = []
        var tokens = 0
        var remaining: [QueuedStep] = []
        let version = queued.first?.header.planVersion
        for step in queued {
            let fits = batch.count < settings.maxBatchSteps && step.header.planVersion == version
                && (batch.isEmpty || tokens + step.header.tokenCount <= settings.maxBatchTokens)
            if fits && !keys.contains(step.header.key) {
                batch.append(step)
                tokens += step.header.tokenCount
            } else {
                remaining.append(step)
            }
            // A request's later steps never overtake its earlier ones.
            keys.insert(step.header.key)
        }
        queued = remaining
        for step in batch {
            running[step.cache] = (step.header.position + step.header.tokenCount, step.header.planVersion)
        }
        return batch
    }

    /// The steps of a batch that failed as a whole: they hold nothing (their requests fail over).
    public mutating func batchFailed(_ steps: [QueuedStep]) {
        for step in steps { running[step.cache] = nil }
    }

    /// A step of the last batch was computed. Records its cache positions and says where its
    /// output goes; the shell acks the delivery once that publish is confirmed.
    ///
    /// - Parameters:
    ///   - sampledToken: for the last stage, the token sampled from the step's last row.
    ///   - computeSeconds: this step's share of the batch's compute time.
    public mutating func completed(
        _ step: QueuedStep, sampledToken: Int32?, logprob: Double? = nil, computeSeconds: Double, now: Double
    ) -> StageOutput? {
        let header = step.header
        running[step.cache] = nil
        if cancelled[step.cache] != nil { return nil }
        let end = header.position + header.tokenCount
        caches[step.cache] = (max(caches[step.cache]?.held ?? 0, end), now, header.planVersion)
        let assignment = self.assignment(forVersion: header.planVersion) ?? self.assignment
        var timings = header.timings
        timings.append(StageTiming(node: settings.node, computeSeconds: computeSeconds, waitSeconds: max(0, now - step.receivedAt - computeSeconds)))
        if assignment.isLast {
            guard let sampledToken else { return nil }
            return .sampled(schedulerQueue: header.scheduler, SampledEvent(
                key: header.key, attempt: header.attempt, position: end - 1, token: sampledToken, logprob: logprob, timings: timings))
        }
        var next = header
        next.stage += 1
        next.dtype = .f32
        next.shape = [header.tokenCount, assignment.hiddenSize]
        next.timings = timings
        return .forward(queue: header.route[next.stage], header: next)
    }

    /// A control message from a scheduler.
    public mutating func control(_ message: ControlMessage, now: Double) -> [StageDirective] {
        let cache = CacheKey(key: message.key, attempt: message.attempt)
        var directives: [StageDirective] = []
        if message.kind == .cancel {
            cancelled[cache] = now
            for step in queued where step.cache == cache { directives.append(.ack(deliveryTag: step.deliveryTag)) }
            queued.removeAll { $0.cache == cache }
        }
        reservations[cache] = nil
        if caches.removeValue(forKey: cache) != nil { directives.append(.freeCache(cache)) }
        return directives
    }

    /// Frees caches idle too long and forgets old cancellations.
    public mutating func tick(now: Double) -> [StageDirective] {
        let idle = caches.filter { now - $0.value.lastUsed > settings.idleCacheSeconds }.map(\.key)
        let busy = Set(queued.map(\.cache))
        var directives: [StageDirective] = []
        for cache in idle.sorted(by: { $0.description < $1.description }) where !busy.contains(cache) {
            caches[cache] = nil
            reservations[cache] = nil
            directives.append(.freeCache(cache))
        }
        // A reservation that never came to hold anything (its steps failed, its scheduler vanished).
        for (cache, reservation) in reservations
        where caches[cache] == nil && !busy.contains(cache) && now - reservation.since > settings.idleCacheSeconds {
            reservations[cache] = nil
        }
        cancelled = cancelled.filter { now - $0.value < max(60, settings.idleCacheSeconds) }
        return directives
    }
}

/// Measured speed (docs/design.md §7): an EWMA of predicted seconds of the work run over the busy
/// seconds it took, so a slowed or memory-bound node reads below 1.
public struct SpeedMeter: Sendable {
    public private(set) var speed: Double = 1
    public private(set) var samples = 0
    /// Weight of the newest batch.
    public var smoothing: Double

    public init(smoothing: Double = 0.2) {
        self.smoothing = smoothing
    }

    public mutating func record(predictedSeconds: Double, busySeconds: Double) {
        guard predictedSeconds > 0, busySeconds > 0 else { return }
        let ratio = predictedSeconds / busySeconds
        speed = samples == 0 ? ratio : (1 - smoothing) * speed + smoothing * ratio
        samples += 1
    }
}
