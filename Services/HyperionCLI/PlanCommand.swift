import ArgumentParser
import Foundation
import JSON
import Partitioning
import PlanningOptions
import Profiles

/// `hyperion plan`: cut a model into one block range per tier and explain the prediction.
///
/// The planning flags are `PlanningOptions`, shared with the `partition-planner` service: every bad
/// value exits with code 2 and a message naming the flag (the argument parser's own errors use 64).
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Partition a model's blocks across the tiers of a topology and predict its throughput.",
        discussion: """
            Every tier of the topology runs one contiguous range of decoder blocks, in tier order (the \
            embedding goes with the first range, the LM head with the last); the nodes of a tier with \
            room for its range and KV reserve share its requests. BSDP picks the ranges that minimise \
            the bottleneck — the seconds per request of the busiest tier or link (docs/design.md §6) — \
            ties going to the smaller idle latency. A tier may hold no blocks: what crosses it then only \
            passes over its link (token ids from the scheduler, which sits with the first tier, or a \
            stage's activations); --require-every-tier gives every tier a range, as the paper does. \
            gpipe (equal block counts) and heft (greedy earliest finish) are the baselines; they may \
            leave a tier empty and are never repaired to fit memory.

            The table lists per tier: blocks (first–last, from 0), weights and KV reserve held, the \
            memory a node needs against the tier's largest node, the nodes that fit, the tier's compute \
            seconds per request with its nodes sharing the load, and the outgoing link's seconds per \
            request.

            Exit codes: 0 a plan; 2 bad input (the message names the flag or file field); 3 no \
            partition fits memory (with --json, the infeasible JSON of docs/design.md §4).

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

    @OptionGroup var planning: PlanningOptions

    @Flag(help: "Print the plan JSON of docs/design.md §4 (or the infeasible JSON) instead of the table.")
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
                workload: request.workload, policy: request.policy, requireEveryTier: request.requireEveryTier)
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
    typealias Request = PlanningInput

    func makeRequest() throws(BadInput) -> Request {
        do {
            return try planning.resolve()
        } catch {
            throw BadInput(message: error.message)
        }
    }
}
