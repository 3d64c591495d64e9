import Messages
import Scheduling
import Testing

/// Text of token `n` is "<n>" so tests can read the output.
private struct AngleText: TokenTextStream {
    mutating func append(_ token: Int32) -> String { "<\(token)>" }
}

private let eos: Int32 = 2
private let vocabulary = Vocabulary(makeTextStream: { AngleText() }, isEndOfGeneration: { $0 == eos })

private func status(_ id: String, tier: String, heard: Double = 0, instance: String? = nil) -> NodeStatus {
    NodeStatus(
        id: id, queue: "hyperion.stage.\(tier).\(id)", tier: tier, instance: instance ?? "i-\(id)", planVersion: 1,
        state: .serving, kvFreeBytes: 1e9, lastHeard: heard)
}

private let plan = PlanView(
    version: 1, tiers: ["edge", "cloud"], kvBytesPerToken: [100, 100], prefillChunk: 4,
    workSeconds: { _, _, p, o in Double(p + o) * 0.001 })

private func admission(
    key: String = "k1", id: String = "r1", prompt: [Int32] = [10, 11, 12, 13, 14, 15], maxTokens: Int = 3,
    stop: [String] = [], deadline: Double = 100
) -> Admission {
    Admission(
        key: key, id: id, replyTo: "amq.gen-client", correlationID: "c-\(id)", ingressTag: 7, promptTokens: prompt,
        maxTokens: maxTokens, stopStrings: stop, stream: true, deadline: deadline, receivedAt: 0)
}

/// A core with two edge nodes and one cloud node, all heard at t = 0.
private func makeCore(timeout: Double = 30) -> SchedulerCore {
    var core = SchedulerCore(
        settings: SchedulerSettings(eventsQueue: "hyperion.sched.s1", stepTimeoutSeconds: timeout, contextTokens: 64),
        vocabulary: vocabulary)
    _ = core.planArrived(plan, now: 0)
    for node in [status("e1", tier: "edge"), status("e2", tier: "edge"), status("c1", tier: "cloud")] {
        _ = core.heartbeat(node, now: 0)
    }
    return core
}

private func steps(_ directives: [SchedulerDirective]) -> [StepHeader] {
    directives.compactMap { if case .step(_, let header, _) = $0 { header } else { nil } }
}

private func tokens(_ directives: [SchedulerDirective]) -> [TokenReply] {
    directives.compactMap { if case .reply(_, _, .token(let t)) = $0 { t } else { nil } }
}

private func completion(_ directives: [SchedulerDirective]) -> Completion? {
    directives.compactMap { if case .finish(let c) = $0 { c } else { nil } }.first
}

private func sampled(_ header: StepHeader, token: Int32) -> SchedulerEvent {
    .sampled(SampledEvent(
        key: header.key, attempt: header.attempt, position: header.position + header.tokenCount - 1, token: token,
        timings: header.route.map { StageTiming(node: $0, computeSeconds: 0.01, waitSeconds: 0.001) }))
}

@Suite("Scheduler core: request lifecycle")
struct SchedulerCoreTests {
    @Test("prefill goes out in chunks of K in order; only the last chunk's sample is a token")
    func prefillAndDecode() throws {
        var core = makeCore()
        let first = core.admit(admission(), now: 1)
        let prefill = steps(first)
        #expect(prefill.map(\.position) == [0, 4])
        #expect(prefill.map(\.tokenCount) == [4, 2])
        #expect(prefill.allSatisfy { $0.kind == .prefill && $0.attempt == 1 && $0.route.count == 2 })
        // The first chunk's sample is progress, not output.
        #expect(core.event(sampled(prefill[0], token: 99), now: 1.1).isEmpty)
        var out = core.event(sampled(prefill[1], token: 40), now: 1.2)
        #expect(tokens(out).map(\.index) == [0])
        let decode = try #require(steps(out).first)
        #expect(decode.kind == .decode && decode.position == 6 && decode.tokenCount == 1)
        out = core.event(sampled(decode, token: 41), now: 1.3)
        let next = try #require(steps(out).first)
        #expect(next.position == 7)
        out = core.event(sampled(next, token: 42), now: 1.4)
        let done = try #require(completion(out))
        guard case .result(let result) = done.reply else { Issue.record("expected a result"); return }
        #expect(result.tokens == [40, 41, 42])
        #expect(result.text == "<40><41><42>")
        #expect(result.finishReason == .length)
        #expect(result.attempts == 1)
        #expect(result.usage == .init(promptTokens: 6, completionTokens: 3))
        #expect(result.timings.stages.count == 2)
        #expect(done.ingressTag == 7)
        #expect(done.controls.map(\.message.kind) == [.release, .release])
        #expect(core.inFlight == 0)
    }

    @Test("an end-of-generation token ends with stop and is not part of the output")
    func endOfGeneration() throws {
        var core = makeCore()
        let prefill = steps(core.admit(admission(maxTokens: 10), now: 0))
        let out = core.event(sampled(prefill.last!, token: eos), now: 0.1)
        #expect(tokens(out).isEmpty)
        guard case .result(let result) = try #require(completion(out)).reply else { Issue.record("no result"); return }
        #expect(result.finishReason == .stop)
        #expect(result.tokens.isEmpty)
    }

    @Test("a stop string ends generation and is cut from the text")
    func stopString() throws {
        var core = makeCore()
        var step = steps(core.admit(admission(maxTokens: 10, stop: ["<8>"]), now: 0)).last!
        var out: [SchedulerDirective] = []
        for token: Int32 in [7, 8] {
            out = core.event(sampled(step, token: token), now: 0.1)
            if let next = steps(out).first { step = next }
        }
        guard case .result(let result) = try #require(completion(out)).reply else { Issue.record("no result"); return }
        #expect(result.finishReason == .stop)
        #expect(result.text == "<7>")
        #expect(result.tokens == [7, 8])
    }

    @Test("a step error fails over: new attempt, re-prefill of prompt + emitted tokens, old events ignored")
    func failover() throws {
        var core = makeCore()
        let prefill = steps(core.admit(admission(maxTokens: 3), now: 0))
        let firstRoute = prefill[0].route
        var out = core.event(sampled(prefill.last!, token: 50), now: 0.1)
        let decode = try #require(steps(out).first)
        let failedNode = firstRoute[0].split(separator: ".").last.map(String.init)!
        out = core.event(.stepError(StepErrorEvent(key: "k1", attempt: 1, node: failedNode, code: .missingCache, message: "gone")), now: 0.2)
        // Cancels to the old route, then the new attempt's prefill of 6 prompt + 1 emitted token.
        let controls = out.compactMap { if case .control(_, let m) = $0 { m } else { nil } }
        #expect(controls.count == 2 && controls.allSatisfy { $0.kind == .cancel && $0.attempt == 1 })
        let replay = steps(out)
        #expect(replay.allSatisfy { $0.attempt == 2 })
        #expect(replay.map(\.position) == [0, 4] && replay.map(\.tokenCount) == [4, 3])
        #expect(replay[0].route[0] != firstRoute[0], "the failed node is avoided")
        // The old attempt's late sample changes nothing.
        #expect(core.event(sampled(decode, token: 51), now: 0.3).isEmpty)
        out = core.event(sampled(replay.last!, token: 51), now: 0.4)
        #expect(tokens(out).map(\.index) == [1])
        #expect(tokens(out).first?.attempt == 2)
        let next = try #require(steps(out).first)
        out = core.event(sampled(next, token: 52), now: 0.5)
        guard case .result(let result) = try #require(completion(out)).reply else { Issue.record("no result"); return }
        #expect(result.tokens == [50, 51, 52])
        #expect(result.attempts == 2)
    }

    @Test("a step refused for a plan the node replaced takes the newer plan without spending an attempt")
    func planReplaced() throws {
        var core = SchedulerCore(
            settings: SchedulerSettings(eventsQueue: "hyperion.sched.s1", stepTimeoutSeconds: 30, maxAttempts: 1, contextTokens: 64),
            vocabulary: vocabulary)
        _ = core.planArrived(plan, now: 0)
        for node in [status("e1", tier: "edge"), status("c1", tier: "cloud")] { _ = core.heartbeat(node, now: 0) }
        let first = steps(core.admit(admission(), now: 0))
        #expect(first.first?.planVersion == 1)
        // Plan 2 arrives; e1 already serves it but the scheduler has not heard yet, so the request
        // went out on plan 1 and e1 refuses it.
        _ = core.planArrived(
            PlanView(version: 2, tiers: ["edge", "cloud"], kvBytesPerToken: [100, 100], prefillChunk: 4, workSeconds: { _, _, _, _ in 0.01 }),
            now: 0.1)
        var out = core.event(
            .stepError(StepErrorEvent(key: "k1", attempt: 1, node: "e1", code: .planMismatch, message: "plan 1 was replaced")), now: 0.2)
        // Not failed (one attempt allowed), and not re-sent on plan 1 while e1 counts as serving no plan.
        #expect(completion(out) == nil)
        #expect(steps(out).isEmpty)
        // Both nodes report plan 2: the request goes out on it.
        var e1 = status("e1", tier: "edge", heard: 0.5)
        e1.planVersion = 2
        _ = core.heartbeat(e1, now: 0.5)
        var c1 = status("c1", tier: "cloud", heard: 0.5)
        c1.planVersion = 2
        out = core.heartbeat(c1, now: 0.5)
        let again = steps(out)
        #expect(again.first?.planVersion == 2 && again.first?.attempt == 2)
    }

    @Test("with no serving node in a tier a request waits, then ends unavailable at its deadline")
    func waitsThenUnavailable() throws {
        var core = SchedulerCore(
            settings: SchedulerSettings(eventsQueue: "q", contextTokens: 64), vocabulary: vocabulary)
        _ = core.planArrived(plan, now: 0)
        _ = core.heartbeat(status("e1", tier: "edge"), now: 0)
        #expect(core.admit(admission(deadline: 5), now: 0).isEmpty)
        #expect(core.waitingCount == 1)
        // A cloud node appears: the waiting request starts.
        var late = core
        let started = late.heartbeat(status("c1", tier: "cloud", heard: 1), now: 1)
        #expect(steps(started).count == 2)
        // Without one, the deadline ends it.
        _ = core.heartbeat(status("e1", tier: "edge", heard: 4), now: 4)
        let out = core.tick(now: 5)
        guard case .error(let error) = try #require(completion(out)).reply else { Issue.record("no error"); return }
        #expect(error.code == .unavailable)
    }

    @Test("a running request past its deadline ends with finish_reason deadline and what it has")
    func deadline() throws {
        var core = makeCore()
        let prefill = steps(core.admit(admission(maxTokens: 10, deadline: 2), now: 0))
        _ = core.event(sampled(prefill.last!, token: 60), now: 1)
        let out = core.tick(now: 2)
        let done = try #require(completion(out))
        guard case .result(let result) = done.reply else { Issue.record("no result"); return }
        #expect(result.finishReason == .deadline && result.tokens == [60])
        #expect(done.controls.allSatisfy { $0.message.kind == .cancel })
    }

    @Test("a cancel must match both the id and the reply address")
    func cancel() throws {
        var core = makeCore()
        _ = core.admit(admission(), now: 0)
        #expect(core.cancel(id: "r1", replyTo: "amq.gen-someone-else", now: 1).isEmpty)
        #expect(core.cancel(id: "r2", replyTo: "amq.gen-client", now: 1).isEmpty)
        let out = core.cancel(id: "r1", replyTo: "amq.gen-client", now: 1)
        guard case .result(let result) = try #require(completion(out)).reply else { Issue.record("no result"); return }
        #expect(result.finishReason == .cancelled)
        #expect(core.inFlight == 0)
    }

    @Test("a prompt that fills the context window is refused as too_long")
    func tooLong() throws {
        var core = makeCore()
        let out = core.admit(admission(prompt: Array(repeating: 5, count: 64)), now: 0)
        guard case .error(let error) = try #require(completion(out)).reply else { Issue.record("no error"); return }
        #expect(error.code == .tooLong)
    }

    @Test("a silent node, a restarted node and a step timeout each fail the attempt over")
    func failureDetection() throws {
        // Silent: nodes heard at 0 are out at t > 3; keep the others alive.
        var core = makeCore()
        let route = steps(core.admit(admission(), now: 0))[0].route
        let ids = route.map { String($0.split(separator: ".").last!) }
        for (id, tier) in [("e1", "edge"), ("e2", "edge"), ("c1", "cloud")] where id != ids[0] {
            _ = core.heartbeat(status(id, tier: tier, heard: 3.5), now: 3.5)
        }
        var out = core.tick(now: 3.5)
        #expect(steps(out).first?.attempt == 2)
        #expect(steps(out).first?.route[0] != route[0])

        // Restart: a new instance of a node on the route.
        core = makeCore()
        let route2 = steps(core.admit(admission(), now: 0))[0].route
        let id = String(route2[1].split(separator: ".").last!)
        out = core.heartbeat(status(id, tier: "cloud", heard: 0.5, instance: "new"), now: 0.5)
        #expect(steps(out).first?.attempt == 2)

        // Timeout: no sampled event within the step timeout.
        core = makeCore(timeout: 2)
        _ = core.admit(admission(), now: 0)
        for (id, tier) in [("e1", "edge"), ("e2", "edge"), ("c1", "cloud")] {
            _ = core.heartbeat(status(id, tier: tier, heard: 2.5), now: 2.5)
        }
        out = core.tick(now: 2.5)
        #expect(steps(out).first?.attempt == 2)
    }

    @Test("an unroutable reply cancels the request without replying and frees its caches")
    func vanishedClient() throws {
        var core = makeCore()
        _ = core.admit(admission(), now: 0)
        let done = try #require(completion(core.clientVanished(replyTo: "amq.gen-client", now: 1)))
        #expect(done.replyTo == nil)
        #expect(done.controls.count == 2 && done.controls.allSatisfy { $0.message.kind == .cancel })
    }

    @Test("a lost ingress channel drops every request without a reply or ack and cancels its caches")
    func abandonAll() throws {
        var core = makeCore()
        let first = steps(core.admit(admission(key: "k1", id: "r1"), now: 0))
        _ = core.admit(admission(key: "k2", id: "r2"), now: 0)
        let directives = core.abandonAll()
        #expect(completion(directives) == nil, "nothing is replied to or acked: the broker redelivers the requests")
        #expect(tokens(directives).isEmpty)
        let cancels = directives.compactMap { if case .control(_, let control) = $0 { control } else { nil } }
        #expect(Set(cancels.map(\.key)) == ["k1", "k2"] && cancels.allSatisfy { $0.kind == .cancel })
        #expect(core.inFlight == 0)
        // A late event of a dropped request changes nothing.
        let header = try #require(first.first)
        #expect(core.event(sampled(header, token: 5), now: 1).isEmpty)
    }
}
