import JSON
import Testing

@Suite("JSON parsing and printing")
struct JSONParsingTests {
    @Test("malformed text reports the line and column of the fault")
    func malformedPositions() {
        let text = "{\n  \"a\": 1,\n  \"b\": [1, 2,, 3]\n}"
        #expect(throws: JSONError.self) { try JSONValue.parse(text) }
        do {
            _ = try JSONValue.parse(text)
        } catch {
            #expect(error.line == 3)
            #expect(error.column != nil)
            #expect(error.description.hasPrefix("line 3, column"))
        }
    }

    @Test("empty input, trailing garbage and duplicate keys are refused")
    func refusals() {
        for bad in ["", "   ", "{} x", "{\"a\":1,\"a\":2}", "[1,]", "{'a':1}", "nul"] {
            #expect(throws: JSONError.self, "\(bad)") { try JSONValue.parse(bad) }
        }
    }

    @Test("a parse error never repeats the text it was given (it may reach a log)")
    func errorsHoldNoText() {
        for bad in ["{\"secret-body\": tru}", "[\"secret-body", "{\"a\":1,\"a\":\"secret-body\"}", "{\"secret-body\":1,\"secret-body\":2}"] {
            do {
                _ = try JSONValue.parse(bad)
                Issue.record("\(bad) parsed")
            } catch {
                #expect(!error.description.contains("secret"), "\(error)")
                #expect(error.line == 1)
            }
        }
    }

    @Test("invalid UTF-8 is refused")
    func invalidUTF8() {
        #expect(throws: JSONError.self) { try JSONValue.parse(bytes: [0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test("deep nesting parses up to the parser's limit and fails cleanly beyond it")
    func deepNesting() throws {
        let depth = 500
        let text = String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth)
        var value = try JSONValue.parse(text)
        for _ in 0..<depth {
            guard let inner = value[0] else { Issue.record("nesting lost"); return }
            value = inner
        }
        #expect(value == .int(1))
        let tooDeep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONError.self) { try JSONValue.parse(tooDeep) }
    }

    @Test("unicode, escapes and interior NULs survive a round trip")
    func unicode() throws {
        let original: JSONValue = [
            "plain": "héllo wörld", "cjk": "日本語", "emoji": "🧑‍🚀👍🏽", "escaped": "tab\tquote\"slash\\",
            "nul": "a\u{0}b", "control": "\u{1}\u{1F}",
        ]
        let text = original.serialized()
        #expect(try JSONValue.parse(text) == original)
        #expect(try JSONValue.parse("\"\\ud83d\\ude00\"") == .string("😀"))
    }

    @Test("int64 limits are exact; beyond them is an error")
    func int64Edges() throws {
        #expect(try JSONValue.parse("9223372036854775807") == .int(.max))
        #expect(try JSONValue.parse("-9223372036854775808") == .int(.min))
        #expect(throws: JSONError.self) { try JSONValue.parse("9223372036854775808") }
        let value = JSONValue.int(.max)
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    @Test("reals read back exactly and keys keep their order")
    func realsAndOrder() throws {
        let value: JSONValue = ["z": 0.1, "a": 1e-300, "m": 123456789.123456789, "k": -0.0]
        let text = value.serialized()
        #expect(text.hasPrefix("{\"z\":"))
        let parsed = try JSONValue.parse(text)
        #expect(parsed == value)
        #expect(parsed.objectValue?.keys == ["z", "a", "m", "k"])
    }

    @Test("pretty printing indents and parses back")
    func pretty() throws {
        let value: JSONValue = ["a": [1, 2, ["b": nil]]]
        let text = value.serialized(pretty: true)
        #expect(text.contains("\n  \"a\""))
        #expect(try JSONValue.parse(text) == value)
    }
}

private struct Topology: Codable, Equatable {
    struct Node: Codable, Equatable {
        var id: String
        var memoryBytes: Double
        var flops: Double?
        enum CodingKeys: String, CodingKey {
            case id
            case memoryBytes = "memory_bytes"
            case flops
        }
    }
    struct Tier: Codable, Equatable {
        var name: String
        var nodes: [Node]
    }
    var tiers: [Tier]
}

private struct Positive: Decodable {
    var count: Int
    init(from decoder: any Decoder) throws {
        enum Keys: String, CodingKey { case count }
        let container = try decoder.container(keyedBy: Keys.self)
        count = try container.decode(Int.self, forKey: .count)
        guard count > 0 else {
            throw DecodingError.dataCorruptedError(forKey: .count, in: container, debugDescription: "expected > 0")
        }
    }
}

@Suite("Codable bridge")
struct JSONCodingTests {
    @Test("structs round-trip through text")
    func roundTrip() throws {
        let topology = Topology(tiers: [
            .init(name: "edge", nodes: [.init(id: "e1", memoryBytes: 8e9, flops: 2e12)]),
            .init(name: "cloud", nodes: [.init(id: "c1", memoryBytes: 8e10, flops: nil)]),
        ])
        let text = try JSONCoding.encode(topology)
        #expect(try JSONCoding.decode(Topology.self, from: text) == topology)
        #expect(!text.contains("null"), "absent optionals are omitted")
    }

    @Test("a missing field is named by its full path")
    func missingFieldPath() {
        let text = #"{"tiers":[{"name":"a","nodes":[]},{"name":"b","nodes":[{"id":"x"}]}]}"#
        do {
            _ = try JSONCoding.decode(Topology.self, from: text)
            Issue.record("decoded a topology with a missing field")
        } catch {
            #expect(error.path == "tiers[1].nodes[0].memory_bytes")
            #expect(error.description.contains("tiers[1].nodes[0].memory_bytes"))
        }
    }

    @Test("a wrong type names the path and what was expected")
    func wrongType() {
        let text = #"{"tiers":[{"name":"a","nodes":[{"id":"x","memory_bytes":"lots"}]}]}"#
        do {
            _ = try JSONCoding.decode(Topology.self, from: text)
            Issue.record("decoded a string as a number")
        } catch {
            #expect(error.path == "tiers[0].nodes[0].memory_bytes")
            #expect(error.message.contains("expected a number"))
        }
    }

    @Test("validation inside init(from:) reports its field path")
    func customValidation() {
        do {
            _ = try JSONCoding.decode(Positive.self, from: #"{"count":0}"#)
            Issue.record("accepted 0")
        } catch {
            #expect(error.path == "count")
            #expect(error.message == "expected > 0")
        }
    }

    @Test("integers: integral reals convert, fractions and overflow are refused")
    func integers() throws {
        #expect(try JSONCoding.decode(Int.self, from: "3.0") == 3)
        #expect(throws: JSONError.self) { try JSONCoding.decode(Int.self, from: "3.5") }
        #expect(throws: JSONError.self) { try JSONCoding.decode(UInt8.self, from: "300") }
        #expect(throws: JSONError.self) { try JSONCoding.decode(UInt64.self, from: "-1") }
        #expect(try JSONCoding.decode([Int32].self, from: "[1,-2,2147483647]") == [1, -2, .max])
    }

    @Test("JSONValue embeds in Codable types unchanged")
    func embeddedValue() throws {
        struct Envelope: Codable, Equatable {
            var extra: JSONValue
        }
        let envelope = Envelope(extra: ["k": [1, "two", nil, true]])
        let text = try JSONCoding.encode(envelope)
        #expect(try JSONCoding.decode(Envelope.self, from: text) == envelope)
    }

    @Test("nested keyed and unkeyed containers encode")
    func nestedContainers() throws {
        struct Custom: Encodable {
            func encode(to encoder: any Encoder) throws {
                enum Keys: String, CodingKey { case inner, list }
                var container = encoder.container(keyedBy: Keys.self)
                var inner = container.nestedContainer(keyedBy: Keys.self, forKey: .inner)
                try inner.encode(1, forKey: .list)
                var list = container.nestedUnkeyedContainer(forKey: .list)
                try list.encode("a")
                var deeper = list.nestedContainer(keyedBy: Keys.self)
                try deeper.encode(true, forKey: .inner)
            }
        }
        let value = try JSONCoding.encodeValue(Custom())
        #expect(value == ["inner": ["list": 1], "list": ["a", ["inner": true]]])
    }
}
