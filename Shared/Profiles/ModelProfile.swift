import JSON

/// The cost of one part of a model (a decoder block, the embedding or the head) per token, in the
/// units the planner's roofline needs (docs/design.md §5).
public struct LayerCost: Sendable, Hashable {
    /// FLOPs per prompt token during prefill (2 per multiply-add).
    public var prefillFlopsPerToken: Double
    /// FLOPs per generated token during decode.
    public var decodeFlopsPerToken: Double
    /// Bytes of weights this part keeps in memory.
    public var weightBytes: Double
    /// Bytes of KV cache this part adds per token of context.
    public var kvBytesPerToken: Double
    /// Bytes per token of the activation this part hands to the next one.
    public var activationBytesPerToken: Double

    public init(
        prefillFlopsPerToken: Double, decodeFlopsPerToken: Double, weightBytes: Double, kvBytesPerToken: Double,
        activationBytesPerToken: Double
    ) {
        self.prefillFlopsPerToken = prefillFlopsPerToken
        self.decodeFlopsPerToken = decodeFlopsPerToken
        self.weightBytes = weightBytes
        self.kvBytesPerToken = kvBytesPerToken
        self.activationBytesPerToken = activationBytesPerToken
    }

    /// A part whose FLOPs are the same in both phases (custom profiles without per-phase figures).
    public init(flopsPerToken: Double, weightBytes: Double, kvBytesPerToken: Double, activationBytesPerToken: Double) {
        self.init(
            prefillFlopsPerToken: flopsPerToken, decodeFlopsPerToken: flopsPerToken, weightBytes: weightBytes,
            kvBytesPerToken: kvBytesPerToken, activationBytesPerToken: activationBytesPerToken)
    }
}

/// A model as the planner sees it: `embedding → blocks → head`, each part with its per-token cost,
/// evaluated for one workload (attention FLOPs depend on the context).
///
/// The embedding's weights count in memory but are never read whole per token (a lookup reads one
/// row), so the planner leaves them out of the bytes a node streams per step.
public struct ModelProfile: Sendable, Hashable {
    /// A name users recognise (`phi-3-medium:q4_0`, a file's name).
    public var name: String
    /// The sha256 of the model file, when the profile came from one; workers refuse other files.
    public var sha256: String?
    public var blocks: [LayerCost]
    public var embedding: LayerCost
    public var head: LayerCost

    public init(name: String, sha256: String? = nil, blocks: [LayerCost], embedding: LayerCost, head: LayerCost) {
        self.name = name
        self.sha256 = sha256
        self.blocks = blocks
        self.embedding = embedding
        self.head = head
    }

    /// Weight bytes of the whole model (what one node would need to hold it all, before KV).
    public var totalWeightBytes: Double {
        blocks.reduce(embedding.weightBytes + head.weightBytes) { $0 + $1.weightBytes }
    }

    /// Reads a custom profile (§6): `{"name","blocks":[…],"embedding":{…},"head":{…}}`, each part
    /// with `flops_per_token` (or both `prefill_flops_per_token` and `decode_flops_per_token`),
    /// `weight_bytes`, `kv_bytes_per_token` and `activation_bytes_per_token`, all ≥ 0.
    public static func parse(_ value: JSONValue, path: String = "profile") throws(JSONError) -> ModelProfile {
        let fields = try FieldReader(value, path: path)
        let name = try fields.optionalString("name") ?? "custom"
        let blockEntries = try fields.array("blocks", required: true)
        if blockEntries.isEmpty {
            throw JSONError(path: fields.fieldPath("blocks"), message: "expected at least one block")
        }
        var blocks: [LayerCost] = []
        blocks.reserveCapacity(blockEntries.count)
        for entry in blockEntries {
            blocks.append(try parseLayer(FieldReader(entry.value, path: entry.path)))
        }
        guard let embedding = try fields.nested("embedding") else {
            throw JSONError(path: fields.fieldPath("embedding"), message: "required field is missing (expected an object)")
        }
        guard let head = try fields.nested("head") else {
            throw JSONError(path: fields.fieldPath("head"), message: "required field is missing (expected an object)")
        }
        return ModelProfile(
            name: name, sha256: try fields.optionalString("sha256"), blocks: blocks,
            embedding: try parseLayer(embedding), head: try parseLayer(head))
    }

    private static func parseLayer(_ fields: FieldReader) throws(JSONError) -> LayerCost {
        let prefill = try fields.optionalNumber("prefill_flops_per_token", .nonNegative)
        let decode = try fields.optionalNumber("decode_flops_per_token", .nonNegative)
        let shared = (prefill == nil || decode == nil) ? try fields.number("flops_per_token", .nonNegative) : nil
        let weightBytes = try fields.number("weight_bytes", .nonNegative)
        let kvBytes = try fields.number("kv_bytes_per_token", .nonNegative)
        let activationBytes = try fields.number("activation_bytes_per_token", .nonNegative)
        return LayerCost(
            prefillFlopsPerToken: prefill ?? shared ?? 0, decodeFlopsPerToken: decode ?? shared ?? 0,
            weightBytes: weightBytes, kvBytesPerToken: kvBytes, activationBytesPerToken: activationBytes)
    }
}
