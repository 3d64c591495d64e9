import Foundation
import JSON
import Profiles
import Testing

import Partitioning

@Suite("BSDP finds the exact optimum of the §6 objective")
struct BSDPTests {
    /// Four blocks of 1 GFLOP per token and 4 KB of activations, no embedding or head cost.
    static func fourBlocks(weightBytes: Double) -> ModelProfile {
        let block = LayerCost(flopsPerToken: 1e9, weightBytes: weightBytes, kvBytesPerToken: 0, activationBytesPerToken: 4096)
        let none = LayerCost(flopsPerToken: 0, weightBytes: 0, kvBytesPerToken: 0, activationBytesPerToken: 4096)
        return ModelProfile(name: "m", blocks: Array(repeating: block, count: 4), embedding: none, head: none)
    }

    /// Four 1 GB blocks on edge (8 GB) → fog (0.5 GB: no block fits) → cloud (8 GB).
    static func smallFog(latencies: (Double, Double)) -> (ModelProfile, Topology) {
        let model = fourBlocks(weightBytes: 1e9)
        let small = DeviceFigures(flops: 1e12, memoryBandwidthBytesPerSecond: nil, memoryBytes: 0.5e9)
        let large = DeviceFigures(flops: 1e12, memoryBandwidthBytesPerSecond: nil, memoryBytes: 8e9)
        let topology = Topology(tiers: [
            .init(name: "edge", nodes: [.init(id: "e", figures: large)],
                linkToNext: .init(bandwidthBytesPerSecond: 1e9, latencySeconds: latencies.0)),
            .init(name: "fog", nodes: [.init(id: "f", figures: small)],
                linkToNext: .init(bandwidthBytesPerSecond: 1e9, latencySeconds: latencies.1)),
            .init(name: "cloud", nodes: [.init(id: "c", figures: large)]),
        ])
        return (model, topology)
    }

    @Test("every case of the shared planner fixture, every tier required: same bottleneck and idle latency, infeasible refused")
    func sharedFixture() throws {
        let document = try PlannerFiles.json(at: PlannerFiles.fixtureURL("planner-cases.json"))
        let cases = try #require(document["cases"]?.arrayValue)
        #expect(cases.count >= 200)
        var feasibleCount = 0
        for (index, entry) in cases.enumerated() {
            let model = try ModelProfile.parse(entry["profile"] ?? .null)
            let topology = try Topology.parse(entry["topology"] ?? .null)
            let workload = try Workload.parse(entry["workload"] ?? .null)
            let outcome = Planner.plan(model: model, topology: topology, workload: workload, policy: .bsdp, requireEveryTier: true)
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

    /// Plans `trials` random instances and compares each with `bruteForce`: same bottleneck and
    /// idle latency, infeasible exactly when it finds nothing. Counts what was compared.
    static func compareWithBruteForce(
        seed: UInt64, trials: Int, maxBlocks: (_ tiers: Int) -> Int, requireEveryTier: Bool,
        bruteForce: (Instance) -> Partition?
    ) -> (compared: Int, infeasible: Int, withEmptyTier: Int) {
        var rng = SeededGenerator(seed: seed)
        var counts = (compared: 0, infeasible: 0, withEmptyTier: 0)
        for trial in 0..<trials {
            let tiers = Int.random(in: 1...4, using: &rng)
            let blocks = Int.random(in: 1...maxBlocks(tiers), using: &rng)
            let instance = RandomInstances.make(blocks: blocks, tiers: tiers, uniform: trial % 5 == 0, using: &rng)
            let outcome = instance.plan(requireEveryTier: requireEveryTier)
            guard let expected = bruteForce(instance) else {
                #expect(outcome.partition == nil, "trial \(trial): brute force found no partition")
                if let reason = outcome.infeasibility, reason.needBytes > 0 {
                    #expect(reason.needBytes > reason.maxNodeBytes, "trial \(trial)")
                }
                counts.infeasible += 1
                continue
            }
            guard let partition = outcome.partition else {
                Issue.record("trial \(trial): BSDP refused a feasible instance: \(String(describing: outcome.infeasibility))")
                continue
            }
            counts.compared += 1
            if partition.stages.count < tiers { counts.withEmptyTier += 1 }
            #expect(relativelyClose(partition.bottleneckSeconds, expected.bottleneckSeconds, 1e-9), "trial \(trial)")
            #expect(relativelyClose(partition.idleLatencySeconds, expected.idleLatencySeconds, 1e-9), "trial \(trial)")
            // Leaving tiers out is never worse than the best plan that uses every tier.
            if !requireEveryTier, let every = instance.plan(requireEveryTier: true).partition {
                #expect(partition.bottleneckSeconds <= every.bottleneckSeconds * (1 + 1e-9), "trial \(trial)")
            }
        }
        return counts
    }

    @Test("with every tier required, equals brute force on 4,000 random instances of up to 20 blocks")
    func bruteForce() {
        let counts = Self.compareWithBruteForce(
            seed: 20_260_125, trials: 4000, maxBlocks: { $0 >= 4 ? 16 : 20 }, requireEveryTier: true, bruteForce: BruteForce.best)
        #expect(counts.compared >= 2000)
        #expect(counts.infeasible > 0)
        #expect(counts.withEmptyTier == 0)
    }

    @Test("with tiers allowed to stay empty, equals brute force over every placement on 3,000 random instances")
    func bruteForceWithEmptyTiers() {
        let counts = Self.compareWithBruteForce(
            seed: 20_261_207, trials: 3000, maxBlocks: { $0 >= 4 ? 12 : 18 }, requireEveryTier: false,
            bruteForce: BruteForce.bestWithEmptyTiers)
        #expect(counts.compared >= 1500)
        #expect(counts.infeasible > 0)
        #expect(counts.withEmptyTier >= 500, "only \(counts.withEmptyTier) optima leave a tier empty: the case is barely tested")
    }

    @Test("a tier too small for any block is left empty, and its link carries what passes through")
    func emptyTierPassesThrough() throws {
        let (model, topology) = Self.smallFog(latencies: (0.001, 0.002))
        let workload = Workload.default
        let partition = try #require(Planner.plan(model: model, topology: topology, workload: workload, policy: .bsdp).partition)
        #expect(partition.stages.map(\.tierName) == ["edge", "cloud"])
        #expect(partition.stages.map(\.blockRange) == ["0–1", "2–3"])
        // The edge's activations cross both links, each paying its delay once per step.
        let edge = partition.stages[0]
        let steps = Double(workload.prefillSteps + workload.outputTokens)
        let tokens = Double(workload.promptTokens + workload.outputTokens)
        #expect(relativelyClose(edge.linkLatencySeconds, 0.003, 1e-12))
        #expect(relativelyClose(edge.linkSeconds, 2 * tokens * 4096 / 1e9, 1e-12))
        let compute = partition.stages.reduce(0) { $0 + $1.fastestNodeSeconds }
        let expectedIdle = compute + edge.linkSeconds + steps * 0.003 + Double(workload.outputTokens) * 0.003
        #expect(relativelyClose(partition.idleLatencySeconds, expectedIdle, 1e-12))
    }

    @Test("a plan that starts past the first tier pays the way in (token ids) and the way back over every link")
    func entryAndReturnPaths() throws {
        let model = Self.fourBlocks(weightBytes: 1e8)
        let slow = DeviceFigures(flops: 1e9, memoryBandwidthBytesPerSecond: nil, memoryBytes: 8e9)
        let fast = DeviceFigures(flops: 1e15, memoryBandwidthBytesPerSecond: nil, memoryBytes: 8e9)
        let topology = Topology(tiers: [
            .init(name: "edge", nodes: [.init(id: "e", figures: slow)], linkToNext: .init(bandwidthBytesPerSecond: 1e6, latencySeconds: 0.01)),
            .init(name: "cloud", nodes: [.init(id: "c", figures: fast)]),
        ])
        let workload = Workload.default
        let costs = CostModel(model: model, topology: topology, workload: workload)
        let partition = try #require(costs.evaluate(ends: [0, 4]).partition)
        #expect(partition.stages.map(\.tierName) == ["cloud"])
        let tokens = Double(workload.promptTokens + workload.outputTokens)
        let steps = Double(workload.prefillSteps + workload.outputTokens)
        let entry = tokens * 4 / 1e6 + steps * 0.01
        let back = Double(workload.outputTokens) * 0.01
        #expect(relativelyClose(partition.idleLatencySeconds, partition.stages[0].fastestNodeSeconds + entry + back, 1e-12))
        #expect(partition.bottleneckSeconds >= tokens * 4 / 1e6)
        // BSDP finds it: the slow edge is left out, and the paper's formulation cannot do that.
        let planned = try #require(Planner.plan(model: model, topology: topology, workload: workload, policy: .bsdp).partition)
        #expect(planned.stages.map(\.tierName) == ["cloud"])
        let every = try #require(Planner.plan(model: model, topology: topology, workload: workload, policy: .bsdp, requireEveryTier: true).partition)
        #expect(every.stages.count == 2)
        #expect(every.bottleneckSeconds > 10 * planned.bottleneckSeconds)
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
        let outcome = Planner.plan(model: model, topology: topology, workload: .default, policy: .bsdp, requireEveryTier: true)
        #expect(try #require(outcome.partition).cuts == [1, 2])
        // With empty tiers allowed, the first tier takes one block (token ids to a later tier
        // would cost bytes; these activations cost none) and the second none: the smallest ends.
        let free = try #require(Planner.plan(model: model, topology: topology, workload: .default, policy: .bsdp).partition)
        #expect(free.stages.map(\.tierName) == ["a", "c"])
        #expect(free.stages.map(\.blockRange) == ["0–0", "1–4"])
    }

    @Test("with every tier required, equals a straightforward O(T·N²) min-max DP on instances of up to 200 blocks")
    func minMaxDP() {
        var rng = SeededGenerator(seed: 77)
        var compared = 0
        for trial in 0..<60 {
            let tiers = Int.random(in: 1...6, using: &rng)
            let blocks = Int.random(in: 20...200, using: &rng)
            let instance = RandomInstances.make(blocks: blocks, tiers: tiers, uniform: trial % 6 == 0, using: &rng)
            let outcome = instance.plan(requireEveryTier: true)
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
        let (model, topology) = Self.smallFog(latencies: (0, 0))
        let block = model.blocks[0]
        let none = model.embedding
        let outcome = Planner.plan(model: model, topology: topology, workload: .default, policy: .bsdp, requireEveryTier: true)
        let reason = try #require(outcome.infeasibility)
        #expect(reason.tierName == "fog")
        #expect(reason.needBytes == 1e9)
        #expect(reason.maxNodeBytes == 0.5e9)
        #expect(reason.reason.contains("fog"))

        let tooFewBlocks = ModelProfile(name: "m", blocks: [block, block], embedding: none, head: none)
        let starved = Planner.plan(model: tooFewBlocks, topology: topology, workload: .default, policy: .bsdp, requireEveryTier: true)
        #expect(starved.infeasibility?.tierName == "cloud")
        #expect(Planner.plan(model: tooFewBlocks, topology: topology, workload: .default, policy: .bsdp).partition != nil)

        // Without the requirement: a block larger than every node names the largest tier.
        let huge = LayerCost(flopsPerToken: 1e9, weightBytes: 9e9, kvBytesPerToken: 0, activationBytesPerToken: 4096)
        let tooLarge = ModelProfile(name: "m", blocks: [block, huge, block], embedding: none, head: none)
        let refused = try #require(Planner.plan(model: tooLarge, topology: topology, workload: .default, policy: .bsdp).infeasibility)
        #expect(refused.needBytes == 9e9)
        #expect(refused.maxNodeBytes == 8e9)
        #expect(refused.reason.contains("block 1"))
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
