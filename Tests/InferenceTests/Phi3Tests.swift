import Foundation
import JSON
import Testing

@testable import Inference
import GGUF

/// A tiny random Phi-3 (fused QKV and gate/up, every supported tensor type) against an
/// independent numpy forward pass; see Fixtures/make_phi3_fixture.py.
@Suite("Phi-3 architecture")
struct Phi3Tests {
    static func load() throws -> (TransformerModel, [Int32], [[Double]]) {
        let file = try GGUFFile(path: TestFiles.localFixtureURL("tiny-phi3.gguf").path)
        let model = try TransformerModel(file: file)
        let reference = try JSONValue.parse(
            String(contentsOf: TestFiles.localFixtureURL("tiny-phi3-reference.json"), encoding: .utf8))
        let tokens = (reference["tokens"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int32.init) }
        let logits = (reference["logits"]?.arrayValue ?? []).map { $0.arrayValue?.compactMap(\.doubleValue) ?? [] }
        return (model, tokens, logits)
    }

    @Test("reads the phi3 configuration")
    func configuration() throws {
        let (model, _, _) = try Self.load()
        let c = model.config
        #expect(c.architecture == .phi3 && c.ropeStyle == .halves)
        #expect(c.blockCount == 2 && c.hiddenSize == 64 && c.headCount == 4 && c.kvHeadCount == 2)
        #expect(c.feedForwardSize == 256 && c.vocabularySize == 96)
    }

    @Test("logits match the numpy reference", arguments: ActivationPrecision.allCases)
    func logitsMatchReference(precision: ActivationPrecision) throws {
        let (model, tokens, reference) = try Self.load()
        #expect(tokens.count == 12 && reference.count == 12)
        let executor = try BlockRangeExecutor(model: model, options: ExecutionOptions(precision: precision))
        let out = try executor.run(
            Step(cache: KVCacheID(key: "phi", attempt: 0), startPosition: 0, input: .tokens(tokens)), logits: .everyToken)
        // float32 activations differ from float64 only by rounding; 8-bit activations by quantization.
        let tolerance = precision == .float32 ? 1e-3 : 0.25
        var worst = 0.0
        for (p, expected) in reference.enumerated() {
            let row = out.row(p)
            for (i, e) in expected.enumerated() { worst = max(worst, abs(Double(row[row.startIndex + i]) - e)) }
        }
        #expect(worst <= tolerance, "largest logit difference \(worst)")
    }

    @Test("two ranges give the same logits as one")
    func partition() throws {
        let (model, tokens, _) = try Self.load()
        let id = KVCacheID(key: "phi", attempt: 0)
        let whole = try BlockRangeExecutor(model: model).run(
            Step(cache: id, startPosition: 0, input: .tokens(tokens)), logits: .everyToken)
        let first = try BlockRangeExecutor(model: model, blocks: 0..<1).run(
            Step(cache: id, startPosition: 0, input: .tokens(tokens)))
        let second = try BlockRangeExecutor(model: model, blocks: 1..<2).run(
            Step(cache: id, startPosition: 0, input: .activations(first.values)), logits: .everyToken)
        #expect(first.kind == .activations && second.kind == .logits)
        #expect(second.values == whole.values)
    }
}
