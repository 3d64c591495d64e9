import JSON
import Profiles
import Testing

import Partitioning

@Suite("Plan JSON (docs/design.md §4)")
struct PlanDocumentTests {
    static func samplePlan() throws -> (PlanDocument, Topology) {
        var rng = SeededGenerator(seed: 42)
        var instance = RandomInstances.make(blocks: 12, tiers: 3, uniform: true, using: &rng)
        instance.workload = .default
        let partition = try #require(instance.plan().partition)
        let document = PlanDocument(
            version: 1_764_000_000_000, createdAt: "2026-11-25T14:00:00Z", modelName: "random", modelSHA256: "ab12",
            workload: instance.workload, partition: partition)
        return (document, instance.topology)
    }

    @Test("the plan prints the §4 keys with blocks counted from 0 and inclusive ranges")
    func keys() throws {
        let (document, _) = try Self.samplePlan()
        let json = document.jsonValue
        #expect(json["v"] == .int(1))
        #expect(json["partition"] == .string("bsdp"))
        #expect(json["workload"]?["prompt_tokens"] == .int(512))
        #expect(json["model"]?["sha256"] == .string("ab12"))
        let stages = try #require(json["stages"]?.arrayValue)
        #expect(stages.count == 3)
        #expect(stages.first?["first_block"] == .int(0))
        #expect(stages.last?["last_block"] == .int(11))
        for (index, stage) in stages.enumerated() where index > 0 {
            #expect(stage["first_block"]?.intValue == (stages[index - 1]["last_block"]?.intValue).map { $0 + 1 })
        }
        for key in ["tier", "nodes", "weight_bytes", "kv_bytes", "compute_s", "link_s"] {
            #expect(stages[0][key] != nil, "stage key \(key)")
        }
        #expect(json["bottleneck_s"]?.doubleValue == document.partition.bottleneckSeconds)
    }

    @Test("a printed plan reads back with the same partition and predictions")
    func roundTrip() throws {
        let (document, _) = try Self.samplePlan()
        let text = document.jsonValue.serialized(pretty: true)
        let read = try PlanDocument.parse(JSONValue.parse(text))
        #expect(read.version == document.version)
        #expect(read.workload == document.workload)
        #expect(read.partition.cuts == document.partition.cuts)
        #expect(read.partition.bottleneckSeconds == document.partition.bottleneckSeconds)
        #expect(read.partition.stages.map(\.nodes) == document.partition.stages.map(\.nodes))
    }

    @Test("a plan of another schema version is refused with its path")
    func wrongVersion() throws {
        let (document, _) = try Self.samplePlan()
        guard case .object(var object) = document.jsonValue else { return }
        object["v"] = .int(2)
        #expect(throws: JSONError(path: "plan.v", message: "unsupported plan schema version (expected 1)")) {
            try PlanDocument.parse(.object(object))
        }
    }

    @Test("the infeasible answer carries the tier, the need and the largest node")
    func infeasibleJSON() {
        let reason = Infeasibility(
            policy: .bsdp, tierIndex: 1, tierName: "fog", needBytes: 1.5e9 + 0.25, maxNodeBytes: 1e9, reason: "too big")
        let json = PlanDocument.infeasibleJSON(reason)
        #expect(json["v"] == .int(1))
        #expect(json["infeasible"]?["tier"] == .string("fog"))
        #expect(json["infeasible"]?["need_bytes"] == .int(1_500_000_001))
        #expect(json["infeasible"]?["max_node_bytes"] == .int(1_000_000_000))
        #expect(json["infeasible"]?["reason"] == .string("too big"))
    }
}

@Suite("Re-plan decisions: sustained drift re-plans, noise does not")
struct ReplanMonitorTests {
    let policy = ReplanMonitor.Policy(enterFraction: 0.15, exitFraction: 0.10, sustainSeconds: 10, cooldownSeconds: 30)

    @Test("noise under the threshold never re-plans")
    func noise() {
        var monitor = ReplanMonitor(policy: policy, referenceBottleneckSeconds: 1.0, publishedAt: 0)
        var rng = SeededGenerator(seed: 9)
        for second in 1...600 {
            let live = 1.0 + Double.random(in: -0.12...0.12, using: &rng)
            #expect(!monitor.observe(liveBottleneckSeconds: live, at: Double(second)).shouldReplan)
        }
    }

    @Test("a drift beyond the threshold re-plans only once it has lasted the sustain period")
    func sustainedDrift() {
        var monitor = ReplanMonitor(policy: policy, referenceBottleneckSeconds: 1.0, publishedAt: 0)
        #expect(!monitor.observe(liveBottleneckSeconds: 1.3, at: 100).shouldReplan)
        #expect(!monitor.observe(liveBottleneckSeconds: 1.3, at: 105).shouldReplan)
        let decision = monitor.observe(liveBottleneckSeconds: 1.3, at: 110)
        #expect(decision.shouldReplan)
        if case .replan(let reason) = decision { #expect(reason.contains("30.0%")) }
        monitor.planPublished(bottleneckSeconds: 1.3, at: 110)
        #expect(!monitor.observe(liveBottleneckSeconds: 1.3, at: 111).shouldReplan)
    }

    @Test("a short spike does not re-plan")
    func spike() {
        var monitor = ReplanMonitor(policy: policy, referenceBottleneckSeconds: 1.0, publishedAt: 0)
        #expect(!monitor.observe(liveBottleneckSeconds: 0.5, at: 100).shouldReplan)
        #expect(!monitor.observe(liveBottleneckSeconds: 1.02, at: 105).shouldReplan)
        #expect(!monitor.observe(liveBottleneckSeconds: 0.5, at: 111).shouldReplan)
        #expect(monitor.driftSince == 111)
    }

    @Test("hysteresis: a drift wavering between the exit and enter thresholds keeps counting")
    func hysteresis() {
        var monitor = ReplanMonitor(policy: policy, referenceBottleneckSeconds: 1.0, publishedAt: 0)
        #expect(!monitor.observe(liveBottleneckSeconds: 1.2, at: 100).shouldReplan)
        #expect(!monitor.observe(liveBottleneckSeconds: 1.12, at: 104).shouldReplan)
        #expect(!monitor.observe(liveBottleneckSeconds: 1.18, at: 108).shouldReplan)
        #expect(monitor.observe(liveBottleneckSeconds: 1.13, at: 110).shouldReplan)
    }

    @Test("the cool-down spaces re-plans out; an unserveable plan re-plans at once")
    func cooldownAndMembership() {
        var monitor = ReplanMonitor(policy: policy, referenceBottleneckSeconds: 1.0, publishedAt: 0)
        #expect(!monitor.observe(liveBottleneckSeconds: 2, at: 1).shouldReplan)
        #expect(!monitor.observe(liveBottleneckSeconds: 2, at: 20).shouldReplan)
        #expect(monitor.observe(liveBottleneckSeconds: 2, at: 31).shouldReplan)
        #expect(monitor.observe(liveBottleneckSeconds: 1, currentPlanServeable: false, at: 2).shouldReplan)
    }
}
