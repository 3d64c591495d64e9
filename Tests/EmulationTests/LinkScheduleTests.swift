import Emulation
import Messages
import Profiles
import Testing

@Suite("Link emulation: FIFO timing and the topology's links")
struct LinkScheduleTests {
    @Test("Messages queue behind each other at the link's bandwidth, then propagate", arguments: [1.0, 0.1])
    func fifo(scale: Double) throws {
        var link = LinkSchedule(bandwidthBytesPerSecond: 1e6, latencySeconds: 0.01, timeScale: try TimeScale(scale))
        let passages = (0..<3).map { _ in link.admit(bytes: 1_000_000, at: 0) }
        #expect(passages.map(\.startsAt) == [0, 1 * scale, 2 * scale])
        for (index, passage) in passages.enumerated() {
            #expect(abs(passage.sentAt - Double(index + 1) * scale) < 1e-12)
            #expect(abs(passage.arrivesAt - (Double(index + 1) + 0.01) * scale) < 1e-12)
        }
        // A message reaching an idle link starts at once.
        let later = link.admit(bytes: 500_000, at: 10)
        #expect(later.startsAt == 10)
        #expect(abs(later.arrivesAt - (10 + (0.5 + 0.01) * scale)) < 1e-12)
    }

    @Test("A busy link delivers exactly at its bandwidth, whoever sends and however big the messages")
    func throughput() throws {
        var link = LinkSchedule(bandwidthBytesPerSecond: 1.25e8, latencySeconds: 0.02, timeScale: .real)
        var generator = SystemRandomNumberGenerator()
        var bytes = 0
        var now = 0.0
        var last = link.admit(bytes: 0, at: 0)
        for _ in 0..<1000 {
            let size = Int.random(in: 1_000...2_000_000, using: &generator)
            bytes += size
            now += 1e-6  // senders keep the link busy: every message takes at least 8 µs
            let passage = link.admit(bytes: size, at: now)
            #expect(passage.arrivesAt >= last.arrivesAt)
            last = passage
        }
        // The first message went on the wire at 1 µs; from then on the link never idled.
        #expect(abs(last.sentAt - (1e-6 + Double(bytes) / 1.25e8)) < 1e-9)
        #expect(abs(link.busySeconds - Double(bytes) / 1.25e8) < 1e-9)
    }

    @Test("Without a bandwidth the link is a pure delay (the return path)")
    func pureDelay() throws {
        var link = LinkSchedule(bandwidthBytesPerSecond: nil, latencySeconds: 0.021, timeScale: try TimeScale(0.5))
        let first = link.admit(bytes: 10_000_000, at: 3)
        let second = link.admit(bytes: 10_000_000, at: 3)
        #expect(first.arrivesAt == 3 + 0.0105)
        #expect(second.arrivesAt == 3 + 0.0105)
    }

    private let testbed = Topology(
        tiers: [
            .init(
                name: "edge", nodes: [.init(id: "e1", figures: DevicePreset.jetsonOrinNano.figures)],
                linkToNext: .init(bandwidthBytesPerSecond: 1.25e8, latencySeconds: 0.001)),
            .init(
                name: "fog", nodes: [.init(id: "f1", figures: DevicePreset.t4.figures)],
                linkToNext: .init(bandwidthBytesPerSecond: 6e7, latencySeconds: 0.02)),
            .init(name: "cloud", nodes: [.init(id: "c1", figures: DevicePreset.a100_40GB.figures)]),
        ])

    @Test("A topology's links are <tier>-<next tier> and return, with the file's figures")
    func topologyLinks() throws {
        let links = LinkSpecification.all(in: testbed)
        #expect(links.map(\.name) == ["edge-fog", "fog-cloud", "return"])
        let fogCloud = try LinkSpecification.named("fog-cloud", in: testbed)
        #expect(fogCloud.bandwidthBytesPerSecond == 6e7)
        #expect(fogCloud.latencySeconds == 0.02)
        #expect(fogCloud.queue == "hyperion.link.fog-cloud")
        let back = try LinkSpecification.named("return", in: testbed)
        #expect(back.bandwidthBytesPerSecond == nil)
        #expect(abs(back.latencySeconds - 0.021) < 1e-12)
        var explicit = testbed
        explicit.returnLatencySeconds = 0.05
        #expect(try LinkSpecification.named("return", in: explicit).latencySeconds == 0.05)
        do {
            _ = try LinkSpecification.named("edge-cloud", in: testbed)
            Issue.record("an unknown link was accepted")
        } catch {
            #expect(error.description.contains("edge-fog, fog-cloud, return"))
        }
    }

    @Test("A step for a tier beyond the link's far end goes on into the next link; others go straight to their queue")
    func nextHop() throws {
        let edgeFog = try LinkSpecification.named("edge-fog", in: testbed)
        #expect(edgeFog.nextHop(destination: Names.Queue.stage(tier: "fog", node: "f1")) == "hyperion.stage.fog.f1")
        #expect(edgeFog.nextHop(destination: Names.Queue.stage(tier: "cloud", node: "c1")) == "hyperion.link.fog-cloud")
        #expect(edgeFog.nextHop(destination: Names.Queue.scheduler("s1")) == "hyperion.sched.s1")
        let fogCloud = try LinkSpecification.named("fog-cloud", in: testbed)
        #expect(fogCloud.nextHop(destination: Names.Queue.stage(tier: "cloud", node: "c1")) == "hyperion.stage.cloud.c1")
    }
}
