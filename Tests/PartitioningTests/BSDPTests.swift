import Foundation
import JSON
import Profiles
import Testing

import Partitioning

@Suite("BSDP finds the exact optimum of the §6 objective")
struct BSDPTests {
    @Test("every case of the shared planner fixture: same bottleneck and idle latency, infeasible refused")
    func sharedFixture() throws {
        let document = try PlannerFiles.json(at: PlannerFiles.fixtureURL("planner-cases.json"))
        let cases = try #require(document["cases"]?.arrayValue)
        #expect(cases.count >= 200)
        var feasibleCount = 0
        for (index, entry) in cases.enumerated() {
            let model = try ModelProfile.parse(entry["profile"] ?? .null)
            let topology = try Topology.parse(entry["topology"] ?? .null)
            let workload = try Workload.parse(entry["workload"] ?? .null)
            let outcome = Planner.plan(model: model, topology: topology, workload: workload, policy: .bsdp)
            let expected = try #require(entry["expected"])
            if expected["infeasible"]?.boolValue == true {
                #expect(outcome.partition == nil, "case \(index) should be infeasible")
                continue
            }
            feasibleCount += 1
            let partition = try #require(outcome.partition, "case \(index): \(String(describing: outcome.infeasibility))")
            let bottleneck = try #require(expected["bottleneck_s"]?.doubleValue)
            let idle = try #require(expected["idle_latency_s"]?.doubleValue)
            #expect(relativelyClose(partition.bottleneckSeconds, bottleneck, 1e-6), "case \(index) bottleneck")
            #expect(relativelyClose(partition.idleLatencySeconds, idle, 1e-6), "case \(index) idle latency")
            #expect(partition.stages.count == topology.tiers.count, "case \(index): every tier non-empty")
        }
        #expect(feasibleCount > 150)
    }

    @Test("equals brute force on 4,000 random instances of up to 20 blocks")
    func bruteForce() {
        var rng = SeededGenerator(seed: 20_260_125)
        var compared = 0
        var infeasible = 0
        for trial in 0..<4000 {
            let tiers = Int.random(in: 1...4, using: &rng)
            let blocks = Int.random(in: 1...(tiers >= 4 ? 16 : 20), using: &rng)
            let instance = RandomInstances.make(blocks: blocks, tiers: tiers, uniform: trial % 5 == 0, using: &rng)
            let outcome = instance.plan()
            guard let expected = BruteForce.best(instance) else {
                #expect(outcome.partition == nil, "trial \(trial): brute force found no partition")
                infeasible += 1
                continue
            }
            guard let partition = outcome.partition else {
                Issue.record("trial \(trial): BSDP refused a feasible instance: \(String(describing: outcome.infeasibility))")
                continue
            }
            compared += 1
            #expect(relativelyClose(partition.bottleneckSeconds, expected.bottleneckSeconds, 1e-9), "trial \(trial)")
            #expect(relativelyClose(partition.idleLatencySeconds, expected.idleLatencySeconds, 1e-9), "trial \(trial)")
        }
        #expect(compared >= 2000)
        #expect(infeasible > 0)
    }

    @Test("among exact ties the cuts are the lexicographically smallest")
    func lexicographicTies() throws {
        // Blocks that cost nothing make every partition tie on bottleneck and idle latency: the
        // earliest cuts win.
        let zero = LayerCost(flopsPerToken: 0, weightBytes: 0, kvBytesPerToken: 0, activationBytesPerToken: 0)
        let model = ModelProfile(name: "zero", blocks: Array(repeating: zero, count: 5), embedding: zero, head: zero)
        let node = DeviceFigures(flops: 1e12, memoryBandwidthBytesPerSecond: nil, memoryBytes: 1e9)
        let topology = Topology(tiers: [
            .init(name: "a", nodes: [.init(id: "a1", figures: node)], linkToNext: .init(bandwidthBytesPerSecond: 1e9, latencySeconds: 0)),
            .init(name: "b", nodes: [.init(id: "b1", figures: node)], linkToNext: .init(bandwidthBytesPerSecond: 1e9, latencySeconds: 0)),
            .init(name: "c", nodes: [.init(id: "c1", figures: node)]),
        ])
        let outcome = Planner.plan(model: model, topology: topology, workload: .default, policy: .bsdp)
        #expect(try #require(outcome.partition).cuts == [1, 2])
    }

    @Test("equals a straightforward O(T·N²) min-max DP on instances of up to 200 blocks")
    func minMaxDP() {
        var rng = SeededGenerator(seed: 77)
        var compared = 0
        for trial in 0..<60 {
            let tiers = Int.random(in: 1...6, using: &rng)
            let blocks = Int.random(in: 20...200, using: &rng)
            let instance = RandomInstances.make(blocks: blocks, tiers: tiers, uniform: trial % 6 == 0, using: &rng)
            let outcome = instance.plan()
            let expected = MinMaxDP.bottleneck(instance)
            guard let expected else {
                #expect(outcome.partition == nil, "trial \(trial): the DP found no partition")
                continue
            }
            guard let partition = outcome.partition else {
                Issue.record("trial \(trial): BSDP refused a feasible instance")
                continue
            }
            compared += 1
            #expect(relativelyClose(partition.bottleneckSeconds, expected, 1e-9), "trial \(trial)")
        }
        #expect(compared >= 30)
    }

    @Test("every stage fits the memory of each node it lists, and lists every node that fits")
    func memoryRespected() {
        var rng = SeededGenerator(seed: 5)
        for trial in 0..<300 {
            let instance = RandomInstances.make(
                blocks: Int.random(in: 4...40, using: &rng), tiers: Int.random(in: 1...4, using: &rng), uniform: false,
                using: &rng)
            for policy in PartitionPolicy.allCases {
                guard let partition = instance.plan(policy).partition else { continue }
                for stage in partition.stages {
                    let tier = instance.topology.tiers[stage.tierIndex]
                    let fitting = tier.nodes.filter { $0.memoryBytes >= stage.memoryNeedBytes }.map(\.id)
                    #expect(!fitting.isEmpty)
                    #expect(stage.nodes == fitting, "trial \(trial) \(policy)")
                    #expect(stage.memoryNeedBytes <= stage.memoryLimitBytes)
                }
                let covered = partition.stages.reduce(0) { $0 + $1.blockCount }
                #expect(covered == instance.model.blocks.count)
            }
        }
    }

    @Test("more capacity never worsens the bottleneck")
    func monotonicity() {
        var rng = SeededGenerator(seed: 11)
        for trial in 0..<300 {
            let instance = RandomInstances.make(
                blocks: Int.random(in: 3...30, using: &rng), tiers: Int.random(in: 1...4, using: &rng), uniform: false,
                using: &rng)
            guard let before = instance.plan().partition else { continue }
            var better = instance
            let tier = Int.random(in: 0..<instance.topology.tiers.count, using: &rng)
            switch trial % 5 {
            case 0: better.topology.tiers[tier].nodes[0].figures.flops *= 1.5
            case 1: better.topology.tiers[tier].nodes[0].figures.memoryBytes *= 2
            case 2:
                var extra = instance.topology.tiers[tier].nodes[0]
                extra.id = "extra"
                better.topology.tiers[tier].nodes.append(extra)
            case 3:
                if better.topology.tiers[tier].linkToNext != nil {
                    better.topology.tiers[tier].linkToNext?.bandwidthBytesPerSecond *= 3
                }
            default:
                if let bandwidth = instance.topology.tiers[tier].nodes[0].memoryBandwidthBytesPerSecond {
                    better.topology.tiers[tier].nodes[0].figures.memoryBandwidthBytesPerSecond = bandwidth * 2
                }
            }
            guard let after = better.plan().partition else {
                Issue.record("trial \(trial): more capacity made the instance infeasible")
                continue
            }
            #expect(after.bottleneckSeconds <= before.bottleneckSeconds * (1 + 1e-12), "trial \(trial)")
        }
    }

    @Test("infeasible instances name the tier, the memory it needs and the largest it has")
    func infeasibleReason() throws {
        let block = LayerCost(flopsPerToken: 1e9, weightBytes: 1e9, kvBytesPerToken: 0, activationBytesPerToken: 4096)
        let none = LayerCost(flopsPerToken: 0, weightBytes: 0, kvBytesPerToken: 0, activationBytesPerToken: 4096)
        let model = ModelProfile(name: "m", blocks: Array(repeating: block, count: 4), embedding: none, head: none)
        let small = DeviceFigures(flops: 1e12, memoryBandwidthBytesPerSecond: nil, memoryBytes: 0.5e9)
        let large = DeviceFigures(flops: 1e12, memoryBandwidthBytesPerSecond: nil, memoryBytes: 8e9)
        let topology = Topology(tiers: [
            .init(name: "edge", nodes: [.init(id: "e", figures: large)], linkToNext: .init(bandwidthBytesPerSecond: 1e9, latencySeconds: 0)),
            .init(name: "fog", nodes: [.init(id: "f", figures: small)], linkToNext: .init(bandwidthBytesPerSecond: 1e9, latencySeconds: 0)),
            .init(name: "cloud", nodes: [.init(id: "c", figures: large)]),
        ])
        let outcome = Planner.plan(model: model, topology: topology, workload: .default, policy: .bsdp)
        let reason = try #require(outcome.infeasibility)
        #expect(reason.tierName == "fog")
        #expect(reason.needBytes == 1e9)
        #expect(reason.maxNodeBytes == 0.5e9)
        #expect(reason.reason.contains("fog"))

        let tooFewBlocks = ModelProfile(name: "m", blocks: [block, block], embedding: none, head: none)
        let starved = Planner.plan(model: tooFewBlocks, topology: topology, workload: .default, policy: .bsdp)
        #expect(starved.infeasibility?.tierName == "cloud")
    }
}

/// The textbook min-max DP, written from §6 independently of the planner's cost code:
/// best[j][b] = min over a of max(best[j-1][a], link(j-1, a), tier(j, a, b)).
enum MinMaxDP {
    static func bottleneck(_ instance: Instance) -> Double? {
        let blocks = instance.model.blocks
        let tiers = instance.topology.tiers
        let w = instance.workload
        let (n, t) = (blocks.count, tiers.count)
        guard n >= t else { return nil }
        let p = Double(w.promptTokens)
        let o = Double(w.outputTokens)
        func tierSeconds(_ j: Int, _ a: Int, _ b: Int) -> Double? {
            var prefill = 0.0
            var decode = 0.0
            var streamed = 0.0
            var held = 0.0
            var kv = 0.0
            for block in blocks[a..<b] {
                prefill += block.prefillFlopsPerToken
                decode += block.decodeFlopsPerToken
                streamed += block.weightBytes
                held += block.weightBytes
                kv += block.kvBytesPerToken
            }
            if j == 0 {
                let e = instance.model.embedding
                prefill += e.prefillFlopsPerToken
                decode += e.decodeFlopsPerToken
                held += e.weightBytes
                kv += e.kvBytesPerToken
            }
            if j == t - 1 {
                let h = instance.model.head
                prefill += h.prefillFlopsPerToken
                decode += h.decodeFlopsPerToken
                streamed += h.weightBytes
                held += h.weightBytes
                kv += h.kvBytesPerToken
            }
            let need = held + Double(w.context) * Double(w.concurrency) * kv
            var rate = 0.0
            for node in tiers[j].nodes where node.memoryBytes >= need {
                var pre = prefill / node.flops
                var dec = decode / node.flops
                if let bandwidth = node.memoryBandwidthBytesPerSecond {
                    pre = max(pre, streamed / (Double(w.prefillChunk) * bandwidth))
                    dec = max(dec, streamed / (Double(w.decodeBatch) * bandwidth))
                }
                rate += 1 / (p * pre + o * dec)
            }
            return rate > 0 ? 1 / rate : nil
        }
        var best = [Double](repeating: .infinity, count: n + 1)
        best[0] = 0
        for j in 0..<t {
            var next = [Double](repeating: .infinity, count: n + 1)
            for b in (j + 1)...n {
                for a in j..<b where best[a].isFinite {
                    guard let seconds = tierSeconds(j, a, b) else { continue }
                    var value = max(best[a], seconds)
                    if j > 0, let link = tiers[j - 1].linkToNext {
                        value = max(value, (p + o) * blocks[a - 1].activationBytesPerToken / link.bandwidthBytesPerSecond)
                    }
                    next[b] = min(next[b], value)
                }
            }
            best = next
        }
        return best[n].isFinite ? best[n] : nil
    }
}
