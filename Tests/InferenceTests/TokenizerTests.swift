import Foundation
import JSON
import Testing

@testable import Inference

/// The SmolLM2 tokenizer and the reference prompts, loaded once for every tokenizer test.
enum TokenizerFixtures {
    static let sharedTokenizer: Result<Tokenizer, any Error> = Result {
        try Tokenizer(gguf: TestFiles.modelFile())
    }

    static func tokenizer() throws -> Tokenizer { try sharedTokenizer.get() }

    struct Prompt {
        var name: String
        var kind: String
        var specialTokens: Bool
        var text: String
        var promptTokens: [Int32]
        var greedyTokens: [Int32]
        var greedyText: String
    }

    struct FixtureError: Error, CustomStringConvertible {
        var description: String
    }

    static let sharedReference: Result<JSONValue, any Error> = Result {
        let url = TestFiles.fixtureURL("smollm2-reference.json")
        return try JSONValue.parse(String(contentsOf: url, encoding: .utf8))
    }

    static func prompts() throws -> [Prompt] {
        guard let prompts = try sharedReference.get()["prompts"]?.objectValue else {
            throw FixtureError(description: "smollm2-reference.json: prompts: expected an object")
        }
        return try prompts.map { name, value in
            func ids(_ key: String) throws -> [Int32] {
                guard let items = value[key]?.arrayValue else {
                    throw FixtureError(description: "prompts.\(name).\(key): expected an array")
                }
                return try items.map { item in
                    guard let id = item.intValue, let narrow = Int32(exactly: id) else {
                        throw FixtureError(description: "prompts.\(name).\(key): expected token ids")
                    }
                    return narrow
                }
            }
            func string(_ key: String) throws -> String {
                guard let text = value[key]?.stringValue else {
                    throw FixtureError(description: "prompts.\(name).\(key): expected a string")
                }
                return text
            }
            return Prompt(
                name: name, kind: try string("kind"), specialTokens: value["special_tokens"]?.boolValue ?? false,
                text: try string("text"), promptTokens: try ids("prompt_tokens"),
                greedyTokens: try ids("greedy_tokens"), greedyText: try string("greedy_text"))
        }
    }

    /// The bytes the fixture's tokenizer note says the vocabulary cannot encode ("0x04 0x06 … 0xF5-0xFF").
    static func undecodableBytes() throws -> Set<UInt8> {
        guard let note = try sharedReference.get()["numerics"]?["tokenizer"]?.stringValue,
            let listStart = note.range(of: "(0x")
        else { throw FixtureError(description: "numerics.tokenizer: no byte list") }
        let list = note[listStart.lowerBound...].dropFirst().prefix { $0 != ")" }
        var bytes = Set<UInt8>()
        for word in list.split(whereSeparator: { $0 == " " || $0 == "," }) {
            let bounds = word.split(separator: "-").map { UInt8($0.dropFirst(2), radix: 16) }
            guard let low = bounds.first ?? nil, let high = bounds.last ?? nil, low <= high else {
                throw FixtureError(description: "numerics.tokenizer: cannot read '\(word)'")
            }
            bytes.formUnion(low...high)
        }
        return bytes
    }

    /// The user message inside a ChatML prompt's text.
    static func userMessage(in text: String) throws -> String {
        guard let start = text.range(of: "<|im_start|>user\n"),
            let end = text.range(of: "<|im_end|>", range: start.upperBound..<text.endIndex)
        else { throw FixtureError(description: "chat prompt has no user turn") }
        return String(text[start.upperBound..<end.lowerBound])
    }
}

@Suite("Tokenizer on SmolLM2")
struct TokenizerTests {
    @Test("every reference prompt encodes to the reference ids")
    func referencePromptIDs() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        let prompts = try TokenizerFixtures.prompts()
        #expect(prompts.count == 4)
        for prompt in prompts {
            if prompt.kind == "chat" {
                #expect(prompt.specialTokens)
                let turns = [ChatTurn.user(try TokenizerFixtures.userMessage(in: prompt.text))]
                #expect(try tokenizer.renderChat(turns) == prompt.text, "\(prompt.name)")
                #expect(try tokenizer.encodeChat(turns) == prompt.promptTokens, "\(prompt.name)")
                #expect(tokenizer.encode(prompt.text, parsingSpecialTokens: true) == prompt.promptTokens)
            } else {
                #expect(!prompt.specialTokens)
                #expect(tokenizer.encode(prompt.text) == prompt.promptTokens, "\(prompt.name)")
            }
        }
    }

    @Test("reference prompts and greedy continuations decode to their text")
    func referenceDecoding() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        for prompt in try TokenizerFixtures.prompts() {
            #expect(tokenizer.decode(prompt.promptTokens) == prompt.text, "\(prompt.name)")
            #expect(tokenizer.decode(tokenizer.encode(prompt.text)) == prompt.text, "\(prompt.name)")
            #expect(tokenizer.decode(prompt.greedyTokens) == prompt.greedyText, "\(prompt.name)")
        }
    }

    @Test("the bytes without a token are exactly the ones the fixture lists, and are dropped")
    func undecodableBytes() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        let listed = try TokenizerFixtures.undecodableBytes()
        #expect(tokenizer.bytesWithoutToken == listed)
        let text = "a\u{04}b\u{1D}c\u{50000}d"
        let expected = Array(text.utf8).filter { !listed.contains($0) }
        #expect(tokenizer.decodeBytes(tokenizer.encode(text)) == expected)
    }

    @Test("special-token text in a plain prompt stays ordinary text")
    func plainTextMarkers() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        let text = "<|im_start|>user\nhi<|im_end|>"
        let plain = tokenizer.encode(text)
        #expect(!plain.contains { tokenizer.specialTokenID("<|im_start|>") == $0 })
        #expect(!plain.contains { tokenizer.specialTokenID("<|im_end|>") == $0 })
        #expect(tokenizer.decode(plain) == text)
        #expect(tokenizer.encode(text, parsingSpecialTokens: true).first == tokenizer.specialTokenID("<|im_start|>"))
        // A marker typed inside a chat message is not a turn boundary either.
        let chat = try tokenizer.encodeChat([.user("fake <|im_end|> marker")])
        #expect(chat.filter { $0 == tokenizer.specialTokenID("<|im_end|>") }.count == 2)
    }

    @Test("end of generation: eos, <|im_end|> and <|endoftext|>, nothing else")
    func endOfGeneration() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        #expect(tokenizer.eosTokenID == 2)
        #expect(tokenizer.bosTokenID == 1)
        #expect(!tokenizer.addsBOS)
        #expect(tokenizer.endOfGenerationTokenIDs == [0, 2])
        #expect(tokenizer.isEndOfGeneration(2))
        #expect(!tokenizer.isEndOfGeneration(1))
        #expect(!tokenizer.isEndOfGeneration(504))
        // The reference continuation of the capital prompt first ends a turn at its index 29.
        let prompt = try #require(try TokenizerFixtures.prompts().first { $0.name == "plain_short_capital" })
        #expect(prompt.greedyTokens.firstIndex(where: tokenizer.isEndOfGeneration) == 29)
    }

    @Test("multi-turn chats render as ChatML with the default system prompt only when needed")
    func multiTurnChat() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        let defaultSystem =
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        let conversation: [ChatTurn] = [
            .user("Hi!"), .assistant("Hello. How can I help?"), .user("Name a prime."),
        ]
        let rendered = try tokenizer.renderChat(conversation)
        #expect(
            rendered == defaultSystem + "<|im_start|>user\nHi!<|im_end|>\n"
                + "<|im_start|>assistant\nHello. How can I help?<|im_end|>\n"
                + "<|im_start|>user\nName a prime.<|im_end|>\n<|im_start|>assistant\n")
        #expect(try tokenizer.encodeChat(conversation) == tokenizer.encode(rendered, parsingSpecialTokens: true))

        let withSystem: [ChatTurn] = [.system("Be brief."), .user("2+2?")]
        #expect(
            try tokenizer.renderChat(withSystem, addingGenerationPrompt: false)
                == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n")
        #expect(try tokenizer.renderChat([]) == "<|im_start|>assistant\n")

        let ids = try tokenizer.encodeChat(conversation)
        #expect(ids.filter { $0 == tokenizer.specialTokenID("<|im_start|>") }.count == 5)
        #expect(ids.suffix(4) == [1, 520, 9531, 198])
        #expect(tokenizer.decode(ids) == rendered)
    }

    @Test("the streaming detokenizer holds back a split character and then completes it")
    func streamingSplitCharacter() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        let text = "ok 🦊 ✓"
        let ids = tokenizer.encode(text)
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        let pieces = ids.map { stream.append($0) }
        #expect(pieces.contains(""), "the fox emoji spans several tokens: \(ids)")
        #expect(pieces.joined() + stream.finish() == text)
        #expect(!pieces.joined().contains("\u{FFFD}"))
    }

    @Test("seeded fuzz: arbitrary UTF-8 round-trips except the bytes without a token")
    func fuzzRoundTrip() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        let dropped = try TokenizerFixtures.undecodableBytes()
        var generator = SplitMix64(seed: 0x5EED_70CE)
        var checkedWithDrops = 0
        for index in 0..<3000 {
            let text = FuzzText.make(using: &generator)
            let ids = tokenizer.encode(text)
            #expect(ids.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabularySize })
            let bytes = Array(text.utf8)
            let expected = bytes.filter { !dropped.contains($0) }
            let decodedBytes = tokenizer.decodeBytes(ids)
            #expect(decodedBytes == expected, "case \(index): \(text.debugDescription)")
            let decoded = tokenizer.decode(ids)
            if expected.count == bytes.count {
                #expect(decoded == text, "case \(index): \(text.debugDescription)")
            } else {
                checkedWithDrops += 1
            }

            // Streaming: each piece is whole characters, and the pieces add up to `decode`.
            var stream = StreamingDetokenizer(tokenizer: tokenizer)
            var streamed = ""
            for id in ids {
                let piece = stream.append(id)
                streamed += piece
                if !decoded.contains("\u{FFFD}") {
                    #expect(!piece.contains("\u{FFFD}"), "case \(index): token \(id) split a character")
                    #expect(decodedBytes.starts(with: Array(streamed.utf8)), "case \(index)")
                }
            }
            streamed += stream.finish()
            #expect(streamed == decoded, "case \(index): \(text.debugDescription)")
        }
        #expect(checkedWithDrops > 50, "the fuzz should exercise bytes without a token")
    }

    @Test("every pre-tokenizer round-trips arbitrary text over SmolLM2's vocabulary", arguments: PreTokenizer.allCases)
    func preTokenizerRoundTrip(preTokenizer: PreTokenizer) throws {
        var configuration = try TokenizerConfiguration(metadata: TestFiles.modelFile().metadata)
        configuration.preTokenizer = preTokenizer
        let tokenizer = try Tokenizer(configuration: configuration)
        let dropped = tokenizer.bytesWithoutToken
        var generator = SplitMix64(seed: 0xB1_7E5)
        for _ in 0..<500 {
            let text = FuzzText.make(using: &generator)
            let expected = Array(text.utf8).filter { !dropped.contains($0) }
            #expect(tokenizer.decodeBytes(tokenizer.encode(text)) == expected, "\(text.debugDescription)")
        }
    }

    @Test("encoding the 182-token prompt (timing printed, not asserted)")
    func encodingSpeed() throws {
        let prompt = try #require(try TokenizerFixtures.prompts().first { $0.name == "plain_long_history" })
        let clock = ContinuousClock()
        let file = try TestFiles.modelFile()
        var loaded: Tokenizer?
        let loading = try clock.measure { loaded = try Tokenizer(gguf: file) }
        let fresh = try #require(loaded)
        var ids: [Int32] = []
        let cold = clock.measure { ids = fresh.encode(prompt.text) }
        #expect(ids == prompt.promptTokens)
        var warm: [Duration] = []
        for _ in 0..<50 {
            warm.append(clock.measure { ids = fresh.encode(prompt.text) })
        }
        warm.sort()
        let microseconds = { (duration: Duration) in
            Double(duration.components.attoseconds) / 1e12 + Double(duration.components.seconds) * 1e6
        }
        print(
            "tokenizer: built from GGUF metadata in \(Int(microseconds(loading) / 1000)) ms; "
                + "\(ids.count)-token prompt encodes in \(Int(microseconds(cold))) µs cold, "
                + "\(Int(microseconds(warm[warm.count / 2]))) µs warm (median of 50)")
    }
}

/// Random text built from the kinds of characters that stress a byte-level tokenizer.
enum FuzzText {
    static let whitespace: [String] = [
        " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\u{0B}", "\u{0C}", "\u{85}", "\u{A0}", "\u{1680}",
        "\u{2002}", "\u{2009}", "\u{200A}", "\u{2028}", "\u{2029}", "\u{202F}", "\u{205F}", "\u{3000}",
    ]
    static let words = [
        "the", "The", "history", "don't", "I'M", "we'll", "it's", "they've", "O'Neil", "café", "naïve",
        "Ελλάδα", "Москва", "日本語", "中文字符", "한국어", "ภาษาไทย", "العربية", "עברית", "हिन्दी",
        "<|im_start|>", "<|im_end|>", "http://x.y/z?q=1", "a_b", "snake_case", "CamelCase", "$100", "3.14",
    ]
    static let emoji = [
        "😀", "🦊", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "🏳️‍🌈", "🤖", "✓", "∑", "→",
    ]
    static let numbers = ["0", "7", "42", "1947", "٣", "१२", "１２", "²", "½", "Ⅻ", "〇"]
    static let punctuation = [".", ",", "!", "?", "'", "\"", "(", ")", "-", "—", "…", "'s", "'", "«", "»", "@", "#"]
    static let controls = ["\u{00}", "\u{04}", "\u{06}", "\u{13}", "\u{14}", "\u{16}", "\u{1D}", "\u{1B}", "\u{7F}"]

    static func make(using generator: inout SplitMix64) -> String {
        var text = ""
        let parts = Int.random(in: 1...24, using: &generator)
        for _ in 0..<parts {
            switch Int.random(in: 0..<100, using: &generator) {
            case 0..<25: text += words.randomElement(using: &generator) ?? ""
            case 25..<40: text += whitespace.randomElement(using: &generator) ?? ""
            case 40..<50: text += numbers.randomElement(using: &generator) ?? ""
            case 50..<58: text += emoji.randomElement(using: &generator) ?? ""
            case 58..<68: text += punctuation.randomElement(using: &generator) ?? ""
            case 68..<73: text += controls.randomElement(using: &generator) ?? ""
            case 73..<80:
                // A letter with one to three combining marks.
                text += String(UnicodeScalar(UInt8.random(in: 0x61...0x7A, using: &generator)))
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    text.unicodeScalars.append(scalar(in: 0x300...0x36F, using: &generator))
                }
            case 80..<87:
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    text.unicodeScalars.append(scalar(in: 0x4E00...0x9FFF, using: &generator))
                }
            case 87..<92:
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    text.unicodeScalars.append(scalar(in: 0x20...0x7E, using: &generator))
                }
            default:
                // Any scalar at all, including unassigned planes whose lead byte has no token.
                text.unicodeScalars.append(scalar(in: 0...0x10FFFF, using: &generator))
            }
        }
        return text
    }

    /// A random scalar in `range`, skipping surrogates.
    static func scalar(in range: ClosedRange<UInt32>, using generator: inout SplitMix64) -> Unicode.Scalar {
        while true {
            if let scalar = Unicode.Scalar(UInt32.random(in: range, using: &generator)) { return scalar }
        }
    }
}
