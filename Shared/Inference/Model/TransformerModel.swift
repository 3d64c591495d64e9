import GGUF
/// A loaded model: its configuration and every weight, read in place from the mapped GGUF file.
///
/// Immutable and shareable between executors; only the small norm vectors are copied to floats.
/// Q/K/V and gate/up are kept as lists of matrices whose outputs are concatenated, so Llama's
/// separate tensors and Phi-3's fused ones run through the same code.
public final class TransformerModel: Sendable {
    public let config: ModelConfig
    public let file: GGUFFile
    let embedding: WeightMatrix
    let blocks: [DecoderBlock]
    let outputNorm: [Float]
    let output: WeightMatrix

    /// The weights of one decoder block.
    struct DecoderBlock: Sendable {
        let attentionNorm: [Float]
        /// Produce [q | k | v] (widths queryWidth, kvWidth, kvWidth) when run in order.
        let qkv: [WeightMatrix]
        let attentionOutput: WeightMatrix
        let feedForwardNorm: [Float]
        /// Produce [gate | up] (feedForwardSize each) when run in order.
        let gateUp: [WeightMatrix]
        let down: WeightMatrix
    }

    /// Opens and maps `path`, then loads the model.
    public convenience init(path: String) throws {
        try self.init(file: GGUFFile(path: path))
    }

    public init(file: GGUFFile) throws {
        let config = try ModelConfig(file: file)
        self.config = config
        self.file = file
        let d = config.hiddenSize

        func matrix(_ name: String, columns: Int, rows: Int?) throws -> WeightMatrix {
            guard let info = file.tensor(named: name) else {
                throw InferenceError.unsupportedModel("tensor \"\(name)\" is missing")
            }
            guard info.type.isComputable else {
                throw InferenceError.unsupportedModel("tensor \"\(name)\" has type \(info.type), which has no kernel here")
            }
            guard info.shape.count <= 2, info.rowLength == columns, rows.map({ $0 == info.rowCount }) ?? true else {
                throw InferenceError.unsupportedModel(
                    "tensor \"\(name)\" has shape \(info.shape), expected [\(columns), \(rows.map(String.init) ?? "any")]")
            }
            return try WeightMatrix(file: file, tensor: info)
        }
        func vector(_ name: String, count: Int) throws -> [Float] {
            let m = try matrix(name, columns: count, rows: 1)
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                // The capacity is exactly `count`, so the base address exists.
                if let base = buffer.baseAddress { m.dequantizeRow(0, into: base) }
                initialized = count
            }
        }

        embedding = try matrix("token_embd.weight", columns: d, rows: config.vocabularySize)
        outputNorm = try vector("output_norm.weight", count: d)
        if file.tensor(named: "output.weight") != nil {
            output = try matrix("output.weight", columns: d, rows: config.vocabularySize)
        } else {
            output = embedding
        }

        var blocks: [DecoderBlock] = []
        for i in 0..<config.blockCount {
            let p = "blk.\(i)."
            let qkv: [WeightMatrix]
            let gateUp: [WeightMatrix]
            switch config.architecture {
            case .llama:
                qkv = [
                    try matrix(p + "attn_q.weight", columns: d, rows: config.queryWidth),
                    try matrix(p + "attn_k.weight", columns: d, rows: config.kvWidth),
                    try matrix(p + "attn_v.weight", columns: d, rows: config.kvWidth),
                ]
                gateUp = [
                    try matrix(p + "ffn_gate.weight", columns: d, rows: config.feedForwardSize),
                    try matrix(p + "ffn_up.weight", columns: d, rows: config.feedForwardSize),
                ]
            case .phi3:
                qkv = [try matrix(p + "attn_qkv.weight", columns: d, rows: config.queryWidth + 2 * config.kvWidth)]
                gateUp = [try matrix(p + "ffn_up.weight", columns: d, rows: 2 * config.feedForwardSize)]
            }
            blocks.append(
                DecoderBlock(
                    attentionNorm: try vector(p + "attn_norm.weight", count: d),
                    qkv: qkv,
                    attentionOutput: try matrix(p + "attn_output.weight", columns: config.queryWidth, rows: d),
                    feedForwardNorm: try vector(p + "ffn_norm.weight", count: d),
                    gateUp: gateUp,
                    down: try matrix(p + "ffn_down.weight", columns: config.feedForwardSize, rows: d)))
        }
        self.blocks = blocks
        if config.architecture == .phi3,
            file.tensors.contains(where: { $0.name.hasPrefix("rope_factors") })
        {
            throw InferenceError.unsupportedModel("Phi-3 long-context RoPE factors (rope_factors_*) are not supported")
        }
    }

    /// Bytes of weights blocks `range` read per token (embedding lookup excluded, head included
    /// when the range ends the model).
    public func weightBytes(blocks range: Range<Int>) -> Int {
        var total = 0
        for block in blocks[range] {
            total += block.qkv.reduce(0) { $0 + $1.byteCount } + block.attentionOutput.byteCount
            total += block.gateUp.reduce(0) { $0 + $1.byteCount } + block.down.byteCount
        }
        if range.upperBound == config.blockCount { total += output.byteCount }
        return total
    }
}
