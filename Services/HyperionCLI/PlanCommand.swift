import ArgumentParser
import Foundation
import JSON
import Partitioning
import PlanningOptions
import Profiles
import Simulation

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
            stage's activations); --require-every-tier gives every tier a range, as the paper does and the \
            planner service does by default. \
            gpipe (equal block counts) and heft (greedy earliest finish) are the baselines; they may \
            leave a tier empty and are never repaired to fit memory.

            The table lists per tier: blocks (first–last, from 0), weights and KV reserve held, the \
            memory a node needs against the tier's largest node, the nodes that fit, the tier's compute \
            seconds per request with its nodes sharing the load, and the outgoing link's seconds per \
            request.

            With --rate R (requests per second) the plan is chosen for that load instead: the \
            candidates are BSDP's least-idle partitions under a ladder of bottleneck limits, from \
            the least bottleneck to none, plus the GPipe and HEFT plans; each is simulated at R \
            (--score-requests requests, the workers' batching, ARTS routing, a seed of its own) and \
            the least mean latency wins. A table of the candidates follows the plan; with --json \
            they go to standard error.

            Exit codes: 0 a plan; 2 bad input (the message names the flag or file field); 3 no \
            partition fits memory (with --json, the infeasible JSON of docs/design.md §4).

            Examples:
              hyperion plan --model phi-3-medium:q4_0 \\
                --topology examples/paper-testbed.json
              hyperion plan --model phi-3-medium:q4_0 \\
                --topology examples/paper-testbed.json --partition gpipe
              hyperion plan --model phi-3-medium:f16 \\
                --topology examples/paper-testbed.json --rate 0.3 \\
                --prompt-tokens 512 --output-tokens 1024
              hyperion plan --topology examples/local-topology.json \\
                --model models/SmolLM2-135M-Instruct.Q4_1.gguf \\
                --prompt-tokens 64 --output-tokens 32 --json
            """
    )

    @OptionGroup var planning: PlanningOptions

    @Flag(help: "Print the plan JSON of docs/design.md §4 (or the infeasible JSON) instead of the table.")
    var json = false

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Choose the plan of least simulated mean latency at this arrival rate (requests/s).", valueName: "R"))
    var rate: String?

    @Option(
        name: .customLong("score-requests"), parsing: .unconditional,
        help: ArgumentHelp("With --rate: requests simulated per candidate plan (default 500).", valueName: "N"))
    var scoreRequests: String?

    /// A refusal of the user's input: printed, then exit 2.
    struct BadInput: Error {
        let message: String
    }

    func run() throws {
        do {
            let request = try makeRequest()
            let (rate, requests) = try rateOptions(policy: request.policy)
            var outcome = Planner.plan(
                model: request.model.profile(for: request.workload), topology: request.topology,
                workload: request.workload, policy: request.policy, requireEveryTier: request.requireEveryTier)
            var candidatesTable: String?
            if let rate, outcome.partition != nil {
                let planner = RatePlanner(
                    model: request.model, topology: request.topology,
                    workload: ScenarioWorkload(name: "plan", distribution: .uniform, planning: request.workload),
                    requireEveryTier: request.requireEveryTier, requests: requests)
                let started = Date()
                if let choice = planner.choose(rate: rate, progress: { line in
                    FileHandle.standardError.write(Data("scored \(line)\n".utf8))
                }) {
                    outcome = .plan(choice.candidates[choice.chosen].partition)
                    candidatesTable = Self.candidatesTable(
                        choice.candidates, chosen: choice.chosen, rate: rate, seconds: Date().timeIntervalSince(started))
                }
            }
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
                    if let candidatesTable { FileHandle.standardError.write(Data((candidatesTable + "\n").utf8)) }
                } else {
                    print(PlanTable.render(document, request: request))
                    if let candidatesTable { print("\n" + candidatesTable) }
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

    /// `--rate` and `--score-requests`, checked: a rate > 0 (or none) and a request count ≥ 1.
    func rateOptions(policy: PartitionPolicy) throws(BadInput) -> (rate: Double?, requests: Int) {
        var requests = 500
        if let scoreRequests {
            guard let count = Int(scoreRequests.trimmingCharacters(in: .whitespaces)), count >= 1, count <= 1_000_000 else {
                throw BadInput(message: "--score-requests: expected an integer from 1 to 1000000, got '\(scoreRequests)'")
            }
            guard rate != nil else { throw BadInput(message: "--score-requests: only with --rate") }
            requests = count
        }
        guard let rate else { return (nil, requests) }
        guard let value = Double(rate.trimmingCharacters(in: .whitespaces)), value > 0, value.isFinite else {
            throw BadInput(message: "--rate: expected a number of requests per second > 0, got '\(rate)'")
        }
        guard policy == .bsdp else {
            throw BadInput(message: "--rate: chooses among BSDP's plans (and the baselines'); drop --partition \(policy.rawValue)")
        }
        return (value, requests)
    }

    /// The candidates of a rate-aware choice, one line each, the chosen one marked.
    static func candidatesTable(_ candidates: [RatePlanner.Candidate], chosen: Int, rate: Double, seconds: Double) -> String {
        let header = ["", "candidate", "stages", "bottleneck", "idle", "mean at \(rate) req/s", "completed"]
        var rows = [header]
        for (index, candidate) in candidates.enumerated() {
            let partition = candidate.partition
            let result = candidate.result
            rows.append([
                index == chosen ? "→" : "", candidate.label,
                partition.stages.map { "\($0.tierName) \($0.blockRange)" }.joined(separator: ", "),
                PlanTable.seconds(partition.bottleneckSeconds), PlanTable.seconds(partition.idleLatencySeconds),
                PlanTable.seconds(candidate.meanLatencySeconds),
                result.map { "\($0.completed)/\($0.completed + $0.failed)" } ?? "–",
            ])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        let lines = rows.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        return "candidates simulated at \(rate) req/s (\(String(format: "%.1f", seconds)) s):\n" + lines.joined(separator: "\n")
    }

    func makeRequest() throws(BadInput) -> Request {
        do {
            return try planning.resolve()
        } catch {
            throw BadInput(message: error.message)
        }
    }
}
