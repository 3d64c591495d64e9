import Testing

@testable import Inference
import GGUF

/// A tiny byte-level vocabulary: every single byte, then `extra` tokens, then control tokens.
private func configuration(
    extra: [String] = [], merges: [String] = [], controls: [String] = [], preTokenizer: PreTokenizer = .gpt2,
    chatTemplate: String? = nil
) -> TokenizerConfiguration {
    let bytes = (0..<256).map { ByteLevelAlphabet.spelling(of: [UInt8($0)]) }
    let tokens = bytes + extra + controls
    let kinds =
        [TokenKind](repeating: .normal, count: bytes.count + extra.count)
        + [TokenKind](repeating: .control, count: controls.count)
    return TokenizerConfiguration(
        tokens: tokens, tokenKinds: kinds, merges: merges, preTokenizer: preTokenizer, chatTemplate: chatTemplate)
}

/// The spellings of `ids`, to compare merges readably.
private func spellings(_ ids: [Int32], in configuration: TokenizerConfiguration) -> [String] {
    ids.map { configuration.tokens[Int($0)] }
}

private let chatMLSource = """
    {% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
    """

@Suite("Tokenizer from plain arrays")
struct TokenizerUnitTests {
    @Test("merges apply lowest rank first, leftmost first on ties, and chain")
    func mergeOrder() throws {
        let extra = ["ab", "bc", "aa", "aaaa"]
        let bcFirst = configuration(extra: extra, merges: ["b c", "a b"])
        #expect(spellings(try Tokenizer(configuration: bcFirst).encode("abc"), in: bcFirst) == ["a", "bc"])
        let abFirst = configuration(extra: extra, merges: ["a b", "b c"])
        #expect(spellings(try Tokenizer(configuration: abFirst).encode("abc"), in: abFirst) == ["ab", "c"])
        let pairs = configuration(extra: extra, merges: ["a a", "aa aa"])
        let tokenizer = try Tokenizer(configuration: pairs)
        #expect(spellings(tokenizer.encode("aaa"), in: pairs) == ["aa", "a"])
        #expect(spellings(tokenizer.encode("aaaa"), in: pairs) == ["aaaa"])
        #expect(spellings(tokenizer.encode("aaaaaaa"), in: pairs) == ["aaaa", "aa", "a"])
        // Merging never crosses a piece boundary: "a a" is two pieces, "a" and " a".
        #expect(spellings(tokenizer.encode("a a"), in: pairs) == ["a", "Ġ", "a"])
        // The cache gives the same answer the second time.
        #expect(spellings(tokenizer.encode("aaa"), in: pairs) == ["aa", "a"])
        // A piece too long to cache merges the same way.
        #expect(
            spellings(tokenizer.encode(String(repeating: "a", count: 1001)), in: pairs)
                == [String](repeating: "aaaa", count: 250) + ["a"])
    }

    @Test("llama-bpe takes a piece that is a whole token without merging")
    func wholeTokenPieces() throws {
        let gpt2 = configuration(extra: ["abc"])
        #expect(try Tokenizer(configuration: gpt2).encode("abc").count == 3)
        var llama = gpt2
        llama.preTokenizer = .llamaBPE
        #expect(spellings(try Tokenizer(configuration: llama).encode("abc"), in: llama) == ["abc"])
    }

    @Test("control tokens are matched only when asked, longest first")
    func specialTokens() throws {
        let config = configuration(controls: ["<s>", "<s>x"])
        let tokenizer = try Tokenizer(configuration: config)
        let start = try #require(tokenizer.specialTokenID("<s>"))
        let longer = try #require(tokenizer.specialTokenID("<s>x"))
        #expect(tokenizer.encode("a<s>").count == 4)
        #expect(tokenizer.encode("a<s>", parsingSpecialTokens: true).last == start)
        #expect(tokenizer.encode("<s>x<s>", parsingSpecialTokens: true) == [longer, start])
        #expect(tokenizer.decode([longer, start]) == "<s>x<s>")
        #expect(tokenizer.decode([-1, Int32(config.tokens.count)]) == "", "unknown ids decode to nothing")
    }

    @Test("BOS starts the ids only when the model asks for it")
    func beginningOfSequence() throws {
        var config = configuration(controls: ["<bos>"])
        config.bosTokenID = Int32(config.tokens.count - 1)
        #expect(try Tokenizer(configuration: config).encode("hi").count == 2)
        config.addsBOS = true
        #expect(try Tokenizer(configuration: config).encode("hi") == [config.bosTokenID, 104, 105].compactMap { $0 })
    }

    @Test("bad vocabularies are refused with the field at fault")
    func configurationErrors() {
        func error(_ config: TokenizerConfiguration) -> String? {
            do {
                _ = try Tokenizer(configuration: config)
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(
            error(configuration(merges: ["ab"]))
                == "tokenizer.ggml.merges[0]: 'ab': expected two tokens separated by one space")
        #expect(error(configuration(merges: ["a zz"]))?.hasPrefix("tokenizer.ggml.merges[0]: 'a zz': a side") == true)
        #expect(error(configuration(merges: ["a b"]))?.contains("merged token is not in the vocabulary") == true)
        var mismatched = configuration()
        mismatched.tokenKinds.removeLast()
        #expect(error(mismatched) == "tokenizer.ggml.token_type: 255 entries for 256 tokens")
        var badBOS = configuration()
        badBOS.bosTokenID = 300
        #expect(error(badBOS) == "tokenizer.ggml.bos_token_id: id 300 is outside the vocabulary of 256 tokens")
        #expect(error(TokenizerConfiguration(tokens: [], merges: [], preTokenizer: .gpt2)) != nil)
    }

    @Test("GGUF metadata: missing or mistyped keys and unsupported tokenizers name the key")
    func metadataErrors() throws {
        let config = configuration(extra: ["ab"], merges: ["a b"], controls: ["<|im_end|>"])
        var metadata: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("gpt2"),
            "tokenizer.ggml.pre": .string("smollm"),
            "tokenizer.ggml.tokens": .array(config.tokens.map(GGUFValue.string)),
            "tokenizer.ggml.token_type": .array(config.tokenKinds.map { .int32($0.rawValue) }),
            "tokenizer.ggml.merges": .array(config.merges.map(GGUFValue.string)),
            "tokenizer.ggml.eos_token_id": .uint32(257),
            "tokenizer.ggml.add_bos_token": .bool(false),
        ]
        let tokenizer = try Tokenizer(metadata: metadata)
        #expect(tokenizer.preTokenizer == .smollm)
        #expect(tokenizer.eosTokenID == 257)
        #expect(tokenizer.encode("ab") == [256])
        #expect(throws: TokenizerError.missingChatTemplate) { try tokenizer.encodeChat([.user("hi")]) }

        func error(_ change: (inout [String: GGUFValue]) -> Void) -> String? {
            var copy = metadata
            change(&copy)
            do {
                _ = try Tokenizer(metadata: copy)
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(error { $0["tokenizer.ggml.tokens"] = nil } == "tokenizer.ggml.tokens: missing")
        #expect(
            error { $0["tokenizer.ggml.merges"] = .uint32(1) } == "tokenizer.ggml.merges: expected array of strings")
        #expect(error { $0["tokenizer.ggml.model"] = .string("llama") }?.contains("'llama' is not supported") == true)
        #expect(
            error { $0["tokenizer.ggml.pre"] = .string("qwen2") }
                == "tokenizer.ggml.pre: 'qwen2' is not supported (supported: 'smollm', 'llama-bpe', 'gpt2')")
        #expect(
            error { $0["tokenizer.ggml.token_type"] = .array([.int32(9)]) }
                == "tokenizer.ggml.token_type[0]: 9 is not a token type (0…6)")
        #expect(
            error { $0["tokenizer.ggml.eos_token_id"] = .string("2") }
                == "tokenizer.ggml.eos_token_id: expected integer, found string")
        metadata["tokenizer.ggml.pre"] = nil
        #expect(try Tokenizer(metadata: metadata).preTokenizer == .gpt2, "no pre-tokenizer named means GPT-2's")
    }

    @Test("ChatML templates are recognised with or without a default system prompt; others are named")
    func templateRecognition() throws {
        #expect(try ChatTemplate(source: chatMLSource).defaultSystemPrompt == nil)
        let withDefault = """
            {% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are Qwen, a \\'helpful\\' assistant.<|im_end|>\\n' }}{% endif %}
            """ + chatMLSource
        let template = try ChatTemplate(source: withDefault)
        #expect(template.defaultSystemPrompt == "You are Qwen, a 'helpful' assistant.")
        #expect(
            template.render([.user("hi")], addingGenerationPrompt: false)
                == "<|im_start|>system\nYou are Qwen, a 'helpful' assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        )
        // A system block built from the message's content is not a default prompt.
        let fromContent = "{{ '<|im_start|>system\\n' + message['content'] + '<|im_end|>' }}" + chatMLSource
        #expect(try ChatTemplate(source: fromContent).defaultSystemPrompt == nil)

        let llama3 = "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
        #expect(throws: TokenizerError.unsupportedChatTemplate(kind: "Llama 3")) { try ChatTemplate(source: llama3) }
        do {
            _ = try ChatTemplate(source: "{{ messages }}")
            Issue.record("an unknown template was accepted")
        } catch {
            #expect("\(error)".contains("unrecognised (source begins '{{ messages }}')"))
        }
    }

    @Test("an unsupported template fails chat encoding, not plain encoding")
    func unsupportedTemplateIsDeferred() throws {
        let config = configuration(controls: ["<|start_header_id|>"], chatTemplate: "<|start_header_id|>")
        let tokenizer = try Tokenizer(configuration: config)
        #expect(tokenizer.encode("hi").count == 2)
        #expect(throws: TokenizerError.unsupportedChatTemplate(kind: "Llama 3")) { try tokenizer.encodeChat([]) }
        let markerless = configuration(chatTemplate: chatMLSource)
        #expect(throws: TokenizerError.chatTemplateMarkerNotInVocabulary("<|im_start|>")) {
            try Tokenizer(configuration: markerless).encodeChat([.user("hi")])
        }
    }

    @Test("an incomplete UTF-8 tail is held back only while it can still become valid")
    func incompleteSuffix() {
        let cases: [([UInt8], Int)] = [
            ([], 0), ([0x41], 0), ([0xE2], 1), ([0xE2, 0x82], 2), ([0xE2, 0x82, 0xAC], 0), ([0xE2, 0x41], 0),
            ([0x41, 0xF0, 0x9F, 0x98], 3), ([0xF0, 0x9F, 0x98, 0x80], 0), ([0xED, 0xA0], 0), ([0xE0, 0x80], 0),
            ([0xF4, 0x90], 0), ([0xF4, 0x8F], 2), ([0xC0], 0), ([0xF5], 0), ([0x80], 0), ([0x80, 0x80, 0x80, 0x80], 0),
        ]
        for (bytes, held) in cases {
            #expect(StreamingDetokenizer.incompleteSuffixLength(bytes) == held, "\(bytes)")
        }
    }

    @Test("a stream of byte tokens emits each character once it is complete")
    func streamingBytes() throws {
        let tokenizer = try Tokenizer(configuration: configuration())
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        let euro: [Int32] = [0xE2, 0x82, 0xAC]
        #expect(euro.map { stream.append($0) } == ["", "", "€"])
        #expect(stream.append(0x41) == "A")
        #expect(stream.append(0xF0) == "")
        #expect(stream.finish() == "\u{FFFD}")
        #expect(stream.append(0xE2) == "")
        #expect(stream.append(0x41) == "\u{FFFD}A", "a byte that cannot continue the character ends it")
    }
}
