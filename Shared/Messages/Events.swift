import JSON

/// The last stage's sampled token for one step, sent to the owning scheduler.
public struct SampledEvent: Codable, Sendable, Equatable {
    public var key: String
    public var attempt: Int
    /// Position of the token the step consumed last; the sampled token goes at `position + 1`.
    public var position: Int
    public var token: Int32
    public var logprob: Double?
    /// One entry per stage the step passed through, in route order.
    public var timings: [StageTiming]

    public init(key: String, attempt: Int, position: Int, token: Int32, logprob: Double? = nil, timings: [StageTiming]) {
        self.key = key
        self.attempt = attempt
        self.position = position
        self.token = token
        self.logprob = logprob
        self.timings = timings
    }

    enum CodingKeys: String, CodingKey {
        case v, type, key, attempt, token, logprob, timings
        case position = "pos"
    }

    public init(from decoder: any Decoder) throws {
        try Wire.checkVersion(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try Wire.checkType(c, .type, "sampled")
        key = try c.decode(String.self, forKey: .key)
        attempt = try c.decode(Int.self, forKey: .attempt)
        position = try c.decode(Int.self, forKey: .position)
        if position < 0 { throw Wire.invalid(.position, c, "expected an integer >= 0") }
        token = try c.decode(Int32.self, forKey: .token)
        if token < 0 { throw Wire.invalid(.token, c, "expected a token id >= 0") }
        logprob = try c.decodeIfPresent(Double.self, forKey: .logprob)
        timings = try c.decode([StageTiming].self, forKey: .timings)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Names.schemaVersion, forKey: .v)
        try c.encode("sampled", forKey: .type)
        try c.encode(key, forKey: .key)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(position, forKey: .position)
        try c.encode(token, forKey: .token)
        try c.encodeIfPresent(logprob, forKey: .logprob)
        try c.encode(timings, forKey: .timings)
    }
}

/// Why a stage could not serve a step.
public enum StepErrorCode: String, Codable, Sendable {
    /// The node does not hold the KV entries of the step's earlier positions (restart, expiry).
    case missingCache = "missing_cache"
    /// Admitting the step would overrun the node's KV budget.
    case kvFull = "kv_full"
    /// Headers and body disagree, or the step does not fit the node's plan.
    case badStep = "bad_step"
    /// The step names a plan version the node does not serve.
    case planMismatch = "plan_mismatch"
    /// The node is draining and takes no new keys.
    case draining
    case `internal`
}

/// A stage's refusal of a step, sent to the owning scheduler.
public struct StepErrorEvent: Codable, Sendable, Equatable {
    public var key: String
    public var attempt: Int
    public var node: String
    public var code: StepErrorCode
    public var message: String

    public init(key: String, attempt: Int, node: String, code: StepErrorCode, message: String) {
        self.key = key
        self.attempt = attempt
        self.node = node
        self.code = code
        self.message = message
    }

    enum CodingKeys: String, CodingKey { case v, type, key, attempt, node, code, message }

    public init(from decoder: any Decoder) throws {
        try Wire.checkVersion(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try Wire.checkType(c, .type, "step_error")
        key = try c.decode(String.self, forKey: .key)
        attempt = try c.decode(Int.self, forKey: .attempt)
        node = try c.decode(String.self, forKey: .node)
        code = try c.decode(StepErrorCode.self, forKey: .code)
        message = try c.decode(String.self, forKey: .message)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Names.schemaVersion, forKey: .v)
        try c.encode("step_error", forKey: .type)
        try c.encode(key, forKey: .key)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(node, forKey: .node)
        try c.encode(code, forKey: .code)
        try c.encode(message, forKey: .message)
    }
}

/// What arrives on a scheduler's events queue.
public enum SchedulerEvent: Sendable, Equatable, Decodable {
    case sampled(SampledEvent)
    case stepError(StepErrorEvent)

    enum TypeKey: String, CodingKey { case type }

    public init(from decoder: any Decoder) throws {
        try Wire.checkVersion(decoder)
        let c = try decoder.container(keyedBy: TypeKey.self)
        switch try c.decode(String.self, forKey: .type) {
        case "sampled": self = .sampled(try SampledEvent(from: decoder))
        case "step_error": self = .stepError(try StepErrorEvent(from: decoder))
        default: throw Wire.invalid(.type, c, "expected \"sampled\" or \"step_error\"")
        }
    }
}

/// A scheduler's instruction to a node about one key's attempt.
public struct ControlMessage: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// The request finished: free its cache.
        case release
        /// The attempt was abandoned: drop its queued steps and cache.
        case cancel
    }

    public var kind: Kind
    public var key: String
    public var attempt: Int

    public init(kind: Kind, key: String, attempt: Int) {
        self.kind = kind
        self.key = key
        self.attempt = attempt
    }

    enum CodingKeys: String, CodingKey {
        case v, key, attempt
        case kind = "type"
    }

    public init(from decoder: any Decoder) throws {
        try Wire.checkVersion(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        key = try c.decode(String.self, forKey: .key)
        attempt = try c.decode(Int.self, forKey: .attempt)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Names.schemaVersion, forKey: .v)
        try c.encode(kind, forKey: .kind)
        try c.encode(key, forKey: .key)
        try c.encode(attempt, forKey: .attempt)
    }
}
