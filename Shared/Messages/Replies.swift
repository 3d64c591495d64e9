import JSON

/// Time one stage spent on a request or step: computing, and waiting in its queue.
public struct StageTiming: Codable, Sendable, Equatable {
    public var node: String
    public var computeSeconds: Double
    public var waitSeconds: Double

    public init(node: String, computeSeconds: Double, waitSeconds: Double) {
        self.node = node
        self.computeSeconds = computeSeconds
        self.waitSeconds = waitSeconds
    }

    enum CodingKeys: String, CodingKey {
        case node
        case computeSeconds = "compute_s"
        case waitSeconds = "wait_s"
    }
}

/// Why a generation ended.
public enum FinishReason: String, Codable, Sendable {
    case stop, length, cancelled, deadline
}

/// Error codes a client can branch on.
public enum ReplyErrorCode: String, Codable, Sendable {
    /// The request itself is wrong (a field, a parameter); resending it unchanged fails again.
    case badRequest = "bad_request"
    /// Prompt plus output exceed the model's context window or a configured limit.
    case tooLong = "too_long"
    /// No route could be found before the deadline.
    case unavailable
    case `internal`
}

/// A reply to the client's `reply_to` (same `correlation_id`), docs/design.md §4.
public enum Reply: Sendable, Equatable {
    case token(TokenReply)
    case result(ResultReply)
    case error(ErrorReply)

    /// The request id every reply names.
    public var id: String {
        switch self {
        case .token(let t): t.id
        case .result(let r): r.id
        case .error(let e): e.id
        }
    }
}

/// One streamed token; `index` counts generated tokens from 0, `text` is what this token completes.
public struct TokenReply: Codable, Sendable, Equatable {
    public var id: String
    public var attempt: Int
    public var index: Int
    public var token: Int32
    public var text: String

    public init(id: String, attempt: Int, index: Int, token: Int32, text: String) {
        self.id = id
        self.attempt = attempt
        self.index = index
        self.token = token
        self.text = text
    }

    enum CodingKeys: String, CodingKey { case v, type, id, attempt, index, token, text }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try Wire.checkType(c, .type, "token")
        id = try c.decode(String.self, forKey: .id)
        attempt = try c.decode(Int.self, forKey: .attempt)
        index = try c.decode(Int.self, forKey: .index)
        token = try c.decode(Int32.self, forKey: .token)
        text = try c.decode(String.self, forKey: .text)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Names.schemaVersion, forKey: .v)
        try c.encode("token", forKey: .type)
        try c.encode(id, forKey: .id)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(index, forKey: .index)
        try c.encode(token, forKey: .token)
        try c.encode(text, forKey: .text)
    }
}

/// The final reply of a completed generation.
public struct ResultReply: Codable, Sendable, Equatable {
    public struct Usage: Codable, Sendable, Equatable {
        public var promptTokens: Int
        public var completionTokens: Int
        public init(promptTokens: Int, completionTokens: Int) {
            self.promptTokens = promptTokens
            self.completionTokens = completionTokens
        }
        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
        }
    }

    public struct Timings: Codable, Sendable, Equatable {
        /// Seconds from publication (or admission) until the first step was sent.
        public var queueSeconds: Double
        /// Seconds until the first generated token.
        public var timeToFirstTokenSeconds: Double
        public var totalSeconds: Double
        /// Summed over the request's steps, per node of the route.
        public var stages: [StageTiming]
        public init(queueSeconds: Double, timeToFirstTokenSeconds: Double, totalSeconds: Double, stages: [StageTiming]) {
            self.queueSeconds = queueSeconds
            self.timeToFirstTokenSeconds = timeToFirstTokenSeconds
            self.totalSeconds = totalSeconds
            self.stages = stages
        }
        enum CodingKeys: String, CodingKey {
            case queueSeconds = "queue_s"
            case timeToFirstTokenSeconds = "ttft_s"
            case totalSeconds = "total_s"
            case stages
        }
    }

    public var id: String
    public var text: String
    public var tokens: [Int32]
    public var finishReason: FinishReason
    public var usage: Usage
    public var route: [String]
    public var planVersion: Int64
    public var attempts: Int
    public var timings: Timings

    public init(
        id: String, text: String, tokens: [Int32], finishReason: FinishReason, usage: Usage, route: [String],
        planVersion: Int64, attempts: Int, timings: Timings
    ) {
        self.id = id
        self.text = text
        self.tokens = tokens
        self.finishReason = finishReason
        self.usage = usage
        self.route = route
        self.planVersion = planVersion
        self.attempts = attempts
        self.timings = timings
    }

    enum CodingKeys: String, CodingKey {
        case v, type, id, text, tokens, usage, route, attempts, timings
        case finishReason = "finish_reason"
        case planVersion = "plan_version"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try Wire.checkType(c, .type, "result")
        id = try c.decode(String.self, forKey: .id)
        text = try c.decode(String.self, forKey: .text)
        tokens = try c.decode([Int32].self, forKey: .tokens)
        finishReason = try c.decode(FinishReason.self, forKey: .finishReason)
        usage = try c.decode(Usage.self, forKey: .usage)
        route = try c.decode([String].self, forKey: .route)
        planVersion = try c.decode(Int64.self, forKey: .planVersion)
        attempts = try c.decode(Int.self, forKey: .attempts)
        timings = try c.decode(Timings.self, forKey: .timings)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Names.schemaVersion, forKey: .v)
        try c.encode("result", forKey: .type)
        try c.encode(id, forKey: .id)
        try c.encode(text, forKey: .text)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(finishReason, forKey: .finishReason)
        try c.encode(usage, forKey: .usage)
        try c.encode(route, forKey: .route)
        try c.encode(planVersion, forKey: .planVersion)
        try c.encode(attempts, forKey: .attempts)
        try c.encode(timings, forKey: .timings)
    }
}

/// A request that ended without a result.
public struct ErrorReply: Codable, Sendable, Equatable {
    public var id: String
    public var code: ReplyErrorCode
    public var message: String

    public init(id: String, code: ReplyErrorCode, message: String) {
        self.id = id
        self.code = code
        self.message = message
    }

    enum CodingKeys: String, CodingKey { case v, type, id, code, message }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try Wire.checkType(c, .type, "error")
        id = try c.decode(String.self, forKey: .id)
        code = try c.decode(ReplyErrorCode.self, forKey: .code)
        message = try c.decode(String.self, forKey: .message)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Names.schemaVersion, forKey: .v)
        try c.encode("error", forKey: .type)
        try c.encode(id, forKey: .id)
        try c.encode(code, forKey: .code)
        try c.encode(message, forKey: .message)
    }
}

extension Reply: Codable {
    enum TypeKey: String, CodingKey { case type }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: TypeKey.self)
        switch try c.decode(String.self, forKey: .type) {
        case "token": self = .token(try TokenReply(from: decoder))
        case "result": self = .result(try ResultReply(from: decoder))
        case "error": self = .error(try ErrorReply(from: decoder))
        default:
            throw Wire.invalid(.type, c, "expected \"token\", \"result\" or \"error\"")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .token(let t): try t.encode(to: encoder)
        case .result(let r): try r.encode(to: encoder)
        case .error(let e): try e.encode(to: encoder)
        }
    }
}
