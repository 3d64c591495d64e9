import Profiles

/// One pass of one request through one stage: a prefill chunk of `tokens` prompt tokens starting at
/// `position`, or a decode step (one token at `position`, which equals the context already cached).
public struct StepShape: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case prefill
        case decode
    }

    public var kind: Kind
    /// Position of the step's first token; the cache holds positions `0..<position` before it.
    public var position: Int
    public var tokens: Int

    public init(kind: Kind, position: Int, tokens: Int) {
        self.kind = kind
        self.position = max(0, position)
        self.tokens = max(0, tokens)
    }

    public static func prefill(position: Int, tokens: Int) -> StepShape {
        StepShape(kind: .prefill, position: position, tokens: tokens)
    }

    /// A decode step at context `context`: the token sits at position `context`.
    public static func decode(context: Int) -> StepShape { StepShape(kind: .decode, position: context, tokens: 1) }

    /// Positions the step's attention reads, summed over its tokens: the token at position `q`
    /// reads positions `0...q` (docs/design.md §8), so `n` tokens from `p` read `n·p + n(n+1)/2`.
    public var attendedPositions: Double {
        let n = Double(tokens)
        return n * Double(position) + n * (n + 1) / 2
    }
}

/// What one stage's block range costs per step, split so that attention can grow with the
/// context instead of being priced at the workload's mean context as the planner's §6 objective
/// does. The roofline of a step (or a batch of steps of different requests) on a device is
/// `max(FLOPs / flops, streamed weight bytes / bandwidth)`: weights are read once per step or
/// batch, so batching amortises them while FLOPs add up.
///
/// This is the one step-time model of the project: the simulator prices steps with it, the
/// `profile` executor holds steps for it, and ARTS' predicted work is its sum over a request.
public struct StageStepCost: Sendable, Hashable {
    /// FLOPs per prefill token that do not depend on the context (projections, FFN, head).
    public var prefillFlopsPerToken: Double
    /// FLOPs per decode token that do not depend on the context.
    public var decodeFlopsPerToken: Double
    /// Attention FLOPs per token per position it reads (QKᵀ and AV: `4·d` per block for presets).
    public var attentionFlopsPerPosition: Double
    /// Weight bytes read per step or batch (the embedding's are not: a lookup reads one row).
    public var streamedWeightBytes: Double
    /// Weight bytes held in memory (embedding and head included when the stage holds them).
    public var weightBytes: Double
    /// KV-cache bytes one position of context takes on this stage.
    public var kvBytesPerToken: Double
    /// Bytes per token this stage hands to the next (the last block's activations); 0 on the last
    /// stage, whose output is a sampled token for the scheduler.
    public var outputBytesPerToken: Double

    public init(
        prefillFlopsPerToken: Double, decodeFlopsPerToken: Double, attentionFlopsPerPosition: Double,
        streamedWeightBytes: Double, weightBytes: Double, kvBytesPerToken: Double, outputBytesPerToken: Double
    ) {
        self.prefillFlopsPerToken = prefillFlopsPerToken
        self.decodeFlopsPerToken = decodeFlopsPerToken
        self.attentionFlopsPerPosition = attentionFlopsPerPosition
        self.streamedWeightBytes = streamedWeightBytes
        self.weightBytes = weightBytes
        self.kvBytesPerToken = kvBytesPerToken
        self.outputBytesPerToken = outputBytesPerToken
    }

    /// FLOPs of one step.
    public func flops(_ step: StepShape) -> Double {
        let perToken = step.kind == .prefill ? prefillFlopsPerToken : decodeFlopsPerToken
        return Double(step.tokens) * perToken + attentionFlopsPerPosition * step.attendedPositions
    }

    /// The roofline time of a batch whose steps add up to `flops`: weights are read once.
    public func seconds(flops: Double, on device: DeviceFigures) -> Double {
        let compute = flops / device.flops
        guard let bandwidth = device.memoryBandwidthBytesPerSecond else { return compute }
        return max(compute, streamedWeightBytes / bandwidth)
    }

    /// Seconds of one step alone on `device`.
    public func seconds(_ step: StepShape, on device: DeviceFigures) -> Double {
        seconds(flops: flops(step), on: device)
    }

    /// Seconds of a batch of steps of different requests computed together on `device`.
    public func seconds(batch: [StepShape], on device: DeviceFigures) -> Double {
        seconds(flops: batch.reduce(0) { $0 + flops($1) }, on: device)
    }

    /// KV bytes a context of `tokens` positions holds on this stage.
    public func kvBytes(tokens: Int) -> Double { Double(max(0, tokens)) * kvBytesPerToken }

    /// Predicted seconds of one request on this stage, alone, on `device`: its prompt in chunks of
    /// `prefillChunk` tokens, then `decodeSteps` decode steps at contexts `promptTokens`,
    /// `promptTokens + 1`, …. What ARTS charges a node for a request (`StageDemand.work`).
    ///
    /// Closed form: a decode step's time is the larger of a constant (weights) and a line in the
    /// context (FLOPs), so the sum splits at the crossover into a constant part and an arithmetic
    /// series; a router evaluates this for every candidate node of every request.
    public func requestSeconds(
        promptTokens: Int, prefillChunk: Int, decodeSteps: Int, on device: DeviceFigures
    ) -> Double {
        var total = 0.0
        let chunk = max(1, prefillChunk)
        var position = 0
        while position < promptTokens {
            let tokens = min(chunk, promptTokens - position)
            total += seconds(.prefill(position: position, tokens: tokens), on: device)
            position += tokens
        }
        return total + decodeSeconds(firstContext: max(0, promptTokens), steps: max(0, decodeSteps), on: device)
    }

    /// Σ over contexts `c = first ..< first + steps` of `max((F + a·(c+1)) / flops, W / bw)`.
    func decodeSeconds(firstContext: Int, steps: Int, on device: DeviceFigures) -> Double {
        guard steps > 0 else { return 0 }
        let a = attentionFlopsPerPosition / device.flops
        let base = decodeFlopsPerToken / device.flops
        // Compute time of the decode at context c: base + a·(c + 1), summed over a run of contexts.
        func computeSum(from first: Int, count: Int) -> Double {
            guard count > 0 else { return 0 }
            let n = Double(count)
            let meanPositions = Double(first) + 1 + (n - 1) / 2
            return n * base + a * n * meanPositions
        }
        guard let bandwidth = device.memoryBandwidthBytesPerSecond else {
            return computeSum(from: firstContext, count: steps)
        }
        let memory = streamedWeightBytes / bandwidth
        // Contexts below `crossover` are memory-bound (compute ≤ memory).
        var memoryBound: Int
        if a > 0 {
            let boundary = ((memory - base) / a - 1).rounded(.down)  // last c with base + a(c+1) ≤ memory
            let last = boundary.isFinite ? min(max(boundary, Double(firstContext) - 1), Double(firstContext + steps - 1)) : 0
            memoryBound = Int(last) - firstContext + 1
        } else {
            memoryBound = base <= memory ? steps : 0
        }
        memoryBound = min(max(memoryBound, 0), steps)
        return Double(memoryBound) * memory + computeSum(from: firstContext + memoryBound, count: steps - memoryBound)
    }
}

/// Prices steps of any block range of a model: the per-step companion of `CostModel`.
///
/// Built from a `ModelSource` so that attention can be separated from the rest: a preset's or a
/// GGUF file's profile is evaluated at zero context (matrices only) and at context one, and the
/// difference is the attention cost per position read. A fixed custom profile has no such split;
/// its per-token FLOPs are used as given, whatever the context.
public struct StepCostModel: Sendable {
    public let blockCount: Int
    private let base: ModelProfile
    /// Attention FLOPs per token per position read, per block.
    private let attention: [Double]

    public init(source: ModelSource) {
        let zero = Workload(promptTokens: 0, outputTokens: 0, prefillChunk: 1, decodeBatch: 1, context: 1, concurrency: 1)
        let base = source.profile(for: zero)
        // Decode reads P + O/2 positions on average (§5): with P = 1, O = 0 each token reads one.
        // Prefill uses the same attention per position (P/2 on average), so one figure serves both.
        var one = zero
        one.promptTokens = 1
        let reading = source.profile(for: one)
        self.base = base
        self.blockCount = base.blocks.count
        attention = zip(reading.blocks, base.blocks).map { max(0, $0.decodeFlopsPerToken - $1.decodeFlopsPerToken) }
    }

    /// The costs of blocks `first...last`, with the embedding and head when the stage holds them.
    /// Out-of-range blocks are clamped (callers pass a plan's stages).
    public func stage(firstBlock: Int, lastBlock: Int, holdsEmbedding: Bool, holdsHead: Bool) -> StageStepCost {
        let lower = min(max(firstBlock, 0), blockCount)
        let upper = min(max(lastBlock + 1, lower), blockCount)
        var prefill = 0.0
        var decode = 0.0
        var attentionFlops = 0.0
        var streamed = 0.0
        var kv = 0.0
        for index in lower..<upper {
            let block = base.blocks[index]
            prefill += block.prefillFlopsPerToken
            decode += block.decodeFlopsPerToken
            attentionFlops += attention[index]
            streamed += block.weightBytes
            kv += block.kvBytesPerToken
        }
        var weights = streamed
        var output = upper > lower ? base.blocks[upper - 1].activationBytesPerToken : 0
        if holdsEmbedding {
            prefill += base.embedding.prefillFlopsPerToken
            decode += base.embedding.decodeFlopsPerToken
            weights += base.embedding.weightBytes
            kv += base.embedding.kvBytesPerToken
        }
        if holdsHead {
            prefill += base.head.prefillFlopsPerToken
            decode += base.head.decodeFlopsPerToken
            streamed += base.head.weightBytes
            weights += base.head.weightBytes
            kv += base.head.kvBytesPerToken
            output = 0
        }
        return StageStepCost(
            prefillFlopsPerToken: prefill, decodeFlopsPerToken: decode, attentionFlopsPerPosition: attentionFlops,
            streamedWeightBytes: streamed, weightBytes: weights, kvBytesPerToken: kv, outputBytesPerToken: output)
    }

    /// The costs of every stage of a partition, in pipeline order.
    public func stages(of partition: Partition) -> [StageStepCost] {
        partition.stages.map {
            stage(firstBlock: $0.firstBlock, lastBlock: $0.lastBlock, holdsEmbedding: $0.holdsEmbedding, holdsHead: $0.holdsHead)
        }
    }
}

extension StageStepCost {
    /// Decode steps of a request that generates `outputTokens`: the first token comes from the
    /// last prefill chunk's final row, each further one from a decode step (as the scheduler
    /// drives it, docs/design.md §8). The §6 objective counts `O` decode steps; this is `O − 1`.
    public static func decodeSteps(outputTokens: Int) -> Int { max(0, outputTokens - 1) }
}
