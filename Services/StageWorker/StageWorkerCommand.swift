import ArgumentParser
import Profiles
import ServiceSupport

/// `stage-worker`: serves one tier's block range of the current plan (DESIGN.md §2, §8).
@main
struct StageWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stage-worker",
        abstract: "Serve one tier's blocks of the current plan: consume steps, run them, forward the results.",
        discussion: """
            The worker asks the planner for the current plan (hyperion.plan.get), follows new plans on
            hyperion.plan, loads its tier's block range from the model file, and consumes steps from
            its queue hyperion.stage.<tier>.<node>. Every flag defaults to its HYPERION_* variable.

            Example: stage-worker --tier edge --node-id edge-1
            """)

    @Option(help: "Broker URL (HYPERION_AMQP_URL; else .run/amqp_url; else a local broker).")
    var amqpURL: String = ProcessEnvironment.amqpURL()

    @Option(help: "The tier this node serves, as named in the topology (HYPERION_TIER).")
    var tier: String = ProcessEnvironment.string("HYPERION_TIER") ?? ""

    @Option(help: "Unique node id [A-Za-z0-9_-] (HYPERION_NODE_ID; default <hostname>-<random>).")
    var nodeID: String = ProcessEnvironment.string("HYPERION_NODE_ID") ?? ProcessEnvironment.defaultNodeID()

    @Option(help: "GGUF model file (HYPERION_MODEL).")
    var model: String = ProcessEnvironment.string("HYPERION_MODEL") ?? "models/SmolLM2-135M-Instruct.Q4_1.gguf"

    @Option(help: "Compute threads for one batch.")
    var threads: Int = 1

    @Option(help: "Most steps (of distinct requests) in one batch.")
    var maxBatchSteps: Int = 16

    @Option(help: "Most tokens in one batch (prefill chunks count every token).")
    var maxBatchTokens: Int = 512

    @Option(help: "Device preset this node advertises (HYPERION_DEVICE), e.g. t4, jetson-orin-nano; overrides --flops/--mem-bw/--memory-bytes.")
    var device: String = ProcessEnvironment.string("HYPERION_DEVICE") ?? ""

    @Option(help: "Effective FLOP/s this node advertises.")
    var flops: Double = 4e9

    @Option(help: "Memory bandwidth in bytes/s this node advertises.")
    var memBW: Double = 5e9

    @Option(help: "Memory in bytes this node advertises; weights plus KV cache must fit.")
    var memoryBytes: Double = 1e9

    @Option(help: "Stretch every computation by this factor without changing what the node advertises (experiments).")
    var slowdown: Double = 1

    @Option(help: "Seconds between heartbeats.")
    var heartbeatSeconds: Double = 1

    @Option(help: "Free a request's cache after this many idle seconds.")
    var idleCacheSeconds: Double = 600

    @Option(help: "Longest wait for in-flight work when draining (SIGTERM).")
    var drainSeconds: Double = 60

    mutating func validate() throws {
        guard !tier.isEmpty else { throw ValidationError("--tier: required (or set HYPERION_TIER)") }
        guard ProcessEnvironment.sanitizedID(tier) == tier else { throw ValidationError("--tier: '\(tier)' may use only letters, digits, - and _") }
        guard !nodeID.isEmpty, ProcessEnvironment.sanitizedID(nodeID) == nodeID else {
            throw ValidationError("--node-id: '\(nodeID)' may use only letters, digits, - and _")
        }
        guard threads >= 1 else { throw ValidationError("--threads: expected an integer >= 1") }
        guard maxBatchSteps >= 1 else { throw ValidationError("--max-batch-steps: expected an integer >= 1") }
        guard maxBatchTokens >= 1 else { throw ValidationError("--max-batch-tokens: expected an integer >= 1") }
        guard flops > 0, flops.isFinite else { throw ValidationError("--flops: expected a number > 0") }
        guard memBW > 0, memBW.isFinite else { throw ValidationError("--mem-bw: expected a number > 0") }
        guard memoryBytes > 0, memoryBytes.isFinite else { throw ValidationError("--memory-bytes: expected a number > 0") }
        guard slowdown >= 1, slowdown.isFinite else { throw ValidationError("--slowdown: expected a number >= 1") }
        guard heartbeatSeconds > 0 else { throw ValidationError("--heartbeat-seconds: expected a number > 0") }
        if !device.isEmpty, DevicePreset(rawValue: device) == nil {
            let names = DevicePreset.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("--device: unknown preset '\(device)' (known: \(names))")
        }
    }

    /// A command line the parser refuses exits 2 (bad input), rather than the parser's 64.
    static func main() async { await mainExitingTwoOnBadInput() }

    func run() async throws {
        ProcessEnvironment.bootstrapLogging()
        var figures = DeviceFigures(flops: flops, memoryBandwidthBytesPerSecond: memBW, memoryBytes: memoryBytes)
        if let preset = DevicePreset(rawValue: device) { figures = preset.figures }
        let settings = StageWorkerSettings(
            amqpURL: amqpURL, tier: tier, nodeID: nodeID, modelPath: model, threads: threads,
            maxBatchSteps: maxBatchSteps, maxBatchTokens: maxBatchTokens, device: device.isEmpty ? nil : device, nominal: figures,
            slowdown: slowdown, heartbeatSeconds: heartbeatSeconds, idleCacheSeconds: idleCacheSeconds,
            drainSeconds: drainSeconds)
        do {
            try await StageWorkerService(settings: settings).run()
        } catch {
            printError("stage-worker \(nodeID): \(error)")
            throw ExitCode.failure
        }
    }
}
