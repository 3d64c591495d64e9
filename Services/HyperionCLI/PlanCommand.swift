import ArgumentParser
import Foundation
import JSON
import Partitioning
import Profiles

/// `hyperion plan`: cut a model into one block range per tier and explain the prediction.
///
/// Numeric flags are read as text and checked here, so every bad value exits with code 2 and a
/// message naming the flag (the argument parser's own errors use 64).
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Partition a model's blocks across the tiers of a topology and predict its throughput.",
        discussion: """
            Every tier of the topology runs one contiguous range of decoder blocks (the embedding goes \
            with the first, the LM head with the last); the nodes of a tier with room for its range and \
            KV reserve share its requests. BSDP picks the ranges that minimise the bottleneck — the \
            seconds per request of the busiest tier or link (DESIGN.md §6) — ties going to the smaller \
            idle latency. gpipe (equal block counts) and heft (greedy earliest finish) are the \
            baselines; they may leave a tier empty and are never repaired to fit memory.

            The table lists per tier: blocks (first–last, from 0), weights and KV reserve held, the \
            memory a node needs against the tier's largest node, the nodes that fit, the tier's compute \
            seconds per request with its nodes sharing the load, and the outgoing link's seconds per \
            request.

            Exit codes: 0 a plan; 2 bad input (the message names the flag or file field); 3 no \
            partition fits memory (with --json, the infeasible JSON of DESIGN.md §4).

            Examples:
              hyperion plan --model phi-3-medium:q4_0 \\
                --topology examples/paper-testbed.json
              hyperion plan --model phi-3-medium:q4_0 \\
                --topology examples/paper-testbed.json --partition gpipe
              hyperion plan --topology examples/local-topology.json \\
                --model models/SmolLM2-135M-Instruct.Q4_1.gguf \\
                --prompt-tokens 64 --output-tokens 32 --json
            """
    )

    @Option(
        help: ArgumentHelp(
            "The model: a preset (phi-3-medium, phi-3-mini, llama-3-8b, smollm2-135m) with an optional weight dtype (:f32, :f16 (default), :q8_0, :q4_1, :q4_0), a .gguf file, or a custom profile .json.",
            valueName: "preset[:dtype]|file.gguf|profile.json"))
    var model: String?

    @Option(help: ArgumentHelp("The topology file: tiers in order with nodes and links.", valueName: "file.json"))
    var topology: String?

    @Option(help: ArgumentHelp("bsdp (optimal), gpipe or heft (baselines).", valueName: "policy"))
    var partition: String = "bsdp"

    @Option(name: .customLong("prompt-tokens"), help: ArgumentHelp("Mean prompt tokens P (default 512).", valueName: "P"))
    var promptTokens: String?

    @Option(name: .customLong("output-tokens"), help: ArgumentHelp("Mean generated tokens O (default 128).", valueName: "O"))
    var outputTokens: String?

    @Option(
        name: .customLong("prefill-chunk"),
        help: ArgumentHelp("Prompt tokens per prefill step K; weights are read once per chunk (default 512).", valueName: "K"))
    var prefillChunk: String?

    @Option(
        name: .customLong("decode-batch"),
        help: ArgumentHelp("Sequences decoded together B; weights are read once per batch (default 1).", valueName: "B"))
    var decodeBatch: String?

    @Option(help: ArgumentHelp("Context tokens of KV cache reserved per sequence X (default 2048).", valueName: "X"))
    var context: String?

    @Option(help: ArgumentHelp("Sequences per node the KV reserve is sized for S (default 1).", valueName: "S"))
    var concurrency: String?

    @Option(
        help: ArgumentHelp(
            "A workload file {\"prompt_tokens\",\"output_tokens\",\"prefill_chunk\",\"decode_batch\",\"context\",\"concurrency\"}; flags override it.",
            valueName: "file.json"))
    var workload: String?

    @Flag(help: "Print the plan JSON of DESIGN.md §4 (or the infeasible JSON) instead of the table.")
    var json = false

    /// A refusal of the user's input: printed, then exit 2.
    struct BadInput: Error {
        let message: String
    }

    func run() throws {
        do {
            let request = try makeRequest()
            let outcome = Planner.plan(
                model: request.model.profile(for: request.workload), topology: request.topology,
                workload: request.workload, policy: request.policy)
            switch outcome {
            case .plan(let partition):
                let now = Date()
                let document = PlanDocument(
                    version: Int64((now.timeIntervalSince1970 * 1000).rounded(.down)),
                    createdAt: ISO8601DateFormatter().string(from: now), modelName: request.model.name,
                    modelSHA256: request.model.profile(for: request.workload).sha256, workload: request.workload,
                    partition: partition)
                if json {
                    print(document.jsonValue.serialized(pretty: true))
                } else {
                    print(PlanTable.render(document, request: request))
                }
            case .infeasible(let reason):
                if json {
                    print(PlanDocument.infeasibleJSON(reason).serialized(pretty: true))
                } else {
                    print("No \(reason.policy.rawValue) partition of \(request.model.name) fits \(request.topologyPath):")
                    print("  \(reason.reason)")
                }
                throw ExitCode(3)
            }
        } catch let error as BadInput {
            FileHandle.standardError.write(Data("hyperion plan: \(error.message)\n".utf8))
            throw ExitCode(2)
        }
    }

    /// Everything the planner needs, read and checked.
    struct Request {
        var model: ModelSource
        var topology: Topology
        var topologyPath: String
        var workload: Workload
        var policy: PartitionPolicy
    }

    func makeRequest() throws(BadInput) -> Request {
        guard let policy = PartitionPolicy(rawValue: partition.lowercased()) else {
            throw BadInput(message: "--partition: expected bsdp, gpipe or heft, got '\(partition)'")
        }
        guard let modelArgument = model else {
            throw BadInput(message: "--model is required (a preset such as phi-3-medium:q4_0, a .gguf or a .json profile)")
        }
        guard let topologyPath = topology else {
            throw BadInput(message: "--topology is required (a topology file, e.g. examples/paper-testbed.json)")
        }
        var workload = Workload.default
        if let workloadPath = self.workload {
            do {
                workload = try Workload.load(workloadPath)
            } catch {
                throw BadInput(message: "--workload \(workloadPath): \(error.description)")
            }
        }
        let flags: [(String, String?, WritableKeyPath<Workload, Int>, Int)] = [
            ("--prompt-tokens", promptTokens, \.promptTokens, 0), ("--output-tokens", outputTokens, \.outputTokens, 0),
            ("--prefill-chunk", prefillChunk, \.prefillChunk, 1), ("--decode-batch", decodeBatch, \.decodeBatch, 1),
            ("--context", context, \.context, 1), ("--concurrency", concurrency, \.concurrency, 1),
        ]
        for (flag, text, keyPath, minimum) in flags {
            guard let text else { continue }
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value >= minimum, value <= Int(Int32.max) else {
                throw BadInput(message: "\(flag): expected an integer ≥ \(minimum), got '\(text)'")
            }
            workload[keyPath: keyPath] = value
        }
        if let violation = workload.violations.first {
            let flag = "--" + violation.field.replacingOccurrences(of: "_", with: "-")
            throw BadInput(message: "\(flag): \(violation.expectation)")
        }
        let source: ModelSource
        do {
            source = try ModelSource.load(modelArgument)
        } catch {
            throw BadInput(message: "--model: \(error.description)")
        }
        let topology: Topology
        do {
            topology = try Topology.load(topologyPath)
        } catch {
            throw BadInput(message: "--topology \(topologyPath): \(error.description)")
        }
        return Request(model: source, topology: topology, topologyPath: topologyPath, workload: workload, policy: policy)
    }
}
