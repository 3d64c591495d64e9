import JSON
import Messages
import Foundation
import Testing

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Decodes `text` expecting a refusal, and returns it so its field and reason can be checked.
private func refusal<T: Decodable>(_ type: T.Type, _ text: String) -> MessageError? {
    do {
        _ = try decodeMessage(type, from: bytes(text))
        return nil
    } catch {
        return error
    }
}

@Suite("Requests and cancels")
struct RequestTests {
    @Test("each input form decodes and round-trips")
    func forms() throws {
        let requests = [
            InferenceRequest(id: "a", input: .prompt("Hi"), maxTokens: 8, temperature: 0.7, topP: 0.9, topK: 40,
                             seed: 7, stop: ["\n\n"], stream: true, deadlineSeconds: 30),
            InferenceRequest(id: nil, input: .messages([.init(role: "system", content: "Be brief"), .init(role: "user", content: "2+2?")]), maxTokens: 4),
            InferenceRequest(id: "t", input: .tokens([1, 2, 3]), maxTokens: 1),
        ]
        for request in requests {
            let body = encodeMessage(request)
            #expect(try decodeMessage(InferenceRequest.self, from: body) == request)
        }
    }

    @Test("a single stop string is accepted as a list of one")
    func stopString() throws {
        let request = try decodeMessage(InferenceRequest.self, from: bytes(#"{"v":1,"id":"x","prompt":"p","max_tokens":2,"stop":"END"}"#))
        #expect(request.stop == ["END"])
    }

    @Test("the id falls back to the correlation id, and one of them is required")
    func idFallback() throws {
        let request = try decodeMessage(InferenceRequest.self, from: bytes(#"{"v":1,"prompt":"p","max_tokens":2}"#))
        #expect(try request.resolvedID(correlationID: "corr-1") == "corr-1")
        #expect(throws: MessageError.self) { try request.resolvedID(correlationID: nil) }
    }

    @Test("bad fields are refused with their path")
    func badFields() {
        let cases: [(String, String)] = [
            (#"{"v":2,"id":"x","prompt":"p","max_tokens":2}"#, "v"),
            (#"{"id":"x","prompt":"p","max_tokens":2}"#, "v"),
            (#"{"v":1,"id":"x","max_tokens":2}"#, ""),
            (#"{"v":1,"id":"x","prompt":"p","tokens":[1],"max_tokens":2}"#, ""),
            (#"{"v":1,"id":"x","prompt":"p","max_tokens":0}"#, "max_tokens"),
            (#"{"v":1,"id":"x","prompt":"p","max_tokens":2,"temperature":-1}"#, "temperature"),
            (#"{"v":1,"id":"x","prompt":"p","max_tokens":2,"top_p":0}"#, "top_p"),
            (#"{"v":1,"id":"x","prompt":"p","max_tokens":2,"top_k":-3}"#, "top_k"),
            (#"{"v":1,"id":"x","prompt":"p","max_tokens":2,"deadline_s":0}"#, "deadline_s"),
            (#"{"v":1,"id":"x","prompt":"p","max_tokens":2,"seed":-1}"#, "seed"),
            (#"{"v":1,"id":"x","tokens":[1,-2],"max_tokens":2}"#, "tokens"),
            (#"{"v":1,"id":"x","messages":[{"role":"user","content":"a"},{"role":"robot","content":"b"}],"max_tokens":2}"#, "messages[1].role"),
            (#"{"v":1,"id":"x","messages":[{"role":"user"}],"max_tokens":2}"#, "messages[0].content"),
            (#"{"v":1,"id":"","prompt":"p","max_tokens":2}"#, "id"),
            (#"{"v":1,"id":"x","prompt":"p","max_tokens":"many"}"#, "max_tokens"),
        ]
        for (text, field) in cases {
            let error = refusal(InferenceRequest.self, text)
            #expect(error != nil, "accepted \(text)")
            #expect(error?.field == field, "\(text) → \(String(describing: error))")
        }
    }

    @Test("malformed JSON is refused with a position")
    func malformed() {
        let error = refusal(InferenceRequest.self, "{\"v\":1,\n\"prompt\": }")
        #expect(error?.reason.hasPrefix("line 2") == true)
    }

    @Test("cancels round-trip and check their type")
    func cancels() throws {
        let cancel = CancelRequest(id: "r1")
        #expect(try decodeMessage(CancelRequest.self, from: encodeMessage(cancel)) == cancel)
        #expect(refusal(CancelRequest.self, #"{"v":1,"type":"stop","id":"r1"}"#)?.field == "type")
    }
}

@Suite("Replies and events")
struct ReplyTests {
    @Test("token, result and error replies round-trip through one decoder")
    func replies() throws {
        let replies: [Reply] = [
            .token(.init(id: "r", attempt: 1, index: 0, token: 42, text: "é")),
            .result(.init(
                id: "r", text: "Paris.", tokens: [1, 2], finishReason: .stop,
                usage: .init(promptTokens: 5, completionTokens: 2), route: ["hyperion.stage.edge.e1"],
                planVersion: 1_764_000_000_000, attempts: 1,
                timings: .init(queueSeconds: 0.01, timeToFirstTokenSeconds: 0.2, totalSeconds: 0.5,
                               stages: [.init(node: "e1", computeSeconds: 0.1, waitSeconds: 0.01)]))),
            .error(.init(id: "r", code: .tooLong, message: "prompt of 9000 tokens exceeds the context of 8192")),
        ]
        for reply in replies {
            let body = encodeMessage(reply)
            #expect(try decodeMessage(Reply.self, from: body) == reply)
            #expect(try JSONValue.parse(bytes: body)["v"] == .int(1))
        }
        let result = try JSONValue.parse(bytes: encodeMessage(replies[1]))
        #expect(result["finish_reason"] == "stop")
        #expect(result["timings"]?["ttft_s"] == .double(0.2))
        #expect(result["usage"]?["prompt_tokens"] == 5)
    }

    @Test("scheduler events decode by type; unknown types and versions are refused")
    func events() throws {
        let sampled = SampledEvent(key: "k", attempt: 2, position: 9, token: 7, logprob: -0.5,
                                   timings: [.init(node: "a", computeSeconds: 0.001, waitSeconds: 0)])
        let stepError = StepErrorEvent(key: "k", attempt: 2, node: "b", code: .missingCache, message: "no cache for k/2 at 0..8")
        #expect(try decodeMessage(SchedulerEvent.self, from: encodeMessage(sampled)) == .sampled(sampled))
        #expect(try decodeMessage(SchedulerEvent.self, from: encodeMessage(stepError)) == .stepError(stepError))
        #expect(refusal(SchedulerEvent.self, #"{"v":1,"type":"gossip"}"#)?.field == "type")
        #expect(refusal(SchedulerEvent.self, #"{"v":9,"type":"sampled"}"#)?.field == "v")
        #expect(refusal(SampledEvent.self, #"{"v":1,"type":"sampled","key":"k","attempt":1,"pos":-1,"token":1,"timings":[]}"#)?.field == "pos")
    }

    @Test("control messages round-trip")
    func control() throws {
        for kind in [ControlMessage.Kind.release, .cancel] {
            let message = ControlMessage(kind: kind, key: "k", attempt: 3)
            #expect(try decodeMessage(ControlMessage.self, from: encodeMessage(message)) == message)
        }
        #expect(refusal(ControlMessage.self, #"{"v":1,"type":"explode","key":"k","attempt":1}"#)?.field == "type")
    }

    @Test("telemetry round-trips and refuses out-of-range figures")
    func telemetry() throws {
        let beat = Telemetry(
            node: "e1", instance: "8a7c", tier: "edge", device: "jetson-orin-nano", planVersion: 5, state: .serving,
            nominal: .init(flops: 2e12, memoryBandwidthBytesPerSecond: 1e11, memoryBytes: 8e9), kvFreeBytes: 1e9,
            queueDepth: 3, activeSequences: 2, busyFraction: 0.5, speed: 0.9, tokensPerSecond: 40,
            modelSHA256: "b179", timestamp: 1_764_000_000.5)
        #expect(try decodeMessage(Telemetry.self, from: encodeMessage(beat)) == beat)
        var text = String(decoding: encodeMessage(beat), as: UTF8.self)
        text = text.replacingOccurrences(of: "\"flops\":2", with: "\"flops\":-2")
        #expect(refusal(Telemetry.self, text)?.field == "nominal.flops")
        let slow = String(decoding: encodeMessage(beat), as: UTF8.self).replacingOccurrences(of: "\"busy_fraction\":0.5", with: "\"busy_fraction\":1.5")
        #expect(refusal(Telemetry.self, slow)?.field == "busy_fraction")

        // The compute speed for planning is optional both ways: without it a beat still parses.
        var measured = beat
        measured.computeSpeed = 0.5
        measured.computeConfidence = 0.75
        #expect(try decodeMessage(Telemetry.self, from: encodeMessage(measured)) == measured)
        #expect(!String(decoding: encodeMessage(beat), as: UTF8.self).contains("compute_speed"))
        let unsure = String(decoding: encodeMessage(measured), as: UTF8.self)
            .replacingOccurrences(of: "\"compute_confidence\":0.75", with: "\"compute_confidence\":2")
        #expect(refusal(Telemetry.self, unsure)?.field == "compute_confidence")
    }
}

@Suite("Steps")
struct StepTests {
    private func header(dtype: StepHeader.DType = .f32, tokens: Int = 2, stage: Int = 1) -> StepHeader {
        StepHeader(
            key: "k", attempt: 1, scheduler: "hyperion.sched.s1", planVersion: 1, route: ["a", "b", "c"], stage: stage,
            kind: tokens == 1 ? .decode : .prefill, position: 0, tokenCount: tokens, dtype: dtype,
            shape: dtype == .i32 ? [tokens] : [tokens, 576],
            timings: (0..<stage).map { StageTiming(node: "n\($0)", computeSeconds: 0, waitSeconds: 0) },
            sampling: SamplingParameters())
    }

    @Test("headers agree with the body length, or the first mismatch is named")
    func validation() throws {
        try header().validate(bodyBytes: 2 * 576 * 4)
        try header(dtype: .i32, tokens: 3, stage: 0).validate(bodyBytes: 12)
        #expect(throws: MessageError(field: "body", reason: "expected 4608 bytes for shape [2, 576] of f32, found 4604")) {
            try header().validate(bodyBytes: 4604)
        }
        var bad = header()
        bad.stage = 3
        #expect(throws: MessageError.self) { try bad.validate(bodyBytes: 4608) }
        bad = header(tokens: 1)
        bad.kind = .decode
        bad.tokenCount = 2
        #expect(throws: MessageError.self) { try bad.validate(bodyBytes: 4608) }
        bad = header()
        bad.sampling.topP = 2
        #expect(throws: MessageError.self) { try bad.validate(bodyBytes: 4608) }
    }

    @Test("a shape whose byte count overflows is refused, not a crash")
    func hostileShape() {
        var bad = header()
        bad.tokenCount = Int(Int32.max)
        bad.shape = [Int(Int32.max), Int(Int32.max)]
        #expect(bad.expectedBodyBytes == Int.max)
        #expect(throws: MessageError.self) { try bad.validate(bodyBytes: 4608) }
    }

    @Test("bodies encode little-endian and decode exactly, including extreme floats")
    func bodies() {
        let tokens: [Int32] = [0, 1, 49151, .max]
        let tokenBytes = StepBody.encode(tokens: tokens)
        #expect(tokenBytes.prefix(8) == [0, 0, 0, 0, 1, 0, 0, 0])
        #expect(StepBody.decodeTokens(tokenBytes) == tokens)
        let activations: [Float] = [0, -0.0, 23_000.125, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1e-30]
        let decoded = StepBody.decodeActivations(StepBody.encode(activations: activations))
        #expect(decoded.map(\.bitPattern) == activations.map(\.bitPattern))
    }
}
