/// One message of a conversation, as requests carry it (`{"role", "content"}`).
public struct ChatTurn: Sendable, Equatable, Codable {
    /// `system`, `user`, `assistant`, or any role the template accepts.
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatTurn { ChatTurn(role: "system", content: content) }
    public static func user(_ content: String) -> ChatTurn { ChatTurn(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatTurn { ChatTurn(role: "assistant", content: content) }
}

/// A model's chat template, recognised from its Jinja source and rendered natively.
///
/// Only ChatML (`<|im_start|>role\ncontent<|im_end|>\n`, SmolLM2's and Qwen's format) is supported;
/// recognising the format instead of interpreting Jinja keeps rendering exact and fast. A default
/// system prompt written literally in the template is added when the first turn is not a system turn.
public struct ChatTemplate: Sendable, Equatable {
    /// The marker that opens a turn.
    public static let turnStart = "<|im_start|>"
    /// The marker that closes a turn.
    public static let turnEnd = "<|im_end|>"

    /// The system prompt the template adds when a conversation does not start with one.
    public let defaultSystemPrompt: String?

    /// Recognises a template's source, or throws `unsupportedChatTemplate` naming the format found.
    public init(source: String) throws {
        guard source.contains(Self.turnStart), source.contains(Self.turnEnd) else {
            throw TokenizerError.unsupportedChatTemplate(kind: Self.kindName(of: source))
        }
        defaultSystemPrompt = Self.literalSystemPrompt(in: source)
    }

    /// A ChatML template with the given default system prompt.
    public init(defaultSystemPrompt: String?) {
        self.defaultSystemPrompt = defaultSystemPrompt
    }

    /// The conversation as text, ending with the assistant's turn opening when asked to.
    public func render(_ turns: [ChatTurn], addingGenerationPrompt: Bool = true) -> String {
        segments(turns, addingGenerationPrompt: addingGenerationPrompt).map { segment in
            switch segment {
            case .text(let text), .marker(let text): return text
            }
        }.joined()
    }

    /// Text the template writes: literal `text` is tokenized as plain text, a `marker` is one special token.
    enum Segment: Equatable {
        case text(String)
        case marker(String)
    }

    /// The rendering as segments, so that only the template's own markers become special tokens and
    /// a marker typed inside a message stays plain text.
    func segments(_ turns: [ChatTurn], addingGenerationPrompt: Bool) -> [Segment] {
        var segments: [Segment] = []
        func append(role: String, content: String) {
            segments.append(.marker(Self.turnStart))
            segments.append(.text(role + "\n" + content))
            segments.append(.marker(Self.turnEnd))
            segments.append(.text("\n"))
        }
        if let first = turns.first, first.role != "system", let defaultSystemPrompt {
            append(role: "system", content: defaultSystemPrompt)
        }
        for turn in turns { append(role: turn.role, content: turn.content) }
        if addingGenerationPrompt {
            segments.append(.marker(Self.turnStart))
            segments.append(.text("assistant\n"))
        }
        return segments
    }

    /// The text of a string literal `'<|im_start|>system\n…<|im_end|>` in the template, if there is one.
    private static func literalSystemPrompt(in source: String) -> String? {
        let opening = turnStart + "system"
        var searchStart = source.startIndex
        while let found = source[searchStart...].firstRange(of: opening) {
            searchStart = found.upperBound
            guard found.lowerBound > source.startIndex else { continue }
            let quote = source[source.index(before: found.lowerBound)]
            guard quote == "'" || quote == "\"" else { continue }
            var rest = source[found.upperBound...]
            if rest.hasPrefix("\n") {
                rest = rest.dropFirst()
            } else if rest.hasPrefix("\\n") {
                rest = rest.dropFirst(2)
            } else {
                continue
            }
            guard let end = rest.firstRange(of: turnEnd) else { continue }
            let literal = rest[..<end.lowerBound]
            if let prompt = unescaped(literal, quote: quote) { return prompt }
        }
        return nil
    }

    /// A Jinja string literal's body with escapes resolved, or nil if the literal ends inside it.
    private static func unescaped(_ literal: Substring, quote: Character) -> String? {
        var result = ""
        var escaping = false
        for character in literal {
            if escaping {
                switch character {
                case "n": result.append("\n")
                case "t": result.append("\t")
                default: result.append(character)
                }
                escaping = false
            } else if character == "\\" {
                escaping = true
            } else if character == quote {
                return nil
            } else {
                result.append(character)
            }
        }
        return escaping ? nil : result
    }

    /// A readable name for a template format, for the error that says it is not supported.
    static func kindName(of source: String) -> String {
        let signatures: [(marker: String, kind: String)] = [
            ("<|start_header_id|>", "Llama 3"),
            ("<start_of_turn>", "Gemma"),
            ("<|assistant|>", "Phi-3/Zephyr"),
            ("[INST]", "Llama 2/Mistral [INST]"),
            ("<｜Assistant｜>", "DeepSeek"),
            ("### Instruction", "Alpaca"),
        ]
        if let match = signatures.first(where: { source.contains($0.marker) }) { return match.kind }
        let opening = source.prefix(40).replacing("\n", with: "\\n")
        return "unrecognised (source begins '\(opening)')"
    }
}
