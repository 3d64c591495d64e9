import ArgumentParser
import ServiceSupport

/// The `hyperion` command: one entry point for users and operators.
///
/// Each subcommand lives in its own file named after it; add new ones to `subcommands`.
@main
struct HyperionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hyperion",
        abstract: "Pipelined LLM inference across edge, fog and cloud tiers over RabbitMQ.",
        discussion: """
            Hyperion cuts a model's decoder blocks into one contiguous range per tier (BSDP, offline)
            and routes every request to one node per tier from live queue depths and measured speed
            (ARTS, online). Services talk through RabbitMQ; HYPERION_AMQP_URL names the broker.
            """,
        version: "hyperion \(BuildInfo.version), commit \(BuildInfo.commit)",
        subcommands: [
            BenchCommand.self,
            PlanCommand.self,
            GenerateCommand.self,
            SimulateCommand.self,
            ReportCommand.self,
            StatusCommand.self,
        ]
    )

    static func main() async { await mainExitingTwoOnBadInput() }
}

/// `hyperion bench …`: commands that print measured figures, each beside a baseline run in the
/// same process where one exists.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a part of Hyperion and print figures with ratios to a baseline.",
        subcommands: [
            BenchPlanCommand.self,
            BenchAMQPCommand.self,
            BenchSimulateCommand.self,
            BenchInferenceCommand.self,
            BenchPipelineCommand.self,
            BenchLoadCommand.self,
            BenchEmulationCommand.self,
        ]
    )
}
