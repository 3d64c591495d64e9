import Profiles

/// The stage-worker nodes alive right now, as their heartbeats describe them, folded into the
/// tiers of a topology file (docs/design.md §2, §9).
///
/// The file names the tiers, their links and the nodes expected for offline planning; once a tier
/// has been heard from, it is described by its live nodes alone: nodes added by scaling count with
/// the figures they report, and a node silent for `silenceSeconds` is out. A node's measured
/// compute speed (`ComputeSpeedMeter`, smoothed over minutes) scales its figures once it is
/// trusted, so a slowed device weighs less in the plan while load alone does not move it.
///
/// Pure: the caller passes timestamps in seconds on one monotonic clock.
public struct LiveMembership: Sendable {
    /// One heartbeat, reduced to what planning needs.
    public struct Heartbeat: Sendable, Hashable {
        public var nodeID: String
        public var tierName: String
        /// The device preset the node runs or emulates, if it names one.
        public var device: String?
        /// The figures the node advertises (its real or emulated device).
        public var nominal: DeviceFigures
        /// Measured / predicted work rate (docs/design.md §7), the one ARTS routes by: 1 until measured.
        public var speed: Double
        /// The plan version the node serves, if any.
        public var planVersion: Int64?
        /// The compute speed smoothed over minutes and its confidence (0…1); nil from a node
        /// that does not report it (an older worker), whose `speed` is used instead.
        public var computeSpeed: Double?
        public var computeConfidence: Double?

        public init(
            nodeID: String, tierName: String, device: String? = nil, nominal: DeviceFigures, speed: Double,
            planVersion: Int64? = nil, computeSpeed: Double? = nil, computeConfidence: Double? = nil
        ) {
            self.nodeID = nodeID
            self.tierName = tierName
            self.device = device
            self.nominal = nominal
            self.speed = speed
            self.planVersion = planVersion
            self.computeSpeed = computeSpeed
            self.computeConfidence = computeConfidence
        }

        /// Least confidence at which a compute speed replaces the nominal figures.
        public static let trustedConfidence = 0.5

        /// The speed planning assumes: the compute speed once trusted, nominal (1) before; an
        /// older node's routing speed.
        public var plannedSpeed: Double {
            guard let computeSpeed else { return speed }
            return (computeConfidence ?? 0) >= Self.trustedConfidence && computeSpeed > 0 ? computeSpeed : 1
        }

        /// What the planner assumes the node delivers: its nominal figures at its planned speed.
        public var effectiveFigures: DeviceFigures { nominal.scaled(bySpeed: plannedSpeed) }
    }

    /// A change of membership, for the log.
    public enum Change: Sendable, Hashable, CustomStringConvertible {
        case joined(node: String, tier: String)
        case moved(node: String, from: String, to: String)
        case silent(node: String, tier: String)

        public var description: String {
            switch self {
            case let .joined(node, tier): "node \(node) joined tier \(tier)"
            case let .moved(node, from, to): "node \(node) moved from tier \(from) to tier \(to)"
            case let .silent(node, tier): "node \(node) of tier \(tier) fell silent and is out"
            }
        }
    }

    private struct Entry: Sendable {
        var heartbeat: Heartbeat
        var lastSeen: Double
    }

    /// How long a node may stay silent before it is out (3 heartbeat intervals by docs/design.md §7).
    public let silenceSeconds: Double
    private var entries: [String: Entry] = [:]
    private var heardTiers: Set<String> = []
    /// The highest plan version any node has reported serving.
    public private(set) var highestPlanVersion: Int64?

    public init(silenceSeconds: Double) {
        self.silenceSeconds = silenceSeconds
    }

    /// The live nodes' ids, sorted.
    public var liveNodeIDs: [String] { entries.keys.sorted() }

    /// The last heartbeat of a live node.
    public func heartbeat(of nodeID: String) -> Heartbeat? { entries[nodeID]?.heartbeat }

    /// Records a heartbeat; returns the membership change it makes, if any.
    @discardableResult
    public mutating func record(_ heartbeat: Heartbeat, at now: Double) -> Change? {
        if let version = heartbeat.planVersion { highestPlanVersion = max(highestPlanVersion ?? version, version) }
        heardTiers.insert(heartbeat.tierName)
        let previous = entries[heartbeat.nodeID]
        var heartbeat = heartbeat
        // A trusted compute speed stays until a trusted one replaces it: an idle spell or a
        // restart of the node's meter does not send the plan back to nominal figures.
        if heartbeat.computeSpeed == nil || (heartbeat.computeConfidence ?? 0) < Heartbeat.trustedConfidence,
            let carried = previous?.heartbeat, carried.computeSpeed != nil,
            (carried.computeConfidence ?? 0) >= Heartbeat.trustedConfidence
        {
            heartbeat.computeSpeed = carried.computeSpeed
            heartbeat.computeConfidence = carried.computeConfidence
        }
        entries[heartbeat.nodeID] = Entry(heartbeat: heartbeat, lastSeen: max(now, previous?.lastSeen ?? now))
        guard let previous else { return .joined(node: heartbeat.nodeID, tier: heartbeat.tierName) }
        if previous.heartbeat.tierName != heartbeat.tierName {
            return .moved(node: heartbeat.nodeID, from: previous.heartbeat.tierName, to: heartbeat.tierName)
        }
        return nil
    }

    /// Drops the nodes silent for longer than `silenceSeconds` at `now`.
    public mutating func expire(at now: Double) -> [Change] {
        let silent = entries.filter { now - $0.value.lastSeen > silenceSeconds }
        for id in silent.keys { entries[id] = nil }
        return silent.values.map { .silent(node: $0.heartbeat.nodeID, tier: $0.heartbeat.tierName) }
            .sorted { $0.description < $1.description }
    }

    /// `base` with every tier that has been heard from described by its live nodes: the file's
    /// nodes first in the file's order (with their live figures), then the others by id. Tiers
    /// never heard from keep the file's nodes; heartbeats naming a tier the file lacks are left out.
    public func fold(into base: Topology) -> Topology {
        var topology = base
        for index in topology.tiers.indices {
            let tier = topology.tiers[index]
            guard heardTiers.contains(tier.name) else { continue }
            let live = entries.values.map(\.heartbeat).filter { $0.tierName == tier.name }
            let fileOrder = Dictionary(
                tier.nodes.enumerated().map { ($0.element.id, $0.offset) }, uniquingKeysWith: { first, _ in first })
            let ordered = live.sorted { a, b in
                switch (fileOrder[a.nodeID], fileOrder[b.nodeID]) {
                case let (x?, y?): x < y
                case (.some, nil): true
                case (nil, .some): false
                case (nil, nil): a.nodeID < b.nodeID
                }
            }
            topology.tiers[index].nodes = ordered.map {
                Topology.Node(id: $0.nodeID, device: $0.device, figures: $0.effectiveFigures)
            }
        }
        return topology
    }
}
