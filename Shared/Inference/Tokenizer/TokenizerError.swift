/// Why a tokenizer could not be built from a model's metadata, or a chat could not be rendered.
///
/// Each case names the metadata key or template at fault, so the message says what to fix.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A required metadata key is absent.
    case missingMetadata(key: String)
    /// A metadata key holds a value of the wrong type.
    case wrongMetadataType(key: String, expected: String)
    /// `tokenizer.ggml.model` names a tokenizer family this module does not implement.
    case unsupportedModel(String)
    /// `tokenizer.ggml.pre` names a pre-tokenizer this module does not implement.
    case unsupportedPreTokenizer(String)
    /// The vocabulary has no tokens.
    case emptyVocabulary
    /// `tokenizer.ggml.token_type` does not have one entry per token.
    case tokenTypeCountMismatch(tokens: Int, tokenTypes: Int)
    /// A token type number is not one GGUF defines.
    case invalidTokenType(index: Int, value: Int32)
    /// A special token id (bos, eos, …) is outside the vocabulary.
    case specialTokenOutOfRange(key: String, id: Int64, vocabularySize: Int)
    /// A merge rule is not two vocabulary tokens separated by one space, or its result is not a token.
    case invalidMerge(index: Int, text: String, reason: String)
    /// The model carries no chat template.
    case missingChatTemplate
    /// The chat template is of a kind this module cannot render.
    case unsupportedChatTemplate(kind: String)
    /// The chat template uses a marker that is not a special token of the vocabulary.
    case chatTemplateMarkerNotInVocabulary(String)

    public var description: String {
        switch self {
        case .missingMetadata(let key):
            return "\(key): missing"
        case .wrongMetadataType(let key, let expected):
            return "\(key): expected \(expected)"
        case .unsupportedModel(let name):
            return "tokenizer.ggml.model: '\(name)' is not supported (only 'gpt2' byte-level BPE is)"
        case .unsupportedPreTokenizer(let name):
            let known = PreTokenizer.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            return "tokenizer.ggml.pre: '\(name)' is not supported (supported: \(known))"
        case .emptyVocabulary:
            return "tokenizer.ggml.tokens: the vocabulary is empty"
        case .tokenTypeCountMismatch(let tokens, let tokenTypes):
            return "tokenizer.ggml.token_type: \(tokenTypes) entries for \(tokens) tokens"
        case .invalidTokenType(let index, let value):
            return "tokenizer.ggml.token_type[\(index)]: \(value) is not a token type (0…6)"
        case .specialTokenOutOfRange(let key, let id, let vocabularySize):
            return "\(key): id \(id) is outside the vocabulary of \(vocabularySize) tokens"
        case .invalidMerge(let index, let text, let reason):
            return "tokenizer.ggml.merges[\(index)]: '\(text)': \(reason)"
        case .missingChatTemplate:
            return "tokenizer.chat_template: the model has no chat template"
        case .unsupportedChatTemplate(let kind):
            return "tokenizer.chat_template: \(kind) templates are not supported (only ChatML is)"
        case .chatTemplateMarkerNotInVocabulary(let marker):
            return "tokenizer.chat_template: marker '\(marker)' is not a special token of the vocabulary"
        }
    }
}
