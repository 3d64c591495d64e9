import Foundation
import Testing

@testable import Inference

/// The SmolLM2 model against the reference fixture, teacher-forced on the reference tokens.
@Suite("SmolLM2 against the float32 reference")
struct ModelFixtureTests {
    static let model: Result<TransformerModel, any Error> = Result {
        try TransformerModel(file: try TestFiles.modelFile())
    }

    /// Logits of every position of prompt + reference continuation (all but its last token).
    static func teacherForcedLogits(
        _ prompt: ReferenceFixture.Prompt, precision: ActivationPrecision
    ) throws -> (StepOutput, Int) {
        let model = try model.get()
        let executor = try BlockRangeExecutor(model: model, options: ExecutionOptions(threads: 2, precision: precision))
        let tokens = prompt.promptTokens + prompt.greedyTokens.dropLast()
        let output = try executor.run(
            Step(cache: KVCacheID(key: prompt.name, attempt: 0), startPosition: 0, input: .tokens(tokens)),
            logits: .everyToken)
        return (output, prompt.promptTokens.count - 1)
    }

    static func argmax(_ row: ArraySlice<Float>) -> Int {
        var best = row.startIndex
        for i in row.indices where row[i] > row[best] { best = i }
        return best - row.startIndex
    }

    @Test("float32 activations: logits within 0.05 and the same greedy tokens")
    func float32Activations() throws {
        let fixture = try ReferenceFixture.load()
        #expect(fixture.prompts.count == 4)
        for prompt in fixture.prompts {
            let (output, first) = try Self.teacherForcedLogits(prompt, precision: .float32)
            var worst: Double = 0
            for (i, step) in prompt.steps.enumerated() {
                let row = output.row(first + i)
                for (id, logit) in zip(step.topIDs, step.topLogits) {
                    worst = max(worst, abs(Double(row[row.startIndex + id]) - logit))
                }
                if step.margin >= 0.1 {
                    #expect(Self.argmax(row) == Int(step.token), "\(prompt.name) step \(i)")
                }
            }
            #expect(worst <= 0.05, "\(prompt.name): largest logit difference \(worst)")
        }
    }

    @Test("int8 activations: the reference argmax wherever its margin is at least 0.5")
    func int8Activations() throws {
        let fixture = try ReferenceFixture.load()
        for prompt in fixture.prompts {
            let (output, first) = try Self.teacherForcedLogits(prompt, precision: .int8)
            var worst: Double = 0
            for (i, step) in prompt.steps.enumerated() {
                let row = output.row(first + i)
                for (id, logit) in zip(step.topIDs, step.topLogits) {
                    worst = max(worst, abs(Double(row[row.startIndex + id]) - logit))
                }
                if step.margin >= 0.5 {
                    #expect(Self.argmax(row) == Int(step.token), "\(prompt.name) step \(i)")
                }
            }
            #expect(worst <= 2.5, "\(prompt.name): largest logit difference \(worst)")
        }
    }

    @Test("free-running greedy generation reproduces the robust prompts' tokens", arguments: ActivationPrecision.allCases)
    func robustGreedy(precision: ActivationPrecision) throws {
        let fixture = try ReferenceFixture.load()
        let model = try Self.model.get()
        let robust = fixture.prompts.filter { $0.name.contains("_robust_") }
        #expect(!robust.isEmpty)
        for prompt in robust {
            let executor = try BlockRangeExecutor(model: model, options: ExecutionOptions(threads: 2, precision: precision))
            let id = KVCacheID(key: prompt.name, attempt: 0)
            var logits = try executor.run(Step(cache: id, startPosition: 0, input: .tokens(prompt.promptTokens)))
            var generated: [Int32] = []
            for i in 0..<prompt.greedyTokens.count {
                let position = prompt.promptTokens.count + i
                let token = Sampler.sample(logits.row(0), parameters: .greedy, position: position).token
                generated.append(token)
                logits = try executor.run(Step(cache: id, startPosition: position, input: .tokens([token])))
            }
            #expect(generated == prompt.greedyTokens, "\(prompt.name)")
        }
    }
}
