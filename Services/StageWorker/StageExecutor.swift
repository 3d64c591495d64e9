import Inference
import Messages
import Scheduling

/// One step as the executor sees it.
struct ExecutorStep: Sendable {
    var cache: CacheKey
    var kind: StepHeader.Kind
    var position: Int
    var tokenCount: Int
    /// When the step reached the worker (monotonic seconds): an emulated device could have started it then.
    var readyAt: Double
    /// The body's tokens or activations; left empty for an executor that does not read inputs.
    var input: Step.Input
    var sampling: Messages.SamplingParameters
}

/// What a step produced: activations for the next stage, or the last stage's sampled token.
enum ExecutorResult: Sendable {
    case activations([Float])
    /// Activations already in their wire encoding (little-endian f32).
    case encodedActivations([UInt8])
    case sampled(token: Int32, logprob: Double)
}

/// Runs a stage's blocks on batches of steps. Called from the worker's compute thread only.
protocol StageExecutor: AnyObject, Sendable {
    var hiddenSize: Int { get }
    var kvBytesPerToken: Double { get }
    /// Whether `run` needs each step's body decoded into `ExecutorStep.input`.
    var readsInputs: Bool { get }
    func run(_ batch: [ExecutorStep]) throws -> [ExecutorResult]
    func release(_ cache: CacheKey)
}

extension StageExecutor {
    var readsInputs: Bool { true }
}

/// The real model's blocks on the CPU (docs/design.md §11 `real`).
final class RealExecutor: StageExecutor, @unchecked Sendable {
    // Sendable: created, run and released only on the worker's one compute thread.
    let blocks: BlockRangeExecutor

    init(model: TransformerModel, firstBlock: Int, lastBlock: Int, threads: Int) throws {
        blocks = try BlockRangeExecutor(
            model: model, blocks: firstBlock..<(lastBlock + 1), options: ExecutionOptions(threads: threads))
    }

    var hiddenSize: Int { blocks.model.config.hiddenSize }
    var kvBytesPerToken: Double { Double(blocks.blocks.count * blocks.model.config.kvBytesPerPositionPerBlock) }

    func run(_ batch: [ExecutorStep]) throws -> [ExecutorResult] {
        let steps = batch.map { Step(cache: KVCacheID(key: $0.cache.key, attempt: $0.cache.attempt), startPosition: $0.position, input: $0.input) }
        let outputs = try blocks.run(batch: steps, logits: .lastToken)
        return zip(batch, outputs).map { step, output in
            switch output.kind {
            case .activations:
                return .activations(output.values)
            case .logits:
                let tokens: Int
                switch step.input {
                case .tokens(let ids): tokens = ids.count
                case .activations(let values): tokens = values.count / hiddenSize
                }
                let parameters = Inference.SamplingParameters(
                    temperature: step.sampling.temperature, topK: step.sampling.topK, topP: step.sampling.topP,
                    seed: step.sampling.seed)
                // The sampled token sits at the position after the step's last token.
                let sampled = Sampler.sample(output.row(output.rows - 1), parameters: parameters, position: step.position + tokens)
                return .sampled(token: sampled.token, logprob: sampled.logprob)
            }
        }
    }

    func release(_ cache: CacheKey) {
        blocks.release(KVCacheID(key: cache.key, attempt: cache.attempt))
    }
}
