import AMQP
import ArgumentParser
import Foundation
import Logging
import Partitioning
import PlanningOptions
import ServiceSupport

/// `partition-planner`: plans the partition, publishes it, and re-plans from live telemetry
/// (docs/design.md §2, §9).
@main
struct PartitionPlannerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "partition-planner",
        abstract: "Plan which blocks each tier runs, publish the plan, and re-plan when live nodes change the picture.",
        discussion: """
            At start the planner loads the model and the topology, listens to worker telemetry for \
            1.5 heartbeat intervals, then plans (as `hyperion plan` would, on the live nodes) and \
            publishes the plan JSON on the hyperion.plan fanout, persistent and confirmed. It answers \
            requests on hyperion.plan.get with the current plan, sent to the request's reply_to with \
            its correlation_id (the infeasible JSON while no partition fits; an error reply for a \
            malformed request; a request without reply_to goes to hyperion.dead with the reason).

            Live membership: worker heartbeats (hyperion.telemetry, worker.<tier>.<node>) replace a \
            tier's expected nodes from the topology file once the tier is heard from. Nodes added by \
            scaling count with the figures they report; a node silent for 3 heartbeat intervals is \
            out; a node's compute speed (compute_speed, smoothed over minutes, once its confidence \
            reaches 0.5) scales its figures. Malformed telemetry goes to hyperion.dead with the reason.

            Re-planning: on every heartbeat the planner scores the plan in force and a fresh plan on \
            the same live figures. The fresh plan is published only when it is better by \
            --replan-threshold continuously for --replan-dwell-seconds and the plan in force is that \
            old; cuts abandoned in the last 30 minutes need --replan-return-threshold. \
            --replan-verify-seconds after a switch, a plan that realised a worse bottleneck than the \
            one it replaced is rolled back. A stage left with no live node that can serve it \
            re-plans at once. The log gives every decision with its figures. If no partition fits \
            the live nodes, the current plan stays: workers and schedulers keep it.

            Plan versions are epoch milliseconds at creation, never lower than one past any version \
            the planner published or saw a worker serve, so they grow across restarts. After a \
            reconnect the current plan is published again. SIGTERM or SIGINT: clean exit (0).

            Every flag defaults to its environment variable (HYPERION_AMQP_URL, HYPERION_MODEL, \
            HYPERION_TOPOLOGY, HYPERION_PARTITION, HYPERION_WORKLOAD, HYPERION_PROMPT_TOKENS, …, \
            HYPERION_REPLAN_THRESHOLD, HYPERION_REPLAN_DWELL_SECONDS, HYPERION_REPLAN_RETURN_THRESHOLD, \
            HYPERION_REPLAN_VERIFY_SECONDS, HYPERION_HEARTBEAT_SECONDS, HYPERION_LOG_LEVEL); an empty \
            variable counts as unset. Exit codes: 0 after a signal, 1 broker unusable, 2 bad input.

            Examples:
              partition-planner --model models/SmolLM2-135M-Instruct.Q4_1.gguf \\
                --topology examples/local-topology.json
              export HYPERION_MODEL=phi-3-medium:q4_0
              export HYPERION_TOPOLOGY=examples/paper-testbed.json
              partition-planner --replan-threshold 0.3 --replan-dwell-seconds 300
            """,
        version: "partition-planner \(BuildInfo.version), commit \(BuildInfo.commit)"
    )

    @OptionGroup
    var broker: BrokerOptions

    @OptionGroup
    var service: ServiceOptions

    @OptionGroup var planning: PlanningOptions

    @Option(
        name: .customLong("replan-threshold"),
        help: ArgumentHelp(
            "Least predicted gain of a new plan's bottleneck over the plan in force, on the same live figures (default 0.2).",
            valueName: "fraction"))
    var replanThreshold: String?

    @Option(
        name: .customLong("replan-dwell-seconds"),
        help: ArgumentHelp(
            "How long the gain must last, and the least age of a plan before it is replaced (default 180).", valueName: "seconds"))
    var replanDwellSeconds: String?

    @Option(
        name: .customLong("replan-return-threshold"),
        help: ArgumentHelp("Least gain to go back to cuts abandoned in the last 30 minutes (default 0.5).", valueName: "fraction"))
    var replanReturnThreshold: String?

    @Option(
        name: .customLong("replan-verify-seconds"),
        help: ArgumentHelp(
            "When a switch is checked against the plan it replaced, and rolled back if it realised worse (default 120).",
            valueName: "seconds"))
    var replanVerifySeconds: String?

    @Option(
        name: .customLong("heartbeat-seconds"),
        help: ArgumentHelp(
            "Heartbeat interval: the planner's own, and the one it expects from workers (a node silent for 3 is out; default 1).",
            valueName: "seconds"))
    var heartbeatSeconds: String?

    /// A refusal of the user's input: printed, then exit 2.
    struct BadInput: Error {
        let message: String
    }

    func run() async throws {
        let settings: PartitionPlannerSettings
        do {
            settings = try makeSettings()
        } catch {
            printError("partition-planner: \(error.message)")
            throw ExitCode(2)
        }
        service.bootstrapLogging()
        var logger = Logger(label: "hyperion.partition-planner")
        logger[metadataKey: "planner"] = "\(settings.plannerID)"
        do {
            try await PartitionPlannerService(settings: settings, logger: logger).run()
        } catch {
            printError("partition-planner: \(error)")
            throw ExitCode.failure
        }
    }

    func makeSettings() throws(BadInput) -> PartitionPlannerSettings {
        let input: PlanningInput
        do {
            input = try planning.resolve(
                fallback: { ProcessEnvironment.string($0.environmentVariable) }, requireEveryTierByDefault: true)
        } catch {
            throw BadInput(message: error.message)
        }
        let url: AMQPURL
        do {
            url = try AMQPURL(broker.amqpURL)
        } catch {
            throw BadInput(message: "\(broker.isGiven ? "--amqp-url" : "the broker URL \(AMQPURL.redacted(broker.amqpURL))"): \(error)")
        }
        let threshold = try number(replanThreshold, "--replan-threshold", "HYPERION_REPLAN_THRESHOLD", default: 0.2)
        guard threshold > 0 else { throw BadInput(message: "--replan-threshold: expected a number > 0") }
        let dwell = try number(replanDwellSeconds, "--replan-dwell-seconds", "HYPERION_REPLAN_DWELL_SECONDS", default: 180)
        let returning = try number(
            replanReturnThreshold, "--replan-return-threshold", "HYPERION_REPLAN_RETURN_THRESHOLD", default: max(0.5, threshold))
        guard returning >= threshold else {
            throw BadInput(message: "--replan-return-threshold: \(returning) is below --replan-threshold \(threshold)")
        }
        let verify = try number(replanVerifySeconds, "--replan-verify-seconds", "HYPERION_REPLAN_VERIFY_SECONDS", default: 120)
        let heartbeat = try number(heartbeatSeconds, "--heartbeat-seconds", "HYPERION_HEARTBEAT_SECONDS", default: 1)
        guard heartbeat > 0 else { throw BadInput(message: "--heartbeat-seconds: expected a number > 0") }

        let settings = PartitionPlannerSettings(
            amqpURL: url, input: input,
            replan: ReplanController.Policy(
                marginFraction: threshold, dwellSeconds: dwell, returnMarginFraction: returning, verifySeconds: verify),
            heartbeatSeconds: heartbeat, plannerID: ProcessEnvironment.defaultNodeID())
        return settings
    }

    /// A number ≥ 0 from the flag, else the variable, else `fallback`; errors name the source.
    private func number(_ flagValue: String?, _ flag: String, _ variable: String, default fallback: Double) throws(BadInput)
        -> Double
    {
        let source = flagValue != nil ? flag : variable
        guard let text = flagValue ?? ProcessEnvironment.string(variable) else { return fallback }
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite, value >= 0 else {
            throw BadInput(message: "\(source): expected a number ≥ 0, got '\(text)'")
        }
        return value
    }

    static func main() async { await mainExitingTwoOnBadInput() }
}
