import AMQP
import Foundation
import IntegrationSupport
import JSON
import Messages
import Testing

/// Plan switches under load, with the real broker and model: a switch never stalls or fails a
/// request (the workers keep the old block range for the requests they hold).
@Suite("Plan switches under load", .serialized)
struct PlanSwitchTests {
    @Test("a switch forced at 16 concurrent fails nothing; every request in flight finishes on its plan in one attempt")
    func switchUnderLoad() async throws {
        try await Cluster.with { cluster in
            let rpc = try await AMQPRPCClient.start(on: cluster.client)
            let answer = try await rpc.call(
                AMQPMessage(body: encodeMessage(PlanRequest()), properties: AMQPProperties(contentType: Names.ContentType.json)),
                exchange: Names.Exchange.internal, routingKey: Names.Queue.planGet, timeoutSeconds: 10)
            let plan = try JSONValue.parse(bytes: answer.body)
            let version = try #require(plan["version"]?.intValue, "no plan version in \(plan)")

            // 16 requests decoding at once.
            let prompt: [Int32] = Array(repeating: 33, count: 24)
            var inFlight: [ClientRequest] = []
            for index in 0..<16 {
                let request = InferenceRequest(id: "switch-\(index)", input: .tokens(prompt), maxTokens: 64, temperature: 0, stream: true)
                inFlight.append(try await ClientRequest(request, on: cluster.client))
            }
            let started = inFlight
            let streaming = await eventually(timeoutSeconds: 120) { started.allSatisfy { $0.tokens.count >= 2 } ? true : nil }
            #expect(streaming == true, "not every request streamed before the switch; logs:\n\(cluster.logs)")

            // Force a switch: the next version moves one block from the first stage to the second.
            let switched = try Self.movedCut(plan, version: version + 1)
            try await cluster.client.publish(
                AMQPMessage(body: Array(switched.serialized().utf8), properties: AMQPProperties(contentType: Names.ContentType.json)),
                exchange: Names.Exchange.plan, routingKey: "")
            let tokensAtSwitch = inFlight.map { $0.tokens.count }

            // 16 more after the switch.
            var after: [ClientRequest] = []
            for index in 0..<16 {
                let request = InferenceRequest(id: "after-\(index)", input: .tokens(prompt), maxTokens: 32, temperature: 0, stream: true)
                after.append(try await ClientRequest(request, on: cluster.client))
            }

            var failures: [String] = []
            var largestGap = 0.0
            for (request, atSwitch) in zip(inFlight, tokensAtSwitch) {
                let reply = await request.final(timeoutSeconds: 180)
                guard case .result(let result) = reply else {
                    failures.append("\(request.id): \(String(describing: reply))")
                    continue
                }
                #expect(result.tokens.count > atSwitch, "\(request.id) was still generating at the switch")
                #expect(result.attempts == 1, "\(request.id) took \(result.attempts) attempts")
                #expect(result.planVersion == version, "\(request.id) finished on plan \(result.planVersion), started on \(version)")
                largestGap = max(largestGap, request.largestTokenGapSeconds)
            }
            var onNewPlan = 0
            for request in after {
                let reply = await request.final(timeoutSeconds: 180)
                guard case .result(let result) = reply else {
                    failures.append("\(request.id): \(String(describing: reply))")
                    continue
                }
                if result.planVersion == version + 1 { onNewPlan += 1 }
            }
            #expect(failures.isEmpty, "failed: \(failures); logs:\n\(cluster.logs)")
            print("plan switch at 16 concurrent: largest inter-token gap of a request in flight \(Int(largestGap * 1000)) ms; "
                + "\(onNewPlan) of 16 later requests ran on the new plan")
            // The workers serve the new plan and let the old one go once its requests are released.
            for id in ["edge-1", "fog-1", "cloud-1"] {
                let beat = await cluster.freshHeartbeat(of: id, timeoutSeconds: 10) { $0.planVersion == version + 1 && $0.state == .serving }
                #expect(beat != nil, "\(id) does not serve plan \(version + 1)")
            }
        }
    }

    /// `plan` as version `version`, with the first stage's last block handed to the second stage.
    static func movedCut(_ plan: JSONValue, version: Int64) throws -> JSONValue {
        guard var object = plan.objectValue, var stages = plan["stages"]?.arrayValue, stages.count >= 2,
            var first = stages[0].objectValue, var second = stages[1].objectValue,
            let last = first["last_block"]?.intValue, let start = first["first_block"]?.intValue, last > start
        else { throw TestPaths.Missing(description: "cannot move a cut in \(plan)") }
        first["last_block"] = .int(last - 1)
        second["first_block"] = .int(last)
        stages[0] = .object(first)
        stages[1] = .object(second)
        object["stages"] = .array(stages)
        object["version"] = .int(version)
        return .object(object)
    }
}
