import Foundation
import JSON

/// `smollm2-reference.json`: prompts with greedy continuations and top-10 logits per step from an
/// independent float32 implementation.
struct ReferenceFixture {
    struct StepReference {
        let token: Int32
        let margin: Double
        let topIDs: [Int]
        let topLogits: [Double]
    }

    struct Prompt {
        let name: String
        let kind: String
        let text: String
        let promptTokens: [Int32]
        let greedyTokens: [Int32]
        let steps: [StepReference]
    }

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    let sha256: String
    let prompts: [Prompt]
    let promptTokensPerSecond: Double
    let decodeTokensPerSecond: Double

    static func load() throws -> ReferenceFixture {
        let url = TestFiles.fixtureURL("smollm2-reference.json")
        let root = try JSONValue.parse(String(contentsOf: url, encoding: .utf8))
        func ints(_ v: JSONValue?) -> [Int] { v?.arrayValue?.compactMap { $0.intValue.map(Int.init) } ?? [] }
        guard let promptsObject = root["prompts"]?.objectValue else { throw Malformed(description: "no prompts") }
        var prompts: [Prompt] = []
        for (name, p) in promptsObject {
            let steps = (p["steps"]?.arrayValue ?? []).map { s in
                StepReference(
                    token: Int32(s["token"]?.intValue ?? -1), margin: s["margin"]?.doubleValue ?? 0,
                    topIDs: ints(s["top_ids"]), topLogits: s["top_logits"]?.arrayValue?.compactMap(\.doubleValue) ?? [])
            }
            prompts.append(
                Prompt(
                    name: name, kind: p["kind"]?.stringValue ?? "", text: p["text"]?.stringValue ?? "",
                    promptTokens: ints(p["prompt_tokens"]).map(Int32.init),
                    greedyTokens: ints(p["greedy_tokens"]).map(Int32.init), steps: steps))
        }
        return ReferenceFixture(
            sha256: root["model"]?["sha256"]?.stringValue ?? "", prompts: prompts,
            promptTokensPerSecond: root["reference_speed"]?["prompt_tokens_per_s"]?.doubleValue ?? 0,
            decodeTokensPerSecond: root["reference_speed"]?["decode_tokens_per_s"]?.doubleValue ?? 0)
    }
}
