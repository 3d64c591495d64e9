import ArgumentParser
import Emulation
import Profiles
import ServiceSupport

/// `stage-worker`: serves one tier's block range of the current plan (docs/design.md §2, §8).
@main
struct StageWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stage-worker",
        abstract: "Serve one tier's blocks of the current plan: consume steps, run them, forward the results.",
        discussion: """
            The worker asks the planner for the current plan (hyperion.plan.get), follows new plans on
            hyperion.plan, loads its tier's block range from the model file, and consumes steps from
            its queue hyperion.stage.<tier>.<node>. Every flag defaults to its HYPERION_* variable.

            Emulation (docs/design.md §11): with --executor profile the worker does no math. It holds each
            batch of steps for its roofline time on the device it advertises (--device or --flops,
            --mem-bw, --memory-bytes; prefill and decode priced separately, decode attention growing
            with the context) multiplied by --time-scale, one batch at a time; it sends zero
            activations of the real size onward and answers from the last stage with --dummy-token,
            so every request runs to its max_tokens. Blocks that do not fit the device's memory are
            refused at assignment, and KV beyond what is left is refused with kv_full, as on the
            device. --model then names the emulated model: a preset (phi-3-medium:q4_0), a custom
            profile .json or a GGUF file (only its metadata is read). --link and --return-link send
            this node's outgoing activations and its sampled tokens through link-emulator processes.
            --time-scale scales emulated durations only: broker overhead stays real and unscaled,
            and times reported in results and telemetry are wall-clock.

            Examples:
              stage-worker --tier edge --node-id edge-1
              stage-worker --tier edge --node-id edge-1 --executor profile --model phi-3-medium:q4_0 \\
                --device jetson-orin-nano --memory-bytes 6e9 --time-scale 0.1 --link edge-fog
            """,
        version: "stage-worker \(BuildInfo.version), commit \(BuildInfo.commit)")

    @OptionGroup
    var broker: BrokerOptions

    @OptionGroup
    var service: ServiceOptions

    @Option(help: "The tier this node serves, as named in the topology (HYPERION_TIER).")
    var tier: String = ProcessEnvironment.string("HYPERION_TIER") ?? ""

    @OptionGroup
    var node: NodeOptions

    @Option(help: "GGUF model file (HYPERION_MODEL); with --executor profile also a preset such as phi-3-medium:q4_0 or a profile .json.")
    var model: String = ProcessEnvironment.string("HYPERION_MODEL") ?? "models/SmolLM2-135M-Instruct.Q4_1.gguf"

    @Option(help: "real: run the model's blocks on the CPU; profile: emulate the advertised device (HYPERION_EXECUTOR).")
    var executor: String = ProcessEnvironment.string("HYPERION_EXECUTOR") ?? "real"

    @Option(help: "Multiply every emulated duration by this factor; < 1 runs faster (HYPERION_TIME_SCALE; profile executor only).")
    var timeScale: Double = ProcessEnvironment.string("HYPERION_TIME_SCALE").flatMap { Double($0) } ?? 1

    @Option(help: "Token id the profile executor's last stage answers with (not end-of-generation).")
    var dummyToken: Int32 = ProfileExecutor.defaultDummyToken

    @Option(help: "Emulated link (a link-emulator's --link name) that this node's activations cross to the next stage (HYPERION_LINK).")
    var link: String = ProcessEnvironment.string("HYPERION_LINK") ?? ""

    @Option(help: "Emulated link that this node's sampled tokens cross back to the scheduler (HYPERION_RETURN_LINK).")
    var returnLink: String = ProcessEnvironment.string("HYPERION_RETURN_LINK") ?? ""

    @Option(help: "Compute threads for one batch (default 1: a machine scales a tier by running more workers, one core each).")
    var threads: Int = 1

    @Option(help: "Most steps (of distinct requests) in one batch.")
    var maxBatchSteps: Int = 16

    @Option(help: "Most tokens in one batch (prefill chunks count every token).")
    var maxBatchTokens: Int = 512

    @Option(help: "Device preset this node advertises (HYPERION_DEVICE), e.g. t4, jetson-orin-nano; overrides --flops/--mem-bw, and --memory-bytes unless given.")
    var device: String = ProcessEnvironment.string("HYPERION_DEVICE") ?? ""

    @Option(help: "Effective FLOP/s this node advertises.")
    var flops: Double = 4e9

    @Option(help: "Memory bandwidth in bytes/s this node advertises.")
    var memBW: Double = 5e9

    @Option(help: "Memory in bytes this node advertises; weights plus KV cache must fit (default 1e9, or the --device preset's).")
    var memoryBytes: Double?

    @Option(help: "Milliseconds a batch smaller than the sequences this node holds waits for more of their steps, when it holds at least two per stage (0: start at once).")
    var batchWaitMs: Double = 3

    @Option(help: "Cap the KV-cache budget in bytes below what --memory-bytes leaves after the weights (default: no cap).")
    var kvBudgetBytes: Double?

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
        guard threads >= 1 else { throw ValidationError("--threads: expected an integer >= 1") }
        guard maxBatchSteps >= 1 else { throw ValidationError("--max-batch-steps: expected an integer >= 1") }
        guard maxBatchTokens >= 1 else { throw ValidationError("--max-batch-tokens: expected an integer >= 1") }
        guard flops > 0, flops.isFinite else { throw ValidationError("--flops: expected a number > 0") }
        guard memBW > 0, memBW.isFinite else { throw ValidationError("--mem-bw: expected a number > 0") }
        if let memoryBytes, !(memoryBytes > 0 && memoryBytes.isFinite) { throw ValidationError("--memory-bytes: expected a number > 0") }
        guard let kind = ExecutorKind(rawValue: executor) else {
            throw ValidationError("--executor: expected real or profile, got '\(executor)'")
        }
        do { _ = try TimeScale(timeScale) } catch { throw ValidationError(error.description) }
        if kind == .real, timeScale != 1 {
            throw ValidationError("--time-scale: only the profile executor emulates durations (real compute takes what it takes; see --slowdown)")
        }
        guard dummyToken >= 0 else { throw ValidationError("--dummy-token: expected a token id >= 0") }
        for (flag, name) in [("--link", link), ("--return-link", returnLink)] where ProcessEnvironment.sanitizedID(name) != name {
            throw ValidationError("\(flag): '\(name)' may use only letters, digits, - and _")
        }
        guard batchWaitMs >= 0, batchWaitMs <= 1000 else { throw ValidationError("--batch-wait-ms: expected a number in 0...1000") }
        if let kvBudgetBytes, !(kvBudgetBytes >= 0 && kvBudgetBytes.isFinite) { throw ValidationError("--kv-budget-bytes: expected a number >= 0") }
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
        service.bootstrapLogging()
        let nodeID = node.nodeID
        var figures = DeviceFigures(flops: flops, memoryBandwidthBytesPerSecond: memBW, memoryBytes: memoryBytes ?? 1e9)
        if let preset = DevicePreset(rawValue: device) {
            figures = preset.figures
            // A topology may give a device less memory than the preset (an OS shares it).
            if let memoryBytes { figures.memoryBytes = memoryBytes }
        }
        let settings = StageWorkerSettings(
            amqpURL: broker.amqpURL, tier: tier, nodeID: nodeID, modelPath: model, threads: threads,
            maxBatchSteps: maxBatchSteps, maxBatchTokens: maxBatchTokens, device: device.isEmpty ? nil : device, nominal: figures,
            slowdown: slowdown, heartbeatSeconds: heartbeatSeconds, idleCacheSeconds: idleCacheSeconds,
            drainSeconds: drainSeconds, batchWaitSeconds: batchWaitMs / 1000, kvBudgetBytes: kvBudgetBytes, executor: ExecutorKind(rawValue: executor) ?? .real,
            timeScale: (try? TimeScale(timeScale)) ?? .real, dummyToken: dummyToken,
            link: link.isEmpty ? nil : link, returnLink: returnLink.isEmpty ? nil : returnLink)
        do {
            try await StageWorkerService(settings: settings).run()
        } catch {
            printError("stage-worker \(nodeID): \(error)")
            throw ExitCode.failure
        }
    }
}
