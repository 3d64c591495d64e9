import Messages
import Scheduling
import Testing

/// Tokens print as their ids; 2 ends generation.
private struct IDText: TokenTextStream {
    mutating func append(_ token: Int32) -> String { "\(token) " }
}

private let ids = Vocabulary(makeTextStream: { IDText() }, isEndOfGeneration: { $0 == 2 })

/// One stage with 100 KV bytes per token: a request of 6 prompt + 4 output tokens needs 1,000.
private let onePlan = PlanView(
    version: 1, tiers: ["edge"], kvBytesPerToken: [100], prefillChunk: 8, workSeconds: { _, _, p, o in Double(p + o) * 0.001 })

private func edge(kvFree: Double, reservedForUs: Double = 0, heard: Double) -> NodeStatus {
    var node = NodeStatus(
        id: "e1", queue: "hyperion.stage.edge.e1", tier: "edge", instance: "i-e1", planVersion: 1, state: .serving,
        kvFreeBytes: kvFree, lastHeard: heard)
    node.kvReservedForScheduler = reservedForUs
    return node
}

private func request(_ key: String) -> Admission {
    Admission(
        key: key, id: key, replyTo: "amq.gen-c", correlationID: key, ingressTag: 1, promptTokens: [5, 6, 7, 8, 9, 10], maxTokens: 4,
        deadline: 100, receivedAt: 0)
}

private func firstSteps(_ directives: [SchedulerDirective]) -> [StepHeader] {
    directives.compactMap { if case .step(_, let header, _) = $0, header.position == 0 { header } else { nil } }
}

@Suite("KV admission: scheduler side")
struct KVAdmissionTests {
    @Test("a request is admitted only where its whole context fits; the rest wait and go when room frees")
    func admitsWhatFits() {
        var core = SchedulerCore(settings: SchedulerSettings(eventsQueue: "hyperion.sched.s1", contextTokens: 64), vocabulary: ids)
        _ = core.planArrived(onePlan, now: 0)
        _ = core.heartbeat(edge(kvFree: 2_500, heard: 0), now: 0)
        let sent = (1...3).map { firstSteps(core.admit(request("k\($0)"), now: 0)) }
        #expect(sent.map(\.count) == [1, 1, 0], "room for two requests of 1,000 bytes in 2,500")
        #expect(sent[0].first?.reserveTokens == 10, "the step asks the node to reserve prompt + max_tokens")
        #expect(core.waitingCount == 1)
        // The node's heartbeat now counts both reservations as ours: still no room for a third.
        _ = core.heartbeat(edge(kvFree: 500, reservedForUs: 2_000, heard: 1), now: 1)
        #expect(core.waitingCount == 1)
        // k1 ends; its release may not have reached the node by its next heartbeat, so the room
        // comes back only at the second.
        _ = core.event(.sampled(SampledEvent(key: "k1", attempt: 1, position: 5, token: 2, timings: [])), now: 1.5)
        #expect(firstSteps(core.heartbeat(edge(kvFree: 500, reservedForUs: 2_000, heard: 2), now: 2)).isEmpty)
        let admitted = firstSteps(core.heartbeat(edge(kvFree: 1_500, reservedForUs: 1_000, heard: 3), now: 3))
        #expect(admitted.map(\.key) == ["k3"])
        #expect(core.waitingCount == 0)
    }

    @Test("a kv_full refusal sends the request back to wait without spending an attempt")
    func refusalWaits() throws {
        var core = SchedulerCore(
            settings: SchedulerSettings(eventsQueue: "hyperion.sched.s1", maxAttempts: 1, contextTokens: 64), vocabulary: ids)
        _ = core.planArrived(onePlan, now: 0)
        _ = core.heartbeat(edge(kvFree: 1e6, heard: 0), now: 0)
        let first = try #require(firstSteps(core.admit(request("k1"), now: 0)).first)
        // Another scheduler filled the node first.
        let refusal = StepErrorEvent(key: "k1", attempt: 1, node: "e1", code: .kvFull, message: "full")
        let directives = core.event(.stepError(refusal), now: 0.1)
        #expect(directives.allSatisfy { if case .finish = $0 { false } else { true } }, "one attempt allowed, yet no failure")
        #expect(firstSteps(directives).isEmpty, "the refusing node takes nothing until it reports again")
        #expect(core.waitingCount == 1)
        let retried = firstSteps(core.heartbeat(edge(kvFree: 1e6, heard: 1), now: 1))
        #expect(retried.map(\.attempt) == [first.attempt + 1])
    }
}

@Suite("KV admission: router reservations")
struct RouterReservationTests {
    @Test("reservations outlive heartbeats until the node counts them, and releases wait two heartbeats")
    func reservations() throws {
        var router = Router(policy: .roundRobin)
        let demand = StageDemand(kvBytes: [1e6], work: { _, _ in 1 })
        let fresh = edge(kvFree: 2.5e6, heard: 0)
        let routes = (0..<4).compactMap { _ in router.route(candidates: [[fresh]], demand: demand, now: 0) }
        #expect(routes.count == 2)
        // A heartbeat sent before the steps arrived: the node counts nothing of ours yet.
        router.heartbeatArrived(node: "e1")
        #expect(router.kvRoomBytes(fresh) == 0.5e6)
        let counted = edge(kvFree: 0.5e6, reservedForUs: 2e6, heard: 1)
        #expect(router.kvRoomBytes(counted) == 0.5e6)
        router.released(try #require(routes.first), unusedFraction: 0, now: 1)
        router.heartbeatArrived(node: "e1")
        #expect(router.kvRoomBytes(counted) == 0.5e6, "the release may be behind the first heartbeat")
        router.heartbeatArrived(node: "e1")
        #expect(router.kvRoomBytes(edge(kvFree: 1.5e6, reservedForUs: 1e6, heard: 2)) == 1.5e6)
        router.kvRefused(node: "e1")
        #expect(router.kvRoomBytes(edge(kvFree: 1.5e6, reservedForUs: 1e6, heard: 2)) == 0)
    }

    @Test("batched nodes price their sequences' work at the batch share")
    func batchShare() {
        let router = Router(policy: .arts)
        var node = edge(kvFree: 1e9, heard: 0)
        node.activeSequences = 8
        #expect(router.backlogSeconds(node, sequenceSeconds: 2) == 8)
        node.batchShare = 0.125
        #expect(router.backlogSeconds(node, sequenceSeconds: 2) == 1)
    }

    @Test("the batch meter reads a compute-bound batch as share 1 and a memory-bound one below")
    func meter() {
        var meter = BatchMeter(smoothing: 0.5)
        meter.record(predictedSeconds: 0.4, aloneSeconds: 0.4, steps: 4)
        #expect(meter.stepSeconds == 0.1 && meter.batchShare == 1)
        meter.record(predictedSeconds: 0.1, aloneSeconds: 0.4, steps: 4)
        #expect(meter.batchShare == 0.625)
        #expect(meter.stepSeconds == 0.0625)
    }
}
