/// What a node learns from the batches it runs, for ARTS under continuous batching (docs/design.md §7):
/// predicted seconds per step as the node batches them, and how much batching shares its time.
///
/// Both are EWMAs over batches of the step-time model's figures (`StageStepCost`): a batch's
/// roofline (weights read once) over its steps, and that roofline over the sum of its steps'
/// rooflines run one by one. A compute-bound node's share stays 1; a memory-bound node batching
/// eight decode steps reads about 1/8, so the sequences it already serves delay a new one less.
public struct BatchMeter: Sendable {
    public private(set) var stepSeconds = 0.0
    public private(set) var batchShare = 1.0
    public private(set) var batches = 0
    /// Weight of the newest batch.
    public var smoothing: Double

    public init(smoothing: Double = 0.2) {
        self.smoothing = smoothing
    }

    /// Records one batch: `predictedSeconds` of the batch as run together, `aloneSeconds` of its
    /// steps each run alone, `steps` in it.
    public mutating func record(predictedSeconds: Double, aloneSeconds: Double, steps: Int) {
        guard steps > 0, predictedSeconds >= 0, predictedSeconds.isFinite else { return }
        let perStep = predictedSeconds / Double(steps)
        let share = aloneSeconds > 0 ? min(1, max(predictedSeconds / aloneSeconds, 1e-6)) : 1
        if batches == 0 {
            stepSeconds = perStep
            batchShare = share
        } else {
            stepSeconds = (1 - smoothing) * stepSeconds + smoothing * perStep
            batchShare = (1 - smoothing) * batchShare + smoothing * share
        }
        batches += 1
    }
}
