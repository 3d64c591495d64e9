import GGUF
extension Tokenizer {
    /// The tokenizer a GGUF file describes in its `tokenizer.*` metadata.
    public init(gguf file: GGUFFile) throws {
        try self.init(metadata: file.metadata)
    }

    /// The tokenizer described by GGUF `tokenizer.*` metadata (`tokenizer.ggml.model` must be `gpt2`).
    ///
    /// A missing `tokenizer.ggml.pre` means the plain GPT-2 regex; a missing `token_type` array means
    /// every token is normal.
    public init(metadata: [String: GGUFValue]) throws {
        try self.init(configuration: TokenizerConfiguration(metadata: metadata))
    }
}

extension TokenizerConfiguration {
    /// Reads the tokenizer's arrays and ids from GGUF metadata, naming the key at fault on error.
    public init(metadata: [String: GGUFValue]) throws {
        func value(_ key: String) throws -> GGUFValue {
            guard let value = metadata[key] else { throw TokenizerError.missingMetadata(key: key) }
            return value
        }
        func string(_ key: String) throws -> String {
            guard let text = try value(key).stringValue else {
                throw TokenizerError.wrongMetadataType(key: key, expected: "string, found \(try value(key).typeName)")
            }
            return text
        }
        func strings(_ key: String) throws -> [String] {
            guard let texts = try value(key).stringArray else {
                throw TokenizerError.wrongMetadataType(key: key, expected: "array of strings")
            }
            return texts
        }
        func optionalID(_ key: String) throws -> Int32? {
            guard let entry = metadata[key] else { return nil }
            guard let id = entry.intValue else {
                throw TokenizerError.wrongMetadataType(key: key, expected: "integer, found \(entry.typeName)")
            }
            guard let narrow = Int32(exactly: id) else {
                throw TokenizerError.specialTokenOutOfRange(key: key, id: Int64(id), vocabularySize: 0)
            }
            return narrow
        }

        let model = try string("tokenizer.ggml.model")
        guard model == "gpt2" else { throw TokenizerError.unsupportedModel(model) }
        let preName = metadata["tokenizer.ggml.pre"] == nil ? "gpt2" : try string("tokenizer.ggml.pre")
        guard let preTokenizer = PreTokenizer(ggufName: preName) else {
            throw TokenizerError.unsupportedPreTokenizer(preName)
        }

        let tokens = try strings("tokenizer.ggml.tokens")
        var kinds: [TokenKind] = []
        if let typeEntry = metadata["tokenizer.ggml.token_type"] {
            guard let numbers = typeEntry.intArray else {
                throw TokenizerError.wrongMetadataType(key: "tokenizer.ggml.token_type", expected: "array of integers")
            }
            kinds.reserveCapacity(numbers.count)
            for (index, number) in numbers.enumerated() {
                guard let narrow = Int32(exactly: number), let kind = TokenKind(rawValue: narrow) else {
                    throw TokenizerError.invalidTokenType(index: index, value: Int32(clamping: number))
                }
                kinds.append(kind)
            }
        }
        let merges = try strings("tokenizer.ggml.merges")
        let endOfTurn = try ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"].compactMap(optionalID)
        let addsBOS: Bool
        if let entry = metadata["tokenizer.ggml.add_bos_token"] {
            guard let flag = entry.boolValue else {
                throw TokenizerError.wrongMetadataType(
                    key: "tokenizer.ggml.add_bos_token", expected: "bool, found \(entry.typeName)")
            }
            addsBOS = flag
        } else {
            addsBOS = false
        }
        let template = metadata["tokenizer.chat_template"] == nil ? nil : try string("tokenizer.chat_template")

        self.init(
            tokens: tokens, tokenKinds: kinds, merges: merges, preTokenizer: preTokenizer,
            bosTokenID: try optionalID("tokenizer.ggml.bos_token_id"),
            eosTokenID: try optionalID("tokenizer.ggml.eos_token_id"),
            endOfTurnTokenIDs: endOfTurn, addsBOS: addsBOS, chatTemplate: template)
    }
}
