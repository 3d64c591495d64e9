import Partitioning
import Scheduling

/// A system under comparison: how the model is partitioned and how requests are routed
/// (docs/design.md §6 "Policies"). `hyperion` = bsdp+arts, `gpipe` = gpipe+round-robin,
/// `heft` = heft+heft; any other pair is written `partition+routing` (`bsdp+round-robin`).
public struct SystemSpec: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var partition: PartitionPolicy
    public var routing: RoutingPolicy

    public init(name: String, partition: PartitionPolicy, routing: RoutingPolicy) {
        self.name = name
        self.partition = partition
        self.routing = routing
    }

    public static let hyperion = SystemSpec(name: "hyperion", partition: .bsdp, routing: .arts)
    public static let gpipe = SystemSpec(name: "gpipe", partition: .gpipe, routing: .roundRobin)
    public static let heft = SystemSpec(name: "heft", partition: .heft, routing: .heft)

    public var description: String { name }

    /// Reads a system name; nil when it names neither a system nor a known `partition+routing`.
    public static func named(_ text: String) -> SystemSpec? {
        let lowered = text.lowercased()
        switch lowered {
        case "hyperion": return .hyperion
        case "gpipe": return .gpipe
        case "heft": return .heft
        default: break
        }
        let parts = lowered.split(separator: "+", maxSplits: 1).map(String.init)
        guard parts.count == 2, let partition = PartitionPolicy(rawValue: parts[0]),
            let routing = RoutingPolicy(rawValue: parts[1])
        else { return nil }
        return SystemSpec(name: lowered, partition: partition, routing: routing)
    }

    /// What a user may write, for error messages.
    public static let accepted =
        "hyperion, gpipe, heft, or partition+routing with partition in bsdp, gpipe, heft and routing in arts, round-robin, heft"
}
