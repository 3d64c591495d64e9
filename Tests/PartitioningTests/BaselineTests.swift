import Profiles
import Testing

import Partitioning

@Suite("GPipe and HEFT baselines follow §6 and are never repaired")
struct BaselineTests {
    static let unitBlock = LayerCost(flopsPerToken: 1e6, weightBytes: 1e9, kvBytesPerToken: 0, activationBytesPerToken: 1000)
    static let nothing = LayerCost(flopsPerToken: 0, weightBytes: 0, kvBytesPerToken: 0, activationBytesPerToken: 1000)

    static func node(_ id: String, flops: Double, memory: Double) -> Topology.Node {
        Topology.Node(id: id, figures: DeviceFigures(flops: flops, memoryBandwidthBytesPerSecond: nil, memoryBytes: memory))
    }

    static func twoTiers(edgeMemory: Double, cloudMemory: Double, latency: Double = 1e-4) -> Topology {
        Topology(tiers: [
            .init(name: "edge", nodes: [node("e1", flops: 1e9, memory: edgeMemory)],
                linkToNext: .init(bandwidthBytesPerSecond: 1e7, latencySeconds: latency)),
            .init(name: "cloud", nodes: [node("c1", flops: 4e9, memory: cloudMemory)]),
        ])
    }

    @Test("GPipe gives equal counts, the remainder to the earliest tiers")
    func gpipeCounts() throws {
        let big = DeviceFigures(flops: 1e12, memoryBandwidthBytesPerSecond: nil, memoryBytes: 1e12)
        let link = Topology.Link(bandwidthBytesPerSecond: 1e9, latencySeconds: 0)
        let topology = Topology(tiers: [
            .init(name: "a", nodes: [.init(id: "a", figures: big)], linkToNext: link),
            .init(name: "b", nodes: [.init(id: "b", figures: big)], linkToNext: link),
            .init(name: "c", nodes: [.init(id: "c", figures: big)]),
        ])
        for (blocks, counts) in [(10, [4, 3, 3]), (11, [4, 4, 3]), (12, [4, 4, 4]), (3, [1, 1, 1]), (2, [1, 1])] {
            let model = ModelProfile(
                name: "m", blocks: Array(repeating: Self.unitBlock, count: blocks), embedding: Self.nothing, head: Self.nothing)
            let partition = try #require(
                Planner.plan(model: model, topology: topology, workload: .default, policy: .gpipe).partition)
            #expect(partition.stages.map(\.blockCount) == counts, "\(blocks) blocks")
            #expect(partition.stages.first?.firstBlock == 0)
            #expect(partition.stages.last?.lastBlock == blocks - 1)
        }
    }

    @Test("GPipe reports a tier that cannot hold its equal share as infeasible")
    func gpipeInfeasible() throws {
        let model = ModelProfile(
            name: "m", blocks: Array(repeating: Self.unitBlock, count: 4), embedding: Self.nothing, head: Self.nothing)
        // Edge holds one block, its equal share is two: no repair, infeasible.
        let outcome = Planner.plan(
            model: model, topology: Self.twoTiers(edgeMemory: 1.5e9, cloudMemory: 1e12), workload: .default,
            policy: .gpipe)
        let reason = try #require(outcome.infeasibility)
        #expect(reason.tierName == "edge")
        #expect(reason.needBytes == 2e9)
        #expect(reason.maxNodeBytes == 1.5e9)
        // BSDP on the same instance, every tier required, gives the edge one block.
        let bsdp = try #require(
            Planner.plan(model: model, topology: Self.twoTiers(edgeMemory: 1.5e9, cloudMemory: 1e12), workload: .default,
                policy: .bsdp, requireEveryTier: true).partition)
        #expect(bsdp.cuts == [1])
    }

    /// Blocks of 1 GB (block 0: 3 GB) and 1 MFLOP per token; the edge does 1 GFLOP/s (1 ms per block), the
    /// cloud 4 GFLOP/s (0.25 ms); crossing costs 0.1 ms latency + 1000 B / 10 MB/s = 0.2 ms.
    @Test("HEFT, worked by hand: block 0 too big for the cloud stays on the edge, the rest move up")
    func heftHandWorked() throws {
        var blocks = Array(repeating: Self.unitBlock, count: 3)
        blocks[0].weightBytes = 3e9
        let model = ModelProfile(name: "m", blocks: blocks, embedding: Self.nothing, head: Self.nothing)
        // Block 0: the cloud (2.5 GB) cannot hold 3 GB → edge, finish 1 ms.
        // Block 1: edge 1 + 1 = 2 ms; cloud 1 + 0.2 + 0.25 = 1.45 ms → cloud.
        // Block 2: cloud only (no going back), 2 GB fits in 2.5 GB → finish 1.7 ms.
        let partition = try #require(
            Planner.plan(
                model: model, topology: Self.twoTiers(edgeMemory: 10e9, cloudMemory: 2.5e9), workload: .default,
                policy: .heft
            ).partition)
        #expect(partition.stages.map(\.tierName) == ["edge", "cloud"])
        #expect(partition.cuts == [1])
    }

    @Test("HEFT, worked by hand: everything fits the fastest tier, so the edge is skipped")
    func heftSkipsTier() throws {
        let model = ModelProfile(
            name: "m", blocks: Array(repeating: Self.unitBlock, count: 3), embedding: Self.nothing, head: Self.nothing)
        // Block 0: edge 1 ms, cloud 0.25 ms (no link before the first block) → cloud; then the cloud
        // is always earliest.
        let partition = try #require(
            Planner.plan(
                model: model, topology: Self.twoTiers(edgeMemory: 10e9, cloudMemory: 10e9), workload: .default,
                policy: .heft
            ).partition)
        #expect(partition.stages.map(\.tierName) == ["cloud"])
        #expect(partition.stages.first?.holdsEmbedding == true)
        #expect(partition.stages.first?.linkSeconds == 0)
    }

    @Test("HEFT, worked by hand: a slow link keeps blocks on the edge")
    func heftSlowLink() throws {
        var blocks = Array(repeating: Self.unitBlock, count: 3)
        blocks[0].weightBytes = 3e9
        let model = ModelProfile(name: "m", blocks: blocks, embedding: Self.nothing, head: Self.nothing)
        // Latency 5 ms: block 1 on the cloud finishes at 1 + 5.1 + 0.25 > 2 ms on the edge, and so on.
        let partition = try #require(
            Planner.plan(
                model: model, topology: Self.twoTiers(edgeMemory: 10e9, cloudMemory: 2.5e9, latency: 5e-3),
                workload: .default, policy: .heft
            ).partition)
        #expect(partition.stages.map(\.tierName) == ["edge"])
        #expect(partition.stages.first?.blockCount == 3)
    }

    @Test("HEFT that runs out of room on its last tier is infeasible, not repaired")
    func heftInfeasible() throws {
        let model = ModelProfile(
            name: "m", blocks: Array(repeating: Self.unitBlock, count: 3), embedding: Self.nothing, head: Self.nothing)
        // The cloud takes blocks 0 and 1 (2 GB) greedily, then cannot hold block 2 and cannot go back.
        let outcome = Planner.plan(
            model: model, topology: Self.twoTiers(edgeMemory: 10e9, cloudMemory: 2.5e9), workload: .default,
            policy: .heft)
        let reason = try #require(outcome.infeasibility)
        #expect(reason.tierName == "cloud")
        #expect(reason.needBytes == 3e9)
        #expect(reason.maxNodeBytes == 2.5e9)
        // BSDP finds the feasible split.
        #expect(
            Planner.plan(
                model: model, topology: Self.twoTiers(edgeMemory: 10e9, cloudMemory: 2.5e9), workload: .default,
                policy: .bsdp
            ).partition != nil)
    }

    @Test("a baseline plan never beats BSDP's bottleneck")
    func baselinesNotBetter() {
        var rng = SeededGenerator(seed: 3)
        for _ in 0..<300 {
            let instance = RandomInstances.make(
                blocks: Int.random(in: 3...30, using: &rng), tiers: Int.random(in: 1...4, using: &rng), uniform: false,
                using: &rng)
            guard let bsdp = instance.plan(.bsdp).partition else { continue }
            for policy in [PartitionPolicy.gpipe, .heft] {
                // A baseline that uses every tier is a candidate BSDP considered.
                if let other = instance.plan(policy).partition, other.stages.count == instance.topology.tiers.count {
                    #expect(bsdp.bottleneckSeconds <= other.bottleneckSeconds * (1 + 1e-9))
                }
            }
        }
    }
}
