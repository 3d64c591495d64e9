import Testing

@testable import Inference

/// DESIGN §8: a row's logits are bit-identical whatever the partition into block ranges, batch
/// composition, thread count, prefill chunking, and prefill vs decode.
@Suite("Determinism contract")
struct DeterminismTests {
    static let tokens: [Int32] = [504, 3458, 282, 4649, 314, 253, 1345, 28, 1032, 1141, 30, 216, 33, 28, 216, 34, 28, 216, 35, 28, 7042, 30]
    static let companionTokens: [Int32] = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411]

    struct Plan {
        var cuts: [Int]
        var chunks: [Int]
        var threads: Int
        var companion: Bool
        var kernels: KernelSet = .best
    }

    /// Runs `tokens` through the ranges given by `cuts`, in chunks, optionally batched with a
    /// companion request at other positions, and returns the logits of every position.
    static func logits(_ model: TransformerModel, _ plan: Plan, precision: ActivationPrecision) throws -> [[Float]] {
        let n = model.config.blockCount
        let bounds = [0] + plan.cuts + [n]
        let executors = try zip(bounds, bounds.dropFirst()).map { a, b in
            try BlockRangeExecutor(
                model: model, blocks: a..<b, options: ExecutionOptions(threads: plan.threads, precision: precision, kernels: plan.kernels))
        }
        let mine = KVCacheID(key: "mine", attempt: 0)
        let other = KVCacheID(key: "other", attempt: 1)
        var rows: [[Float]] = []
        var position = 0
        var otherPosition = 0
        var chunkIndex = 0
        while position < tokens.count {
            let size = min(plan.chunks[chunkIndex % plan.chunks.count], tokens.count - position)
            chunkIndex += 1
            var steps = [Step(cache: mine, startPosition: position, input: .tokens(Array(tokens[position..<(position + size)])))]
            if plan.companion, otherPosition < companionTokens.count {
                let otherSize = min(1 + chunkIndex % 3, companionTokens.count - otherPosition)
                let slice = Array(companionTokens[otherPosition..<(otherPosition + otherSize)])
                // Alternate the companion before and after, so row order in the batch changes too.
                let companion = Step(cache: other, startPosition: otherPosition, input: .tokens(slice))
                if chunkIndex % 2 == 0 { steps.insert(companion, at: 0) } else { steps.append(companion) }
                otherPosition += otherSize
            }
            for (index, executor) in executors.enumerated() {
                let outputs = try executor.run(batch: steps, logits: .everyToken)
                if index == executors.count - 1 {
                    let out = try #require(zip(steps, outputs).first { $0.0.cache == mine }?.1)
                    #expect(out.kind == .logits && out.rows == size)
                    for r in 0..<size { rows.append(Array(out.row(r))) }
                } else {
                    steps = zip(steps, outputs).map { step, output in
                        Step(cache: step.cache, startPosition: step.startPosition, input: .activations(output.values))
                    }
                }
            }
            position += size
        }
        return rows
    }

    @Test("partitions, batches, threads, chunking and decode give bit-identical logits", arguments: ActivationPrecision.allCases)
    func bitIdentical(precision: ActivationPrecision) throws {
        let model = try ModelFixtureTests.model.get()
        let reference = try Self.logits(model, Plan(cuts: [], chunks: [Self.tokens.count], threads: 1, companion: false), precision: precision)
        #expect(reference.count == Self.tokens.count)
        var rng = SplitMix64(seed: 2024)
        var plans = [
            Plan(cuts: [], chunks: [1], threads: 2, companion: false),  // pure decode
            Plan(cuts: [7, 19], chunks: [5, 3, 8], threads: 2, companion: true),
            // The whole prompt as one batch on the portable kernels (the reference uses the
            // wide ones where the CPU has them).
            Plan(cuts: [], chunks: [Self.tokens.count], threads: 2, companion: false, kernels: .portable),
        ]
        // Decode alone and beside a companion on every kernel set this CPU runs (single tokens
        // take each set's own path).
        for set in KernelSet.supported {
            plans.append(Plan(cuts: [11], chunks: [1], threads: 1, companion: false, kernels: set))
            plans.append(Plan(cuts: [], chunks: [1, 2], threads: 2, companion: true, kernels: set))
        }
        for _ in 0..<3 {
            let cutCount = Int.random(in: 1...4, using: &rng)
            let cuts = Set((0..<cutCount).map { _ in Int.random(in: 1..<model.config.blockCount, using: &rng) }).sorted()
            let chunks = (0..<3).map { _ in Int.random(in: 1...9, using: &rng) }
            plans.append(Plan(cuts: cuts, chunks: chunks, threads: Int.random(in: 1...3, using: &rng), companion: Bool.random(using: &rng)))
        }
        for plan in plans {
            let rows = try Self.logits(model, plan, precision: precision)
            #expect(rows == reference, "cuts \(plan.cuts) chunks \(plan.chunks) threads \(plan.threads) companion \(plan.companion) kernels \(plan.kernels)")
        }
    }

    @Test("a replayed step overwrites its positions, and a gap is refused as missing_cache")
    func cachesByPosition() throws {
        let model = try ModelFixtureTests.model.get()
        let executor = try BlockRangeExecutor(model: model)
        let id = KVCacheID(key: "k", attempt: 0)
        let first = try executor.run(Step(cache: id, startPosition: 0, input: .tokens(Array(Self.tokens.prefix(6)))))
        let again = try executor.run(Step(cache: id, startPosition: 3, input: .tokens(Array(Self.tokens[3..<6]))))
        #expect(first.values == again.values)
        #expect(executor.heldPositions(id) == 6)
        #expect(executor.kvBytesUsed == executor.kvBytes(positions: 6))
        do {
            _ = try executor.run(Step(cache: id, startPosition: 9, input: .tokens([1])))
            Issue.record("a step after a gap ran")
        } catch let error as InferenceError {
            #expect(error.code == "missing_cache")
        }
        executor.release(id)
        #expect(executor.kvBytesUsed == 0)
        let budgeted = try BlockRangeExecutor(model: model, options: ExecutionOptions(kvBudgetBytes: 1000))
        do {
            _ = try budgeted.run(Step(cache: id, startPosition: 0, input: .tokens([1])))
            Issue.record("a step beyond the KV budget ran")
        } catch let error as InferenceError {
            #expect(error.code == "kv_full")
        }
    }
}
