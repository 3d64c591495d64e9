/// What the scheduler needs of a plan: its version, the tier of each stage, and the cost model
/// that prices a request on a node (docs/design.md §5–7).
public struct PlanView: Sendable {
    public var version: Int64
    /// Tier name of each stage, in pipeline order.
    public var tiers: [String]
    /// KV-cache bytes one token of context takes on each stage.
    public var kvBytesPerToken: [Double]
    /// Prefill chunk size K in tokens.
    public var prefillChunk: Int
    /// Predicted seconds of a request with the given prompt and output lengths on `stage`, on
    /// `node`'s nominal device.
    public var workSeconds: @Sendable (_ stage: Int, _ node: NodeStatus, _ promptTokens: Int, _ outputTokens: Int) -> Double

    public init(
        version: Int64, tiers: [String], kvBytesPerToken: [Double], prefillChunk: Int,
        workSeconds: @escaping @Sendable (_ stage: Int, _ node: NodeStatus, _ promptTokens: Int, _ outputTokens: Int) -> Double
    ) {
        self.version = version
        self.tiers = tiers
        self.kvBytesPerToken = kvBytesPerToken
        self.prefillChunk = max(1, prefillChunk)
        self.workSeconds = workSeconds
    }
}
