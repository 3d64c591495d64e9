import JSON

/// The partition planner's heartbeat on `hyperion.telemetry`, key `planner` (docs/design.md §3): which
/// plan it holds and how many live nodes it plans for, so operators and tests see it alive.
public struct PlannerHeartbeat: Codable, Sendable, Equatable {
    /// A fresh UUID per process start.
    public var instance: String
    /// The version of the plan in force; nil while no partition fits.
    public var planVersion: Int64?
    /// Worker nodes heard from within the silence window.
    public var liveNodes: Int
    /// Whether a better plan is being watched through its dwell time (a re-plan may follow).
    public var drifting: Bool
    /// Seconds since the Unix epoch at the sender.
    public var timestamp: Double
    /// The plan in force scored on the live figures (the nodes' trusted compute speeds): the
    /// bottleneck per request this machine is predicted to give. Optional: older planners omit it.
    public var liveBottleneckSeconds: Double?

    public init(
        instance: String, planVersion: Int64?, liveNodes: Int, drifting: Bool, timestamp: Double, liveBottleneckSeconds: Double? = nil
    ) {
        self.liveBottleneckSeconds = liveBottleneckSeconds
        self.instance = instance
        self.planVersion = planVersion
        self.liveNodes = liveNodes
        self.drifting = drifting
        self.timestamp = timestamp
    }

    enum CodingKeys: String, CodingKey {
        case v, type, instance, drifting
        case planVersion = "plan_version"
        case liveNodes = "live_nodes"
        case timestamp = "ts"
        case liveBottleneckSeconds = "live_bottleneck_s"
    }

    public init(from decoder: any Decoder) throws {
        try Wire.checkVersion(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try Wire.checkType(c, .type, "planner")
        instance = try c.decode(String.self, forKey: .instance)
        planVersion = try c.decodeIfPresent(Int64.self, forKey: .planVersion)
        liveNodes = try c.decode(Int.self, forKey: .liveNodes)
        if liveNodes < 0 { throw Wire.invalid(.liveNodes, c, "expected an integer >= 0") }
        drifting = try c.decode(Bool.self, forKey: .drifting)
        timestamp = try c.decode(Double.self, forKey: .timestamp)
        liveBottleneckSeconds = try c.decodeIfPresent(Double.self, forKey: .liveBottleneckSeconds)
        if let value = liveBottleneckSeconds, !(value >= 0 && value.isFinite) {
            throw Wire.invalid(.liveBottleneckSeconds, c, "expected a number >= 0")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Names.schemaVersion, forKey: .v)
        try c.encode("planner", forKey: .type)
        try c.encode(instance, forKey: .instance)
        try c.encodeIfPresent(planVersion, forKey: .planVersion)
        try c.encode(liveNodes, forKey: .liveNodes)
        try c.encode(drifting, forKey: .drifting)
        try c.encode(timestamp, forKey: .timestamp)
        try c.encodeIfPresent(liveBottleneckSeconds, forKey: .liveBottleneckSeconds)
    }
}
