import JSON

/// One chat turn of a `messages` request.
public struct ChatMessage: Codable, Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A client's request, as published onto `hyperion.ingress` (docs/design.md §4).
///
/// Decoding checks the shape and ranges of every field; limits that depend on the deployment
/// (context window, maximum output) are checked by the scheduler.
public struct InferenceRequest: Codable, Sendable, Equatable {
    /// What to continue: text, chat turns rendered with the model's template, or token ids.
    public enum Input: Sendable, Equatable {
        case prompt(String)
        case messages([ChatMessage])
        case tokens([Int32])
    }

    /// The client's id; when absent the AMQP `correlation_id` stands in (see `resolvedID`).
    public var id: String?
    public var input: Input
    public var maxTokens: Int
    public var temperature: Double?
    public var topP: Double?
    public var topK: Int?
    public var seed: UInt64?
    public var stop: [String]?
    public var stream: Bool?
    public var deadlineSeconds: Double?

    public init(
        id: String?, input: Input, maxTokens: Int, temperature: Double? = nil, topP: Double? = nil,
        topK: Int? = nil, seed: UInt64? = nil, stop: [String]? = nil, stream: Bool? = nil,
        deadlineSeconds: Double? = nil
    ) {
        self.id = id
        self.input = input
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.seed = seed
        self.stop = stop
        self.stream = stream
        self.deadlineSeconds = deadlineSeconds
    }

    enum CodingKeys: String, CodingKey {
        case v, id, prompt, messages, tokens, stop, stream, temperature, seed
        case maxTokens = "max_tokens"
        case topP = "top_p"
        case topK = "top_k"
        case deadlineSeconds = "deadline_s"
    }

    public init(from decoder: any Decoder) throws {
        try Wire.checkVersion(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id)
        if let id, id.isEmpty { throw Wire.invalid(.id, c, "must not be empty") }

        let given = [CodingKeys.prompt, .messages, .tokens].filter { c.contains($0) }
        guard given.count == 1 else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: c.codingPath,
                debugDescription: given.isEmpty
                    ? "one of \"prompt\", \"messages\" or \"tokens\" is required"
                    : "give only one of \"prompt\", \"messages\" or \"tokens\""))
        }
        switch given[0] {
        case .prompt:
            input = .prompt(try c.decode(String.self, forKey: .prompt))
        case .messages:
            let messages = try c.decode([ChatMessage].self, forKey: .messages)
            if messages.isEmpty { throw Wire.invalid(.messages, c, "expected at least one turn") }
            input = .messages(messages)
        default:
            let tokens = try c.decode([Int32].self, forKey: .tokens)
            if tokens.isEmpty { throw Wire.invalid(.tokens, c, "expected at least one token id") }
            if let bad = tokens.firstIndex(where: { $0 < 0 }) {
                throw Wire.invalid(.tokens, c, "token id at index \(bad) is negative")
            }
            input = .tokens(tokens)
        }

        maxTokens = try c.decode(Int.self, forKey: .maxTokens)
        if maxTokens < 1 { throw Wire.invalid(.maxTokens, c, "expected an integer >= 1") }
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        if let t = temperature, !(t >= 0 && t.isFinite) { throw Wire.invalid(.temperature, c, "expected a number >= 0") }
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        if let p = topP, !(p > 0 && p <= 1) { throw Wire.invalid(.topP, c, "expected a number in (0, 1]") }
        topK = try c.decodeIfPresent(Int.self, forKey: .topK)
        if let k = topK, k < 0 { throw Wire.invalid(.topK, c, "expected an integer >= 0 (0 = no limit)") }
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        if let single = try? c.decodeIfPresent(String.self, forKey: .stop) {
            stop = [single]
        } else {
            stop = try c.decodeIfPresent([String].self, forKey: .stop)
        }
        if let stop, stop.contains(where: \.isEmpty) { throw Wire.invalid(.stop, c, "stop strings must not be empty") }
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        deadlineSeconds = try c.decodeIfPresent(Double.self, forKey: .deadlineSeconds)
        if let d = deadlineSeconds, !(d > 0 && d.isFinite) { throw Wire.invalid(.deadlineSeconds, c, "expected a number of seconds > 0") }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Names.schemaVersion, forKey: .v)
        try c.encodeIfPresent(id, forKey: .id)
        switch input {
        case .prompt(let text): try c.encode(text, forKey: .prompt)
        case .messages(let messages): try c.encode(messages, forKey: .messages)
        case .tokens(let tokens): try c.encode(tokens, forKey: .tokens)
        }
        try c.encode(maxTokens, forKey: .maxTokens)
        try c.encodeIfPresent(temperature, forKey: .temperature)
        try c.encodeIfPresent(topP, forKey: .topP)
        try c.encodeIfPresent(topK, forKey: .topK)
        try c.encodeIfPresent(seed, forKey: .seed)
        try c.encodeIfPresent(stop, forKey: .stop)
        try c.encodeIfPresent(stream, forKey: .stream)
        try c.encodeIfPresent(deadlineSeconds, forKey: .deadlineSeconds)
    }

    /// The id replies carry: the request's own, else the message's correlation id.
    public func resolvedID(correlationID: String?) throws(MessageError) -> String {
        if let id { return id }
        if let correlationID, !correlationID.isEmpty { return correlationID }
        throw MessageError(field: "id", reason: "required when the message has no correlation_id")
    }
}

extension ChatMessage {
    enum CodingKeys: String, CodingKey { case role, content }

    /// The roles chat templates know.
    public static let roles = ["system", "user", "assistant"]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decode(String.self, forKey: .role)
        guard ChatMessage.roles.contains(role) else {
            throw Wire.invalid(.role, c, "expected \"system\", \"user\" or \"assistant\"")
        }
        content = try c.decode(String.self, forKey: .content)
    }
}

/// A client's cancel, published onto `hyperion.cancel` with the request's `reply_to`.
public struct CancelRequest: Codable, Sendable, Equatable {
    public var id: String

    public init(id: String) { self.id = id }

    enum CodingKeys: String, CodingKey { case v, type, id }

    public init(from decoder: any Decoder) throws {
        try Wire.checkVersion(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try Wire.checkType(c, .type, "cancel")
        id = try c.decode(String.self, forKey: .id)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Names.schemaVersion, forKey: .v)
        try c.encode("cancel", forKey: .type)
        try c.encode(id, forKey: .id)
    }
}
