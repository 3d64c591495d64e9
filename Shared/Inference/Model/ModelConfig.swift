import GGUF
/// The shape of a decoder-only transformer, read from a GGUF file's `<arch>.*` metadata.
public struct ModelConfig: Sendable, Equatable {
    /// Model families this module runs.
    public enum Architecture: String, Sendable {
        /// Llama and its relatives (SmolLM2): separate Q/K/V and gate/up tensors.
        case llama
        /// Phi-3: fused `attn_qkv` and fused `ffn_up` (gate rows first, then up rows).
        case phi3
    }

    /// Which elements RoPE rotates together.
    public enum RopeStyle: String, Sendable {
        /// (x[2i], x[2i+1]): llama GGUF files (the converter already permuted Q/K rows for it).
        case adjacentPairs
        /// (x[i], x[i + n/2]): GPT-NeoX style, used by Phi-3 in llama.cpp.
        case halves
    }

    public var architecture: Architecture
    public var blockCount: Int
    public var hiddenSize: Int
    public var feedForwardSize: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headSize: Int
    /// Leading dimensions of each head that RoPE rotates.
    public var ropeDimensions: Int
    public var ropeFrequencyBase: Double
    public var ropeStyle: RopeStyle
    public var rmsNormEpsilon: Float
    public var vocabularySize: Int
    public var contextLength: Int

    public var queryWidth: Int { headCount * headSize }
    public var kvWidth: Int { kvHeadCount * headSize }
    /// Bytes of f32 keys and values one position takes in one block.
    public var kvBytesPerPositionPerBlock: Int { 2 * kvWidth * 4 }

    /// Reads the configuration from `general.architecture` and its `<arch>.*` keys.
    public init(file: GGUFFile) throws {
        let name = try file.requireString("general.architecture")
        guard let architecture = Architecture(rawValue: name) else {
            throw InferenceError.unsupportedModel(
                "general.architecture \"\(name)\" is not supported (expected llama or phi3)")
        }
        self.architecture = architecture
        let p = name + "."
        blockCount = try file.requireInt(p + "block_count")
        hiddenSize = try file.requireInt(p + "embedding_length")
        feedForwardSize = try file.requireInt(p + "feed_forward_length")
        headCount = try file.requireInt(p + "attention.head_count")
        kvHeadCount = file.int(p + "attention.head_count_kv") ?? headCount
        contextLength = try file.requireInt(p + "context_length")
        guard blockCount > 0, hiddenSize > 0, feedForwardSize > 0, headCount > 0, kvHeadCount > 0,
            headCount % kvHeadCount == 0, hiddenSize % headCount == 0, contextLength > 0
        else {
            throw InferenceError.unsupportedModel(
                "\(p)* shape is inconsistent: blocks \(blockCount), embedding \(hiddenSize), heads \(headCount), "
                    + "kv heads \(kvHeadCount), context \(contextLength)")
        }
        headSize = file.int(p + "attention.key_length") ?? hiddenSize / headCount
        ropeDimensions = file.int(p + "rope.dimension_count") ?? headSize
        guard ropeDimensions > 0, ropeDimensions <= headSize, ropeDimensions % 2 == 0 else {
            throw InferenceError.unsupportedModel("\(p)rope.dimension_count \(ropeDimensions) does not fit head size \(headSize)")
        }
        ropeFrequencyBase = file.double(p + "rope.freq_base") ?? 10_000
        ropeStyle = architecture == .llama ? .adjacentPairs : .halves
        rmsNormEpsilon = file.float(p + "attention.layer_norm_rms_epsilon") ?? 1e-5
        if let vocabulary = file.int(p + "vocab_size") {
            vocabularySize = vocabulary
        } else if let tokens = file.array("tokenizer.ggml.tokens") {
            vocabularySize = tokens.count
        } else if let embedding = file.tensor(named: "token_embd.weight"), embedding.shape.count == 2 {
            vocabularySize = embedding.shape[1]
        } else {
            throw InferenceError.unsupportedModel("cannot tell the vocabulary size (no \(p)vocab_size, tokens or token_embd)")
        }
    }
}
