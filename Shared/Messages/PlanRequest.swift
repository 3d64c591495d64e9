import JSON

/// A request for the current plan on `hyperion.plan.get` (docs/design.md §3): `{"v":1,"type":"plan.get"}`
/// with `reply_to` and `correlation_id`. The planner also accepts an empty body.
///
/// The reply, to `reply_to` with the same `correlation_id`, is the Plan JSON of §4; the §4
/// infeasible JSON while no partition fits; or an `ErrorReply` (`bad_request` for a malformed
/// request, `unavailable` before the first plan).
public struct PlanRequest: Codable, Sendable, Equatable {
    public init() {}

    enum CodingKeys: String, CodingKey { case v, type }

    public init(from decoder: any Decoder) throws {
        try Wire.checkVersion(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try Wire.checkType(c, .type, "plan.get")
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Names.schemaVersion, forKey: .v)
        try c.encode("plan.get", forKey: .type)
    }
}
