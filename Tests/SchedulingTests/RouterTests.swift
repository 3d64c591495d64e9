import Scheduling
import Testing

private func node(
    _ id: String, tier: String = "edge", speed: Double = 1, kvFree: Double = 1e9, ready: Int = 0,
    meanStep: Double = 0.01, active: Int = 0, heard: Double = 0, plan: Int64 = 1, state: NodeStatus.State = .serving
) -> NodeStatus {
    NodeStatus(
        id: id, queue: "hyperion.stage.\(tier).\(id)", tier: tier, instance: "i-\(id)", planVersion: plan, state: state,
        speed: speed, kvFreeBytes: kvFree, activeSequences: active, readyMessages: ready, meanStepSeconds: meanStep,
        lastHeard: heard)
}

private let unitWork = StageDemand(kvBytes: [1e6], work: { _, _ in 1.0 })

@Suite("Routing policies")
struct RouterTests {
    @Test("ARTS sends work to the node that finishes it first: speed and backlog both count")
    func artsPicksFastest() {
        var router = Router(policy: .arts)
        let fast = node("a", speed: 1.0), slow = node("b", speed: 0.25)
        let route = router.route(candidates: [[fast, slow]], demand: unitWork, now: 0)
        #expect(route?.ids == ["a"])
        // A deep queue on the fast node makes the slow one better: (0 + 1)/0.25 = 4 < (500·0.01 + 1)/1 = 6.
        let busyFast = node("a", speed: 1.0, ready: 500)
        var fresh = Router(policy: .arts)
        let second = fresh.route(candidates: [[busyFast, slow]], demand: unitWork, now: 0)
        #expect(second?.ids == ["b"])
    }

    @Test("ARTS spreads a burst in proportion to speed before any heartbeat arrives")
    func artsSpreadsBurst() {
        var router = Router(policy: .arts)
        let a = node("a", speed: 1.0), b = node("b", speed: 0.25)
        var counts: [String: Int] = [:]
        for _ in 0..<100 {
            if let route = router.route(candidates: [[a, b]], demand: unitWork, now: 0) { counts[route.ids[0], default: 0] += 1 }
        }
        // Equal finishing times need a 4:1 split.
        #expect(counts["a"] == 80)
        #expect(counts["b"] == 20)
    }

    @Test("a heartbeat resets what ARTS has counted as sent to that node")
    func heartbeatResets() {
        var router = Router(policy: .arts)
        let a = node("a"), b = node("b")
        _ = router.route(candidates: [[a, b]], demand: unitWork, now: 0)  // a (tie → id order)
        #expect(router.backlogSeconds(a, sequenceSeconds: 0) == 1)
        router.heartbeatArrived(node: "a")
        #expect(router.backlogSeconds(a, sequenceSeconds: 0) == 0)
    }

    @Test("round-robin alternates per tier, ignoring speed")
    func roundRobin() {
        var router = Router(policy: .roundRobin)
        let edge = [node("a", speed: 1), node("b", speed: 0.1)]
        let cloud = [node("c", tier: "cloud")]
        let picks = (0..<4).compactMap { _ in router.route(candidates: [edge, cloud], demand: StageDemand(kvBytes: [0, 0], work: { _, _ in 1 }), now: 0)?.ids }
        #expect(picks == [["a", "c"], ["b", "c"], ["a", "c"], ["b", "c"]])
    }

    @Test("HEFT routing uses nominal work and its own bookkeeping, not measured speed")
    func heft() {
        var router = Router(policy: .heft)
        // b is measured slow, but HEFT does not learn: it alternates by its own estimate of busy time.
        let a = node("a", speed: 1), b = node("b", speed: 0.1)
        let picks = (0..<4).compactMap { _ in router.route(candidates: [[a, b]], demand: unitWork, now: 0)?.ids[0] }
        #expect(picks == ["a", "b", "a", "b"])
        // Bigger nominal work on b (a weaker device) steers HEFT away from it.
        var weighted = Router(policy: .heft)
        let demand = StageDemand(kvBytes: [0], work: { _, node in node.id == "b" ? 3 : 1 })
        let second = (0..<4).compactMap { _ in weighted.route(candidates: [[a, b]], demand: demand, now: 0)?.ids[0] }
        #expect(second == ["a", "a", "a", "b"])
    }

    @Test("nodes without KV room for the context are not chosen; none left means no route")
    func kvRoom() {
        var router = Router(policy: .arts)
        let full = node("a", speed: 10, kvFree: 10), roomy = node("b", kvFree: 1e9)
        let roomyRoute = router.route(candidates: [[full, roomy]], demand: unitWork, now: 0)
        #expect(roomyRoute?.ids == ["b"])
        let none = router.route(candidates: [[full]], demand: unitWork, now: 0)
        #expect(none == nil)
    }
}

@Suite("Membership")
struct NodeBookTests {
    @Test("only serving nodes of the plan version heard within three heartbeats are candidates")
    func candidates() {
        var book = NodeBook(heartbeatSeconds: 1)
        book.record(node("a", heard: 10))
        book.record(node("b", heard: 6.5))  // silent for 3.5 s at t = 10
        book.record(node("c", heard: 10, plan: 2))
        book.record(node("d", heard: 10, state: .draining))
        book.record(node("e", tier: "fog", heard: 10))
        #expect(book.serving(tier: "edge", planVersion: 1, now: 10).map(\.id) == ["a"])
        #expect(book.silent(now: 10).map(\.id) == ["b"])
    }

    @Test("a new instance of a known node is reported as a restart")
    func restart() {
        var book = NodeBook()
        #expect(book.record(node("a")) == false)
        #expect(book.record(node("a")) == false)
        var restarted = node("a")
        restarted.instance = "another"
        #expect(book.record(restarted) == true)
    }
}

@Suite("KV admission between heartbeats")
struct PendingKVTests {
    @Test("requests routed since a node's last heartbeat count against its reported free KV")
    func burstRespectsKV() {
        var router = Router(policy: .roundRobin)
        let small = NodeStatus(
            id: "a", queue: "q.a", tier: "edge", instance: "i", planVersion: 1, state: .serving, kvFreeBytes: 2.5e6, lastHeard: 0)
        let demand = StageDemand(kvBytes: [1e6], work: { _, _ in 1 })
        let routed = (0..<4).compactMap { _ in router.route(candidates: [[small]], demand: demand, now: 0) }
        #expect(routed.count == 2, "a node with room for two requests took \(routed.count) before its next heartbeat")
        // A heartbeat that does not count them yet (sent before the steps arrived) frees nothing.
        router.heartbeatArrived(node: "a")
        #expect(router.route(candidates: [[small]], demand: demand, now: 1) == nil)
    }
}
