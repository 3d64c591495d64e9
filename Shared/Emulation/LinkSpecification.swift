import Messages
import Profiles

/// One emulated link as a `link-emulator` process serves it: its name (its queue is
/// `hyperion.link.<name>`), figures, and where it leads, from a topology file or from flags.
public struct LinkSpecification: Sendable, Hashable {
    public var name: String
    /// nil: a pure delay (the return path to the scheduler carries small `sampled` messages).
    public var bandwidthBytesPerSecond: Double?
    public var latencySeconds: Double
    /// The tier at the link's far end; steps for a tier beyond it go on to `nextLink`.
    public var toTier: String?
    /// The link after the far tier, for plans that skip a tier (baselines may).
    public var nextLink: String?

    public init(name: String, bandwidthBytesPerSecond: Double?, latencySeconds: Double, toTier: String? = nil, nextLink: String? = nil) {
        self.name = name
        self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
        self.latencySeconds = latencySeconds
        self.toTier = toTier
        self.nextLink = nextLink
    }

    /// The name of the return path's link.
    public static let returnName = "return"

    /// Every link of `topology`: `<tier>-<next tier>` for each `link_to_next`, then `return`
    /// (latency `return_latency_s`, else the sum of the forward latencies; no bandwidth limit).
    public static func all(in topology: Topology) -> [LinkSpecification] {
        var links: [LinkSpecification] = []
        let tiers = topology.tiers
        for index in tiers.indices.dropLast() {
            guard let link = tiers[index].linkToNext else { continue }
            let next = tiers[index + 1]
            links.append(
                LinkSpecification(
                    name: "\(tiers[index].name)-\(next.name)", bandwidthBytesPerSecond: link.bandwidthBytesPerSecond,
                    latencySeconds: link.latencySeconds, toTier: next.name,
                    nextLink: index + 2 < tiers.count && next.linkToNext != nil ? "\(next.name)-\(tiers[index + 2].name)" : nil))
        }
        links.append(LinkSpecification(name: returnName, bandwidthBytesPerSecond: nil, latencySeconds: topology.effectiveReturnLatencySeconds))
        return links
    }

    /// The link named `name` in `topology`; the error lists the names there are.
    public static func named(_ name: String, in topology: Topology) throws(EmulationError) -> LinkSpecification {
        let links = all(in: topology)
        guard let link = links.first(where: { $0.name == name }) else {
            throw EmulationError("--link: the topology has no link '\(name)' (its links: \(links.map(\.name).joined(separator: ", ")))")
        }
        return link
    }

    /// The queue this link consumes.
    public var queue: String { Names.Queue.link(name) }

    /// Where a message for `destination` (a queue) goes after crossing this link: to the
    /// destination itself, or — when it is a stage of a tier beyond `toTier` — into the next link.
    public func nextHop(destination: String) -> String {
        guard let toTier, let nextLink, let tier = Names.Queue.tier(ofStage: destination), tier != toTier else { return destination }
        return Names.Queue.link(nextLink)
    }
}
