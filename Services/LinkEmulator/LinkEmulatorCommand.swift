import ArgumentParser
import Emulation
import Logging
import Profiles
import ServiceSupport

/// `link-emulator`: one emulated inter-tier link that all of its traffic passes through
/// (docs/design.md §6, §11).
@main
struct LinkEmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link-emulator",
        abstract: "Emulate one inter-tier link: a FIFO serialising message bytes at its bandwidth, plus its latency.",
        discussion: """
            Workers started with --link NAME (or --return-link NAME) publish their outgoing steps (or \
            sampled tokens) to the queue hyperion.link.NAME instead of to the next node, with the real \
            destination in the header x-link-to. This process consumes that queue and, for each message \
            in arrival order, waits until the link would have serialised its body behind every earlier \
            message (bytes / bandwidth) and propagated it (latency), then publishes it to its destination \
            through hyperion.internal — so the link's capacity is shared by all of its senders, as the \
            planner assumes. Senders never wait: compute goes on while a message is on the emulated wire.

            Figures come from --topology and the link's name — <tier>-<next tier> for a link_to_next \
            (e.g. edge-fog), return for the path back to the scheduler (latency return_latency_s, else \
            the sum of the forward latencies; no bandwidth limit) — or from --bandwidth-bytes-per-second \
            (omit it for a pure delay) and --latency-seconds. A step for a tier beyond the link's far end \
            (a plan that skips a tier) goes on into the next link of the topology.

            --time-scale multiplies the emulated durations (serialisation and latency); broker overhead \
            stays real and unscaled. Every --report-seconds the log gives messages, bytes, utilisation and \
            mean queueing, in emulated figures. SIGTERM: stop taking messages, deliver those already on \
            the emulated wire, exit 0; messages still queued stay in hyperion.link.NAME for the next start.

            Examples:
              link-emulator --topology examples/paper-testbed.json --link edge-fog --time-scale 0.1
              link-emulator --topology examples/paper-testbed.json --link return --time-scale 0.1
              link-emulator --link wan --bandwidth-bytes-per-second 1.25e8 --latency-seconds 0.02
            """,
        version: "link-emulator \(BuildInfo.version), commit \(BuildInfo.commit)")

    @OptionGroup
    var broker: BrokerOptions

    @OptionGroup
    var service: ServiceOptions

    @Option(help: "The link's name: its queue is hyperion.link.NAME; with --topology, edge-fog, fog-cloud, …, return.")
    var link: String = ""

    @Option(help: "Topology JSON whose link of this name gives bandwidth and latency (HYPERION_TOPOLOGY).")
    var topology: String = ProcessEnvironment.string("HYPERION_TOPOLOGY") ?? ""

    @Option(help: "Bandwidth in bytes/s, without --topology (omit: a pure delay).")
    var bandwidthBytesPerSecond: Double?

    @Option(help: "One-way latency in seconds, without --topology.")
    var latencySeconds: Double?

    @Option(help: "Multiply every emulated duration by this factor; < 1 runs faster. Broker overhead is not scaled (HYPERION_TIME_SCALE).")
    var timeScale: Double = ProcessEnvironment.string("HYPERION_TIME_SCALE").flatMap { Double($0) } ?? 1

    @Option(help: "Messages taken from the link's queue ahead of delivery.")
    var prefetch: Int = 2000

    @Option(help: "Seconds between traffic reports in the log.")
    var reportSeconds: Double = 10

    @Option(help: "Longest wait after SIGTERM for messages already on the emulated wire.")
    var drainSeconds: Double = 10

    mutating func validate() throws {
        guard !link.isEmpty, ProcessEnvironment.sanitizedID(link) == link else {
            throw ValidationError("--link: required, letters, digits, - and _ only (got '\(link)')")
        }
        do { _ = try TimeScale(timeScale) } catch { throw ValidationError(error.description) }
        if let bandwidthBytesPerSecond, !(bandwidthBytesPerSecond > 0 && bandwidthBytesPerSecond.isFinite) {
            throw ValidationError("--bandwidth-bytes-per-second: expected a number > 0")
        }
        if let latencySeconds, !(latencySeconds >= 0 && latencySeconds.isFinite) {
            throw ValidationError("--latency-seconds: expected a number >= 0")
        }
        if !topology.isEmpty, bandwidthBytesPerSecond != nil || latencySeconds != nil {
            throw ValidationError("--topology gives the link's figures: drop --bandwidth-bytes-per-second and --latency-seconds, or --topology")
        }
        guard (1...65_535).contains(prefetch) else { throw ValidationError("--prefetch: expected an integer in 1...65535") }
        guard reportSeconds > 0 else { throw ValidationError("--report-seconds: expected a number > 0") }
        guard drainSeconds >= 0 else { throw ValidationError("--drain-seconds: expected a number >= 0") }
    }

    /// A command line the parser refuses exits 2 (bad input), rather than the parser's 64.
    static func main() async { await mainExitingTwoOnBadInput() }

    func run() async throws {
        let specification: LinkSpecification
        if topology.isEmpty {
            specification = LinkSpecification(name: link, bandwidthBytesPerSecond: bandwidthBytesPerSecond, latencySeconds: latencySeconds ?? 0)
        } else {
            do {
                specification = try LinkSpecification.named(link, in: try Topology.parse(ProfileFiles.readJSON(topology)))
            } catch {
                printError("link-emulator: \(topology): \(error)")
                throw ExitCode(2)
            }
        }
        service.bootstrapLogging()
        var logger = Logger(label: "hyperion.link-emulator")
        logger[metadataKey: "link"] = "\(link)"
        let settings = LinkEmulatorSettings(
            amqpURL: broker.amqpURL, link: specification, timeScale: (try? TimeScale(timeScale)) ?? .real, prefetch: prefetch,
            reportSeconds: reportSeconds, drainSeconds: drainSeconds)
        do {
            try await LinkEmulatorService(settings: settings, logger: logger).run()
        } catch {
            printError("link-emulator \(link): \(error)")
            throw ExitCode.failure
        }
    }
}
