import Foundation
import Testing

import Profiles

@Suite("Model profiles from a GGUF file")
struct GGUFProfileTests {
    struct MissingModel: Error, CustomStringConvertible {
        let path: String
        var description: String { "model file not found at \(path): run scripts/fetch-model (or set HYPERION_MODEL)" }
    }

    /// The SmolLM2 GGUF: `HYPERION_MODEL`, else `models/SmolLM2-135M-Instruct.Q4_1.gguf`. Missing is a failure.
    static func modelPath() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let path =
            ProcessInfo.processInfo.environment["HYPERION_MODEL"]
            ?? root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        guard FileManager.default.fileExists(atPath: path) else { throw MissingModel(path: path) }
        return path
    }

    @Test("SmolLM2's file gives its shape, the tensors' real bytes, and the preset's FLOPs")
    func smolLM2() throws {
        let source = try ModelSource.load(Self.modelPath())
        guard case .shape(let shape) = source else {
            Issue.record("a GGUF file should give a shape")
            return
        }
        #expect(shape.name == "SmolLM2-135M-Instruct.Q4_1.gguf")
        #expect(shape.blockCount == 30 && shape.embeddingLength == 576 && shape.feedForwardLength == 1536)
        #expect(shape.headCount == 9 && shape.kvHeadCount == 3 && shape.vocabularySize == 49152)
        #expect(shape.tiedEmbeddings)
        #expect(shape.dtype == .q4_1)
        let profile = source.profile(for: .default)
        // Tensor table: 2,216,448 bytes per block; token_embd is q8_0 (30,081,024 bytes); the tied
        // head reads it too, plus the f32 output norm (2,304 bytes).
        #expect(profile.blocks.allSatisfy { $0.weightBytes == 2_216_448 })
        #expect(profile.embedding.weightBytes == 30_081_024)
        #expect(profile.head.weightBytes == 30_081_024 + 2_304)
        let preset = ModelPreset.smolLM2_135M.shape(dtype: .q4_1).profile(for: .default)
        #expect(profile.blocks[0].decodeFlopsPerToken == preset.blocks[0].decodeFlopsPerToken)
        #expect(profile.blocks[0].prefillFlopsPerToken == preset.blocks[0].prefillFlopsPerToken)
        #expect(profile.head.decodeFlopsPerToken == preset.head.decodeFlopsPerToken)
        #expect(profile.blocks[0].kvBytesPerToken == preset.blocks[0].kvBytesPerToken)
    }

    @Test("an argument that is neither a preset nor a file says what it accepts")
    func unknownModel() {
        #expect(throws: ModelSpecError.self) { try ModelSource.load("no-such-model") }
        do {
            _ = try ModelSource.load("no-such-model")
        } catch {
            #expect(error.description.contains("phi-3-medium"))
        }
    }
}
