import Messages
import Scheduling
import Testing

private let route = ["hyperion.stage.edge.e1", "hyperion.stage.fog.f1", "hyperion.stage.cloud.c1"]

private func step(
    key: String = "k", attempt: Int = 1, stage: Int = 1, position: Int = 0, tokens: Int = 3, tag: UInt64 = 1,
    plan: Int64 = 1, hidden: Int = 8, at time: Double = 0, reserve: Int? = nil, scheduler: String = "hyperion.sched.s1"
) -> QueuedStep {
    let dtype: StepHeader.DType = stage == 0 ? .i32 : .f32
    let header = StepHeader(
        key: key, attempt: attempt, scheduler: scheduler, planVersion: plan, route: route, stage: stage,
        kind: tokens == 1 && position > 0 ? .decode : .prefill, position: position, tokenCount: tokens, dtype: dtype,
        shape: dtype == .i32 ? [tokens] : [tokens, hidden],
        timings: (0..<stage).map { StageTiming(node: "n\($0)", computeSeconds: 0.1, waitSeconds: 0) }, sampling: .init(),
        reserveTokens: reserve)
    let bytes = dtype == .i32 ? tokens * 4 : tokens * hidden * 4
    return QueuedStep(deliveryTag: tag, header: header, body: [UInt8](repeating: 0, count: bytes), receivedAt: time)
}

private func core(stage: Int = 1, budget: Double = 1_000, maxSteps: Int = 16, maxTokens: Int = 512) -> StageCore {
    StageCore(
        settings: StageSettings(node: "f1", queue: route[stage], kvBudgetBytes: budget, maxBatchSteps: maxSteps, maxBatchTokens: maxTokens, idleCacheSeconds: 10),
        assignment: StageAssignment(planVersion: 1, stage: stage, stageCount: 3, hiddenSize: 8, kvBytesPerToken: 10))
}

private func refusal(_ directives: [StageDirective]) -> StepErrorCode? {
    if case .refuse(_, _, let error) = directives.first { return error.code }
    return nil
}

@Suite("Stage core: steps on one node")
struct StageCoreTests {
    @Test("a step runs, its cache grows by position, and the output goes to the next stage with its timing")
    func forward() throws {
        var stage = core()
        #expect(stage.receive(step(), now: 0).isEmpty)
        let batch = stage.nextBatch()
        #expect(batch.count == 1)
        let output = stage.completed(batch[0], sampledToken: nil, computeSeconds: 0.2, now: 0.5)
        guard case .forward(let queue, let header) = output else { Issue.record("expected a forward"); return }
        #expect(queue == route[2])
        #expect(header.stage == 2 && header.timings.count == 2 && header.timings[1].node == "f1")
        #expect(header.timings[1].waitSeconds == 0.3)
        #expect(stage.kvUsedBytes == 30)
    }

    @Test("the last stage answers the scheduler with the sampled token at the step's last position")
    func sampled() {
        var stage = core(stage: 2)
        _ = stage.receive(step(stage: 2, position: 0, tokens: 5), now: 0)
        let output = stage.completed(stage.nextBatch()[0], sampledToken: 42, computeSeconds: 0.1, now: 0.1)
        guard case .sampled(let queue, let event) = output else { Issue.record("expected a sample"); return }
        #expect(queue == "hyperion.sched.s1")
        #expect(event.position == 4 && event.token == 42 && event.timings.count == 3)
    }

    @Test("a step beyond the model's context or with a token id outside its vocabulary is refused alone on arrival")
    func outOfModelRange() {
        var stage = StageCore(
            settings: StageSettings(node: "e1", queue: route[0], kvBudgetBytes: 1_000, contextTokens: 8, vocabularySize: 100),
            assignment: StageAssignment(planVersion: 1, stage: 0, stageCount: 3, hiddenSize: 8, kvBytesPerToken: 10))
        #expect(refusal(stage.receive(step(stage: 0, position: 0, tokens: 9, tag: 1), now: 0)) == .badStep)
        var outside = step(key: "v", stage: 0, position: 0, tokens: 2, tag: 2)
        outside.body = [5, 0, 0, 0] + [100, 0, 0, 0]
        #expect(refusal(stage.receive(outside, now: 0)) == .badStep)
        var negative = step(key: "n", stage: 0, position: 0, tokens: 1, tag: 3)
        negative.body = [0xFF, 0xFF, 0xFF, 0xFF]
        #expect(refusal(stage.receive(negative, now: 0)) == .badStep)
        // A valid step beside them is queued and is the only one in the next batch.
        var valid = step(key: "ok", stage: 0, position: 0, tokens: 2, tag: 4)
        valid.body = [5, 0, 0, 0] + [99, 0, 0, 0]
        #expect(stage.receive(valid, now: 0).isEmpty)
        #expect(stage.nextBatch().map(\.header.key) == ["ok"])
    }

    @Test("a step past the positions held is refused as missing_cache, never computed")
    func missingCache() {
        var stage = core()
        #expect(refusal(stage.receive(step(position: 5, tokens: 1), now: 0)) == .missingCache)
        _ = stage.receive(step(position: 0, tokens: 3), now: 0)
        // Position 3 follows the queued prefill: accepted. Position 5 leaves a gap: refused.
        #expect(stage.receive(step(position: 3, tokens: 1, tag: 2), now: 0).isEmpty)
        #expect(refusal(stage.receive(step(position: 5, tokens: 1, tag: 3), now: 0)) == .missingCache)
        // Another attempt of the same key has no cache here.
        #expect(refusal(stage.receive(step(attempt: 2, position: 3, tokens: 1, tag: 4), now: 0)) == .missingCache)
    }

    @Test("headers that disagree with the node's plan or shape are refused with the reason")
    func badSteps() {
        var stage = core()
        #expect(refusal(stage.receive(step(plan: 2), now: 0)) == .planMismatch)
        #expect(refusal(stage.receive(step(hidden: 4), now: 0)) == .badStep)
        #expect(refusal(stage.receive(step(stage: 2), now: 0)) == .badStep)
        var truncated = step()
        truncated.body.removeLast()
        #expect(refusal(stage.receive(truncated, now: 0)) == .badStep)
        var first = core(stage: 0)
        #expect(first.receive(step(stage: 0), now: 0).isEmpty)
    }

    @Test("a batch takes at most one step per request and never lets a later step overtake")
    func batching() {
        var stage = core(maxTokens: 6)
        _ = stage.receive(step(key: "a", position: 0, tokens: 3, tag: 1), now: 0)
        _ = stage.receive(step(key: "a", position: 3, tokens: 1, tag: 2), now: 0)
        _ = stage.receive(step(key: "b", position: 0, tokens: 2, tag: 3), now: 0)
        _ = stage.receive(step(key: "c", position: 0, tokens: 4, tag: 4), now: 0)  // over the token budget
        _ = stage.receive(step(key: "c", position: 4, tokens: 1, tag: 5), now: 0)
        let first = stage.nextBatch().map(\.deliveryTag)
        #expect(first == [1, 3])
        let second = stage.nextBatch().map(\.deliveryTag)
        #expect(second == [2, 4])
        #expect(stage.nextBatch().map(\.deliveryTag) == [5])
    }

    @Test("the KV budget refuses a step that would overrun it")
    func kvBudget() {
        var stage = core(budget: 100)  // 10 positions
        #expect(stage.receive(step(key: "a", position: 0, tokens: 6), now: 0).isEmpty)
        #expect(refusal(stage.receive(step(key: "b", position: 0, tokens: 5, tag: 2), now: 0)) == .kvFull)
        #expect(stage.receive(step(key: "b", position: 0, tokens: 4, tag: 3), now: 0).isEmpty)
    }

    @Test("a plan switch keeps the held keys on their version while new keys take the new one, within one KV budget")
    func twoVersions() {
        var stage = core(budget: 200)  // 20 positions at 10 bytes
        #expect(stage.receive(step(key: "a", position: 0, tokens: 8), now: 0).isEmpty)
        for ran in stage.nextBatch() { _ = stage.completed(ran, sampledToken: nil, computeSeconds: 0, now: 0) }
        // Plan 2 gives this node another block range, with a wider KV row.
        let next = StageAssignment(planVersion: 2, stage: 1, stageCount: 3, hiddenSize: 8, kvBytesPerToken: 20)
        stage.reassign(next, kvBudgetBytes: 150, now: 1)
        #expect(stage.servedVersions == [2, 1])
        #expect(stage.settings.kvBudgetBytes == 150)
        // The held key goes on with its decode on plan 1's stage 1; its cache is not freed.
        #expect(stage.receive(step(key: "a", position: 8, tokens: 1, tag: 2), now: 2).isEmpty)
        // A new key on plan 2: 70 bytes free (150 - 80 held on plan 1), 3 positions of 20 fit, 4 do not.
        #expect(refusal(stage.receive(step(key: "b", position: 0, tokens: 4, tag: 3, plan: 2), now: 2)) == .kvFull)
        #expect(stage.receive(step(key: "b", position: 0, tokens: 3, tag: 4, plan: 2), now: 2).isEmpty)
        // Batches never mix versions (one block range runs a batch): plan 1's step alone, then plan 2's.
        let first = stage.nextBatch()
        #expect(first.map(\.header.key) == ["a"])
        #expect(stage.completed(first[0], sampledToken: nil, computeSeconds: 0, now: 2) != nil)
        let second = stage.nextBatch()
        #expect(second.map(\.header.key) == ["b"])
        #expect(stage.completed(second[0], sampledToken: nil, computeSeconds: 0, now: 2) != nil)
        #expect(stage.version(of: CacheKey(key: "a", attempt: 1)) == 1 && stage.version(of: CacheKey(key: "b", attempt: 1)) == 2)
        #expect(stage.kvUsedBytes == 90 + 60)
        #expect(stage.replacedSequences == 1)
        // Plan 1 stays while it holds "a", however long; once "a" is released it retires.
        #expect(stage.retireReplaced(now: 500).isEmpty)
        _ = stage.control(ControlMessage(kind: .release, key: "a", attempt: 1), now: 500)
        #expect(stage.retireReplaced(now: 500) == [1])
        #expect(stage.servedVersions == [2])
        #expect(refusal(stage.receive(step(key: "c", position: 0, tokens: 1, tag: 5), now: 501)) == .planMismatch)
    }

    @Test("a prompt's next prefill chunk arriving while its previous chunk computes is queued, not refused")
    func chunkDuringBatch() {
        var stage = core(budget: 10_000)
        #expect(stage.receive(step(key: "long", position: 0, tokens: 8, reserve: 20), now: 0).isEmpty)
        let first = stage.nextBatch()
        #expect(first.count == 1)
        // The second chunk arrives while the first runs: it starts where the first ends.
        #expect(stage.receive(step(key: "long", position: 8, tokens: 4, tag: 2), now: 0).isEmpty)
        #expect(refusal(stage.receive(step(key: "long", position: 13, tokens: 1, tag: 3), now: 0)) == .missingCache)
        _ = stage.completed(first[0], sampledToken: nil, computeSeconds: 0, now: 1)
        #expect(stage.nextBatch().map(\.header.position) == [8])
    }

    @Test("a replaced plan takes new keys during its grace period only, and retires after it when idle")
    func replacedGrace() {
        var stage = core()
        stage.reassign(StageAssignment(planVersion: 2, stage: 1, stageCount: 3, hiddenSize: 8, kvBytesPerToken: 10), now: 10)
        // Routed on plan 1 just before the switch: still taken.
        #expect(stage.receive(step(key: "late", position: 0, tokens: 2), now: 20).isEmpty)
        #expect(stage.retireReplaced(now: 20).isEmpty)
        // Past the grace period a new key on plan 1 is refused as a plan mismatch.
        #expect(refusal(stage.receive(step(key: "later", position: 0, tokens: 2, tag: 2), now: 41)) == .planMismatch)
        for ran in stage.nextBatch() { _ = stage.completed(ran, sampledToken: nil, computeSeconds: 0, now: 41) }
        #expect(stage.retireReplaced(now: 41).isEmpty)
        _ = stage.control(ControlMessage(kind: .cancel, key: "late", attempt: 1), now: 42)
        #expect(stage.retireReplaced(now: 42) == [1])
    }

    @Test("a new request joins the next batch beside running decodes, and a finished one leaves it")
    func continuousBatching() {
        var stage = core()
        _ = stage.receive(step(key: "a", position: 0, tokens: 3, tag: 1), now: 0)
        _ = stage.receive(step(key: "b", position: 0, tokens: 2, tag: 2), now: 0)
        for queued in stage.nextBatch() { _ = stage.completed(queued, sampledToken: nil, computeSeconds: 0, now: 0) }
        // a and b decode; c's prefill arrives meanwhile and runs in the same batch.
        _ = stage.receive(step(key: "a", position: 3, tokens: 1, tag: 3), now: 1)
        _ = stage.receive(step(key: "b", position: 2, tokens: 1, tag: 4), now: 1)
        _ = stage.receive(step(key: "c", position: 0, tokens: 4, tag: 5), now: 1)
        let second = stage.nextBatch()
        #expect(second.map(\.deliveryTag) == [3, 4, 5])
        for queued in second { _ = stage.completed(queued, sampledToken: nil, computeSeconds: 0, now: 1) }
        // a is done and released; the next batch holds b and c only.
        _ = stage.control(ControlMessage(kind: .release, key: "a", attempt: 1), now: 2)
        _ = stage.receive(step(key: "b", position: 3, tokens: 1, tag: 6), now: 2)
        _ = stage.receive(step(key: "c", position: 4, tokens: 1, tag: 7), now: 2)
        #expect(stage.nextBatch().map(\.header.key) == ["b", "c"])
        #expect(stage.activeSequences == 2)
    }

    @Test("a new attempt reserves its whole context up front; what does not fit is refused before any work")
    func reservations() {
        var stage = core(budget: 200)  // 20 positions
        #expect(stage.receive(step(key: "a", position: 0, tokens: 3, tag: 1, reserve: 12), now: 0).isEmpty)
        #expect(stage.kvReservedBytes == 120 && stage.kvFreeBytes == 80)
        // b's first chunk is small, but its context is not: refused now rather than mid-generation.
        #expect(refusal(stage.receive(step(key: "b", position: 0, tokens: 2, tag: 2, reserve: 10, scheduler: "hyperion.sched.s2"), now: 0)) == .kvFull)
        #expect(stage.receive(step(key: "c", position: 0, tokens: 2, tag: 3, reserve: 8, scheduler: "hyperion.sched.s2"), now: 0).isEmpty)
        #expect(stage.kvReservedBytesByScheduler == ["hyperion.sched.s1": 120, "hyperion.sched.s2": 80])
        // a's decode steps stay within its reservation: never refused.
        for queued in stage.nextBatch() { _ = stage.completed(queued, sampledToken: nil, computeSeconds: 0, now: 0) }
        #expect(stage.receive(step(key: "a", position: 3, tokens: 1, tag: 4, reserve: 12), now: 1).isEmpty)
        // Releasing a makes room for b.
        _ = stage.control(ControlMessage(kind: .release, key: "a", attempt: 1), now: 2)
        #expect(stage.receive(step(key: "b", position: 0, tokens: 2, tag: 5, reserve: 10), now: 2).isEmpty)
        #expect(stage.kvPeakBytes == 200 && stage.kvPeakBytes <= stage.settings.kvBudgetBytes)
    }

    @Test("cancel drops queued steps and the cache; late steps of that attempt are acked silently")
    func cancel() {
        var stage = core()
        _ = stage.receive(step(position: 0, tokens: 3, tag: 1), now: 0)
        _ = stage.completed(stage.nextBatch()[0], sampledToken: nil, computeSeconds: 0.1, now: 0.1)
        _ = stage.receive(step(position: 3, tokens: 1, tag: 2), now: 0.2)
        let directives = stage.control(ControlMessage(kind: .cancel, key: "k", attempt: 1), now: 0.3)
        #expect(directives == [.ack(deliveryTag: 2), .freeCache(CacheKey(key: "k", attempt: 1))])
        #expect(stage.receive(step(position: 4, tokens: 1, tag: 3), now: 0.4) == [.ack(deliveryTag: 3)])
        #expect(stage.activeSequences == 0 && stage.queued.isEmpty)
    }

    @Test("release frees the cache; idle caches expire")
    func releaseAndExpiry() {
        var stage = core()
        _ = stage.receive(step(key: "a"), now: 0)
        _ = stage.receive(step(key: "b", tag: 2), now: 0)
        for queued in stage.nextBatch() { _ = stage.completed(queued, sampledToken: nil, computeSeconds: 0, now: 0) }
        #expect(stage.control(ControlMessage(kind: .release, key: "a", attempt: 1), now: 1) == [.freeCache(CacheKey(key: "a", attempt: 1))])
        #expect(stage.tick(now: 5).isEmpty)
        #expect(stage.tick(now: 11) == [.freeCache(CacheKey(key: "b", attempt: 1))])
    }

    @Test("a draining node refuses new requests but serves the ones it holds")
    func draining() {
        var stage = core()
        _ = stage.receive(step(key: "a"), now: 0)
        stage.drain()
        #expect(refusal(stage.receive(step(key: "b", tag: 2), now: 0)) == .draining)
        #expect(stage.receive(step(key: "a", position: 3, tokens: 1, tag: 3), now: 0).isEmpty)
    }

    @Test("measured speed follows predicted over busy seconds")
    func speed() {
        var meter = SpeedMeter(smoothing: 0.5)
        meter.record(predictedSeconds: 1, busySeconds: 4)
        #expect(meter.speed == 0.25)
        meter.record(predictedSeconds: 1, busySeconds: 1)
        #expect(meter.speed == 0.625)
    }
}
