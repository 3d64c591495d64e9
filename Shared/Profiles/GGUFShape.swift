import GGUF

extension TransformerShape {
    /// The shape of a GGUF model: the hyper-parameters from its metadata
    /// (`<arch>.block_count`, `embedding_length`, `feed_forward_length`, `attention.head_count`,
    /// `attention.head_count_kv`, the vocabulary) and the real bytes of its tensors per block,
    /// embedding and head, which mix types (norms in f32, some matrices in q6_K) that a single
    /// dtype would misstate. FLOPs follow the same conventions as the presets, so a file and its
    /// preset agree.
    public init(gguf file: GGUFFile, name: String) throws(ModelSpecError) {
        guard let architecture = file.architecture else {
            throw ModelSpecError("\(name): metadata general.architecture is missing")
        }
        func required(_ suffix: String) throws(ModelSpecError) -> Int {
            let key = "\(architecture).\(suffix)"
            guard let value = file.int(key), value > 0 else {
                throw ModelSpecError("\(name): metadata \(key) is missing or not a positive integer")
            }
            return value
        }
        let blockCount = try required("block_count")
        let embeddingLength = try required("embedding_length")
        let feedForwardLength = try required("feed_forward_length")
        let headCount = try required("attention.head_count")
        let kvHeadCount = file.int("\(architecture).attention.head_count_kv") ?? headCount
        guard kvHeadCount > 0, embeddingLength % headCount == 0 else {
            throw ModelSpecError("\(name): attention.head_count_kv or head_count does not divide the model width")
        }
        let vocabularySize =
            file.int("\(architecture).vocab_size") ?? file.array("tokenizer.ggml.tokens")?.count
            ?? file.tensor(named: "token_embd.weight")?.shape.last
        guard let vocabularySize, vocabularySize > 0 else {
            throw ModelSpecError("\(name): no vocabulary size (\(architecture).vocab_size, tokenizer.ggml.tokens)")
        }

        var blockBytes = [Double](repeating: 0, count: blockCount)
        var embeddingBytes = 0.0
        var headBytes = 0.0
        var hasOutputMatrix = false
        var typeCounts: [GGMLType: Int] = [:]
        for tensor in file.tensors {
            let bytes = Double(tensor.byteCount)
            if tensor.name.hasPrefix("blk.") {
                let parts = tensor.name.split(separator: ".")
                guard parts.count >= 3, let index = Int(parts[1]), blockBytes.indices.contains(index) else {
                    throw ModelSpecError("\(name): tensor \(tensor.name) names a block outside 0..<\(blockCount)")
                }
                blockBytes[index] += bytes
                if tensor.shape.count == 2 { typeCounts[tensor.type, default: 0] += 1 }
            } else if tensor.name == "token_embd.weight" {
                embeddingBytes += bytes
            } else if tensor.name.hasPrefix("output") {
                headBytes += bytes
                hasOutputMatrix = hasOutputMatrix || tensor.name == "output.weight"
            }
        }
        // A tied head reads the embedding matrix: it is the head's weight too.
        if !hasOutputMatrix { headBytes += embeddingBytes }
        let dominant = typeCounts.max { $0.value < $1.value }?.key
        let dtype = dominant.flatMap { WeightDType(rawValue: $0.description) } ?? .f16
        self.init(
            name: name, blockCount: blockCount, embeddingLength: embeddingLength, headCount: headCount,
            kvHeadCount: kvHeadCount, feedForwardLength: feedForwardLength, vocabularySize: vocabularySize,
            tiedEmbeddings: !hasOutputMatrix, dtype: dtype,
            measuredWeightBytes: MeasuredWeightBytes(blocks: blockBytes, embedding: embeddingBytes, head: headBytes))
    }
}
