import ArgumentParser
import Scheduling
import ServiceSupport

/// `scheduler`: admits requests from `hyperion.ingress` and drives every step of them (docs/design.md §7–8).
@main
struct SchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Admit requests from hyperion.ingress, route them across the tiers and drive their steps.",
        discussion: """
            The scheduler takes up to --max-in-flight requests at a time from the durable ingress queue,
            tokenises them with the model's tokenizer, picks one node per stage (ARTS by default) from live
            heartbeats and queue depths, sends the prefill chunks and then one decode step per token, streams
            tokens to the client's reply_to and finishes with one result. Every flag defaults to its
            HYPERION_* variable.

            Example: scheduler --routing arts --max-in-flight 16
            """,
        version: "scheduler \(BuildInfo.version), commit \(BuildInfo.commit)")

    @OptionGroup
    var broker: BrokerOptions

    @OptionGroup
    var service: ServiceOptions

    @OptionGroup
    var node: NodeOptions

    /// The old spelling of --node-id, kept hidden for one release.
    @Option(name: .customLong("id"), help: .hidden)
    var oldID: String?

    @Option(help: "Routing policy: arts, round-robin or heft (HYPERION_ROUTING).")
    var routing: String = ProcessEnvironment.string("HYPERION_ROUTING") ?? "arts"

    @Option(help: "Requests held at once: the ingress prefetch (HYPERION_MAX_IN_FLIGHT).")
    var maxInFlight: Int = ProcessEnvironment.string("HYPERION_MAX_IN_FLIGHT").flatMap { Int($0) } ?? 32

    @Option(help: "GGUF model file, for its tokenizer and context window (HYPERION_MODEL).")
    var model: String = ProcessEnvironment.string("HYPERION_MODEL") ?? "models/SmolLM2-135M-Instruct.Q4_1.gguf"

    @Option(help: "In an emulated cluster, the model the profile workers emulate (e.g. phi-3-medium:q4_0): ARTS prices steps with it; tokens still come from --model (HYPERION_EMULATED_MODEL).")
    var emulatedModel: String = ProcessEnvironment.string("HYPERION_EMULATED_MODEL") ?? ""

    @Option(help: "In an emulated cluster, the link (e.g. edge-fog) that steps cross to reach a first stage outside --link-from-tier, as requests entering at that tier would (HYPERION_LINK).")
    var link: String = ProcessEnvironment.string("HYPERION_LINK") ?? ""

    @Option(help: "With --link: the tier the scheduler sits with; steps to its nodes go straight there (HYPERION_LINK_FROM_TIER).")
    var linkFromTier: String = ProcessEnvironment.string("HYPERION_LINK_FROM_TIER") ?? ""

    @Option(help: "Longest request in seconds; also the default deadline_s.")
    var maxDeadlineSeconds: Double = 600

    @Option(help: "Largest max_tokens accepted (HYPERION_MAX_OUTPUT_TOKENS).")
    var maxOutputTokens: Int = ProcessEnvironment.string("HYPERION_MAX_OUTPUT_TOKENS").flatMap { Int($0) } ?? 4096

    @Option(help: "Largest request body in bytes (HYPERION_MAX_REQUEST_BYTES).")
    var maxRequestBytes: Int = ProcessEnvironment.string("HYPERION_MAX_REQUEST_BYTES").flatMap { Int($0) } ?? 1 << 20

    @Option(help: "Longest prompt in tokens, after the chat template; 0: the model's context window decides (HYPERION_MAX_PROMPT_TOKENS).")
    var maxPromptTokens: Int = ProcessEnvironment.string("HYPERION_MAX_PROMPT_TOKENS").flatMap { Int($0) } ?? 0

    @Option(help: "Most requests waiting on hyperion.ingress before the broker refuses new ones, which clients see as 'system overloaded' (x-max-length with reject-publish; HYPERION_INGRESS_MAX_LENGTH). Every scheduler on a broker must use the same value: RabbitMQ refuses a queue redeclared with other arguments.")
    var ingressMaxLength: Int = ProcessEnvironment.string("HYPERION_INGRESS_MAX_LENGTH").flatMap { Int($0) } ?? Int(BrokerObjects.defaultIngressMaxLength)

    @Option(help: "Seconds without a step's result before its attempt fails over to another route.")
    var stepTimeoutSeconds: Double = 30

    @Option(help: "Attempts per request before it ends with an error.")
    var maxAttempts: Int = 4

    @Option(help: "Seconds between heartbeats (workers are out after three missed).")
    var heartbeatSeconds: Double = 1

    @Option(help: "Longest wait for in-flight requests after SIGTERM; what is left is redone by another scheduler.")
    var drainSeconds: Double = 60

    mutating func validate() throws {
        try node.adopt(alias: oldID, spelled: "--id")
        guard RoutingPolicy(rawValue: routing) != nil else {
            throw ValidationError("--routing: unknown policy '\(routing)' (known: arts, round-robin, heft)")
        }
        guard (1...65_535).contains(maxInFlight) else { throw ValidationError("--max-in-flight: expected an integer in 1...65535") }
        guard maxDeadlineSeconds > 0 else { throw ValidationError("--max-deadline-seconds: expected a number > 0") }
        guard maxOutputTokens >= 1 else { throw ValidationError("--max-output-tokens: expected an integer >= 1") }
        guard maxRequestBytes >= 1 else { throw ValidationError("--max-request-bytes: expected an integer >= 1") }
        guard maxPromptTokens >= 0 else { throw ValidationError("--max-prompt-tokens: expected an integer >= 0") }
        guard ingressMaxLength >= 1 else { throw ValidationError("--ingress-max-length: expected an integer >= 1") }
        guard stepTimeoutSeconds > 0 else { throw ValidationError("--step-timeout-seconds: expected a number > 0") }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts: expected an integer >= 1") }
        guard heartbeatSeconds > 0 else { throw ValidationError("--heartbeat-seconds: expected a number > 0") }
        guard drainSeconds >= 0 else { throw ValidationError("--drain-seconds: expected a number >= 0") }
        guard link.isEmpty == linkFromTier.isEmpty else {
            throw ValidationError("--link and --link-from-tier: give both (an emulated cluster) or neither")
        }
    }

    /// A command line the parser refuses exits 2 (bad input), rather than the parser's 64.
    static func main() async { await mainExitingTwoOnBadInput() }

    func run() async throws {
        service.bootstrapLogging()
        let id = node.nodeID
        var settings = SchedulerServiceSettings(
            amqpURL: broker.amqpURL, id: id, routing: RoutingPolicy(rawValue: routing) ?? .arts, maxInFlight: maxInFlight,
            modelPath: model, maxDeadlineSeconds: maxDeadlineSeconds, maxOutputTokens: maxOutputTokens,
            maxRequestBytes: maxRequestBytes, stepTimeoutSeconds: stepTimeoutSeconds, maxAttempts: maxAttempts,
            heartbeatSeconds: heartbeatSeconds, drainSeconds: drainSeconds, emulatedModel: emulatedModel.isEmpty ? nil : emulatedModel,
            link: link.isEmpty ? nil : link, linkFromTier: linkFromTier.isEmpty ? nil : linkFromTier)
        settings.maxPromptTokens = maxPromptTokens > 0 ? maxPromptTokens : nil
        settings.ingressMaxLength = Int64(ingressMaxLength)
        do {
            try await SchedulerService(settings: settings).run()
        } catch {
            printError("scheduler \(id): \(error)")
            throw ExitCode.failure
        }
    }
}
