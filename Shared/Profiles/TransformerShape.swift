/// The public configuration of a Llama-family decoder (grouped-query attention, SwiGLU FFN), from
/// which a model profile follows by the counting conventions of docs/design.md §5.
///
/// Only matrix multiplications are counted (2 FLOPs per multiply-add): norms, RoPE and softmax are
/// a fraction of a percent of the work at these sizes and would only make two implementations
/// disagree.
public struct TransformerShape: Sendable, Hashable {
    public var name: String
    public var blockCount: Int
    /// Model width `d`.
    public var embeddingLength: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var feedForwardLength: Int
    public var vocabularySize: Int
    /// Whether the LM head reuses the embedding matrix. It still counts in the head's weight bytes:
    /// the head may sit on another tier, which then needs its own copy.
    public var tiedEmbeddings: Bool
    public var dtype: WeightDType
    /// Bytes per element of the KV cache (2: f16, the usual cache type).
    public var kvBytesPerElement: Double
    /// Bytes per element of the activations sent between stages (4: f32, docs/design.md §4).
    public var activationBytesPerElement: Double
    /// Measured weight bytes per block, embedding and head (from a GGUF tensor table); when nil the
    /// bytes follow from the parameter counts and `dtype`.
    public var measuredWeightBytes: MeasuredWeightBytes?
    /// The sha256 of the model file the shape was read from; carried into its profiles so plans
    /// name the exact file (workers refuse a plan made for another).
    public var sha256: String?

    /// Real tensor sizes of a model file, which mix types (norms in f32, some matrices in q6_K…).
    public struct MeasuredWeightBytes: Sendable, Hashable {
        public var blocks: [Double]
        public var embedding: Double
        public var head: Double

        public init(blocks: [Double], embedding: Double, head: Double) {
            self.blocks = blocks
            self.embedding = embedding
            self.head = head
        }
    }

    public init(
        name: String, blockCount: Int, embeddingLength: Int, headCount: Int, kvHeadCount: Int, feedForwardLength: Int,
        vocabularySize: Int, tiedEmbeddings: Bool, dtype: WeightDType, kvBytesPerElement: Double = 2,
        activationBytesPerElement: Double = 4, measuredWeightBytes: MeasuredWeightBytes? = nil, sha256: String? = nil
    ) {
        self.name = name
        self.blockCount = blockCount
        self.embeddingLength = embeddingLength
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.feedForwardLength = feedForwardLength
        self.vocabularySize = vocabularySize
        self.tiedEmbeddings = tiedEmbeddings
        self.dtype = dtype
        self.kvBytesPerElement = kvBytesPerElement
        self.activationBytesPerElement = activationBytesPerElement
        self.measuredWeightBytes = measuredWeightBytes
        self.sha256 = sha256
    }

    /// Width of the K and V projections: KV heads × head size.
    public var kvWidth: Int { kvHeadCount * (embeddingLength / max(headCount, 1)) }

    /// Multiply-adds per token of one block's projections: Q and O (d×d each), K and V (d×kv each),
    /// gate, up and down (d×ffn each).
    public var blockMatrixMACsPerToken: Double {
        let d = Double(embeddingLength)
        return 2 * d * d + 2 * d * Double(kvWidth) + 3 * d * Double(feedForwardLength)
    }

    /// Parameters of one block: its matrices plus the two norm vectors.
    public var blockParameters: Double { blockMatrixMACsPerToken + 2 * Double(embeddingLength) }
    public var embeddingParameters: Double { Double(vocabularySize) * Double(embeddingLength) }
    /// The final norm plus the LM head matrix.
    public var headParameters: Double { Double(embeddingLength) + Double(vocabularySize) * Double(embeddingLength) }

    private func measuredBlockBytes(_ index: Int) -> Double? {
        guard let measured = measuredWeightBytes, measured.blocks.indices.contains(index) else { return nil }
        return measured.blocks[index]
    }

    /// Distinct parameters of the model (a tied head's matrix counted once), as model cards state it.
    public var parameterCount: Double {
        Double(blockCount) * blockParameters + embeddingParameters
            + (tiedEmbeddings ? Double(embeddingLength) : headParameters)
    }

    /// The per-token costs for `workload`: attention reads `P/2` positions on average in prefill and
    /// `P + O/2` in decode, at 2 multiply-adds per position per model dimension (QKᵀ and AV).
    public func profile(for workload: Workload) -> ModelProfile {
        let d = Double(embeddingLength)
        let matrixFlops = 2 * blockMatrixMACsPerToken
        let prefillFlops = matrixFlops + 4 * d * workload.prefillMeanContext
        let decodeFlops = matrixFlops + 4 * d * workload.decodeMeanContext
        let kvBytesPerToken = 2 * Double(kvWidth) * kvBytesPerElement
        let activationBytes = d * activationBytesPerElement
        let bytes = dtype.bytesPerWeight
        let blocks = (0..<blockCount).map { index in
            LayerCost(
                prefillFlopsPerToken: prefillFlops, decodeFlopsPerToken: decodeFlops,
                weightBytes: measuredBlockBytes(index) ?? blockParameters * bytes,
                kvBytesPerToken: kvBytesPerToken, activationBytesPerToken: activationBytes)
        }
        let embedding = LayerCost(
            flopsPerToken: 0, weightBytes: measuredWeightBytes?.embedding ?? embeddingParameters * bytes,
            kvBytesPerToken: 0, activationBytesPerToken: activationBytes)
        // The head hands on one sampled token id (4 bytes) per token.
        let head = LayerCost(
            flopsPerToken: 2 * d * Double(vocabularySize),
            weightBytes: measuredWeightBytes?.head ?? headParameters * bytes, kvBytesPerToken: 0,
            activationBytesPerToken: 4)
        return ModelProfile(name: name, sha256: sha256, blocks: blocks, embedding: embedding, head: head)
    }
}
