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
            out; a node's measured speed scales its figures. Malformed telemetry goes to \
            hyperion.dead with the reason.

            Re-planning: on every heartbeat the planner compares the bottleneck predicted on live \
            figures (the current cuts re-scored, and a fresh plan) with the published plan's. A \
            change above --replan-threshold that lasts --replan-sustain-seconds (and ends only below \
            --replan-exit-threshold: hysteresis) publishes a new plan, at most once per \
            --replan-cooldown-seconds; a stage left with no live node that can serve it re-plans at \
            once. The log says why each plan was made and when a drift starts and ends. If no \
            partition fits the live nodes, the current plan stays: workers and schedulers keep it.

            Plan versions are epoch milliseconds at creation, never lower than one past any version \
            the planner published or saw a worker serve, so they grow across restarts. After a \
            reconnect the current plan is published again. SIGTERM or SIGINT: clean exit (0).

            Every flag defaults to its environment variable (HYPERION_AMQP_URL, HYPERION_MODEL, \
            HYPERION_TOPOLOGY, HYPERION_PARTITION, HYPERION_WORKLOAD, HYPERION_PROMPT_TOKENS, …, \
            HYPERION_REPLAN_THRESHOLD, HYPERION_REPLAN_EXIT_THRESHOLD, HYPERION_REPLAN_SUSTAIN_SECONDS, \
            HYPERION_REPLAN_COOLDOWN_SECONDS, HYPERION_HEARTBEAT_SECONDS, HYPERION_LOG_LEVEL); an empty \
            variable counts as unset. Exit codes: 0 after a signal, 1 broker unusable, 2 bad input.

            Examples:
              partition-planner --model models/SmolLM2-135M-Instruct.Q4_1.gguf \\
                --topology examples/local-topology.json
              export HYPERION_MODEL=phi-3-medium:q4_0
              export HYPERION_TOPOLOGY=examples/paper-testbed.json
              partition-planner --replan-threshold 0.2 --replan-sustain-seconds 30
            """
    )

    @Option(
        name: .customLong("amqp-url"),
        help: ArgumentHelp(
            "Broker URL (HYPERION_AMQP_URL; else the one in .run/amqp_url; else amqp://guest:guest@localhost:5672/).",
            valueName: "amqp://user:pass@host:port/vhost"))
    var amqpURL: String?

    @OptionGroup var planning: PlanningOptions

    @Option(
        name: .customLong("replan-threshold"),
        help: ArgumentHelp("Relative change of the predicted bottleneck that starts a drift (default 0.15).", valueName: "fraction"))
    var replanThreshold: String?

    @Option(
        name: .customLong("replan-exit-threshold"),
        help: ArgumentHelp("Change below which a drift is over (default 2/3 of the threshold).", valueName: "fraction"))
    var replanExitThreshold: String?

    @Option(
        name: .customLong("replan-sustain-seconds"),
        help: ArgumentHelp("How long a drift must last before it re-plans (default 10).", valueName: "seconds"))
    var replanSustainSeconds: String?

    @Option(
        name: .customLong("replan-cooldown-seconds"),
        help: ArgumentHelp("Least time between two drift re-plans, counted from the last plan (default 30).", valueName: "seconds"))
    var replanCooldownSeconds: String?

    @Option(
        name: .customLong("heartbeat-seconds"),
        help: ArgumentHelp(
            "Heartbeat interval: the planner's own, and the one it expects from workers (a node silent for 3 is out; default 1).",
            valueName: "seconds"))
    var heartbeatSeconds: String?

    @Option(
        name: .customLong("log-level"),
        help: ArgumentHelp("trace, debug, info (default), notice, warning, error or critical (HYPERION_LOG_LEVEL).", valueName: "level"))
    var logLevel: String?

    /// A refusal of the user's input: printed, then exit 2.
    struct BadInput: Error {
        let message: String
    }

    func run() async throws {
        let settings: PartitionPlannerSettings
        let level: Logger.Level?
        do {
            (settings, level) = try makeSettings()
        } catch {
            printError("partition-planner: \(error.message)")
            throw ExitCode(2)
        }
        ProcessEnvironment.bootstrapLogging()
        var logger = Logger(label: "hyperion.partition-planner")
        if let level { logger.logLevel = level }
        logger[metadataKey: "planner"] = "\(settings.plannerID)"
        do {
            try await PartitionPlannerService(settings: settings, logger: logger).run()
        } catch {
            printError("partition-planner: \(error)")
            throw ExitCode.failure
        }
    }

    func makeSettings() throws(BadInput) -> (PartitionPlannerSettings, Logger.Level?) {
        let input: PlanningInput
        do {
            input = try planning.resolve { ProcessEnvironment.string($0.environmentVariable) }
        } catch {
            throw BadInput(message: error.message)
        }
        let urlText = amqpURL ?? ProcessEnvironment.amqpURL()
        let url: AMQPURL
        do {
            url = try AMQPURL(urlText)
        } catch {
            throw BadInput(message: "\(amqpURL == nil ? "HYPERION_AMQP_URL" : "--amqp-url"): \(error)")
        }
        let threshold = try number(replanThreshold, "--replan-threshold", "HYPERION_REPLAN_THRESHOLD", default: 0.15)
        guard threshold > 0 else { throw BadInput(message: "--replan-threshold: expected a number > 0") }
        let exit = try number(
            replanExitThreshold, "--replan-exit-threshold", "HYPERION_REPLAN_EXIT_THRESHOLD", default: threshold * 2 / 3)
        guard exit <= threshold else {
            throw BadInput(message: "--replan-exit-threshold: \(exit) is above --replan-threshold \(threshold) (no hysteresis)")
        }
        let sustain = try number(replanSustainSeconds, "--replan-sustain-seconds", "HYPERION_REPLAN_SUSTAIN_SECONDS", default: 10)
        let cooldown = try number(
            replanCooldownSeconds, "--replan-cooldown-seconds", "HYPERION_REPLAN_COOLDOWN_SECONDS", default: 30)
        let heartbeat = try number(heartbeatSeconds, "--heartbeat-seconds", "HYPERION_HEARTBEAT_SECONDS", default: 1)
        guard heartbeat > 0 else { throw BadInput(message: "--heartbeat-seconds: expected a number > 0") }

        var level: Logger.Level?
        if let text = logLevel ?? ProcessEnvironment.string("HYPERION_LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: text.lowercased()) else {
                throw BadInput(
                    message: "\(logLevel == nil ? "HYPERION_LOG_LEVEL" : "--log-level"): expected trace, debug, info, notice, "
                        + "warning, error or critical, got '\(text)'")
            }
            level = parsed
        }
        let settings = PartitionPlannerSettings(
            amqpURL: url, input: input,
            replan: ReplanMonitor.Policy(
                enterFraction: threshold, exitFraction: exit, sustainSeconds: sustain, cooldownSeconds: cooldown),
            heartbeatSeconds: heartbeat, plannerID: ProcessEnvironment.defaultNodeID())
        return (settings, level)
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
