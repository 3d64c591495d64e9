import JSON

/// The tiers a model is cut across, in pipeline order (edge → fog → cloud), with the nodes
/// expected in each and the links between consecutive tiers (docs/design.md §6).
public struct Topology: Sendable, Hashable {
    public var tiers: [Tier]
    /// Latency of the path from the last tier back to the scheduler, when it is not the sum of the
    /// forward links' latencies.
    public var returnLatencySeconds: Double?

    public init(tiers: [Tier], returnLatencySeconds: Double? = nil) {
        self.tiers = tiers
        self.returnLatencySeconds = returnLatencySeconds
    }

    /// An ordered group of nodes that serves one stage as replicas.
    public struct Tier: Sendable, Hashable {
        public var name: String
        public var nodes: [Node]
        /// The link to the next tier; nil for the last tier.
        public var linkToNext: Link?

        public init(name: String, nodes: [Node], linkToNext: Link? = nil) {
            self.name = name
            self.nodes = nodes
            self.linkToNext = linkToNext
        }
    }

    /// One stage-worker process and the device it runs on (or emulates).
    public struct Node: Sendable, Hashable {
        public var id: String
        /// The device preset it was described by, if any (kept for display).
        public var device: String?
        public var figures: DeviceFigures

        public init(id: String, device: String? = nil, figures: DeviceFigures) {
            self.id = id
            self.device = device
            self.figures = figures
        }

        public var flops: Double { figures.flops }
        public var memoryBandwidthBytesPerSecond: Double? { figures.memoryBandwidthBytesPerSecond }
        public var memoryBytes: Double { figures.memoryBytes }
    }

    /// A network path between consecutive tiers; its bandwidth is a shared resource of the pipeline.
    public struct Link: Sendable, Hashable {
        public var bandwidthBytesPerSecond: Double
        /// One-way propagation delay: it adds to latency, never to throughput.
        public var latencySeconds: Double

        public init(bandwidthBytesPerSecond: Double, latencySeconds: Double) {
            self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
            self.latencySeconds = latencySeconds
        }
    }

    /// The return path's latency: the given one, else the sum of the forward links' latencies.
    public var effectiveReturnLatencySeconds: Double {
        returnLatencySeconds ?? tiers.reduce(0) { $0 + ($1.linkToNext?.latencySeconds ?? 0) }
    }

    /// Reads and validates a topology file. Errors name the field from `path`
    /// (`topology.tiers[1].nodes[0].flops: expected a number > 0`); extra keys are ignored.
    public static func parse(_ value: JSONValue, path: String = "topology") throws(JSONError) -> Topology {
        let fields = try FieldReader(value, path: path)
        let tierEntries = try fields.array("tiers", required: true)
        if tierEntries.isEmpty {
            throw JSONError(path: fields.fieldPath("tiers"), message: "expected at least one tier")
        }
        var tiers: [Tier] = []
        var tierNames: Set<String> = []
        var nodeIds: Set<String> = []
        for (index, entry) in tierEntries.enumerated() {
            let tierFields = try FieldReader(entry.value, path: entry.path)
            let name = try tierFields.string("name")
            try checkName(name, path: tierFields.fieldPath("name"))
            guard tierNames.insert(name).inserted else {
                throw JSONError(path: tierFields.fieldPath("name"), message: "tier name '\(name)' is used twice")
            }
            var nodes: [Node] = []
            for nodeEntry in try tierFields.array("nodes", required: false) {
                let node = try parseNode(FieldReader(nodeEntry.value, path: nodeEntry.path))
                guard nodeIds.insert(node.id).inserted else {
                    throw JSONError(path: nodeEntry.path + ".id", message: "node id '\(node.id)' is used twice")
                }
                nodes.append(node)
            }
            let isLast = index == tierEntries.count - 1
            var link: Link?
            if let linkFields = try tierFields.nested("link_to_next") {
                if isLast {
                    throw JSONError(path: linkFields.path, message: "the last tier has no next tier to link to")
                }
                link = Link(
                    bandwidthBytesPerSecond: try linkFields.number("bandwidth_bytes_per_s", .positive),
                    latencySeconds: try linkFields.number("latency_s", .nonNegative))
            } else if !isLast {
                throw JSONError(
                    path: tierFields.fieldPath("link_to_next"),
                    message: "required field is missing (every tier but the last links to the next)")
            }
            tiers.append(Tier(name: name, nodes: nodes, linkToNext: link))
        }
        return Topology(tiers: tiers, returnLatencySeconds: try fields.optionalNumber("return_latency_s", .nonNegative))
    }

    /// A node gives its figures, or names a device preset whose figures any given field overrides.
    private static func parseNode(_ fields: FieldReader) throws(JSONError) -> Node {
        let id = try fields.string("id")
        try checkName(id, path: fields.fieldPath("id"))
        var base: DeviceFigures?
        let device = try fields.optionalString("device")
        if let device {
            guard let preset = DevicePreset(rawValue: device.lowercased()) else {
                throw JSONError(
                    path: fields.fieldPath("device"),
                    message: "unknown device '\(device)' (known: "
                        + DevicePreset.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            base = preset.figures
        }
        let flops = try fields.optionalNumber("flops", .positive) ?? base?.flops
        let bandwidth = try fields.optionalNumber("mem_bw_bytes_per_s", .positive) ?? base?.memoryBandwidthBytesPerSecond
        let memory = try fields.optionalNumber("memory_bytes", .nonNegative) ?? base?.memoryBytes
        guard let flops else {
            throw JSONError(path: fields.fieldPath("flops"), message: "required field is missing (expected a number > 0, or a \"device\")")
        }
        guard let memory else {
            throw JSONError(path: fields.fieldPath("memory_bytes"), message: "required field is missing (expected a number ≥ 0, or a \"device\")")
        }
        return Node(
            id: id, device: device,
            figures: DeviceFigures(flops: flops, memoryBandwidthBytesPerSecond: bandwidth, memoryBytes: memory))
    }

    /// Tier names and node ids become parts of queue names and routing keys
    /// (`hyperion.stage.<tier>.<node>`), where a dot or a space would change the meaning.
    private static func checkName(_ name: String, path: String) throws(JSONError) {
        let allowed = name.unicodeScalars.allSatisfy { scalar in
            (scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)))
                || scalar == "-" || scalar == "_"
        }
        if name.isEmpty || !allowed {
            throw JSONError(path: path, message: "expected a non-empty name of letters, digits, '-' or '_', found '\(name)'")
        }
    }
}
