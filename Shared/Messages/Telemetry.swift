import JSON

/// A process's heartbeat on `hyperion.telemetry`, once a second (docs/design.md §4).
///
/// Schedulers route from it and the planner folds live membership and measured speed from it.
public struct Telemetry: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case loading, serving, draining
    }

    /// What the node advertises it can do (its emulated or nominal device).
    public struct Nominal: Codable, Sendable, Equatable {
        public var flops: Double
        public var memoryBandwidthBytesPerSecond: Double?
        public var memoryBytes: Double

        public init(flops: Double, memoryBandwidthBytesPerSecond: Double?, memoryBytes: Double) {
            self.flops = flops
            self.memoryBandwidthBytesPerSecond = memoryBandwidthBytesPerSecond
            self.memoryBytes = memoryBytes
        }

        enum CodingKeys: String, CodingKey {
            case flops
            case memoryBandwidthBytesPerSecond = "mem_bw_bytes_per_s"
            case memoryBytes = "memory_bytes"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            flops = try c.decode(Double.self, forKey: .flops)
            if !(flops > 0 && flops.isFinite) { throw Wire.invalid(.flops, c, "expected a number > 0") }
            memoryBandwidthBytesPerSecond = try c.decodeIfPresent(Double.self, forKey: .memoryBandwidthBytesPerSecond)
            if let bw = memoryBandwidthBytesPerSecond, !(bw > 0 && bw.isFinite) {
                throw Wire.invalid(.memoryBandwidthBytesPerSecond, c, "expected a number > 0")
            }
            memoryBytes = try c.decode(Double.self, forKey: .memoryBytes)
            if !(memoryBytes >= 0 && memoryBytes.isFinite) { throw Wire.invalid(.memoryBytes, c, "expected a number >= 0") }
        }
    }

    /// The batches a worker ran since its previous heartbeat: how continuous batching is going.
    public struct Batches: Codable, Sendable, Equatable {
        public var count: Int
        /// Steps over all of them (a mean batch has `steps / count`).
        public var steps: Int
        /// Tokens over all of them (prefill chunks count every token).
        public var tokens: Int
        /// Compute seconds over all of them.
        public var computeSeconds: Double
        /// The largest batch, in steps.
        public var maxSteps: Int

        public init(count: Int = 0, steps: Int = 0, tokens: Int = 0, computeSeconds: Double = 0, maxSteps: Int = 0) {
            self.count = count
            self.steps = steps
            self.tokens = tokens
            self.computeSeconds = computeSeconds
            self.maxSteps = maxSteps
        }

        /// Adds one batch.
        public mutating func record(steps: Int, tokens: Int, computeSeconds: Double) {
            count += 1
            self.steps += steps
            self.tokens += tokens
            self.computeSeconds += computeSeconds
            maxSteps = max(maxSteps, steps)
        }

        enum CodingKeys: String, CodingKey {
            case count, steps, tokens
            case computeSeconds = "compute_s"
            case maxSteps = "max_steps"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            count = try c.decode(Int.self, forKey: .count)
            steps = try c.decode(Int.self, forKey: .steps)
            tokens = try c.decode(Int.self, forKey: .tokens)
            computeSeconds = try c.decode(Double.self, forKey: .computeSeconds)
            maxSteps = try c.decode(Int.self, forKey: .maxSteps)
            for (key, value) in [(CodingKeys.count, count), (.steps, steps), (.tokens, tokens), (.maxSteps, maxSteps)] where value < 0 {
                throw Wire.invalid(key, c, "expected an integer >= 0")
            }
            if !(computeSeconds >= 0 && computeSeconds.isFinite) { throw Wire.invalid(.computeSeconds, c, "expected a number >= 0") }
        }
    }

    public var node: String
    /// A fresh UUID per process start, so a restarted node is told apart from its old self.
    public var instance: String
    public var tier: String
    public var device: String?
    public var planVersion: Int64?
    public var state: State
    public var nominal: Nominal
    public var kvFreeBytes: Double
    public var queueDepth: Int
    public var activeSequences: Int
    /// Fraction of the last interval spent computing, 0…1.
    public var busyFraction: Double
    /// Measured / predicted work rate (docs/design.md §7); 1 until measured.
    public var speed: Double
    public var tokensPerSecond: Double
    public var modelSHA256: String?
    /// Seconds since the Unix epoch at the sender.
    public var timestamp: Double
    /// The node's KV budget (optional, as the fields below: older workers omit them).
    public var kvBudgetBytes: Double?
    /// The most KV bytes ever reserved at once on this node since it started: never above the
    /// budget, which the node's own refusal (`kv_full`) guarantees.
    public var kvPeakBytes: Double?
    /// KV bytes reserved per owning scheduler (its events queue), so that each scheduler can tell
    /// its own admissions the node already counts from those still on their way (docs/design.md §7).
    public var kvReservedBytes: [String: Double]?
    /// Batches run since the previous heartbeat.
    public var batches: Batches?
    /// EWMA of predicted seconds per step as the node batches them (a batch's roofline over its
    /// steps): what ARTS prices a queued step at on this node.
    public var stepSeconds: Double?
    /// EWMA of a batch's predicted seconds over those of its steps run one by one (0…1): how much
    /// batching shares the node's time among sequences (docs/design.md §7 under batching).
    public var batchShare: Double?
    /// The node's compute speed for planning: predicted roofline seconds of its batches over the
    /// compute seconds they took, smoothed over minutes (`compute_speed`), with its confidence
    /// 0…1 (`compute_confidence`). Apart from `speed`, which ARTS routes by. Optional: older
    /// workers omit it and older readers ignore it.
    public var computeSpeed: Double?
    public var computeConfidence: Double?

    public init(
        node: String, instance: String, tier: String, device: String? = nil, planVersion: Int64?, state: State,
        nominal: Nominal, kvFreeBytes: Double, queueDepth: Int, activeSequences: Int, busyFraction: Double,
        speed: Double, tokensPerSecond: Double, modelSHA256: String?, timestamp: Double, kvBudgetBytes: Double? = nil,
        kvPeakBytes: Double? = nil, kvReservedBytes: [String: Double]? = nil, batches: Batches? = nil, stepSeconds: Double? = nil,
        batchShare: Double? = nil, computeSpeed: Double? = nil, computeConfidence: Double? = nil
    ) {
        self.computeSpeed = computeSpeed
        self.computeConfidence = computeConfidence
        self.node = node
        self.instance = instance
        self.tier = tier
        self.device = device
        self.planVersion = planVersion
        self.state = state
        self.nominal = nominal
        self.kvFreeBytes = kvFreeBytes
        self.queueDepth = queueDepth
        self.activeSequences = activeSequences
        self.busyFraction = busyFraction
        self.speed = speed
        self.tokensPerSecond = tokensPerSecond
        self.modelSHA256 = modelSHA256
        self.timestamp = timestamp
        self.kvBudgetBytes = kvBudgetBytes
        self.kvPeakBytes = kvPeakBytes
        self.kvReservedBytes = kvReservedBytes
        self.batches = batches
        self.stepSeconds = stepSeconds
        self.batchShare = batchShare
    }

    enum CodingKeys: String, CodingKey {
        case v, node, instance, tier, device, state, nominal, speed
        case planVersion = "plan_version"
        case kvFreeBytes = "kv_free_bytes"
        case queueDepth = "queue_depth"
        case activeSequences = "active_sequences"
        case busyFraction = "busy_fraction"
        case tokensPerSecond = "tokens_per_s"
        case modelSHA256 = "model_sha256"
        case timestamp = "ts"
        case kvBudgetBytes = "kv_budget_bytes"
        case kvPeakBytes = "kv_peak_bytes"
        case kvReservedBytes = "kv_reserved"
        case batches
        case stepSeconds = "step_s"
        case batchShare = "batch_share"
        case computeSpeed = "compute_speed"
        case computeConfidence = "compute_confidence"
    }

    public init(from decoder: any Decoder) throws {
        try Wire.checkVersion(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        node = try c.decode(String.self, forKey: .node)
        if node.isEmpty { throw Wire.invalid(.node, c, "must not be empty") }
        instance = try c.decode(String.self, forKey: .instance)
        tier = try c.decode(String.self, forKey: .tier)
        device = try c.decodeIfPresent(String.self, forKey: .device)
        planVersion = try c.decodeIfPresent(Int64.self, forKey: .planVersion)
        state = try c.decode(State.self, forKey: .state)
        nominal = try c.decode(Nominal.self, forKey: .nominal)
        kvFreeBytes = try c.decode(Double.self, forKey: .kvFreeBytes)
        if !(kvFreeBytes >= 0 && kvFreeBytes.isFinite) { throw Wire.invalid(.kvFreeBytes, c, "expected a number >= 0") }
        queueDepth = try c.decode(Int.self, forKey: .queueDepth)
        if queueDepth < 0 { throw Wire.invalid(.queueDepth, c, "expected an integer >= 0") }
        activeSequences = try c.decode(Int.self, forKey: .activeSequences)
        if activeSequences < 0 { throw Wire.invalid(.activeSequences, c, "expected an integer >= 0") }
        busyFraction = try c.decode(Double.self, forKey: .busyFraction)
        if !(busyFraction >= 0 && busyFraction <= 1) { throw Wire.invalid(.busyFraction, c, "expected a number in [0, 1]") }
        speed = try c.decode(Double.self, forKey: .speed)
        if !(speed > 0 && speed.isFinite) { throw Wire.invalid(.speed, c, "expected a number > 0") }
        tokensPerSecond = try c.decode(Double.self, forKey: .tokensPerSecond)
        if !(tokensPerSecond >= 0 && tokensPerSecond.isFinite) { throw Wire.invalid(.tokensPerSecond, c, "expected a number >= 0") }
        modelSHA256 = try c.decodeIfPresent(String.self, forKey: .modelSHA256)
        timestamp = try c.decode(Double.self, forKey: .timestamp)
        for key in [CodingKeys.kvBudgetBytes, .kvPeakBytes, .stepSeconds] {
            if let value = try c.decodeIfPresent(Double.self, forKey: key), !(value >= 0 && value.isFinite) {
                throw Wire.invalid(key, c, "expected a number >= 0")
            }
        }
        kvBudgetBytes = try c.decodeIfPresent(Double.self, forKey: .kvBudgetBytes)
        kvPeakBytes = try c.decodeIfPresent(Double.self, forKey: .kvPeakBytes)
        stepSeconds = try c.decodeIfPresent(Double.self, forKey: .stepSeconds)
        kvReservedBytes = try c.decodeIfPresent([String: Double].self, forKey: .kvReservedBytes)
        if let reserved = kvReservedBytes, reserved.values.contains(where: { !($0 >= 0 && $0.isFinite) }) {
            throw Wire.invalid(.kvReservedBytes, c, "expected numbers >= 0")
        }
        batches = try c.decodeIfPresent(Batches.self, forKey: .batches)
        batchShare = try c.decodeIfPresent(Double.self, forKey: .batchShare)
        if let share = batchShare, !(share > 0 && share <= 1) { throw Wire.invalid(.batchShare, c, "expected a number in (0, 1]") }
        computeSpeed = try c.decodeIfPresent(Double.self, forKey: .computeSpeed)
        if let value = computeSpeed, !(value > 0 && value.isFinite) { throw Wire.invalid(.computeSpeed, c, "expected a number > 0") }
        computeConfidence = try c.decodeIfPresent(Double.self, forKey: .computeConfidence)
        if let value = computeConfidence, !(value >= 0 && value <= 1) {
            throw Wire.invalid(.computeConfidence, c, "expected a number in [0, 1]")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Names.schemaVersion, forKey: .v)
        try c.encode(node, forKey: .node)
        try c.encode(instance, forKey: .instance)
        try c.encode(tier, forKey: .tier)
        try c.encodeIfPresent(device, forKey: .device)
        try c.encodeIfPresent(planVersion, forKey: .planVersion)
        try c.encode(state, forKey: .state)
        try c.encode(nominal, forKey: .nominal)
        try c.encode(kvFreeBytes, forKey: .kvFreeBytes)
        try c.encode(queueDepth, forKey: .queueDepth)
        try c.encode(activeSequences, forKey: .activeSequences)
        try c.encode(busyFraction, forKey: .busyFraction)
        try c.encode(speed, forKey: .speed)
        try c.encode(tokensPerSecond, forKey: .tokensPerSecond)
        try c.encodeIfPresent(modelSHA256, forKey: .modelSHA256)
        try c.encode(timestamp, forKey: .timestamp)
        try c.encodeIfPresent(kvBudgetBytes, forKey: .kvBudgetBytes)
        try c.encodeIfPresent(kvPeakBytes, forKey: .kvPeakBytes)
        try c.encodeIfPresent(kvReservedBytes, forKey: .kvReservedBytes)
        try c.encodeIfPresent(batches, forKey: .batches)
        try c.encodeIfPresent(stepSeconds, forKey: .stepSeconds)
        try c.encodeIfPresent(batchShare, forKey: .batchShare)
        try c.encodeIfPresent(computeSpeed, forKey: .computeSpeed)
        try c.encodeIfPresent(computeConfidence, forKey: .computeConfidence)
    }
}
