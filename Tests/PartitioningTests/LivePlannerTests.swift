import Profiles
import Testing

import Partitioning

/// Three like tiers for SmolLM2, as in examples/local-topology.json, with one expected node each.
private enum LiveFixture {
    static let figures = DeviceFigures(flops: 4e9, memoryBandwidthBytesPerSecond: 5e9, memoryBytes: 1e9)
    static let link = Topology.Link(bandwidthBytesPerSecond: 2e8, latencySeconds: 0.00015)

    static var topology: Topology {
        Topology(tiers: [
            .init(name: "edge", nodes: [.init(id: "edge-1", figures: figures)], linkToNext: link),
            .init(name: "fog", nodes: [.init(id: "fog-1", figures: figures)], linkToNext: link),
            .init(name: "cloud", nodes: [.init(id: "cloud-1", figures: figures)]),
        ])
    }

    static func model() throws -> ModelProfile {
        let shape = try #require(try ModelPreset.shape(named: "smollm2-135m:q4_1"))
        return shape.profile(for: .default)
    }

    static func heartbeat(_ node: String, _ tier: String, speed: Double = 1, version: Int64? = nil) -> LiveMembership.Heartbeat {
        LiveMembership.Heartbeat(nodeID: node, tierName: tier, nominal: figures, speed: speed, planVersion: version)
    }

    static let nodes = [("edge-1", "edge"), ("fog-1", "fog"), ("cloud-1", "cloud")]

    /// A planner re-planning on a 15% gain held 5 s, nodes out after 3 s.
    static func planner(policy: PartitionPolicy = .bsdp, requireEveryTier: Bool = false) throws -> LivePlanner {
        LivePlanner(
            model: try model(), topology: topology, workload: .default,
            configuration: .init(
                policy: policy, replan: .init(marginFraction: 0.15, dwellSeconds: 5, verifySeconds: 30), silenceSeconds: 3,
                requireEveryTier: requireEveryTier))
    }

    /// A planner with the service's default re-plan policy.
    static func defaultPlanner() throws -> LivePlanner {
        LivePlanner(
            model: try model(), topology: topology, workload: .default,
            configuration: .init(policy: .bsdp, replan: .init(), silenceSeconds: 3))
    }
}

/// Drives a `LivePlanner` second by second and keeps what it published.
private struct Run {
    var planner: LivePlanner
    var second = 0
    var published: [(second: Int, plan: LivePlanner.CurrentPlan, reason: String)] = []
    var kept: [String] = []

    /// One second: every node in `speeds` sends a heartbeat, then the planner evaluates.
    mutating func step(_ speeds: [(node: String, tier: String, speed: Double)]) {
        second += 1
        let now = Double(second)
        for beat in speeds { planner.record(LiveFixture.heartbeat(beat.node, beat.tier, speed: beat.speed), at: now) }
        let (_, directive) = planner.evaluate(at: now, wallMilliseconds: 1_000_000 + Int64(second) * 1000)
        switch directive {
        case .publish(let plan, let reason): published.append((second, plan, reason))
        case .keep(let reason, _): kept.append(reason)
        }
    }

    static func all(cloudSpeed: Double = 1) -> [(node: String, tier: String, speed: Double)] {
        LiveFixture.nodes.map { ($0.0, $0.1, $0.1 == "cloud" ? cloudSpeed : 1) }
    }
}

@Suite("Live membership: heartbeats folded into the topology")
struct LiveMembershipTests {
    @Test("tiers never heard from keep the file's nodes; heard tiers are their live nodes, scaled ones included")
    func fold() {
        var membership = LiveMembership(silenceSeconds: 3)
        #expect(membership.record(LiveFixture.heartbeat("fog-7", "fog", speed: 0.5), at: 0) == .joined(node: "fog-7", tier: "fog"))
        #expect(membership.record(LiveFixture.heartbeat("fog-1", "fog"), at: 0) == .joined(node: "fog-1", tier: "fog"))
        #expect(membership.record(LiveFixture.heartbeat("fog-1", "fog"), at: 1) == nil)
        let live = membership.fold(into: LiveFixture.topology)
        #expect(live.tiers[0].nodes.map(\.id) == ["edge-1"])
        // The file's node first, then the one scaling added; the slowed node at half its figures.
        #expect(live.tiers[1].nodes.map(\.id) == ["fog-1", "fog-7"])
        #expect(live.tiers[1].nodes[1].flops == 2e9)
        #expect(live.tiers[1].nodes[1].memoryBandwidthBytesPerSecond == 2.5e9)
        #expect(live.tiers[1].nodes[1].memoryBytes == 1e9)
        #expect(live.tiers[2].nodes.map(\.id) == ["cloud-1"])
    }

    @Test("a node silent for longer than the window is out; its tier does not fall back to the file")
    func silence() {
        var membership = LiveMembership(silenceSeconds: 3)
        membership.record(LiveFixture.heartbeat("cloud-1", "cloud"), at: 0)
        membership.record(LiveFixture.heartbeat("cloud-2", "cloud"), at: 0)
        #expect(membership.expire(at: 2).isEmpty)
        membership.record(LiveFixture.heartbeat("cloud-2", "cloud"), at: 2)
        #expect(membership.expire(at: 3.5) == [.silent(node: "cloud-1", tier: "cloud")])
        #expect(membership.fold(into: LiveFixture.topology).tiers[2].nodes.map(\.id) == ["cloud-2"])
        #expect(membership.expire(at: 6).count == 1)
        #expect(membership.fold(into: LiveFixture.topology).tiers[2].nodes.isEmpty)
    }

    @Test("a node reporting another tier moves; the highest plan version served is remembered")
    func moveAndVersions() {
        var membership = LiveMembership(silenceSeconds: 3)
        membership.record(LiveFixture.heartbeat("n1", "edge", version: 7), at: 0)
        #expect(membership.record(LiveFixture.heartbeat("n1", "fog", version: 5), at: 1) == .moved(node: "n1", from: "edge", to: "fog"))
        #expect(membership.highestPlanVersion == 7)
        let live = membership.fold(into: LiveFixture.topology)
        #expect(live.tiers[0].nodes.isEmpty)
        #expect(live.tiers[1].nodes.map(\.id) == ["n1"])
    }
}

@Suite("Live planner: when to publish a new plan")
struct LivePlannerTests {
    @Test("the first evaluation publishes a plan versioned by the wall clock")
    func firstPlan() throws {
        var run = Run(planner: try LiveFixture.planner())
        run.step(Run.all())
        let first = try #require(run.published.first)
        #expect(first.plan.version == 1_001_000)
        #expect(first.reason == "first plan")
        #expect(first.plan.partition.stages.map(\.tierName) == ["edge", "fog", "cloud"])
        for _ in 0..<20 { run.step(Run.all()) }
        #expect(run.published.count == 1, "steady figures never re-plan")
    }

    @Test("short noise in a node's speed does not re-plan; a drift sustained past the period does, once")
    func noiseAndDrift() throws {
        var run = Run(planner: try LiveFixture.planner())
        run.step(Run.all())
        // 3 s slow (shorter than the 5 s sustain period), then back to normal.
        for _ in 0..<3 { run.step(Run.all(cloudSpeed: 0.3)) }
        for _ in 0..<8 { run.step(Run.all()) }
        #expect(run.published.count == 1)
        #expect(run.kept.contains { $0.hasPrefix("gain started") })
        #expect(run.kept.contains { $0.hasPrefix("gain ended") })

        // Sustained: the re-plan comes once the drift has lasted 5 s, not before, and only once.
        let start = run.second + 1
        for _ in 0..<12 { run.step(Run.all(cloudSpeed: 0.3)) }
        #expect(run.published.count == 2)
        let replan = try #require(run.published.last)
        #expect(replan.second == start + 5)
        #expect(replan.reason.contains("better (needs 15.0%)") && replan.reason.hasSuffix("cuts moved"))
        #expect(replan.plan.version > run.published[0].plan.version)
        // The slowed cloud tier gets fewer blocks (here none: the LM head alone would cost it more
        // than the bottleneck the other two reach without it).
        func cloudBlocks(_ partition: Partition) -> Int {
            partition.stages.first { $0.tierName == "cloud" }?.blockCount ?? 0
        }
        #expect(cloudBlocks(replan.plan.partition) < cloudBlocks(run.published[0].plan.partition))
    }

    @Test("a stage left without live nodes re-plans at once onto the tiers that still have nodes")
    func membershipLossLeavesTierOut() throws {
        var run = Run(planner: try LiveFixture.planner())
        run.step(Run.all())
        #expect(run.published.first?.plan.partition.stages.map(\.tierName) == ["edge", "fog", "cloud"])
        // cloud-1 falls silent: out after 3 s, and the next plan leaves the cloud tier out.
        for _ in 0..<5 { run.step(Array(Run.all().prefix(2))) }
        #expect(run.published.count == 2)
        let replan = try #require(run.published.last)
        #expect(replan.plan.partition.stages.map(\.tierName) == ["edge", "fog"])
        #expect(replan.plan.partition.stages.last?.holdsHead == true)
    }

    @Test("with every tier required, a stage left without live nodes keeps the plan while nothing fits")
    func membershipLoss() throws {
        var run = Run(planner: try LiveFixture.planner(requireEveryTier: true))
        run.step(Run.all())
        let version = try #require(run.published.first).plan.version
        // cloud-1 falls silent: out after 3 s; the cloud tier has no node, so no partition fits.
        for _ in 0..<5 { run.step(Array(Run.all().prefix(2))) }
        #expect(run.published.count == 1)
        #expect(run.planner.current?.version == version)
        #expect(run.kept.last?.contains("no live node") == true)
        #expect(run.kept.last?.contains("no partition fits") == true)
        // A like node joins the cloud tier: the plan in force is served again with the same
        // prediction, so it stays (schedulers route to live nodes; the plan need not name them).
        for _ in 0..<8 { run.step(Array(Run.all().prefix(2)) + [("cloud-2", "cloud", 1)]) }
        #expect(run.published.count == 1)
        #expect(run.planner.isDrifting == false)
    }

    @Test("nodes added by scaling count: more fog capacity moves blocks to fog after the sustain period")
    func scaling() throws {
        var run = Run(planner: try LiveFixture.planner())
        run.step(Run.all())
        let scaled = Run.all() + [("fog-2", "fog", 1), ("fog-3", "fog", 1), ("fog-4", "fog", 1)]
        for _ in 0..<8 { run.step(scaled) }
        #expect(run.published.count == 2)
        let fog = try #require(run.published.last?.plan.partition.stages[1])
        #expect(fog.nodes == ["fog-1", "fog-2", "fog-3", "fog-4"])
        #expect(fog.blockCount > run.published[0].plan.partition.stages[1].blockCount)
    }

    @Test("versions outnumber any version seen, even one ahead of this clock")
    func versions() throws {
        var planner = try LiveFixture.planner()
        planner.record(LiveFixture.heartbeat("edge-1", "edge", version: 5_000_000), at: 0)
        #expect(planner.nextVersion(wallMilliseconds: 1_000) == 5_000_001)
        planner.noteVersionSeen(9_000_000)
        #expect(planner.nextVersion(wallMilliseconds: 1_000) == 9_000_001)
        #expect(planner.nextVersion(wallMilliseconds: 10_000_000) == 10_000_000)
        let (_, directive) = planner.evaluate(at: 1, wallMilliseconds: 1_000)
        guard case .publish(let plan, _) = directive else {
            Issue.record("expected a first plan, got \(directive)")
            return
        }
        #expect(plan.version == 9_000_001)
        #expect(planner.nextVersion(wallMilliseconds: 1_000) == 9_000_002)
    }
}

/// Recorded traces of measured compute, second by second, fed through each node's
/// `ComputeSpeedMeter` (as its worker does) into a planner with the default policy.
private struct Trace {
    var planner: LivePlanner
    var meters: [String: ComputeSpeedMeter] = [:]
    var published: [(second: Int, plan: LivePlanner.CurrentPlan, reason: String)] = []
    var notable: [String] = []

    init() throws {
        planner = try LiveFixture.defaultPlanner()
    }

    /// One second: each node ran `busy` seconds of compute at measured rate `rate` (predicted
    /// over compute seconds), then heartbeats, then the planner evaluates.
    mutating func step(_ second: Int, rates: [String: Double], busy: Double = 0.6) {
        let now = Double(second)
        for (node, tier) in LiveFixture.nodes {
            var meter = meters[node] ?? ComputeSpeedMeter()
            meter.record(predictedSeconds: busy * (rates[node] ?? 1), computeSeconds: busy, at: now)
            meters[node] = meter
            planner.record(
                LiveMembership.Heartbeat(
                    nodeID: node, tierName: tier, nominal: LiveFixture.figures, speed: rates[node] ?? 1,
                    computeSpeed: meter.speed, computeConfidence: meter.confidence),
                at: now)
        }
        let (_, directive) = planner.evaluate(at: now, wallMilliseconds: 1_000_000 + Int64(second) * 1000)
        switch directive {
        case .publish(let plan, let reason): published.append((second, plan, reason))
        case .keep(let reason, let isNotable): if isNotable { notable.append(reason) }
        }
    }
}

@Suite("Re-plan controller on recorded traces")
struct ReplanTraceTests {
    /// The load-driven swings of a run with three workers on two shared cores: each node's
    /// measured rate moves by ±45% as requests come and go and as the cut moves work between
    /// them, out of phase from node to node, with noise on top.
    static func loadRates(_ second: Int, _ noise: inout SeededGenerator) -> [String: Double] {
        var rates: [String: Double] = [:]
        for (index, (node, _)) in LiveFixture.nodes.enumerated() {
            let phase = Double(index) * 2.0944  // 2π/3
            let wave = sine(2 * 3.14159265 * Double(second) / 60 + phase)
            rates[node] = max(0.05, 0.7 * (1 + 0.45 * wave) + Double.random(in: -0.1...0.1, using: &noise))
        }
        return rates
    }

    @Test("load-driven swings of 35–92% in the unsmoothed bottleneck give 0 re-plans over 20 minutes")
    func loadDriven() throws {
        var trace = try Trace()
        var noise = SeededGenerator(seed: 35)
        let model = try LiveFixture.model()
        let nominal = try #require(
            Planner.plan(model: model, topology: LiveFixture.topology, workload: .default, policy: .bsdp).partition)
        var swing = (low: Double.infinity, high: 0.0)
        for second in 1...1200 {
            let rates = Self.loadRates(second, &noise)
            trace.step(second, rates: rates)
            // What a planner scaling figures by the raw rate would have predicted this second.
            var raw = LiveFixture.topology
            for tier in raw.tiers.indices {
                raw.tiers[tier].nodes[0].figures = LiveFixture.figures.scaled(bySpeed: rates[raw.tiers[tier].nodes[0].id] ?? 1)
            }
            if second % 10 == 0, let fresh = Planner.plan(model: model, topology: raw, workload: .default, policy: .bsdp).partition {
                let change = abs(fresh.bottleneckSeconds - nominal.bottleneckSeconds) / nominal.bottleneckSeconds
                swing = (min(swing.low, change), max(swing.high, change))
            }
        }
        print("load-driven trace: unsmoothed bottleneck moved \(swing.low * 100)–\(swing.high * 100)% from the nominal plan's; notable decisions: \(trace.notable)")
        #expect(swing.high > 0.35, "the trace swings as much as the recorded run")
        #expect(trace.published.count == 1, "only the first plan: \(trace.published.map(\.reason))")
    }

    @Test("a sustained 3× slowdown of one node gives exactly 1 re-plan, which moves blocks off it and is kept")
    func sustainedSlowdown() throws {
        var trace = try Trace()
        var noise = SeededGenerator(seed: 3)
        for second in 1...1500 {
            var rates = ReplanTraceTests.loadRates(second, &noise)
            if second > 300 { rates["fog-1"] = (rates["fog-1"] ?? 1) / 3 }
            trace.step(second, rates: rates)
        }
        print("3× slowdown trace: plans at seconds \(trace.published.map(\.second)); \(trace.published.map(\.reason))")
        #expect(trace.published.count == 2)
        let first = try #require(trace.published.first).plan.partition.stages[1].blockCount
        let replan = try #require(trace.published.last)
        #expect(replan.second > 300 + 180, "not before the dwell time")
        #expect(replan.plan.partition.stages[1].blockCount < first)
        #expect(trace.notable.contains { $0.hasPrefix("switch checked") }, "the switch was checked and kept")
    }
}

/// sin(x) without Foundation, for the traces.
private func sine(_ x: Double) -> Double {
    var y = x.truncatingRemainder(dividingBy: 2 * 3.14159265358979)
    if y > 3.14159265358979 { y -= 2 * 3.14159265358979 }
    var term = y
    var sum = y
    for k in 1...10 {
        term *= -y * y / Double((2 * k) * (2 * k + 1))
        sum += term
    }
    return sum
}
