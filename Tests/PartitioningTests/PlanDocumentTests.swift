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

@Suite("Re-plan decisions: margin, dwell, no return, rollback")
struct ReplanControllerTests {
    let policy = ReplanController.Policy(
        marginFraction: 0.2, dwellSeconds: 60, returnMarginFraction: 0.5, returnMemorySeconds: 600, verifySeconds: 30)

    static func option(_ cuts: String, _ seconds: Double) -> ReplanController.Option {
        ReplanController.Option(cuts: cuts, bottleneckSeconds: seconds)
    }

    @Test("a gain below the margin, or one that does not last the dwell time, never switches")
    func marginAndDwell() {
        var controller = ReplanController(policy: policy, publishedAt: 0)
        var rng = SeededGenerator(seed: 9)
        for second in 1...600 {
            // Candidates up to 18% better, never 20%.
            let candidate = 1.0 - Double.random(in: 0...0.18, using: &rng)
            #expect(!controller.observe(current: Self.option("a", 1), candidate: Self.option("b", candidate), at: Double(second)).changesPlan)
        }
        // 40% better for 59 s, then gone: no switch.
        for second in 601...659 {
            #expect(!controller.observe(current: Self.option("a", 1), candidate: Self.option("b", 0.6), at: Double(second)).changesPlan)
        }
        #expect(!controller.observe(current: Self.option("a", 1), candidate: Self.option("b", 0.9), at: 660).changesPlan)
        #expect(controller.gainSince == nil)
        // 40% better for the dwell time: one switch, with the figures.
        var switched: [String] = []
        for second in 661...730 {
            if case .switchTo(let reason) = controller.observe(current: Self.option("a", 1), candidate: Self.option("b", 0.6), at: Double(second)) {
                switched.append(reason)
                controller.published(replacing: Self.option("a", 1), predictedSeconds: 0.6, at: Double(second))
            }
        }
        #expect(switched.count == 1)
        #expect(switched.first?.contains("1.0 s → 600.0 ms per request, 40.0% better (needs 20.0%)") == true)
    }

    @Test("a plan younger than the dwell time is not replaced, and abandoned cuts need the larger margin")
    func noReturn() {
        var controller = ReplanController(policy: policy, publishedAt: 0)
        controller.published(replacing: Self.option("a", 1), predictedSeconds: 0.7, at: 100)
        // Going back to "a" at 30% better is below the 50% return margin, however long it lasts.
        for second in 101...400 {
            let decision = controller.observe(current: Self.option("b", 1), candidate: Self.option("a", 0.7), at: Double(second))
            #expect(!decision.changesPlan)
        }
        // Another cut at 30% better switches, but not before the plan is a dwell time old.
        controller.published(replacing: Self.option("x", 1), predictedSeconds: 0.7, at: 400)
        var at: Double?
        for second in 401...520 where at == nil {
            if controller.observe(current: Self.option("b", 1), candidate: Self.option("c", 0.7), at: Double(second)).changesPlan {
                at = Double(second)
            }
        }
        #expect(at == 461)
    }

    @Test("a switch that realises worse than the cuts it replaced is rolled back once; one that holds is kept")
    func rollback() {
        var controller = ReplanController(policy: policy, publishedAt: 0)
        controller.published(replacing: Self.option("a", 1), predictedSeconds: 0.6, at: 100)
        // Under the new cuts the figures moved: "b" realises 1.1 s where "a" would give 0.9 s.
        var decisions: [ReplanController.Decision] = []
        for second in 101...200 {
            decisions.append(controller.observe(
                current: Self.option("b", 1.1), candidate: Self.option("b", 1.1), replaced: Self.option("a", 0.9), at: Double(second)))
        }
        let rollbacks = decisions.filter { if case .rollBack(let cuts, _) = $0 { cuts == "a" } else { false } }
        #expect(rollbacks.count == 1)
        guard case .rollBack(_, let reason) = decisions[29] else {
            Issue.record("expected the rollback at the check, 30 s after the switch")
            return
        }
        #expect(reason.contains("predicted 600.0 ms, realised 1.1 s per request; the replaced cuts would give 900.0 ms"))

        var kept = ReplanController(policy: policy, publishedAt: 0)
        kept.published(replacing: Self.option("a", 1), predictedSeconds: 0.6, at: 100)
        for second in 101...200 {
            #expect(!kept.observe(current: Self.option("b", 0.62), candidate: Self.option("b", 0.62), replaced: Self.option("a", 1), at: Double(second)).changesPlan)
        }
    }

    @Test("a plan with a stage no live node can serve is replaced at once")
    func unserveable() {
        var controller = ReplanController(policy: policy, publishedAt: 0)
        #expect(controller.observe(current: nil, candidate: Self.option("b", 2), at: 1).changesPlan)
    }
}
