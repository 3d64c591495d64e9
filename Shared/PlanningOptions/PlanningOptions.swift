import ArgumentParser
import Foundation
import Partitioning
import Profiles

/// The flags that say what to plan — model, topology, partition policy and workload — shared by
/// `hyperion plan` and the `partition-planner` service, so both read them alike and refuse bad
/// values with the same messages.
///
/// Numbers are read as text (a value such as "-5" too, rather than as a flag) and checked in
/// `resolve`, so every bad value is reported naming its
/// flag (or environment variable) and the caller exits 2, rather than the parser's own 64.
public struct PlanningOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The model: a preset (phi-3-medium, phi-3-mini, llama-3-8b, smollm2-135m) with an optional weight dtype (:f32, :f16 (default), :q8_0, :q4_1, :q4_0), a .gguf file, or a custom profile .json.",
            valueName: "preset[:dtype]|file.gguf|profile.json"))
    public var model: String?

    @Option(help: ArgumentHelp("The topology file: tiers in order with nodes and links.", valueName: "file.json"))
    public var topology: String?

    @Option(help: ArgumentHelp("bsdp (optimal, the default), gpipe or heft (baselines).", valueName: "policy"))
    public var partition: String?

    @Option(name: .customLong("prompt-tokens"), parsing: .unconditional, help: ArgumentHelp("Mean prompt tokens P (default 512).", valueName: "P"))
    public var promptTokens: String?

    @Option(name: .customLong("output-tokens"), parsing: .unconditional, help: ArgumentHelp("Mean generated tokens O (default 128).", valueName: "O"))
    public var outputTokens: String?

    @Option(
        name: .customLong("prefill-chunk"), parsing: .unconditional,
        help: ArgumentHelp("Prompt tokens per prefill step K; weights are read once per chunk (default 512).", valueName: "K"))
    public var prefillChunk: String?

    @Option(
        name: .customLong("decode-batch"), parsing: .unconditional,
        help: ArgumentHelp("Sequences decoded together B; weights are read once per batch (default 1).", valueName: "B"))
    public var decodeBatch: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Context tokens of KV cache reserved per sequence X (default 2048).", valueName: "X"))
    public var context: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Sequences per node the KV reserve is sized for S (default 1).", valueName: "S"))
    public var concurrency: String?

    @Option(
        help: ArgumentHelp(
            "A workload file {\"prompt_tokens\",\"output_tokens\",\"prefill_chunk\",\"decode_batch\",\"context\",\"concurrency\"}; flags override it.",
            valueName: "file.json"))
    public var workload: String?

    @Flag(
        inversion: .prefixedNo,
        help: ArgumentHelp(
            "BSDP gives every tier a non-empty range (the paper's formulation), or lets a tier that does not pay for itself hold no blocks, its link only passing traffic on (default: --no-require-every-tier for hyperion plan, --require-every-tier for the planner service)."))
    public var requireEveryTier: Bool?

    public init() {}

    /// Each setting of the group with the environment variable a service reads it from.
    public enum Setting: String, CaseIterable, Sendable {
        case model, topology, partition, promptTokens, outputTokens, prefillChunk, decodeBatch, context, concurrency
        case workload, requireEveryTier

        public var flag: String {
            switch self {
            case .model: "--model"
            case .topology: "--topology"
            case .partition: "--partition"
            case .promptTokens: "--prompt-tokens"
            case .outputTokens: "--output-tokens"
            case .prefillChunk: "--prefill-chunk"
            case .decodeBatch: "--decode-batch"
            case .context: "--context"
            case .concurrency: "--concurrency"
            case .workload: "--workload"
            case .requireEveryTier: "--require-every-tier"
            }
        }

        /// `HYPERION_MODEL`, `HYPERION_PROMPT_TOKENS`, …: the flag's name in the deployment contract.
        public var environmentVariable: String {
            "HYPERION_" + flag.dropFirst(2).uppercased().replacingOccurrences(of: "-", with: "_")
        }
    }

    /// A value the options refuse; `message` starts with the flag or variable it came from.
    public struct BadValue: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Reads and checks every setting: the flag when given, else `fallback` (a service passes its
    /// environment; `hyperion plan` passes nothing), else the built-in default. Loads the model
    /// and topology files.
    ///
    /// `requireEveryTierByDefault` is the caller's default for `--require-every-tier`: the planner
    /// service keeps the paper's formulation unless told otherwise, since a worker whose tier a
    /// plan leaves out only stands by.
    public func resolve(
        fallback: (Setting) -> String? = { _ in nil }, requireEveryTierByDefault: Bool = false
    ) throws(BadValue) -> PlanningInput {
        /// The value and the name to blame when it is wrong.
        func value(_ setting: Setting, _ flagValue: String?) -> (text: String, source: String)? {
            if let flagValue { return (flagValue, setting.flag) }
            if let fallen = fallback(setting) { return (fallen, setting.environmentVariable) }
            return nil
        }

        let partitionText = value(.partition, partition) ?? ("bsdp", Setting.partition.flag)
        guard let policy = PartitionPolicy(rawValue: partitionText.text.lowercased()) else {
            throw BadValue(message: "\(partitionText.source): expected bsdp, gpipe or heft, got '\(partitionText.text)'")
        }
        guard let modelArgument = value(.model, model) else {
            throw BadValue(message: "--model is required (a preset such as phi-3-medium:q4_0, a .gguf or a .json profile)")
        }
        guard let topologyArgument = value(.topology, topology) else {
            throw BadValue(message: "--topology is required (a topology file, e.g. examples/paper-testbed.json)")
        }
        var workload = Workload.default
        if let file = value(.workload, self.workload) {
            do {
                workload = try Workload.load(file.text)
            } catch {
                throw BadValue(message: "\(file.source) \(file.text): \(error.description)")
            }
        }
        let numbers: [(Setting, String?, WritableKeyPath<Workload, Int>, Int)] = [
            (.promptTokens, promptTokens, \.promptTokens, 0), (.outputTokens, outputTokens, \.outputTokens, 0),
            (.prefillChunk, prefillChunk, \.prefillChunk, 1), (.decodeBatch, decodeBatch, \.decodeBatch, 1),
            (.context, context, \.context, 1), (.concurrency, concurrency, \.concurrency, 1),
        ]
        var sources: [String: String] = [:]
        for (setting, flagValue, keyPath, minimum) in numbers {
            guard let given = value(setting, flagValue) else { continue }
            let trimmed = given.text.trimmingCharacters(in: .whitespaces)
            guard let number = Int(trimmed), number >= minimum, number <= Int(Int32.max) else {
                throw BadValue(message: "\(given.source): expected an integer ≥ \(minimum), got '\(given.text)'")
            }
            workload[keyPath: keyPath] = number
            sources[setting.flag] = given.source
        }
        if let violation = workload.violations.first {
            let flag = "--" + violation.field.replacingOccurrences(of: "_", with: "-")
            throw BadValue(message: "\(sources[flag] ?? flag): \(violation.expectation)")
        }
        let source: ModelSource
        do {
            source = try ModelSource.load(modelArgument.text)
        } catch {
            throw BadValue(message: "\(modelArgument.source): \(error.description)")
        }
        let loadedTopology: Topology
        do {
            loadedTopology = try Topology.load(topologyArgument.text)
        } catch {
            throw BadValue(message: "\(topologyArgument.source) \(topologyArgument.text): \(error.description)")
        }
        var everyTier = requireEveryTier ?? requireEveryTierByDefault
        if requireEveryTier == nil, let given = fallback(.requireEveryTier) {
            switch given.trimmingCharacters(in: .whitespaces).lowercased() {
            case "1", "true", "yes": everyTier = true
            case "0", "false", "no": everyTier = false
            case "": break
            default:
                throw BadValue(message: "\(Setting.requireEveryTier.environmentVariable): expected true or false, got '\(given)'")
            }
        }
        return PlanningInput(
            model: source, topology: loadedTopology, topologyPath: topologyArgument.text, workload: workload, policy: policy,
            requireEveryTier: everyTier)
    }
}

/// Everything the planner needs, read and checked: what `PlanningOptions.resolve` returns.
public struct PlanningInput: Sendable {
    public var model: ModelSource
    public var topology: Topology
    public var topologyPath: String
    public var workload: Workload
    public var policy: PartitionPolicy
    /// BSDP must give every tier blocks (`--require-every-tier`).
    public var requireEveryTier: Bool

    public init(
        model: ModelSource, topology: Topology, topologyPath: String, workload: Workload, policy: PartitionPolicy,
        requireEveryTier: Bool = false
    ) {
        self.model = model
        self.topology = topology
        self.topologyPath = topologyPath
        self.workload = workload
        self.policy = policy
        self.requireEveryTier = requireEveryTier
    }
}
