/// What a vocabulary entry is, numbered as GGUF's `tokenizer.ggml.token_type` numbers it.
public enum TokenKind: Int32, Sendable {
    case undefined = 0
    case normal = 1
    case unknown = 2
    /// Markers such as `<|im_start|>`: matched only in chat-templated text, decoded as their text.
    case control = 3
    /// Added tokens, treated like control tokens.
    case userDefined = 4
    case unused = 5
    case byte = 6

    /// Whether the token is matched by its literal text in templated text rather than made by merges.
    var isSpecial: Bool { self == .control || self == .userDefined }
}

/// Everything a byte-level BPE tokenizer is built from, as the plain arrays and ids a GGUF file holds.
public struct TokenizerConfiguration: Sendable, Equatable {
    /// Token spellings in GPT-2's byte-level alphabet (`Ġthe`), indexed by id.
    public var tokens: [String]
    /// One kind per token; empty means every token is normal.
    public var tokenKinds: [TokenKind]
    /// Merge rules `"left right"`, highest priority first.
    public var merges: [String]
    public var preTokenizer: PreTokenizer
    public var bosTokenID: Int32?
    public var eosTokenID: Int32?
    /// End-of-turn and end-of-message ids (`tokenizer.ggml.eot_token_id`, `eom_token_id`), if the model has them.
    public var endOfTurnTokenIDs: [Int32]
    /// Whether encoding starts with the BOS token (`tokenizer.ggml.add_bos_token`).
    public var addsBOS: Bool
    /// The Jinja source of `tokenizer.chat_template`, if any.
    public var chatTemplate: String?

    public init(
        tokens: [String], tokenKinds: [TokenKind] = [], merges: [String], preTokenizer: PreTokenizer,
        bosTokenID: Int32? = nil, eosTokenID: Int32? = nil, endOfTurnTokenIDs: [Int32] = [],
        addsBOS: Bool = false, chatTemplate: String? = nil
    ) {
        self.tokens = tokens
        self.tokenKinds = tokenKinds
        self.merges = merges
        self.preTokenizer = preTokenizer
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.endOfTurnTokenIDs = endOfTurnTokenIDs
        self.addsBOS = addsBOS
        self.chatTemplate = chatTemplate
    }
}
