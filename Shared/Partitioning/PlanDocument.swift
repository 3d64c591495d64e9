import JSON
import Profiles

/// A plan as it travels (docs/design.md §4): a partition with its predictions, stamped with a version,
/// its creation time, the model and the workload it was made for. `hyperion plan --json` prints it
/// and the planner service publishes it on `hyperion.plan`.
public struct PlanDocument: Sendable, Hashable {
    public static let schemaVersion: Int64 = 1

    /// Monotonic across planner restarts (epoch milliseconds at creation).
    public var version: Int64
    /// ISO 8601 UTC time of creation.
    public var createdAt: String
    public var modelName: String
    public var modelSHA256: String?
    public var workload: Workload
    public var partition: Partition

    public init(
        version: Int64, createdAt: String, modelName: String, modelSHA256: String? = nil, workload: Workload,
        partition: Partition
    ) {
        self.version = version
        self.createdAt = createdAt
        self.modelName = modelName
        self.modelSHA256 = modelSHA256
        self.workload = workload
        self.partition = partition
    }

    /// The §4 Plan JSON. Stage entries add `memory_need_bytes` and `memory_limit_bytes` so a reader
    /// sees how close each tier is to its memory.
    public var jsonValue: JSONValue {
        var model = JSONObject([("name", .string(modelName))])
        if let modelSHA256 { model["sha256"] = .string(modelSHA256) }
        let stages: [JSONValue] = partition.stages.map { stage in
            [
                "tier": .string(stage.tierName),
                "first_block": .int(Int64(stage.firstBlock)),
                "last_block": .int(Int64(stage.lastBlock)),
                "nodes": .array(stage.nodes.map { .string($0) }),
                "weight_bytes": Self.bytesValue(stage.weightBytes),
                "kv_bytes": Self.bytesValue(stage.kvBytes),
                "memory_need_bytes": Self.bytesValue(stage.memoryNeedBytes),
                "memory_limit_bytes": Self.bytesValue(stage.memoryLimitBytes),
                "compute_s": .double(stage.computeSeconds),
                "link_s": .double(stage.linkSeconds),
            ]
        }
        return .object(
            JSONObject([
                ("v", .int(Self.schemaVersion)),
                ("version", .int(version)),
                ("created_at", .string(createdAt)),
                ("model", .object(model)),
                ("workload", workload.jsonValue),
                ("partition", .string(partition.policy.rawValue)),
                ("stages", .array(stages)),
                ("bottleneck_s", .double(partition.bottleneckSeconds)),
                ("idle_latency_s", .double(partition.idleLatencySeconds)),
            ]))
    }

    /// The §4 infeasible answer.
    public static func infeasibleJSON(_ infeasibility: Infeasibility) -> JSONValue {
        [
            "v": .int(schemaVersion),
            "infeasible": [
                "tier": .string(infeasibility.tierName),
                "need_bytes": bytesValue(infeasibility.needBytes),
                "max_node_bytes": bytesValue(infeasibility.maxNodeBytes),
                "reason": .string(infeasibility.reason),
            ],
        ]
    }

    /// Bytes are whole numbers on the wire; a need is rounded up so it never understates.
    static func bytesValue(_ bytes: Double) -> JSONValue {
        let rounded = bytes.rounded(.up)
        if let exact = Int64(exactly: rounded) { return .int(exact) }
        return .double(bytes)
    }

    /// Reads a plan published by a planner. Figures a plan reader does not need to route
    /// (`holds_*`, fastest-node seconds, link latencies) are not on the wire and read as their
    /// neutral values.
    public static func parse(_ value: JSONValue, path: String = "plan") throws(JSONError) -> PlanDocument {
        guard let object = value.objectValue else {
            throw JSONError(path: path, message: "expected an object, found \(value.typeName)")
        }
        func field(_ key: String) -> String { "\(path).\(key)" }
        guard object["v"]?.intValue == schemaVersion else {
            throw JSONError(path: field("v"), message: "unsupported plan schema version (expected \(schemaVersion))")
        }
        if object["infeasible"] != nil {
            throw JSONError(path: field("infeasible"), message: "an infeasible answer carries no plan")
        }
        guard let version = object["version"]?.intValue else {
            throw JSONError(path: field("version"), message: "expected an integer")
        }
        guard let createdAt = object["created_at"]?.stringValue else {
            throw JSONError(path: field("created_at"), message: "expected a string")
        }
        guard let modelName = object["model"]?["name"]?.stringValue else {
            throw JSONError(path: field("model.name"), message: "expected a string")
        }
        guard let policyName = object["partition"]?.stringValue, let policy = PartitionPolicy(rawValue: policyName) else {
            throw JSONError(path: field("partition"), message: "expected one of bsdp, gpipe, heft")
        }
        let workload = try Workload.parse(object["workload"] ?? .null, path: field("workload"))
        guard let stageValues = object["stages"]?.arrayValue, !stageValues.isEmpty else {
            throw JSONError(path: field("stages"), message: "expected a non-empty array")
        }
        var stages: [StagePrediction] = []
        for (index, stageValue) in stageValues.enumerated() {
            let stagePath = "\(field("stages"))[\(index)]"
            func number(_ key: String) throws(JSONError) -> Double {
                guard let number = stageValue[key]?.doubleValue, number.isFinite, number >= 0 else {
                    throw JSONError(path: "\(stagePath).\(key)", message: "expected a number ≥ 0")
                }
                return number
            }
            guard let tier = stageValue["tier"]?.stringValue else {
                throw JSONError(path: "\(stagePath).tier", message: "expected a string")
            }
            guard let first = stageValue["first_block"]?.intValue, let last = stageValue["last_block"]?.intValue,
                first >= 0, last >= first
            else {
                throw JSONError(path: "\(stagePath).first_block", message: "expected 0 ≤ first_block ≤ last_block")
            }
            guard let nodes = stageValue["nodes"]?.arrayValue?.compactMap(\.stringValue) else {
                throw JSONError(path: "\(stagePath).nodes", message: "expected an array of node ids")
            }
            let weightBytes = try number("weight_bytes")
            let kvBytes = try number("kv_bytes")
            stages.append(
                StagePrediction(
                    tierIndex: index, tierName: tier, firstBlock: Int(first), lastBlock: Int(last),
                    holdsEmbedding: index == 0, holdsHead: index == stageValues.count - 1, nodes: nodes,
                    weightBytes: weightBytes, kvBytes: kvBytes,
                    memoryLimitBytes: stageValue["memory_limit_bytes"]?.doubleValue ?? weightBytes + kvBytes,
                    computeSeconds: try number("compute_s"), fastestNodeSeconds: try number("compute_s"),
                    linkSeconds: try number("link_s"), linkLatencySeconds: 0))
        }
        guard let bottleneck = object["bottleneck_s"]?.doubleValue, let idle = object["idle_latency_s"]?.doubleValue else {
            throw JSONError(path: field("bottleneck_s"), message: "expected bottleneck_s and idle_latency_s numbers")
        }
        return PlanDocument(
            version: version, createdAt: createdAt, modelName: modelName,
            modelSHA256: object["model"]?["sha256"]?.stringValue, workload: workload,
            partition: Partition(
                policy: policy, stages: stages, bottleneckSeconds: bottleneck, idleLatencySeconds: idle))
    }
}
