import Emulation
import Messages
import Partitioning
import Profiles
import Scheduling

/// A stage on an emulated device (docs/design.md §11 `profile`): no math. Each batch is held for its
/// roofline time on the device × the time scale, on the device's own timeline (the worker runs one
/// batch at a time, as a GPU stream would, and a late hold is made up by the batch waiting behind it); activations of the real size, all zeros, go to the next stage, so links carry
/// the bytes they would; the last stage answers every step with `dummyToken`, a token that is not
/// end-of-generation, so every request runs to its `max_tokens`. The device's memory is enforced
/// by `EmulatedStage` (weights) and the worker's KV budget (`kv_full`).
final class ProfileExecutor: StageExecutor, @unchecked Sendable {
    // Sendable: `timeline` is touched only by `run`, on the worker's one compute thread.
    let stage: EmulatedStage
    let hiddenSize: Int
    let holdsHead: Bool
    let dummyToken: Int32
    let clock: any HoldClock
    private var timeline = DeviceTimeline()

    init(stage: EmulatedStage, hiddenSize: Int, holdsHead: Bool, dummyToken: Int32, clock: any HoldClock) {
        self.stage = stage
        self.hiddenSize = hiddenSize
        self.holdsHead = holdsHead
        self.dummyToken = dummyToken
        self.clock = clock
    }

    var kvBytesPerToken: Double { stage.cost.kvBytesPerToken }
    var readsInputs: Bool { false }

    func run(_ batch: [ExecutorStep]) throws -> [ExecutorResult] {
        let now = clock.now()
        let shapes = batch.map { step in
            StepShape(kind: step.kind == .prefill ? .prefill : .decode, position: step.position, tokens: step.tokenCount)
        }
        let results: [ExecutorResult] = batch.map { step in
            holdsHead
                ? .sampled(token: dummyToken, logprob: 0)
                : .encodedActivations([UInt8](repeating: 0, count: step.tokenCount * hiddenSize * 4))
        }
        // The batch was ready once its last step arrived (never later than now).
        let readyAt = min(now, batch.map(\.readyAt).max() ?? now)
        stage.hold(shapes, startedAt: timeline.start(readyAt: readyAt, seconds: stage.holdSeconds(shapes)), on: clock)
        return results
    }

    func release(_ cache: CacheKey) {}

    /// A token id below every preset's vocabulary and no end-of-generation token in the ones the
    /// project ships (SmolLM2, Phi-3, Llama 3).
    static let defaultDummyToken: Int32 = 260

    /// Width of the activations between stages: the model dimension of a shape, else what a
    /// custom profile's first block hands on, at 4 bytes (f32) per value.
    static func hiddenSize(of source: ModelSource) -> Int {
        switch source {
        case .shape(let shape): shape.embeddingLength
        case .fixed(let profile): max(1, Int(((profile.blocks.first?.activationBytesPerToken ?? 4) / 4).rounded()))
        }
    }
}
