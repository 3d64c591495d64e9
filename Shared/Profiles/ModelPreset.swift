/// Models the planner knows by name, with the shapes of their public configurations
/// (`config.json` on each model's Hugging Face page).
public enum ModelPreset: String, Sendable, CaseIterable {
    /// microsoft/Phi-3-medium-4k-instruct: 40 blocks, d 5120, 40 heads, 10 KV heads, ffn 17920.
    case phi3Medium = "phi-3-medium"
    /// microsoft/Phi-3-mini-4k-instruct: 32 blocks, d 3072, 32 heads (no GQA), ffn 8192.
    case phi3Mini = "phi-3-mini"
    /// meta-llama/Meta-Llama-3-8B: 32 blocks, d 4096, 32 heads, 8 KV heads, ffn 14336, vocab 128256.
    case llama3_8B = "llama-3-8b"
    /// HuggingFaceTB/SmolLM2-135M-Instruct: 30 blocks, d 576, 9 heads, 3 KV heads, ffn 1536, tied head.
    case smolLM2_135M = "smollm2-135m"

    /// The preset's shape with weights stored as `dtype`.
    public func shape(dtype: WeightDType) -> TransformerShape {
        switch self {
        case .phi3Medium:
            TransformerShape(
                name: rawValue, blockCount: 40, embeddingLength: 5120, headCount: 40, kvHeadCount: 10,
                feedForwardLength: 17920, vocabularySize: 32064, tiedEmbeddings: false, dtype: dtype)
        case .phi3Mini:
            TransformerShape(
                name: rawValue, blockCount: 32, embeddingLength: 3072, headCount: 32, kvHeadCount: 32,
                feedForwardLength: 8192, vocabularySize: 32064, tiedEmbeddings: false, dtype: dtype)
        case .llama3_8B:
            TransformerShape(
                name: rawValue, blockCount: 32, embeddingLength: 4096, headCount: 32, kvHeadCount: 8,
                feedForwardLength: 14336, vocabularySize: 128256, tiedEmbeddings: false, dtype: dtype)
        case .smolLM2_135M:
            TransformerShape(
                name: rawValue, blockCount: 30, embeddingLength: 576, headCount: 9, kvHeadCount: 3,
                feedForwardLength: 1536, vocabularySize: 49152, tiedEmbeddings: true, dtype: dtype)
        }
    }

    /// Reads `name` or `name:dtype` (`phi-3-medium:q4_0`); the dtype defaults to f16.
    /// Returns nil when the name is not a preset; throws when the dtype is unknown.
    public static func shape(named text: String) throws(ModelSpecError) -> TransformerShape? {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first, let preset = ModelPreset(rawValue: first.lowercased()) else { return nil }
        var dtype = WeightDType.f16
        if parts.count == 2 {
            guard let parsed = WeightDType(rawValue: parts[1].lowercased()) else {
                throw ModelSpecError(
                    "unknown weight dtype '\(parts[1])' (expected one of "
                        + WeightDType.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            dtype = parsed
        }
        var shape = preset.shape(dtype: dtype)
        shape.name = "\(preset.rawValue):\(dtype.rawValue)"
        return shape
    }
}

/// Why a `--model` argument could not be turned into a model profile.
public struct ModelSpecError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
