import Foundation
import Partitioning
import Profiles

/// The human-readable form of a plan: one row per stage, then the bottleneck and what it is.
enum PlanTable {
    static func render(_ document: PlanDocument, request: PlanCommand.Request) -> String {
        let partition = document.partition
        let w = document.workload
        var lines: [String] = []
        lines.append(
            "\(partition.policy.rawValue) plan for \(document.modelName) (\(request.model.profile(for: w).blocks.count) blocks) "
                + "on \(request.topology.tiers.count) tiers of \(request.topologyPath)")
        lines.append(
            "workload: prompt \(w.promptTokens), output \(w.outputTokens) tokens; prefill chunk \(w.prefillChunk), "
                + "decode batch \(w.decodeBatch); KV reserve \(w.context) tokens × \(w.concurrency) sequence" + (w.concurrency == 1 ? "" : "s"))
        lines.append("")
        let header = ["tier", "blocks", "weights", "KV", "need / largest node", "nodes", "compute/req", "link/req"]
        var rows: [[String]] = [header]
        for stage in partition.stages {
            var blocks = "\(stage.blockRange) (\(stage.blockCount))"
            if stage.holdsEmbedding { blocks = "emb+" + blocks }
            if stage.holdsHead { blocks += "+head" }
            let nodes = stage.nodes.count <= 3 ? stage.nodes.joined(separator: ",") : "\(stage.nodes.count) nodes"
            rows.append([
                stage.tierName, blocks, bytes(stage.weightBytes), bytes(stage.kvBytes),
                "\(bytes(stage.memoryNeedBytes)) / \(bytes(stage.memoryLimitBytes))", nodes,
                seconds(stage.computeSeconds), stage.linkSeconds > 0 ? seconds(stage.linkSeconds) : "–",
            ])
        }
        let skipped = request.topology.tiers.indices.filter { index in !partition.stages.contains { $0.tierIndex == index } }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            lines.append(
                row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
        if !skipped.isEmpty {
            lines.append("(no blocks on: " + skipped.map { request.topology.tiers[$0].name }.joined(separator: ", ") + ")")
        }
        lines.append("")
        lines.append(
            "bottleneck \(seconds(partition.bottleneckSeconds)) per request: \(busiest(partition)) "
                + "→ at most \(String(format: "%.3g", partition.requestsPerSecond)) requests/s")
        lines.append("idle latency \(seconds(partition.idleLatencySeconds)) per request (one request alone in the pipeline)")
        return lines.joined(separator: "\n")
    }

    /// Which resource sets the bottleneck: a tier's compute or a link.
    private static func busiest(_ partition: Partition) -> String {
        var best = ("", -1.0)
        for (index, stage) in partition.stages.enumerated() {
            if stage.computeSeconds > best.1 { best = ("tier \(stage.tierName) compute", stage.computeSeconds) }
            if stage.linkSeconds > best.1, index + 1 < partition.stages.count {
                best = ("link \(stage.tierName)→\(partition.stages[index + 1].tierName)", stage.linkSeconds)
            }
        }
        return best.0
    }

    static func bytes(_ value: Double) -> String {
        if value >= 1e9 { return String(format: "%.2f GB", value / 1e9) }
        if value >= 1e6 { return String(format: "%.1f MB", value / 1e6) }
        if value >= 1e3 { return String(format: "%.1f kB", value / 1e3) }
        return String(format: "%.0f B", value)
    }

    static func seconds(_ value: Double) -> String {
        if value >= 1 { return String(format: "%.3f s", value) }
        if value >= 1e-3 { return String(format: "%.3f ms", value * 1e3) }
        return String(format: "%.3f µs", value * 1e6)
    }
}
