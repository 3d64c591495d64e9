import JSON

/// The traffic a plan is optimised for (docs/design.md §6): mean prompt and output lengths, how
/// prompts are chunked, how decode steps are batched, and the KV reserve every node must hold.
///
/// Decode FLOPs of a transformer depend on the context length, so model profiles are evaluated
/// for one workload; the planner echoes it in every plan.
public struct Workload: Sendable, Hashable {
    /// Mean prompt tokens per request (`P`).
    public var promptTokens: Int
    /// Mean generated tokens per request (`O`).
    public var outputTokens: Int
    /// Prompt tokens per prefill step (`K`): weights are read once per chunk.
    public var prefillChunk: Int
    /// Sequences decoded together (`B`): weights are read once per batch.
    public var decodeBatch: Int
    /// Context tokens of KV cache each sequence reserves (`X`).
    public var context: Int
    /// Concurrent sequences each node must hold KV for (`S`).
    public var concurrency: Int

    public static let `default` = Workload(
        promptTokens: 512, outputTokens: 128, prefillChunk: 512, decodeBatch: 1, context: 2048, concurrency: 1)

    public init(
        promptTokens: Int, outputTokens: Int, prefillChunk: Int, decodeBatch: Int, context: Int, concurrency: Int
    ) {
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
        self.prefillChunk = prefillChunk
        self.decodeBatch = decodeBatch
        self.context = context
        self.concurrency = concurrency
    }


    /// Mean context seen by attention during prefill (`P/2`).
    public var prefillMeanContext: Double { Double(promptTokens) / 2 }
    /// Mean context seen by attention during decode (`P + O/2`).
    public var decodeMeanContext: Double { Double(promptTokens) + Double(outputTokens) / 2 }
    /// Prefill steps per request (`ceil(P/K)`): each pays every link's latency once.
    public var prefillSteps: Int { (promptTokens + prefillChunk - 1) / prefillChunk }

    /// Each rule of §6 that the workload breaks, as (field, expectation); empty when valid.
    public var violations: [(field: String, expectation: String)] {
        var found: [(String, String)] = []
        if promptTokens < 0 { found.append(("prompt_tokens", "expected an integer ≥ 0")) }
        if outputTokens < 0 { found.append(("output_tokens", "expected an integer ≥ 0")) }
        if promptTokens >= 0, outputTokens >= 0, promptTokens + outputTokens < 1 {
            found.append(("output_tokens", "prompt_tokens + output_tokens must be ≥ 1"))
        }
        if prefillChunk < 1 { found.append(("prefill_chunk", "expected an integer ≥ 1")) }
        if decodeBatch < 1 { found.append(("decode_batch", "expected an integer ≥ 1")) }
        if context < 1 { found.append(("context", "expected an integer ≥ 1")) }
        if concurrency < 1 { found.append(("concurrency", "expected an integer ≥ 1")) }
        return found
    }

    /// Reads a workload file; absent keys keep the values of `defaults`.
    public static func parse(
        _ value: JSONValue, defaults: Workload = .default, path: String = "workload"
    ) throws(JSONError) -> Workload {
        let fields = try FieldReader(value, path: path)
        var workload = defaults
        if let p = try fields.optionalInteger("prompt_tokens", minimum: 0) { workload.promptTokens = p }
        if let o = try fields.optionalInteger("output_tokens", minimum: 0) { workload.outputTokens = o }
        if let k = try fields.optionalInteger("prefill_chunk", minimum: 1) { workload.prefillChunk = k }
        if let b = try fields.optionalInteger("decode_batch", minimum: 1) { workload.decodeBatch = b }
        if let x = try fields.optionalInteger("context", minimum: 1) { workload.context = x }
        if let s = try fields.optionalInteger("concurrency", minimum: 1) { workload.concurrency = s }
        if let first = workload.violations.first {
            throw JSONError(path: fields.fieldPath(first.field), message: first.expectation)
        }
        return workload
    }

    /// The workload as the JSON object plans echo.
    public var jsonValue: JSONValue {
        [
            "prompt_tokens": .int(Int64(promptTokens)), "output_tokens": .int(Int64(outputTokens)),
            "prefill_chunk": .int(Int64(prefillChunk)), "decode_batch": .int(Int64(decodeBatch)),
            "context": .int(Int64(context)), "concurrency": .int(Int64(concurrency)),
        ]
    }
}
