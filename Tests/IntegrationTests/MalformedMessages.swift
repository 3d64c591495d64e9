import AMQP
import Foundation
import JSON
import Messages

/// Malformed messages for the services' consumers: fixed nasty cases plus seeded mutations of a
/// valid message (truncated JSON, wrong types, huge numbers, NaN, deep nesting, bad headers, wrong
/// content types, binary garbage, oversize bodies). Every body carries `marker` where it can, so a
/// test can check that no body reached a log.
struct MalformedMessages {
    /// xorshift64*: the same seed gives the same messages on every machine.
    struct Generator: RandomNumberGenerator {
        private var state: UInt64
        init(seed: UInt64) { state = seed | 1 }
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }
    }

    let marker: String
    var random: Generator

    init(seed: UInt64, marker: String) {
        self.marker = marker
        random = Generator(seed: seed)
    }

    /// JSON values, as raw text, that no field of any Hyperion message accepts everywhere.
    private var nastyValues: [String] {
        [
            "null", "true", "-1", "0", "1.5", "1e999", "-1e999", "NaN", "Infinity", "-0",
            "9223372036854775808", "-9223372036854775809", "18446744073709551616", "2147483648", "4294967296",
            "1e-400", "\"\"", "\"\(marker)\"", "[]", "{}", "[1,\"a\",null]", "{\"\(marker)\":{}}",
            "\"\\u0000\"", "\"\\ud800\"", "\"\(String(repeating: "x", count: 100_000))\(marker)\"",
            "[" + Array(repeating: "9007199254740993", count: 5_000).joined(separator: ",") + "]",
            String(repeating: "[", count: 3_000) + String(repeating: "]", count: 3_000),
            String(repeating: "{\"a\":", count: 600) + "1" + String(repeating: "}", count: 600),
        ]
    }

    /// Whole bodies that are wrong before any field is read.
    var fixedBodies: [[UInt8]] {
        var bodies: [[UInt8]] = [
            [], Array("null".utf8), Array("[]".utf8), Array("{}".utf8), Array("\"\(marker)\"".utf8), Array("123".utf8),
            Array("{\"v\":1}".utf8), Array("{\"v\":2,\"note\":\"\(marker)\"}".utf8), Array("{\"v\":\"1\"}".utf8),
            Array("\u{FEFF}{\"v\":1}".utf8), [0xFF, 0xFE] + Array("{\"v\":1}".utf8),
            Array("{\"v\":1,\"\(marker)\":\"\u{0}\"}".utf8), Array("{\"v\":1,\"x\":\"".utf8) + [0xC0, 0xAF, 0xFF] + Array("\"}".utf8),
            Array(String(repeating: "[", count: 100_000).utf8), Array(String(repeating: "{\"a\":", count: 50_000).utf8),
            Array("{\"v\":1,\"v\":1,\"v\":2}".utf8), Array("{\"v\":1}{\"v\":1}".utf8), Array("{'v':1}".utf8),
            // Oversize: 2 MiB, beyond every service's per-message limit.
            Array("{\"v\":1,\"prompt\":\"\(marker)".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 2 << 20) + Array("\"}".utf8),
        ]
        var garbage = self
        bodies.append((0..<1024).map { _ in UInt8.random(in: 0...255, using: &garbage.random) } + Array(marker.utf8))
        return bodies
    }

    /// One mutation of the valid JSON message `seed`.
    mutating func mutate(json seed: [UInt8]) -> [UInt8] {
        switch Int.random(in: 0..<10, using: &random) {
        case 0:  // truncated
            return Array(seed.prefix(Int.random(in: 0..<max(1, seed.count), using: &random)))
        case 1:  // random bytes replaced (often invalid UTF-8)
            var bytes = seed
            for _ in 0..<Int.random(in: 1...8, using: &random) where !bytes.isEmpty {
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
            return bytes
        case 2:  // binary garbage
            return (0..<Int.random(in: 1...4096, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) } + Array(marker.utf8)
        default:  // one field (at any depth) replaced, removed, or joined by an unknown one
            guard let value = try? JSONValue.parse(bytes: seed) else { return seed }
            return Array(structuralMutation(of: value).utf8)
        }
    }

    private mutating func structuralMutation(of value: JSONValue) -> String {
        var paths: [[PathStep]] = []
        collectPaths(value, prefix: [], into: &paths)
        let path = paths.randomElement(using: &random) ?? []
        let nasty = nastyValues.randomElement(using: &random) ?? "null"
        switch Int.random(in: 0..<4, using: &random) {
        case 0: return render(value, replacing: path, with: nil)  // removed
        case 1: return render(value, replacing: path, with: nasty, addingKey: "\(marker)-extra")  // unknown key added beside it
        default: return render(value, replacing: path, with: nasty)
        }
    }

    private enum PathStep: Equatable {
        case key(String)
        case index(Int)
    }

    private func collectPaths(_ value: JSONValue, prefix: [PathStep], into paths: inout [[PathStep]]) {
        if !prefix.isEmpty { paths.append(prefix) }
        if let object = value.objectValue {
            for (key, child) in object { collectPaths(child, prefix: prefix + [.key(key)], into: &paths) }
        } else if let array = value.arrayValue {
            for (index, child) in array.enumerated() { collectPaths(child, prefix: prefix + [.index(index)], into: &paths) }
        }
    }

    /// `value` as JSON text with the value at `path` replaced by raw text (nil removes it), and
    /// optionally a new key beside it.
    private func render(_ value: JSONValue, replacing path: [PathStep], with raw: String?, addingKey extra: String? = nil) -> String {
        func quoted(_ text: String) -> String {
            var out = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
        func walk(_ value: JSONValue, _ rest: ArraySlice<PathStep>) -> String? {
            if rest.isEmpty, raw == nil, extra == nil { return nil }
            if let object = value.objectValue {
                var parts: [String] = []
                for (key, child) in object {
                    if rest.first == .key(key) {
                        if rest.count == 1 {
                            if let raw { parts.append("\(quoted(key)):\(raw)") }
                            if let extra { parts.append("\(quoted(extra)):\(raw ?? "null")") }
                        } else if let text = walk(child, rest.dropFirst()) {
                            parts.append("\(quoted(key)):\(text)")
                        }
                    } else {
                        parts.append("\(quoted(key)):\(walk(child, []) ?? "null")")
                    }
                }
                return "{" + parts.joined(separator: ",") + "}"
            }
            if let array = value.arrayValue {
                var parts: [String] = []
                for (index, child) in array.enumerated() {
                    if rest.first == .index(index) {
                        if rest.count == 1 {
                            if let raw { parts.append(raw) }
                        } else if let text = walk(child, rest.dropFirst()) {
                            parts.append(text)
                        }
                    } else {
                        parts.append(walk(child, []) ?? "null")
                    }
                }
                return "[" + parts.joined(separator: ",") + "]"
            }
            switch value {
            case .null: return "null"
            case .bool(let flag): return flag ? "true" : "false"
            case .int(let number): return "\(number)"
            case .double(let number): return "\(number)"
            case .string(let text): return quoted(text)
            default: return "null"
            }
        }
        return walk(value, path[...]) ?? "null"
    }

    /// Headers and content types a consumer may meet on a JSON message.
    mutating func strayProperties() -> AMQPProperties {
        var properties = AMQPProperties()
        switch Int.random(in: 0..<6, using: &random) {
        case 0: properties.contentType = "text/plain"
        case 1: properties.contentType = Names.ContentType.step
        case 2: properties.contentType = marker
        case 3: properties.contentType = ""
        default: properties.contentType = Names.ContentType.json
        }
        if Bool.random(using: &random) {
            properties.headers = [
                Names.Header.version: nastyField(),
                Names.Header.key: nastyField(),
                "x-\(marker)": nastyField(),
            ]
        }
        return properties
    }

    /// An AMQP field value of a random type, often one no reader expects.
    mutating func nastyField(depth: Int = 0) -> AMQPFieldValue {
        switch Int.random(in: 0..<14, using: &random) {
        case 0: return .string(marker)
        case 1: return .int64(Int64.max)
        case 2: return .int64(Int64.min)
        case 3: return .int32(-1)
        // No NaN or infinity: RabbitMQ (Erlang) cannot parse them and closes the publisher's connection.
        case 4: return .double(-.greatestFiniteMagnitude)
        case 5: return .double(.leastNonzeroMagnitude)
        case 6: return .bool(true)
        case 7: return .void
        case 8: return .bytes(Array(marker.utf8) + [0xFF, 0x00])
        // Sizes keep a header table within the 128 KiB frame the connection negotiates.
        case 9: return .array((0..<Int.random(in: 0...500, using: &random)).map { .int32(Int32($0)) })
        case 10: return .string(String(repeating: "q", count: 20_000) + marker)
        case 11: return depth > 40 ? .void : .table(["n": nastyField(depth: depth + 41)])
        case 12: return .float(.greatestFiniteMagnitude)
        default:
            var nested: AMQPFieldValue = .string(marker)
            for _ in 0..<50 { nested = .array([nested]) }
            return nested
        }
    }

    /// One mutation of a valid step's headers and body.
    mutating func mutate(stepHeaders headers: AMQPTable, body: [UInt8]) -> (AMQPTable, [UInt8]) {
        var headers = headers
        var body = body
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            let keys = headers.keys.sorted()
            guard let key = keys.randomElement(using: &random) else { break }
            switch Int.random(in: 0..<8, using: &random) {
            case 0: headers[key] = nil
            case 1: headers[Names.Header.version] = .int32(2)
            case 2: body = Array(body.prefix(Int.random(in: 0...body.count, using: &random)))
            case 3: body += (0..<Int.random(in: 1...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            case 4:  // a number far out of range where a small one is expected
                headers[[Names.Header.position, Names.Header.tokenCount, Names.Header.stage, Names.Header.attempt,
                         Names.Header.topK, "x-kv-tokens"].randomElement(using: &random) ?? key] =
                    [.int32(Int32.max), .int32(-5), .int64(Int64.max), .int64(1 << 40)].randomElement(using: &random) ?? .void
            case 5: headers[[Names.Header.temperature, Names.Header.topP].randomElement(using: &random) ?? key] =
                [.double(-0.0), .double(-1e308), .double(1e308), .double(-1), .string("NaN")].randomElement(using: &random) ?? .void
            default: headers[key] = nastyField()
            }
        }
        return (headers, body)
    }
}
