import Synchronization

/// GPT-2 style byte-level BPE: text to token ids and back, plus the model's chat template.
///
/// Plain text is always ordinary text: a `<|im_start|>` typed by a user is tokenized character by
/// character. Special tokens come only from the chat template (`encodeChat`) or when a caller says
/// the text is already templated. Bytes the vocabulary cannot spell are dropped, as the reference
/// implementation does. A value is immutable and safe to share; its piece cache is internally locked.
public struct Tokenizer: Sendable {
    /// Number of tokens in the vocabulary; valid ids are `0..<vocabularySize`.
    public let vocabularySize: Int
    public let preTokenizer: PreTokenizer
    public let bosTokenID: Int32?
    public let eosTokenID: Int32?
    /// Whether `encode` and `encodeChat` start with the BOS token.
    public let addsBOS: Bool
    /// Ids after which generation stops: eos, end-of-turn, and control tokens such as `<|im_end|>`.
    public let endOfGenerationTokenIDs: Set<Int32>

    private let chatTemplateResult: Result<ChatTemplate, TokenizerError>
    private let merger: BytePairMerger
    /// Normal tokens by spelling, for pieces that are whole tokens (Llama 3).
    private let normalTokenIDs: [String: Int32]
    /// Special tokens by literal text.
    private let specialTokenIDs: [String: Int32]
    /// Special tokens' UTF-8 by their first byte, longest first, for splitting templated text.
    private let specialTokensByFirstByte: [UInt8: [(bytes: [UInt8], id: Int32)]]
    /// Every token's decoded bytes, concatenated; token `i` is `tokenBytes[tokenByteOffsets[i]..<tokenByteOffsets[i+1]]`.
    private let tokenBytes: [UInt8]
    private let tokenByteOffsets: [Int]
    private let cache = PieceCache()

    /// Texts of control tokens that end a turn in common chat formats.
    private static let endOfGenerationTexts: Set<String> = [
        "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>",
    ]

    /// Builds the tokenizer, checking that every id, type and merge refers to the vocabulary.
    ///
    /// An unsupported chat template does not fail here: plain encoding still works and
    /// `encodeChat` throws the template's error.
    public init(configuration: TokenizerConfiguration) throws {
        let tokens = configuration.tokens
        guard !tokens.isEmpty else { throw TokenizerError.emptyVocabulary }
        let kinds =
            configuration.tokenKinds.isEmpty
            ? [TokenKind](repeating: .normal, count: tokens.count) : configuration.tokenKinds
        guard kinds.count == tokens.count else {
            throw TokenizerError.tokenTypeCountMismatch(tokens: tokens.count, tokenTypes: kinds.count)
        }
        vocabularySize = tokens.count
        preTokenizer = configuration.preTokenizer
        addsBOS = configuration.addsBOS

        func checked(_ id: Int32?, key: String) throws -> Int32? {
            guard let id else { return nil }
            guard id >= 0, Int(id) < tokens.count else {
                throw TokenizerError.specialTokenOutOfRange(key: key, id: Int64(id), vocabularySize: tokens.count)
            }
            return id
        }
        bosTokenID = try checked(configuration.bosTokenID, key: "tokenizer.ggml.bos_token_id")
        eosTokenID = try checked(configuration.eosTokenID, key: "tokenizer.ggml.eos_token_id")
        var endIDs = Set<Int32>()
        if let eosTokenID { endIDs.insert(eosTokenID) }
        for id in configuration.endOfTurnTokenIDs {
            if let id = try checked(id, key: "tokenizer.ggml.eot_token_id") { endIDs.insert(id) }
        }

        var normalIDs: [String: Int32] = [:]
        var specialIDs: [String: Int32] = [:]
        var bytes: [UInt8] = []
        var offsets: [Int] = [0]
        bytes.reserveCapacity(tokens.count * 8)
        offsets.reserveCapacity(tokens.count + 1)
        for (index, text) in tokens.enumerated() {
            let id = Int32(index)
            if kinds[index].isSpecial {
                specialIDs[text] = id
                bytes.append(contentsOf: text.utf8)
                if Self.endOfGenerationTexts.contains(text) { endIDs.insert(id) }
            } else {
                // A repeated spelling keeps its first id, as merges can only produce one.
                if normalIDs[text] == nil { normalIDs[text] = id }
                for scalar in text.unicodeScalars {
                    if let byte = ByteLevelAlphabet.byte(for: scalar) {
                        bytes.append(byte)
                    } else {
                        bytes.append(contentsOf: String(scalar).utf8)
                    }
                }
            }
            offsets.append(bytes.count)
        }
        normalTokenIDs = normalIDs
        specialTokenIDs = specialIDs
        tokenBytes = bytes
        tokenByteOffsets = offsets
        endOfGenerationTokenIDs = endIDs

        var byFirstByte: [UInt8: [(bytes: [UInt8], id: Int32)]] = [:]
        for (text, id) in specialIDs {
            let utf8 = Array(text.utf8)
            guard let first = utf8.first else { continue }
            byFirstByte[first, default: []].append((utf8, id))
        }
        specialTokensByFirstByte = byFirstByte.mapValues { candidates in
            candidates.sorted { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        }

        let byteIDs = ByteLevelAlphabet.scalarForByte.map { normalIDs[String($0)] ?? -1 }
        merger = BytePairMerger(
            byteTokenIDs: byteIDs, merges: try Self.mergeTable(configuration.merges, tokenIDs: normalIDs))

        if let source = configuration.chatTemplate {
            chatTemplateResult = Result { try ChatTemplate(source: source) }.mapError { error in
                error as? TokenizerError ?? .unsupportedChatTemplate(kind: "unreadable")
            }
        } else {
            chatTemplateResult = .failure(.missingChatTemplate)
        }
    }

    private static func mergeTable(_ rules: [String], tokenIDs: [String: Int32]) throws -> BytePairMerger.Table {
        var table: BytePairMerger.Table = [:]
        table.reserveCapacity(rules.count)
        for (rank, rule) in rules.enumerated() {
            let parts = rule.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.invalidMerge(
                    index: rank, text: rule, reason: "expected two tokens separated by one space")
            }
            guard let left = tokenIDs[String(parts[0])], let right = tokenIDs[String(parts[1])] else {
                throw TokenizerError.invalidMerge(index: rank, text: rule, reason: "a side is not a vocabulary token")
            }
            guard let merged = tokenIDs[String(parts[0] + parts[1])] else {
                throw TokenizerError.invalidMerge(
                    index: rank, text: rule, reason: "the merged token is not in the vocabulary")
            }
            let key = BytePairMerger.key(left, right)
            // A repeated rule keeps its first (highest-priority) rank.
            if table[key] == nil { table[key] = BytePairMerger.Merge(rank: Int32(rank), merged: merged) }
        }
        return table
    }

    // MARK: Encoding

    /// Token ids of `text`, starting with BOS when the model asks for it.
    ///
    /// - Parameter parsingSpecialTokens: treat the literal text of control tokens (`<|im_start|>`)
    ///   as those tokens; only for text that was rendered from a chat template. Plain prompts must
    ///   leave it false, so users cannot forge turn markers.
    public func encode(_ text: String, parsingSpecialTokens: Bool = false) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(text.utf8.count / 3 + 2)
        if addsBOS, let bosTokenID { ids.append(bosTokenID) }
        if parsingSpecialTokens {
            appendSplittingSpecialTokens(text, to: &ids)
        } else {
            appendPlain(text[...], to: &ids)
        }
        return ids
    }

    /// The conversation rendered with the model's chat template and tokenized, ready for generation.
    ///
    /// Only the template's own markers become special tokens; message contents are plain text.
    /// Throws when the model has no template or one this module cannot render.
    public func encodeChat(_ turns: [ChatTurn], addingGenerationPrompt: Bool = true) throws -> [Int32] {
        let template = try chatTemplateResult.get()
        var ids: [Int32] = []
        if addsBOS, let bosTokenID { ids.append(bosTokenID) }
        for segment in template.segments(turns, addingGenerationPrompt: addingGenerationPrompt) {
            switch segment {
            case .text(let text):
                appendPlain(text[...], to: &ids)
            case .marker(let marker):
                guard let id = specialTokenIDs[marker] else {
                    throw TokenizerError.chatTemplateMarkerNotInVocabulary(marker)
                }
                ids.append(id)
            }
        }
        return ids
    }

    /// The conversation as the model sees it, for display and logs.
    public func renderChat(_ turns: [ChatTurn], addingGenerationPrompt: Bool = true) throws -> String {
        try chatTemplateResult.get().render(turns, addingGenerationPrompt: addingGenerationPrompt)
    }

    /// The recognised chat template, or the error `encodeChat` would throw.
    public var chatTemplate: Result<ChatTemplate, TokenizerError> { chatTemplateResult }

    /// The id of a special token by its text (`<|im_end|>`), if the vocabulary has it.
    public func specialTokenID(_ text: String) -> Int32? { specialTokenIDs[text] }

    /// Whether generation should stop after this token.
    public func isEndOfGeneration(_ id: Int32) -> Bool { endOfGenerationTokenIDs.contains(id) }

    private func appendSplittingSpecialTokens(_ text: String, to ids: inout [Int32]) {
        let utf8 = Array(text.utf8)
        var plainStart = 0
        var index = 0
        while index < utf8.count {
            if let candidates = specialTokensByFirstByte[utf8[index]],
                let match = candidates.first(where: { utf8[index...].starts(with: $0.bytes) })
            {
                if plainStart < index {
                    appendPlain(Substring(decoding: utf8[plainStart..<index], as: UTF8.self), to: &ids)
                }
                ids.append(match.id)
                index += match.bytes.count
                plainStart = index
            } else {
                index += 1
            }
        }
        if plainStart < utf8.count { appendPlain(Substring(decoding: utf8[plainStart...], as: UTF8.self), to: &ids) }
    }

    private func appendPlain(_ text: Substring, to ids: inout [Int32]) {
        guard !text.isEmpty else { return }
        let scalars = ClassifiedScalars(text)
        let utf8 = Array(text.utf8)
        for piece in preTokenizer.pieces(of: scalars) {
            let bytes = utf8[scalars.utf8Offsets[piece.lowerBound]..<scalars.utf8Offsets[piece.upperBound]]
            appendPiece(bytes, to: &ids)
        }
    }

    private func appendPiece(_ bytes: ArraySlice<UInt8>, to ids: inout [Int32]) {
        if preTokenizer.takesWholeTokenPieces, let id = normalTokenIDs[ByteLevelAlphabet.spelling(of: bytes)] {
            ids.append(id)
            return
        }
        if bytes.count == 1 {
            merger.merge(bytes, into: &ids)
            return
        }
        guard bytes.count <= PieceCache.longestPieceBytes else {
            merger.merge(bytes, into: &ids)
            return
        }
        let key = Array(bytes)
        if let cached = cache.tokens(for: key) {
            ids.append(contentsOf: cached)
            return
        }
        var merged: [Int32] = []
        merger.merge(bytes, into: &merged)
        cache.store(merged, for: key)
        ids.append(contentsOf: merged)
    }

    // MARK: Decoding

    /// The bytes `ids` stand for; special tokens give their literal text and unknown ids nothing.
    public func decodeBytes(_ ids: some Sequence<Int32>) -> [UInt8] {
        var bytes: [UInt8] = []
        for id in ids { bytes.append(contentsOf: self.bytes(of: id)) }
        return bytes
    }

    /// The text `ids` stand for; byte sequences that are not valid UTF-8 become U+FFFD.
    public func decode(_ ids: some Sequence<Int32>) -> String {
        String(decoding: decodeBytes(ids), as: UTF8.self)
    }

    /// Bytes the vocabulary has no token for; `encode` drops them.
    var bytesWithoutToken: Set<UInt8> {
        Set((0..<256).filter { merger.byteTokenIDs[$0] < 0 }.map { UInt8($0) })
    }

    /// The bytes one token stands for (empty for an id outside the vocabulary).
    func bytes(of id: Int32) -> ArraySlice<UInt8> {
        guard id >= 0, Int(id) < vocabularySize else { return [] }
        return tokenBytes[tokenByteOffsets[Int(id)]..<tokenByteOffsets[Int(id) + 1]]
    }
}

/// Merged tokens of recently seen pieces, shared by copies of a tokenizer.
///
/// Bounded: only pieces up to `longestPieceBytes` are kept, and it is emptied when it grows past
/// `capacity`, so arbitrary input cannot grow it without limit.
private final class PieceCache: Sendable {
    static let longestPieceBytes = 64
    private static let capacity = 65_536
    private let entries = Mutex<[[UInt8]: [Int32]]>([:])

    func tokens(for piece: [UInt8]) -> [Int32]? {
        entries.withLock { $0[piece] }
    }

    func store(_ tokens: [Int32], for piece: [UInt8]) {
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[piece] = tokens
        }
    }
}
