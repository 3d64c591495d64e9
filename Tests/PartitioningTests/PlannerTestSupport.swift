import Foundation
import JSON
import Profiles
import Testing

import Partitioning

/// Files the planner tests read: the shared fixtures beside the repository, and the examples.
enum PlannerFiles {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `HYPERION_FIXTURES`, else the repository's `fixtures/`.
    static func fixtureURL(_ name: String) -> URL {
        if let directory = ProcessInfo.processInfo.environment["HYPERION_FIXTURES"] {
            return URL(fileURLWithPath: directory).appendingPathComponent(name)
        }
        return packageRoot.appendingPathComponent("fixtures/\(name)")
    }

    static func json(at url: URL) throws -> JSONValue {
        try JSONValue.parse(String(contentsOf: url, encoding: .utf8))
    }
}

/// A seeded SplitMix64, so random instances are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One planning problem.
struct Instance {
    var model: ModelProfile
    var topology: Topology
    var workload: Workload

    func plan(_ policy: PartitionPolicy = .bsdp, requireEveryTier: Bool = false) -> PlanOutcome {
        Planner.plan(model: model, topology: topology, workload: workload, policy: policy, requireEveryTier: requireEveryTier)
    }

    var costs: CostModel { CostModel(model: model, topology: topology, workload: workload) }
}

/// Random instances with heterogeneous blocks, nodes and links, memory tight enough that some
/// nodes and some instances do not fit, and (with `uniform`) identical blocks and nodes so that
/// many partitions tie and the tie-breaks decide.
enum RandomInstances {
    static func make(blocks: Int, tiers: Int, uniform: Bool, using rng: inout SeededGenerator) -> Instance {
        func pick(_ range: ClosedRange<Double>) -> Double { Double.random(in: range, using: &rng) }
        func logUniform(_ low: Double, _ high: Double) -> Double { exp(pick(log(low)...log(high))) }
        let sameBlock = LayerCost(
            prefillFlopsPerToken: 2e9, decodeFlopsPerToken: 2.5e9, weightBytes: 4e8, kvBytesPerToken: 8e4,
            activationBytesPerToken: 8192)
        var blockCosts: [LayerCost] = []
        for _ in 0..<blocks {
            if uniform {
                blockCosts.append(sameBlock)
            } else {
                let flops = logUniform(1e8, 1e10)
                blockCosts.append(
                    LayerCost(
                        prefillFlopsPerToken: flops, decodeFlopsPerToken: flops * pick(1...1.5),
                        weightBytes: logUniform(1e7, 2e9), kvBytesPerToken: Bool.random(using: &rng) ? 0 : logUniform(1e3, 2e5),
                        activationBytesPerToken: [2048, 4096, 10240].randomElement(using: &rng) ?? 4096))
            }
        }
        let embedding = LayerCost(
            flopsPerToken: uniform ? 0 : logUniform(1e6, 1e9), weightBytes: logUniform(1e7, 1e9), kvBytesPerToken: 0,
            activationBytesPerToken: 4096)
        let head = LayerCost(
            flopsPerToken: logUniform(1e7, 5e9), weightBytes: logUniform(1e7, 1e9), kvBytesPerToken: 0,
            activationBytesPerToken: 4)
        let model = ModelProfile(name: "random", blocks: blockCosts, embedding: embedding, head: head)
        let totalBytes = model.totalWeightBytes
        var tierList: [Topology.Tier] = []
        var nodeNumber = 0
        for tier in 0..<tiers {
            let nodeCount = Int.random(in: 1...3, using: &rng)
            var nodes: [Topology.Node] = []
            let sameFigures = DeviceFigures(flops: 1e13, memoryBandwidthBytesPerSecond: 5e11, memoryBytes: totalBytes)
            for _ in 0..<nodeCount {
                let figures =
                    uniform
                    ? sameFigures
                    : DeviceFigures(
                        flops: logUniform(1e11, 1e14),
                        memoryBandwidthBytesPerSecond: Bool.random(using: &rng) ? logUniform(5e10, 2e12) : nil,
                        memoryBytes: totalBytes * pick(0.15...1.2))
                nodes.append(Topology.Node(id: "n\(nodeNumber)", figures: figures))
                nodeNumber += 1
            }
            let link =
                tier == tiers - 1
                ? nil
                : Topology.Link(
                    bandwidthBytesPerSecond: uniform ? 1e8 : logUniform(1e6, 1e10),
                    latencySeconds: uniform ? 0.005 : pick(0...0.05))
            tierList.append(Topology.Tier(name: "t\(tier)", nodes: nodes, linkToNext: link))
        }
        let workload = Workload(
            promptTokens: [1, 32, 200, 1000].randomElement(using: &rng) ?? 32,
            outputTokens: [0, 1, 16, 128].randomElement(using: &rng) ?? 16,
            prefillChunk: [1, 64, 512].randomElement(using: &rng) ?? 64,
            decodeBatch: [1, 4, 16].randomElement(using: &rng) ?? 1,
            context: [1, 512, 2048].randomElement(using: &rng) ?? 512,
            concurrency: [1, 4].randomElement(using: &rng) ?? 1)
        return Instance(model: model, topology: Topology(tiers: tierList), workload: workload)
    }
}

/// Every partition into contiguous ranges, scored by the shared objective: the least bottleneck,
/// then the least idle latency among those within 1e-9 of it (docs/design.md §6). `best` gives
/// every tier a non-empty range; `bestWithEmptyTiers` also tries every way of leaving tiers out.
enum BruteForce {
    static func bestWithEmptyTiers(_ instance: Instance) -> Partition? {
        let costs = instance.costs
        let n = costs.blockCount
        let t = costs.tierCount
        var feasible: [Partition] = []
        // Every non-decreasing vector of tier ends in 0...n whose last entry is n.
        var ends = [Int](repeating: 0, count: t)
        ends[t - 1] = n
        while true {
            if case .plan(let candidate) = costs.evaluate(ends: ends) { feasible.append(candidate) }
            var index = t - 2
            while index >= 0, ends[index] == n { index -= 1 }
            if index < 0 { break }
            ends[index] += 1
            for later in (index + 1)..<(t - 1) { ends[later] = ends[index] }
        }
        guard let least = feasible.map(\.bottleneckSeconds).min() else { return nil }
        return feasible.filter { $0.bottleneckSeconds <= least + 1e-9 * least }
            .min { $0.idleLatencySeconds < $1.idleLatencySeconds }
    }

    static func best(_ instance: Instance) -> Partition? {
        let costs = instance.costs
        let n = costs.blockCount
        let t = costs.tierCount
        guard n >= t else { return nil }
        var feasible: [Partition] = []
        var cuts = Array(1..<t)
        while true {
            if case .plan(let candidate) = costs.evaluate(cuts: cuts) { feasible.append(candidate) }
            // Next combination of t-1 cuts from 1..<n, in lexicographic order.
            var index = t - 2
            while index >= 0, cuts[index] == n - (t - 1) + index { index -= 1 }
            if index < 0 { break }
            cuts[index] += 1
            var later = index + 1
            while later < t - 1 {
                cuts[later] = cuts[later - 1] + 1
                later += 1
            }
        }
        guard let least = feasible.map(\.bottleneckSeconds).min() else { return nil }
        return feasible.filter { $0.bottleneckSeconds <= least + 1e-9 * least }
            .min { $0.idleLatencySeconds < $1.idleLatencySeconds }
    }
}

func relativelyClose(_ a: Double, _ b: Double, _ tolerance: Double) -> Bool {
    abs(a - b) <= tolerance * max(abs(a), abs(b), 1e-300)
}
